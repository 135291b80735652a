//! A configuration read again from disk, applied to the table (`Servers::reload`). Servers are
//! compared as loaded (defaults applied, `${VAR}` not expanded): one that is new is added (and
//! started if `auto_start`), one that is gone is stopped and dropped, one whose process would
//! differ (transport, command, args, env, envFile, cwd, package, url, headers) is restarted if
//! it runs, one whose `enabled` flipped is started (if `auto_start`) or stopped, and any other
//! change (timeouts, restart policy, description, auto_start, on_demand, idle_timeout, roots)
//! is applied live. A server a person stopped stays stopped through all of it. The table
//! is changed under `writes`, like an API edit; the stops and starts run afterwards, each on a
//! thread of its own, so a slow server delays no other. npm entries not yet installed (new, or
//! of a new version) are installed in the background (`install_packages`).

use std::sync::Arc;

use serde_json::json;

use super::{STATUS_NOTIFICATION, Server, Servers, Status, short};
use crate::config::{Document, ServerConfig, ServerEntry};

/// What a reload changed, by server name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub restarted: Vec<String>,
    /// Changed in policy only, or in what a stopped server would run: applied, nothing restarted.
    pub updated: Vec<String>,
    pub started: Vec<String>,
    pub stopped: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }

    /// `added a; restarted b`, for the log and the activity feed.
    pub fn summary(&self) -> String {
        let parts = [
            ("added", &self.added),
            ("removed", &self.removed),
            ("restarted", &self.restarted),
            ("updated", &self.updated),
            ("started", &self.started),
            ("stopped", &self.stopped),
        ];
        let said: Vec<String> = parts
            .iter()
            .filter(|(_, names)| !names.is_empty())
            .map(|(what, names)| format!("{what} {}", names.join(", ")))
            .collect();
        if said.is_empty() { "no server changed".into() } else { said.join("; ") }
    }
}

/// What decides the process (or remote session) a server runs, as written (`${VAR}` not
/// expanded): what `process_changed` compares, and what the catalog the gateway keeps on disk
/// is keyed by (`launch_hash`).
fn launch_identity(cfg: &ServerConfig) -> serde_json::Value {
    json!({
        "transport": cfg.transport.as_str(),
        "command": cfg.command,
        "args": cfg.args,
        "env": cfg.env,
        "envFile": cfg.env_file,
        "cwd": cfg.cwd,
        "package": cfg.package,
        "ignore_scripts": cfg.ignore_scripts,
        "url": cfg.url,
        "headers": cfg.headers,
    })
}

/// Whether the process (or remote session) a server runs would differ.
pub fn process_changed(old: &ServerConfig, new: &ServerConfig) -> bool {
    launch_identity(old) != launch_identity(new)
}

/// The SHA-256 (hex) of what decides a server's process: equal exactly when
/// `process_changed` would say no change.
pub fn launch_hash(cfg: &ServerConfig) -> String {
    crate::cache::hash_prompt(&launch_identity(cfg).to_string())
}

enum Action {
    Start,
    Stop,
    Restart,
    /// Removed: stopped, and its breaker dropped.
    Drop,
}

impl Servers {
    /// Applies a reloaded configuration: the servers of every file, and the hub's own file as
    /// now read (what the next save starts from). Returns at once; stops and starts run on
    /// threads the table owns.
    pub fn reload(self: &Arc<Self>, entries: Vec<ServerEntry>, document: Document) -> Changes {
        let mut changes = Changes::default();
        let mut plan: Vec<(Arc<Server>, Action)> = Vec::new();
        {
            let _w = self.writes.lock();
            let old: Vec<Arc<Server>> = self.list.lock().clone();
            let mut list = Vec::with_capacity(entries.len());
            for entry in entries {
                let Some(srv) = old
                    .iter()
                    .find(|s| s.name == entry.name && s.display_name == entry.display_name)
                    .cloned()
                else {
                    let name = entry.name.clone();
                    let auto = entry.config.auto_start && entry.config.enabled && entry.problem.is_none();
                    let srv = Arc::new(Server::new(entry));
                    if auto {
                        plan.push((srv.clone(), Action::Start));
                    }
                    changes.added.push(name);
                    list.push(srv);
                    continue;
                };
                let (fx, action) = {
                    let mut st = srv.state.lock();
                    if st.config == entry.config && st.problem == entry.problem {
                        st.origin = entry.origin;
                        drop(st);
                        list.push(srv);
                        continue;
                    }
                    let process = process_changed(&st.config, &entry.config);
                    // A changed configuration tries a failed install again at once.
                    self.packages.forget(&srv.name);
                    let (was_enabled, now_enabled) = (st.config.enabled, entry.config.enabled);
                    let active = matches!(st.status(), Status::Running | Status::Starting);
                    let auto = entry.config.auto_start;
                    st.replaced(entry.config, entry.origin);
                    st.problem = entry.problem;
                    let fx = if process { st.clear_failure() } else { Vec::new() };
                    let action = match (was_enabled, now_enabled) {
                        (true, false) if active => Some(Action::Stop),
                        // A server a person stopped stays stopped, enabled or not.
                        (false, true) if auto && !st.held => Some(Action::Start),
                        _ if process && active => Some(Action::Restart),
                        _ => None,
                    };
                    (fx, action)
                };
                self.fire(&srv, fx);
                match &action {
                    Some(Action::Stop) => changes.stopped.push(srv.name.clone()),
                    Some(Action::Start) => changes.started.push(srv.name.clone()),
                    Some(Action::Restart) => changes.restarted.push(srv.name.clone()),
                    _ => changes.updated.push(srv.name.clone()),
                }
                if let Some(action) = action {
                    plan.push((srv.clone(), action));
                }
                list.push(srv);
            }
            for srv in old.iter().filter(|s| !list.iter().any(|n| Arc::ptr_eq(n, s))) {
                srv.state.lock().removed = true;
                self.packages.forget(&srv.name);
                changes.removed.push(srv.name.clone());
                plan.push((srv.clone(), Action::Drop));
            }
            *self.list.lock() = list;
            *self.document.lock() = document;
        }
        self.install_packages();
        for (srv, action) in plan {
            let me = self.clone();
            self.spawn_thread(format!("reload-{}", short(&srv.name)), move || {
                let name = &srv.name;
                let done = match action {
                    Action::Start => me.start_for_use(name).map(drop),
                    Action::Restart => me.restart_for_reload(name).map(drop),
                    // The hub's stop: disabling is not a person's hold.
                    Action::Stop => {
                        me.stop_server(&srv);
                        Ok(())
                    }
                    Action::Drop => {
                        me.stop_server(&srv);
                        me.ctx.breakers.remove(name);
                        if srv.state.lock().held {
                            // Its hold goes with it.
                            me.save_held();
                        }
                        Ok(())
                    }
                };
                if let Err(e) = done {
                    log::warn!("reload: server {name}: {e}");
                }
            });
        }
        changes
    }

