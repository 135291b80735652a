//! Configuration changes: add, replace, remove, each saved atomically with memory rolled back
//! when the save fails. `Servers::writes` puts each change in order with its save, so the file
//! always matches memory; it is never held across a stop or a start. Imported servers are
//! read-only (`Error::ReadOnly`). A save starts from the file as read (`config::Document`):
//! its shape, unknown keys and key order are kept, and only what changed is rewritten. A save
//! never overwrites a file that changed on disk since the hub last read or saved it (409: the
//! reload takes the edit first); at start the temp files of saves never finished are removed.

use std::path::Path;
use std::sync::Arc;

use sha2::Digest;

use super::{Server, Servers, Snapshot, Status};
use crate::config::{self, ServerConfig, ServerEntry};
use crate::error::{Error, Result};

impl Servers {
    /// Adds a server and saves; 409 when the name is taken.
    pub fn add(&self, name: &str, config: ServerConfig) -> Result<Snapshot> {
        config::validate_server_name(name).map_err(Error::BadRequest)?;
        let _w = self.writes.lock();
        if self.find(name).is_some() {
            return Err(Error::Conflict(format!("a server named \"{name}\" already exists")));
        }
        let config = ServerConfig { scope: self.document.lock().scope.clone(), ..config };
        let srv = Arc::new(Server::new(ServerEntry {
            name: name.to_string(),
            display_name: name.to_string(),
            config,
            origin: self.file.display().to_string(),
            problem: None,
        }));
        self.list.lock().push(srv.clone());
        if let Err(e) = self.save() {
            self.list.lock().retain(|s| !Arc::ptr_eq(s, &srv));
            return Err(e);
        }
        self.ctx.activity.record("config", Some(name), "added");
        Ok(srv.snapshot())
    }

    /// Replaces a server's configuration and saves; a running server restarts with it, or
    /// stops when the change disables it. A masked value sent back as the API showed it (`***`)
    /// keeps the real one: a client that GETs a server, edits one field and PUTs it back must
    /// not save `***` over its secrets.
    pub fn replace(&self, name: &str, config: ServerConfig) -> Result<Snapshot> {
        let (srv, restart, stop) = {
            let _w = self.writes.lock();
            // Looked up under the save lock: a removal that came first wins, and this is a 404.
            let srv = self.must_find(name)?;
            self.writable(&srv)?;
            let old = {
                let mut st = srv.state.lock();
                let config = ServerConfig { scope: st.config.scope.clone(), ..config.unmasked(&st.config) };
                st.replaced(config, self.file.display().to_string())
            };
            if let Err(e) = self.save() {
                let mut st = srv.state.lock();
                let (config, origin, problem) = old;
                st.replaced(config, origin);
                st.problem = problem;
                return Err(e);
            }
            let (fx, was_running, enabled) = {
                let mut st = srv.state.lock();
                let fx = st.clear_failure();
                // A failed install of its npm package is tried again at its next start.
                self.packages.forget(name);
                (fx, matches!(st.status(), Status::Running | Status::Starting), st.config.enabled)
            };
            self.fire(&srv, fx);
            (srv, was_running && enabled, was_running && !enabled)
        };
        self.ctx.activity.record("config", Some(name), "replaced");
        if restart {
            return self.restart(name);
        }
        // Disabled by this change: it stops, as a reload of the same edit would stop it (the
        // hub's stop: disabling is not a hold).
        if stop {
            self.stop_server(&srv);
            return Ok(srv.snapshot());
        }
        Ok(srv.snapshot())
    }

