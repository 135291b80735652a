//! One connection's requests, and where their answers go. The `http-conn` thread reads a
//! request (head, the service's admission, body), hands it to a worker, and goes back to
//! reading at once. Every answer goes out through the request's `Responder`: the whole answer
//! is written to the socket by whichever thread has it (the worker, or the thread that finished
//! a later answer) when the socket takes it without waiting; what may take long (`spawn`ed
//! work, streams, a write the socket cannot take now) goes on on an `http-answer` thread of its
//! own. So a request wakes the connection's thread once, when its client speaks, and never
//! holds a worker on a slow client.
//!
//! The connection's `Out` keeps the answers in order: a request is handed on only once the
//! answer before it is out, and the connection thread writes nothing (a refusal, a `100
//! Continue`) while an answer is owed. Since the connection thread is reading meanwhile, it is
//! the one that sees a client leave: `Responder::gone` says so to whoever works for it.

use std::io::ErrorKind;
use std::net::{Shutdown, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::budget::Hold;
use super::conn::Conn;
use super::head::{Framing, Head, ReadError};
use super::wire::{Cors, Reply, Req, whole, write_stream};
use super::{Admission, Front, Job, code_of};

/// The writing side of one connection, shared by its reader and whoever holds its answer.
pub(super) struct Out {
    stream: Arc<TcpStream>,
    turn: Mutex<Turn>,
    free: Condvar,
    /// The client left while an answer was owed: the call working for it is cancelled.
    gone: Arc<AtomicBool>,
}

#[derive(Default)]
struct Turn {
    /// A request was handed on and its answer is not out yet.
    owed: bool,
    /// A write failed: nothing more goes out on this connection.
    broken: bool,
}

impl Out {
    fn new(stream: Arc<TcpStream>) -> Out {
        Out { stream, turn: Mutex::default(), free: Condvar::new(), gone: Arc::default() }
    }

    /// Waits until no answer is owed; false when the connection is broken.
    fn wait_free(&self) -> bool {
        let mut t = self.turn.lock();
        while t.owed {
            self.free.wait(&mut t);
        }
        !t.broken
    }

    fn is_owed(&self) -> bool {
        self.turn.lock().owed
    }

    /// The next answer is owed: `Owed` hands it over (and ends the turn however it ends).
    /// `last`: the connection closes after it.
    fn owe(self: &Arc<Out>, last: bool) -> Owed {
        self.turn.lock().owed = true;
        Owed { out: Some(self.clone()), last }
    }
}

/// The turn of one answer on a connection. Ended by `done`, or, if the answer is dropped
/// unsent (a panic, a front that stopped), on drop as broken.
pub(super) struct Owed {
    out: Option<Arc<Out>>,
    last: bool,
}

impl Owed {
    fn out(&self) -> &Out {
        self.out.as_deref().expect("an answer's turn holds its connection until done")
    }

    /// The answer is out (`sent`), or could not go out: the next request may go on.
    fn done(mut self, sent: bool) {
        if let Some(out) = self.out.take() {
            end_turn(&out, sent, self.last);
        }
    }
}

impl Drop for Owed {
    fn drop(&mut self) {
        if let Some(out) = self.out.take() {
            end_turn(&out, false, self.last);
        }
    }
}

fn end_turn(out: &Out, sent: bool, last: bool) {
    if !sent || last {
        // The connection ends (what was written still goes out); its reader, waiting for the
        // client's next word, sees the end at once.
        let _ = out.stream.shutdown(Shutdown::Both);
    }
    let mut t = out.turn.lock();
    t.owed = false;
    t.broken |= !sent;
    out.free.notify_one();
}

/// What an answer needs beside the reply: how to frame it and where it goes.
pub(super) struct Answer {
    pub owed: Owed,
    pub origin: Option<String>,
    pub keep: bool,
    pub http10: bool,
    pub started: Instant,
    /// The body's place in the bodies' budget, given back once the request is answered.
    pub hold: Hold,
}

impl Answer {
    fn cors(&self, front: &Front) -> Option<Cors<'_>> {
        self.origin.as_deref().map(|origin| Cors { origin, expose: front.cors_expose })
    }
}

