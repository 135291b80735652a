//! Starting and stopping servers. `start` waits until the server runs or its launch failed;
//! a launch spawns the child (or reaches the remote server), starts its bridge and does the MCP
//! handshake with no lock held; `stop` escalates from closing stdin to killing the tree.
//! Every change of phase goes through a `phase` transition, its effects fired after unlock.
//!
//! Who asks matters (`phase::By`): a person's stop (`stop`) holds the server stopped until a
//! person's start (`start`, `restart`); a start for use (`start_for_use`: a client, a session,
//! a pipeline, on-demand use) is refused while it is held, and the hub's own stops (reload,
//! removal, shutdown, idle sleep) take no hold.
//!
//! A server's `lifecycle` lock puts its starts, stops and restarts in order: held for the whole
//! of a stop, and for a start until its launch has begun. The handshake runs without it, so a
//! stop (or a later restart) still cuts a slow launch short: the launch that loses is voided and
//! takes its own child down.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::MutexGuard;
use serde_json::{Value, json};

use super::peer::ChildPeer;
use super::phase::{By, Held, Ticket};
use super::{Process, Run, Server, Servers, Snapshot, Status, process, short, snapshot_of};
use crate::config::{Secrets, ServerConfig, Transport};
use crate::error::{Error, Result};
use crate::exchange::modern::{self, Era};
use crate::exchange::{PROTOCOL_VERSION, SUPPORTED_VERSIONS};
use crate::jsonrpc;
use crate::transport::stdio::Bridge;

/// How long a stop waits for a launch it voided to finish.
const VOIDED_LAUNCH_WAIT: Duration = Duration::from_secs(2);

impl Servers {
    /// Starts the supervisor and, in parallel, every enabled `auto_start` server; returns at once.
    /// First, what an earlier hub killed outright left behind is taken down, and the temp files
    /// of its unfinished saves removed.
    pub fn start_background(self: &Arc<Self>) {
        for what in process::reap_stale(&self.ctx.pids) {
            log::warn!("killed what an earlier hub left running: {what}");
        }
        self.remove_stale_saves();
        let me = self.clone();
        self.spawn_thread("supervisor".into(), move || me.supervise());
        // An on-demand server waits for its first use, whatever `auto_start` says.
        let first = Some(self.first_starts.clone());
        self.start_each_background(|config| config.auto_start && !config.on_demand, "auto-start", first);
    }

    /// Starts each server `wanted` says, for use (a server a person holds stopped is skipped);
    /// with `first`, the auto-start servers' first starts are counted there (`/health/ready`).
    fn start_each_background(
        self: &Arc<Self>,
        wanted: impl Fn(&ServerConfig) -> bool,
        what: &'static str,
        first: Option<Arc<std::sync::atomic::AtomicIsize>>,
    ) {
        // A copy: the list's lock is not held while threads start (a `for` over `lock().clone()`
        // would keep the guard to the loop's end).
        let list = self.list.lock().clone();
        let names: Vec<String> = list
            .iter()
            .filter(|srv| {
                let st = srv.state.lock();
                wanted(&st.config)
                    && st.config.enabled
                    && st.problem.is_none()
                    && !st.held
                    && matches!(st.status(), Status::Stopped | Status::Sleeping)
            })
            .map(|srv| srv.name.clone())
            .collect();
        if let Some(first) = &first {
            first.store(names.len() as isize, std::sync::atomic::Ordering::Release);
        }
        self.start_counted(&names, what, first);
    }

    /// A person's start (the API, the dashboard, the CLI): starts a server and waits until it
    /// is RUNNING or its launch failed (bounded by its handshake timeout). Starting a RUNNING
    /// server is a no-op; it clears FAILED, and releases the hold of a person's stop.
    pub fn start(&self, name: &str) -> Result<Snapshot> {
        let srv = self.must_find(name)?;
        let turn = srv.lifecycle.lock();
        self.start_in_turn(&srv, turn, By::Person)
    }

    /// A start on behalf of a client, a session, a pipeline or on-demand use (not a person):
    /// as `start`, but a server a person stopped is refused (`Error::Unavailable` saying so
    /// and how to start it).
    pub fn start_for_use(&self, name: &str) -> Result<Snapshot> {
        let srv = self.must_find(name)?;
        let turn = srv.lifecycle.lock();
        self.start_in_turn(&srv, turn, By::Use)
    }

