//! The MCP gateway: the standard Streamable HTTP transport, per server (`/mcp/{server}`) and
//! aggregated over every running server (`/mcp`). The hub answers `initialize` itself from the
//! child's stored handshake and keeps sessions; requests are relayed to the one shared child
//! with their ids and progress tokens rewritten (in `servers::bridge`). An answer is plain JSON
//! unless the child sends progress or a request of its own first: then it becomes an SSE stream.
//! This module knows nothing of HTTP framing; `http::routes` turns an `Answer` into a reply.

pub mod session;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::jsonrpc::{self, Kind, RpcError};
use crate::queue::Delivery;
use crate::servers::bridge::{Bridge, Event, Next, Pending};
use crate::servers::upstream::Upstream;
use crate::servers::{Channel, Servers, Status, QUICK_ANSWER, STATUS_NOTIFICATION, SUPPORTED_VERSIONS};
pub use session::{Session, Sessions, Target};

/// The aggregated endpoint joins server and tool names with this.
pub const SEPARATOR: &str = "__";
/// Heartbeat on idle GET streams, to notice clients that went away.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// The protocol version assumed when a request carries none (per the spec).
const DEFAULT_VERSION: &str = "2025-03-26";

/// Writes an SSE body, event by event, flushing each.
pub type StreamBody = Box<dyn FnOnce(&mut dyn Write) + Send>;

/// The parts of an HTTP request the gateway reads.
pub struct Request<'a> {
    pub body: &'a [u8],
    pub session: Option<&'a str>,
    pub protocol_version: Option<&'a str>,
    pub accept: Option<&'a str>,
}

/// What to send back.
pub enum Answer {
    /// 200 with a JSON body; `session` is set on the answer to `initialize`.
    Json { body: Value, session: Option<String> },
    /// 202, no body: a notification or response was taken.
    Accepted,
    /// A transport-level refusal: this HTTP status, with a JSON-RPC error body.
    Fault { status: u16, code: i64, message: String },
    /// 200 `text/event-stream`, written by the function.
    Stream(StreamBody),
    /// 200, empty: a session ended.
    Ended,
    /// Worked out on a thread of its own: the request may take long and must not hold a worker.
    Later(Box<dyn FnOnce() -> Answer + Send>),
}

fn fault(status: u16, code: i64, message: impl Into<String>) -> Answer {
    Answer::Fault { status, code, message: message.into() }
}

fn reply(body: Value) -> Answer {
    Answer::Json { body, session: None }
}

/// One tool or prompt of the aggregated view: its public name and where it lives.
#[derive(Clone)]
struct Entry {
    public: String,
    server: String,
    original: String,
    item: Value,
}

#[derive(Default)]
struct Catalog {
    tools: Option<Vec<Entry>>,
    prompts: Option<Vec<Entry>>,
    /// Resource URI (or template prefix) → server.
    resources: HashMap<String, String>,
}

pub struct Gateway {
    servers: Arc<Servers>,
    /// Offered on the aggregated endpoint as the tool `agenthub__enhance_prompt`.
    enhancer: Option<Arc<crate::enhance::Service>>,
    pub sessions: Sessions,
    catalog: Mutex<Catalog>,
}

impl Gateway {
    pub fn new(servers: Arc<Servers>, enhancer: Option<Arc<crate::enhance::Service>>) -> Arc<Gateway> {
        let gw = Arc::new(Gateway {
            servers: servers.clone(),
            enhancer,
            sessions: Sessions::default(),
            catalog: Mutex::default(),
        });
        let weak = Arc::downgrade(&gw);
        servers.set_listener(Arc::new(move |server: &str, msg: &Value| {
            if let Some(gw) = weak.upgrade() {
                gw.on_notification(server, msg);
            }
        }));
        gw
    }

    pub fn shutdown(&self) {
        self.sessions.close_all();
    }

    // -----------------------------------------------------------------------------------------
    // POST

