//! The hub as an MCP client over HTTP. `Endpoint` is the one client of Streamable HTTP: a URL
//! with its session and protocol version, POSTs whose answers are read message by message
//! (plain JSON or SSE), the GET stream, DELETE. Two users share it: `Upstream`, a remote MCP
//! server that the hub initializes itself and whose ids it rewrites like a stdio child's
//! (`Ids`), and the stdio shim (`agenthub stdio`), which passes a client's messages to a hub
//! as they are. An `Upstream` is reached over Streamable HTTP (`transport: "http"`) or the
//! legacy HTTP+SSE transport (`"type": "sse"`, `legacy_sse`): its `Wire`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};

use super::answers::Reply;
pub use super::answers::{Ids, Piece, Pieces};
use super::legacy_sse::Connection;
use super::sse::Events;
use crate::jsonrpc::{self, RpcError};
use crate::transport::stdio::Peer;

/// One Streamable HTTP endpoint and the session the hub holds with it.
pub struct Endpoint {
    /// Who is at the other end, for messages.
    name: String,
    url: String,
    /// Sent with every request (`Authorization` among them).
    headers: Mutex<BTreeMap<String, String>>,
    agent: ureq::Agent,
    session: Mutex<Option<String>>,
    version: Mutex<Option<String>>,
    /// Each POST names its method (`Mcp-Method`) and, where the revision asks, its target
    /// (`Mcp-Name`): 2026-07-28.
    named: std::sync::atomic::AtomicBool,
}

/// What came back for one POST.
pub struct Answer {
    /// The server no longer knows the session it was sent (404; some servers say 400).
    pub session_lost: bool,
    pub body: Body,
}

/// An answer's messages, read as they arrive.
pub enum Body {
    /// 202: nothing.
    Empty,
    /// One JSON body (an object, or a batch's array).
    One(Option<Value>),
    /// An SSE stream: one message per event.
    Events(Events<Box<dyn BufRead + Send>>),
}

impl Body {
    /// The next message; `Err` when the stream broke.
    pub fn next_message(&mut self) -> Option<std::io::Result<Value>> {
        match self {
            Body::Empty => None,
            Body::One(v) => v.take().map(Ok),
            Body::Events(events) => loop {
                match events.next_event()? {
                    Ok(event) => match serde_json::from_str(&event.data) {
                        Ok(v) => return Some(Ok(v)),
                        Err(_) => log::trace!("skipped an event that is not JSON: {:.200}", event.data),
                    },
                    Err(e) => return Some(Err(e)),
                }
            },
        }
    }
}

/// How one exchange failed.
pub(super) fn unreachable(name: &str, e: impl std::fmt::Display) -> RpcError {
    RpcError::new(jsonrpc::SERVER_UNAVAILABLE, format!("{name} is unreachable: {e}"))
}

/// A request to `name` that got no answer: timed out (after `timeout`), or unreachable.
pub(super) fn failed(name: &str, timeout: Option<Duration>, e: ureq::Error) -> RpcError {
    match e {
        ureq::Error::Timeout(_) => RpcError::new(
            jsonrpc::REQUEST_TIMEOUT,
            format!("request to {name} timed out after {}s", timeout.unwrap_or_default().as_secs_f64()),
        ),
        e => unreachable(name, e),
    }
}

impl Endpoint {
    /// `connect`: the longest wait for a connection; there is no overall deadline unless a
    /// POST gives one (answers may stream for as long as a tool runs).
    pub fn new(name: &str, url: &str, headers: BTreeMap<String, String>, connect: Duration) -> Endpoint {
        Endpoint {
            name: name.to_string(),
            url: url.to_string(),
            headers: Mutex::new(headers),
            agent: crate::http_agent(connect, None),
            session: Mutex::new(None),
            version: Mutex::new(None),
            named: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Adds a header to every later request, unless it is set already.
    pub fn default_header(&self, name: &str, value: &str) {
        self.headers.lock().entry(name.to_string()).or_insert_with(|| value.to_string());
    }

    /// Where it is, as `host:port`, for a plain check that something listens there.
    pub fn authority(&self) -> String {
        let rest = self.url.split_once("://").map_or(self.url.as_str(), |(_, r)| r);
        let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        let has_port = host.rsplit_once(':').is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit()));
        match (has_port, self.url.starts_with("https://")) {
            (true, _) => host.to_string(),
            (false, true) => format!("{host}:443"),
            (false, false) => format!("{host}:80"),
        }
    }

