//! The MCP gateway: the standard Streamable HTTP transport, per server (`/mcp/{server}`) and
//! aggregated over every running server (`/mcp`). The hub answers `initialize` itself from the
//! child's stored handshake and keeps sessions; requests are relayed to the one shared child
//! with their ids and progress tokens rewritten (in `transport::stdio`). An answer is plain JSON
//! unless the child sends progress or a request of its own first: then it becomes an SSE stream.
//! This module knows nothing of HTTP framing; `api` turns an `Answer` into a reply, and gives
//! the gateway a `Sink` for answers that come later.

mod accept;
mod aggregate;
mod catalog;
mod cold;
mod extensions;
mod lot;
mod modern;
mod own_tools;
mod owners;
pub mod session;
mod share;
mod shelf;
mod sink;
mod task_bridge;
mod tool_search;
mod views;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::exchange::{Call, Request as Outgoing, SUPPORTED_VERSIONS};
use crate::exchange::{Relay, Relayed, StreamBody, relay, write_event};
use crate::jsonrpc::{self, Kind, RpcError};
use crate::queue::Delivery;
use crate::servers::{Acquired, STATUS_NOTIFICATION, Servers, Status};
use accept::accepts;
use aggregate::Place;
use catalog::Catalog;
pub use cold::ColdStart;
pub use modern::MODERN_VERSION;
pub use session::{Client, Session, Sessions, Target};
use share::{Relaying, Share, caller_of};
pub use sink::{Out, Sink};
use sink::{blocking, settle};
pub use views::View;

/// Heartbeat on idle GET streams, to notice clients that went away.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// The protocol version assumed when a request carries none (per the spec).
const DEFAULT_VERSION: &str = "2025-03-26";

/// The parts of an HTTP request the gateway reads.
pub struct Request<'a> {
    pub body: &'a [u8],
    pub session: Option<&'a str>,
    pub protocol_version: Option<&'a str>,
    pub accept: Option<&'a str>,
    /// `X-Client-Name`.
    pub client: Option<&'a str>,
    /// The name of the tokens-file token the request presented (its profile applies).
    pub token: Option<&'a str>,
    /// `Mcp-Method` and `Mcp-Name` (the 2026-07-28 revision's copies of the body's method and
    /// target).
    pub method_header: Option<&'a str>,
    pub name_header: Option<&'a str>,
}

/// What to send back.
pub enum Answer {
    /// 200 with a JSON body; `session` is set on the answer to `initialize`.
    Json { body: Value, session: Option<String> },
    /// 202, no body: a notification or response was taken.
    Accepted,
    /// A transport-level refusal: this HTTP status, with a JSON-RPC error body.
    Fault { status: u16, code: i64, message: String },
    /// A request refused with this HTTP status and JSON-RPC error response (its id kept).
    Refused { status: u16, body: Value },
    /// 200 `text/event-stream`, written by the function.
    Stream(StreamBody),
    /// 200, empty: a session ended.
    Ended,
    /// Given later through the `Sink` this is handed (on the worker, where it must not block):
    /// when a call's answer comes, or from a thread of its own (`Sink::spawn`).
    Then(Box<dyn FnOnce(Out) + Send>),
}

fn fault(status: u16, code: i64, message: impl Into<String>) -> Answer {
    Answer::Fault { status, code, message: message.into() }
}

fn reply(body: Value) -> Answer {
    Answer::Json { body, session: None }
}

pub struct Gateway {
    servers: Arc<Servers>,
    /// Offered on the aggregated endpoint as the tool `agenthub__enhance_prompt`.
    enhancer: Option<Arc<crate::enhance::Service>>,
    /// Offered on the aggregated endpoint as tools `agenthub__pipeline_<name>`.
    pipelines: Option<Arc<crate::pipelines::Pipelines>>,
    pub sessions: Sessions,
    catalog: Mutex<Catalog>,
    /// Each server's catalog kept on disk, and how a cold `/mcp` waits (`cold`).
    cold: cold::Cold,
    /// What each session owns of the children it shares (`share`).
    owners: Arc<Mutex<owners::Owners>>,
    /// Modern clients' calls waiting for their retries (`modern`), and whether a thread
    /// sweeps them.
    parked: Mutex<lot::Lot>,
    sweeping: std::sync::atomic::AtomicBool,
    /// What each client sees (`views`).
    profiles: parking_lot::RwLock<Arc<crate::config::Profiles>>,
}

/// The lists a client is told changed when the servers it sees change.
const STATUS_LISTS: [&str; 3] = ["tools", "prompts", "resources"];

