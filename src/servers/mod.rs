//! The MCP servers the hub fronts. `Servers` is the one table of them: configuration, live
//! state, the child process and its bridge; lifecycle (start, stop, restart) and calls; the
//! supervisor thread that restarts crashed or hung children; atomic saves of the hub's own file.
//!
//! Locks: each `Server` has its own mutex (state) and condvar (status changes); the table has
//! one for membership. Neither is held across I/O. `writes` serializes configuration changes
//! with their save, so the file on disk always matches memory; readers never take it.

pub mod bridge;
pub mod call;
pub mod installer;
pub mod process;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex};
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{self, ServerConfig, ServerEntry, Transport};
use crate::dashboard::Activity;
use crate::error::{Error, Result};
use crate::jsonrpc::{self, RpcError};
use crate::resilience::{Backoff, Breakers};
use bridge::{Bridge, Peer, Pending, StderrRing};
use call::Lease;
pub use call::{Call, Request, Step};
use process::Process;
use upstream::Upstream;

/// Protocol version the hub asks children for, and the ones it accepts back.
pub const PROTOCOL_VERSION: &str = "2025-11-25";
pub const SUPPORTED_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// Running this long without a crash resets `restart_count` and the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// How often the supervisor looks at every child.
const TICK: Duration = Duration::from_millis(100);
/// Longest a health-check ping may go unanswered.
const PING_DEADLINE: Duration = Duration::from_secs(10);

/// Lifecycle state of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Stopped,
    Starting,
    Running,
    Failed,
    Stopping,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Stopped => "STOPPED",
            Status::Starting => "STARTING",
            Status::Running => "RUNNING",
            Status::Failed => "FAILED",
            Status::Stopping => "STOPPING",
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
    pub config: ServerConfig,
    pub origin: String,
    pub info: ProcessInfo,
    /// The child's `initialize` result (serverInfo, capabilities, instructions) while running.
    pub initialize: Option<Value>,
}

impl Snapshot {
    pub fn transport(&self) -> Transport {
        self.config.transport
    }
}

/// What `try_acquire` found.
pub enum Acquired {
    Ready(Call),
    /// The server is starting: the request is given back, to be sent with `acquire` from a
    /// thread that may wait.
    Starting(Request),
}

/// The hub's own notification to listeners when a server starts or stops running.
pub const STATUS_NOTIFICATION: &str = "agenthub/server_status";

/// Called with (server, message) for every notification a child sends, and with
/// `STATUS_NOTIFICATION` when a server starts or stops running.
pub type Listener = Arc<dyn Fn(&str, &Value) + Send + Sync>;

/// What the server table needs from the rest of the hub.
pub struct Context {
    /// npm installs go here (`<data dir>/npm`).
    pub npm_prefix: PathBuf,
    /// Deadline of a request when the server sets none.
    pub default_timeout: Duration,
    pub breakers: Arc<Breakers>,
    pub activity: Arc<Activity>,
}

/// A live server: a child over stdio, or a remote one over HTTP.
struct Run {
    link: Link,
    initialize: Value,
}

enum Link {
    Stdio { process: Process, bridge: Arc<Bridge> },
    Http(Arc<Upstream>),
}

/// How a request reaches a server.
#[derive(Clone)]
pub enum Channel {
    Stdio(Arc<Bridge>),
    Http(Arc<Upstream>),
}

impl Run {
    fn pid(&self) -> Option<u32> {
        match &self.link {
            Link::Stdio { process, .. } => Some(process.pid()),
            Link::Http(_) => None,
        }
    }

    fn channel(&self) -> Channel {
        match &self.link {
            Link::Stdio { bridge, .. } => Channel::Stdio(bridge.clone()),
            Link::Http(u) => Channel::Http(u.clone()),
        }
    }

    fn bridge(&self) -> Option<&Arc<Bridge>> {
        match &self.link {
            Link::Stdio { bridge, .. } => Some(bridge),
            Link::Http(_) => None,
        }
    }

    /// The leader's exit status once it has exited (never for a remote server).
    fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        match &mut self.link {
            Link::Stdio { process, .. } => process.try_wait(),
            Link::Http(_) => None,
        }
    }

    /// Politely: stdin closed, then TERM and KILL to the group; a remote session is ended.
    fn stop(&mut self) {
        match &mut self.link {
            Link::Stdio { process, bridge } => {
                bridge.close_stdin();
                process.stop(process::TERM_GRACE);
                bridge.join(Duration::from_millis(500));
            }
            Link::Http(u) => u.close(),
        }
    }

    /// At once: the group killed (a crashed or hung child), the callers released.
    fn kill(&mut self, grace: Duration) {
        match &mut self.link {
            Link::Stdio { process, bridge } => {
                process.kill();
                bridge.join(grace);
            }
            Link::Http(u) => u.close(),
        }
    }
}

