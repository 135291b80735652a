//! The HTTP front: a small HTTP/1.1 server generic over a `Service`, knowing nothing of what
//! it serves (as astra's `Service` or hyper's `h1::dispatch` know nothing of the application).
//! One `http-accept` thread accepts connections (bounded below the descriptor limit: past it a
//! 503 and close; out of descriptors, a 503 too, and it goes on), one `http-conn` thread per
//! connection reads its requests (every read with a deadline, the head within size limits and
//! strictly framed: `head`) and asks the service to admit each before any body is read (a large
//! body within the budget all connections share: `budget`), and a pool of `http-N` workers runs
//! `Service::call` and sends the answers through each request's `Responder`, which takes an
//! answer now, later from any thread, or as a stream, and says when the client has gone
//! (`serve`). ARCHITECTURE.md says why this is not tiny_http any more.

mod budget;
mod conn;
mod head;
mod serve;
mod wire;

use std::collections::HashMap;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::Mutex;

use crate::queue::Queue;
use conn::Conn;
pub use serve::Responder;
pub use wire::{Reply, Req};

/// What the front serves. `admit` runs on the connection's thread before any body is read;
/// `call` on a worker, with the request's `Responder`, and must not block there (work that
/// waits is parked with what it waits for, or `Responder::spawn`ed); `answered` and `refused`
/// see every request's end, for the service's log line and metrics.
pub trait Service: Send + Sync + 'static {
    fn admit(&self, req: &Req) -> Admission;
    fn call(&self, res: Responder);
    fn answered(&self, req: &Req, reply: &Reply, started: Instant);
    fn refused(&self, req: &Req, status: u16, started: Instant);
}

/// A service's word on a request before its body is read.
#[derive(Default)]
pub struct Admission {
    /// Answered with this and the connection closed (a CORS preflight's 204 keeps it).
    pub refusal: Option<Reply>,
    /// The origin a cross-origin answer names in `Access-Control-Allow-Origin`.
    pub cors_origin: Option<String>,
}

/// How the front listens and what it bounds.
pub struct Limits {
    pub host: String,
    pub port: u16,
    pub workers: usize,
    /// How long a request's head or body may take once it started; idle keep-alive
    /// connections close after twice that; a write may block this long.
    pub read_timeout: Duration,
    pub max_body_bytes: usize,
    /// What all request bodies together may hold at once (bodies past `budget::FREE` count);
    /// past it, after a short wait, a 503.
    pub max_bodies_bytes: usize,
    /// Connections at once; by default half of what the descriptor limit leaves.
    pub max_connections: Option<usize>,
    /// The response headers a cross-origin script may read.
    pub cors_expose: &'static str,
}

/// Why the HTTP front stopped serving on its own.
pub type Fatal = Sender<String>;

/// Descriptors kept free for everything but client connections (children's pipes, npm,
/// outgoing HTTP, files).
const RESERVED_FDS: u64 = 256;

/// A request handed to a worker, and where its reply goes.
struct Job {
    req: Req,
    answer: serve::Answer,
}

/// What the acceptor, the connections and the workers share.
struct Front {
    service: Arc<dyn Service>,
    jobs: Queue<Job>,
    /// Open connections, so shutdown can end them; their count is bounded by `max_conns`.
    conns: Mutex<HashMap<u64, Arc<TcpStream>>>,
    next_conn: AtomicU64,
    max_conns: usize,
    stop: AtomicBool,
    read_timeout: Duration,
    max_body_bytes: usize,
    bodies: Arc<budget::Bodies>,
    cors_expose: &'static str,
}

