//! The stdio bridge to one child: three named threads per child. `stdin` owns the child's stdin
//! and writes the lines handed to it through its `Queue` (drained whole, one write per batch);
//! `stdout` reads one JSON-RPC message per line and routes each response to the caller waiting
//! on its id (`Slot`, a one-shot); `stderr` drains into a ring buffer and the log. Ids
//! sent to the child are the hub's own (unique per child), so concurrent callers never see each
//! other's answers whatever ids they use themselves.
//!
//! The stdin queue is a `queue::Queue` and the slots a mutex and a condvar each, not channels:
//! under load a channel's receiver spins and yields before it sleeps, taking the CPU the child
//! needs.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde_json::{json, Value};

use crate::jsonrpc::{self, Kind, RpcError};
use crate::queue::Queue;

/// Lines of stderr kept per server.
pub const STDERR_LINES: usize = 500;

/// The last lines a child wrote to stderr (kept across restarts).
#[derive(Default)]
pub struct StderrRing {
    lines: VecDeque<String>,
}

impl StderrRing {
    pub fn push(&mut self, line: String) {
        if self.lines.len() == STDERR_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    pub fn tail(&self, n: usize) -> Vec<String> {
        self.lines.iter().skip(self.lines.len().saturating_sub(n)).cloned().collect()
    }
}

/// What the hub does with messages the child starts: its requests (`ping`, `roots/list`, ...)
/// and notifications.
pub trait Peer: Send + Sync {
    /// The answer to a child's request: a result or an error.
    fn request(&self, server: &str, msg: &Value) -> Result<Value, RpcError>;
    /// `relayed`: the message already went to the one client request in flight.
    fn notification(&self, server: &str, msg: &Value, relayed: bool);
}

/// What reaches a caller before (and as) its answer.
#[derive(Debug)]
pub enum Event {
    /// A message from the child for this caller: progress on its request (the caller's token
    /// restored), or a request the child sends its client (sampling, elicitation) under a hub
    /// id `s:<server>:<n>`; its answer goes back through `Bridge::answer_child`.
    Message(Value),
    /// The final answer, id still the hub's.
    Response(Value),
}

/// What `next` found.
#[derive(Debug)]
pub enum Next {
    Event(Event),
    /// The child went away before answering.
    Gone,
    TimedOut,
}

/// Where one request's events land.
struct Slot {
    events: Mutex<(VecDeque<Event>, bool)>,
    ready: Condvar,
    /// A client's request relayed whole: it may receive progress and the child's requests.
    relay: bool,
    /// The caller's own progress token, put back on progress notifications.
    client_token: Option<Value>,
}

impl Slot {
    fn new(relay: bool, client_token: Option<Value>) -> Slot {
        Slot { events: Mutex::new((VecDeque::new(), false)), ready: Condvar::new(), relay, client_token }
    }

    fn push(&self, e: Event) {
        self.events.lock().0.push_back(e);
        self.ready.notify_one();
    }