struct State {
    config: ServerConfig,
    origin: String,
    problem: Option<String>,
    info: ProcessInfo,
    run: Option<Run>,
    backoff: Backoff,
    /// A restart is due at this time.
    restart_at: Option<Instant>,
    /// A launch is under way; its child's group, once spawned, so a stop can kill it.
    launching: bool,
    launch_pgid: Option<i32>,
    /// Finished launch attempts and how the last one ended.
    attempts: u64,
    last_attempt: Option<std::result::Result<(), String>>,
    /// Bumped by stop and remove: a launch begun under an older generation is discarded.
    generation: u64,
    ping: Option<(Pending, Instant)>,
    last_ping: Instant,
    removed: bool,
}

pub struct Server {
    name: String,
    state: Mutex<State>,
    changed: Condvar,
    stderr: Arc<Mutex<StderrRing>>,
}

impl Server {
    fn new(entry: ServerEntry) -> Server {
        let (status, last_error) = match &entry.problem {
            Some(p) => (Status::Failed, Some(p.clone())),
            None => (Status::Stopped, None),
        };
        let backoff = Backoff::new(entry.config.restart_backoff, entry.config.restart_backoff_max);
        Server {
            name: entry.name,
            state: Mutex::new(State {
                info: ProcessInfo { status, pid: None, started_at: None, restart_count: 0, last_error },
                config: entry.config,
                origin: entry.origin,
                problem: entry.problem,
                run: None,
                backoff,
                restart_at: None,
                launching: false,
                launch_pgid: None,
                attempts: 0,
                last_attempt: None,
                generation: 0,
                ping: None,
                last_ping: Instant::now(),
                removed: false,
            }),
            changed: Condvar::new(),
            stderr: Arc::new(Mutex::new(StderrRing::default())),
        }
    }

    fn snapshot(&self) -> Snapshot {
        let st = self.state.lock();
        Snapshot {
            name: self.name.clone(),
            config: st.config.clone(),
            origin: st.origin.clone(),
            info: st.info.clone(),
            initialize: st.run.as_ref().map(|r| r.initialize.clone()),
        }
    }
}

/// Every configured server, in configuration order.
pub struct Servers {
    ctx: Context,
    list: Mutex<Vec<Arc<Server>>>,
    /// Serializes configuration changes together with their save.
    writes: Mutex<()>,
    /// The hub's own servers file.
    file: PathBuf,
    /// Label of the imported read-only file, whose servers are not saved unless changed.
    import_origin: Option<String>,
    stop: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    listener: std::sync::OnceLock<Listener>,
}

impl Servers {
    pub fn new(
        entries: Vec<ServerEntry>,
        file: PathBuf,
        import_origin: Option<String>,
        ctx: Context,
    ) -> Arc<Servers> {
        let list = entries.into_iter().map(|e| Arc::new(Server::new(e))).collect();
        Arc::new(Servers {
            ctx,
            list: Mutex::new(list),
            writes: Mutex::new(()),
            file,
            import_origin,
            stop: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
            listener: std::sync::OnceLock::new(),
        })
    }

    /// Starts the supervisor and, in parallel, every enabled `auto_start` server; returns at once.
    pub fn start_background(self: &Arc<Self>) {
        let me = self.clone();
        self.spawn_thread("supervisor".into(), move || me.supervise());
        for srv in self.list.lock().clone() {
            let auto = {
                let st = srv.state.lock();
                st.config.auto_start && st.config.enabled && st.problem.is_none()
            };
            if auto {
                let me = self.clone();
                self.spawn_thread(format!("start-{}", bridge_short(&srv.name)), move || {
                    if let Err(e) = me.start(&srv.name) {
                        log::warn!("auto-start of {} failed: {e}", srv.name);
                    }
                });
            }
        }
    }

    fn spawn_thread(&self, name: String, f: impl FnOnce() + Send + 'static) {
        match std::thread::Builder::new().name(name.clone()).spawn(f) {
            Ok(h) => {
                let mut threads = self.threads.lock();
                // Join the ones that have ended so the list stays short.
                let (done, running): (Vec<_>, Vec<_>) = threads.drain(..).partition(|t| t.is_finished());
                *threads = running;
                threads.push(h);
                drop(threads);
                for t in done {
                    let _ = t.join();
                }
            }
            Err(e) => log::error!("cannot spawn thread {name}: {e}"),
        }
    }

