//! The legacy HTTP+SSE transport (MCP 2024-11-05, `"type": "sse"`) as `Upstream` uses it: one
//! `Connection` is a GET event stream read on its own `sse-*` thread, whose first event names
//! the endpoint every message is POSTed to. POSTs are only accepted (202); every answer, and
//! everything else the server sends, comes on the stream. The reader hands a response or
//! progress to the call waiting for it (`Waiting`, by hub id; the ids are put back as the
//! Streamable HTTP path does, with `answers::Ids`), a notification to the hub's `Peer`, and
//! answers the server's own requests through the peer. The stream's end is the server's end:
//! every waiting call fails, and `ended` tells the supervisor.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use serde_json::Value;

use super::answers::{Ids, Piece};
use super::endpoint::{failed, gist, refused, unreachable};
use super::sse::Events;
use crate::jsonrpc::{self, Kind, RpcError};
use crate::transport::Peer;

/// How long the reader waits for a call to take its response (a call that waits reads at once).
const HAND_OVER: Duration = Duration::from_secs(1);
/// The longest POST of the hub's own answer to a server's request.
const ANSWER_POST: Duration = Duration::from_secs(5);

/// The URL the `endpoint` event's data names, resolved against the stream's URL (`base`). An
/// endpoint on another origin is refused: the server's messages, and the headers configured
/// for it, must not be sent anywhere else.
pub fn resolve(base: &str, endpoint: &str) -> Result<String, String> {
    let endpoint = endpoint.trim();
    let endpoint = endpoint.split('#').next().unwrap_or(endpoint);
    if endpoint.is_empty() || endpoint.chars().any(char::is_control) || endpoint.contains(' ') {
        return Err(format!("unusable endpoint {endpoint:?}"));
    }
    let (scheme, rest) = base.split_once("://").ok_or_else(|| format!("not a URL: {base}"))?;
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = path.split(['?', '#']).next().unwrap_or("");
    let prefix = format!("{scheme}://{authority}");
    let absolute = match endpoint {
        e if e.starts_with("//") => format!("{scheme}:{e}"),
        e if e.split(['/', '?']).next().is_some_and(|s| s.contains(':')) => e.to_string(),
        e if e.starts_with('/') => return Ok(format!("{prefix}{}", normalize(e))),
        e if e.starts_with('?') => {
            return Ok(format!("{prefix}{}{e}", if path.is_empty() { "/" } else { path }));
        }
        e => {
            let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
            return Ok(format!("{prefix}{}", normalize(&format!("{dir}{e}"))));
        }
    };
    match (origin(&absolute), origin(base)) {
        (Some(a), Some(b)) if a == b => Ok(absolute),
        _ => Err(format!("endpoint {absolute} is not on the origin of {base}; refused")),
    }
}

/// `scheme://host:port` of a URL, lowercased, the default port spelled out, userinfo left out.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h).to_ascii_lowercase();
    let has_port =
        host.rsplit_once(':').is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let default = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    Some(if has_port { format!("{scheme}://{host}") } else { format!("{scheme}://{host}:{default}") })
}

/// A path with its `.` and `..` segments taken out (the query, if any, left as it is).
fn normalize(path_and_query: &str) -> String {
    let (path, query) = path_and_query.split_at(path_and_query.find('?').unwrap_or(path_and_query.len()));
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, s) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *s {
            "." | ".." if last => {
                if *s == ".." {
                    out.pop();
                }
                out.push("");
            }
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}{query}", out.join("/"))
}

/// The calls waiting for their answers on the stream, by hub id (as JSON text), and why the
/// stream ended once it has. Bookkeeping only: no lock and no I/O inside; the owner locks it
/// and sends what `route` returns once the lock is released.
#[derive(Default)]
struct Waiting {
    calls: HashMap<String, (Ids, Sender<Piece>)>,
    ended: Option<String>,
}

/// Where a message from the stream goes.
enum Route {
    /// To the call it belongs to (`Piece::last` when it is the response).
    Call(Sender<Piece>, Piece),
    /// To the hub: a notification, or a request of the server's own.
    Hub(Value),
    /// A response nobody waits for any more.
    Nobody,
}

impl Waiting {
    fn register(&mut self, ids: Ids, tx: Sender<Piece>) -> Result<(), String> {
        match &self.ended {
            Some(why) => Err(why.clone()),
            None => {
                self.calls.insert(ids.hub.to_string(), (ids, tx));
                Ok(())
            }
        }
    }

    fn forget(&mut self, key: &str) -> Option<Sender<Piece>> {
        self.calls.remove(key).map(|(_, tx)| tx)
    }

