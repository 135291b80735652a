//! `Memory`: an in-memory transport, with which the tests drive `Call` with no process and no
//! socket. The test plays the server: it hears each request as sent (`heard`), answers it,
//! says something for it, cancels it as a client would, or dies. Like a stdio child, a
//! request's events land in an `Inbox` a continuation can park in; `Memory::unparked` makes
//! one that cannot hold one (like HTTP). A modern server's input requests are relayed to the
//! caller when they are elicitations (`in:<id>:<key>`, answered through `answer_child`), and
//! answered by "the hub" at once otherwise.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde_json::{Map, Value, json};

use super::{Event, Flight, Inbox, Next, Request, Transport};
use crate::jsonrpc::{self, RpcError};

/// Long enough never to pass on a loaded machine: waits end on conditions.
const WAIT: Duration = Duration::from_secs(10);

pub struct Memory {
    modern: bool,
    parks: bool,
    next_id: AtomicU64,
    state: Mutex<State>,
    heard: Condvar,
}

#[derive(Default)]
struct State {
    /// What the server was sent and the test has not heard yet.
    sent: VecDeque<Value>,
    /// Every request's inbox, by hub id.
    inboxes: HashMap<u64, Arc<Inbox>>,
    /// The requests the server still works on.
    out: Vec<u64>,
    dead: bool,
    /// What the server was told: cancellations (hub id, reason), notifications.
    cancelled: Vec<(u64, String)>,
    /// Requests relayed to a caller that could not take them.
    refused: Vec<Value>,
}

impl Memory {
    pub fn new() -> Arc<Memory> {
        Memory::with(false, true)
    }

    /// A server of revision 2026-07-28.
    pub fn modern() -> Arc<Memory> {
        Memory::with(true, true)
    }

    /// A carrier that cannot hold a continuation (as HTTP cannot).
    pub fn unparked() -> Arc<Memory> {
        Memory::with(false, false)
    }

    fn with(modern: bool, parks: bool) -> Arc<Memory> {
        Arc::new(Memory {
            modern,
            parks,
            next_id: AtomicU64::new(1),
            state: Mutex::default(),
            heard: Condvar::new(),
        })
    }

    /// The next request the server got, as it got it.
    pub fn heard(&self) -> Value {
        let deadline = Instant::now() + WAIT;
        let mut st = self.state.lock();
        loop {
            if let Some(msg) = st.sent.pop_front() {
                return msg;
            }
            assert!(!self.heard.wait_until(&mut st, deadline).timed_out(), "the server heard nothing");
        }
    }

    /// Whether the server has been sent nothing it has not heard.
    pub fn heard_nothing(&self) -> bool {
        self.state.lock().sent.is_empty()
    }

    /// The server answers request `id` with `result`.
    pub fn answer(&self, id: u64, result: Value) {
        self.respond(id, json!({"jsonrpc": "2.0", "id": id, "result": result}));
    }

    /// The server answers request `id` with its own error.
    pub fn error(&self, id: u64, code: i64, message: &str) {
        self.respond(id, json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}));
    }

    fn respond(&self, id: u64, response: Value) {
        let inbox = {
            let mut st = self.state.lock();
            st.out.retain(|o| *o != id);
            st.inboxes.get(&id).cloned()
        };
        if let Some(inbox) = inbox {
            inbox.push(Event::Response(response));
        }
    }

    /// The server sends something for request `id` before its answer (progress, a request for
    /// the client).
    pub fn say(&self, id: u64, msg: Value) {
        let inbox = self.state.lock().inboxes.get(&id).cloned();
        if let Some(inbox) = inbox {
            inbox.push(Event::Message(msg));
        }
    }

    /// The server dies: every request waiting hears at once, and new ones fail.
    pub fn die(&self) {
        let inboxes: Vec<_> = {
            let mut st = self.state.lock();
            st.dead = true;
            st.out.clear();
            st.inboxes.values().cloned().collect()
        };
        for inbox in inboxes {
            inbox.end();
        }
    }

    /// What the server was told to stop working on: (hub id, reason).
    pub fn cancelled(&self) -> Vec<(u64, String)> {
        self.state.lock().cancelled.clone()
    }

    /// The requests refused for a caller that could not take them.
    pub fn refused(&self) -> Vec<Value> {
        self.state.lock().refused.clone()
    }

    fn send(&self, msg: Value) {
        self.state.lock().sent.push_back(msg);
        self.heard.notify_all();
    }

    fn gone() -> RpcError {
        RpcError::new(jsonrpc::SERVER_UNAVAILABLE, "server mem exited while the request was in flight")
    }
}