    /// `start` once it is this start's turn: the launch begins, then the turn passes on.
    fn start_in_turn(&self, srv: &Arc<Server>, turn: MutexGuard<'_, ()>, by: By) -> Result<Snapshot> {
        let name = &srv.name;
        let (attempt, begun) = {
            let mut st = srv.state.lock();
            if let Some(p) = &st.problem {
                return Err(Error::Unavailable(format!("server {name} cannot start: {p}")));
            }
            if !st.config.enabled {
                return Err(Error::Conflict(format!("server {name} is disabled (\"enabled\": false)")));
            }
            match st.may_start(by) {
                Ok(fx) if fx.is_empty() => {}
                Ok(fx) => {
                    drop(st);
                    self.fire(srv, fx);
                    st = srv.state.lock();
                }
                Err(Held) => return Err(held_refusal(name)),
            }
            match st.status() {
                Status::Running => return Ok(snapshot_of(srv, &st)),
                Status::Stopping => return Err(Error::Conflict(format!("server {name} is stopping"))),
                _ if st.is_launching() => {}
                _ => st.fresh_streak(),
            }
            (st.attempts, st.begin_launch())
        };
        let generation = begun.as_ref().map(|(ticket, _)| ticket.generation);
        if let Some((ticket, fx)) = begun {
            self.fire(srv, fx);
            drop(turn);
            self.launch(srv, ticket);
        } else {
            drop(turn);
        }
        let mut st = srv.state.lock();
        let deadline = Instant::now()
            + st.config.handshake_timeout
            + Duration::from_secs(2)
            + super::packages::install_allowance(&st.config);
        while st.attempts == attempt && Instant::now() < deadline {
            srv.changed.wait_until(&mut st, deadline);
        }
        match (&st.last_attempt, st.status()) {
            (_, Status::Running) => Ok(snapshot_of(srv, &st)),
            _ if generation.is_some_and(|g| !st.is_current(g)) => {
                Err(Error::Conflict(format!("server {name} was stopped or restarted while it started")))
            }
            (Some(Err(e)), _) => Err(Error::Upstream(format!("server {name} failed to start: {e}"))),
            _ => Err(Error::Timeout(format!("server {name} did not start in time"))),
        }
    }

    /// Runs a launch `begin_launch` allowed, on the calling thread: spawn, bridge, handshake.
    pub(super) fn launch(&self, srv: &Arc<Server>, ticket: Ticket) {
        let outcome = self.package_ready(srv, &ticket).and_then(|()| self.spawn_and_handshake(srv, &ticket));
        // A remote server that refused the hub (at the handshake, or at a call since) waits for
        // a person's sign-in: AUTH_REQUIRED, no restarts.
        let sign_in = match ticket.config.transport {
            Transport::Http => self.ctx.oauth.sign_in_needed(&srv.name),
            _ => None,
        };
        let outcome = match (sign_in, outcome) {
            (Some(Ok(reason)), outcome) => {
                if let Ok(mut run) = outcome {
                    run.kill(Duration::from_millis(500));
                }
                let fx = srv.state.lock().needs_sign_in(ticket.generation, reason);
                return self.fire(srv, fx);
            }
            (Some(Err(why)), Err(_)) => Err((format!("sign-in required, but {why}"), false)),
            (_, outcome) => outcome,
        };
        let (fx, voided) =
            srv.state.lock().launch_ended(ticket.generation, outcome, (SystemTime::now(), Instant::now()));
        if let Some(mut run) = voided {
            run.kill(Duration::from_millis(500));
        }
        self.fire(srv, fx);
    }

    /// Spawns and initializes a child. `Err((reason, retry))`: `retry` is false when trying again
    /// cannot help (the command does not exist, a variable is missing). The reason, which
    /// becomes `last_error` and goes to the log and the feed, never carries a secret.
    fn spawn_and_handshake(&self, srv: &Server, ticket: &Ticket) -> std::result::Result<Run, (String, bool)> {
        let env = |k: &str| std::env::var(k).ok();
        let secrets = Arc::new(ticket.config.secrets(&env));
        *srv.secrets.lock() = secrets.clone();
        self.connect(srv, ticket, &secrets).map_err(|(why, retry)| (secrets.redact(&why).into_owned(), retry))
    }

