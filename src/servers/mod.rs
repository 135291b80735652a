//! The MCP servers the hub fronts. `Servers` is the one table of them: configuration, live
//! state, the child process or remote session. Its jobs live in one file each: `phase` (the
//! lifecycle as data: pure transitions returning effects), `lifecycle` (start, launch,
//! handshake, stop; a person's stop holds a server until a person starts it, while a start for
//! use is refused), `held` (those holds kept in the data dir), `supervisor` (the loop that
//! restarts crashed or hung children and puts idle ones to sleep), `edits`
//! (add, replace, remove, atomic saves), `calls` (whether a server may take a request now; the
//! request itself is an `exchange::Call` over the server's transport), `peer` (answers to a
//! child's own requests), `remote` (a remote server's connection at launch), `process` (spawning and signalling), `installer` (npm), `packages`
//! (npm entries installed once and run as `node <bin>`).
//!
//! Locks: each `Server` has its own mutex (state) and condvar (status changes); the table has
//! one for membership. Neither is held across I/O, a callback or a log line: transitions return
//! effects that `fire` runs after the lock is released. Two locks only put I/O in order:
//! `writes` (configuration changes with their save, so the file on disk always matches memory)
//! and each server's `lifecycle` (its starts, stops and restarts, one at a time).

mod calls;
pub(crate) mod edits;
mod elicitations;
mod held;
pub mod installer;
mod lifecycle;
pub mod packages;
mod peer;
mod phase;
pub mod process;
mod reload;
mod remote;
mod supervisor;
mod uses;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex};
use serde::Serialize;
use serde_json::{Value, json};

use crate::activity::Activity;
use crate::config::{Document, Secrets, ServerConfig, ServerEntry, Transport};
use crate::error::{Error, Result};
use crate::exchange::LastCall;
use crate::exchange::Transport as Carrier;
use crate::exchange::modern::Era;
use crate::resilience::Breakers;
use crate::transport::short;
use crate::transport::stdio::StderrRing;
pub use calls::Acquired;
use phase::{Effect, Effects, Live, State};
use process::Process;
pub use reload::launch_hash;

/// Lifecycle state of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Stopped,
    Starting,
    Running,
    Failed,
    Stopping,
    /// Stopped for want of calls (`idle_timeout`): its next use starts it again.
    Sleeping,
    /// A remote server waits for a person to sign in (OAuth).
    AuthRequired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Stopped => "STOPPED",
            Status::Starting => "STARTING",
            Status::Running => "RUNNING",
            Status::Failed => "FAILED",
            Status::Stopping => "STOPPING",
            Status::Sleeping => "SLEEPING",
            Status::AuthRequired => "AUTH_REQUIRED",
        }
    }
}

/// What is known about a server's process right now.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    pub status: Status,
    pub pid: Option<u32>,
    /// Wall-clock start (for RFC 3339 display) and monotonic start (for uptime).
    pub started_at: Option<(SystemTime, Instant)>,
    pub restart_count: u32,
    pub last_error: Option<String>,
    /// A person stopped it: it stays stopped until a person starts it.
    pub held: bool,
}

impl ProcessInfo {
    pub fn uptime_s(&self, now: Instant) -> Option<f64> {
        match (self.status, self.started_at) {
            (Status::Running, Some((_, at))) => Some(now.saturating_duration_since(at).as_secs_f64()),
            _ => None,
        }
    }
}

/// A server as the API shows it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub name: String,
    /// The name as written in its file (`name` is the safe one derived from it).
    pub display_name: String,
    pub config: ServerConfig,
    pub origin: String,
    pub info: ProcessInfo,
    /// The child's `initialize` result (serverInfo, capabilities, instructions) while running.
    pub initialize: Option<Value>,
    /// The era it speaks while running.
    pub era: Option<Era>,
}

impl Snapshot {
    pub fn transport(&self) -> Transport {
        self.config.transport
    }
}

