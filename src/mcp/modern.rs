//! Clients of the 2026-07-28 revision, beside those of the initialize era, on the same
//! endpoints. Such a client opens no session: it may ask `server/discover`, and each request
//! carries the protocol version, its client's name and capabilities in `params._meta`, with
//! `Mcp-Method` (and for a named target `Mcp-Name`) headers that must match the body. Each of
//! its requests runs as a session of its own for that one request, then its result is put in
//! the revision's shape: `resultType`, `ttlMs`/`cacheScope` on what may be cached (0 and
//! `private`: the hub merges live servers and never promises more), the server's identity in
//! `_meta`.
//!
//! The servers behind keep their own era. A server's request for the client (sampling,
//! elicitation, roots) arriving during such a call cannot be sent to a modern client: the call
//! is parked and the client gets an `input_required` result naming the request; its retry with
//! `inputResponses` and the hub's `requestState` answers the server and picks the call up
//! where it waited (multi round-trip requests).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::lot::Parked;
use super::session::{Client, Session, Target};
use super::{Answer, Gateway, Request, reply, rpc_error};
use crate::exchange::Can;
use crate::exchange::Park;
use crate::exchange::{Call, SUPPORTED_VERSIONS};
use crate::jsonrpc::{self, RpcError};

pub use crate::exchange::modern::MODERN_VERSION;
use crate::exchange::modern::{
    CACHEABLE, META_CAPABILITIES, META_CLIENT, META_LOG_LEVEL, META_SERVER, META_VERSION,
};

/// A header says something else than the body (SEP-2243).
pub const HEADER_MISMATCH: i64 = -32020;
/// The request's protocol version is not one the hub speaks.
pub const UNSUPPORTED_VERSION: i64 = -32022;
const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";
/// Methods of the initialize era this revision removed.
const REMOVED: &[&str] =
    &["initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"];
/// What owns the tasks modern clients create: they have no sessions, a task id is the handle.
const OWNER: &str = "modern";
/// The hub's request states start so: another one is a server's own, relayed untouched.
const STATE_PREFIX: &str = "agenthub-mrtr-";

/// Whether a request without a session comes from a client of the 2026-07-28 revision.
pub(super) fn is_modern(req: &Request, msg: &Value) -> bool {
    req.session.is_none()
        && (jsonrpc::method(msg) == "server/discover"
            || msg.pointer("/params/_meta").and_then(|m| m.get(META_VERSION)).is_some()
            || req.protocol_version.is_some_and(|v| v >= MODERN_VERSION))
}