    fn gone(&self) {
        self.events.lock().1 = true;
        self.ready.notify_one();
    }
}

struct Shared {
    name: String,
    /// Callers waiting for a response, by the hub id sent to the child. `None` once the child's
    /// stdout has closed: nobody may start waiting after that.
    pending: Mutex<Option<HashMap<u64, Arc<Slot>>>>,
    next_id: AtomicU64,
    /// Requests of the child relayed to a client, by the hub id the client sees: the child's id.
    child_requests: Mutex<HashMap<String, Value>>,
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
    outbox: Arc<Queue<String>>,
    closed: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Bridge {
    /// Starts the three threads over a child's pipes. Any writer and readers will do, not only a
    /// process's: tests run a bridge over in-memory pipes, with no process.
    pub fn start(
        name: &str,
        stdin: impl Write + Send + 'static,
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
        });
        let outbox = Arc::new(Queue::default());
        let closed = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(3);
        let n = short(name);
        threads.push(std::thread::Builder::new().name(format!("stdin-{n}")).spawn({
            let outbox = outbox.clone();
            move || write_loop(stdin, &outbox)
        })?);
        let (s, t, c) = (shared.clone(), outbox.clone(), closed.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("stdout-{n}"))
                .spawn(move || read_loop(stdout, &s, &t, &c, peer.as_ref()))?,
        );
        let server = name.to_string();
        threads.push(
            std::thread::Builder::new()
                .name(format!("stderr-{n}"))
                .spawn(move || drain_stderr(stderr, &server, &ring))?,
        );
        Ok(Bridge { shared, outbox, closed, threads: Mutex::new(threads) })
    }

    /// Whether the child's stdout has closed (it exited, or is exiting).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Sends a request with a fresh hub id; `wait` collects the answer.
    pub fn begin(&self, method: &str, params: Option<Value>) -> Result<Pending, RpcError> {
        self.send(method, params, Slot::new(false, None))
    }

    /// Sends a client's request: a fresh hub id, and its progress token (if any) swapped for
    /// that id, so progress finds its way back to this caller alone.
    pub fn begin_relay(&self, request: &Value) -> Result<Pending, RpcError> {
        let mut params = request.get("params").cloned();
        let client_token = params.as_ref().and_then(|p| p.pointer("/_meta/progressToken")).cloned();
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        if client_token.is_some() {
            if let Some(meta) = params.as_mut().and_then(|p| p.get_mut("_meta")) {
                meta["progressToken"] = json!(id);
            }
        }
        self.send_as(id, jsonrpc::method(request), params, Slot::new(true, client_token))
    }

    fn send(&self, method: &str, params: Option<Value>, slot: Slot) -> Result<Pending, RpcError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        self.send_as(id, method, params, slot)
    }

    fn send_as(&self, id: u64, method: &str, params: Option<Value>, slot: Slot) -> Result<Pending, RpcError> {
        let slot = Arc::new(slot);
        match self.shared.pending.lock().as_mut() {
            Some(p) => p.insert(id, slot.clone()),
            None => return Err(self.gone()),
        };
        let line = jsonrpc::request(id, method, params).to_string();
        if !self.outbox.push(line) {
            self.forget(id);
            return Err(self.gone());
        }
        Ok(Pending { id, slot })
    }

    /// The next event for a request, waiting until `deadline`.
    pub fn next(&self, pending: &Pending, deadline: Instant) -> Next {
        let mut ev = pending.slot.events.lock();
        loop {
            if let Some(e) = ev.0.pop_front() {
                return Next::Event(e);
            }
            if ev.1 {
                return Next::Gone;
            }
            if pending.slot.ready.wait_until(&mut ev, deadline).timed_out() && ev.0.is_empty() && !ev.1 {
                return Next::TimedOut;
            }
        }
    }

    /// The full response message, or an error: -32001 after `timeout` (the child is told with
    /// `notifications/cancelled`), -32000 at once when the child exits. Other events are
    /// dropped (callers that want them use `next`).
    pub fn wait(&self, pending: Pending, timeout: Duration) -> Result<Value, RpcError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.next(&pending, deadline) {
                Next::Event(Event::Response(msg)) => return Ok(msg),
                Next::Event(Event::Message(m)) => self.refuse_relay(&m),
                Next::Gone => return Err(self.gone()),
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
        self.notify("notifications/cancelled", Some(json!({"requestId": pending.id, "reason": reason})));
    }

    /// A response if one has arrived (for the supervisor's pings, which must not block).
    pub fn poll(&self, pending: &Pending) -> Option<Result<Value, RpcError>> {
        let mut ev = pending.slot.events.lock();
        while let Some(e) = ev.0.pop_front() {
            if let Event::Response(msg) = e {
                return Some(Ok(msg));
            }
        }
        ev.1.then(|| Err(self.gone()))
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
        let Some(child_id) = self.shared.child_requests.lock().remove(relay_id) else { return false };
        let mut msg = json!({"jsonrpc": "2.0", "id": child_id});
        match (answer.get("result"), answer.get("error")) {
            (Some(r), _) => msg["result"] = r.clone(),
            (None, Some(e)) => msg["error"] = e.clone(),
            (None, None) => {
                msg["error"] = json!({"code": jsonrpc::INTERNAL_ERROR, "message": "empty answer"})
            }
        }
        self.outbox.push(msg.to_string())
    }

    /// Answers a relayed child request with an error: its client cannot take it.
    pub fn refuse_relay(&self, msg: &Value) {
        if jsonrpc::kind(msg) == Kind::Request {
            if let Some(id) = msg.get("id").and_then(Value::as_str) {
                let err = json!({"error": {"code": jsonrpc::METHOD_NOT_FOUND,
                    "message": format!("{} cannot be relayed: the client's request is not streaming", jsonrpc::method(msg))}});
                self.answer_child(id, &err);
            }
        }
    }

    pub fn notify(&self, method: &str, params: Option<Value>) {
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
        RpcError::new(
            jsonrpc::SERVER_UNAVAILABLE,
            format!("server {} exited while the request was in flight", self.shared.name),
        )
    }
}

/// Thread names are capped at 15 bytes by Linux; keep the server name's start.
fn short(name: &str) -> &str {
    let end = name.char_indices().nth(8).map_or(name.len(), |(i, _)| i);
    &name[..end]
}