    pub fn list(&self) -> Vec<Snapshot> {
        self.list.lock().iter().map(|s| s.snapshot()).collect()
    }

    pub fn get(&self, name: &str) -> Option<Snapshot> {
        self.find(name).map(|s| s.snapshot())
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

    fn set_status(&self, srv: &Server, st: &mut State, status: Status, why: &str) {
        if (st.info.status == Status::Running) != (status == Status::Running) {
            // What the server offers appears or goes: listeners (the aggregated view) hear of it.
            if let Some(l) = self.listener.get() {
                l(
                    &srv.name,
                    &json!({"jsonrpc": "2.0", "method": STATUS_NOTIFICATION, "params": {"status": status}}),
                );
            }
        }
        if st.info.status != status {
            log::info!(
                "server {}: {} -> {}{}",
                srv.name,
                st.info.status.as_str(),
                status.as_str(),
                if why.is_empty() { String::new() } else { format!(" ({why})") }
            );
            self.ctx.activity.record(
                "server",
                Some(&srv.name),
                format!(
                    "{}{}",
                    status.as_str(),
                    if why.is_empty() { String::new() } else { format!(": {why}") }
                ),
            );
            st.info.status = status;
        }
        srv.changed.notify_all();
    }

    // -----------------------------------------------------------------------------------------
    // Lifecycle

    /// Starts a server and waits until it is RUNNING or its launch failed (bounded by its
    /// handshake timeout). Starting a RUNNING server is a no-op; a manual start clears FAILED.
    pub fn start(&self, name: &str) -> Result<Snapshot> {
        let srv = self.must_find(name)?;
        let attempt = {
            let mut st = srv.state.lock();
            if let Some(p) = &st.problem {
                return Err(Error::Unavailable(format!("server {name} cannot start: {p}")));
            }
            if !st.config.enabled {
                return Err(Error::Conflict(format!("server {name} is disabled (\"enabled\": false)")));
            }
            match st.info.status {
                Status::Running => return Ok(srv_snapshot(&srv, &st)),
                Status::Stopping => return Err(Error::Conflict(format!("server {name} is stopping"))),
                Status::Starting if st.launching => {}
                _ => {
                    // A manual start begins a fresh streak.
                    st.info.restart_count = 0;
                    st.backoff.reset();
                    st.restart_at = None;
                }
            }
            st.attempts
        };
        self.launch(&srv);
        let mut st = srv.state.lock();
        let deadline = Instant::now() + st.config.handshake_timeout + Duration::from_secs(2);
        while st.attempts == attempt && Instant::now() < deadline {
            srv.changed.wait_until(&mut st, deadline);
        }
        match (&st.last_attempt, st.info.status) {
            (_, Status::Running) => Ok(srv_snapshot(&srv, &st)),
            (Some(Err(e)), _) => Err(Error::Upstream(format!("server {name} failed to start: {e}"))),
            _ => Err(Error::Timeout(format!("server {name} did not start in time"))),
        }
    }

    /// One launch: spawn, bridge, handshake. Runs on the caller's thread; a launch already under
    /// way makes this a no-op.
    fn launch(&self, srv: &Arc<Server>) {
        let (cfg, gen) = {
            let mut st = srv.state.lock();
            if st.launching || st.removed || st.info.status == Status::Running {
                return;
            }
            st.launching = true;
            st.restart_at = None;
            self.set_status(srv, &mut st, Status::Starting, "");
            (st.config.clone(), st.generation)
        };
        let outcome = self.spawn_and_handshake(srv, &cfg);
        let mut st = srv.state.lock();
        st.launching = false;
        st.launch_pgid = None;
        st.attempts += 1;
        let stale = st.generation != gen || st.removed;
        match outcome {
            Ok(run) if !stale => {
                st.info.pid = run.pid();
                st.info.started_at = Some((SystemTime::now(), Instant::now()));
                st.info.last_error = None;
                st.last_attempt = Some(Ok(()));
                st.last_ping = Instant::now();
                st.ping = None;
                st.run = Some(run);
                // A fresh child starts with a closed breaker: failures of the last one were its own.
                self.ctx.breakers.remove(&srv.name);
                self.set_status(srv, &mut st, Status::Running, "");
            }
            Ok(mut run) => {
                drop(st);
                run.kill(Duration::from_millis(500));
                srv.changed.notify_all();
            }
            Err((e, retry)) => {
                st.last_attempt = Some(Err(e.clone()));
                if stale {
                    srv.changed.notify_all();
                } else if retry {
                    self.after_failure(srv, &mut st, e);
                } else {
                    st.info.last_error = Some(e.clone());
                    self.set_status(srv, &mut st, Status::Failed, &e);
                }
            }
        }
    }

    /// Spawns and initializes a child. `Err((reason, retry))`: `retry` is false when trying again
    /// cannot help (the command does not exist, a variable is missing).
    fn spawn_and_handshake(
        &self,
        srv: &Server,
        cfg: &ServerConfig,
    ) -> std::result::Result<Run, (String, bool)> {
        let env = |k: &str| std::env::var(k).ok();
        let cfg = cfg.expanded(&env).map_err(|var| (format!("missing environment variable {var}"), false))?;
        if cfg.transport == Transport::Http {
            let url = cfg.url.clone().unwrap_or_default();
            let upstream = Arc::new(Upstream::new(&srv.name, &url, cfg.headers.clone()));
            let init = upstream.initialize(cfg.handshake_timeout).map_err(|e| (e.message, true))?;
            return Ok(Run { link: Link::Http(upstream), initialize: init });
        }
        let (mut process, pipes) =
            Process::spawn(&srv.name, &cfg, &self.ctx.npm_prefix).map_err(|e| (e.to_string(), false))?;
        srv.state.lock().launch_pgid = Some(process.pid() as i32);
        let peer = Arc::new(ChildPeer {
            roots: cfg.roots.clone(),
            activity: self.ctx.activity.clone(),
            listener: self.listener.get().cloned(),
        });
        let bridge =
            Bridge::start(&srv.name, pipes.stdin, pipes.stdout, pipes.stderr, srv.stderr.clone(), peer)
                .map_err(|e| (format!("cannot start the bridge threads: {e}"), true))?;
        let mut capabilities = json!({"sampling": {}, "elicitation": {}});
        if !cfg.roots.is_empty() {
            capabilities["roots"] = json!({"listChanged": false});
        }
        let params = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": capabilities,
            "clientInfo": {"name": "agenthub", "version": crate::VERSION},
        });
        let fail = |process: &mut Process, bridge: &Bridge, why: String| -> (String, bool) {
            let status = process.kill().map(process::describe);
            bridge.join(Duration::from_millis(500));
            let tail = srv.stderr.lock().tail(5).join(" | ");
            let mut msg = why;
            if let Some(s) = status {
                msg.push_str(&format!("; {s}"));
            }
            if !tail.is_empty() {
                msg.push_str(&format!("; stderr: {tail}"));
            }
            (msg, true)
        };
        let init = match bridge.call("initialize", Some(params), cfg.handshake_timeout) {
            Ok(init) => init,
            Err(e) if e.code == jsonrpc::REQUEST_TIMEOUT => {
                let why = format!("no answer to initialize within {}s", cfg.handshake_timeout.as_secs_f64());
                return Err(fail(&mut process, &bridge, why));
            }
            Err(e) if e.code == jsonrpc::SERVER_UNAVAILABLE => {
                return Err(fail(&mut process, &bridge, "exited during the handshake".into()));
            }
            Err(e) => return Err(fail(&mut process, &bridge, format!("initialize failed: {}", e.message))),
        };
        let version = init.get("protocolVersion").and_then(Value::as_str).unwrap_or("");
        if !SUPPORTED_VERSIONS.contains(&version) {
            let why = format!("unsupported protocol version \"{version}\"");
            return Err(fail(&mut process, &bridge, why));
        }
        bridge.notify("notifications/initialized", None);
        Ok(Run { link: Link::Stdio { process, bridge: Arc::new(bridge) }, initialize: init })
    }

    /// After a crash, a hung child or a failed launch: schedule a restart within policy, else
    /// FAILED. `restart_count` counts the restarts of the current streak.
    fn after_failure(&self, srv: &Server, st: &mut State, reason: String) {
        st.info.last_error = Some(reason.clone());
        st.info.pid = None;
        st.info.started_at = None;
        st.ping = None;
        if st.config.restart_on_failure && st.info.restart_count < st.config.max_restarts {
            st.info.restart_count += 1;
            let delay = st.backoff.next_delay();
            st.restart_at = Some(Instant::now() + delay);
            log::warn!(
                "server {}: {reason}; restart {} of {} in {:.1}s",
                srv.name,
                st.info.restart_count,
                st.config.max_restarts,
                delay.as_secs_f64()
            );
            self.set_status(srv, st, Status::Starting, &format!("{reason}; restarting"));
        } else {
            st.restart_at = None;
            self.set_status(srv, st, Status::Failed, &reason);
        }
    }

    /// Stops a server: stdin closed, TERM then KILL to its group. Stopping a STOPPED server is
    /// a no-op; stopping a FAILED one clears it to STOPPED.
    pub fn stop(&self, name: &str) -> Result<Snapshot> {
        let srv = self.must_find(name)?;
        self.stop_server(&srv);
        Ok(srv.snapshot())
    }

    fn stop_server(&self, srv: &Arc<Server>) {
        let (run, launch_pgid) = {
            let mut st = srv.state.lock();
            st.generation += 1;
            st.restart_at = None;
            st.ping = None;
            if st.info.status == Status::Stopped && !st.launching {
                return;
            }
            self.set_status(srv, &mut st, Status::Stopping, "");
            (st.run.take(), st.launch_pgid.take())
        };
        if let Some(pgid) = launch_pgid {
            // A launch in progress: its handshake fails at once and the launch discards it.
            process::kill_group(pgid);
        }
        if let Some(mut run) = run {
            run.stop();
        }
        let mut st = srv.state.lock();
        // Let a discarded launch finish before reporting STOPPED.
        let deadline = Instant::now() + Duration::from_secs(2);
        while st.launching && Instant::now() < deadline {
            srv.changed.wait_until(&mut st, deadline);
        }
        st.info.pid = None;
        st.info.started_at = None;
        if st.problem.is_none() {
            st.info.last_error = None;
        }
        let status = if st.problem.is_some() { Status::Failed } else { Status::Stopped };
        self.set_status(srv, &mut st, status, "");
    }

    pub fn restart(&self, name: &str) -> Result<Snapshot> {
        let srv = self.must_find(name)?;
        self.stop_server(&srv);
        self.start(name)
    }

    /// Stops every child in parallel (hub shutdown); returns when all are down.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let servers = self.list.lock().clone();
        std::thread::scope(|scope| {
            for srv in &servers {
                let busy = {
                    let st = srv.state.lock();
                    st.run.is_some() || st.launching || st.restart_at.is_some()
                };
                if busy {
                    scope.spawn(move || self.stop_server(srv));
                }
            }
        });
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
    }

    // -----------------------------------------------------------------------------------------
    // Calls

    /// Sends `method` to a server and waits for its result. A STARTING server is waited for
    /// (within the deadline); a STOPPED or FAILED one is refused, as is one whose breaker is
    /// open (as -32000 errors). Blocks: never on a worker.
    pub fn call(
        &self,
        name: &str,
        method: &str,
        params: Option<Value>,
    ) -> std::result::Result<Value, RpcError> {
        match self.acquire(name, Request::own(method, params)) {
            Ok(call) => call.wait(),
            Err(e) => Err(RpcError::new(jsonrpc::SERVER_UNAVAILABLE, e.to_string())),
        }
    }

    /// Sends a request to a running server. A STARTING server is waited for, up to the
    /// request's deadline (so never on a worker); STOPPED, FAILED or an open breaker refuse.
    pub fn acquire(&self, name: &str, request: Request) -> Result<Call> {
        match self.open_call(name, request, true)? {
            Acquired::Ready(call) => Ok(call),
            Acquired::Starting(_) => Err(Error::Timeout(format!("server {name} is still starting"))),
        }
    }

    /// As `acquire`, but a STARTING server gives the request back at once instead of waiting.
    pub fn try_acquire(&self, name: &str, request: Request) -> Result<Acquired> {
        self.open_call(name, request, false)
    }

    fn open_call(&self, name: &str, request: Request, wait: bool) -> Result<Acquired> {
        let srv = self.must_find(name)?;
        let started = Instant::now();
        let (channel, timeout) = {
            let mut st = srv.state.lock();
            let timeout = st.config.request_timeout.unwrap_or(self.ctx.default_timeout);
            let deadline = started + timeout;
            while wait && st.info.status == Status::Starting && Instant::now() < deadline {
                srv.changed.wait_until(&mut st, deadline);
            }
            match (st.info.status, &st.run) {
                (Status::Running, Some(run)) => (run.channel(), timeout),
                (Status::Starting, _) if !wait => return Ok(Acquired::Starting(request)),
                (Status::Starting, _) => {
                    return Err(Error::Timeout(format!("server {name} is still starting")))
                }
                (status, _) => {
                    let why = st.info.last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
                    return Err(Error::Unavailable(format!("server {name} is {}{why}", status.as_str())));
                }
            }
        };
        let breakers = &self.ctx.breakers;
        if !breakers.allow(name, Instant::now()) {
            let snap = breakers.snapshot(name, Instant::now());
            return Err(Error::CircuitOpen(format!(
                "circuit breaker for {name} is {}; retry in {:.0}s",
                snap.state.as_str(),
                snap.retry_after_s.unwrap_or(0.0).ceil()
            )));
        }
        let lease = Lease {
            server: name.to_string(),
            breakers: breakers.clone(),
            deadline: started + timeout,
            timeout,
        };
        Ok(Acquired::Ready(match channel {
            Channel::Stdio(bridge) => Call::stdio(lease, bridge, request),
            Channel::Http(upstream) => Call::http(lease, upstream, request),
        }))
    }

    /// Tells a server to stop working on a request (a client's cancellation), by the hub id it
    /// saw. A remote server is told over HTTP: call this off the worker.
    pub fn cancel(&self, name: &str, hub_id: &Value, reason: &Value) {
        let channel = self.find(name).and_then(|srv| srv.state.lock().run.as_ref().map(Run::channel));
        let params = json!({"requestId": hub_id, "reason": reason});
        match channel {
            Some(Channel::Stdio(b)) => b.notify("notifications/cancelled", Some(params)),
            Some(Channel::Http(u)) => u.cancel(hub_id, reason.as_str().unwrap_or("cancelled by the client")),
            None => {}
        }
    }

    /// Whether a server is remote (its calls always block on the network).
    pub fn is_remote(&self, name: &str) -> bool {
        self.find(name).is_some_and(|s| s.state.lock().config.transport == Transport::Http)
    }

    /// Hands a client's answer to a request the child sent it (sampling, elicitation) back to
    /// the child; false when no such request is waiting.
    pub fn answer_child(&self, name: &str, relay_id: &str, answer: &Value) -> bool {
        let bridge =
            self.find(name).and_then(|srv| srv.state.lock().run.as_ref().and_then(|r| r.bridge().cloned()));
        bridge.is_some_and(|b| b.answer_child(relay_id, answer))
    }

    /// Receives every notification a child sends (after the hub's own handling).
    pub fn set_listener(&self, listener: Listener) {
        let _ = self.listener.set(listener);
    }

    // -----------------------------------------------------------------------------------------
    // Configuration changes

    /// Adds a server and saves; 409 when the name is taken.
    pub fn add(&self, name: &str, config: ServerConfig) -> Result<Snapshot> {
        config::validate_server_name(name).map_err(Error::BadRequest)?;
        let _w = self.writes.lock();
        if self.find(name).is_some() {
            return Err(Error::Conflict(format!("a server named \"{name}\" already exists")));
        }
        let srv = Arc::new(Server::new(ServerEntry {
            name: name.to_string(),
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

    /// Replaces a server's configuration and saves; a running server restarts with it.
    pub fn replace(&self, name: &str, config: ServerConfig) -> Result<Snapshot> {
        let srv = self.must_find(name)?;
        let was_running = {
            let _w = self.writes.lock();
            let (old, old_origin, old_problem) = {
                let mut st = srv.state.lock();
                let old = std::mem::replace(&mut st.config, config);
                let origin = std::mem::replace(&mut st.origin, self.file.display().to_string());
                let problem = st.problem.take();
                st.backoff = Backoff::new(st.config.restart_backoff, st.config.restart_backoff_max);
                (old, origin, problem)
            };
            if let Err(e) = self.save() {
                let mut st = srv.state.lock();
                st.config = old;
                st.origin = old_origin;
                st.problem = old_problem;
                return Err(e);
            }
            let mut st = srv.state.lock();
            if st.info.status == Status::Failed && st.run.is_none() {
                self.set_status(&srv, &mut st, Status::Stopped, "configuration replaced");
            }
            matches!(st.info.status, Status::Running | Status::Starting)
        };
        self.ctx.activity.record("config", Some(name), "replaced");
        if was_running {
            return self.restart(name);
        }
        Ok(srv.snapshot())
    }

    /// Stops and removes a server, and saves.
    pub fn remove(&self, name: &str) -> Result<()> {
        let _w = self.writes.lock();
        let srv = self.must_find(name)?;
        srv.state.lock().removed = true;
        self.stop_server(&srv);
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
        self.ctx.breakers.remove(name);
        self.ctx.activity.record("config", Some(name), "removed");
        Ok(())
    }

    /// Writes the hub's own file atomically: every server except those only imported.
    fn save(&self) -> Result<()> {
        let servers: Vec<(String, ServerConfig)> = self
            .list
            .lock()
            .iter()
            .filter_map(|s| {
                let st = s.state.lock();
                let imported = self.import_origin.as_deref() == Some(st.origin.as_str());
                (!imported).then(|| (s.name.clone(), st.config.clone()))
            })
            .collect();
        let doc = config::servers_to_json(servers.iter().map(|(n, c)| (n.as_str(), c)));
        let mut text = serde_json::to_string_pretty(&doc).map_err(|e| Error::Internal(e.to_string()))?;
        text.push('\n');
        write_atomically(&self.file, text.as_bytes())?;
        let label = self.file.display().to_string();
        for s in self.list.lock().iter() {
            let mut st = s.state.lock();
            if self.import_origin.as_deref() != Some(st.origin.as_str()) {
                st.origin.clone_from(&label);
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Supervision

    /// The supervisor's main loop: every tick, look at each server once.
    fn supervise(self: &Arc<Self>) {
        while !self.stop.load(Ordering::SeqCst) {
            let servers = self.list.lock().clone();
            for srv in servers {
                if self.stop.load(Ordering::SeqCst) {
                    break;
                }
                self.check(&srv);
            }
            std::thread::sleep(TICK);
        }
    }

    fn check(self: &Arc<Self>, srv: &Arc<Server>) {
        let now = Instant::now();
        let mut reap = None;
        let mut relaunch = false;
        {
            let mut st = srv.state.lock();
            match st.info.status {
                Status::Running => {
                    let exited = st.run.as_mut().and_then(|r| r.try_wait());
                    if let Some(status) = exited {
                        let run = st.run.take();
                        let tail = srv.stderr.lock().tail(5).join(" | ");
                        let mut reason = format!("exited unexpectedly ({})", process::describe(status));
                        if !tail.is_empty() {
                            reason.push_str(&format!("; stderr: {tail}"));
                        }
                        self.after_failure(srv, &mut st, reason);
                        reap = run;
                    } else if let Some(reason) = self.health_check(&mut st, now) {
                        let run = st.run.take();
                        self.after_failure(srv, &mut st, reason);
                        reap = run;
                    } else if st.info.restart_count > 0
                        && st.info.started_at.is_some_and(|(_, at)| now.duration_since(at) >= STABLE_AFTER)
                    {
                        log::info!("server {}: stable; restart count reset", srv.name);
                        st.info.restart_count = 0;
                        st.backoff.reset();
                    }
                }
                Status::Starting if !st.launching && st.restart_at.is_some_and(|t| t <= now) => {
                    st.restart_at = None;
                    relaunch = true;
                }
                _ => {}
            }
        }
        if let Some(mut run) = reap {
            // The leader is gone (or hung): take its group down and release the callers.
            run.kill(Duration::from_millis(200));
        }
        if relaunch {
            let (me, srv) = (self.clone(), srv.clone());
            self.spawn_thread(format!("start-{}", bridge_short(&srv.name)), move || me.launch(&srv));
        }
    }

    /// Pings a running child every `health_check_interval`; the reason when it stopped answering.
    fn health_check(&self, st: &mut State, now: Instant) -> Option<String> {
        let interval = st.config.health_check_interval;
        if interval.is_zero() {
            return None;
        }
        let bridge = st.run.as_ref()?.bridge()?.clone();
        if let Some((pending, deadline)) = &st.ping {
            match bridge.poll(pending) {
                Some(_) => {
                    st.ping = None;
                    st.last_ping = now;
                }
                None if now >= *deadline => {
                    let waited = PING_DEADLINE.min(interval);
                    return Some(format!(
                        "did not answer ping within {}s; treated as hung",
                        waited.as_secs_f64()
                    ));
                }
                None => {}
            }
            return None;
        }
        if now.duration_since(st.last_ping) >= interval {
            if let Ok(p) = bridge.begin("ping", None) {
                st.ping = Some((p, now + PING_DEADLINE.min(interval)));
            }
        }
        None
    }
}

fn srv_snapshot(srv: &Server, st: &State) -> Snapshot {
    Snapshot {
        name: srv.name.clone(),
        config: st.config.clone(),
        origin: st.origin.clone(),
        info: st.info.clone(),
        initialize: st.run.as_ref().map(|r| r.initialize.clone()),
    }
}

fn bridge_short(name: &str) -> &str {
    let end = name.char_indices().nth(8).map_or(name.len(), |(i, _)| i);
    &name[..end]
}

/// Temp file in the same directory, fsync, rename over, fsync the directory. A failure leaves
/// the previous file as it was.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("save"),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
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

/// Answers a child's own requests and records its notifications.
struct ChildPeer {
    roots: Vec<String>,
    activity: Arc<Activity>,
    listener: Option<Listener>,
}

impl Peer for ChildPeer {
    fn request(&self, server: &str, msg: &Value) -> std::result::Result<Value, RpcError> {
        match jsonrpc::method(msg) {
            "ping" => Ok(json!({})),
            "roots/list" if !self.roots.is_empty() => Ok(json!({
                "roots": self.roots.iter().map(|uri| json!({"uri": uri})).collect::<Vec<_>>()
            })),
            "roots/list" => {
                Err(RpcError::new(jsonrpc::METHOD_NOT_FOUND, "no roots are configured for this server"))
            }
            m @ ("sampling/createMessage" | "elicitation/create") => {
                log::info!("server {server} asked for {m}, but no client session is waiting on it");
                Err(RpcError::new(
                    jsonrpc::METHOD_NOT_FOUND,
                    format!(
                        "{m} cannot be relayed: no client session has a request in flight on this server"
                    ),
                ))
            }
            m => Err(RpcError::new(jsonrpc::METHOD_NOT_FOUND, format!("method not found: {m}"))),
        }
    }

    fn notification(&self, server: &str, msg: &Value, relayed: bool) {
        let method = jsonrpc::method(msg);
        match method {
            "notifications/message" => {
                let p = &msg["params"];
                let text = match &p["data"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                log::info!("[{server}] {}: {text}", p["level"].as_str().unwrap_or("info"));
                self.activity.record("log", Some(server), text);
            }
            "notifications/progress" | "notifications/cancelled" => log::debug!("[{server}] {method}"),
            _ => self.activity.record("notification", Some(server), method.to_string()),
        }
        if let Some(l) = self.listener.as_ref().filter(|_| !relayed) {
            l(server, msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(entries: Vec<ServerEntry>) -> Arc<Servers> {
        Servers::new(
            entries,
            std::env::temp_dir().join("agenthub-unit-servers-never-saved.json"),
            None,
            Context {
                npm_prefix: std::env::temp_dir(),
                default_timeout: Duration::from_secs(1),
                breakers: Arc::new(Breakers::new(crate::resilience::BreakerConfig::default())),
                activity: Arc::new(Activity::default()),
            },
        )
    }

    fn entry(name: &str) -> ServerEntry {
        ServerEntry {
            name: name.into(),
            config: ServerConfig { command: Some("true".into()), ..Default::default() },
            origin: "test".into(),
            problem: None,
        }
    }

    #[test]
    fn a_stable_period_resets_the_restart_count() {
        let s = servers(vec![entry("a")]);
        let srv = s.find("a").unwrap();
        let set = |age: Duration| {
            let mut st = srv.state.lock();
            st.info.status = Status::Running;
            st.info.restart_count = 3;
            st.backoff.next_delay();
            let at = Instant::now().checked_sub(age).unwrap();
            st.info.started_at = Some((SystemTime::now(), at));
        };
        set(STABLE_AFTER - Duration::from_secs(5));
        s.check(&srv);
        assert_eq!(srv.state.lock().info.restart_count, 3, "not stable yet");
        set(STABLE_AFTER + Duration::from_secs(1));
        s.check(&srv);
        let st = srv.state.lock();
        assert_eq!(st.info.restart_count, 0);
        assert_eq!(st.backoff.attempts(), 0, "the backoff starts over too");
    }

    #[test]
    fn failures_follow_the_restart_policy() {
        let s = servers(vec![entry("a")]);
        let srv = s.find("a").unwrap();
        let mut st = srv.state.lock();
        st.config.max_restarts = 2;
        for expected in [1, 2] {
            s.after_failure(&srv, &mut st, "crashed".into());
            assert_eq!((st.info.status, st.info.restart_count), (Status::Starting, expected));
            assert!(st.restart_at.is_some());
        }
        s.after_failure(&srv, &mut st, "crashed again".into());
        assert_eq!(st.info.status, Status::Failed);
        assert_eq!(st.info.last_error.as_deref(), Some("crashed again"));
        st.config.restart_on_failure = false;
        st.info.status = Status::Running;
        st.info.restart_count = 0;
        s.after_failure(&srv, &mut st, "no restarts".into());
        assert_eq!(st.info.status, Status::Failed);
    }
}