impl Gateway {
    pub fn new(
        servers: Arc<Servers>,
        enhancer: Option<Arc<crate::enhance::Service>>,
        pipelines: Option<Arc<crate::pipelines::Pipelines>>,
        cold: ColdStart,
    ) -> Arc<Gateway> {
        let gw = Arc::new(Gateway {
            servers: servers.clone(),
            enhancer,
            pipelines,
            sessions: Sessions::default(),
            catalog: Mutex::default(),
            cold: cold::Cold::new(cold),
            owners: Arc::default(),
            parked: Mutex::default(),
            sweeping: std::sync::atomic::AtomicBool::new(false),
            profiles: Default::default(),
        });
        let weak = Arc::downgrade(&gw);
        servers.set_listener(Arc::new(move |server: &str, msg: &Value| {
            if let Some(gw) = weak.upgrade() {
                gw.on_notification(server, msg);
            }
        }));
        let weak = Arc::downgrade(&gw);
        servers.set_router(Arc::new(move |server: &str, forward: &Value| {
            weak.upgrade().is_some_and(|gw| gw.offer(server, forward))
        }));
        let weak = Arc::downgrade(&gw);
        gw.sessions.set_on_end(Box::new(move |s: &Session| {
            if let Some(gw) = weak.upgrade() {
                gw.session_ended(s);
            }
        }));
        gw
    }

    pub fn shutdown(&self) {
        self.sessions.close_all();
    }

    // -----------------------------------------------------------------------------------------
    // POST

    /// A client's POST, answered through `out`: at once, or when a server's answer comes.
    pub fn post(self: &Arc<Self>, target: &Target, req: &Request, out: Out) {
        match self.post_answer(target, req) {
            Answer::Then(f) => f(out),
            answer => out.send(answer),
        }
    }

    fn post_answer(self: &Arc<Self>, target: &Target, req: &Request) -> Answer {
        if !accepts(req.accept, "application/json") && !accepts(req.accept, "text/event-stream") {
            return fault(406, -32000, "Not Acceptable: accept application/json and text/event-stream");
        }
        let msg: Value = match serde_json::from_slice(req.body) {
            Ok(v) => v,
            Err(e) => return fault(400, jsonrpc::PARSE_ERROR, format!("Parse error: {e}")),
        };
        let sse = accepts(req.accept, "text/event-stream");
        match msg {
            Value::Array(items) => self.batch(target, req, items),
            msg => self.message(target, req, msg, sse),
        }
    }

    /// JSON-RPC batches (protocol 2025-03-26): every request answered, in one JSON array,
    /// worked out off the worker (each item may wait on a server), one item after another.
    /// Once the client has gone, the item in flight is cancelled at its server (its calls
    /// watch the client's flag) and no further item is sent.
    fn batch(self: &Arc<Self>, target: &Target, req: &Request, items: Vec<Value>) -> Answer {
        if items.is_empty() {
            return fault(400, jsonrpc::INVALID_REQUEST, "Invalid Request: empty batch");
        }
        let (gw, target) = (self.clone(), target.clone());
        let (session, version) = (req.session.map(str::to_string), req.protocol_version.map(str::to_string));
        let token = req.token.map(str::to_string);
        Answer::Then(Box::new(move |out| {
            let gone = out.gone();
            out.spawn(Box::new(move || {
                let req = Request {
                    body: &[],
                    session: session.as_deref(),
                    protocol_version: version.as_deref(),
                    accept: None,
                    client: None,
                    token: token.as_deref(),
                    method_header: None,
                    name_header: None,
                };
                let mut answers = Vec::new();
                let mut session_id = None;
                let total = items.len();
                for (i, item) in items.into_iter().enumerate() {
                    if gone.load(std::sync::atomic::Ordering::Acquire) {
                        log::debug!("a batch's client left: {} of its {total} item(s) not sent", total - i);
                        break;
                    }
                    match settle(gw.message(&target, &req, item, false), &gone) {
                        Answer::Json { body, session } => {
                            session_id = session_id.or(session);
                            answers.push(body);
                        }
                        fault @ Answer::Fault { .. } => return fault,
                        _ => {}
                    }
                }
                match answers.is_empty() {
                    true => Answer::Accepted,
                    false => Answer::Json { body: Value::Array(answers), session: session_id },
                }
            }))
        }))
    }

