//! The catalog kept on disk: per server, what it offered when the hub last listed it in full
//! (tools, prompts, resources, resource templates, as the server named them), keyed by the hash
//! of what decides its process (`servers::launch_hash`). One file per server,
//! `<data dir>/catalog/<server>.json`, written atomically (a temp file renamed over it, mode
//! 0600) when a list is complete and again whenever one of its lists changes. A cold `/mcp`
//! lists a server that is not running from here, and starts it only when it is used.
//!
//! The files are read once, when the gateway is built; memory is the truth after that. A file
//! past `MAX_FILE`, unreadable or of another shape is ignored (the server is started and
//! waited for instead, as with no file).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest catalog file read or written; past it the server is not kept.
pub const MAX_FILE: u64 = 8 << 20;

/// One of the lists a server's catalog holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl Kind {
    pub(super) const ALL: [Kind; 4] = [Kind::Tools, Kind::Prompts, Kind::Resources, Kind::Templates];

    /// The list request asking for it.
    pub(super) fn of_method(method: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.method() == method)
    }

    pub(super) fn method(self) -> &'static str {
        match self {
            Kind::Tools => "tools/list",
            Kind::Prompts => "prompts/list",
            Kind::Resources => "resources/list",
            Kind::Templates => "resources/templates/list",
        }
    }

    /// Where a list result carries the items.
    pub(super) fn key(self) -> &'static str {
        match self {
            Kind::Tools => "tools",
            Kind::Prompts => "prompts",
            Kind::Resources => "resources",
            Kind::Templates => "resourceTemplates",
        }
    }

    /// The capability a server declares when it has such a list.
    pub(super) fn capability(self) -> &'static str {
        match self {
            Kind::Tools => "tools",
            Kind::Prompts => "prompts",
            Kind::Resources | Kind::Templates => "resources",
        }
    }
}

/// One server's file. A list not yet known is `None`; only a catalog with all four is used.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Debug)]
pub(super) struct Kept {
    pub config_hash: String,
    pub tools: Option<Vec<Value>>,
    pub prompts: Option<Vec<Value>>,
    pub resources: Option<Vec<Value>>,
    /// MCP's own name for the list.
    #[serde(rename = "resourceTemplates")]
    pub resource_templates: Option<Vec<Value>>,
    #[serde(default)]
    pub saved_at: String,
}

impl Kept {
    fn list(&self, kind: Kind) -> Option<&Vec<Value>> {
        match kind {
            Kind::Tools => self.tools.as_ref(),
            Kind::Prompts => self.prompts.as_ref(),
            Kind::Resources => self.resources.as_ref(),
            Kind::Templates => self.resource_templates.as_ref(),
        }
    }

    fn list_mut(&mut self, kind: Kind) -> &mut Option<Vec<Value>> {
        match kind {
            Kind::Tools => &mut self.tools,
            Kind::Prompts => &mut self.prompts,
            Kind::Resources => &mut self.resources,
            Kind::Templates => &mut self.resource_templates,
        }
    }

    fn missing(&self) -> Vec<Kind> {
        Kind::ALL.into_iter().filter(|k| self.list(*k).is_none()).collect()
    }
}

/// The catalogs of every server, kept in memory and on disk.
#[derive(Default)]
pub(super) struct Shelf {
    /// None: nothing is read or written (the catalog lives as long as the process).
    dir: Option<PathBuf>,
    kept: Mutex<HashMap<String, Kept>>,
    /// Puts the file writes in order (guards no data of its own): each writes what memory
    /// holds when its turn comes, so the last write is the newest.
    writes: Mutex<()>,
}

impl Shelf {
    /// The catalogs found in `dir`, read now.
    pub(super) fn open(dir: Option<PathBuf>) -> Shelf {
        let kept = dir.as_deref().map(read_all).unwrap_or_default();
        Shelf { dir, kept: Mutex::new(kept), writes: Mutex::new(()) }
    }

    /// A server's `kind` list, when its catalog is complete and was made under this hash.
    pub(super) fn get(&self, server: &str, hash: &str, kind: Kind) -> Option<Vec<Value>> {
        let kept = self.kept.lock();
        let k = kept.get(server).filter(|k| k.config_hash == hash && k.missing().is_empty())?;
        k.list(kind).cloned()
    }

    /// Whether a complete catalog made under this hash is kept for the server.
    pub(super) fn has(&self, server: &str, hash: &str) -> bool {
        self.kept.lock().get(server).is_some_and(|k| k.config_hash == hash && k.missing().is_empty())
    }

    /// A server listed `kind` in full: kept (a catalog of another hash is started afresh), and
    /// written when the catalog is complete and this changed it. What is still missing is
    /// returned, for the caller to list and note too.
    pub(super) fn note(&self, server: &str, hash: &str, kind: Kind, items: &[Value]) -> Vec<Kind> {
        let (changed, missing) = {
            let mut all = self.kept.lock();
            let k = all.entry(server.to_string()).or_default();
            if k.config_hash != hash {
                *k = Kept { config_hash: hash.to_string(), ..Kept::default() };
            }
            let slot = k.list_mut(kind);
            let changed = slot.as_deref() != Some(items);
            if changed {
                *slot = Some(items.to_vec());
            }
            (changed, k.missing())
        };
        if changed && missing.is_empty() {
            self.write(server);
        }
        missing
    }