/// A running HTTP front.
pub struct Server {
    addr: SocketAddr,
    front: Arc<Front>,
    acceptor: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

/// Why the front could not start: what it was doing, and the system's error.
pub type StartError = (String, std::io::Error);

/// Binds `host:port`, starts the acceptor and the workers. An accept failure that is neither
/// one client's nor a shortage that passes (out of descriptors or memory) is reported on `fatal`.
pub fn start(service: Arc<dyn Service>, s: Limits, fatal: Fatal) -> std::result::Result<Server, StartError> {
    Server::start(service, s, fatal)
}

impl Server {
    fn start(service: Arc<dyn Service>, s: Limits, fatal: Fatal) -> std::result::Result<Server, StartError> {
        let listener = bind(&s.host, s.port)?;
        // Request bodies of megabytes come and go: their memory goes back to the system.
        crate::sys::return_large_blocks();
        let addr = listener.local_addr().map_err(|e| ("reading the bound address".to_string(), e))?;
        let max_conns = s.max_connections.unwrap_or_else(default_max_connections);
        let front = Arc::new(Front {
            service,
            jobs: Queue::default(),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            max_conns,
            stop: AtomicBool::new(false),
            read_timeout: s.read_timeout,
            max_body_bytes: s.max_body_bytes,
            bodies: budget::Bodies::new(s.max_bodies_bytes),
            cors_expose: s.cors_expose,
        });
        let mut workers = Vec::with_capacity(s.workers);
        for i in 0..s.workers {
            let front = front.clone();
            let handle = std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || worker(&front))
                .map_err(|e| ("spawning an HTTP worker".to_string(), e))?;
            workers.push(handle);
        }
        let acceptor = {
            let front = front.clone();
            std::thread::Builder::new()
                .name("http-accept".into())
                .spawn(move || accept_loop(&front, &listener, &fatal))
                .map_err(|e| ("spawning the HTTP acceptor".to_string(), e))?
        };
        log::debug!("HTTP front: {} workers, at most {max_conns} connections", s.workers);
        Ok(Server { addr, front, acceptor: Some(acceptor), workers })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking connections, ends idle ones, and waits up to `grace` for the requests in
    /// flight.
    pub fn shutdown(mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        self.front.stop.store(true, Ordering::SeqCst);
        // The acceptor is blocked in accept(): one connection of our own wakes it.
        let wake = match self.addr {
            SocketAddr::V4(a) if a.ip().is_unspecified() => SocketAddr::from(([127, 0, 0, 1], a.port())),
            SocketAddr::V6(a) if a.ip().is_unspecified() => {
                SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], a.port()))
            }
            a => a,
        };
        let _ = TcpStream::connect_timeout(&wake, Duration::from_millis(200));
        // Out of descriptors, that connection may not be made: the acceptor is not waited for
        // past the grace.
        if let Some(t) = self.acceptor.take() {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
        // Connections waiting for their next request see its end at once; the ones answering
        // finish their answer first.
        for stream in self.front.conns.lock().values() {
            let _ = stream.shutdown(Shutdown::Read);
        }
        self.front.jobs.close();
        for w in self.workers.drain(..) {
            while !w.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if w.is_finished() {
                let _ = w.join();
            }
        }
        while !self.front.conns.lock().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let left = self.front.conns.lock().len();
        if left > 0 {
            log::warn!("{left} request(s) still running at shutdown; abandoning them");
        }
    }
}

/// Connections the front takes at once: well below the descriptor limit, so running out of
/// descriptors is a 503 to one client rather than a dead listener.
fn default_max_connections() -> usize {
    let limit = crate::sys::fd_limit().unwrap_or(1024);
    (limit.saturating_sub(RESERVED_FDS) / 2).clamp(16, 4096) as usize
}

fn bind(host: &str, port: u16) -> std::result::Result<TcpListener, StartError> {
    let addrs: Vec<SocketAddr> =
        (host, port).to_socket_addrs().map_err(|e| (format!("cannot resolve '{host}'"), e))?.collect();
    TcpListener::bind(&addrs[..]).map_err(|e| (format!("cannot listen on {host}:{port}"), e))
}

/// The acceptor's main loop: each connection gets a thread of its own, or a 503 when the
/// front is full. Out of descriptors (or memory), accept fails until something closes: the
/// acceptor then gives back a spare descriptor it keeps for this, takes the waiting client and
/// tells it 503 (nginx's way), and otherwise waits, 5 ms doubling to 1 s (Go's), and goes on.
fn accept_loop(front: &Arc<Front>, listener: &TcpListener, fatal: &Fatal) {
    let mut spare = spare_descriptor();
    // Since accept last ran out (zero: it has not): how long the next wait is.
    let mut pause = Duration::ZERO;
    // When accept last ran out, while that shortage lasts: one episode ends with a plain accept
    // `SHORTAGE_OVER` after the last failure, so flapping at the limit is said once.
    let mut short: Option<Instant> = None;
    loop {
        if spare.is_none() {
            spare = spare_descriptor();
        }
        // `plain`: accept itself succeeded (not through the spare), so the shortage is over.
        let (stream, plain) = match listener.accept() {
            Ok((stream, _)) => (stream, true),
            Err(e) if transient(&e) => continue,
            Err(e) if exhausted(&e) => {
                if front.stop.load(Ordering::SeqCst) {
                    return;
                }
                if short.is_none() {
                    log::warn!("cannot accept connections ({e}); answering 503 until descriptors free up");
                }
                short = Some(Instant::now());
                if let Some(fd) = spare.take() {
                    drop(fd);
                    if let Ok((stream, _)) = listener.accept() {
                        spare = spare_descriptor();
                        // Descriptors came back meanwhile: served like any other (the episode
                        // ends only when accept succeeds on its own, so it is said once).
                        if spare.is_some() {
                            (stream, false)
                        } else {
                            busy(&stream, "the hub is out of descriptors now");
                            continue;
                        }
                    } else {
                        continue;
                    }
                } else {
                    pause = (pause * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                    std::thread::sleep(pause);
                    continue;
                }
            }
            Err(e) => {
                let _ = fatal.send(format!("the HTTP listener failed: {e}"));
                return;
            }
        };
        if front.stop.load(Ordering::SeqCst) {
            return;
        }
        if plain && short.is_some_and(|t| t.elapsed() >= SHORTAGE_OVER) {
            log::info!("accepting connections again");
            (short, pause) = (None, Duration::ZERO);
        }
        take(front, stream);
    }
}

/// How long accept must go without running out before a shortage counts as over.
const SHORTAGE_OVER: Duration = Duration::from_secs(1);

/// A descriptor held only to be given back when accept runs out of them.
fn spare_descriptor() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// Starts serving an accepted connection, or answers 503 when the front is full.
fn take(front: &Arc<Front>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let stream = Arc::new(stream);
    let id = front.next_conn.fetch_add(1, Ordering::Relaxed);
    {
        let mut conns = front.conns.lock();
        if conns.len() >= front.max_conns {
            drop(conns);
            return busy(&stream, "too many connections");
        }
        conns.insert(id, stream.clone());
    }
    let (f, s) = (front.clone(), stream.clone());
    let spawned = std::thread::Builder::new().name("http-conn".into()).spawn(move || {
        let _open = Registered { front: &f, id };
        serve::serve(&f, Conn::new(s, f.read_timeout));
    });
    if let Err(e) = spawned {
        front.conns.lock().remove(&id);
        log::warn!("cannot start a connection thread: {e}");
        busy(&stream, "the hub cannot take more connections now");
    }
}

/// Accept errors that say the process (or the system) is out of something, until something
/// closes or is freed.
fn exhausted(e: &std::io::Error) -> bool {
    e.raw_os_error()
        .is_some_and(|c| c == libc::EMFILE || c == libc::ENFILE || c == libc::ENOBUFS || c == libc::ENOMEM)
}

/// Accept errors that concern one connection, not the listener.
fn transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted | WouldBlock | TimedOut)
        || e.raw_os_error()
            .is_some_and(|c| c == libc::EPROTO || c == libc::ENETDOWN || c == libc::EHOSTUNREACH)
}