/// The hub's own notification to listeners when a server starts or stops running.
pub const STATUS_NOTIFICATION: &str = "agenthub/server_status";

/// Called with (server, message) for every notification a child sends, and with
/// `STATUS_NOTIFICATION` when a server starts or stops running.
pub type Listener = Arc<dyn Fn(&str, &Value) + Send + Sync>;

/// Offered (server, request under its relay id) a child's request for a client that no call in
/// flight can take; true when a client session took it (the gateway: a task's owner, the
/// session whose roots changed).
pub type Router = Arc<dyn Fn(&str, &Value) -> bool + Send + Sync>;

/// Takes (server, `sampling/createMessage` under its relay id, the server's `sampling_model`,
/// why no client answers it) for the local model; true when it took it: the answer comes later,
/// through `Servers::answer_child`.
pub type Sampler = Arc<dyn Fn(&str, &Value, Option<&str>, &str) -> bool + Send + Sync>;

/// What the server table needs from the rest of the hub.
pub struct Context {
    /// npm installs go here, one prefix per server (`<data dir>/npm/<server>`).
    pub npm_prefix: PathBuf,
    /// Each running child's process group is recorded here (`<data dir>/pids`).
    pub pids: PathBuf,
    /// npm, one install at a time (the API's installs and the npm entries').
    pub installer: Arc<installer::Installer>,
    /// The servers a person stopped, kept across restarts (`<data dir>/held.json`).
    pub held: PathBuf,
    /// Deadline of a request when the server sets none.
    pub default_timeout: Duration,
    pub breakers: Arc<Breakers>,
    pub activity: Arc<Activity>,
    /// Calls one server may have in flight at once; past it, 503.
    pub max_calls: usize,
    /// Calls all servers together may have in flight at once; past it, 503.
    pub max_calls_total: usize,
    /// How long an elicitation waits for a person when its call is not known (0: none waits).
    pub elicitation_wait: Duration,
    /// Remote servers' sign-ins (`<data dir>/oauth`).
    pub oauth: Arc<crate::oauth::OAuth>,
}

/// A live server: a child over stdio, or a remote one over HTTP.
struct Run {
    /// The child, for a stdio server.
    process: Option<Process>,
    /// How its requests reach it.
    transport: Arc<dyn Carrier>,
    /// When the supervisor first saw the server lost (a child's stdout closed).
    lost_seen: Option<Instant>,
    /// The stderr ring's count of lines when it was launched: its own lines come after.
    stderr_mark: u64,
    initialize: Value,
    era: Era,
}

impl Run {
    fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// Why the server is lost, and for how long the supervisor has seen it so (first at `now`).
    fn lost_for(&mut self, now: Instant) -> Option<(String, Duration)> {
        let why = self.transport.lost()?;
        Some((why, now.saturating_duration_since(*self.lost_seen.get_or_insert(now))))
    }

    /// The leader's exit status once it has exited (never for a remote server).
    fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.process.as_mut()?.try_wait()
    }

    /// Politely: stdin closed, then TERM and KILL to the group; a remote session is ended.
    fn stop(&mut self) {
        self.transport.close();
        if let Some(process) = &mut self.process {
            process.stop(process::TERM_GRACE);
        }
        self.transport.join(Duration::from_millis(500));
    }

    /// At once: the group killed (a crashed or hung child), the callers released.
    fn kill(&mut self, grace: Duration) {
        if let Some(process) = &mut self.process {
            process.kill();
        }
        self.transport.close();
        self.transport.join(grace);
    }
}

impl Live for Run {
    fn pid(&self) -> Option<u32> {
        Run::pid(self)
    }
}