    fn route(&mut self, msg: Value) -> Route {
        let kind = jsonrpc::kind(&msg);
        let progress = kind == Kind::Notification && jsonrpc::method(&msg) == "notifications/progress";
        let key = match kind {
            Kind::Response => msg.get("id"),
            _ if progress => msg.pointer("/params/progressToken"),
            _ => return Route::Hub(msg),
        };
        let key = key.map(Value::to_string).unwrap_or_default();
        if kind == Kind::Response {
            return match self.calls.remove(&key) {
                Some((ids, tx)) => Route::Call(tx, Piece { message: Ok(ids.incoming(msg).0), last: true }),
                None => Route::Nobody,
            };
        }
        match self.calls.get(&key) {
            Some((ids, tx)) => {
                Route::Call(tx.clone(), Piece { message: Ok(ids.incoming(msg).0), last: false })
            }
            None => Route::Hub(msg),
        }
    }

    /// The stream ended: every waiting call, to be told why.
    fn end(&mut self, why: String) -> Vec<Sender<Piece>> {
        self.ended = Some(why);
        self.calls.drain().map(|(_, (_, tx))| tx).collect()
    }
}

/// What the reader thread and the callers share.
struct Shared {
    /// Who is at the other end, for messages (`server NAME`).
    name: String,
    /// The server's name, for the peer.
    server: String,
    headers: BTreeMap<String, String>,
    /// POSTs and the stream: shut down, it ends both at once.
    agent: ureq::Agent,
    /// Where messages are POSTed (from the `endpoint` event).
    post_url: std::sync::OnceLock<String>,
    waiting: Mutex<Waiting>,
    peer: Arc<dyn Peer>,
}

/// One legacy HTTP+SSE connection to a server: its stream, read on the `sse-*` thread, and its
/// POST endpoint. Closed (the stream shut, the thread joined) by `close` or on drop.
pub struct Connection {
    shared: Arc<Shared>,
    reader: Mutex<Option<JoinHandle<()>>>,
}

/// A call's place among the waiting: dropped (answered, timed out, abandoned), it is forgotten.
pub struct Ticket {
    shared: Arc<Shared>,
    key: String,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.shared.waiting.lock().forget(&self.key);
    }
}