    pub fn has_session(&self) -> bool {
        self.session.lock().is_some()
    }

    /// Forgets the session and its version (before a new `initialize`).
    pub fn forget_session(&self) {
        *self.session.lock() = None;
        *self.version.lock() = None;
    }

    /// Whether every POST carries `Mcp-Method` and, for the requests that name a target,
    /// `Mcp-Name` (revision 2026-07-28).
    pub fn name_methods(&self, on: bool) {
        self.named.store(on, Ordering::SeqCst);
    }

    /// The protocol version agreed at initialize, sent with every later request.
    pub fn set_version(&self, version: &str) {
        *self.version.lock() = Some(version.to_string());
    }

    /// POSTs one message. An error status with a JSON-RPC body is an answer (the body says
    /// what went wrong); a transport failure or any other body is an error.
    pub fn post(&self, msg: &Value, timeout: Option<Duration>) -> Result<Answer, RpcError> {
        self.post_with(msg, timeout, &[])
    }

    /// As `post`, with headers of this message's own.
    pub fn post_with(
        &self,
        msg: &Value,
        timeout: Option<Duration>,
        extra: &[(&str, String)],
    ) -> Result<Answer, RpcError> {
        let mut req = self
            .agent
            .post(&self.url)
            .config()
            .timeout_global(timeout)
            .build()
            .header("Accept", "application/json, text/event-stream")
            .header("Content-Type", "application/json");
        let session = self.session.lock().clone();
        if let Some(s) = &session {
            req = req.header("Mcp-Session-Id", s);
        }
        let version = self.version.lock().clone();
        if let Some(v) = &version {
            req = req.header("MCP-Protocol-Version", v);
        }
        for (k, v) in self.headers.lock().iter() {
            req = req.header(k, v);
        }
        if self.named.load(Ordering::SeqCst) {
            for (k, v) in crate::exchange::modern::method_headers(msg) {
                req = req.header(k, v);
            }
        }
        for (k, v) in extra {
            req = req.header(*k, v);
        }
        if let Some(id) = crate::request_id::current() {
            req = req.header("X-Request-Id", id);
        }
        let mut resp = req.send(msg.to_string()).map_err(|e| failed(&self.name, timeout, e))?;
        if let Some(s) = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
            *self.session.lock() = Some(s.to_string());
        }
        let status = resp.status().as_u16();
        let session_lost = (status == 404 || status == 400) && session.is_some();
        let answer = |body| Ok(Answer { session_lost, body });
        if status == 202 {
            return answer(Body::Empty);
        }
        let sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        if sse {
            return answer(Body::Events(Events::new(Box::new(BufReader::new(
                resp.into_body().into_reader(),
            )))));
        }
        let text = resp.body_mut().read_to_string().map_err(|e| unreachable(&self.name, e))?;
        match serde_json::from_str::<Value>(&text) {
            Ok(v) if v.get("jsonrpc").is_some() || v.is_array() => answer(Body::One(Some(v))),
            _ if session_lost => answer(Body::Empty),
            _ if status >= 400 => Err(RpcError::new(
                jsonrpc::SERVER_UNAVAILABLE,
                format!(
                    "{} answered HTTP {status}: {}",
                    self.name,
                    text.chars().take(200).collect::<String>()
                ),
            )),
            _ => Err(unreachable(&self.name, format!("unexpected answer (HTTP {status})"))),
        }
    }

    /// The session's GET stream (messages the server sends on its own), if it offers one.
    pub fn listen(&self) -> Option<Body> {
        let session = self.session.lock().clone()?;
        let mut req = self
            .agent
            .get(&self.url)
            .header("Accept", "text/event-stream")
            .header("Mcp-Session-Id", &session);
        for (k, v) in self.headers.lock().iter() {
            req = req.header(k, v);
        }
        match req.call() {
            Ok(resp) if resp.status().as_u16() == 200 => {
                Some(Body::Events(Events::new(Box::new(BufReader::new(resp.into_body().into_reader())))))
            }
            Ok(resp) => {
                log::debug!("{}: no GET stream ({})", self.name, resp.status());
                None
            }
            Err(e) => {
                log::debug!("{}: no GET stream: {e}", self.name);
                None
            }
        }
    }

    /// Ends the session (DELETE), if there is one.
    pub fn close(&self) {
        // The session is taken out first: no lock is held across the DELETE.
        let session = self.session.lock().take();
        if let Some(s) = session {
            let mut req = self.agent.delete(&self.url).header("Mcp-Session-Id", &s);
            for (k, v) in self.headers.lock().iter() {
                req = req.header(k, v);
            }
            let _ = req.config().timeout_global(Some(Duration::from_secs(2))).build().call();
        }
    }
}