pub struct Server {
    name: String,
    /// The name as written in its file; the key it is saved under.
    display_name: String,
    /// Puts this server's starts, stops and restarts in order (guards no data of its own): a
    /// stop sees every stop and start before it finished, so no launch is overwritten. Taken
    /// before `state`, held across the teardown's I/O, never across a handshake.
    lifecycle: Mutex<()>,
    state: Mutex<State<Run>>,
    changed: Condvar,
    stderr: Arc<Mutex<StderrRing>>,
    /// Calls in flight (bounded by `Context::max_calls`).
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// When its last call ended (the idle clock of `idle_timeout`).
    last_call: Arc<LastCall>,
    /// A `sleep-*` thread is putting it to sleep (the supervisor starts one at a time).
    dozing: AtomicBool,
    /// The secret values of its last launch (env and header values, expanded variables),
    /// redacted from what the hub writes about it.
    secrets: Mutex<Arc<Secrets>>,
}

impl Server {
    fn new(entry: ServerEntry) -> Server {
        Server {
            state: Mutex::new(State::new(&entry, Instant::now())),
            lifecycle: Mutex::new(()),
            name: entry.name,
            display_name: entry.display_name,
            changed: Condvar::new(),
            stderr: Arc::new(Mutex::new(StderrRing::default())),
            in_flight: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            last_call: Arc::default(),
            dozing: AtomicBool::new(false),
            secrets: Mutex::new(Arc::default()),
        }
    }

    fn snapshot(&self) -> Snapshot {
        snapshot_of(self, &self.state.lock())
    }
}

fn snapshot_of(srv: &Server, st: &State<Run>) -> Snapshot {
    Snapshot {
        name: srv.name.clone(),
        display_name: srv.display_name.clone(),
        config: st.config.clone(),
        origin: st.origin.clone(),
        info: st.info(),
        initialize: st.run().map(|r| r.initialize.clone()),
        era: st.run().map(|r| r.era),
    }
}

/// Every configured server, in configuration order.
pub struct Servers {
    ctx: Context,
    list: Mutex<Vec<Arc<Server>>>,
    /// Puts configuration changes in order with their save (guards no data of its own).
    writes: Mutex<()>,
    /// The hub's own servers file.
    file: PathBuf,
    /// That file as last read or saved: what the next save starts from (taken under `writes`).
    document: Mutex<Document>,
    /// Label of the imported read-only file, whose servers are not saved unless changed.
    import_origin: Option<String>,
    /// Set once shutdown begins: no thread is started after that.
    stop: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    listener: std::sync::OnceLock<Listener>,
    /// Calls in flight on all servers (bounded by `Context::max_calls_total`).
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    router: std::sync::OnceLock<Router>,
    sampler: std::sync::OnceLock<Sampler>,
    /// SHA-256 of the servers file as the hub last saved it (`last_saved`).
    saved: Mutex<Option<[u8; 32]>>,
    /// The npm entries' installs.
    packages: Arc<packages::Packages>,
    /// Puts the saves of `held.json` in order (guards no data of its own).
    held_saves: Mutex<()>,
    /// The children's elicitations no client could take, waiting for a person.
    elicitations: Arc<elicitations::Elicitations>,
    /// The auto-start servers' first starts not yet over; -1 before they begin (`ready`).
    first_starts: Arc<std::sync::atomic::AtomicIsize>,
}

impl Servers {
    /// The hub's activity feed (the gateway records its clients there).
    pub fn activity(&self) -> &Activity {
        &self.ctx.activity
    }

    pub fn new(
        entries: Vec<ServerEntry>,
        own: (PathBuf, Document),
        import_origin: Option<String>,
        ctx: Context,
    ) -> Arc<Servers> {
        let (file, document) = own;
        let held = held::load(&ctx.held);
        let list = entries
            .into_iter()
            .map(|e| {
                let srv = Server::new(e);
                srv.state.lock().held = held.contains(&srv.name);
                Arc::new(srv)
            })
            .collect();
        let packages = packages::Packages::new(ctx.installer.clone());
        Arc::new(Servers {
            elicitations: Arc::new(elicitations::Elicitations::new(ctx.elicitation_wait)),
            first_starts: Arc::new(std::sync::atomic::AtomicIsize::new(-1)),
            packages,
            ctx,
            list: Mutex::new(list),
            writes: Mutex::new(()),
            in_flight: Arc::default(),
            file,
            document: Mutex::new(document),
            import_origin,
            stop: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
            listener: std::sync::OnceLock::new(),
            router: std::sync::OnceLock::new(),
            sampler: std::sync::OnceLock::new(),
            saved: Mutex::new(None),
            held_saves: Mutex::new(()),
        })
    }