    /// Removes a server and saves, then stops it: the stop (up to the child's whole grace) runs
    /// after the save lock is released.
    pub fn remove(&self, name: &str) -> Result<()> {
        let srv = {
            let _w = self.writes.lock();
            let srv = self.must_find(name)?;
            self.writable(&srv)?;
            srv.state.lock().removed = true;
            let index = {
                let mut list = self.list.lock();
                let i = list.iter().position(|s| Arc::ptr_eq(s, &srv));
                if let Some(i) = i {
                    list.remove(i);
                }
                i
            };
            if let Err(e) = self.save() {
                srv.state.lock().removed = false;
                if let Some(i) = index {
                    let mut list = self.list.lock();
                    let i = i.min(list.len());
                    list.insert(i, srv);
                }
                return Err(e);
            }
            srv
        };
        self.stop_server(&srv);
        self.ctx.breakers.remove(name);
        if srv.state.lock().held {
            // Its hold goes with it: a server added later under this name starts as any other.
            self.save_held();
        }
        let prefix = self.ctx.npm_prefix.join(name);
        if prefix.exists() {
            match std::fs::remove_dir_all(&prefix) {
                Ok(()) => log::info!("server {name}: removed its npm install {}", prefix.display()),
                Err(e) => {
                    log::error!("server {name}: cannot remove its npm install {}: {e}", prefix.display())
                }
            }
        }
        self.ctx.activity.record("config", Some(name), "removed");
        Ok(())
    }

    /// Refuses to change a server imported from a file the hub never rewrites.
    fn writable(&self, srv: &Server) -> Result<()> {
        let origin = srv.state.lock().origin.clone();
        if self.import_origin.as_deref() == Some(origin.as_str()) {
            return Err(Error::ReadOnly(format!(
                "server \"{}\" is imported from {origin}, which the hub never rewrites: change it in that file",
                srv.name
            )));
        }
        Ok(())
    }

    /// Writes the hub's own file atomically: every server except those only imported, over the
    /// file as last read or saved. The first save over the embedded defaults writes them too
    /// (said in the log): from then on they are the user's to edit.
    fn save(&self) -> Result<()> {
        let mut embedded = Vec::new();
        let servers: Vec<(String, ServerConfig)> = self
            .list
            .lock()
            .iter()
            .filter_map(|s| {
                let st = s.state.lock();
                if st.origin == config::EMBEDDED {
                    embedded.push(s.name.clone());
                }
                let imported = self.import_origin.as_deref() == Some(st.origin.as_str());
                (!imported).then(|| (s.display_name.clone(), st.config.clone()))
            })
            .collect();
        let document = self.document.lock().clone();
        self.unchanged_on_disk(document.on_disk)?;
        let root = document.render(&servers);
        let mut text = serde_json::to_string_pretty(&root).map_err(|e| Error::Internal(e.to_string()))?;
        text.push('\n');
        write_atomically(&self.file, text.as_bytes())?;
        let hash: [u8; 32] = sha2::Sha256::digest(text.as_bytes()).into();
        *self.saved.lock() = Some(hash);
        log::info!("saved {} server(s) to {}", servers.len(), self.file.display());
        if !embedded.is_empty() {
            log::info!(
                "first save: the embedded example servers ({}) are now in {}; edit or remove them there",
                embedded.join(", "),
                self.file.display()
            );
        }
        if document.had_comments {
            log::warn!("{}: its comments were not kept by this save", self.file.display());
        }
        self.document.lock().saved(root, servers, hash);
        let label = self.file.display().to_string();
        for s in self.list.lock().iter() {
            let mut st = s.state.lock();
            if self.import_origin.as_deref() != Some(st.origin.as_str()) {
                st.origin.clone_from(&label);
            }
        }
        Ok(())
    }
}

impl Servers {
    /// Refuses a save over a file that is not the one the hub last read or saved (`on_disk`;
    /// None: there was none): an edit made on disk that the reload has not picked up yet, a
    /// file created beside the embedded defaults, a file moved away. Saving would lose it.
    fn unchanged_on_disk(&self, on_disk: Option<[u8; 32]>) -> Result<()> {
        let file = self.file.display();
        let now: Option<[u8; 32]> = match std::fs::read(&self.file) {
            Ok(bytes) => Some(sha2::Sha256::digest(&bytes).into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(format!("cannot read {file} before saving it"), e)),
        };
        match (on_disk, now) {
            (was, now) if was == now => Ok(()),
            (Some(_), None) => Err(Error::Conflict(format!(
                "{file} is gone since the hub read it (moved or deleted): not saved; put it back and try again"
            ))),
            _ => Err(Error::Conflict(format!(
                "{file} changed on disk since the hub last read it: not saved, so that edit is kept; \
                 the hub reloads the file within seconds, then try again"
            ))),
        }
    }