/// A 503 written at once, and the connection closed.
fn busy(stream: &TcpStream, why: &str) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let body = Reply::error(503, "server_unavailable", why).body;
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut w = stream;
    let _ = w.write_all(&[head.as_bytes(), &body].concat());
    let _ = stream.shutdown(Shutdown::Both);
}

/// Takes the connection off the list when its thread ends, however it ends.
struct Registered<'a> {
    front: &'a Front,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.front.conns.lock().remove(&self.id);
    }
}

/// The main loop of a worker: take a request, have the service answer it and send the answer
/// on (or hand the service its `Responder`), until the front closes.
fn worker(front: &Arc<Front>) {
    serve::on_worker();
    while let Some(Job { req, answer }) = front.jobs.pop() {
        let id = Some(req.id.clone());
        let res = Responder::new(req, answer, front.clone());
        // A panic drops the responder, which answers 500 (`Responder`'s drop); the answer's
        // turn ends however this ends (`serve::Owed`), and the worker lives on.
        let _ = catch_unwind(AssertUnwindSafe(|| crate::request_id::with(id, || front.service.call(res))));
    }
}

fn code_of(status: u16) -> &'static str {
    match status {
        408 => "timeout",
        413 => "payload_too_large",
        414 | 431 => "header_too_large",
        501 | 505 => "not_implemented",
        503 => "server_unavailable",
        _ => "bad_request",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    /// A service that panics on `/panic` and echoes the path otherwise.
    struct Panicky;

    impl Service for Panicky {
        fn admit(&self, _: &Req) -> Admission {
            Admission::default()
        }
        fn call(&self, res: Responder) {
            let reply = match res.req().path.as_str() {
                "/panic" => panic!("boom"),
                "/later" => Reply::spawn(|| Reply::ok(&serde_json::json!({"later": true}))),
                "/later-panic" => Reply::spawn(|| panic!("boom later")),
                path => Reply::ok(&serde_json::json!({ "path": path })),
            };
            res.send(reply)
        }
        fn answered(&self, _: &Req, _: &Reply, _: Instant) {}
        fn refused(&self, _: &Req, _: u16, _: Instant) {}
    }

    fn limits() -> Limits {
        Limits {
            host: "127.0.0.1".into(),
            port: 0,
            workers: 1,
            read_timeout: Duration::from_secs(5),
            max_body_bytes: 1 << 20,
            max_bodies_bytes: 8 << 20,
            max_connections: None,
            cors_expose: "",
        }
    }

    fn get(addr: SocketAddr, path: &str) -> u16 {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").expect("send");
        let mut line = String::new();
        std::io::BufReader::new(s).read_line(&mut line).expect("status line");
        line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
    }

    #[test]
    fn a_panicking_handler_gives_500_and_the_worker_serves_on() {
        let (fatal, _rx) = crossbeam_channel::bounded(1);
        let front = start(Arc::new(Panicky), limits(), fatal).expect("start");
        // One worker: if the panic killed it, the next request would never be answered.
        for _ in 0..2 {
            assert_eq!(get(front.addr(), "/panic"), 500);
            assert_eq!(get(front.addr(), "/fine"), 200);
            assert_eq!(get(front.addr(), "/later-panic"), 500);
            assert_eq!(get(front.addr(), "/later"), 200);
        }
        front.shutdown(Duration::from_secs(1));
    }
}