    /// Starts a thread the table owns (joined at shutdown); refused once shutdown has begun,
    /// so nothing starts a child late.
    fn spawn_thread(&self, name: String, f: impl FnOnce() + Send + 'static) {
        let done = {
            let mut threads = self.threads.lock();
            if self.stop.load(Ordering::SeqCst) {
                log::debug!("not starting thread {name}: shutting down");
                return;
            }
            match std::thread::Builder::new().name(name.clone()).spawn(f) {
                Ok(h) => {
                    // Join the ones that have ended so the list stays short.
                    let (done, running): (Vec<_>, Vec<_>) = threads.drain(..).partition(|t| t.is_finished());
                    *threads = running;
                    threads.push(h);
                    done
                }
                Err(e) => {
                    log::error!("cannot spawn thread {name}: {e}");
                    return;
                }
            }
        };
        for t in done {
            let _ = t.join();
        }
    }

    pub fn list(&self) -> Vec<Snapshot> {
        self.list.lock().iter().map(|s| s.snapshot()).collect()
    }

    pub fn get(&self, name: &str) -> Option<Snapshot> {
        self.find(name).map(|s| s.snapshot())
    }

    /// Whether a server of that name is configured (no snapshot made).
    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// One part of a running server's handshake (a JSON pointer into its `initialize` result),
    /// read in place: what a request needs of it, without a whole snapshot.
    pub fn handshake_part(&self, name: &str, pointer: &str) -> Option<Value> {
        let srv = self.find(name)?;
        let st = srv.state.lock();
        st.run().and_then(|r| r.initialize.pointer(pointer).cloned())
    }

    pub fn len(&self) -> usize {
        self.list.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.lock().is_empty()
    }

    fn find(&self, name: &str) -> Option<Arc<Server>> {
        self.list.lock().iter().find(|s| s.name == name).cloned()
    }

    fn must_find(&self, name: &str) -> Result<Arc<Server>> {
        self.find(name).ok_or_else(|| Error::NotFound(format!("no server named \"{name}\"")))
    }

    /// The last `n` lines the server wrote to stderr.
    pub fn logs(&self, name: &str, n: usize) -> Result<Vec<String>> {
        Ok(self.must_find(name)?.stderr.lock().tail(n))
    }

    /// `text` about a server with the secrets of its last launch taken out (what a child
    /// answered, before it is logged).
    pub fn redact(&self, name: &str, text: &str) -> String {
        let secrets = self.find(name).map(|s| s.secrets.lock().clone());
        secrets.map_or_else(|| text.to_string(), |s| s.redact(text).into_owned())
    }

    /// Receives every notification a child sends (after the hub's own handling).
    pub fn set_listener(&self, listener: Listener) {
        let _ = self.listener.set(listener);
    }

    /// Receives the children's requests for clients that no call in flight can take.
    pub fn set_router(&self, router: Router) {
        let _ = self.router.set(router);
    }

    /// Answers the children's sampling with the local model, as their `sampling` policy says.
    pub fn set_sampler(&self, sampler: Sampler) {
        let _ = self.sampler.set(sampler);
    }

