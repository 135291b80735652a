//! One connection's requests, and where their answers go. The `http-conn` thread reads a
//! request (head, guards, body), hands it to a worker, and goes back to reading at once: the
//! worker writes a whole answer to the socket itself when the socket takes it without waiting,
//! and what may take long (`Reply::later`, streams, a write the socket cannot take now) goes on
//! on an `http-answer` thread of its own. So a call wakes the connection's thread once, when its
//! client speaks, and never holds a worker on a slow client.
//!
//! The connection's `Out` keeps the answers in order: a request is handed on only once the
//! answer before it is out, and the connection thread writes nothing (a refusal, a `100
//! Continue`) while an answer is owed. Since the connection thread is reading meanwhile, it is
//! the one that sees a client leave: the call waiting for that client is cancelled.

use std::io::ErrorKind;
use std::net::{Shutdown, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::conn::{Conn, Framing, Head, ReadError};
use super::response::{self, Reply, Req, whole, write_stream};
use super::{Front, Job, code_of, guard, record, routes};
use crate::exchange::Woken;
use crate::later::Later;

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
}

/// One connection's requests, one after the other, until it closes, stays idle too long,
/// sends something malformed, or the front stops.
pub(super) fn serve(front: &Front, mut conn: Conn) {
    let app = &front.app;
    let budget = front.read_timeout;
    let out = Arc::new(Out::new(conn.stream().clone()));
    loop {
        let head = match conn.read_head(2 * budget, budget) {
            Ok(h) => h,
            // An answer still coming (a long call, a stream) keeps the connection.
            Err(ReadError::Idle) if out.is_owed() => continue,
            Err(ReadError::Idle) => return,
            Err(ReadError::Closed) => {
                // A client that leaves while waiting has its call cancelled; a front that
                // stops lets the answer finish.
                if !front.stop.load(Ordering::SeqCst) {
                    out.gone.store(true, Ordering::Release);
                }
                out.wait_free();
                return;
            }
            Err(ReadError::Refuse(status, why)) => {
                if out.wait_free() {
                    let id = crate::request_id::generate();
                    refuse(conn, Reply::error(status, code_of(status), why), None, &id);
                }
                return;
            }
        };
        let started = Instant::now();
        let keep = head.keep_alive() && !front.stop.load(Ordering::SeqCst);
        let framing = super::conn::framing(&head);
        let http10 = head.http10;
        let mut req = request_of(head);
        req.id = crate::request_id::of_header(req.header("x-request-id"));
        let origin = guard::check(&app.policy, &req).cors_origin();
        // Nothing is written for this request until the answer before it is out.
        if !out.wait_free() {
            return;
        }
        let framing = match framing {
            Ok(f) => f,
            Err(ReadError::Refuse(status, why)) => {
                log_line(&req, status, started);
                return refuse(conn, Reply::error(status, code_of(status), why), origin.as_deref(), &req.id);
            }
            Err(_) => return,
        };
        // The guards run before any body is read: a refusal never waits for one.
        if let Some(mut reply) = guard(app, &req, framing) {
            log_line(&req, reply.status, started);
            if reply.status == 204 && framing == Framing::Length(0) && keep {
                reply.headers.push(("X-Request-Id", req.id.clone()));
                // A CORS preflight: answered, and the connection stays.
                let bytes = whole(reply, origin.as_deref(), &req.method, true, http10);
                if conn.write_all(&bytes).is_err() {
                    return;
                }
                continue;
            }
            return refuse(conn, reply, origin.as_deref(), &req.id);
        }
        if framing != Framing::Length(0)
            && req.header("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
            && conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
        {
            return;
        }
        match conn.read_body(framing, app.settings.max_body_bytes, Instant::now() + budget) {
            Ok(body) => req.body = body,
            Err(ReadError::Refuse(status, why)) => {
                log_line(&req, status, started);
                let reply = match status {
                    413 => too_large(app.settings.max_body_bytes),
                    _ => Reply::error(status, code_of(status), why),
                };
                return refuse(conn, reply, origin.as_deref(), &req.id);
            }
            Err(_) => return,
        }
        let answer = Answer { owed: out.owe(!keep), origin, keep, http10, started };
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
/// see it leave (which cancels the call working for it), until the answer is out and the
/// connection shut.
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

/// Sends a request's reply: where it is worked out (the worker, or the child's reader that
/// brought a call's answer) when it is whole and the socket takes all of it now, else on an
/// `http-answer` thread (waiting for a later reply, streaming, or a slow client). A reply that
/// waits for a call's answer is parked with the call (`Wake`): no thread waits for it.
pub(super) fn answer(req: Req, reply: Reply, answer: Answer) {
    send(req, reply, answer, Here::Worker);
}

/// Where an answer is being sent from.
#[derive(Clone, Copy)]
enum Here {
    /// A worker, which may as a last resort (no thread to be had) block on a client.
    Worker,
    /// A child's reader or the call timer, which never may.
    Elsewhere,
}

fn send(req: Req, mut reply: Reply, answer: Answer, here: Here) {
    if let Some(later) = reply.later.take() {
        let (run, wake) = later.into_parts();
        let Some(wake) = wake else { return off_the_worker(req, Later::new(run), reply, answer, here) };
        return wake.park(Box::new(move |woken| match woken {
            Woken::Ready => {
                // Here (a child's reader, as a rule) nothing may unwind.
                let _ = catch_unwind(AssertUnwindSafe(move || {
                    let gone = answer.owed.out().gone.clone();
                    let later = compute(&req, run, &gone);
                    send(req, inherit(later, reply), answer, Here::Elsewhere);
                }));
            }
            Woken::Wait => off_the_worker(req, Later::new(run), reply, answer, Here::Elsewhere),
        }));
    }
    if reply.stream.is_some() {
        let shell = Reply::empty(reply.status);
        return off_the_worker(req, Later::new(move || reply), shell, answer, here);
    }
    let bytes = finish(&req, reply, &answer);
    let stream = answer.owed.out().stream.clone();
    match crate::sys::send_now(&stream, &bytes) {
        Ok(n) if n == bytes.len() => answer.owed.done(true),
        Ok(n) => {
            let owed = answer.owed;
            let rest = bytes[n..].to_vec();
            spawn_answer(here, move || {
                use std::io::Write;
                let sent = (&*stream).write_all(&rest).is_ok();
                owed.done(sent);
            });
        }
        Err(_) => answer.owed.done(false),
    }
}

/// The reply with its log line and metrics recorded, as the bytes that go out.
fn finish(req: &Req, mut reply: Reply, answer: &Answer) -> Vec<u8> {
    response::log_request(req, &reply, answer.started);
    record(req, &reply, answer.started);
    reply.headers.push(("X-Request-Id", req.id.clone()));
    whole(reply, answer.origin.as_deref(), &req.method, answer.keep, answer.http10)
}

/// Runs a reply's later part, with the request's id and its client watched; a panic is a 500.
fn compute(req: &Req, run: impl FnOnce() -> Reply, gone: &Arc<AtomicBool>) -> Reply {
    let id = Some(req.id.clone());
    let run = || crate::request_id::with(id, || catch_unwind(AssertUnwindSafe(run)));
    crate::exchange::while_caller_watched(gone.clone(), run).unwrap_or_else(|_| {
        log::error!("handler for {} {} panicked", req.method, req.path);
        Reply::error(500, "internal", "internal error (logged)")
    })
}

/// What the reply worked out later keeps of the one that said "later": the route that
/// answered and the client's name, when it does not say them itself.
fn inherit(mut later: Reply, shell: Reply) -> Reply {
    later.route = later.route.or(shell.route);
    later.client = later.client.or(shell.client);
    later
}

/// Works out the reply on an `http-answer` thread, and sends it (or streams it) from there.
/// `shell`: the reply that said "later".
fn off_the_worker(req: Req, later: Later<Reply>, shell: Reply, answer: Answer, here: Here) {
    spawn_answer(here, move || {
        let gone = answer.owed.out().gone.clone();
        let mut reply = compute(&req, || later.run(), &gone);
        while let Some(later) = reply.later.take() {
            reply = compute(&req, || later.run(), &gone);
        }
        let mut reply = inherit(reply, shell);
        if gone.load(Ordering::Acquire) {
            log::debug!("{} {}: the client went away before its answer", req.method, req.path);
            return answer.owed.done(false);
        }
        let stream = answer.owed.out().stream.clone();
        let sent = match reply.stream.is_some() {
            true => {
                response::log_request(&req, &reply, answer.started);
                record(&req, &reply, answer.started);
                reply.headers.push(("X-Request-Id", req.id.clone()));
                write_stream(&stream, reply, answer.origin.as_deref(), answer.keep).is_ok()
            }
            false => {
                use std::io::Write;
                let bytes = finish(&req, reply, &answer);
                (&*stream).write_all(&bytes).is_ok()
            }
        };
        answer.owed.done(sent);
    });
}

/// Runs `f` on an `http-answer` thread. If no thread can be had, a worker runs it itself;
/// elsewhere it is dropped, which closes the connection and cancels its call.
fn spawn_answer(here: Here, f: impl FnOnce() + Send + 'static) {
    let f = Arc::new(Mutex::new(Some(f)));
    let mine = f.clone();
    let spawned = std::thread::Builder::new().name("http-answer".into()).spawn(move || {
        if let Some(f) = mine.lock().take() {
            f();
        }
    });
    if let Err(e) = spawned {
        let f = f.lock().take();
        match here {
            Here::Worker => {
                log::warn!("cannot start a thread for an answer ({e}); answering on the worker");
                if let Some(f) = f {
                    f();
                }
            }
            Here::Elsewhere => {
                log::warn!("cannot start a thread for an answer ({e}); its connection is closed");
                drop(f);
            }
        }
    }
}

/// The request as handlers see it.
fn request_of(head: Head) -> Req {
    let (path, query) = match head.target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (head.target, String::new()),
    };
    Req { method: head.method, path, query, headers: head.headers, body: Vec::new(), id: String::new() }
}

/// The refusal a request gets before its body is read, if any: Host, Origin, a CORS
/// preflight's answer, the token, a declared body over the cap.
fn guard(app: &super::App, req: &Req, framing: Framing) -> Option<Reply> {
    if !app.policy.host_ok(req.header("host")) {
        return Some(Reply::error(403, "forbidden_origin", "Host header does not name this machine"));
    }
    if let guard::Verdict::Refuse(why) = guard::check(&app.policy, req) {
        return Some(Reply::error(403, "forbidden_origin", why));
    }
    if req.method == "OPTIONS" {
        return Some(
            Reply::empty(204)
                .with_header("Access-Control-Allow-Methods", guard::CORS_METHODS)
                .with_header("Access-Control-Allow-Headers", guard::CORS_HEADERS)
                .with_header("Access-Control-Max-Age", "600"),
        );
    }
    if !app.policy.authorized(req.header("authorization")) && !guard::is_public(&req.method, &req.path) {
        return Some(
            Reply::error(401, "unauthorized", "missing or wrong bearer token")
                .with_header("WWW-Authenticate", "Bearer"),
        );
    }
    match framing {
        Framing::Length(n) if n > app.settings.max_body_bytes => Some(too_large(app.settings.max_body_bytes)),
        _ => None,
    }
}

/// Answers and closes: nothing more is read from a connection that was refused.
fn refuse(mut conn: Conn, mut reply: Reply, origin: Option<&str>, id: &str) {
    reply.headers.push(("X-Request-Id", id.to_string()));
    // The body goes out whatever the method: the refusal says why.
    if conn.write_all(&whole(reply, origin, "", false, false)).is_ok() {
        conn.linger_close();
    }
}

fn too_large(cap: usize) -> Reply {
    Reply::error(413, "payload_too_large", &format!("request body exceeds {cap} bytes"))
}

fn log_line(req: &Req, status: u16, started: Instant) {
    crate::metrics::global().http_request(routes::template(&req.path), status);
    log::debug!(
        "{} {} {status} {:.3}ms client={} id={}",
        req.method,
        req.path,
        started.elapsed().as_secs_f64() * 1000.0,
        req.client_name().unwrap_or("-"),
        req.id
    );
}
