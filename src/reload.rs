//! Live reload of the hub's own configuration files: the servers file (and the imported one),
//! the enhancement rules, the pipelines, the profiles and the tokens file. The `config-watch` thread looks at each file once a second (its
//! modification time, size and SHA-256: no file-watch dependency), and once a change has held
//! still for `SETTLE` it loads the whole configuration again with the code start-up uses. A
//! configuration that does not load is refused whole: the hub keeps running the old one and
//! records a `config_error` event naming the file, the JSON path and the line. So is one whose
//! servers file, read before, is gone (a rename or a checkout under way), which is never taken
//! for "nothing configured". One that loads is applied: servers through `Servers::reload`
//! (added, removed, restarted, updated live), rules swapped at once with only the changed
//! rules' cache entries dropped, pipelines swapped (a run under way keeps its definition). The
//! hub's own saves (API edits) are recognised by their hash and reload nothing. The watcher
//! starts from the files as they were before the configuration was loaded (`Baseline`), so an
//! edit made while the hub starts is not missed. `Watcher::reload_now` (SIGHUP) reloads without
//! waiting.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{RecvTimeoutError, Sender};
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::config::{self, Settings};
use crate::error::{Error, Result};

/// How often the files are looked at.
const POLL: Duration = Duration::from_secs(1);
/// How long a change must hold still before it is loaded (an editor writing in pieces).
const SETTLE: Duration = Duration::from_millis(500);

/// What one look at a file saw; `None` in its place when it does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    modified: Option<SystemTime>,
    size: u64,
    hash: [u8; 32],
}

fn look(path: &Path) -> Option<Seen> {
    let meta = std::fs::metadata(path).ok()?;
    let bytes = std::fs::read(path).ok()?;
    Some(Seen { modified: meta.modified().ok(), size: meta.len(), hash: Sha256::digest(&bytes).into() })
}

/// The files' states as the watcher follows them: what was loaded last, and a change waiting to
/// settle. Pure: time is a parameter.
#[derive(Debug)]
struct Follow {
    loaded: Vec<Option<Seen>>,
    /// The latest look, and when it was first seen so.
    changing: Option<(Vec<Option<Seen>>, Instant)>,
}

impl Follow {
    /// Takes a look at `now`: the files to load when a change has settled.
    fn look(&mut self, seen: Vec<Option<Seen>>, now: Instant) -> Option<Vec<Option<Seen>>> {
        match &self.changing {
            Some((last, since)) if *last == seen => {
                if now.saturating_duration_since(*since) < SETTLE {
                    return None;
                }
                self.changing = None;
                self.loaded = seen.clone();
                Some(seen)
            }
            _ if seen == self.loaded => {
                self.changing = None;
                None
            }
            _ => {
                self.changing = Some((seen, now));
                None
            }
        }
    }

    /// How long until the next look: sooner while a change settles.
    fn wait(&self) -> Duration {
        if self.changing.is_some() { SETTLE } else { POLL }
    }
}

enum Msg {
    Now,
    Stop,
}

/// The running `config-watch` thread; stopped and joined on drop.
pub struct Watcher {
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

/// The files as they were before the configuration was loaded: where the watcher starts from,
/// so a change made while the hub starts (after this look, before the watcher's first) is a
/// change, not the state it takes for loaded.
pub struct Baseline {
    files: Vec<PathBuf>,
    seen: Vec<Option<Seen>>,
}

impl Baseline {
    /// Looks at the files `settings` name; taken before `config::load`.
    pub fn take(settings: &Settings) -> Baseline {
        let files = files(settings);
        let seen = files.iter().map(|f| look(f)).collect();
        Baseline { files, seen }
    }
}

impl Watcher {
    /// Starts watching the files the hub loaded its configuration from, from `baseline`.
    pub fn start(app: Arc<App>, baseline: Baseline) -> Result<Watcher> {
        let Baseline { files, seen: loaded } = baseline;
        // The npm entries of the configuration loaded at start are installed in the background
        // (a reload's are by `Servers::reload`).
        app.servers.install_packages();
        let (tx, rx) = crossbeam_channel::bounded::<Msg>(4);
        let thread = std::thread::Builder::new()
            .name("config-watch".into())
            .spawn(move || {
                let servers_file = files[0].clone();
                let mut follow = Follow { loaded, changing: None };
                loop {
                    match rx.recv_timeout(follow.wait()) {
                        Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                        Ok(Msg::Now) => {
                            follow =
                                Follow { loaded: files.iter().map(|f| look(f)).collect(), changing: None };
                            reload(&app, "SIGHUP");
                        }
                        Err(RecvTimeoutError::Timeout) => {
                            let before = follow.loaded.clone();
                            let Some(now) =
                                follow.look(files.iter().map(|f| look(f)).collect(), Instant::now())
                            else {
                                continue;
                            };
                            // Only the servers file changed, into what the hub itself saved: nothing to do.
                            let own_save = now[1..] == before[1..]
                                && now[0].is_some_and(|s| Some(s.hash) == app.servers.last_saved());
                            if own_save {
                                log::debug!("{}: the hub's own save; not reloaded", servers_file.display());
                                continue;
                            }
                            reload(&app, "a file changed");
                        }
                    }
                }
            })
            .map_err(|e| Error::io("spawning the config watcher", e))?;
        Ok(Watcher { tx, thread: Some(thread) })
    }

