//! Unit tests of the bridge over in-memory pipes: no process, milliseconds each.

use std::collections::HashSet;
use std::sync::mpsc;

use std::io::BufRead;

use super::lines::read_line_capped;
use super::*;
use crate::queue::Queue;
use std::io::Write;

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

impl super::ChildInput for PipeWriter {}

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
    notifications: Mutex<Vec<Value>>,
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

    fn unrouted(&self, _: &str, msg: &Value, why: &str) -> Result<Value, RpcError> {
        self.requests.lock().push(msg.clone());
        Ok(json!({"from": "peer", "method": jsonrpc::method(msg), "why": why}))
    }

    fn notification(&self, _: &str, msg: &Value) {
        self.notifications.lock().push(msg.clone());
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
        self.say_bytes(format!("{line}\n").as_bytes());
    }

    fn say_bytes(&self, bytes: &[u8]) {
        let mut stdout = self.stdout.lock();
        let w = stdout.as_mut().expect("the child's stdout is open");
        w.write_all(bytes).expect("the hub reads the child's stdout");
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
        let pending: Vec<Pending> = requests.iter().map(|r| child.bridge.begin_relay(r).unwrap()).collect();
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

/// Who is in flight when the child asks its client something.
#[derive(Clone, Copy)]
enum Flight {
    /// The hub's own request or a REST caller's.
    Own,
    /// A client's relayed request; its client can answer what `Can` says; its tool arguments.
    Client(Can, &'static str),
}

#[test]
fn the_childs_requests_go_to_the_caller_that_can_answer_or_else_to_the_peer() {
    enum To {
        Caller(usize),
        Peer(&'static str),
    }
    fn check(flights: &[Flight], method: &str, params: Value, to: To) {
        let child = Child::start();
        let pending: Vec<Pending> = flights
            .iter()
            .map(|f| match *f {
                Flight::Client(can, arg) => {
                    let caller = Caller { session: "s".into(), can };
                    let call = tools_call(json!(1), json!({"name": "t", "arguments": {"prompt": arg}}));
                    child.bridge.begin_relay_for(&call, caller).unwrap()
                }
                Flight::Own => child.bridge.begin("tools/list", None).unwrap(),
            })
            .collect();
        for _ in &pending {
            child.heard();
        }
        // The child's ids are its own: 1 is also a hub id in flight.
        child.say(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
        match to {
            To::Caller(i) => {
                let m = child.message(&pending[i]);
                let relay_id = m["id"].as_str().expect("a string id").to_string();
                let n = relay_id.strip_prefix("s:fx:").expect("s:<server>:<n>");
                assert!(n.parse::<u64>().is_ok(), "{relay_id}");
                assert_eq!(m, json!({"jsonrpc": "2.0", "id": relay_id, "method": method, "params": params}));
                let answer = json!({"jsonrpc": "2.0", "id": relay_id, "result": {"text": "hi"}});
                assert!(child.bridge.answer_child(&relay_id, &answer));
                assert_eq!(child.heard(), json!({"jsonrpc": "2.0", "id": 1, "result": {"text": "hi"}}));
                assert!(!child.bridge.answer_child(&relay_id, &answer), "answered once only");
                assert!(child.peer.asked(method).is_empty());
            }
            To::Peer(why) => {
                let heard = child.heard();
                assert_eq!(heard["result"]["from"], "peer", "{heard}");
                let said = heard["result"]["why"].as_str().unwrap_or("").to_string();
                assert!(said.contains(why), "{said:?} does not say {why:?}");
                assert_eq!(child.peer.asked(method).len(), 1);
            }
        }
        child.sync();
        for (i, p) in pending.iter().enumerate() {
            if !matches!(to, To::Caller(c) if c == i) {
                child.nothing_for(p);
            }
        }
    }
    let all = Can::ALL;
    let none = Can::default();
    let sampling = Can { sampling: true, ..none };
    let form = Can { form: true, ..none };
    let url = Can { url: true, ..none };
    let roots = Can { roots: true, ..none };
    let sample = json!({"messages": [], "maxTokens": 10});
    let url_mode =
        json!({"mode": "url", "url": "https://example.com", "message": "go", "elicitationId": "e"});
    check(&[Flight::Client(all, "x")], "sampling/createMessage", sample.clone(), To::Caller(0));
    check(&[Flight::Client(form, "x")], "elicitation/create", json!({}), To::Caller(0));
    check(&[Flight::Client(roots, "x")], "roots/list", json!({}), To::Caller(0));
    check(&[Flight::Client(url, "x")], "elicitation/create", url_mode.clone(), To::Caller(0));
    // A REST or hub request cannot answer: the one client request that can does.
    check(
        &[Flight::Own, Flight::Client(all, "x"), Flight::Own],
        "sampling/createMessage",
        sample.clone(),
        To::Caller(1),
    );
    // Only the client that declared the capability is asked.
    check(
        &[Flight::Client(none, "x"), Flight::Client(sampling, "y")],
        "sampling/createMessage",
        sample.clone(),
        To::Caller(1),
    );
    check(&[Flight::Client(form, "x")], "elicitation/create", url_mode, To::Peer("declared url elicitation"));
    check(&[Flight::Client(sampling, "x")], "roots/list", json!({}), To::Peer("declared roots"));
    // Several could: the one whose arguments the request quotes, else nobody.
    let quoting = json!({"messages": [{"role": "user", "content": {"type": "text", "text": "context: second prompt"}}], "maxTokens": 10});
    let two = [Flight::Client(sampling, "first prompt"), Flight::Client(sampling, "second prompt")];
    check(&two, "sampling/createMessage", quoting, To::Caller(1));
    check(&two, "sampling/createMessage", sample.clone(), To::Peer("2 client requests that could answer"));
    check(&[], "sampling/createMessage", sample.clone(), To::Peer("no client request is in flight on fx"));
    check(&[], "elicitation/create", json!({}), To::Peer("no client request is in flight"));
    check(&[Flight::Own], "sampling/createMessage", sample, To::Peer("only REST or hub requests"));
}

#[test]
fn a_request_naming_a_task_goes_to_that_tasks_caller() {
    let child = Child::start();
    let caller = Caller { session: "s".into(), can: Can::ALL };
    let other =
        child.bridge.begin_relay_for(&tools_call(json!(1), json!({"name": "t"})), caller.clone()).unwrap();
    let result = json!({"jsonrpc": "2.0", "id": 2, "method": "tasks/result", "params": {"taskId": "task-7"}});
    let waiting = child.bridge.begin_relay_for(&result, caller).unwrap();
    child.heard();
    child.heard();
    child.say(json!({"jsonrpc": "2.0", "id": 3, "method": "elicitation/create",
        "params": {"message": "?", "requestedSchema": {}, "_meta": {"io.modelcontextprotocol/related-task": {"taskId": "task-7"}}}}));
    assert_eq!(child.message(&waiting)["method"], "elicitation/create");
    child.sync();
    child.nothing_for(&other);
}

#[test]
fn a_health_ping_in_flight_does_not_hide_the_caller() {
    let child = Child::start();
    let _ping = child.bridge.begin("ping", None).unwrap();
    let caller = child.bridge.begin_relay(&tools_call(json!(1), json!({}))).unwrap();
    child.heard();
    child.heard();
    child.say(json!({"jsonrpc": "2.0", "id": 9, "method": "sampling/createMessage", "params": {}}));
    assert_eq!(child.message(&caller)["method"], "sampling/createMessage");
}

#[test]
fn the_clients_answer_reaches_the_child_under_the_childs_id() {
    fn check(answer: Value, child_hears: Value) {
        let child = Child::start();
        let p = child.bridge.begin_relay(&tools_call(json!(1), json!({}))).unwrap();
        child.heard();
        child.say(json!({"jsonrpc": "2.0", "id": "c-7", "method": "sampling/createMessage", "params": {}}));
        let relay_id = child.message(&p)["id"].as_str().unwrap().to_string();
        assert!(child.bridge.answer_child(&relay_id, &answer));
        assert_eq!(child.heard(), child_hears);
    }
    let declined = json!({"code": -1, "message": "declined"});
    check(json!({"id": "x", "result": {"a": 1}}), json!({"jsonrpc": "2.0", "id": "c-7", "result": {"a": 1}}));
    check(json!({"error": declined}), json!({"jsonrpc": "2.0", "id": "c-7", "error": declined}));
    let empty = json!({"code": jsonrpc::INVALID_REQUEST, "message": "the client's answer had neither result nor error"});
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
        // Answered as a client without the capability would (the peer's fallback), saying why.
        assert_eq!(refused["id"], 4);
        assert_eq!(refused["result"]["from"], "peer");
        assert!(refused["result"]["why"].as_str().unwrap().contains("does not take a stream"), "{refused}");
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
fn log_lines_go_to_the_peer_whoever_is_in_flight() {
    // The gateway sends them on, to the sessions that set a level: never guessed onto a stream.
    let child = Child::start();
    let p = child.bridge.begin_relay(&tools_call(json!(1), json!({}))).unwrap();
    child.heard();
    let log = json!({"jsonrpc": "2.0", "method": "notifications/message",
        "params": {"level": "info", "data": "working"}});
    child.say(log.clone());
    let other = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
    child.say(other.clone());
    child.sync();
    child.nothing_for(&p);
    assert_eq!(*child.peer.notifications.lock(), [log, other]);
}

#[test]
fn when_stdout_closes_every_waiter_hears_at_once_and_new_requests_fail() {
    let child = Child::start();
    // The child's request comes while the relayed request is alone in flight.
    let relayed = child.bridge.begin_relay(&tools_call(json!(1), json!({}))).unwrap();
    child.heard();
    child.say(json!({"jsonrpc": "2.0", "id": 5, "method": "sampling/createMessage", "params": {}}));
    let relay_id = child.message(&relayed)["id"].as_str().unwrap().to_string();
    let own = child.bridge.begin("tools/list", None).unwrap();
    let waited = child.bridge.begin("tools/call", None).unwrap();
    for _ in 0..2 {
        child.heard();
    }

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

#[test]
fn a_stdout_line_that_is_not_utf8_is_skipped() {
    let child = Child::start();
    let p = child.bridge.begin("tools/list", None).unwrap();
    child.heard();
    child.say_bytes(b"{\"jsonrpc\": \"2.0\", \"method\": \"x\xff\xfe\"}\n");
    child.sync();
    child.say(json!({"jsonrpc": "2.0", "id": p.id(), "result": {"ok": true}}));
    assert_eq!(child.response(&p)["result"], json!({"ok": true}), "the bridge kept reading");
}

#[test]
fn progress_reaches_only_a_caller_that_asked_for_it() {
    let child = Child::start();
    let p = child.bridge.begin_relay(&tools_call(json!(1), json!({"name": "t"}))).unwrap();
    child.heard();
    child.say(json!({"jsonrpc": "2.0", "method": "notifications/progress",
        "params": {"progressToken": p.id(), "progress": 1}}));
    child.sync();
    child.nothing_for(&p);
}

#[test]
fn once_the_childs_stdin_is_broken_requests_fail_at_once() {
    let (stdin_r, stdin_w) = pipe();
    let (stdout_r, stdout_w) = pipe();
    let (stderr_r, stderr_w) = pipe();
    drop(stdin_r);
    let ring = Arc::new(Mutex::new(StderrRing::default()));
    let bridge =
        Bridge::start("fx", stdin_w, stdout_r, stderr_r, ring, Arc::new(Recorder::default())).unwrap();
    let deadline = Instant::now() + WAIT;
    let e = loop {
        match bridge.begin("tools/list", None) {
            Err(e) => break e,
            Ok(_) => assert!(Instant::now() < deadline, "requests kept being queued for a broken pipe"),
        }
        std::thread::yield_now();
    };
    assert_eq!(e.code, jsonrpc::SERVER_UNAVAILABLE);
    drop((stdout_w, stderr_w));
    bridge.join(WAIT);
}

#[test]
fn lines_are_read_within_a_cap() {
    fn check(input: &[u8], cap: usize, want: &[(&[u8], bool)]) {
        let mut r = std::io::BufReader::with_capacity(4, input);
        for (line, cut) in want {
            let mut out = Vec::new();
            let (n, was_cut) = read_line_capped(&mut r, &mut out, cap).unwrap();
            assert!(n > 0);
            assert_eq!((out.as_slice(), was_cut), (*line, *cut), "{input:?}");
        }
        assert_eq!(read_line_capped(&mut r, &mut Vec::new(), cap).unwrap().0, 0, "then the end");
    }
    check(b"ab\ncd\n", 10, &[(b"ab\n", false), (b"cd\n", false)]);
    check(b"abcdefgh\nx", 3, &[(b"abc", true), (b"def", true), (b"gh\n", false), (b"x", false)]);
    check(b"\n\n", 1, &[(b"\n", false), (b"\n", false)]);
}

#[test]
fn a_huge_stderr_line_is_kept_cut() {
    let child = Child::start();
    let mut stderr = child.stderr.lock().take().unwrap();
    stderr.write_all(&vec![b'x'; 100_000]).unwrap();
    stderr.write_all(b"\nnext\n").unwrap();
    drop(stderr);
    let deadline = Instant::now() + WAIT;
    while child.ring.lock().tail(10).len() < 2 && Instant::now() < deadline {
        std::thread::yield_now();
    }
    let tail = child.ring.lock().tail(10);
    assert_eq!(tail[0].len(), STDERR_LINE_BYTES + " [...]".len());
    assert_eq!(tail[1], "next");
}

#[test]
fn a_stdout_message_past_the_cap_closes_the_bridge() {
    let child = Child::start();
    let p = child.bridge.begin("tools/list", None).unwrap();
    child.heard();
    child.say_bytes(&vec![b' '; STDOUT_LINE_BYTES + 1]);
    assert!(matches!(child.next(&p), Next::Gone), "the waiter hears at once");
    assert!(child.bridge.is_closed());
}

/// A child's stdin that takes nothing: every write blocks until the test ends.
struct Stuck(Mutex<std::sync::mpsc::Receiver<()>>);

impl super::ChildInput for Stuck {}

impl Write for Stuck {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.lock().recv();
        Err(std::io::ErrorKind::BrokenPipe.into())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_child_that_does_not_read_cannot_grow_its_backlog_without_bound() {
    let (release, stuck) = std::sync::mpsc::channel();
    let (stdout_r, stdout_w) = pipe();
    let (stderr_r, stderr_w) = pipe();
    let ring = Arc::new(Mutex::new(StderrRing::default()));
    let bridge = Bridge::start(
        "fx",
        Stuck(Mutex::new(stuck)),
        stdout_r,
        stderr_r,
        ring,
        Arc::new(Recorder::default()),
    )
    .unwrap();
    let big = json!({"text": "x".repeat(1 << 20)});
    let mut sent = 0;
    let e = loop {
        match bridge.begin("tools/call", Some(big.clone())) {
            Ok(_) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 1000, "the backlog grew past its bound");
    };
    assert!((60..=70).contains(&sent), "about 64 MiB were taken: {sent}");
    assert_eq!(e.code, jsonrpc::SERVER_UNAVAILABLE);
    assert!(e.message.contains("not reading its input"), "{}", e.message);
    drop(release);
    drop((stdout_w, stderr_w));
    bridge.join(WAIT);
}

#[test]
fn a_modern_child_gets_the_envelope_and_its_input_requests_go_to_their_caller() {
    let c = Child::start();
    c.bridge.set_modern();
    let meta = |m: &Value, key: &str| m["params"]["_meta"][format!("io.modelcontextprotocol/{key}")].clone();
    let _own = c.bridge.begin("tools/list", None).unwrap();
    let sent = c.heard();
    assert_eq!(meta(&sent, "protocolVersion"), "2026-07-28");
    assert_eq!(meta(&sent, "clientInfo")["name"], "agenthub");
    assert_eq!(meta(&sent, "clientCapabilities"), json!({}), "the hub's own request");
    // logging/setLevel is the hub's to answer: nothing reaches the child, nor roots/list_changed.
    let level = c.bridge.begin("logging/setLevel", Some(json!({"level": "error"}))).unwrap();
    assert_eq!(c.response(&level)["result"], json!({}));
    c.bridge.notify("notifications/roots/list_changed", None);

    let caller = Caller { session: "s".into(), can: Can { form: true, ..Can::default() } };
    let call = json!({"jsonrpc": "2.0", "id": "c1", "method": "tools/call",
        "params": {"name": "ask", "_meta": {"progressToken": "mine"}}});
    let p = c.bridge.begin_relay_for(&call, caller).unwrap();
    let sent = c.heard();
    assert_eq!(sent["method"], "tools/call", "{sent}");
    assert_eq!(meta(&sent, "clientCapabilities"), json!({"elicitation": {"form": {}}}));
    assert_eq!(meta(&sent, "logLevel"), "error");
    assert_eq!(sent["params"]["_meta"]["progressToken"], json!(p.id()));
    c.say(json!({"jsonrpc": "2.0", "id": p.id(), "result": {"resultType": "input_required"}}));
    c.response(&p);

    let requests = json!({"color": {"method": "elicitation/create", "params": {"message": "color?"}},
        "roots": {"method": "roots/list"}});
    c.bridge.ask_inputs(&p, requests.as_object().unwrap());
    // The caller's client can answer the elicitation: it gets it under a relay id.
    let asked = c.message(&p);
    assert_eq!(asked["method"], "elicitation/create");
    assert!(asked["id"].as_str().is_some_and(|id| id.starts_with("s:fx:")), "{asked}");
    // Not roots: the hub answers at once.
    match c.next(&p) {
        Next::Event(Event::Input(key, Ok(v))) => {
            assert_eq!((key.as_str(), &v["method"]), ("roots", &json!("roots/list")))
        }
        other => panic!("expected the hub's answer for roots, got {other:?}"),
    }
    let id = asked["id"].as_str().unwrap();
    assert!(c.bridge.answer_child(id, &json!({"result": {"action": "accept"}})));
    assert!(!c.bridge.answer_child(id, &json!({"result": {}})), "answered once");
    match c.next(&p) {
        Next::Event(Event::Input(key, Ok(v))) => {
            assert_eq!((key.as_str(), v), ("color", json!({"action": "accept"})))
        }
        other => panic!("expected the client's answer, got {other:?}"),
    }
    // Sent again under the same hub id, the caller's slot still waiting.
    let again = c
        .bridge
        .resend(&p, "tools/call", json!({"name": "ask", "_meta": {"progressToken": "mine"}}))
        .unwrap();
    assert_eq!(again.id(), p.id());
    let sent = c.heard();
    assert_eq!((&sent["id"], &sent["params"]["_meta"]["progressToken"]), (&json!(p.id()), &json!(p.id())));
    c.say(json!({"jsonrpc": "2.0", "id": p.id(), "result": {"content": []}}));
    assert_eq!(c.response(&again)["result"], json!({"content": []}));
}

/// What a parked caller was run with, and on which thread.
fn parked(p: &Pending, until: Instant) -> mpsc::Receiver<(Woken, String)> {
    let (tx, rx) = mpsc::channel();
    p.wake(until).park(Box::new(move |woken| {
        let thread = std::thread::current().name().unwrap_or("").to_string();
        let _ = tx.send((woken, thread));
    }));
    rx
}

#[test]
fn a_parked_caller_is_run_by_the_reader_that_brings_its_answer() {
    let child = Child::start();
    let p = child.bridge.begin_relay(&tools_call(json!(1), json!({}))).unwrap();
    let sent = child.heard();
    let woken = parked(&p, Instant::now() + WAIT);
    child.sync();
    assert!(woken.try_recv().is_err(), "run before anything came");
    child.say(json!({"jsonrpc": "2.0", "id": sent["id"], "result": {"n": 1}}));
    assert_eq!(woken.recv_timeout(WAIT).unwrap(), (Woken::Ready, "stdout-fx".to_string()));
    // The answer waits in the slot for the continuation to take.
    assert_eq!(child.response(&p)["result"], json!({"n": 1}));

    // Answered before it parks: run at once, where it parks.
    let p = child.bridge.begin_relay(&tools_call(json!(2), json!({}))).unwrap();
    let sent = child.heard();
    child.say(json!({"jsonrpc": "2.0", "id": sent["id"], "result": {}}));
    child.sync();
    let here = std::thread::current().name().unwrap_or("").to_string();
    assert_eq!(parked(&p, Instant::now() + WAIT).try_recv().unwrap(), (Woken::Ready, here));
}

#[test]
fn a_parked_caller_goes_on_elsewhere_when_anything_but_its_answer_comes() {
    let child = Child::start();
    // Nothing by its time: the timer runs it, to wait on a thread of its own.
    let p = child.bridge.begin_relay(&tools_call(json!(1), json!({}))).unwrap();
    child.heard();
    let started = Instant::now();
    let woken = parked(&p, started + Duration::from_millis(30));
    assert_eq!(woken.recv_timeout(WAIT).unwrap(), (Woken::Wait, "call-timer".to_string()));
    assert!(started.elapsed() >= Duration::from_millis(30));

    // Progress first.
    let params = json!({"name": "slow", "_meta": {"progressToken": "mine"}});
    let p = child.bridge.begin_relay(&tools_call(json!(2), params)).unwrap();
    let sent = child.heard();
    let woken = parked(&p, Instant::now() + WAIT);
    child.say(json!({"jsonrpc": "2.0", "method": "notifications/progress",
        "params": {"progressToken": sent["params"]["_meta"]["progressToken"], "progress": 1}}));
    assert_eq!(woken.recv_timeout(WAIT).unwrap(), (Woken::Wait, "stdout-fx".to_string()));
    assert_eq!(child.message(&p)["params"]["progressToken"], "mine");

    // The child's end is an outcome: the wait returns at once.
    let p = child.bridge.begin_relay(&tools_call(json!(3), json!({}))).unwrap();
    child.heard();
    let woken = parked(&p, Instant::now() + WAIT);
    child.close_stdout();
    assert_eq!(woken.recv_timeout(WAIT).unwrap(), (Woken::Ready, "stdout-fx".to_string()));
    assert!(matches!(child.bridge.next(&p, Instant::now()), Next::Gone));
}