    fn message(self: &Arc<Self>, target: &Target, req: &Request, msg: Value, sse: bool) -> Answer {
        match jsonrpc::kind(&msg) {
            Kind::Request if modern::is_modern(req, &msg) => self.modern(target, req, msg, sse),
            Kind::Request if jsonrpc::method(&msg) == "initialize" => {
                let client = Client {
                    header: req.client.map(str::to_string),
                    token: req.token.map(str::to_string),
                    ..Client::of(&msg)
                };
                self.initialize(target, &msg, client)
            }
            Kind::Request => match self.session(target, req) {
                Ok(s) => {
                    s.mark_used();
                    self.request(target, &s, msg, sse)
                }
                Err(a) => a,
            },
            Kind::Notification => {
                let session = match req.session {
                    Some(_) => match self.session(target, req) {
                        Ok(s) => Some(s),
                        Err(a) => return a,
                    },
                    None => None,
                };
                self.notification(session.as_deref(), &msg)
            }
            Kind::Response => {
                self.client_answer(&msg);
                Answer::Accepted
            }
            Kind::Invalid => {
                fault(400, jsonrpc::INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 message")
            }
        }
    }

    /// The session a request names, checked against the endpoint and the protocol version.
    fn session(&self, target: &Target, req: &Request) -> Result<Arc<Session>, Answer> {
        let Some(id) = req.session else {
            return Err(fault(400, -32000, "Bad Request: Mcp-Session-Id header is required"));
        };
        let s = match self.sessions.get(id, Instant::now()) {
            // A session is its client's: another token cannot borrow it (and its profile).
            Some(s) if s.target == *target && s.client.token.as_deref() == req.token => s,
            _ => return Err(fault(404, -32001, "Session not found")),
        };
        if let Some(v) = req.protocol_version {
            if !SUPPORTED_VERSIONS.contains(&v) {
                return Err(fault(400, -32000, format!("Bad Request: unsupported MCP-Protocol-Version {v}")));
            }
        }
        Ok(s)
    }

    fn initialize(self: &Arc<Self>, target: &Target, msg: &Value, client: Client) -> Answer {
        if let Target::Server(name) = target {
            let view = self.view(&client);
            if !view.shows_server(name) {
                self.refused(&view, Some(name), &format!("a session on /mcp/{name}"));
                let id = msg.get("id").cloned().unwrap_or(Value::Null);
                return reply(rpc_error(id, &hidden_server(name)));
            }
            if self.servers.get(name).is_some_and(|s| s.initialize.is_none()) {
                // The server must start first (up to its handshake timeout): off the worker.
                let (gw, target, msg) = (self.clone(), target.clone(), msg.clone());
                return blocking(move || gw.initialize_now(&target, &msg, client));
            }
        }
        self.initialize_now(target, msg, client)
    }

    fn initialize_now(&self, target: &Target, msg: &Value, client: Client) -> Answer {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let asked = msg.pointer("/params/protocolVersion").and_then(Value::as_str).unwrap_or(DEFAULT_VERSION);
        let version =
            if SUPPORTED_VERSIONS.contains(&asked) { asked } else { crate::exchange::PROTOCOL_VERSION }
                .to_string();
        let result = match target {
            Target::Aggregate => {
                // Every server this client could use and has no catalog of comes up; each
                // announces itself with `list_changed` when RUNNING, and none is waited for here.
                self.start_uncached(&self.view(&client));
                json!({
                    "protocolVersion": version,
                    "capabilities": self.capabilities(),
                    "serverInfo": {"name": "agenthub", "version": crate::VERSION},
                    "instructions": self.instructions(&self.view(&client)),
                })
            }
            Target::Server(name) => {
                let init = match self.running_handshake(name) {
                    Ok(init) => init,
                    Err(e) => return reply(rpc_error(id, &e)),
                };
                let mut r = json!({
                    "protocolVersion": version,
                    "capabilities": init.get("capabilities").cloned().unwrap_or(json!({})),
                    "serverInfo": init.get("serverInfo").cloned().unwrap_or(json!({"name": name, "version": "unknown"})),
                });
                if let Some(i) = init.get("instructions") {
                    r["instructions"] = i.clone();
                }
                r
            }
        };
        let Some(session) =
            self.sessions.create_for(target.clone(), &version, client.clone(), Instant::now())
        else {
            let why = format!(
                "too many MCP sessions in use ({}, none idle for {} s): end one (DELETE) or try later",
                session::MAX_SESSIONS,
                session::EVICT_FLOOR.as_secs()
            );
            log::warn!("mcp session refused on {target:?}: {why}");
            return Answer::Refused {
                status: 503,
                body: jsonrpc::error(id, jsonrpc::SERVER_UNAVAILABLE, &why),
            };
        };
        self.record_client(target, &client);
        log::debug!("mcp session {} opened on {target:?} ({version})", session.id);
        Answer::Json { body: jsonrpc::result(id, result), session: Some(session.id.clone()) }
    }

    /// The child's `initialize` result; a STOPPED or SLEEPING server is started for this use
    /// (not one a person stopped: the error says how to start it).
    fn running_handshake(&self, name: &str) -> Result<Value, RpcError> {
        let unavailable = |m: String| RpcError::new(jsonrpc::SERVER_UNAVAILABLE, m);
        let snap =
            self.servers.get(name).ok_or_else(|| unavailable(format!("no server named \"{name}\"")))?;
        if let Some(init) = snap.initialize {
            return Ok(init);
        }
        if snap.info.status != Status::Running {
            let snap = self.servers.start_for_use(name).map_err(|e| unavailable(e.to_string()))?;
            return snap.initialize.ok_or_else(|| unavailable(format!("server {name} is not running")));
        }
        Err(unavailable(format!("server {name} is not running")))
    }

    fn request(self: &Arc<Self>, target: &Target, session: &Arc<Session>, msg: Value, sse: bool) -> Answer {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        if jsonrpc::method(&msg) == "ping" {
            return reply(jsonrpc::result(id, json!({})));
        }
        match target {
            Target::Server(name) => self.server_request(name, session, msg, sse),
            Target::Aggregate => self.aggregate(session, msg, sse, Place::Worker),
        }
    }

    /// Sends a client's request to `server` and answers with its response (or a stream). A
    /// server still starting is waited for off the worker.
    fn relay(self: &Arc<Self>, server: &str, session: &Arc<Session>, msg: Value, sse: bool) -> Answer {
        self.relay_then(server, session, msg, sse, |r| r)
    }

    /// As `relay`, with what the gateway itself must do to the result (after the share's hook).
    fn relay_then(
        self: &Arc<Self>,
        server: &str,
        session: &Arc<Session>,
        mut msg: Value,
        sse: bool,
        then: impl FnOnce(Relaying) -> Relaying,
    ) -> Answer {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let mut how = match self.share(server, session, &mut msg) {
            Share::Answer(body) => return reply(body),
            Share::Relay(how) => then(how),
        };
        if jsonrpc::method(&msg) == "tools/call" {
            how.who = Some(self.who(&session.client));
        }
        let park = self.parker(session);
        match self.servers.try_acquire(server, Outgoing::Relay(msg, caller_of(session))) {
            Ok(Acquired::Ready(call)) => relay_call(call, session, id, sse, how, park),
            Ok(Acquired::Starting(request)) => {
                let (gw, server, session) = (self.clone(), server.to_string(), session.clone());
                blocking(move || match gw.servers.acquire(&server, request) {
                    Ok(call) => relay_call(call, &session, id, sse, how, park),
                    Err(e) => reply(unavailable(id, &e)),
                })
            }
            Err(e) => reply(unavailable(id, &e)),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Notifications and answers from the client

    /// Client notifications: a cancellation is passed on under the hub's id; the rest
    /// (`initialized`, roots changes) concern the hub, which already initialized the child.
    fn notification(&self, session: Option<&Session>, msg: &Value) -> Answer {
        let Some(session) = session else { return Answer::Accepted };
        match jsonrpc::method(msg) {
            "notifications/cancelled" => {}
            "notifications/roots/list_changed" => {
                self.roots_changed(session);
                return Answer::Accepted;
            }
            _ => return Answer::Accepted,
        }
        let Some(request_id) = msg.pointer("/params/requestId") else { return Answer::Accepted };
        let Some((server, hub_id)) = session.find(request_id) else { return Answer::Accepted };
        let reason = msg.pointer("/params/reason").cloned().unwrap_or(Value::Null);
        if self.servers.is_remote(&server) {
            // Telling a remote server is an HTTP request of its own.
            let servers = self.servers.clone();
            return blocking(move || {
                servers.cancel(&server, &hub_id, &reason);
                Answer::Accepted
            });
        }
        self.servers.cancel(&server, &hub_id, &reason);
        Answer::Accepted
    }

    /// A client's answer to a child's request (sampling, elicitation) that the hub relayed.
    fn client_answer(&self, msg: &Value) {
        let Some(relay_id) = msg.get("id").and_then(Value::as_str) else { return };
        let mut parts = relay_id.splitn(3, ':');
        let (Some("s"), Some(server)) = (parts.next(), parts.next()) else { return };
        if !self.servers.answer_child(server, relay_id, msg) {
            let relay_id = crate::text::for_log(relay_id, 128);
            log::debug!("client answer {relay_id} matches no waiting child request");
        }
    }

    /// A child's notification: to the sessions of its server and the aggregated sessions.
    fn on_notification(&self, server: &str, msg: &Value) {
        let method = jsonrpc::method(msg);
        if method == STATUS_NOTIFICATION {
            // A server came or went: the aggregated lists changed for the clients that see it.
            self.catalog.lock().invalidate(None);
            for s in self
                .sessions
                .of(&Target::Aggregate)
                .iter()
                .filter(|s| self.view(&s.client).shows_server(server))
            {
                for m in STATUS_LISTS {
                    s.deliver(jsonrpc::notification(&format!("notifications/{m}/list_changed"), None));
                }
            }
            return;
        }
        if method.ends_with("/list_changed") {
            self.catalog.lock().invalidate(Some(method));
        }
        self.distribute(server, msg);
    }

    /// The client name of a session (its `clientInfo.name`), for the request log.
    pub fn client_of(&self, session: Option<&str>) -> Option<String> {
        self.sessions.peek(session?)?.client.name.clone()
    }

    // -----------------------------------------------------------------------------------------
    // GET and DELETE

    /// Opens a server→client SSE stream on a session.
    pub fn get(&self, target: &Target, req: &Request) -> Answer {
        if !accepts(req.accept, "text/event-stream") {
            return fault(406, -32000, "Not Acceptable: a GET stream needs Accept: text/event-stream");
        }
        let session = match self.session(target, req) {
            Ok(s) => s,
            Err(a) => return a,
        };
        let stream = session.open_stream();
        Answer::Stream(Box::new(move |w: &mut dyn Write| {
            if w.write_all(b": stream open\n\n").and_then(|()| w.flush()).is_err() {
                stream.close();
                return;
            }
            loop {
                let sent = match stream.next(HEARTBEAT) {
                    Delivery::Item(msg) => write_event(w, &msg),
                    Delivery::Idle => w.write_all(b": heartbeat\n\n").and_then(|()| w.flush()),
                    Delivery::Closed => break,
                };
                if sent.is_err() {
                    stream.close();
                    break;
                }
            }
        }))
    }

    pub fn delete(&self, target: &Target, req: &Request) -> Answer {
        let session = match self.session(target, req) {
            Ok(s) => s,
            Err(a) => return a,
        };
        self.sessions.remove(&session.id);
        log::debug!("mcp session {} ended", session.id);
        Answer::Ended
    }
}

/// A call the session tracks (so the client can cancel it) until it ends, however it ends.
fn relay_call(
    mut call: Call,
    session: &Arc<Session>,
    id: Value,
    sse: bool,
    how: Relaying,
    park: Option<crate::exchange::Park>,
) -> Answer {
    match how.hook {
        Some(f) if how.hook_blocks => call.on_result_blocking(f),
        Some(f) => call.on_result(f),
        None => {}
    }
    if let Some(until) = how.task_life {
        call.last_until(until);
    }
    if let Some(who) = how.who {
        call.attribute(who);
    }
    session.track(&id, call.server(), call.hub_id());
    let (s, tracked) = (session.clone(), id.clone());
    call.on_end(move || s.untrack(&tracked));
    Answer::Then(Box::new(move |out| {
        let how = Relay { gone: Some(out.gone()), stream_id: sse.then(|| id.clone()), park };
        relay(call, how, move |relayed| out.send(answer_of(relayed, id)));
    }))
}

fn answer_of(relayed: Relayed, id: Value) -> Answer {
    match relayed {
        Relayed::Done(outcome) => reply(jsonrpc::response(id, outcome)),
        Relayed::Stream(body) => Answer::Stream(body),
    }
}

/// What a client whose profile hides a server is told of it: what a server that does not exist
/// gets.
fn hidden_server(name: &str) -> RpcError {
    RpcError::new(jsonrpc::SERVER_UNAVAILABLE, format!("no server named \"{name}\""))
}

/// A request the hub could not send: -32000 with the server's state in the message.
fn unavailable(id: Value, e: &crate::error::Error) -> Value {
    rpc_error(id, &RpcError::new(jsonrpc::SERVER_UNAVAILABLE, e.to_string()))
}

fn rpc_error(id: Value, e: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": e.to_value()})
}
