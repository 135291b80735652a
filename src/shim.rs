//! `agenthub stdio [server]`: a stdio MCP server that forwards to a running hub's Streamable
//! HTTP endpoint, so clients that only launch stdio servers (Claude Desktop's config file) can
//! use the hub. Each line read is POSTed through the hub's one Streamable HTTP client
//! (`transport::http::Endpoint`); JSON answers and SSE events are written back as lines.
//! Requests run on threads of their own so a long call never blocks the next line; a GET
//! stream carries the hub's own notifications.
//!
//! The client launched the shim once and will not do it again, so the shim outlives the hub's
//! moods: a hub that is not up yet is waited for (bounded), a hub that restarted or forgot the
//! session gets the client's own `initialize` again and the request is sent once more, and
//! every failure reaches the client as a JSON-RPC error. Stdin EOF ends the session once the
//! answers in flight are written.
//!
//! A client of the 2026-07-28 revision holds no session: its `server/discover` and its
//! requests (their `_meta` names the revision) are POSTed as they are, without one, with the
//! `Mcp-Method`/`Mcp-Name` headers that revision's HTTP transport requires.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::jsonrpc::{self, Kind, RpcError};
use crate::transport::http::{Answer, Endpoint};

/// How the shim reaches the hub.
pub struct Options {
    /// The hub's MCP endpoint (`shim_endpoint`).
    pub endpoint: String,
    pub token: Option<String>,
    /// Sent as `X-Client-Name`; without it, the client's `clientInfo.name`.
    pub client: Option<String>,
    /// How long a hub that does not answer is waited for, at start and after it went away.
    pub wait: Duration,
}

pub struct Shim {
    hub: Endpoint,
    /// The same hub for requests of the 2026-07-28 revision: never a session.
    stateless: Endpoint,
    url: String,
    wait: Duration,
    out: Mutex<std::io::Stdout>,
    /// The client's `initialize`, replayed when the hub forgets the session or restarts.
    initialize: Mutex<Option<Value>>,
    /// Counts the sessions held with the hub, so that a session lost is recovered once however
    /// many requests find it lost. Held across the replayed handshake: it orders that I/O.
    generation: Mutex<u64>,
    stopping: AtomicBool,
    listener: Mutex<Option<JoinHandle<()>>>,
}

/// The endpoint for `server` (all servers when None) on the hub at `base`.
pub fn endpoint(base: &str, server: Option<&str>) -> String {
    let base = base.trim_end_matches('/');
    match server {
        Some(s) => format!("{base}/mcp/{s}"),
        None => format!("{base}/mcp"),
    }
}

/// The replayed handshake's id: the client never sees its answer.
const REINITIALIZE_ID: &str = "agenthub-shim-reinitialize";

impl Shim {
    pub fn new(options: Options) -> Shim {
        let mut headers = BTreeMap::new();
        if let Some(t) = options.token {
            headers.insert("Authorization".to_string(), format!("Bearer {t}"));
        }
        if let Some(c) = options.client {
            headers.insert("X-Client-Name".to_string(), c);
        }
        let name = format!("the hub at {}", options.endpoint);
        Shim {
            stateless: Endpoint::new(&name, &options.endpoint, headers.clone(), Duration::from_secs(5)),
            hub: Endpoint::new(&name, &options.endpoint, headers, Duration::from_secs(5)),
            url: options.endpoint,
            wait: options.wait,
            out: Mutex::new(std::io::stdout()),
            initialize: Mutex::new(None),
            generation: Mutex::new(0),
            stopping: AtomicBool::new(false),
            listener: Mutex::new(None),
        }
    }

    /// The main loop: stdin lines until EOF.
    pub fn run(self: Arc<Self>) -> Result<()> {
        let stdin = std::io::stdin();
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        for line in BufReader::new(stdin.lock()).lines() {
            let line = line.map_err(|e| Error::io("reading stdin", e))?;
            if line.trim().is_empty() {
                continue;
            }
            let msg: Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(e) => {
                    self.emit(&jsonrpc::error(
                        Value::Null,
                        jsonrpc::PARSE_ERROR,
                        &format!("Parse error: {e}"),
                    ));
                    continue;
                }
            };
            let request = jsonrpc::kind(&msg) == Kind::Request;
            if request && is_modern(&msg) {
                let me = self.clone();
                match std::thread::Builder::new().name("shim-post".into()).spawn(move || {
                    me.forward_stateless(&msg);
                }) {
                    Ok(t) => threads.push(t),
                    Err(e) => log::warn!("cannot start a thread for a request: {e}"),
                }
                continue;
            }
            if jsonrpc::method(&msg) == "initialize" {
                if let Some(name) = msg.pointer("/params/clientInfo/name").and_then(Value::as_str) {
                    self.hub.default_header("X-Client-Name", name);
                }
                // A new handshake: in order, since later requests need its session.
                self.hub.forget_session();
                if self.forward(&msg) {
                    *self.initialize.lock() = Some(msg);
                    self.start_listening();
                }
                continue;
            }
            if !self.hub.has_session() {
                self.forward(&msg);
                continue;
            }
            let me = self.clone();
            match std::thread::Builder::new().name("shim-post".into()).spawn(move || {
                me.forward(&msg);
            }) {
                Ok(t) => threads.push(t),
                Err(e) => log::warn!("cannot start a thread for a request: {e}"),
            }
            threads.retain(|t| !t.is_finished());
        }
        // The client closed stdin: what it asked for is still answered, then the session ends.
        for t in threads {
            let _ = t.join();
        }
        self.stopping.store(true, Ordering::SeqCst);
        self.hub.close();
        let listener = self.listener.lock().take();
        if let Some(l) = listener {
            let deadline = Instant::now() + Duration::from_secs(2);
            while !l.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }

    fn emit(&self, msg: &Value) {
        let mut out = self.out.lock();
        let _ = writeln!(out, "{msg}");
        let _ = out.flush();
    }

    /// POSTs one message and writes back what comes; false when it failed.
    fn forward(&self, msg: &Value) -> bool {
        let id = msg.get("id").cloned().filter(|_| jsonrpc::kind(msg) == Kind::Request);
        let fail = |m: &str| {
            if let Some(id) = &id {
                self.emit(&jsonrpc::error(id.clone(), jsonrpc::SERVER_UNAVAILABLE, m));
            }
            log::warn!("{m}");
            false
        };
        let mut answer = match self.post(msg) {
            Ok(a) => a,
            Err(e) => return fail(&e.message),
        };
        let mut ok = true;
        while let Some(next) = answer.body.next_message() {
            let mut v = match next {
                Ok(v) => v,
                Err(e) => return fail(&format!("reading the hub's answer: {e}")),
            };
            match v {
                Value::Array(items) => items.iter().for_each(|m| self.emit(m)),
                _ => {
                    if jsonrpc::method(msg) == "initialize" {
                        match v.pointer("/result/protocolVersion").and_then(Value::as_str) {
                            Some(pv) => self.hub.set_version(pv),
                            None => ok = false,
                        }
                    }
                    // Transport faults carry `id: null`: give the client its own id back.
                    if let (Some(id), true) = (&id, v.get("id").is_some_and(Value::is_null)) {
                        v["id"] = id.clone();
                    }
                    self.emit(&v);
                }
            }
        }
        ok
    }

    /// A request of the 2026-07-28 revision: POSTed without a session, with the headers that
    /// copy its method and target; a hub that is away is waited for once.
    fn forward_stateless(&self, msg: &Value) {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let headers = modern_headers(msg);
        let mut answer = match self.stateless.post_with(msg, None, &headers) {
            Err(e) if e.code == jsonrpc::SERVER_UNAVAILABLE && !self.hub_listens() => {
                match self.wait_for_hub() {
                    Ok(()) => self.stateless.post_with(msg, None, &headers),
                    Err(e) => Err(e),
                }
            }
            a => a,
        };
        let answer = match &mut answer {
            Ok(a) => a,
            Err(e) => {
                log::warn!("{}", e.message);
                return self.emit(&jsonrpc::error(id, e.code, &e.message));
            }
        };
        while let Some(next) = answer.body.next_message() {
            match next {
                Ok(mut v) => {
                    if v.get("id").is_some_and(Value::is_null) {
                        v["id"] = id.clone();
                    }
                    self.emit(&v);
                }
                Err(e) => {
                    let why = format!("reading the hub's answer: {e}");
                    return self.emit(&jsonrpc::error(id, jsonrpc::SERVER_UNAVAILABLE, &why));
                }
            }
        }
    }

    /// POSTs one message; a hub that is away or forgot the session is recovered once.
    fn post(&self, msg: &Value) -> std::result::Result<Answer, RpcError> {
        let generation = *self.generation.lock();
        match self.hub.post(msg, None) {
            Ok(a) if !a.session_lost => return Ok(a),
            Ok(_) => log::info!("the hub forgot this session; initializing again"),
            Err(e) if e.code == jsonrpc::SERVER_UNAVAILABLE && !self.hub_listens() => {
                log::info!("{}; waiting up to {}s for it", e.message, self.wait.as_secs_f64());
            }
            Err(e) => return Err(e),
        }
        self.recover(generation)?;
        match self.hub.post(msg, None)? {
            a if a.session_lost => Err(RpcError::new(
                jsonrpc::SERVER_UNAVAILABLE,
                format!("the hub at {} forgot the session again just after it was made", self.url),
            )),
            a => Ok(a),
        }
    }