fn write_loop(mut stdin: impl Write, outbox: &Queue<String>) {
    let mut buf = Vec::new();
    while let Some(lines) = outbox.take_all() {
        buf.clear();
        for line in lines {
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        }
        if stdin.write_all(&buf).and_then(|()| stdin.flush()).is_err() {
            break;
        }
    }
    // Dropping stdin closes the pipe: the child sees EOF.
}

fn read_loop(
    stdout: impl Read,
    shared: &Shared,
    outbox: &Queue<String>,
    closed: &AtomicBool,
    peer: &dyn Peer,
) {
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let msg: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                log::warn!("{}: skipping a stdout line that is not JSON ({e}): {:.200}", shared.name, text);
                continue;
            }
        };
        match jsonrpc::kind(&msg) {
            Kind::Response => {
                let waiter = msg
                    .get("id")
                    .and_then(Value::as_u64)
                    .and_then(|id| shared.pending.lock().as_mut().and_then(|p| p.remove(&id)));
                match waiter {
                    Some(slot) => slot.push(Event::Response(msg)),
                    None => log::debug!(
                        "{}: answer to no pending request (late or cancelled): {:.200}",
                        shared.name,
                        text
                    ),
                }
            }
            Kind::Request => {
                let id = msg.get("id").cloned().unwrap_or(Value::Null);
                if matches!(jsonrpc::method(&msg), "sampling/createMessage" | "elicitation/create") {
                    if let Some(slot) = lone_relay(shared) {
                        let n = shared.next_id.fetch_add(1, Ordering::Relaxed);
                        let relay_id = format!("s:{}:{n}", shared.name);
                        shared.child_requests.lock().insert(relay_id.clone(), id);
                        let mut forward = msg;
                        forward["id"] = json!(relay_id);
                        slot.push(Event::Message(forward));
                        continue;
                    }
                }
                let answer = match peer.request(&shared.name, &msg) {
                    Ok(result) => jsonrpc::result(id, result),
                    Err(e) => json!({"jsonrpc": "2.0", "id": id, "error": e.to_value()}),
                };
                outbox.push(answer.to_string());
            }
            Kind::Notification if jsonrpc::method(&msg) == "notifications/progress" => {
                let slot = msg
                    .pointer("/params/progressToken")
                    .and_then(Value::as_u64)
                    .and_then(|t| shared.pending.lock().as_ref().and_then(|p| p.get(&t).cloned()));
                match slot {
                    Some(slot) if slot.relay => {
                        let mut m = msg;
                        m["params"]["progressToken"] = slot.client_token.clone().unwrap_or(Value::Null);
                        slot.push(Event::Message(m));
                    }
                    _ => log::debug!("{}: progress for no pending request", shared.name),
                }
            }
            Kind::Notification if jsonrpc::method(&msg) == "notifications/message" => {
                // A log line while exactly one client request is in flight belongs to its stream.
                let slot = lone_relay(shared);
                if let Some(slot) = &slot {
                    slot.push(Event::Message(msg.clone()));
                }
                peer.notification(&shared.name, &msg, slot.is_some());
            }
            Kind::Notification => peer.notification(&shared.name, &msg, false),
            Kind::Invalid => {
                log::warn!("{}: skipping an invalid JSON-RPC message: {:.200}", shared.name, text)
            }
        }
    }
    closed.store(true, Ordering::SeqCst);
    // Every waiter wakes at once with "exited".
    let waiting = shared.pending.lock().take();
    for slot in waiting.into_iter().flat_map(HashMap::into_values) {
        slot.gone();
    }
    shared.child_requests.lock().clear();
}

/// The one relayed client request in flight, when there is exactly one: only then is it clear
/// whose client should answer the child's request.
fn lone_relay(shared: &Shared) -> Option<Arc<Slot>> {
    let pending = shared.pending.lock();
    let mut relays = pending.as_ref()?.values().filter(|s| s.relay);
    let first = relays.next()?.clone();
    relays.next().is_none().then_some(first)
}

