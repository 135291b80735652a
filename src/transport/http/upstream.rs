//! `Upstream`, a remote MCP server as the hub uses it: initialized by the hub itself, shared by
//! every caller like a stdio child, its ids rewritten the same way (`Ids`). It is reached over
//! Streamable HTTP (`transport: "http"`, an `Endpoint`) or the legacy HTTP+SSE transport
//! (`"type": "sse"`, a `legacy_sse::Connection`): its `Wire`. Each request's answer is handed
//! to its call as `Pieces`; what must cross the network outside a call (a notification, a
//! cancellation) goes on an `upstream-tell-*` thread, so that no caller blocks on it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::answers::{Ids, Piece, Reply};
use super::endpoint::{Answer, Endpoint, unreachable};
use super::legacy_sse::{Connection, Ticket};
use crate::exchange::{Event, PROTOCOL_VERSION, modern};
use crate::jsonrpc::{self, RpcError};
use crate::transport::{Peer, short};

/// Where the answers to one waiting call's input requests go (a modern server's).
pub(super) type Desk = Sender<Event>;

/// One request's answer as `Upstream::send` delivers it, message by message. Dropped, the
/// upstream forgets the request (a legacy stream no longer routes anything to it).
pub(super) struct Pieces {
    pub(super) rx: Receiver<Piece>,
    pub(super) _ticket: Option<Ticket>,
}

impl Pieces {
    pub fn recv_deadline(&self, deadline: Instant) -> Result<Piece, RecvTimeoutError> {
        self.rx.recv_deadline(deadline)
    }
}