impl Gateway {
    /// A modern client's request: checked against its headers, run as a one-request session,
    /// its answer in the revision's shape.
    pub(super) fn modern(
        self: &Arc<Self>,
        target: &Target,
        req: &Request,
        mut msg: Value,
        sse: bool,
    ) -> Answer {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let method = jsonrpc::method(&msg).to_string();
        let refuse = |code: i64, message: String, data: Option<Value>| {
            let mut e = RpcError::new(code, message);
            e.data = data;
            Answer::Refused { status: 400, body: rpc_error(id.clone(), &e) }
        };
        if let Err(why) = check_headers(req, &msg) {
            return refuse(HEADER_MISMATCH, why, None);
        }
        let meta = msg.pointer("/params/_meta").cloned().unwrap_or(Value::Null);
        let stated = meta.get(META_VERSION).and_then(Value::as_str);
        if let (Some(body), Some(header)) = (stated, req.protocol_version.map(str::trim)) {
            if body != header {
                let why = format!("MCP-Protocol-Version is {header} but the request's _meta says {body}");
                return refuse(HEADER_MISMATCH, why, None);
            }
        }
        let missing: Vec<&str> =
            [META_VERSION, META_CAPABILITIES].into_iter().filter(|k| meta.get(*k).is_none()).collect();
        if !missing.is_empty() {
            let why = format!("Invalid params: the request's _meta lacks {}", missing.join(" and "));
            return refuse(jsonrpc::INVALID_PARAMS, why, None);
        }
        if let Some(v) = stated.or(req.protocol_version) {
            if v != MODERN_VERSION {
                let supported: Vec<&str> =
                    SUPPORTED_VERSIONS.iter().copied().chain([MODERN_VERSION]).collect();
                let data = json!({"supported": supported, "requested": v});
                return refuse(UNSUPPORTED_VERSION, format!("unsupported protocol version {v}"), Some(data));
            }
        }
        if REMOVED.contains(&method.as_str()) {
            let body = jsonrpc::error(
                id,
                jsonrpc::METHOD_NOT_FOUND,
                &format!("Method not found: {method} is not part of {MODERN_VERSION}"),
            );
            return Answer::Refused { status: 404, body };
        }
        let client = Client { token: req.token.map(str::to_string), ..envelope_client(&meta, req.client) };
        strip_envelope(&mut msg);
        let server_info = self.server_info(target);
        let finish = move |result: Value| finish(&method, result, &server_info);
        if jsonrpc::method(&msg) == "server/discover" {
            let (gw, to) = (self.clone(), target.clone());
            let discover = move || match gw.discover(&to, &client) {
                Ok(result) => reply(jsonrpc::result(id, finish(result))),
                Err(e) => reply(rpc_error(id, &e)),
            };
            return match target {
                Target::Server(name) if self.servers.get(name).is_some_and(|s| s.initialize.is_none()) => {
                    super::blocking(discover)
                }
                _ => discover(),
            };
        }
        // Tasks between eras may need the servers' tool lists and a task's outcome: off the worker.
        let blocking = client.tasks_v2 && matches!(jsonrpc::method(&msg), "tools/call" | "tasks/get");
        let session = Arc::new(Session::transient(OWNER, target.clone(), MODERN_VERSION, client));
        let state = msg.pointer("/params/requestState").and_then(Value::as_str).map(str::to_string);
        let (gw, to) = (self.clone(), target.clone());
        let run = move || match state {
            Some(state) if state.starts_with(STATE_PREFIX) => gw.resume(&to, &session, &state, &msg, sse),
            _ => gw.request(&to, &session, msg, sse),
        };
        let answer = if blocking { super::blocking(run) } else { run() };
        finished(answer, Arc::new(finish))
    }

    /// `server/discover`: the versions the hub speaks, and what `initialize` would have said.
    fn discover(&self, target: &Target, client: &Client) -> Result<Value, RpcError> {
        let mut versions: Vec<&str> = SUPPORTED_VERSIONS.to_vec();
        versions.push(MODERN_VERSION);
        let mut result = json!({"supportedVersions": versions});
        let (capabilities, instructions) = match target {
            Target::Aggregate => {
                self.start_uncached(&self.view(client));
                (self.capabilities(), Some(Value::String(self.instructions(&self.view(client)))))
            }
            Target::Server(name) => {
                let init = self.running_handshake(name)?;
                (init.get("capabilities").cloned().unwrap_or(json!({})), init.get("instructions").cloned())
            }
        };
        result["capabilities"] = modern_capabilities(capabilities);
        if let Some(i) = instructions.filter(|i| i.as_str().is_some_and(|s| !s.is_empty())) {
            result["instructions"] = i;
        }
        self.record_client(target, client);
        Ok(result)
    }

    /// What a modern result names as its server: the hub on `/mcp`, the server's own identity
    /// on `/mcp/{server}`.
    fn server_info(&self, target: &Target) -> Value {
        let hub = json!({"name": "agenthub", "version": crate::VERSION});
        match target {
            Target::Aggregate => hub,
            Target::Server(name) => self.servers.handshake_part(name, "/serverInfo").unwrap_or(hub),
        }
    }

    /// What relays a modern client's call: a server's request for the client parks the call.
    pub(super) fn parker(self: &Arc<Self>, session: &Session) -> Option<Park> {
        if session.version != MODERN_VERSION {
            return None;
        }
        let (gw, target) = (self.clone(), session.target.clone());
        Some(Box::new(move |call: Call, request: Value| {
            let key = request.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
            let mut asked = Map::new();
            asked.insert(key, json!({"method": request.get("method"), "params": request.get("params")}));
            gw.park(Parked { call, target, asked })
        }))
    }

