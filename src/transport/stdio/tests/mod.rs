//! Unit tests of the bridge over in-memory pipes: no process, milliseconds each. Here the
//! harness (`Child`: the test plays the child) and the line reading; `routing` and `life`
//! hold the rest.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::sync::mpsc;

use super::lines::read_line_capped;
use super::*;
use crate::exchange::{Wake, Woken};
use crate::queue::Queue;

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

impl ChildInput for PipeWriter {}

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

mod life;
mod routing;