    /// Reloads at once (SIGHUP).
    pub fn reload_now(&self) {
        let _ = self.tx.try_send(Msg::Now);
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The files a reload reads: the hub's own servers file first, then the rules, the pipelines,
/// the imported servers file if any.
fn files(settings: &Settings) -> Vec<PathBuf> {
    let env = |k: &str| std::env::var(k).ok();
    let dir = settings.own_config_dir(&env);
    let mut files = vec![
        dir.join(config::SERVERS_FILE_NAME),
        dir.join(config::RULES_FILE_NAME),
        dir.join(config::PIPELINES_FILE_NAME),
        dir.join(config::PROFILES_FILE_NAME),
    ];
    files.extend(settings.servers_file.clone());
    files.extend(settings.tokens_file.clone());
    files
}

/// Loads the whole configuration again and applies it, or refuses it whole.
pub fn reload(app: &Arc<App>, why: &str) {
    let env = |k: &str| std::env::var(k).ok();
    let loaded =
        config::load(&app.settings, &env).and_then(|l| match vanished(app, &l).or_else(|| refusal(&l)) {
            Some(e) => Err(Error::Config(e)),
            None => Ok(l),
        });
    let loaded = match loaded {
        Ok(l) => l,
        Err(e) => {
            log::error!("configuration not reloaded ({why}); the running one stays: {e}");
            app.activity.record("config_error", None, format!("{e}; the running configuration stays"));
            crate::metrics::global().reload("invalid");
            return;
        }
    };
    for w in &loaded.warnings {
        log::warn!("{w}");
    }
    let changes = app.servers.reload(loaded.servers, loaded.document);
    let rules = app.enhancer.set_rules(loaded.rules);
    let pipelines = app.pipelines.set(loaded.pipelines);
    let profiles = app.gateway.set_profiles(loaded.profiles);
    if !changes.is_empty() || !pipelines.is_empty() {
        app.servers.announce_reload();
    }
    let mut summary = changes.summary();
    if !rules.is_empty() {
        summary.push_str(&format!("; rules changed: {}", rules.join(", ")));
    }
    if !pipelines.is_empty() {
        summary.push_str(&format!("; pipelines changed: {}", pipelines.join(", ")));
    }
    if !profiles.is_empty() {
        summary.push_str(&format!("; profiles changed: {}", profiles.join(", ")));
    }
    log::info!("configuration reloaded ({why}): {summary}");
    app.activity.record("config", None, format!("reloaded ({why}): {summary}"));
    crate::metrics::global().reload("applied");
}

/// The hub's own servers file, read or saved before, is gone (moved away, a checkout or an
/// editor's rename under way): loading that as "nothing configured" would stop every server
/// (and start the embedded examples), so it is refused like a broken file. It is loaded again
/// when it is back.
fn vanished(app: &App, loaded: &config::Loaded) -> Option<String> {
    (loaded.document.on_disk.is_none() && app.servers.file_hash().is_some()).then(|| {
        format!(
            "{}: not found (moved or deleted?); it is loaded again once it is back",
            loaded.servers_path.display()
        )
    })
}

/// Why a loaded configuration is refused: a server its file got wrong (a field of the wrong
/// type, a name that clashes), with the line where the server is written. A server that only
/// misses a variable loads as at start, FAILED with its problem.
fn refusal(loaded: &config::Loaded) -> Option<String> {
    let bad = loaded
        .servers
        .iter()
        .find(|s| s.problem.as_deref().is_some_and(|p| p.starts_with(&format!("{}:", s.origin))))?;
    let problem = bad.problem.clone().unwrap_or_default();
    let line = std::fs::read_to_string(&bad.origin).ok().and_then(|text| {
        let key = serde_json::to_string(&bad.display_name).ok()?;
        text.lines().position(|l| l.contains(&key)).map(|i| i + 1)
    });
    Some(match line {
        Some(n) => format!("{problem} (line {n})"),
        None => problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(n: u8) -> Vec<Option<Seen>> {
        vec![Some(Seen { modified: None, size: u64::from(n), hash: [n; 32] }), None]
    }

    #[test]
    fn a_change_loads_once_it_has_held_still() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut f = Follow { loaded: seen(1), changing: None };
        assert_eq!(f.look(seen(1), ms(0)), None, "nothing changed");
        assert_eq!(f.wait(), POLL);
        assert_eq!(f.look(seen(2), ms(1000)), None, "changed: settle first");
        assert_eq!(f.wait(), SETTLE);
        assert_eq!(f.look(seen(3), ms(1500)), None, "changed again: settle again");
        assert_eq!(f.look(seen(3), ms(1900)), None, "not settled yet");
        assert_eq!(f.look(seen(3), ms(2000)), Some(seen(3)));
        assert_eq!(f.look(seen(3), ms(3000)), None, "loaded once");
        // A change undone before it settled loads nothing.
        assert_eq!(f.look(seen(4), ms(4000)), None);
        assert_eq!(f.look(seen(3), ms(4500)), None);
        assert_eq!(f.look(seen(3), ms(5500)), None);
    }
}