    /// Tells the listeners (the aggregated view) that what it lists may have changed without a
    /// server starting or stopping (a server added that never ran, a description, a pipeline):
    /// its catalog is dropped and its sessions hear `list_changed`.
    pub fn announce_reload(&self) {
        if let Some(l) = self.listener.get() {
            let note =
                json!({"jsonrpc": "2.0", "method": STATUS_NOTIFICATION, "params": {"status": "reloaded"}});
            l("", &note);
        }
    }

    /// The SHA-256 of the hub's own servers file as it was last read or saved; None when there
    /// was no file. A reload that finds a file read before gone is refused, not taken for
    /// "nothing configured".
    pub fn file_hash(&self) -> Option<[u8; 32]> {
        self.document.lock().on_disk
    }

    /// The SHA-256 of what the hub itself last wrote to its servers file: a reload that finds
    /// exactly that is the hub's own save, not a change to apply.
    pub fn last_saved(&self) -> Option<[u8; 32]> {
        *self.saved.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{shell_server, table};
    use super::*;

    #[test]
    fn stopped_servers_are_added_removed_and_updated_in_the_files_order() {
        let servers = table("reload", vec![shell_server("a"), shell_server("b"), shell_server("c")]);
        let mut a = shell_server("a");
        a.config.description = Some("now described".into());
        let mut c = shell_server("c");
        c.config.args.push("extra".into());
        let changes = servers.reload(vec![shell_server("n"), a, c], Document::empty(Default::default()));
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            changes,
            Changes {
                added: names(&["n"]),
                removed: names(&["b"]),
                // c does not run: its new command line waits for its next start.
                updated: names(&["a", "c"]),
                ..Changes::default()
            }
        );
        let listed: Vec<String> = servers.list().into_iter().map(|s| s.name).collect();
        assert_eq!(listed, ["n", "a", "c"]);
        assert_eq!(servers.get("a").and_then(|s| s.config.description).as_deref(), Some("now described"));
        assert_eq!(changes.summary(), "added n; removed b; updated a, c");
        let again = vec![
            shell_server("n"),
            servers
                .get("a")
                .map(|s| ServerEntry {
                    name: s.name,
                    display_name: s.display_name,
                    config: s.config,
                    origin: "test".into(),
                    problem: None,
                })
                .unwrap(),
        ];
        let changes = servers.reload(again, Document::empty(Default::default()));
        assert_eq!(changes.removed, names(&["c"]));
        servers.shutdown();
    }

    #[test]
    fn what_restarts_a_process() {
        fn check(change: fn(&mut ServerConfig), restarts: bool) {
            let old = ServerConfig { command: Some("a".into()), ..Default::default() };
            let mut new = old.clone();
            change(&mut new);
            assert_eq!(process_changed(&old, &new), restarts);
            assert_eq!(launch_hash(&old) != launch_hash(&new), restarts, "the catalog's key agrees");
        }
        check(|c| c.args.push("x".into()), true);
        check(|c| c.command = Some("b".into()), true);
        check(|c| drop(c.env.insert("K".into(), "v".into())), true);
        check(|c| c.cwd = Some("/".into()), true);
        check(|c| c.url = Some("http://x".into()), true);
        check(|c| drop(c.headers.insert("H".into(), "v".into())), true);
        check(|c| c.request_timeout = Some(std::time::Duration::from_secs(1)), false);
        check(|c| c.description = Some("d".into()), false);
        check(|c| c.auto_start = true, false);
        check(|c| c.max_restarts = 1, false);
        check(|c| c.transport = crate::config::Transport::Http, true);
        check(|c| c.env_file = Some(".env".into()), true);
        check(|c| c.package = Some("p@1".into()), true);
        check(|c| c.enabled = false, false);
    }
}