/// A remote MCP server, shared by every caller like a stdio child: the hub initializes it and
/// rewrites ids (`Ids`). How it is reached is its `Wire`; everything else is the same for both.
pub struct Upstream {
    pub(super) name: String,
    next_id: AtomicU64,
    pub(super) wire: Wire,
    /// Spoken to in the 2026-07-28 era (`server/discover` answered): no session, the envelope.
    pub(super) modern: std::sync::atomic::AtomicBool,
    /// Answers what no client can (a modern server's input requests).
    pub(super) peer: Option<Arc<dyn Peer>>,
    /// A modern server's input requests relayed to a client or the local model, by relay id:
    /// where the answer goes, and its key.
    pub(super) inputs: Mutex<std::collections::HashMap<String, (super::remote_modern::Desk, String)>>,
    /// The log level a modern server's requests ask for (it has no `logging/setLevel`).
    pub(super) log_level: Mutex<Option<String>>,
    /// Over Streamable HTTP, where each call's answer is handed over, by hub id (as JSON
    /// text): a client's cancellation ends its call there at once.
    calls: Mutex<std::collections::HashMap<String, crossbeam_channel::Sender<Piece>>>,
}

/// How requests reach a remote server and where their answers come from.
pub(super) enum Wire {
    /// Streamable HTTP (`transport: "http"`): each POST's answer carries what the server sends
    /// for that request; a forgotten session is initialized again.
    Streamable(Endpoint),
    /// Legacy HTTP+SSE (`"type": "sse"`): POSTs are only accepted; every answer comes on the
    /// one event stream, handed to its call by id. The stream's end is the server's.
    Legacy(Connection),
}

impl Upstream {
    /// A Streamable HTTP server; `peer` answers a modern server's input requests that no
    /// client takes.
    pub fn new(
        name: &str,
        url: &str,
        headers: BTreeMap<String, String>,
        peer: Option<Arc<dyn Peer>>,
    ) -> Upstream {
        let endpoint = Endpoint::new(&format!("server {name}"), url, headers, Duration::from_secs(5));
        Upstream { peer, ..Upstream::over(name, Wire::Streamable(endpoint)) }
    }

    /// A legacy HTTP+SSE server: its stream opened and its endpoint known by `deadline`. What
    /// the server sends outside the hub's calls goes to `peer`, as a stdio child's does.
    pub fn legacy(
        name: &str,
        url: &str,
        headers: BTreeMap<String, String>,
        peer: Arc<dyn Peer>,
        deadline: Instant,
    ) -> Result<Upstream, RpcError> {
        let conn = Connection::open(name, url, headers, peer, deadline)?;
        Ok(Upstream::over(name, Wire::Legacy(conn)))
    }

    fn over(name: &str, wire: Wire) -> Upstream {
        Upstream {
            name: format!("server {name}"),
            next_id: AtomicU64::new(1),
            wire,
            modern: Default::default(),
            peer: None,
            inputs: Default::default(),
            log_level: Default::default(),
            calls: Default::default(),
        }
    }