    /// Does what a transition asked for. Called with the server's lock released: logging, the
    /// activity feed and the listeners may take their own locks, or call back into the table.
    fn fire(&self, srv: &Server, effects: Effects) {
        for effect in effects {
            match effect {
                Effect::Status { from, to, why } => {
                    let why = if why.is_empty() { String::new() } else { format!(": {why}") };
                    // FAILED is for someone to look at; every other change is the lifecycle.
                    let level = if to == Status::Failed { log::Level::Warn } else { log::Level::Info };
                    log::log!(level, "server {}: {} -> {}{why}", srv.name, from.as_str(), to.as_str());
                    self.ctx.activity.record("server", Some(&srv.name), format!("{}{why}", to.as_str()));
                    if from == Status::Running && to != Status::Running {
                        self.elicitations_gone(&srv.name);
                    }
                    if (from == Status::Running) != (to == Status::Running) {
                        // What the server offers appears or goes: listeners (the aggregated view) hear of it.
                        if let Some(l) = self.listener.get() {
                            let note = json!({"jsonrpc": "2.0", "method": STATUS_NOTIFICATION, "params": {"status": to}});
                            l(&srv.name, &note);
                        }
                    }
                }
                Effect::Restarting { reason, count, max, delay } => {
                    crate::metrics::global().server_restart(&srv.name);
                    log::warn!(
                        "server {}: {reason}; restart {count} of {max} in {:.1}s",
                        srv.name,
                        delay.as_secs_f64()
                    )
                }
                Effect::FreshBreaker => self.ctx.breakers.remove(&srv.name),
                Effect::Stable => log::info!("server {}: stable; restart count reset", srv.name),
                Effect::Held(on) => {
                    let what =
                        if on { "stopped by a person: held until started again" } else { "hold released" };
                    log::info!("server {}: {what}", srv.name);
                    self.ctx.activity.record("server", Some(&srv.name), what.to_string());
                    self.save_held();
                }
            }
        }
        srv.changed.notify_all();
    }
}

#[cfg(test)]
pub(super) mod testing {
    use super::*;
    use crate::resilience::BreakerConfig;

    /// A table over `entries`, saving to a fresh file under the temp dir.
    pub fn table(tag: &str, entries: Vec<ServerEntry>) -> Arc<Servers> {
        let dir = std::env::temp_dir().join(format!("agenthub-unit-{tag}-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        Servers::new(
            entries,
            (dir.join("mcp-servers.json"), Document::empty(Default::default())),
            None,
            Context {
                npm_prefix: dir.join("npm"),
                pids: dir.join("pids"),
                installer: Arc::new(installer::Installer::new(dir.join("npm"), dir.join("pids"))),
                held: dir.join("held.json"),
                default_timeout: Duration::from_secs(5),
                max_calls: 64,
                max_calls_total: 256,
                elicitation_wait: Duration::from_secs(120),
                breakers: Arc::new(Breakers::new(BreakerConfig::default())),
                activity: Arc::new(Activity::default()),
                oauth: Arc::new(crate::oauth::OAuth::new(dir.join("oauth"))),
            },
        )
    }

    /// A stdio server that is a shell: it answers `initialize` (the bridge's first id is 1),
    /// then reads until its stdin closes.
    pub fn shell_server(name: &str) -> ServerEntry {
        let init = r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"sh","version":"0"}}}"#;
        let script = format!("read line; printf '%s\\n' '{init}'; exec cat >/dev/null");
        ServerEntry {
            name: name.into(),
            display_name: name.into(),
            config: ServerConfig {
                command: Some("sh".into()),
                args: vec!["-c".into(), script],
                health_check_interval: Duration::ZERO,
                ..Default::default()
            },
            origin: "test".into(),
            problem: None,
        }
    }

    /// Waits until a thread of this process named `name` is asleep (blocked on a lock).
    pub fn wait_blocked(name: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let blocked = std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten().any(|t| {
                let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                let state =
                    stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_string));
                comm.trim() == name && state.as_deref() == Some("S")
            });
            if blocked {
                return;
            }
            assert!(Instant::now() < deadline, "thread {name} never blocked");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