    pub fn post(self: &Arc<Self>, target: &Target, req: &Request) -> Answer {
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

    /// JSON-RPC batches (protocol 2025-03-26): every request answered, in one JSON array.
    fn batch(self: &Arc<Self>, target: &Target, req: &Request, items: Vec<Value>) -> Answer {
        if items.is_empty() {
            return fault(400, jsonrpc::INVALID_REQUEST, "Invalid Request: empty batch");
        }
        let mut out = Vec::new();
        let mut session_id = None;
        for item in items {
            let mut answer = self.message(target, req, item, false);
            while let Answer::Later(f) = answer {
                answer = f();
            }
            match answer {
                Answer::Json { body, session } => {
                    session_id = session_id.or(session);
                    out.push(body);
                }
                Answer::Fault { status, code, message } => {
                    return Answer::Fault { status, code, message };
                }
                _ => {}
            }
        }
        match out.is_empty() {
            true => Answer::Accepted,
            false => Answer::Json { body: Value::Array(out), session: session_id },
        }
    }

    fn message(self: &Arc<Self>, target: &Target, req: &Request, msg: Value, sse: bool) -> Answer {
        match jsonrpc::kind(&msg) {
            Kind::Request if jsonrpc::method(&msg) == "initialize" => self.initialize(target, &msg),
            Kind::Request => match self.session(target, req) {
                Ok(s) => self.request(target, &s, msg, sse),
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
                self.notification(session.as_deref(), &msg);
                Answer::Accepted
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
            Some(s) if s.target == *target => s,
            _ => return Err(fault(404, -32001, "Session not found")),
        };
        if let Some(v) = req.protocol_version {
            if !SUPPORTED_VERSIONS.contains(&v) {
                return Err(fault(400, -32000, format!("Bad Request: unsupported MCP-Protocol-Version {v}")));
            }
        }
        Ok(s)
    }

    fn initialize(self: &Arc<Self>, target: &Target, msg: &Value) -> Answer {
        if let Target::Server(name) = target {
            if self.servers.get(name).is_some_and(|s| s.initialize.is_none()) {
                // The server must start first (up to its handshake timeout): off the worker.
                let (gw, target, msg) = (self.clone(), target.clone(), msg.clone());
                return Answer::Later(Box::new(move || gw.initialize_now(&target, &msg)));
            }
        }
        self.initialize_now(target, msg)
    }

    fn initialize_now(&self, target: &Target, msg: &Value) -> Answer {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let asked = msg.pointer("/params/protocolVersion").and_then(Value::as_str).unwrap_or(DEFAULT_VERSION);
        let version =
            if SUPPORTED_VERSIONS.contains(&asked) { asked } else { crate::servers::PROTOCOL_VERSION }
                .to_string();
        let result = match target {
            Target::Aggregate => json!({
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": true}, "prompts": {"listChanged": true},
                                 "resources": {"listChanged": true}, "logging": {}, "completions": {}},
                "serverInfo": {"name": "agenthub", "version": crate::VERSION},
                "instructions": "AgentHub: the tools, prompts and resources of every running MCP server behind this hub. Names are <server>__<name>.",
            }),
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
        let session = self.sessions.create(target.clone(), &version, Instant::now());
        log::debug!("mcp session {} opened on {target:?} ({version})", session.id);
        Answer::Json { body: jsonrpc::result(id, result), session: Some(session.id.clone()) }
    }

    /// The child's `initialize` result; a STOPPED server is started on first use.
    fn running_handshake(&self, name: &str) -> Result<Value, RpcError> {
        let unavailable = |m: String| RpcError::new(jsonrpc::SERVER_UNAVAILABLE, m);
        let snap =
            self.servers.get(name).ok_or_else(|| unavailable(format!("no server named \"{name}\"")))?;
        if let Some(init) = snap.initialize {
            return Ok(init);
        }
        if snap.info.status != Status::Running {
            let snap = self.servers.start(name).map_err(|e| unavailable(e.to_string()))?;
            return snap.initialize.ok_or_else(|| unavailable(format!("server {name} is not running")));
        }
        Err(unavailable(format!("server {name} is not running")))
    }

    fn request(&self, target: &Target, session: &Arc<Session>, msg: Value, sse: bool) -> Answer {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let method = jsonrpc::method(&msg).to_string();
        if method == "ping" {
            return reply(jsonrpc::result(id, json!({})));
        }
        match target {
            Target::Server(name) => self.relay(name, session, msg, sse),
            Target::Aggregate => self.aggregate(session, msg, sse),
        }
    }

    /// Sends a client's request to `server` and answers with its response (or a stream).
    fn relay(&self, server: &str, session: &Arc<Session>, msg: Value, sse: bool) -> Answer {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let lease = match self.servers.acquire(server) {
            Ok(l) => l,
            Err(e) => {
                return reply(rpc_error(id, &RpcError::new(jsonrpc::SERVER_UNAVAILABLE, e.to_string())));
            }
        };
        let bridge = match &lease.channel {
            Channel::Stdio(b) => b.clone(),
            Channel::Http(upstream) => {
                // The remote call blocks until its first message: always off the worker.
                let (servers, server, upstream) =
                    (self.servers.clone(), server.to_string(), upstream.clone());
                let timeout = lease.remaining();
                return Answer::Later(Box::new(move || {
                    relay_http(&servers, &server, &upstream, &msg, timeout, sse)
                }));
            }
        };
        let pending = match bridge.begin_relay(&msg) {
            Ok(p) => p,
            Err(e) => {
                self.servers.record(server, Some(&e));
                return reply(rpc_error(id, &e));
            }
        };
        session.track(&id, server, pending.id());
        let call = Call {
            servers: self.servers.clone(),
            server: server.to_string(),
            session: session.clone(),
            id,
            bridge,
            deadline: lease.deadline,
            timeout: lease.timeout,
            pending,
        };
        call.answer(sse)
    }

    // -----------------------------------------------------------------------------------------
    // Notifications and answers from the client

    /// Client notifications: a cancellation is passed on under the hub's id; the rest
    /// (`initialized`, roots changes) concern the hub, which already initialized the child.
    fn notification(&self, session: Option<&Session>, msg: &Value) {
        if jsonrpc::method(msg) != "notifications/cancelled" {
            return;
        }
        let Some(session) = session else { return };
        let Some(request_id) = msg.pointer("/params/requestId") else { return };
        if let Some((server, hub_id)) = session.find(request_id) {
            if let Some(bridge) = self.servers.bridge(&server) {
                let reason = msg.pointer("/params/reason").cloned().unwrap_or(Value::Null);
                bridge
                    .notify("notifications/cancelled", Some(json!({"requestId": hub_id, "reason": reason})));
            }
        }
    }

    /// A client's answer to a child's request (sampling, elicitation) that the hub relayed.
    fn client_answer(&self, msg: &Value) {
        let Some(relay_id) = msg.get("id").and_then(Value::as_str) else { return };
        let mut parts = relay_id.splitn(3, ':');
        let (Some("s"), Some(server)) = (parts.next(), parts.next()) else { return };
        match self.servers.bridge(server) {
            Some(b) if b.answer_child(relay_id, msg) => {}
            _ => log::debug!("client answer {relay_id} matches no waiting child request"),
        }
    }

    /// A child's notification: to the sessions of its server and the aggregated sessions.
    fn on_notification(&self, server: &str, msg: &Value) {
        let method = jsonrpc::method(msg);
        if method == STATUS_NOTIFICATION {
            // A server came or went: the aggregated lists changed.
            *self.catalog.lock() = Catalog::default();
            for s in self.sessions.of(&Target::Aggregate) {
                for m in ["tools", "prompts", "resources"] {
                    s.deliver(jsonrpc::notification(&format!("notifications/{m}/list_changed"), None));
                }
            }
            return;
        }
        if method.ends_with("/list_changed") {
            let mut c = self.catalog.lock();
            match method {
                "notifications/tools/list_changed" => c.tools = None,
                "notifications/prompts/list_changed" => c.prompts = None,
                _ => c.resources.clear(),
            }
        }
        for s in self.sessions.of(&Target::Server(server.to_string())) {
            s.deliver(msg.clone());
        }
        if method.ends_with("/list_changed")
            || method == "notifications/message"
            || method == "notifications/resources/updated"
        {
            for s in self.sessions.of(&Target::Aggregate) {
                s.deliver(msg.clone());
            }
        }
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

    // -----------------------------------------------------------------------------------------
    // The aggregated endpoint

    fn aggregate(&self, session: &Arc<Session>, mut msg: Value, sse: bool) -> Answer {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let method = jsonrpc::method(&msg).to_string();
        let not_found = |what: &str| reply(jsonrpc::error(id.clone(), jsonrpc::INVALID_PARAMS, what));
        match method.as_str() {
            "tools/list" => {
                let mut tools: Vec<Value> = self.entries(true).iter().map(|e| e.item.clone()).collect();
                if self.enhancer.is_some() {
                    tools.insert(0, enhance_tool());
                }
                reply(jsonrpc::result(id, json!({ "tools": tools })))
            }
            "tools/call" if msg.pointer("/params/name") == Some(&json!(ENHANCE_TOOL)) => {
                reply(jsonrpc::result(id, self.enhance_call(msg.pointer("/params/arguments"))))
            }
            "prompts/list" => reply(jsonrpc::result(
                id,
                json!({"prompts": self.entries(false).iter().map(|e| e.item.clone()).collect::<Vec<_>>()}),
            )),
            "tools/call" | "prompts/get" => {
                let tools = method == "tools/call";
                let name = msg.pointer("/params/name").and_then(Value::as_str).unwrap_or("").to_string();
                let Some(entry) = self.lookup(tools, &name) else {
                    return not_found(&format!(
                        "unknown {} \"{name}\"",
                        if tools { "tool" } else { "prompt" }
                    ));
                };
                msg["params"]["name"] = json!(entry.original);
                self.relay(&entry.server, session, msg, sse)
            }
            "resources/list" | "resources/templates/list" => {
                let key = if method == "resources/list" { "resources" } else { "resourceTemplates" };
                reply(jsonrpc::result(id, json!({ key: self.resources(&method, key) })))
            }
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                let uri = msg.pointer("/params/uri").and_then(Value::as_str).unwrap_or("").to_string();
                match self.resource_owner(&uri) {
                    Some(server) => self.relay(&server, session, msg, sse),
                    None => reply(jsonrpc::error(id, -32002, &format!("resource not found: {uri}"))),
                }
            }
            "completion/complete" => {
                let r = msg.pointer("/params/ref").cloned().unwrap_or(Value::Null);
                let owner = match r.get("type").and_then(Value::as_str) {
                    Some("ref/prompt") => {
                        let name = r.get("name").and_then(Value::as_str).unwrap_or("");
                        self.lookup(false, name).map(|e| {
                            msg["params"]["ref"]["name"] = json!(e.original);
                            e.server
                        })
                    }
                    Some("ref/resource") => {
                        self.resource_owner(r.get("uri").and_then(Value::as_str).unwrap_or(""))
                    }
                    _ => None,
                };
                match owner {
                    Some(server) => self.relay(&server, session, msg, sse),
                    None => {
                        reply(jsonrpc::result(id, json!({"completion": {"values": [], "hasMore": false}})))
                    }
                }
            }
            "logging/setLevel" => {
                for s in self.running() {
                    if let Err(e) = self.servers.call(&s, "logging/setLevel", msg.get("params").cloned()) {
                        log::debug!("logging/setLevel on {s}: {e:?}");
                    }
                }
                reply(jsonrpc::result(id, json!({})))
            }
            m => reply(jsonrpc::error(id, jsonrpc::METHOD_NOT_FOUND, &format!("method not found: {m}"))),
        }
    }

    fn running(&self) -> Vec<String> {
        self.servers.list().into_iter().filter(|s| s.info.status == Status::Running).map(|s| s.name).collect()
    }

    /// Every page of `method` from one server, the items under `key`.
    fn collect(&self, server: &str, method: &str, key: &str) -> Result<Vec<Value>, String> {
        let mut items = Vec::new();
        let mut cursor: Option<Value> = None;
        for _ in 0..100 {
            let params = cursor.take().map(|c| json!({"cursor": c}));
            let page = self.servers.call(server, method, params).map_err(|e| format!("{e:?}"))?;
            items.extend(page.get(key).and_then(Value::as_array).cloned().unwrap_or_default());
            match page.get("nextCursor") {
                Some(c) if !c.is_null() => cursor = Some(c.clone()),
                _ => break,
            }
        }
        Ok(items)
    }

    /// The merged tools (or prompts) of every running server, cached until a list changes.
    fn entries(&self, tools: bool) -> Vec<Entry> {
        if let Some(e) = {
            let c = self.catalog.lock();
            if tools {
                c.tools.clone()
            } else {
                c.prompts.clone()
            }
        } {
            return e;
        }
        let (method, key, capability) =
            if tools { ("tools/list", "tools", "tools") } else { ("prompts/list", "prompts", "prompts") };
        let mut out = Vec::new();
        for snap in self.servers.list().into_iter().filter(|s| s.info.status == Status::Running) {
            let offers = snap
                .initialize
                .as_ref()
                .and_then(|i| i.pointer(&format!("/capabilities/{capability}")))
                .is_some();
            if !offers {
                continue;
            }
            match self.collect(&snap.name, method, key) {
                Ok(items) => {
                    for mut item in items {
                        let original = item.get("name").and_then(Value::as_str).unwrap_or("").to_string();
                        let public = public_name(&snap.name, &original);
                        item["name"] = json!(public);
                        if tools && item.get("description").is_none_or(Value::is_null) {
                            item["description"] = json!("");
                        }
                        out.push(Entry { public, server: snap.name.clone(), original, item });
                    }
                }
                Err(e) => log::warn!("aggregated {method}: leaving out {}: {e}", snap.name),
            }
        }
        let mut c = self.catalog.lock();
        if tools {
            c.tools = Some(out.clone());
        } else {
            c.prompts = Some(out.clone());
        }
        out
    }

    fn lookup(&self, tools: bool, public: &str) -> Option<Entry> {
        let find = |v: &[Entry]| v.iter().find(|e| e.public == public).cloned();
        find(&self.entries(tools)).or_else(|| {
            // A stale cache may miss a new name: refresh once.
            let mut c = self.catalog.lock();
            if tools {
                c.tools = None
            } else {
                c.prompts = None
            }
            drop(c);
            find(&self.entries(tools))
        })
    }

    fn resources(&self, method: &str, key: &str) -> Vec<Value> {
        let mut out = Vec::new();
        for snap in self.servers.list().into_iter().filter(|s| s.info.status == Status::Running) {
            let offers =
                snap.initialize.as_ref().and_then(|i| i.pointer("/capabilities/resources")).is_some();
            if !offers {
                continue;
            }
            match self.collect(&snap.name, method, key) {
                Ok(items) => {
                    let mut c = self.catalog.lock();
                    for item in &items {
                        let uri = item
                            .get("uri")
                            .or_else(|| item.get("uriTemplate"))
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        let uri = uri.split('{').next().unwrap_or(uri);
                        c.resources.insert(uri.to_string(), snap.name.clone());
                    }
                    out.extend(items);
                }
                Err(e) => log::warn!("aggregated {method}: leaving out {}: {e}", snap.name),
            }
        }
        out
    }

    /// The server a resource URI belongs to: an exact listed URI, else the longest template prefix.
    fn resource_owner(&self, uri: &str) -> Option<String> {
        let find = |c: &Catalog| {
            c.resources.get(uri).cloned().or_else(|| {
                c.resources
                    .iter()
                    .filter(|(p, _)| !p.is_empty() && uri.starts_with(p.as_str()))
                    .max_by_key(|(p, _)| p.len())
                    .map(|(_, s)| s.clone())
            })
        };
        if let Some(s) = find(&self.catalog.lock()) {
            return Some(s);
        }
        self.resources("resources/list", "resources");
        self.resources("resources/templates/list", "resourceTemplates");
        find(&self.catalog.lock())
    }
}

/// The hub's own tool on the aggregated endpoint.
pub const ENHANCE_TOOL: &str = "agenthub__enhance_prompt";

fn enhance_tool() -> Value {
    json!({
        "name": ENHANCE_TOOL,
        "description": "Rewrite a prompt through the local model with the rules for a client (vscode, cursor, claude-desktop, raycast, ...). Returns the prompt to use: the rewritten one, or the original when the model is unavailable.",
        "inputSchema": {"type": "object", "properties": {
            "prompt": {"type": "string", "description": "The prompt to rewrite"},
            "client": {"type": "string", "description": "Whose rules to apply; default when absent"}
        }, "required": ["prompt"]}
    })
}

impl Gateway {
    fn enhance_call(&self, args: Option<&Value>) -> Value {
        let Some(enhancer) = &self.enhancer else {
            return json!({"content": [{"type": "text", "text": "prompt enhancement is not available"}], "isError": true});
        };
        let prompt = args.and_then(|a| a.get("prompt")).and_then(Value::as_str).unwrap_or("");
        let client = args.and_then(|a| a.get("client")).and_then(Value::as_str);
        match enhancer.enhance(&crate::enhance::Request { prompt, client, model: None }) {
            Ok(e) => json!({
                "content": [{"type": "text", "text": e.prompt}],
                "structuredContent": serde_json::to_value(&e).unwrap_or(Value::Null),
                "isError": false
            }),
            Err(e) => json!({"content": [{"type": "text", "text": e.to_string()}], "isError": true}),
        }
    }
}

/// `server__name`, kept to 64 characters of `[A-Za-z0-9_.-]`: longer or odd names are cut and
/// given a short hash, so they stay unique and routable.
pub fn public_name(server: &str, name: &str) -> String {
    let full = format!("{server}{SEPARATOR}{name}");
    let clean = full.len() <= 64 && full.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if clean {
        return full;
    }
    let hash = &crate::cache::hash_prompt(&full)[..8];
    let safe: String =
        full.chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '_' }).collect();
    let keep = 64 - hash.len() - 1;
    let cut: String = safe.chars().take(keep).collect();
    format!("{cut}-{hash}")
}