    fn connect(
        &self,
        srv: &Server,
        ticket: &Ticket,
        secrets: &Arc<Secrets>,
    ) -> std::result::Result<Run, (String, bool)> {
        let env = |k: &str| std::env::var(k).ok();
        let cfg = ticket.config.expanded(&env).map_err(|why| (why, false))?;
        let peer = || {
            Arc::new(ChildPeer::new(
                &cfg,
                secrets.clone(),
                self.ctx.activity.clone(),
                self.listener.get().cloned(),
                self.router.get().cloned(),
                self.sampler.get().cloned(),
                self.elicitations.clone(),
            ))
        };
        if cfg.transport != Transport::Stdio {
            let url = cfg.url.clone().unwrap_or_default();
            let deadline = Instant::now() + cfg.handshake_timeout;
            let peer: &dyn Fn() -> Arc<ChildPeer> = &peer;
            // A server entry with its own `Authorization` header keeps it; any other signs in.
            let own_header = cfg.headers.keys().any(|k| k.eq_ignore_ascii_case("authorization"));
            let credentials = |u: &crate::transport::http::Upstream| {
                if !own_header {
                    u.set_credentials(self.ctx.oauth.link(&srv.name, &url, cfg.oauth.as_ref()));
                }
            };
            let super::remote::Connected { upstream, init, era } = super::remote::connect(
                &srv.name,
                cfg.transport,
                &url,
                &cfg.headers,
                peer,
                &credentials,
                deadline,
            )
            .map_err(|why| (why, true))?;
            let version = init.get("protocolVersion").and_then(Value::as_str).unwrap_or("");
            log::info!("server {}: protocol {version} ({} era)", srv.name, era.as_str());
            let transport = Arc::new(upstream);
            return Ok(Run {
                process: None,
                transport,
                lost_seen: None,
                stderr_mark: 0,
                initialize: init,
                era,
            });
        }
        // Only this launch's stderr goes into its failure: the ring keeps earlier ones' too.
        let stderr_mark = srv.stderr.lock().mark();
        let (mut process, pipes) = Process::spawn(&srv.name, &cfg, &self.ctx.npm_prefix.join(&srv.name))
            .map_err(|e| (e.to_string(), false))?;
        if let Err(e) = process.record(&self.ctx.pids, &srv.name) {
            log::warn!("server {}: cannot record its process group: {e}", srv.name);
        }
        if !srv.state.lock().spawned(ticket.generation, process.pid() as i32) {
            // A stop came first: nobody would kill this child if it went on.
            process.kill();
            return Err(("stopped while it started".into(), true));
        }
        let bridge =
            Bridge::start(&srv.name, pipes.stdin, pipes.stdout, pipes.stderr, srv.stderr.clone(), peer())
                .map_err(|e| (format!("cannot start the bridge threads: {e}"), true))?;
        // Everything a client might do, so the child offers every tool: each request of the
        // child then goes to a client that can answer it, or gets the answer of one that cannot.
        let capabilities = json!({"roots": {"listChanged": true}, "sampling": {},
            "elicitation": {"form": {}, "url": {}}});
        let params = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": capabilities,
            "clientInfo": {"name": "agenthub", "version": crate::VERSION},
        });
        let fail = |process: &mut Process, bridge: &Bridge, why: String| -> (String, bool) {
            let status = process.kill().map(process::describe);
            bridge.join(Duration::from_millis(500));
            let tail = srv.stderr.lock().tail_since(stderr_mark, 5).join(" | ");
            let mut msg = why;
            if let Some(s) = status {
                msg.push_str(&format!("; {s}"));
            }
            if !tail.is_empty() {
                msg.push_str(&format!("; stderr: {tail}"));
            }
            (msg, true)
        };
        let deadline = Instant::now() + cfg.handshake_timeout;
        let (init, era) = match bridge.call("initialize", Some(params), cfg.handshake_timeout) {
            Ok(init) => (init, Era::Legacy),
            Err(e) if e.code == jsonrpc::REQUEST_TIMEOUT => {
                let why = format!("no answer to initialize within {}s", cfg.handshake_timeout.as_secs_f64());
                return Err(fail(&mut process, &bridge, why));
            }
            Err(e) if e.code == jsonrpc::SERVER_UNAVAILABLE => {
                return Err(fail(&mut process, &bridge, "exited during the handshake".into()));
            }
            // Refused (a 2026-07-28 server answers -32022, unsupported protocol version): it
            // may speak the modern era, which it says to `server/discover` on the same pipe.
            Err(e) => match discover(&srv.name, &bridge, deadline) {
                Ok(init) => (init, Era::Modern),
                Err(why) => {
                    let why = format!("initialize failed: {}{why}", e.message);
                    return Err(fail(&mut process, &bridge, why));
                }
            },
        };
        let version = init.get("protocolVersion").and_then(Value::as_str).unwrap_or("");
        if era == Era::Legacy && !SUPPORTED_VERSIONS.contains(&version) {
            let why = format!("unsupported protocol version \"{version}\"");
            return Err(fail(&mut process, &bridge, why));
        }
        match era {
            Era::Legacy => bridge.notify("notifications/initialized", None),
            Era::Modern => bridge.set_modern(),
        }
        log::info!("server {}: protocol {version} ({} era)", srv.name, era.as_str());
        let transport = Arc::new(bridge);
        Ok(Run { process: Some(process), transport, lost_seen: None, stderr_mark, initialize: init, era })
    }

    /// A person's stop: stdin closed, TERM then KILL to its tree, and the server held stopped
    /// (here and across restarts of the hub) until a person starts it again. Stopping a
    /// STOPPED server holds it; stopping a FAILED one clears it to STOPPED.
    pub fn stop(&self, name: &str) -> Result<Snapshot> {
        let srv = self.must_find(name)?;
        let _turn = srv.lifecycle.lock();
        self.stop_in_turn(&srv, By::Person);
        Ok(srv.snapshot())
    }

    /// The hub's own stop (a reload, a removal, a disabling edit, shutdown): no hold taken.
    pub(super) fn stop_server(&self, srv: &Arc<Server>) {
        let _turn = srv.lifecycle.lock();
        self.stop_in_turn(srv, By::Hub);
    }

    /// A stop, the server's lifecycle lock held: no other stop or start runs meanwhile.
    fn stop_in_turn(&self, srv: &Arc<Server>, by: By) {
        let (fx, teardown) = srv.state.lock().begin_stop(by);
        self.fire(srv, fx);
        let Some(teardown) = teardown else { return };
        self.take_down(srv, teardown);
    }

    /// An idle server put to sleep (the supervisor's `doze` step, on a thread of its own): in
    /// the server's turn, if it is still idle at that moment, stopped as a stop would, ending
    /// SLEEPING. A call that came meanwhile keeps it running.
    pub(super) fn sleep_if_idle(&self, srv: &Arc<Server>) {
        let _turn = srv.lifecycle.lock();
        let begun = {
            let mut st = srv.state.lock();
            let busy = srv.in_flight.load(Ordering::Acquire) > 0;
            st.begin_sleep(Instant::now(), busy, srv.last_call.get())
        };
        let Some((fx, teardown)) = begun else { return };
        self.fire(srv, fx);
        self.take_down(srv, teardown);
    }

    /// The rest of a stop once it has begun: the tree taken down, then STOPPED (or SLEEPING).
    fn take_down(&self, srv: &Arc<Server>, teardown: super::phase::Teardown<Run>) {
        if let Some(pgid) = teardown.launching {
            // A launch in its handshake: it fails at once, and the launch discards it.
            process::kill_group(pgid);
        }
        if let Some(mut run) = teardown.run {
            run.stop();
        }
        let mut st = srv.state.lock();
        // Let a voided launch finish before reporting STOPPED.
        let deadline = Instant::now() + VOIDED_LAUNCH_WAIT;
        while st.stop_waits_for_launch() && Instant::now() < deadline {
            srv.changed.wait_until(&mut st, deadline);
        }
        let fx = st.stopped();
        drop(st);
        self.fire(srv, fx);
    }

    /// A person's restart: a stop and a start in one turn (concurrent restarts take turns, and
    /// each one's stop takes down what the one before started). It releases a hold.
    pub fn restart(&self, name: &str) -> Result<Snapshot> {
        self.restart_by(name, By::Person)
    }

    /// The hub's restart (a reload that changed what the server runs): a server a person
    /// stopped meanwhile stays stopped.
    pub(super) fn restart_for_reload(&self, name: &str) -> Result<Snapshot> {
        self.restart_by(name, By::Hub)
    }

    fn restart_by(&self, name: &str, by: By) -> Result<Snapshot> {
        let srv = self.must_find(name)?;
        let turn = srv.lifecycle.lock();
        if by != By::Person && srv.state.lock().held {
            return Err(held_refusal(name));
        }
        self.stop_in_turn(&srv, By::Hub);
        self.start_in_turn(&srv, turn, by)
    }

    /// Stops every child in parallel (hub shutdown); returns when all are down and every
    /// thread the table started has ended. No thread starts after this begins.
    pub fn shutdown(&self) {
        {
            let _threads = self.threads.lock();
            self.stop.store(true, Ordering::SeqCst);
        }
        let servers = self.list.lock().clone();
        std::thread::scope(|scope| {
            for srv in &servers {
                let busy = matches!(srv.state.lock().status(), Status::Running | Status::Starting);
                if busy {
                    let named = std::thread::Builder::new().name(format!("shutdown-{}", short(&srv.name)));
                    if let Err(e) = named.spawn_scoped(scope, move || self.stop_server(srv)) {
                        log::warn!("cannot start a thread to stop {} ({e}); stopping it here", srv.name);
                        self.stop_server(srv);
                    }
                }
            }
        });
        // Taken out first: a thread being joined may itself ask for the list.
        let threads = std::mem::take(&mut *self.threads.lock());
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Why a start for use is refused: a person stopped the server, and how to start it again.
pub(super) fn held_refusal(name: &str) -> Error {
    Error::Unavailable(format!(
        "server {name} was stopped by a person and stays stopped until started again: \
         POST /servers/{name}/start, or Start on the dashboard"
    ))
}

/// `server/discover` on a child that refused `initialize`: the handshake kept (shaped as an
/// `initialize` result) when it speaks 2026-07-28, else what to add to the refusal.
fn discover(name: &str, bridge: &Bridge, deadline: Instant) -> std::result::Result<Value, String> {
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(500));
    match bridge.call("server/discover", Some(modern::discover_params()), left) {
        Ok(found) => modern::handshake(&found, name).ok_or_else(|| {
            let versions = found.get("supportedVersions").map(Value::to_string).unwrap_or_default();
            format!("; server/discover offers {versions}, not {}", modern::MODERN_VERSION)
        }),
        Err(e) => Err(format!("; server/discover failed too: {}", e.message)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::{OnceLock, Weak};

    use super::super::testing::{shell_server, table};
    use super::*;

    #[test]
    fn a_listener_may_call_back_into_the_table() {
        let servers = table("listener", vec![shell_server("sh")]);
        let me: Arc<OnceLock<Weak<Servers>>> = Arc::new(OnceLock::new());
        let _ = me.set(Arc::downgrade(&servers));
        let (tx, rx) = crossbeam_channel::unbounded();
        servers.set_listener(Arc::new(move |name: &str, _: &Value| {
            // A listener that reads the table while a status change is being announced.
            let status = me.get().and_then(Weak::upgrade).and_then(|s| s.get(name)).map(|s| s.info.status);
            let _ = tx.send(status);
        }));
        let s = servers.clone();
        std::thread::spawn(move || s.start("sh"));
        let seen = rx.recv_timeout(Duration::from_secs(10)).expect("the listener ran (no deadlock)");
        assert_eq!(seen, Some(Status::Running), "the status it announces is already visible");
        servers.shutdown();
    }

    #[test]
    fn the_list_is_not_locked_while_starts_are_handed_out() {
        let servers = table("no-list-lock", vec![shell_server("a"), shell_server("b")]);
        let (free, asked) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicUsize::new(0)));
        let (s, f, n) = (servers.clone(), free.clone(), asked.clone());
        // What is asked of each server runs where a start thread is spawned: the table's list
        // must be free there (a listener or a start may need it).
        servers.start_each_background(
            move |_| {
                n.fetch_add(1, Ordering::SeqCst);
                f.fetch_and(s.list.try_lock().is_some(), Ordering::SeqCst);
                false
            },
            "test",
            None,
        );
        assert_eq!(asked.load(Ordering::SeqCst), 2);
        assert!(free.load(Ordering::SeqCst), "the server list was locked while starts were handed out");
        servers.shutdown();
    }

    #[test]
    fn no_thread_starts_once_shutdown_has_begun() {
        let servers = table("shutdown", Vec::new());
        let (late, ran) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let (s, l) = (servers.clone(), late.clone());
        let r = ran.clone();
        servers.spawn_thread("asks-late".into(), move || {
            // Like a supervisor relaunching a server just as the hub stops.
            while !s.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            s.spawn_thread("late".into(), move || r.store(true, Ordering::SeqCst));
            l.store(true, Ordering::SeqCst);
        });
        let (tx, rx) = crossbeam_channel::bounded(1);
        let s = servers.clone();
        std::thread::spawn(move || {
            s.shutdown();
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(10)).expect("shutdown returned");
        assert!(late.load(Ordering::SeqCst), "the thread asked for another one before ending");
        assert!(!ran.load(Ordering::SeqCst), "no thread started after shutdown began");
    }
}