    /// Keeps a call until its client retries: the `input_required` result to answer with.
    fn park(self: &Arc<Self>, parked: Parked) -> Value {
        let state = format!("{STATE_PREFIX}{}", super::session::new_id());
        let result = json!({
            "resultType": "input_required",
            "inputRequests": Value::Object(parked.asked.clone()),
            "requestState": state,
        });
        let gone = self.parked.lock().admit(state, parked, Instant::now());
        // Dropped here, the lock released: each tells its server.
        drop(gone);
        self.sweep_parked_later();
        result
    }

    /// One `mcp-parked` thread drops parked calls as their deadlines pass, while there are any.
    fn sweep_parked_later(self: &Arc<Self>) {
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(self);
        let spawned = std::thread::Builder::new().name("mcp-parked".into()).spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(250));
                let Some(gw) = weak.upgrade() else { return };
                let gone: Vec<Parked> = {
                    let mut lot = gw.parked.lock();
                    let gone = lot.sweep(Instant::now());
                    if lot.calls.is_empty() {
                        gw.sweeping.store(false, Ordering::Release);
                        drop(lot);
                        drop(gone);
                        return;
                    }
                    gone
                };
                drop(gone);
            }
        });
        if spawned.is_err() {
            self.sweeping.store(false, Ordering::Release);
        }
    }

    /// A retry carrying the hub's request state: the client's answers go to the server, and
    /// the call it parked goes on (answering this request).
    fn resume(
        self: &Arc<Self>,
        target: &Target,
        session: &Arc<Session>,
        state: &str,
        msg: &Value,
        sse: bool,
    ) -> Answer {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let parked = {
            let mut lot = self.parked.lock();
            match lot.calls.get(state) {
                Some(p) if p.target == *target => lot.calls.remove(state),
                _ => None,
            }
        };
        let Some(mut parked) = parked else {
            let why = "requestState is unknown or expired: send the request again without it";
            return reply(jsonrpc::error(id, jsonrpc::INVALID_PARAMS, why));
        };
        let responses =
            msg.pointer("/params/inputResponses").and_then(Value::as_object).cloned().unwrap_or_default();
        let server = parked.call.server().to_string();
        let mut missing = Map::new();
        for (key, request) in std::mem::take(&mut parked.asked) {
            match responses.get(&key) {
                Some(response) => {
                    if !self.servers.answer_child(&server, &key, &json!({"result": response})) {
                        log::debug!("input response {key} matches no waiting request of {server}");
                    }
                }
                None => {
                    missing.insert(key, request);
                }
            }
        }
        if !missing.is_empty() {
            parked.asked = missing;
            return reply(jsonrpc::result(id, self.park(parked)));
        }
        let park = self.parker(session);
        super::relay_call(parked.call, session, id, sse, super::share::Relaying::default(), park)
    }
}

/// `Mcp-Method` must be the body's method; `Mcp-Name` its target's name, when it has one.
fn check_headers(req: &Request, msg: &Value) -> Result<(), String> {
    let method = jsonrpc::method(msg);
    match req.method_header.map(str::trim) {
        None => return Err(format!("the Mcp-Method header is required (the body's method is {method})")),
        Some(h) if h != method => return Err(format!("Mcp-Method is {h} but the body's method is {method}")),
        Some(_) => {}
    }
    let named = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        "tasks/get" | "tasks/cancel" | "tasks/update" | "tasks/result" => "taskId",
        _ => return Ok(()),
    };
    let Some(name) = msg.pointer(&format!("/params/{named}")).and_then(Value::as_str) else { return Ok(()) };
    match req.name_header.map(str::trim) {
        None => Err(format!("the Mcp-Name header is required for {method} (params.{named} is {name})")),
        Some(h) if h != name => Err(format!("Mcp-Name is {h} but params.{named} is {name}")),
        Some(_) => Ok(()),
    }
}

/// The client a request's `_meta` describes.
fn envelope_client(meta: &Value, header: Option<&str>) -> Client {
    let caps = meta.get(META_CAPABILITIES).cloned().unwrap_or(json!({}));
    Client {
        can: Can::of(&caps),
        name: meta
            .pointer(&format!("/{}/name", META_CLIENT.replace('/', "~1")))
            .and_then(Value::as_str)
            .map(str::to_string),
        header: header.map(str::to_string),
        tasks_v2: caps.pointer("/extensions/io.modelcontextprotocol~1tasks").is_some(),
        token: None,
    }
}