/// A remote MCP server, shared by every caller like a stdio child: the hub initializes it and
/// rewrites ids (`Ids`). How it is reached is its `Wire`; everything else is the same for both.
pub struct Upstream {
    pub(super) name: String,
    next_id: AtomicU64,
    pub(super) wire: Wire,
    /// Spoken to in the 2026-07-28 era (`server/discover` answered): no session, the envelope.
    pub(super) modern: AtomicBool,
    /// Answers what no client can (a modern server's input requests).
    pub(super) peer: Option<Arc<dyn Peer>>,
    /// A modern server's input requests relayed to a client or the local model, by relay id:
    /// where the answer goes, and its key.
    pub(super) inputs: Mutex<HashMap<String, (Desk, String)>>,
    /// The log level a modern server's requests ask for (it has no `logging/setLevel`).
    pub(super) log_level: Mutex<Option<String>>,
    /// Over Streamable HTTP, where each call's answer is handed over, by hub id (as JSON
    /// text): a client's cancellation ends its call there at once.
    calls: Mutex<HashMap<String, Sender<Piece>>>,
    /// Its tools' SEP-2243 header declarations, from its `tools/list` answers.
    pub(super) declared: Mutex<super::param_headers::Declared>,
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
            declared: Default::default(),
        }
    }

    /// Where its `Authorization` comes from (a server that asks for OAuth; Streamable HTTP).
    pub fn set_credentials(&self, credentials: Arc<dyn super::endpoint::Credentials>) {
        if let Wire::Streamable(endpoint) = &self.wire {
            endpoint.set_credentials(credentials);
        }
    }

    pub fn is_modern(&self) -> bool {
        self.modern.load(Ordering::SeqCst)
    }

    /// The server's name as configured (what the peer and the sampler are told).
    pub(super) fn server(&self) -> &str {
        self.name.strip_prefix("server ").unwrap_or(&self.name)
    }

    /// A modern server has no `logging/setLevel`: the hub keeps the level (sent with each
    /// request from then on) and answers it; `None` for any other request.
    pub(super) fn answered_here(&self, request: &Value) -> Option<Pieces> {
        if !self.is_modern() || jsonrpc::method(request) != "logging/setLevel" {
            return None;
        }
        self.set_log_level(request.get("params"));
        let (tx, rx) = crossbeam_channel::bounded(1);
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let answer = json!({"jsonrpc": "2.0", "id": id, "result": {}});
        let _ = tx.send(Piece { message: Ok(answer), last: true });
        Some(Pieces { rx, _ticket: None })
    }

    pub(super) fn set_log_level(&self, params: Option<&Value>) {
        let level = params.and_then(|p| p.get("level")).and_then(Value::as_str);
        *self.log_level.lock() = level.map(str::to_string);
    }

    /// The handshake: `initialize`, then `notifications/initialized`. Returns the result.
    pub fn initialize(&self, timeout: Duration) -> Result<Value, RpcError> {
        // With a peer to answer them, the server may ask what a client would be asked (its
        // requests are answered by the hub: `own_requests`).
        let capabilities = match self.peer {
            Some(_) => json!({"roots": {"listChanged": true}, "sampling": {}, "elicitation": {"form": {}}}),
            None => json!({}),
        };
        let params = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": capabilities,
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
            let version = result.get("protocolVersion").and_then(Value::as_str).unwrap_or(PROTOCOL_VERSION);
            endpoint.set_version(version);
        }
        self.post(&jsonrpc::notification("notifications/initialized", None), timeout)?;
        Ok(result)
    }

    /// A hub id for the next request: ids the upstream sees are the hub's, unique per upstream.
    pub fn fresh_id(&self) -> Value {
        json!(self.fresh_u64())
    }

    pub(super) fn fresh_u64(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs `f` on an `upstream-tell-*` thread of its own (bounded by the 2 s of the POSTs it
    /// makes), so that whoever asks, a worker or a child's reader, never waits on the network.
    pub(super) fn later(self: Arc<Self>, what: &str, f: impl FnOnce(&Upstream) + Send + 'static) {
        let who = self.name.clone();
        let request_id = crate::request_id::current();
        let spawned = std::thread::Builder::new()
            .name(format!("upstream-tell-{}", short(self.server())))
            .spawn(move || crate::request_id::with(request_id, || f(&self)));
        if let Err(e) = spawned {
            log::warn!("{who}: cannot start a thread to send {what}: {e}");
        }
    }

    /// POSTs `msg` (under the hub's ids already) and returns its answer as it arrives.
    fn open(&self, endpoint: &Endpoint, ids: Ids, msg: &Value, timeout: Duration) -> Result<Reply, RpcError> {
        let extra = self.param_headers(msg);
        let extra: Vec<(&str, String)> = extra.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let mut answer = endpoint.post_with(msg, Some(timeout), &extra)?;
        if answer.session_lost {
            // The upstream forgot the session (it restarted): start a new one, once.
            log::info!("{}: upstream session expired; initializing again", self.name);
            self.initialize(timeout)?;
            answer = endpoint.post_with(msg, Some(timeout), &extra)?;
        }
        Ok(self.reply(ids, answer))
    }

    /// Sends a request under the hub id `id`; its answer is read into the returned `Pieces`, so
    /// that the caller can wait in slices and give up. Over Streamable HTTP a thread of its own
    /// POSTs and reads the answer: it ends after the response, at the first message once the
    /// receiver is gone, or at `timeout` at the latest (the HTTP client's global timeout bounds
    /// the whole answer). Over legacy SSE the answer comes from the stream's reader.
    pub(super) fn send(
        self: &Arc<Self>,
        id: Value,
        request: Value,
        timeout: Duration,
        can: Option<crate::exchange::Can>,
    ) -> Result<Pieces, RpcError> {
        if let Some(answered) = self.answered_here(&request).or_else(|| self.refused_here(&request)) {
            return Ok(answered);
        }
        let (ids, msg) = Ids::outgoing(id, &request);
        if let Wire::Legacy(conn) = &self.wire {
            let (ticket, rx) = conn.register(ids)?;
            conn.post_in_background(msg, &ticket, timeout)?;
            return Ok(Pieces { rx, _ticket: Some(ticket) });
        }
        let lists_tools = jsonrpc::method(&msg) == "tools/list";
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
                let (deadline, mut resumed) = (Instant::now() + timeout, 0);
                while let Some(reply) = piece.as_mut() {
                    let next = match reply.next_message() {
                        Some(Err(_)) if upstream.resume(endpoint, reply, deadline, &mut resumed) => continue,
                        Some(Ok(m)) if upstream.answer_own_request(endpoint, &m, can, &tx) => continue,
                        Some(Ok(mut m)) if lists_tools && reply.is_done() => {
                            upstream.learn_tools(&mut m);
                            Piece { last: true, message: Ok(m) }
                        }
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

    /// An answer's event stream ended before the response after giving an event id: waits as
    /// long as the server asked (`retry`, 1 s when it did not say), then reads on from a GET
    /// naming that id (SEP-1699). At most `MAX_RESUMES` times per answer, within `deadline`.
    fn resume(&self, endpoint: &Endpoint, reply: &mut Reply, deadline: Instant, resumed: &mut u32) -> bool {
        const MAX_RESUMES: u32 = 3;
        let Some(at) = reply.resume() else { return false };
        let wait = at.retry.unwrap_or(Duration::from_secs(1)).min(Duration::from_secs(30));
        let left = deadline.saturating_duration_since(Instant::now());
        if *resumed >= MAX_RESUMES || left <= wait {
            return false;
        }
        *resumed += 1;
        log::debug!("{}: the answer's stream ended early; resuming after {} ms", self.name, wait.as_millis());
        std::thread::sleep(wait);
        match endpoint.resume(&at.last_id, left - wait) {
            Some(body) => {
                reply.resumed(body);
                true
            }
            None => false,
        }
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
        let is_modern = self.is_modern();
        if is_modern && method == "notifications/roots/list_changed" {
            return;
        }
        if is_modern && method == "logging/setLevel" {
            self.set_log_level(params.as_ref());
            return;
        }
        let msg = match request {
            true if is_modern => {
                jsonrpc::request(self.fresh_id(), method, Some(modern::with_envelope(params, json!({}))))
            }
            true => jsonrpc::request(self.fresh_id(), method, params),
            false => jsonrpc::notification(method, params),
        };
        if let Err(e) = self.post(&msg, Duration::from_secs(2)) {
            log::debug!("{}: {method} not delivered: {}", self.name, e.message);
        }
    }

    /// Why the server is gone, once it is (a legacy stream that ended); a Streamable HTTP server
    /// only when its sign-in lapsed (else its calls fail, and its breaker opens).
    pub fn lost(&self) -> Option<String> {
        match &self.wire {
            Wire::Streamable(endpoint) => endpoint.lapsed(),
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

/// A Streamable HTTP call's place in `Upstream::calls`, left when its thread ends.
struct Registered<'a>(&'a Upstream, String);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.0.calls.lock().remove(&self.1);
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