    /// Waits for the hub, then replays the client's `initialize`, unless another request
    /// already did since `generation`.
    fn recover(&self, generation: u64) -> std::result::Result<(), RpcError> {
        let mut current = self.generation.lock();
        if *current != generation {
            return Ok(());
        }
        self.wait_for_hub()?;
        let init = self.initialize.lock().clone();
        if let Some(mut init) = init {
            init["id"] = json!(REINITIALIZE_ID);
            // Not `forget_session` first: requests that read `generation` before this lock was
            // taken go out meanwhile, and so does every request after a handshake that fails
            // (a hub that is still stopping drops it). Without a session the hub refuses them
            // ("Mcp-Session-Id header is required") and nothing here takes that for a lost
            // session; with the old one they are told it is lost, and recover.
            let mut answer = self.hub.post_initialize(&init)?;
            let mut response = None;
            while let Some(m) = answer.body.next_message() {
                response = m.ok().filter(|m| m.get("id") == Some(&json!(REINITIALIZE_ID)));
            }
            let result = jsonrpc::outcome(&response.unwrap_or(Value::Null))?;
            if let Some(pv) = result.get("protocolVersion").and_then(Value::as_str) {
                self.hub.set_version(pv);
            }
            self.hub.post(&jsonrpc::notification("notifications/initialized", None), None)?;
            log::info!("a new session with the hub at {}", self.url);
        }
        *current += 1;
        Ok(())
    }

    /// Whether something accepts connections where the hub should be.
    fn hub_listens(&self) -> bool {
        let addrs = self.hub.authority().to_socket_addrs().map(|a| a.collect::<Vec<_>>()).unwrap_or_default();
        addrs.iter().any(|a| TcpStream::connect_timeout(a, Duration::from_millis(500)).is_ok())
    }

    fn wait_for_hub(&self) -> std::result::Result<(), RpcError> {
        let deadline = Instant::now() + self.wait;
        while !self.hub_listens() {
            if Instant::now() >= deadline {
                return Err(RpcError::new(
                    jsonrpc::SERVER_UNAVAILABLE,
                    format!(
                        "the hub at {} did not answer within {}s: start it with `agenthub` (or point --url at it)",
                        self.url,
                        self.wait.as_secs_f64()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    fn start_listening(self: &Arc<Self>) {
        let mut listener = self.listener.lock();
        if listener.is_some() {
            return;
        }
        let me = self.clone();
        match std::thread::Builder::new().name("shim-get".into()).spawn(move || me.listen()) {
            Ok(t) => *listener = Some(t),
            Err(e) => log::warn!("cannot start the notification stream: {e}"),
        }
    }

    /// The session's GET stream: notifications and requests the hub sends on its own. When it
    /// ends before stdin does, the hub went away or forgot the session: recover, listen again.
    fn listen(&self) {
        while !self.stopping.load(Ordering::SeqCst) {
            let opened = Instant::now();
            let generation = *self.generation.lock();
            if let Some(mut body) = self.hub.listen() {
                while let Some(Ok(v)) = body.next_message() {
                    self.emit(&v);
                }
            }
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            if let Err(e) = self.recover(generation) {
                log::warn!("{}", e.message);
            }
            // A hub that offers no stream is not asked again in a tight loop.
            let next = opened + Duration::from_secs(1);
            while Instant::now() < next && !self.stopping.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Whether a request is of the 2026-07-28 revision (its probe, or its `_meta` says so).
fn is_modern(msg: &Value) -> bool {
    jsonrpc::method(msg) == "server/discover"
        || msg.pointer("/params/_meta/io.modelcontextprotocol~1protocolVersion").is_some()
}

/// The headers the 2026-07-28 HTTP transport takes from the body, and its version.
fn modern_headers(msg: &Value) -> Vec<(&'static str, String)> {
    let version = msg
        .pointer("/params/_meta/io.modelcontextprotocol~1protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or(crate::mcp::MODERN_VERSION);
    let mut h = crate::exchange::modern::method_headers(msg);
    h.push(("MCP-Protocol-Version", version.to_string()));
    h
}

/// `--wait SECONDS` (30 when not given); `None` when it is not a number of seconds.
pub fn wait(arg: Option<&str>) -> Option<Duration> {
    match arg.map(str::parse::<f64>) {
        None => Some(Duration::from_secs(30)),
        Some(Ok(s)) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(endpoint("http://127.0.0.1:9090/", None), "http://127.0.0.1:9090/mcp");
        assert_eq!(endpoint("http://h:1", Some("mem")), "http://h:1/mcp/mem");
    }
}