/// The envelope is for the hub: the servers behind are told in their own era.
fn strip_envelope(msg: &mut Value) {
    let Some(meta) = msg.pointer_mut("/params/_meta").and_then(Value::as_object_mut) else { return };
    for k in [META_VERSION, META_CLIENT, META_CAPABILITIES, META_LOG_LEVEL] {
        meta.remove(k);
    }
    if meta.is_empty() {
        if let Some(p) = msg.get_mut("params").and_then(Value::as_object_mut) {
            p.remove("_meta");
        }
    }
}

/// Capabilities as the revision has them: tasks are its extension, offered when the server's
/// first-version tasks can be bridged (`task_bridge`) or it offers the extension itself.
fn modern_capabilities(mut caps: Value) -> Value {
    let Some(c) = caps.as_object_mut() else { return caps };
    let bridged = c.remove("tasks").is_some_and(|t| t.pointer("/requests/tools/call").is_some());
    if bridged {
        let ext = c.entry("extensions").or_insert_with(|| json!({}));
        if let Some(e) = ext.as_object_mut() {
            e.entry(TASKS_EXTENSION).or_insert_with(|| json!({}));
        }
    }
    caps
}

/// A result in the revision's shape.
fn finish(method: &str, mut result: Value, server_info: &Value) -> Value {
    let Some(r) = result.as_object_mut() else { return result };
    let kind = r.entry("resultType").or_insert_with(|| json!("complete")).clone();
    if kind == "complete" && CACHEABLE.contains(&method) {
        r.entry("ttlMs").or_insert(json!(0));
        r.entry("cacheScope").or_insert(json!("private"));
    }
    let meta = r.entry("_meta").or_insert_with(|| json!({}));
    if let Some(m) = meta.as_object_mut() {
        m.entry(META_SERVER).or_insert_with(|| server_info.clone());
    }
    result
}

type Finish = Arc<dyn Fn(Value) -> Value + Send + Sync>;

/// An answer with its result (however it comes) finished for a modern client.
fn finished(answer: Answer, finish: Finish) -> Answer {
    match answer {
        Answer::Json { body, .. }
            if body.pointer("/error/code") == Some(&json!(jsonrpc::METHOD_NOT_FOUND)) =>
        {
            // An unknown method is a 404 in this revision.
            Answer::Refused { status: 404, body }
        }
        Answer::Json { body, session } => Answer::Json { body: finish_response(body, &finish), session },
        Answer::Then(f) => Answer::Then(Box::new(move |out| f(Box::new(Finished { out, finish })))),
        Answer::Stream(body) => Answer::Stream(Box::new(move |w: &mut dyn Write| {
            let mut w = Finishing { inner: w, buf: Vec::new(), finish };
            body(&mut w);
            let _ = w.flush();
        })),
        other => other,
    }
}

/// A sink that finishes the answer it is given for a modern client.
struct Finished {
    out: super::Out,
    finish: Finish,
}

impl super::Sink for Finished {
    fn send(self: Box<Self>, answer: Answer) {
        let Finished { out, finish } = *self;
        out.send(finished(answer, finish));
    }

    fn spawn(self: Box<Self>, f: Box<dyn FnOnce() -> Answer + Send>) {
        let Finished { out, finish } = *self;
        out.spawn(Box::new(move || finished(f(), finish)));
    }

    fn gone(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.out.gone()
    }
}

/// A JSON-RPC response whose result is finished; an error's code as the revision numbers it.
fn finish_response(mut body: Value, finish: &Finish) -> Value {
    if let Some(r) = body.get_mut("result") {
        *r = finish(r.take());
    } else if let Some(code) = body.pointer_mut("/error/code") {
        // Resource not found is -32602 in this revision (SEP-2164), -32002 before it.
        if code.as_i64() == Some(-32002) {
            *code = json!(jsonrpc::INVALID_PARAMS);
        }
    }
    body
}

/// An event stream whose response event is finished on its way out (each event is written
/// whole, so events are rewritten as they complete).
struct Finishing<'a> {
    inner: &'a mut dyn Write,
    buf: Vec<u8>,
    finish: Finish,
}

