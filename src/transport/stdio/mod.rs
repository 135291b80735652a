//! The stdio bridge to one child: three named threads per child. `stdin` owns the child's stdin
//! and writes the lines handed to it through its `Queue` (drained whole, one write per batch);
//! `stdout` reads one JSON-RPC message per line and routes each response to the caller waiting
//! on its id (`reader`; the caller's `Slot`); `stderr` drains into a ring buffer and the log.
//! Ids sent to the child are the hub's own (unique per child), so concurrent callers never see
//! each other's answers whatever ids they use themselves. `carrier` makes the bridge an
//! `exchange::Transport`.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};

use super::{Later, Peer, short};
use crate::exchange::{Caller, Can, Event, Inbox, Next, cancelled};
use crate::jsonrpc::{self, Kind, RpcError};
use lines::drain_stderr;
pub(crate) use lines::read_line_capped;
#[cfg(test)]
use lines::{STDERR_LINE_BYTES, STDERR_LINES};
pub use lines::{STDOUT_LINE_BYTES, StderrRing};
use reader::read_loop;
use slot::{Origin, Slot};
pub use stdin::ChildInput;
use stdin::{Refused, Stdin, write_loop};

struct Shared {
    name: String,
    /// Callers waiting for a response, by the hub id sent to the child. `None` once the child's
    /// stdout has closed: nobody may start waiting after that.
    pending: Mutex<Option<HashMap<u64, Arc<Slot>>>>,
    next_id: AtomicU64,
    /// Requests of the child relayed to a client, by the hub id the client sees.
    child_requests: Mutex<HashMap<String, Waiting>>,
    /// The child speaks 2026-07-28 (`modern`): requests carry the envelope.
    modern: AtomicBool,
    /// The log level its requests ask for (the envelope's `logLevel`; a modern child has no
    /// `logging/setLevel`).
    log_level: Mutex<Option<String>>,
}

impl Shared {
    /// A request whose call failed past its inbox's bounds (its client did not read what the
    /// child sent for it): forgotten, and the child told to stop working on it.
    fn give_up(&self, outbox: &Stdin, hub_id: u64) {
        if let Some(p) = self.pending.lock().as_mut() {
            p.remove(&hub_id);
        }
        let reason = "its client did not read what the server sent for it";
        let note = json!({"requestId": hub_id, "reason": reason});
        outbox.push(jsonrpc::notification("notifications/cancelled", Some(note)).to_string());
    }
}

/// Whose answer a client's answer to a relayed request is.
enum Waiting {
    /// The child's own request, under the child's id.
    Child(Value),
    /// One of a modern child's `inputRequests` (its key), for the request waiting in the slot.
    Input(Arc<Slot>, String),
}

/// A request sent and not yet answered.
pub struct Pending {
    id: u64,
    slot: Arc<Slot>,
}

impl Pending {
    /// The hub id the child sees (also the progress token it sees).
    pub fn id(&self) -> u64 {
        self.id
    }
}

pub struct Bridge {
    shared: Arc<Shared>,
    outbox: Arc<Stdin>,
    closed: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    peer: Arc<dyn Peer>,
}

impl Bridge {
    /// Starts the three threads over a child's pipes. Any writer and readers will do, not only a
    /// process's: tests run a bridge over in-memory pipes, with no process.
    pub fn start(
        name: &str,
        stdin: impl ChildInput,
        stdout: impl Read + Send + 'static,
        stderr: impl Read + Send + 'static,
        ring: Arc<Mutex<StderrRing>>,
        peer: Arc<dyn Peer>,
    ) -> std::io::Result<Bridge> {
        let shared = Arc::new(Shared {
            name: name.to_string(),
            pending: Mutex::new(Some(HashMap::new())),
            next_id: AtomicU64::new(1),
            child_requests: Mutex::new(HashMap::new()),
            modern: AtomicBool::new(false),
            log_level: Mutex::new(None),
        });
        let outbox = Arc::new(Stdin::new(stdin.direct()));
        let closed = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(3);
        let n = short(name);
        threads.push(std::thread::Builder::new().name(format!("stdin-{n}")).spawn({
            let outbox = outbox.clone();
            move || write_loop(stdin, &outbox)
        })?);
        let (s, t, c, p) = (shared.clone(), outbox.clone(), closed.clone(), peer.clone());
        let (own_peer, peer) = (peer.clone(), peer);
        threads.push(
            std::thread::Builder::new()
                .name(format!("stdout-{n}"))
                .spawn(move || read_loop(stdout, &s, &t, &c, p.as_ref()))?,
        );
        let server = name.to_string();
        threads.push(
            std::thread::Builder::new()
                .name(format!("stderr-{n}"))
                .spawn(move || drain_stderr(stderr, &server, &ring, peer.as_ref()))?,
        );
        Ok(Bridge { shared, outbox, closed, threads: Mutex::new(threads), peer: own_peer })
    }