impl Connection {
    /// Opens the stream at `url` and waits, until `deadline`, for its `endpoint` event.
    pub fn open(
        server: &str,
        url: &str,
        headers: BTreeMap<String, String>,
        peer: Arc<dyn Peer>,
        deadline: Instant,
    ) -> Result<Connection, RpcError> {
        let name = format!("server {server}");
        let shared = Arc::new(Shared {
            agent: crate::http_agent(Duration::from_secs(5), None),
            name: name.clone(),
            server: server.to_string(),
            headers,
            post_url: std::sync::OnceLock::new(),
            waiting: Mutex::default(),
            peer,
        });
        let (ready_tx, ready) = crossbeam_channel::bounded(1);
        let (me, url) = (shared.clone(), url.to_string());
        let reader = std::thread::Builder::new()
            .name(format!("sse-{}", crate::transport::short(server)))
            .spawn(move || me.read(&url, ready_tx))
            .map_err(|e| unreachable(&name, format!("cannot start a thread: {e}")))?;
        let conn = Connection { shared, reader: Mutex::new(Some(reader)) };
        let wait = deadline.saturating_duration_since(Instant::now());
        match ready.recv_timeout(wait) {
            Ok(Ok(())) => Ok(conn),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                let why = format!("no endpoint event on its stream within {}s", wait.as_secs_f64());
                Err(unreachable(&name, why))
            }
        }
    }

    /// Registers a call under its hub id; its answer arrives on the receiver. Refused once the
    /// stream has ended.
    pub fn register(&self, ids: Ids) -> Result<(Ticket, Receiver<Piece>), RpcError> {
        let (tx, rx) = crossbeam_channel::bounded(16);
        let key = ids.hub.to_string();
        self.shared.waiting.lock().register(ids, tx).map_err(|why| unreachable(&self.shared.name, why))?;
        Ok((Ticket { shared: self.shared.clone(), key }, rx))
    }

    /// POSTs a message (a notification, or a request whose answer is waited for elsewhere).
    pub fn post(&self, msg: &Value, timeout: Duration) -> Result<(), RpcError> {
        self.shared.post(msg, timeout)
    }

    /// POSTs a request registered under `ticket` on a thread of its own (the caller goes on
    /// waiting on its receiver); a failed POST is the call's outcome.
    pub fn post_in_background(&self, msg: Value, ticket: &Ticket, timeout: Duration) -> Result<(), RpcError> {
        let (shared, key) = (self.shared.clone(), ticket.key.clone());
        let request_id = crate::request_id::current();
        std::thread::Builder::new()
            .name("upstream-call".into())
            .spawn(move || {
                if let Err(e) = crate::request_id::with(request_id, || shared.post(&msg, timeout)) {
                    let tx = shared.waiting.lock().forget(&key);
                    if let Some(tx) = tx {
                        let _ = tx.try_send(Piece { message: Err(e), last: true });
                    }
                }
            })
            .map(drop)
            .map_err(|e| unreachable(&self.shared.name, format!("cannot start a thread: {e}")))
    }

    /// Why the stream ended, once it has: the server is gone.
    /// A call no longer waited for on the stream (its client cancelled it): where its answer
    /// would have gone.
    pub fn forget_waiting(&self, key: &str) -> Option<Sender<Piece>> {
        self.shared.waiting.lock().forget(key)
    }

    pub fn ended(&self) -> Option<String> {
        self.shared.waiting.lock().ended.clone()
    }

    /// Shuts the stream (and any POST under way) and joins the reader.
    pub fn close(&self) {
        let reader = self.reader.lock().take();
        if let Some(reader) = reader {
            self.shared.agent.clone().shutdown();
            let _ = reader.join();
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    /// The `sse-*` thread: the GET, the endpoint (reported on `ready`), then every message
    /// until the stream ends; then every waiting call fails.
    fn read(&self, url: &str, ready: Sender<Result<(), RpcError>>) {
        let why = match self.stream(url, &ready) {
            Ok(()) => "its event stream ended".to_string(),
            Err(e) => e,
        };
        log::debug!("{}: {why}", self.name);
        let down = RpcError::new(jsonrpc::SERVER_UNAVAILABLE, format!("{} is down: {why}", self.name));
        let _ = ready.try_send(Err(unreachable(&self.name, &why)));
        let waiting = self.waiting.lock().end(why);
        for tx in waiting {
            let _ = tx.send_timeout(Piece { message: Err(down.clone()), last: true }, HAND_OVER);
        }
    }

    fn stream(&self, url: &str, ready: &Sender<Result<(), RpcError>>) -> Result<(), String> {
        let mut req = self.agent.get(url).header("Accept", "text/event-stream");
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let mut resp = req.call().map_err(|e| format!("cannot open its event stream: {e}"))?;
        let status = resp.status().as_u16();
        let content_type =
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        if status != 200 || !content_type.starts_with("text/event-stream") {
            let text = resp.body_mut().with_config().limit(64 * 1024).read_to_string().unwrap_or_default();
            return Err(format!("its event stream answered HTTP {status} ({content_type}): {}", gist(&text)));
        }
        let mut events = Events::new(std::io::BufReader::new(resp.into_body().into_reader()));
        while let Some(event) = events.next_event() {
            let event = event.map_err(|e| format!("its event stream broke: {e}"))?;
            match event.name.as_str() {
                "endpoint" if self.post_url.get().is_none() => {
                    let endpoint = resolve(url, &event.data)?;
                    log::debug!("{}: messages go to {endpoint}", self.name);
                    let _ = self.post_url.set(endpoint);
                    let _ = ready.try_send(Ok(()));
                }
                "message" if self.post_url.get().is_some() => match serde_json::from_str(&event.data) {
                    Ok(msg) => self.dispatch(msg),
                    Err(e) => log::debug!("{}: skipped an event that is not JSON: {e}", self.name),
                },
                other => log::debug!("{}: skipped an event {other:?}", self.name),
            }
        }
        Ok(())
    }

    /// One message from the server: to its call, or to the hub.
    fn dispatch(&self, msg: Value) {
        let route = self.waiting.lock().route(msg);
        match route {
            Route::Call(tx, piece) if piece.last => {
                let _ = tx.send_timeout(piece, HAND_OVER);
            }
            // Progress is dropped rather than held up for a call that does not read it.
            Route::Call(tx, piece) => {
                let _ = tx.try_send(piece);
            }
            Route::Nobody => log::debug!("{}: a response nobody waits for", self.name),
            Route::Hub(msg) if jsonrpc::kind(&msg) == Kind::Request => {
                let id = msg.get("id").cloned().unwrap_or(Value::Null);
                let answer = jsonrpc::response(id, self.peer.request(&self.server, &msg));
                if let Err(e) = self.post(&answer, ANSWER_POST) {
                    log::debug!(
                        "{}: answer to {} not delivered: {}",
                        self.name,
                        jsonrpc::method(&msg),
                        e.message
                    );
                }
            }
            Route::Hub(msg) => self.peer.notification(&self.server, &msg),
        }
    }

    /// POSTs one message to the endpoint. A JSON-RPC response in the answer's body (not what
    /// the transport asks for, but harmless) is dispatched like one from the stream.
    fn post(&self, msg: &Value, timeout: Duration) -> Result<(), RpcError> {
        let url = self.post_url.get().ok_or_else(|| unreachable(&self.name, "no endpoint yet"))?;
        let mut req = self
            .agent
            .post(url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("Content-Type", "application/json");
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if let Some(id) = crate::request_id::current() {
            req = req.header("X-Request-Id", id);
        }
        let mut resp = req.send(msg.to_string()).map_err(|e| failed(&self.name, Some(timeout), e))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        match serde_json::from_str::<Value>(&text) {
            Ok(v) if jsonrpc::kind(&v) == Kind::Response => {
                self.dispatch(v);
                Ok(())
            }
            _ if status >= 400 => Err(refused(&self.name, status, &text)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_resolve_against_the_stream_and_stay_on_its_origin() {
        fn check(base: &str, endpoint: &str, expected: Result<&str, &str>) {
            match (resolve(base, endpoint), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{base} + {endpoint}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{base} + {endpoint}: {got}"),
                (got, want) => panic!("{base} + {endpoint}: got {got:?}, expected {want:?}"),
            }
        }
        let base = "http://127.0.0.1:3001/sse";
        check(base, "/message?sessionId=abc", Ok("http://127.0.0.1:3001/message?sessionId=abc"));
        check(base, "message?sessionId=a", Ok("http://127.0.0.1:3001/message?sessionId=a"));
        check("https://h/mcp/v1/sse?key=k", "messages", Ok("https://h/mcp/v1/messages"));
        check("https://h/mcp/v1/sse", "../post?s=1", Ok("https://h/mcp/post?s=1"));
        check("https://h/a/sse", "./m", Ok("https://h/a/m"));
        check("https://h/sse", "?sessionId=1", Ok("https://h/sse?sessionId=1"));
        check(base, " /message?sessionId=abc#frag\n", Ok("http://127.0.0.1:3001/message?sessionId=abc"));
        check("https://u:p@h/sse", "/m", Ok("https://u:p@h/m"));
        check(base, "http://127.0.0.1:3001/message?s=1", Ok("http://127.0.0.1:3001/message?s=1"));
        check("http://H:80/sse", "http://h/m", Ok("http://h/m"));
        check("https://h/sse", "//h:443/m", Ok("https://h:443/m"));
        check(base, "http://127.0.0.1:3002/message", Err("not on the origin"));
        check(base, "https://127.0.0.1:3001/message", Err("not on the origin"));
        check(base, "http://evil.example/message", Err("not on the origin"));
        check(base, "//evil.example/m", Err("not on the origin"));
        check(base, "javascript:alert(1)", Err("not on the origin"));
        check("ftp://h/sse", "ftp://h/m", Err("not on the origin"));
        check(base, "", Err("unusable"));
        check(base, "/a b", Err("unusable"));
    }

    #[test]
    fn messages_reach_the_call_they_belong_to() {
        let mut waiting = Waiting::default();
        let (tx, rx) = crossbeam_channel::bounded(4);
        let client = serde_json::json!({"jsonrpc": "2.0", "id": "c1", "method": "tools/call",
            "params": {"name": "t", "_meta": {"progressToken": "tok"}}});
        let (ids, sent) = Ids::outgoing(serde_json::json!(9), &client);
        assert_eq!(
            (sent["id"].clone(), sent["params"]["_meta"]["progressToken"].clone()),
            (9.into(), 9.into())
        );
        waiting.register(ids, tx).unwrap();
        let progress = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/progress",
            "params": {"progressToken": 9, "progress": 1}});
        let Route::Call(tx, piece) = waiting.route(progress) else { panic!("progress not routed") };
        tx.send(piece).unwrap();
        let p = rx.try_recv().unwrap();
        assert!(!p.last);
        assert_eq!(p.message.unwrap()["params"]["progressToken"], "tok", "the client's token is back");
        let note = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
        assert!(matches!(waiting.route(note), Route::Hub(_)));
        let ping = serde_json::json!({"jsonrpc": "2.0", "id": 9, "method": "ping"});
        assert!(matches!(waiting.route(ping), Route::Hub(_)), "a request of the server is the hub's");
        let response = serde_json::json!({"jsonrpc": "2.0", "id": 9, "result": {}});
        let Route::Call(_, piece) = waiting.route(response.clone()) else { panic!("response not routed") };
        assert!(piece.last);
        assert_eq!(piece.message.unwrap()["id"], "c1");
        assert!(matches!(waiting.route(response), Route::Nobody), "answered once");
        assert_eq!(waiting.end("down".into()).len(), 0);
        let (tx, _rx) = crossbeam_channel::bounded(1);
        assert_eq!(waiting.register(Ids::outgoing(10.into(), &client).0, tx), Err("down".to_string()));
    }
}