    /// The handshake: `initialize`, then `notifications/initialized`. Returns the result.
    pub fn initialize(&self, timeout: Duration) -> Result<Value, RpcError> {
        let params = json!({
            "protocolVersion": crate::servers::PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "agenthub", "version": crate::VERSION},
        });
        let (ids, request) = Ids::outgoing(self.fresh_id(), &jsonrpc::request(0, "initialize", Some(params)));
        let response = match &self.wire {
            Wire::Streamable(endpoint) => {
                endpoint.forget_session();
                let mut reply = self.reply(ids, endpoint.post(&request, Some(timeout))?);
                let mut response = None;
                while let Some(m) = reply.next_message() {
                    response = Some(m?);
                }
                response
            }
            Wire::Legacy(conn) => {
                let (_ticket, rx) = conn.register(ids)?;
                conn.post(&request, timeout)?;
                match rx.recv_timeout(timeout) {
                    Ok(piece) => Some(piece.message?),
                    Err(_) => {
                        let why = format!("no answer to initialize within {}s", timeout.as_secs_f64());
                        return Err(RpcError::new(jsonrpc::REQUEST_TIMEOUT, why));
                    }
                }
            }
        };
        let response = response.ok_or_else(|| unreachable(&self.name, "no answer to initialize"))?;
        let result = jsonrpc::outcome(&response)?;
        if let Wire::Streamable(endpoint) = &self.wire {
            let version = result
                .get("protocolVersion")
                .and_then(Value::as_str)
                .unwrap_or(crate::servers::PROTOCOL_VERSION);
            endpoint.set_version(version);
        }
        self.post(&jsonrpc::notification("notifications/initialized", None), timeout)?;
        Ok(result)
    }

    /// A hub id for the next request: ids the upstream sees are the hub's, unique per upstream.
    pub fn fresh_id(&self) -> Value {
        json!(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// POSTs `msg` (under the hub's ids already) and returns its answer as it arrives.
    fn open(&self, endpoint: &Endpoint, ids: Ids, msg: &Value, timeout: Duration) -> Result<Reply, RpcError> {
        let mut answer = endpoint.post(msg, Some(timeout))?;
        if answer.session_lost {
            // The upstream forgot the session (it restarted): start a new one, once.
            log::info!("{}: upstream session expired; initializing again", self.name);
            self.initialize(timeout)?;
            answer = endpoint.post(msg, Some(timeout))?;
        }
        Ok(self.reply(ids, answer))
    }

    /// Sends a request under the hub id `id`; its answer is read into the returned `Pieces`, so
    /// that the caller can wait in slices and give up. Over Streamable HTTP a thread of its own
    /// POSTs and reads the answer: it ends after the response, at the first message once the
    /// receiver is gone, or at `timeout` at the latest (the HTTP client's global timeout bounds
    /// the whole answer). Over legacy SSE the answer comes from the stream's reader.
    pub fn send(self: &Arc<Self>, id: Value, request: Value, timeout: Duration) -> Result<Pieces, RpcError> {
        if let Some(answered) = self.answered_here(&request) {
            return Ok(answered);
        }
        let (ids, msg) = Ids::outgoing(id, &request);
        if let Wire::Legacy(conn) = &self.wire {
            let (ticket, rx) = conn.register(ids)?;
            conn.post_in_background(msg, &ticket, timeout)?;
            return Ok(Pieces { rx, _ticket: Some(ticket) });
        }
        let (tx, rx) = crossbeam_channel::bounded(16);
        let key = ids.hub.to_string();
        self.calls.lock().insert(key.clone(), tx.clone());
        let upstream = self.clone();
        // The request's id goes out with the POST, made on the thread below.
        let request_id = crate::request_id::current();
        std::thread::Builder::new()
            .name("upstream-call".into())
            .spawn(move || {
                let _registered = Registered(&upstream, key);
                let Wire::Streamable(endpoint) = &upstream.wire else { return };
                let opened =
                    crate::request_id::with(request_id, || upstream.open(endpoint, ids, &msg, timeout));
                let mut piece = match opened {
                    Ok(reply) => Some(reply),
                    Err(e) => {
                        let _ = tx.send(Piece { message: Err(e), last: true });
                        return;
                    }
                };
                while let Some(reply) = piece.as_mut() {
                    let next = match reply.next_message() {
                        Some(m) => Piece { last: reply.is_done() || m.is_err(), message: m },
                        None => Piece {
                            message: Err(unreachable(&upstream.name, "the answer ended without a response")),
                            last: true,
                        },
                    };
                    let last = next.last;
                    if tx.send(next).is_err() || last {
                        piece = None;
                    }
                }
            })
            .map_err(|e| unreachable(&self.name, format!("cannot start a thread: {e}")))?;
        Ok(Pieces { rx, _ticket: None })
    }

    pub(super) fn reply(&self, ids: Ids, answer: Answer) -> Reply {
        Reply { name: self.name.clone(), body: answer.body, ids, done: false }
    }

    /// POSTs a notification.
    fn post(&self, msg: &Value, timeout: Duration) -> Result<(), RpcError> {
        match &self.wire {
            Wire::Streamable(endpoint) => endpoint.post(msg, Some(timeout)).map(drop),
            Wire::Legacy(conn) => conn.post(msg, timeout),
        }
    }

    /// A client's cancellation of the request with hub id `id`: its call ends at once (answered
    /// as cancelled) and the upstream is told. Blocks on the network: off the worker.
    pub fn cancel_for_client(&self, id: &Value, reason: &str) {
        let key = id.to_string();
        let tx = match &self.wire {
            Wire::Streamable(_) => self.calls.lock().remove(&key),
            Wire::Legacy(conn) => conn.forget_waiting(&key),
        };
        if let Some(tx) = tx {
            let _ = tx.send_timeout(Piece::cancelled(), Duration::from_millis(100));
        }
        self.cancel(id, reason);
    }

    /// Tells the upstream to stop working on the request with hub id `id`.
    pub fn cancel(&self, id: &Value, reason: &str) {
        let msg = jsonrpc::notification(
            "notifications/cancelled",
            Some(json!({"requestId": id, "reason": reason})),
        );
        if let Err(e) = self.post(&msg, Duration::from_secs(2)) {
            log::debug!("{}: cancellation not delivered: {}", self.name, e.message);
        }
    }

    /// Tells the upstream something without waiting for any answer of its (a notification, or
    /// the hub's own request whose result nobody reads: a session's end undone). Blocks on the
    /// network for up to 2 s: call it off the worker.
    pub fn tell(&self, method: &str, params: Option<Value>, request: bool) {
        let modern = self.is_modern();
        if modern && method == "notifications/roots/list_changed" {
            return;
        }
        if modern && method == "logging/setLevel" {
            self.set_log_level(params.as_ref());
            return;
        }
        let msg = match request {
            true if modern => jsonrpc::request(
                self.fresh_id(),
                method,
                Some(crate::exchange::modern::with_envelope(params, json!({}))),
            ),
            true => jsonrpc::request(self.fresh_id(), method, params),
            false => jsonrpc::notification(method, params),
        };
        if let Err(e) = self.post(&msg, Duration::from_secs(2)) {
            log::debug!("{}: {method} not delivered: {}", self.name, e.message);
        }
    }

    /// Why the server is gone, once it is (a legacy stream that ended); a Streamable HTTP server
    /// is never known gone: its calls fail, and its breaker opens.
    pub fn lost(&self) -> Option<String> {
        match &self.wire {
            Wire::Streamable(_) => None,
            Wire::Legacy(conn) => conn.ended(),
        }
    }

    /// Ends the upstream session: DELETE over Streamable HTTP, the stream closed (and its
    /// reader joined) over legacy SSE.
    pub fn close(&self) {
        match &self.wire {
            Wire::Streamable(endpoint) => endpoint.close(),
            Wire::Legacy(conn) => conn.close(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_upstreams_are_supported() {
        // A plain-TCP peer on the port: with TLS compiled in, the hub tries a TLS handshake and
        // fails on the peer's bytes; without it, ureq refuses the https URL outright.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let peer = std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let _ = std::io::Write::write_all(&mut s, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let u = Upstream::new("remote", &format!("https://127.0.0.1:{port}/mcp"), BTreeMap::new(), None);
        let e = u.initialize(Duration::from_secs(2)).unwrap_err();
        let _ = peer.join();
        assert_eq!(e.code, jsonrpc::SERVER_UNAVAILABLE);
        // Without TLS support ureq answers "TLS required, but transport is unsecured".
        assert!(!e.message.contains("TLS required"), "{}", e.message);
        assert!(e.message.contains("corrupt message"), "a TLS handshake was tried: {}", e.message);
    }
}

/// A Streamable HTTP call's place in `Upstream::calls`, left when its thread ends.
struct Registered<'a>(&'a Upstream, String);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.0.calls.lock().remove(&self.1);
    }
}