    /// Writes a server's catalog as memory holds it now.
    fn write(&self, server: &str) {
        let Some(dir) = &self.dir else { return };
        let _turn = self.writes.lock();
        let text = {
            let mut all = self.kept.lock();
            let Some(k) = all.get_mut(server) else { return };
            k.saved_at = crate::time::rfc3339(SystemTime::now());
            serde_json::to_vec_pretty(&*k)
        };
        let text = match text {
            Ok(t) if t.len() as u64 <= MAX_FILE => t,
            Ok(t) => {
                log::warn!("catalog of {server}: {} bytes, over {MAX_FILE}: not kept on disk", t.len());
                return;
            }
            Err(e) => {
                log::warn!("catalog of {server}: {e}");
                return;
            }
        };
        match write_atomically(dir, &format!("{server}.json"), &text) {
            Ok(()) => log::debug!("catalog of {server} saved"),
            Err(e) => log::warn!("cannot save the catalog of {server} in {}: {e}", dir.display()),
        }
    }
}

/// Every catalog file in `dir` that reads as one, by server name.
fn read_all(dir: &Path) -> HashMap<String, Kept> {
    let mut out = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(server) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        if server.starts_with('.') || entry.metadata().map_or(true, |m| !m.is_file() || m.len() > MAX_FILE) {
            continue;
        }
        let kept = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Kept>(&b).map_err(|e| e.to_string()));
        match kept {
            Ok(k) => {
                out.insert(server.to_string(), k);
            }
            Err(e) => log::warn!("ignoring the catalog file {}: {e}", path.display()),
        }
    }
    out
}

/// `name` in `dir` replaced whole: a temp file of its own (created new, mode 0600) renamed
/// over it, so a reader never sees half a file.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
    let renamed = written.and_then(|()| std::fs::rename(&tmp, dir.join(name)));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("agenthub-shelf-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn fill(shelf: &Shelf, server: &str, hash: &str, tools: &[Value]) {
        for kind in Kind::ALL {
            let items: &[Value] = if kind == Kind::Tools { tools } else { &[] };
            shelf.note(server, hash, kind, items);
        }
    }

    #[test]
    fn a_catalog_is_used_once_complete_and_only_under_its_hash() {
        let d = dir("complete");
        let shelf = Shelf::open(Some(d.clone()));
        let tools = [json!({"name": "echo"})];
        assert_eq!(
            shelf.note("fx", "h1", Kind::Tools, &tools),
            [Kind::Prompts, Kind::Resources, Kind::Templates]
        );
        assert_eq!(shelf.get("fx", "h1", Kind::Tools), None, "incomplete: not used");
        assert!(!d.join("fx.json").exists(), "incomplete: not written");
        fill(&shelf, "fx", "h1", &tools);
        assert_eq!(shelf.get("fx", "h1", Kind::Tools), Some(tools.to_vec()));
        assert_eq!(shelf.get("fx", "h2", Kind::Tools), None, "another configuration");
        // Read back by a new hub.
        let again = Shelf::open(Some(d.clone()));
        assert!(again.has("fx", "h1") && !again.has("fx", "h2") && !again.has("other", "h1"));
        let file: Value = serde_json::from_slice(&std::fs::read(d.join("fx.json")).unwrap()).unwrap();
        assert_eq!(file["config_hash"], "h1");
        assert_eq!(file["resourceTemplates"], json!([]));
        assert!(file["saved_at"].as_str().is_some_and(|s| s.ends_with('Z')), "{file}");
        // A change of hash starts afresh.
        assert_eq!(shelf.note("fx", "h2", Kind::Tools, &tools).len(), 3);
        assert!(!shelf.has("fx", "h1") && !shelf.has("fx", "h2"));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_changed_list_is_written_again_and_odd_files_are_ignored() {
        let d = dir("changed");
        let shelf = Shelf::open(Some(d.clone()));
        fill(&shelf, "fx", "h", &[json!({"name": "a"})]);
        shelf.note("fx", "h", Kind::Tools, &[json!({"name": "b"})]);
        let again = Shelf::open(Some(d.clone()));
        assert_eq!(again.get("fx", "h", Kind::Tools), Some(vec![json!({"name": "b"})]));
        std::fs::write(d.join("broken.json"), "{not json").unwrap();
        std::fs::write(d.join(".fx.json.1.tmp"), "{}").unwrap();
        let again = Shelf::open(Some(d.clone()));
        assert!(again.has("fx", "h") && !again.has("broken", "h"));
        assert_eq!(again.kept.lock().len(), 1);
        let _ = std::fs::remove_dir_all(&d);
    }
}