/// A request to a remote server: JSON if its response comes first, else an SSE stream that
/// passes on each message as the upstream sends it.
fn relay_http(
    servers: &Arc<Servers>,
    server: &str,
    upstream: &Upstream,
    msg: &Value,
    timeout: Duration,
    sse: bool,
) -> Answer {
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let mut answer = match upstream.open(msg, timeout) {
        Ok(r) => r,
        Err(e) => {
            servers.record(server, Some(&e));
            return reply(rpc_error(id, &e));
        }
    };
    loop {
        match answer.next_message() {
            Some(Ok(m)) if answer.is_done() => {
                servers.record(server, None);
                return reply(m);
            }
            Some(Ok(first)) if sse => {
                let (servers, server) = (servers.clone(), server.to_string());
                return Answer::Stream(Box::new(move |w: &mut dyn Write| {
                    if write_event(w, &first).is_err() {
                        return;
                    }
                    while let Some(next) = answer.next_message() {
                        let m = match next {
                            Ok(m) => m,
                            Err(e) => {
                                servers.record(&server, Some(&e));
                                let _ = write_event(w, &rpc_error(id.clone(), &e));
                                return;
                            }
                        };
                        if write_event(w, &m).is_err() {
                            return;
                        }
                    }
                    servers.record(&server, None);
                }));
            }
            Some(Ok(_)) => {} // the client takes JSON only: what comes before the answer is dropped
            Some(Err(e)) => {
                servers.record(server, Some(&e));
                return reply(rpc_error(id, &e));
            }
            None => return reply(rpc_error(id, &RpcError::new(jsonrpc::SERVER_UNAVAILABLE, "no answer"))),
        }
    }
}