    /// Whether the child's stdout has closed (it exited, or is exiting).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Sends a request with a fresh hub id; `wait` collects the answer.
    pub fn begin(&self, method: &str, params: Option<Value>) -> Result<Pending, RpcError> {
        let slot = Slot { ping: method == "ping", ..Slot::new(false, None) };
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        self.send_in(id, method, params, Arc::new(slot))
    }

    /// Sends a client's request: a fresh hub id, and its progress token (if any) swapped for
    /// that id, so progress finds its way back to this caller alone.
    pub fn begin_relay(&self, request: &Value) -> Result<Pending, RpcError> {
        self.begin_relay_for(request, Caller { session: String::new(), can: Can::ALL })
    }

    /// As `begin_relay`, for a caller whose client can answer what `caller` says.
    pub fn begin_relay_for(&self, request: &Value, caller: Caller) -> Result<Pending, RpcError> {
        self.begin_relay_owned(request.clone(), caller)
    }

    /// As `begin_relay_for`, taking the request (its params go on without a copy).
    pub fn begin_relay_owned(&self, mut request: Value, caller: Caller) -> Result<Pending, RpcError> {
        let origin = Origin::of(&request, caller);
        let mut params = request.get_mut("params").map(Value::take);
        let client_token = params.as_ref().and_then(|p| p.pointer("/_meta/progressToken")).cloned();
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        if client_token.is_some() {
            if let Some(meta) = params.as_mut().and_then(|p| p.get_mut("_meta")) {
                meta["progressToken"] = json!(id);
            }
        }
        let slot = Slot { origin: Some(origin), ..Slot::new(true, client_token) };
        self.send_in(id, jsonrpc::method(&request), params, Arc::new(slot))
    }

    fn send_in(
        &self,
        id: u64,
        method: &str,
        params: Option<Value>,
        slot: Arc<Slot>,
    ) -> Result<Pending, RpcError> {
        let params = match self.is_modern() {
            true => match self.modern_params(id, method, params, &slot) {
                Some(params) => Some(params),
                None => return Ok(Pending { id, slot }),
            },
            false => params,
        };
        match self.shared.pending.lock().as_mut() {
            Some(p) => p.insert(id, slot.clone()),
            None => return Err(self.gone()),
        };
        let line = jsonrpc::request_line(id, method, params.as_ref());
        match self.outbox.push_request(line) {
            Ok(()) => Ok(Pending { id, slot }),
            Err(refused) => {
                self.forget(id);
                Err(match refused {
                    Refused::Full(waiting) => RpcError::new(
                        jsonrpc::SERVER_UNAVAILABLE,
                        format!("server {} is not reading its input ({waiting})", self.shared.name),
                    ),
                    Refused::Closed => self.gone(),
                })
            }
        }
    }

    /// Why the child is treated as hung: it asked and did not read the answers.
    pub fn hung(&self) -> Option<String> {
        self.outbox.hung()
    }

    /// The next event for a request, waiting until `until`.
    pub fn next(&self, pending: &Pending, until: Instant) -> Next {
        pending.slot.inbox.next(until, || self.gone())
    }