    /// Removes the temp files of saves a hub killed outright never finished (`.<file>.tmp-<pid>`
    /// beside the servers file, its symlinks followed: the name `replace_file` gives them):
    /// only that name, only in that directory, and not one whose pid is another process still
    /// running (a second hub saving there). Under `writes`, so no save of this hub is under way.
    pub(super) fn remove_stale_saves(&self) {
        let _w = self.writes.lock();
        let file = through_symlinks(&self.file);
        let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let Some(name) = file.file_name().and_then(|n| n.to_str()) else { return };
        let prefix = format!(".{name}.tmp-");
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(pid) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else { continue };
            if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let mine = pid == std::process::id().to_string();
            if !mine && Path::new("/proc").join(pid).exists() {
                continue;
            }
            let path = entry.path();
            match std::fs::remove_file(&path) {
                Ok(()) => log::info!("removed {}, left by a save that never finished", path.display()),
                Err(e) => log::warn!("cannot remove {}, left by an unfinished save: {e}", path.display()),
            }
        }
    }
}

/// Temp file in the same directory, fsync, rename over, fsync the directory. A failure leaves
/// the previous file as it was. The file holds secrets: a new one is 0600 in a directory
/// created 0700, an existing one keeps its mode when that is stricter (never looser than
/// 0600), and a symlink is written through to its target, which keeps being a symlink.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let path = &through_symlinks(path);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let mode = std::fs::metadata(path).map_or(0o600, |m| m.permissions().mode() & 0o600);
    replace_file(path, dir, bytes, mode)
}

/// `path` (its symlinks already followed) replaced by `bytes` with `mode`: a temp file in
/// `dir`, fsync, rename over, fsync the directory. A failure leaves the previous file whole.
pub fn replace_file(path: &Path, dir: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("save"),
        std::process::id()
    ));
    let result = (|| {
        // A stale temp file (a crash mid-save) may have any mode: start from a new one.
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e: std::io::Error| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("cannot save {}", path.display()), e)
    })
}

/// The file a path names once its symlinks are followed (a dangling link: where it points).
pub(crate) fn through_symlinks(path: &Path) -> std::path::PathBuf {
    let mut p = path.to_path_buf();
    // A bound, so a loop of links ends (the rename then replaces the last link seen).
    for _ in 0..40 {
        match std::fs::read_link(&p) {
            Ok(target) => p = p.parent().unwrap_or(Path::new("")).join(target),
            Err(_) => break,
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::super::testing::{shell_server, table, wait_blocked};
    use super::*;

    #[test]
    fn a_symlink_planted_at_the_temp_path_is_never_written_through() {
        let dir = std::env::temp_dir().join(format!("agenthub-tmp-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "mine").unwrap();
        let file = dir.join("f.json");
        let tmp = dir.join(format!(".f.json.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        replace_file(&file, &dir, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "mine");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");
        assert!(std::fs::symlink_metadata(&tmp).is_err(), "the temp path is gone");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_replace_that_waited_for_a_removal_finds_nothing() {
        let servers = table("replace", vec![shell_server("a")]);
        let writes = servers.writes.lock();
        let s = servers.clone();
        let replace = std::thread::Builder::new()
            .name("replace".into())
            .spawn(move || {
                s.replace("a", ServerConfig { command: Some("true".into()), ..Default::default() })
            })
            .unwrap();
        wait_blocked("replace");
        // A removal that holds the save lock first: it takes the server out.
        servers.list.lock().clear();
        drop(writes);
        let got = replace.join().unwrap();
        assert!(matches!(got, Err(Error::NotFound(_))), "{got:?}");
    }
}