/// One relayed request in progress.
struct Call {
    servers: Arc<Servers>,
    server: String,
    session: Arc<Session>,
    /// The client's own id, put back on the answer.
    id: Value,
    bridge: Arc<Bridge>,
    deadline: Instant,
    timeout: Duration,
    pending: Pending,
}

impl Call {
    /// JSON when the response comes first; an SSE stream as soon as the child sends anything
    /// else for this request (progress, a request for the client) and the client takes SSE.
    /// A long wait moves to a thread of its own (`Answer::Later`).
    fn answer(self, sse: bool) -> Answer {
        self.wait(sse, Some(Instant::now() + QUICK_ANSWER))
    }

    /// Waits for the first word from the child; past `quick` (before the deadline) the rest of
    /// the wait is handed over as `Answer::Later`.
    fn wait(self, sse: bool, quick: Option<Instant>) -> Answer {
        loop {
            let until = quick.map_or(self.deadline, |q| q.min(self.deadline));
            match self.bridge.next(&self.pending, until) {
                Next::Event(Event::Response(r)) => return reply(self.finish(r)),
                Next::Event(Event::Message(m)) if sse => return self.stream(m),
                Next::Event(Event::Message(m)) => self.bridge.refuse_relay(&m),
                Next::Gone => return reply(self.fail_gone()),
                Next::TimedOut if quick.is_some() && Instant::now() < self.deadline => {
                    return Answer::Later(Box::new(move || self.wait(sse, None)));
                }
                Next::TimedOut => return reply(self.fail_timeout()),
            }
        }
    }