/// One connection's requests, one after the other, until it closes, stays idle too long,
/// sends something malformed, or the front stops.
pub(super) fn serve(front: &Arc<Front>, mut conn: Conn) {
    let budget = front.read_timeout;
    let out = Arc::new(Out::new(conn.stream().clone()));
    loop {
        let head = match conn.read_head(2 * budget, budget) {
            Ok(h) => h,
            // An answer still coming (a long call, a stream) keeps the connection.
            Err(ReadError::Idle) if out.is_owed() => continue,
            Err(ReadError::Idle) => return,
            Err(ReadError::Closed) => {
                // A client that leaves while waiting is gone for whoever works for it; a front
                // that stops lets the answer finish.
                if !front.stop.load(Ordering::SeqCst) {
                    out.gone.store(true, Ordering::Release);
                }
                out.wait_free();
                return;
            }
            Err(ReadError::Refuse(status, why)) => {
                if out.wait_free() {
                    let id = crate::request_id::generate();
                    refuse(front, conn, Reply::error(status, code_of(status), why), None, &id);
                }
                return;
            }
        };
        let started = Instant::now();
        let keep = head.keep_alive() && !front.stop.load(Ordering::SeqCst);
        let framing = super::head::framing(&head);
        let http10 = head.http10;
        let mut req = request_of(head);
        req.id = crate::request_id::of_header(req.header("x-request-id"));
        let Admission { refusal, cors_origin: origin } = front.service.admit(&req);
        // Nothing is written for this request until the answer before it is out.
        if !out.wait_free() {
            return;
        }
        let framing = match framing {
            Ok(f) => f,
            Err(ReadError::Refuse(status, why)) => {
                front.service.refused(&req, status, started);
                return refuse(
                    front,
                    conn,
                    Reply::error(status, code_of(status), why),
                    origin.as_deref(),
                    &req.id,
                );
            }
            Err(_) => return,
        };
        // The admission and the declared size are checked before any body is read: a refusal
        // never waits for one.
        let refusal = refusal.or_else(|| match framing {
            Framing::Length(n) if n > front.max_body_bytes => Some(too_large(front.max_body_bytes)),
            _ => None,
        });
        if let Some(mut reply) = refusal {
            front.service.refused(&req, reply.status, started);
            if reply.status == 204 && framing == Framing::Length(0) && keep {
                reply.headers.push(("X-Request-Id", req.id.clone()));
                // A CORS preflight: answered, and the connection stays.
                let cors = origin.as_deref().map(|origin| Cors { origin, expose: front.cors_expose });
                let bytes = whole(reply, cors, &req.method, true, http10);
                if conn.write_all(&bytes).is_err() {
                    return;
                }
                continue;
            }
            return refuse(front, conn, reply, origin.as_deref(), &req.id);
        }
        // A declared body is reserved in the bodies' budget before the client is told to send
        // it; a chunked one reserves as it grows (`Conn::read_body`).
        let mut hold = Hold::default();
        if let Framing::Length(n) = framing {
            if !front.bodies.reserve(&mut hold, n, Instant::now() + super::budget::WAIT) {
                front.service.refused(&req, 503, started);
                return refuse(front, conn, no_room(), origin.as_deref(), &req.id);
            }
        }
        if framing != Framing::Length(0)
            && req.header("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
            && conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
        {
            return;
        }
        match conn.read_body(framing, front.max_body_bytes, Instant::now() + budget, &front.bodies, &mut hold)
        {
            Ok(body) => req.body = body,
            Err(ReadError::Refuse(status, why)) => {
                front.service.refused(&req, status, started);
                let reply = match status {
                    413 => too_large(front.max_body_bytes),
                    503 => no_room(),
                    _ => Reply::error(status, code_of(status), why),
                };
                return refuse(front, conn, reply, origin.as_deref(), &req.id);
            }
            Err(_) => return,
        }
        let answer = Answer { owed: out.owe(!keep), origin, keep, http10, started, hold };
        // A front that stopped drops the job, which ends the turn.
        if !front.jobs.push(Job { req, answer }) {
            out.wait_free();
            return;
        }
        if !keep {
            return watch_last(front, conn, &out);
        }
    }
}

/// After a connection's last request: what the client still sends is read and dropped, only to
/// see it leave (`Responder::gone`), until the answer is out and the connection shut.
fn watch_last(front: &Front, mut conn: Conn, out: &Out) {
    loop {
        match conn.discard(Instant::now() + 2 * front.read_timeout) {
            Ok(n) if n > 0 => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) && out.is_owed() => {}
            Ok(_) | Err(_) => {
                if out.is_owed() && !front.stop.load(Ordering::SeqCst) {
                    out.gone.store(true, Ordering::Release);
                }
                out.wait_free();
                return;
            }
        }
    }
}