    /// The full response message, or an error: -32001 after `timeout` (the child is told with
    /// `notifications/cancelled`), -32000 at once when the child exits. Other events are
    /// dropped (callers that want them use `next`).
    pub fn wait(&self, pending: Pending, timeout: Duration) -> Result<Value, RpcError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.next(&pending, deadline) {
                Next::Event(Event::Response(msg)) => return Ok(msg),
                Next::Event(Event::Message(m)) => self.refuse_relay(&m, None),
                Next::Event(Event::Input(..)) => {}
                Next::Event(Event::Cancelled) => return Err(cancelled()),
                Next::Gone(e) => return Err(e),
                Next::TimedOut => return Err(self.timed_out(pending, timeout)),
            }
        }
    }

    /// Gives up on a request: the child is told with `notifications/cancelled`; -32001.
    pub fn timed_out(&self, pending: Pending, timeout: Duration) -> RpcError {
        let reason = format!("timed out after {}s", timeout.as_secs_f64());
        self.cancel(pending, &reason);
        RpcError::new(jsonrpc::REQUEST_TIMEOUT, format!("request to {} {reason}", self.shared.name))
    }

    /// Forgets a request and tells the child to stop working on it.
    pub fn cancel(&self, pending: Pending, reason: &str) {
        self.forget(pending.id);
        self.tell_cancelled(pending.id, &json!(reason));
    }

    /// As `cancel`, only if the child still has the request (it was not answered meanwhile).
    fn cancel_if_out(&self, pending: &Pending, reason: &str) {
        let out = self.shared.pending.lock().as_mut().and_then(|p| p.remove(&pending.id));
        if out.is_some() {
            self.tell_cancelled(pending.id, &json!(reason));
        }
    }

    fn tell_cancelled(&self, id: u64, reason: &Value) {
        self.notify("notifications/cancelled", Some(json!({"requestId": id, "reason": reason})));
    }

    /// A client's cancellation of the request the child knows as `id`: the child is told, and
    /// the caller waiting for it is given `Event::Cancelled` at once (so its call ends now,
    /// not at its deadline). False when no such request is out.
    pub fn cancel_for_client(&self, id: u64, reason: &Value) -> bool {
        let slot = self.shared.pending.lock().as_mut().and_then(|p| p.remove(&id));
        let Some(slot) = slot else { return false };
        self.tell_cancelled(id, reason);
        slot.push(Event::Cancelled);
        true
    }

    /// A request's result (the response's `result`, or its error).
    pub fn call(&self, method: &str, params: Option<Value>, timeout: Duration) -> Result<Value, RpcError> {
        let pending = self.begin(method, params)?;
        jsonrpc::outcome(&self.wait(pending, timeout)?)
    }

    /// Relays a client's request whole: its id is swapped for a hub id on the way in and put
    /// back on the way out, so clients that reuse ids never get each other's answers.
    pub fn relay(&self, request: &Value, timeout: Duration) -> Result<Value, RpcError> {
        let client_id = request.get("id").cloned().unwrap_or(Value::Null);
        let pending = self.begin_relay(request)?;
        let mut response = self.wait(pending, timeout)?;
        response["id"] = client_id;
        Ok(response)
    }

    /// Hands a client's answer to a relayed child request back to the child.
    pub fn answer_child(&self, relay_id: &str, answer: &Value) -> bool {
        let waiting = self.shared.child_requests.lock().remove(relay_id);
        let child_id = match waiting {
            Some(Waiting::Child(id)) => id,
            Some(Waiting::Input(slot, key)) => {
                slot.push(Event::Input(key, super::inputs::outcome_of(answer)));
                return true;
            }
            None => return false,
        };
        let mut msg = json!({"jsonrpc": "2.0", "id": child_id});
        match (answer.get("result"), answer.get("error")) {
            (Some(r), _) => msg["result"] = r.clone(),
            (None, Some(e)) => msg["error"] = e.clone(),
            (None, None) => {
                msg["error"] = json!({"code": jsonrpc::INVALID_REQUEST,
                    "message": "the client's answer had neither result nor error"})
            }
        }
        self.outbox.push(msg.to_string())
    }

    /// Answers a child request relayed to a caller that cannot take it (its answer is not a
    /// stream) as a client without the capability would, or has the peer answer it later
    /// (`call`: the inbox of the call it belongs to).
    pub fn refuse_relay(&self, msg: &Value, call: Option<&Arc<Inbox>>) {
        if jsonrpc::kind(msg) != Kind::Request {
            return;
        }
        let Some(id) = msg.get("id").and_then(Value::as_str) else { return };
        let why = "the client's request that it belongs to does not take a stream";
        if self.peer.answer_later(&self.shared.name, Later { forward: msg, why, call }) {
            return;
        }
        let answer = match self.peer.unrouted(&self.shared.name, msg, why) {
            Ok(r) => json!({"result": r}),
            Err(e) => json!({"error": e.to_value()}),
        };
        self.answer_child(id, &answer);
    }

    /// Sends a request whose answer nobody waits for (it is logged and dropped when it comes).
    pub fn send_only(&self, method: &str, params: Option<Value>) {
        if let Ok(p) = self.begin(method, params) {
            self.forget(p.id);
        }
    }

    pub fn notify(&self, method: &str, params: Option<Value>) {
        if self.is_modern() && method == "notifications/roots/list_changed" {
            // A modern server asks for roots within a request; it has no list to refresh.
            return;
        }
        self.outbox.push(jsonrpc::notification(method, params).to_string());
    }

    /// Closes the child's stdin: the polite way to ask an MCP server to exit.
    pub fn close_stdin(&self) {
        self.outbox.close();
    }

    /// Joins the threads once the child is gone; threads still blocked after `grace` (a
    /// grandchild holding a pipe open) are left to end with it.
    pub fn join(&self, grace: Duration) {
        self.close_stdin();
        let deadline = Instant::now() + grace;
        for t in self.threads.lock().drain(..) {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }

    fn forget(&self, id: u64) {
        if let Some(p) = self.shared.pending.lock().as_mut() {
            p.remove(&id);
        }
    }

    fn gone(&self) -> RpcError {
        let why = match self.outbox.hung() {
            Some(hung) => format!("server {} {hung}", self.shared.name),
            None => format!("server {} exited while the request was in flight", self.shared.name),
        };
        RpcError::new(jsonrpc::SERVER_UNAVAILABLE, why)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // Whatever path dropped it, the stdin thread ends and closes the child's stdin.
        self.outbox.close();
    }
}

mod carrier;
mod lines;
mod modern;
mod reader;
mod route;
mod slot;
mod stdin;
#[cfg(test)]
mod tests;