    fn stream(self, first: Value) -> Answer {
        Answer::Stream(Box::new(move |w: &mut dyn Write| {
            if write_event(w, &first).is_err() {
                return self.abandon();
            }
            loop {
                let out = match self.bridge.next(&self.pending, self.deadline) {
                    Next::Event(Event::Message(m)) => {
                        if write_event(w, &m).is_err() {
                            return self.abandon();
                        }
                        continue;
                    }
                    Next::Event(Event::Response(r)) => self.finish(r),
                    Next::Gone => self.fail_gone(),
                    Next::TimedOut => self.fail_timeout(),
                };
                let _ = write_event(w, &out);
                return;
            }
        }))
    }

    fn finish(&self, mut response: Value) -> Value {
        response["id"] = self.id.clone();
        self.servers.record(&self.server, None);
        self.session.untrack(&self.id);
        response
    }

    fn fail_gone(&self) -> Value {
        let e = RpcError::new(
            jsonrpc::SERVER_UNAVAILABLE,
            format!("server {} exited while the request was in flight", self.server),
        );
        self.servers.record(&self.server, Some(&e));
        self.session.untrack(&self.id);
        rpc_error(self.id.clone(), &e)
    }

    fn fail_timeout(self) -> Value {
        let e = self.bridge.timed_out(self.pending, self.timeout);
        self.servers.record(&self.server, Some(&e));
        self.session.untrack(&self.id);
        rpc_error(self.id, &e)
    }