std::thread_local! {
    /// Set on the front's workers: only there may an answer, as a last resort (no thread to be
    /// had), block on a slow client. Anywhere else (a child's reader that finished a call) it
    /// must not.
    static ON_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the calling thread as one of the front's workers.
pub(super) fn on_worker() {
    ON_WORKER.with(|w| w.set(true));
}

/// A request and the one answer it is owed. The answer goes out now, later from any thread, or
/// as a stream; dropped unanswered, the connection closes (its client sees the end, never a
/// hang), after a 500 when a panic dropped it. The request is shared (`req`), so whoever
/// answers later may keep reading it.
pub struct Responder {
    /// Taken when the answer goes out.
    owed: Option<Owing>,
}

struct Owing {
    req: Arc<Req>,
    answer: Answer,
    front: Arc<Front>,
    /// The service's label for the request (its route), carried to its reply.
    route: Option<&'static str>,
}

impl Responder {
    pub(super) fn new(req: Req, answer: Answer, front: Arc<Front>) -> Responder {
        Responder { owed: Some(Owing { req: Arc::new(req), answer, front, route: None }) }
    }

    fn owing(&self) -> &Owing {
        self.owed.as_ref().expect("a responder holds its request until it answers")
    }

    pub fn req(&self) -> &Arc<Req> {
        &self.owing().req
    }

    /// Labels the request for the service's own accounting (its route): the reply carries it
    /// unless it names one itself.
    pub fn label(&mut self, route: &'static str) {
        if let Some(o) = self.owed.as_mut() {
            o.route = Some(route);
        }
    }

    /// Turns true once the client has gone (it closed its connection while this was owed):
    /// whoever works for it may stop.
    pub fn gone(&self) -> Arc<AtomicBool> {
        self.owing().answer.owed.out().gone.clone()
    }

    /// Sends the answer from this thread, which may be any: a whole reply the socket takes at
    /// once is written here; the rest of it, a stream, or work to do (`Reply::respond`) goes on
    /// on an `http-answer` thread. Never blocks, except on a worker that cannot start a thread.
    pub fn send(mut self, mut reply: Reply) {
        if let Some(respond) = reply.respond.take() {
            return respond(self);
        }
        if reply.stream.is_some() {
            return spawn_answer(Box::new(move || self.write(reply)));
        }
        let Some(Owing { req, mut answer, front, route }) = self.owed.take() else { return };
        let hold = std::mem::take(&mut answer.hold);
        reply.route = reply.route.or(route);
        let bytes = finish(&front, &req, reply, &answer);
        let stream = answer.owed.out().stream.clone();
        match crate::sys::send_now(&stream, &bytes) {
            Ok(n) if n == bytes.len() => answer.owed.done(true),
            Ok(n) => {
                let owed = answer.owed;
                let rest = bytes[n..].to_vec();
                spawn_answer(Box::new(move || {
                    use std::io::Write;
                    let sent = (&*stream).write_all(&rest).is_ok();
                    owed.done(sent);
                }));
            }
            Err(_) => answer.owed.done(false),
        }
        release(req, hold);
    }

    /// Works out the answer with `f` on an `http-answer` thread of its own (it may block:
    /// lifecycle changes, installs, anything that waits), and sends it from there.
    pub fn spawn(self, f: impl FnOnce() -> Reply + Send + 'static) {
        // Boxed here: one thread-starting body for every caller, not one each.
        self.spawn_boxed(Box::new(f))
    }

    fn spawn_boxed(self, f: Box<dyn FnOnce() -> Reply + Send>) {
        spawn_answer(Box::new(move || {
            let reply = self.compute(f);
            self.write(reply);
        }));
    }

    /// Runs `f` with the request's id; a panic is a logged 500.
    fn compute(&self, f: Box<dyn FnOnce() -> Reply + Send>) -> Reply {
        let req = &self.owing().req;
        let run = || crate::request_id::with(Some(req.id.clone()), || catch_unwind(AssertUnwindSafe(f)));
        run().unwrap_or_else(|_| {
            log::error!("handler for {} {} panicked", req.method, req.path);
            Reply::error(500, "internal", "internal error (logged)")
        })
    }

    /// Writes the answer on this thread, which may block (an `http-answer` thread): a reply
    /// that says it comes later is asked for again here.
    fn write(mut self, mut reply: Reply) {
        if let Some(respond) = reply.respond.take() {
            return respond(self);
        }
        let Some(Owing { req, mut answer, front, route }) = self.owed.take() else { return };
        let hold = std::mem::take(&mut answer.hold);
        reply.route = reply.route.or(route);
        if answer.owed.out().gone.load(Ordering::Acquire) {
            log::debug!("{} {}: the client went away before its answer", req.method, req.path);
            return release(req, hold);
        }
        let stream = answer.owed.out().stream.clone();
        let sent = match reply.stream.is_some() {
            true => {
                front.service.answered(&req, &reply, answer.started);
                reply.headers.push(("X-Request-Id", req.id.clone()));
                write_stream(&stream, reply, answer.cors(&front), answer.keep).is_ok()
            }
            false => {
                use std::io::Write;
                let bytes = finish(&front, &req, reply, &answer);
                (&*stream).write_all(&bytes).is_ok()
            }
        };
        answer.owed.done(sent);
        release(req, hold);
    }
}

impl Drop for Responder {
    /// A panic that drops a request unanswered still answers it: a 500, written if the socket
    /// takes it at once (never blocking the unwinding thread); the connection then closes.
    fn drop(&mut self) {
        let Some(Owing { req, mut answer, front, .. }) = self.owed.take() else { return };
        let hold = std::mem::take(&mut answer.hold);
        if !std::thread::panicking() {
            return release(req, hold);
        }
        log::error!("handler for {} {} panicked", req.method, req.path);
        let reply = Reply::error(500, "internal", "internal error (logged)");
        let bytes = finish(&front, &req, reply, &answer);
        let sent = crate::sys::send_now(&answer.owed.out().stream, &bytes).is_ok_and(|n| n == bytes.len());
        answer.owed.done(sent);
        release(req, hold);
    }
}

/// The reply with its log line and metrics recorded, as the bytes that go out.
fn finish(front: &Front, req: &Req, mut reply: Reply, answer: &Answer) -> Vec<u8> {
    front.service.answered(req, &reply, answer.started);
    reply.headers.push(("X-Request-Id", req.id.clone()));
    whole(reply, answer.cors(front), &req.method, answer.keep, answer.http10)
}

/// Runs `f` on an `http-answer` thread. If no thread can be had, a worker runs it itself;
/// elsewhere it is dropped, which closes the connection (and says its client has gone).
fn spawn_answer(f: Box<dyn FnOnce() + Send>) {
    let f = Arc::new(Mutex::new(Some(f)));
    let mine = f.clone();
    let spawned = std::thread::Builder::new().name("http-answer".into()).spawn(move || {
        if let Some(f) = mine.lock().take() {
            f();
        }
    });
    if let Err(e) = spawned {
        let f = f.lock().take();
        match ON_WORKER.with(|w| w.get()) {
            true => {
                log::warn!("cannot start a thread for an answer ({e}); answering on the worker");
                if let Some(f) = f {
                    f();
                }
            }
            false => {
                log::warn!("cannot start a thread for an answer ({e}); its connection is closed");
                drop(f);
            }
        }
    }
}

/// The request as a service sees it.
fn request_of(head: Head) -> Req {
    let (path, query) = match head.target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (head.target, String::new()),
    };
    Req { method: head.method, path, query, headers: head.headers, body: Vec::new(), id: String::new() }
}

/// Answers and closes: nothing more is read from a connection that was refused.
fn refuse(front: &Front, mut conn: Conn, mut reply: Reply, origin: Option<&str>, id: &str) {
    reply.headers.push(("X-Request-Id", id.to_string()));
    let cors = origin.map(|origin| Cors { origin, expose: front.cors_expose });
    // The body goes out whatever the method: the refusal says why.
    if conn.write_all(&whole(reply, cors, "", false, false)).is_ok() {
        conn.linger_close();
    }
}

/// The bodies' budget is spent: the client may try again shortly.
fn no_room() -> Reply {
    Reply::error(503, "server_unavailable", "the hub holds too many request bodies now; retry shortly")
        .with_header("Retry-After", "1")
}

/// The end of an answered request: its body is dropped before its reservation is given back, so
/// that memory given back after the last one (`budget::Hold`) includes it.
fn release(req: Arc<Req>, hold: Hold) {
    drop(req);
    drop(hold);
}

fn too_large(cap: usize) -> Reply {
    Reply::error(413, "payload_too_large", &format!("request body exceeds {cap} bytes"))
}