impl Write for Finishing<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = self.buf.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&event);
            let mut out = String::with_capacity(event.len() + 64);
            for line in text.split_inclusive('\n') {
                match line.strip_prefix("data: ").map(|d| serde_json::from_str::<Value>(d.trim_end())) {
                    Some(Ok(msg)) if msg.get("result").is_some() || msg.get("error").is_some() => {
                        out.push_str("data: ");
                        out.push_str(&finish_response(msg, &self.finish).to_string());
                        out.push('\n');
                    }
                    _ => out.push_str(line),
                }
            }
            self.inner.write_all(out.as_bytes())?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            self.inner.write_all(&rest)?;
        }
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(method: Option<&'a str>, name: Option<&'a str>) -> Request<'a> {
        Request {
            body: &[],
            session: None,
            protocol_version: Some(MODERN_VERSION),
            accept: None,
            client: None,
            token: None,
            method_header: method,
            name_header: name,
        }
    }

    #[test]
    fn headers_must_say_what_the_body_says() {
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo"}});
        assert!(check_headers(&req(Some("tools/call"), Some("  echo ")), &call).is_ok());
        assert!(check_headers(&req(Some("tools/call"), None), &call).unwrap_err().contains("Mcp-Name"));
        assert!(check_headers(&req(Some("tools/call"), Some("other")), &call).is_err());
        assert!(check_headers(&req(Some("TOOLS/CALL"), Some("echo")), &call).is_err());
        assert!(check_headers(&req(None, Some("echo")), &call).unwrap_err().contains("Mcp-Method"));
        let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
        assert!(check_headers(&req(Some("tools/list"), None), &list).is_ok());
        assert!(check_headers(&req(Some("prompts/list"), None), &list).is_err());
    }

    #[test]
    fn results_take_the_revisions_shape() {
        let info = json!({"name": "s", "version": "1"});
        let r = finish(
            "tools/list",
            json!({"tools": [{"name": "t", "execution": {"taskSupport": "optional"}}]}),
            &info,
        );
        assert_eq!(r["resultType"], "complete");
        assert_eq!((r["ttlMs"].clone(), r["cacheScope"].clone()), (json!(0), json!("private")));
        assert_eq!(r["tools"][0]["execution"]["taskSupport"], "optional", "task-capable tools say so");
        assert_eq!(r["_meta"][META_SERVER], info);
        let r = finish("tools/call", json!({"content": [], "_meta": {"k": 1}}), &info);
        assert!(r.get("ttlMs").is_none() && r["_meta"]["k"] == 1);
        let r = finish("tools/call", json!({"resultType": "input_required", "requestState": "x"}), &info);
        assert_eq!(r["resultType"], "input_required");
        let r =
            finish("resources/list", json!({"resources": [], "ttlMs": 5000, "cacheScope": "public"}), &info);
        assert_eq!((r["ttlMs"].clone(), r["cacheScope"].clone()), (json!(5000), json!("public")));
    }

    #[test]
    fn the_envelope_names_the_client_and_stays_with_the_hub() {
        let mut msg = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "e", "_meta": {
            META_VERSION: MODERN_VERSION, META_CLIENT: {"name": "ts", "version": "1"},
            META_CAPABILITIES: {"sampling": {}, "elicitation": {"form": {}}}, "progressToken": 7}}});
        let c = envelope_client(msg.pointer("/params/_meta").unwrap(), None);
        assert_eq!(c.name.as_deref(), Some("ts"));
        assert!(c.can.sampling && c.can.form && !c.can.url && !c.can.roots);
        strip_envelope(&mut msg);
        assert_eq!(msg["params"]["_meta"], json!({"progressToken": 7}));
    }

    #[test]
    fn stream_events_are_finished_as_they_complete() {
        let mut out = Vec::new();
        {
            let f: Finish = Arc::new(|v| finish("tools/call", v, &json!({"name": "s"})));
            let mut w = Finishing { inner: &mut out, buf: Vec::new(), finish: f };
            w.write_all(b": stream open\n\n").unwrap();
            w.write_all(
                b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n",
            )
            .unwrap();
            w.write_all(b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,").unwrap();
            w.write_all(b"\"result\":{\"content\":[]}}\n\n").unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(": stream open\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\""),
            "{text}"
        );
        assert!(text.contains("\"resultType\":\"complete\""), "{text}");
    }
}