    /// The client went away mid-stream: the child is told to stop.
    fn abandon(self) {
        self.session.untrack(&self.id);
        self.bridge.cancel(self.pending, "the client disconnected");
    }
}

fn rpc_error(id: Value, e: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": e.to_value()})
}

/// One SSE event, flushed.
fn write_event(w: &mut dyn Write, msg: &Value) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(b"event: message\ndata: ");
    serde_json::to_writer(&mut buf, msg).map_err(std::io::Error::other)?;
    buf.extend_from_slice(b"\n\n");
    w.write_all(&buf)?;
    w.flush()
}

/// Whether an Accept header takes `mime` (a missing header takes anything).
fn accepts(accept: Option<&str>, mime: &str) -> bool {
    let Some(a) = accept else { return true };
    a.split(',').map(|p| p.split(';').next().unwrap_or("").trim()).any(|m| {
        m.eq_ignore_ascii_case(mime)
            || m == "*/*"
            || m.eq_ignore_ascii_case(&format!("{}/*", mime.split('/').next().unwrap_or("")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_names_stay_valid_and_unique() {
        assert_eq!(public_name("mem", "read_graph"), "mem__read_graph");
        let long = public_name("server", &"x".repeat(80));
        assert_eq!(long.len(), 64);
        assert_ne!(long, public_name("server", &format!("{}y", "x".repeat(80))));
        let odd = public_name("s", "has space/slash");
        assert!(odd.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)), "{odd}");
    }

    #[test]
    fn accept_headers() {
        fn check(h: Option<&str>, mime: &str, ok: bool) {
            assert_eq!(accepts(h, mime), ok, "{h:?} {mime}");
        }
        check(None, "text/event-stream", true);
        check(Some("application/json, text/event-stream"), "text/event-stream", true);
        check(Some("application/json"), "text/event-stream", false);
        check(Some("*/*"), "application/json", true);
        check(Some("text/*;q=0.5"), "text/event-stream", true);
        check(Some("text/html"), "application/json", false);
    }
}