fn drain_stderr(stderr: impl Read, server: &str, ring: &Mutex<StderrRing>) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf).trim_end().to_string();
        log::debug!("[{server}] {line}");
        ring.lock().push(line);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::mpsc;

    use super::*;

    #[test]
    fn ring_keeps_the_last_lines() {
        let mut r = StderrRing::default();
        for i in 0..(STDERR_LINES + 10) {
            r.push(i.to_string());
        }
        assert_eq!(r.tail(2), ["508", "509"]);
        assert_eq!(r.tail(10_000).len(), STDERR_LINES);
        assert_eq!(r.tail(10_000)[0], "10");
    }

    #[test]
    fn thread_names_fit() {
        assert_eq!(short("sequential-thinking"), "sequenti");
        assert_eq!(short("mem"), "mem");
    }

    /// Long enough never to fire on a loaded machine: every wait below ends on a condition, in
    /// milliseconds.
    const WAIT: Duration = Duration::from_secs(10);

    /// One direction of an in-memory pipe: bytes in the order written; end of file once the
    /// writer is dropped, and writes fail once the reader is (as `EPIPE` would).
    fn pipe() -> (PipeReader, PipeWriter) {
        let chunks = Arc::new(Queue::default());
        (PipeReader { chunks: chunks.clone(), buf: Vec::new(), at: 0 }, PipeWriter(chunks))
    }

    struct PipeReader {
        chunks: Arc<Queue<Vec<u8>>>,
        buf: Vec<u8>,
        at: usize,
    }

    impl Read for PipeReader {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            while self.at == self.buf.len() {
                let Some(chunks) = self.chunks.take_all() else { return Ok(0) };
                (self.buf, self.at) = (chunks.concat(), 0);
            }
            let n = out.len().min(self.buf.len() - self.at);
            out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    impl Drop for PipeReader {
        fn drop(&mut self) {
            self.chunks.close();
        }
    }

    struct PipeWriter(Arc<Queue<Vec<u8>>>);

    impl Write for PipeWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if !buf.is_empty() && !self.0.push(buf.to_vec()) {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Drop for PipeWriter {
        fn drop(&mut self) {
            self.0.close();
        }
    }

    /// The hub's side of the child's requests: answers every one (`x/fail` with an error) and
    /// keeps what it was given.
    #[derive(Default)]
    struct Recorder {
        requests: Mutex<Vec<Value>>,
        notifications: Mutex<Vec<(Value, bool)>>,
    }

    impl Recorder {
        fn asked(&self, method: &str) -> Vec<Value> {
            self.requests.lock().iter().filter(|m| jsonrpc::method(m) == method).cloned().collect()
        }
    }

    impl Peer for Recorder {
        fn request(&self, _: &str, msg: &Value) -> Result<Value, RpcError> {
            self.requests.lock().push(msg.clone());
            match jsonrpc::method(msg) {
                "x/fail" => Err(RpcError::new(jsonrpc::METHOD_NOT_FOUND, "no such method")),
                m => Ok(json!({"from": "peer", "method": m})),
            }
        }

        fn notification(&self, _: &str, msg: &Value, relayed: bool) {
            self.notifications.lock().push((msg.clone(), relayed));
        }
    }

    /// A bridge to server `fx` over in-memory pipes, the test playing the child: `heard` is the
    /// next line the hub wrote to the child's stdin (read by a thread of its own), `say` writes a
    /// line to the child's stdout.
    struct Child {
        bridge: Bridge,
        peer: Arc<Recorder>,
        ring: Arc<Mutex<StderrRing>>,
        stdout: Mutex<Option<PipeWriter>>,
        stderr: Mutex<Option<PipeWriter>>,
        heard: mpsc::Receiver<Value>,
        reader: Option<JoinHandle<()>>,
        syncs: AtomicU64,
    }

    impl Child {
        fn start() -> Child {
            let (stdin_r, stdin_w) = pipe();
            let (stdout_r, stdout_w) = pipe();
            let (stderr_r, stderr_w) = pipe();
            let peer = Arc::new(Recorder::default());
            let ring = Arc::new(Mutex::new(StderrRing::default()));
            let bridge = Bridge::start("fx", stdin_w, stdout_r, stderr_r, ring.clone(), peer.clone())
                .expect("bridge threads");
            let (tx, heard) = mpsc::channel();
            let reader = std::thread::Builder::new()
                .name("fake-child".into())
                .spawn(move || {
                    for line in BufReader::new(stdin_r).lines() {
                        let Ok(line) = line else { break };
                        let msg = match serde_json::from_str(&line) {
                            Ok(v) => v,
                            Err(_) => Value::String(line),
                        };
                        if tx.send(msg).is_err() {
                            break;
                        }
                    }
                })
                .expect("fake child thread");
            Child {
                bridge,
                peer,
                ring,
                stdout: Mutex::new(Some(stdout_w)),
                stderr: Mutex::new(Some(stderr_w)),
                heard,
                reader: Some(reader),
                syncs: AtomicU64::new(0),
            }
        }

        /// The next line the hub wrote to the child.
        fn heard(&self) -> Value {
            self.heard.recv_timeout(WAIT).expect("the hub wrote nothing more to the child")
        }

        fn say(&self, msg: Value) {
            self.say_line(&msg.to_string());
        }

        fn say_line(&self, line: &str) {
            let mut stdout = self.stdout.lock();
            let w = stdout.as_mut().expect("the child's stdout is open");
            w.write_all(format!("{line}\n").as_bytes()).expect("the hub reads the child's stdout");
        }

        fn close_stdout(&self) {
            self.stdout.lock().take();
        }

        /// A ping from the child, which must be the next thing the hub writes: the bridge reads
        /// lines in order, so all the child said before has been routed, and the hub wrote
        /// nothing else meanwhile.
        fn sync(&self) {
            let id = format!("sync-{}", self.syncs.fetch_add(1, Ordering::Relaxed));
            self.say(json!({"jsonrpc": "2.0", "id": id, "method": "ping"}));
            let pong = json!({"jsonrpc": "2.0", "id": id, "result": {"from": "peer", "method": "ping"}});
            assert_eq!(self.heard(), pong);
        }

        fn next(&self, p: &Pending) -> Next {
            self.bridge.next(p, Instant::now() + WAIT)
        }

        fn response(&self, p: &Pending) -> Value {
            match self.next(p) {
                Next::Event(Event::Response(r)) => r,
                other => panic!("expected a response for {}, got {other:?}", p.id()),
            }
        }

        fn message(&self, p: &Pending) -> Value {
            match self.next(p) {
                Next::Event(Event::Message(m)) => m,
                other => panic!("expected a message for {}, got {other:?}", p.id()),
            }
        }

        /// Nothing is waiting for `p` (after a `sync`, nothing more will come of what was said).
        fn nothing_for(&self, p: &Pending) {
            let got = self.bridge.next(p, Instant::now());
            assert!(matches!(got, Next::TimedOut), "expected nothing for {}, got {got:?}", p.id());
        }
    }

    impl Drop for Child {
        fn drop(&mut self) {
            self.close_stdout();
            self.stderr.lock().take();
            self.bridge.join(WAIT);
            if let Some(reader) = self.reader.take() {
                let _ = reader.join();
            }
        }
    }

    fn tools_call(id: Value, params: Value) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
    }

    fn cancelled(id: u64, reason: &str) -> Value {
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": id, "reason": reason}})
    }

    #[test]
    fn callers_with_the_same_id_reach_the_child_under_distinct_ids_and_get_their_own_answers() {
        fn check(client_ids: &[Value]) {
            let child = Child::start();
            let requests: Vec<Value> = client_ids
                .iter()
                .enumerate()
                .map(|(n, id)| tools_call(id.clone(), json!({"name": "echo", "arguments": {"n": n}})))
                .collect();
            let pending: Vec<Pending> =
                requests.iter().map(|r| child.bridge.begin_relay(r).unwrap()).collect();
            let heard: Vec<Value> = requests.iter().map(|_| child.heard()).collect();
            for ((p, request), h) in pending.iter().zip(&requests).zip(&heard) {
                let mut expected = request.clone();
                expected["id"] = json!(p.id());
                assert_eq!(h, &expected, "the request whole, under the hub's id");
            }
            let distinct: HashSet<String> = heard.iter().map(|h| h["id"].to_string()).collect();
            assert_eq!(distinct.len(), client_ids.len(), "{heard:?}");
            // Answered last first: an answer routed by arrival or by the client's id would land
            // on the wrong caller.
            for h in heard.iter().rev() {
                child.say(json!({"jsonrpc": "2.0", "id": h["id"], "result": h["params"]["arguments"]}));
            }
            for (n, p) in pending.iter().enumerate() {
                assert_eq!(child.response(p), json!({"jsonrpc": "2.0", "id": p.id(), "result": {"n": n}}));
            }
            child.sync();
            for p in &pending {
                child.nothing_for(p);
            }
        }
        check(&[json!(1), json!(1)]);
        check(&[json!(0), json!(0), json!(0)]);
        check(&[json!("a"), json!("a")]);
        check(&[json!(1), json!("1"), json!(1)]);
    }

    #[test]
    fn relay_puts_the_clients_id_back() {
        let child = Child::start();
        let bridge = &child.bridge;
        let request = json!({"jsonrpc": "2.0", "id": "client-7", "method": "tools/list"});
        let answer = std::thread::scope(|s| {
            let caller = s.spawn(|| bridge.relay(&request, WAIT));
            let heard = child.heard();
            assert_ne!(heard["id"], request["id"]);
            child.say(json!({"jsonrpc": "2.0", "id": heard["id"], "result": {"tools": []}}));
            caller.join().unwrap()
        });
        assert_eq!(answer, Ok(json!({"jsonrpc": "2.0", "id": "client-7", "result": {"tools": []}})));
    }

    #[test]
    fn progress_tokens_are_swapped_for_the_hub_id_and_put_back_for_their_caller_alone() {
        /// `token`: the client's; `named`: the token on the child's progress, given the hub id;
        /// `delivered`: the token the caller sees, or None when the progress reaches nobody.
        fn check(token: Value, named: fn(u64) -> Value, delivered: Option<Value>) {
            let child = Child::start();
            let params = json!({"name": "slow", "_meta": {"progressToken": token, "other": "kept"}});
            let p = child.bridge.begin_relay(&tools_call(json!(1), params.clone())).unwrap();
            // Same client id, same token: only the hub id tells them apart.
            let bystander = child.bridge.begin_relay(&tools_call(json!(1), params)).unwrap();
            let heard = child.heard();
            assert_eq!(
                heard["params"],
                json!({"name": "slow", "_meta": {"progressToken": p.id(), "other": "kept"}})
            );
            assert_eq!(child.heard()["params"]["_meta"]["progressToken"], json!(bystander.id()));

            let progress = |token: Value| {
                json!({"jsonrpc": "2.0", "method": "notifications/progress",
                    "params": {"progressToken": token, "progress": 1, "total": 2}})
            };
            child.say(progress(named(p.id())));
            if let Some(t) = delivered {
                assert_eq!(child.message(&p), progress(t));
            }
            child.say(json!({"jsonrpc": "2.0", "id": p.id(), "result": {}}));
            assert_eq!(child.response(&p)["id"], json!(p.id()), "no progress came before the answer");
            child.sync();
            child.nothing_for(&bystander);
        }
        check(json!("tok"), |id| json!(id), Some(json!("tok")));
        check(json!(7), |id| json!(id), Some(json!(7)));
        check(json!("tok"), |id| json!(id + 1000), None);
        check(json!("tok"), |id| json!(id.to_string()), None);
        check(json!("tok"), |_| json!("tok"), None);

        // Without a token nothing is added.
        let child = Child::start();
        let params = json!({"name": "quick", "_meta": {"other": 1}});
        let _p = child.bridge.begin_relay(&tools_call(json!(1), params.clone())).unwrap();
        assert_eq!(child.heard()["params"], params);
    }

    #[test]
    fn a_cancelled_request_is_named_to_the_child_and_its_late_answer_reaches_no_one() {
        let child = Child::start();
        let request = tools_call(json!(1), json!({"name": "slow"}));
        let cancelled_one = child.bridge.begin_relay(&request).unwrap();
        let other = child.bridge.begin_relay(&request).unwrap();
        let (id, other_id) = (cancelled_one.id(), other.id());
        child.heard();
        child.heard();
        child.bridge.cancel(cancelled_one, "the caller gave up");
        assert_eq!(child.heard(), cancelled(id, "the caller gave up"));

        // Forgotten at once: `other` is now the lone relayed request the child's requests go to.
        child.say(json!({"jsonrpc": "2.0", "id": 9, "method": "sampling/createMessage", "params": {}}));
        assert_eq!(child.message(&other)["method"], "sampling/createMessage");

        child.say(json!({"jsonrpc": "2.0", "id": id, "result": {"late": true}}));
        child.say(json!({"jsonrpc": "2.0", "id": other_id, "result": {}}));
        assert_eq!(child.response(&other), json!({"jsonrpc": "2.0", "id": other_id, "result": {}}));
        child.sync();
        child.nothing_for(&other);
    }

    #[test]
    fn a_request_that_times_out_gives_32001_and_the_child_is_told() {
        let child = Child::start();
        let p = child.bridge.begin("tools/call", Some(json!({"name": "slow"}))).unwrap();
        let id = p.id();
        child.heard();
        let e = child.bridge.wait(p, Duration::from_millis(20)).unwrap_err();
        assert_eq!(e, RpcError::new(jsonrpc::REQUEST_TIMEOUT, "request to fx timed out after 0.02s"));
        assert_eq!(child.heard(), cancelled(id, "timed out after 0.02s"));
        child.say(json!({"jsonrpc": "2.0", "id": id, "result": {"late": true}}));
        child.sync();

        let p = child.bridge.begin("tools/list", None).unwrap();
        let id = p.id();
        child.heard();
        let e = child.bridge.timed_out(p, Duration::from_secs(30));
        assert_eq!(e, RpcError::new(jsonrpc::REQUEST_TIMEOUT, "request to fx timed out after 30s"));
        assert_eq!(child.heard(), cancelled(id, "timed out after 30s"));
        child.sync();
    }

    #[test]
    fn the_childs_requests_go_to_the_lone_relayed_caller_or_else_to_the_peer() {
        enum To {
            Caller,
            Peer,
        }
        /// `relays`: the requests in flight, each a client's relayed request (true) or the hub's own.
        fn check(relays: &[bool], method: &str, to: To) {
            let child = Child::start();
            let pending: Vec<Pending> = relays
                .iter()
                .map(|&relay| match relay {
                    true => child.bridge.begin_relay(&tools_call(json!(1), json!({}))).unwrap(),
                    false => child.bridge.begin("tools/list", None).unwrap(),
                })
                .collect();
            for _ in &pending {
                child.heard();
            }
            let params = json!({"messages": [], "maxTokens": 10});
            // The child's ids are its own: 1 is also a hub id in flight.
            child.say(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
            match to {
                To::Caller => {
                    let caller = &pending[relays.iter().position(|&r| r).unwrap()];
                    let m = child.message(caller);
                    let relay_id = m["id"].as_str().expect("a string id").to_string();
                    let n = relay_id.strip_prefix("s:fx:").expect("s:<server>:<n>");
                    assert!(n.parse::<u64>().is_ok(), "{relay_id}");
                    assert_eq!(
                        m,
                        json!({"jsonrpc": "2.0", "id": relay_id, "method": method, "params": params})
                    );
                    let answer = json!({"jsonrpc": "2.0", "id": relay_id, "result": {"text": "hi"}});
                    assert!(child.bridge.answer_child(&relay_id, &answer));
                    assert_eq!(child.heard(), json!({"jsonrpc": "2.0", "id": 1, "result": {"text": "hi"}}));
                    assert!(!child.bridge.answer_child(&relay_id, &answer), "answered once only");
                    assert!(child.peer.asked(method).is_empty());
                }
                To::Peer => {
                    let answer =
                        json!({"jsonrpc": "2.0", "id": 1, "result": {"from": "peer", "method": method}});
                    assert_eq!(child.heard(), answer);
                    assert_eq!(child.peer.asked(method).len(), 1);
                }
            }
            child.sync();
            for p in &pending {
                child.nothing_for(p);
            }
        }
        check(&[true], "sampling/createMessage", To::Caller);
        check(&[true], "elicitation/create", To::Caller);
        check(&[false, true, false], "sampling/createMessage", To::Caller);
        check(&[], "sampling/createMessage", To::Peer);
        check(&[], "elicitation/create", To::Peer);
        check(&[false], "sampling/createMessage", To::Peer);
        check(&[true, true], "sampling/createMessage", To::Peer);
        check(&[true, false, true], "elicitation/create", To::Peer);
        check(&[true], "roots/list", To::Peer);
    }

    #[test]
    fn the_clients_answer_reaches_the_child_under_the_childs_id() {
        fn check(answer: Value, child_hears: Value) {
            let child = Child::start();
            let p = child.bridge.begin_relay(&tools_call(json!(1), json!({}))).unwrap();
            child.heard();
            child.say(
                json!({"jsonrpc": "2.0", "id": "c-7", "method": "sampling/createMessage", "params": {}}),
            );
            let relay_id = child.message(&p)["id"].as_str().unwrap().to_string();
            assert!(child.bridge.answer_child(&relay_id, &answer));
            assert_eq!(child.heard(), child_hears);
        }
        let declined = json!({"code": -1, "message": "declined"});
        check(
            json!({"id": "x", "result": {"a": 1}}),
            json!({"jsonrpc": "2.0", "id": "c-7", "result": {"a": 1}}),
        );
        check(json!({"error": declined}), json!({"jsonrpc": "2.0", "id": "c-7", "error": declined}));
        let empty = json!({"code": jsonrpc::INTERNAL_ERROR, "message": "empty answer"});
        check(json!({}), json!({"jsonrpc": "2.0", "id": "c-7", "error": empty}));
    }

    #[test]
    fn wait_refuses_the_childs_requests_for_its_caller() {
        let child = Child::start();
        let bridge = &child.bridge;
        let answer = std::thread::scope(|s| {
            let caller = s.spawn(|| bridge.relay(&tools_call(json!(1), json!({})), WAIT));
            let id = child.heard()["id"].clone();
            child.say(json!({"jsonrpc": "2.0", "id": 4, "method": "elicitation/create", "params": {}}));
            let refused = child.heard();
            assert_eq!(refused["id"], 4);
            assert_eq!(refused["error"]["code"], jsonrpc::METHOD_NOT_FOUND);
            child.say(json!({"jsonrpc": "2.0", "id": id, "result": {}}));
            caller.join().unwrap()
        });
        assert_eq!(answer, Ok(json!({"jsonrpc": "2.0", "id": 1, "result": {}})));
    }

    #[test]
    fn the_peer_answers_pings_and_lines_that_are_not_json_rpc_are_skipped() {
        let child = Child::start();
        let ping = json!({"jsonrpc": "2.0", "id": "p-1", "method": "ping"});
        child.say(ping.clone());
        assert_eq!(
            child.heard(),
            json!({"jsonrpc": "2.0", "id": "p-1", "result": {"from": "peer", "method": "ping"}})
        );
        assert_eq!(child.peer.asked("ping"), [ping]);
        child.say(json!({"jsonrpc": "2.0", "id": 3, "method": "x/fail"}));
        let failed = json!({"code": jsonrpc::METHOD_NOT_FOUND, "message": "no such method"});
        assert_eq!(child.heard(), json!({"jsonrpc": "2.0", "id": 3, "error": failed}));

        let p = child.bridge.begin("tools/list", None).unwrap();
        child.heard();
        let check = |line: &str| {
            child.say_line(line);
            child.sync();
        };
        check("not json");
        check(r#"{"jsonrpc": "2.0", "id": "#);
        check("[1, 2]");
        check(r#""text""#);
        check("   ");
        check("");
        check(r#"{"jsonrpc": "2.0", "id": 1.5, "method": "x"}"#);
        check(r#"{"jsonrpc": "2.0", "id": 999, "result": {}}"#);
        check(r#"{"jsonrpc": "2.0", "id": "1", "result": {}}"#);
        child.nothing_for(&p);
        child.say(json!({"jsonrpc": "2.0", "id": p.id(), "result": {}}));
        child.response(&p);
    }

    #[test]
    fn log_lines_go_to_the_lone_relayed_caller_and_always_to_the_peer() {
        fn check(relays: usize, to_caller: bool) {
            let child = Child::start();
            let pending: Vec<Pending> = (0..relays)
                .map(|_| child.bridge.begin_relay(&tools_call(json!(1), json!({}))).unwrap())
                .collect();
            for _ in &pending {
                child.heard();
            }
            let log = json!({"jsonrpc": "2.0", "method": "notifications/message",
                "params": {"level": "info", "data": "working"}});
            child.say(log.clone());
            let other = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
            child.say(other.clone());
            if to_caller {
                assert_eq!(child.message(&pending[0]), log);
            }
            child.sync();
            for p in &pending {
                child.nothing_for(p);
            }
            assert_eq!(*child.peer.notifications.lock(), [(log, to_caller), (other, false)]);
        }
        check(0, false);
        check(1, true);
        check(2, false);
    }

    #[test]
    fn when_stdout_closes_every_waiter_hears_at_once_and_new_requests_fail() {
        let child = Child::start();
        let own = child.bridge.begin("tools/list", None).unwrap();
        let relayed = child.bridge.begin_relay(&tools_call(json!(1), json!({}))).unwrap();
        let waited = child.bridge.begin("tools/call", None).unwrap();
        for _ in 0..3 {
            child.heard();
        }
        child.say(json!({"jsonrpc": "2.0", "id": 5, "method": "sampling/createMessage", "params": {}}));
        let relay_id = child.message(&relayed)["id"].as_str().unwrap().to_string();

        let bridge = &child.bridge;
        // Had the waiters to wait for their deadline, they would end `TimedOut` and -32001.
        let far = Instant::now() + WAIT;
        let (a, b, c) = std::thread::scope(|s| {
            let a = s.spawn(|| bridge.next(&own, far));
            let b = s.spawn(|| bridge.next(&relayed, far));
            let c = s.spawn(|| bridge.wait(waited, WAIT));
            child.close_stdout();
            (a.join().unwrap(), b.join().unwrap(), c.join().unwrap())
        });
        assert!(matches!((&a, &b), (Next::Gone, Next::Gone)), "{a:?} {b:?}");
        let exited =
            RpcError::new(jsonrpc::SERVER_UNAVAILABLE, "server fx exited while the request was in flight");
        assert_eq!(c, Err(exited.clone()));
        assert!(bridge.is_closed());
        assert!(matches!(bridge.next(&own, far), Next::Gone), "and again, at once");
        assert!(matches!(bridge.poll(&own), Some(Err(e)) if e == exited));
        assert_eq!(bridge.begin("tools/list", None).err(), Some(exited.clone()));
        assert_eq!(bridge.begin_relay(&tools_call(json!(1), json!({}))).err(), Some(exited));
        assert!(!bridge.answer_child(&relay_id, &json!({"result": {}})), "the child's requests went with it");
    }

    #[test]
    fn stderr_lines_land_in_the_ring() {
        let child = Child::start();
        let mut stderr = child.stderr.lock().take().unwrap();
        stderr.write_all(b"starting\n\xffbad byte\nno newline at the end").unwrap();
        drop(stderr);
        let deadline = Instant::now() + WAIT;
        while child.ring.lock().tail(10).len() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(child.ring.lock().tail(10), ["starting", "\u{fffd}bad byte", "no newline at the end"]);
    }
}