impl Transport for Memory {
    fn open(self: Arc<Self>, request: Request) -> Result<Box<dyn Flight>, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let inbox = Arc::new(Inbox::default());
        {
            let mut st = self.state.lock();
            if st.dead {
                return Err(Memory::gone());
            }
            st.inboxes.insert(id, inbox.clone());
            st.out.push(id);
        }
        let mut msg = request.message();
        msg["id"] = json!(id);
        self.send(msg);
        Ok(Box::new(Out { memory: self, id, inbox }))
    }

    fn is_modern(&self) -> bool {
        self.modern
    }

    fn cancel_for_client(self: Arc<Self>, hub_id: &Value, reason: &Value) {
        let Some(id) = hub_id.as_u64() else { return };
        let inbox = {
            let mut st = self.state.lock();
            st.out.retain(|o| *o != id);
            st.cancelled.push((id, reason.as_str().unwrap_or_default().to_string()));
            st.inboxes.get(&id).cloned()
        };
        if let Some(inbox) = inbox {
            inbox.push(Event::Cancelled);
        }
    }

    /// An answer to one of a modern server's input requests, relayed as `in:<id>:<key>`.
    fn answer_child(&self, relay_id: &str, answer: &Value) -> bool {
        let mut parts = relay_id.splitn(3, ':');
        let (Some("in"), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        let inbox = id.parse().ok().and_then(|id: u64| self.state.lock().inboxes.get(&id).cloned());
        let Some(inbox) = inbox else { return false };
        let outcome = match answer.get("result") {
            Some(r) => Ok(r.clone()),
            None => Err(RpcError::new(jsonrpc::INVALID_PARAMS, "the client declined")),
        };
        inbox.push(Event::Input(key.to_string(), outcome));
        true
    }

    fn notify(self: Arc<Self>, method: &str, params: Option<Value>) {
        self.send(jsonrpc::notification(method, params));
    }

    fn send_only(self: Arc<Self>, method: &str, params: Option<Value>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.send(jsonrpc::request(id, method, params));
    }

    fn lost(&self) -> Option<String> {
        self.state.lock().dead.then(|| "it died".to_string())
    }

    fn close(&self) {}

    fn join(&self, _grace: Duration) {}
}

/// One request to the memory server.
struct Out {
    memory: Arc<Memory>,
    id: u64,
    inbox: Arc<Inbox>,
}

impl Flight for Out {
    fn hub_id(&self) -> u64 {
        self.id
    }

    fn next(&mut self, until: Instant, _latest: Instant) -> Next {
        self.inbox.next(until, Memory::gone)
    }

    fn dock(&self) -> Option<Arc<Inbox>> {
        self.memory.parks.then(|| self.inbox.clone())
    }

    fn cancel(&mut self, reason: &str) {
        let mut st = self.memory.state.lock();
        if st.out.contains(&self.id) {
            st.out.retain(|o| *o != self.id);
            st.cancelled.push((self.id, reason.to_string()));
        }
    }

    fn refuse(&self, msg: &Value) {
        self.memory.state.lock().refused.push(msg.clone());
    }

    fn ask_inputs(&mut self, requests: &Map<String, Value>) {
        for (key, request) in requests {
            let method = request.get("method").and_then(Value::as_str).unwrap_or_default();
            match method {
                "elicitation/create" => {
                    let relay_id = format!("in:{}:{key}", self.id);
                    let msg = json!({"jsonrpc": "2.0", "id": relay_id, "method": method,
                        "params": request.get("params")});
                    self.inbox.push(Event::Message(msg));
                }
                _ => self.inbox.push(Event::Input(key.clone(), Ok(json!({"answered": "by the hub"})))),
            }
        }
    }

    fn resend(&mut self, method: &str, params: Value) -> Result<(), RpcError> {
        self.memory.state.lock().out.push(self.id);
        self.memory.send(jsonrpc::request(self.id, method, Some(params)));
        Ok(())
    }

    fn forget_inputs(&mut self) {}
}
