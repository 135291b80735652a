//! The HTTP front: a tiny_http server on a listener bound here (TCP_NODELAY set), a pool of
//! named worker threads each calling `recv` on it, the guards every request passes (Host/Origin,
//! CORS, token, body cap), and graceful shutdown. Handlers live in `routes`.

pub mod guard;
pub mod response;
pub mod routes;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

pub use crate::app::App;
use crate::error::{Error, Result};
pub use response::{Reply, Req};

/// Declared bodies above this are never drained: tiny_http would allocate the whole declared
/// length at once to discard it, and a forged length aborts the process.
const DRAIN_LIMIT: usize = 64 << 20;
/// Oversized bodies drained at once on side threads; past this, their connections are abandoned.
const MAX_DRAINS: usize = 16;

/// Produces the reply to a request whose guards passed (the route table, or a test's).
pub type Router = fn(&App, &Req) -> Reply;

/// Why the HTTP front stopped serving on its own.
pub type Fatal = Sender<String>;

/// What every worker shares besides the app.
struct Front {
    router: Router,
    /// Oversized bodies being discarded on side threads.
    drains: Arc<AtomicUsize>,
    /// The listening port, to find an abandoned connection's socket.
    port: u16,
}

/// A running HTTP front.
pub struct Http {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    server: Arc<tiny_http::Server>,
}

impl Http {
    /// Binds `host:port` and starts `workers` threads. A `recv` error (the accept loop died)
    /// is reported on `fatal`.
    pub fn start(app: Arc<App>, router: Router, fatal: Fatal) -> Result<Http> {
        let s = &app.settings;
        let listener = bind(&s.host, s.port)?;
        let addr = listener.local_addr().map_err(|e| Error::io("reading the bound address", e))?;
        let server = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| Error::Internal(format!("cannot start the HTTP server: {e}")))?;
        let server = Arc::new(server);
        let stop = Arc::new(AtomicBool::new(false));
        let front = Arc::new(Front { router, drains: Arc::new(AtomicUsize::new(0)), port: addr.port() });
        let mut workers = Vec::with_capacity(s.workers);
        for i in 0..s.workers {
            let (app, server, stop, fatal, front) =
                (app.clone(), server.clone(), stop.clone(), fatal.clone(), front.clone());
            let handle = std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || worker(&app, &server, &front, &stop, &fatal))
                .map_err(|e| Error::io("spawning an HTTP worker", e))?;
            workers.push(handle);
        }
        Ok(Http { addr, stop, workers, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking requests and waits up to `grace` for the ones in flight.
    pub fn shutdown(self, grace: Duration) {
        self.stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + grace;
        for w in self.workers {
            while !w.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if w.is_finished() {
                let _ = w.join();
            } else {
                log::warn!("a request was still running at shutdown; abandoning it");
            }
        }
        drop(self.server);
    }
}

/// Binds with TCP_NODELAY on the listening socket (Linux copies it to accepted sockets), so
/// tiny_http's separate head and body writes are not held back by Nagle's algorithm.
fn bind(host: &str, port: u16) -> Result<TcpListener> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::Config(format!("AGENTHUB_HOST: cannot resolve '{host}': {e}")))?
        .collect();
    let listener =
        TcpListener::bind(&addrs[..]).map_err(|e| Error::io(format!("cannot listen on {host}:{port}"), e))?;
    set_nodelay(&listener);
    Ok(listener)
}

#[cfg(unix)]
fn set_nodelay(listener: &TcpListener) {
    if let Err(e) = crate::sys::set_nodelay(listener) {
        log::warn!("cannot set TCP_NODELAY: {e}");
    }
}

#[cfg(not(unix))]
fn set_nodelay(_: &TcpListener) {}

/// The main loop of a worker: take a request, answer it, until told to stop.
fn worker(app: &App, server: &tiny_http::Server, front: &Front, stop: &AtomicBool, fatal: &Fatal) {
    while !stop.load(Ordering::SeqCst) {
        match server.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(rq)) => handle(app, rq, front),
            Ok(None) => {}
            Err(e) => {
                // tiny_http's accept thread ends at its first error: nothing more will arrive.
                let _ = fatal.send(format!("the HTTP listener failed: {e}"));
                return;
            }
        }
    }
}

fn handle(app: &App, mut rq: tiny_http::Request, front: &Front) {
    let started = Instant::now();
    let url = rq.url().to_string();
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (url, String::new()),
    };
    let mut req = Req {
        method: rq.method().as_str().to_ascii_uppercase(),
        path,
        query,
        headers: rq
            .headers()
            .iter()
            .map(|h| (h.field.as_str().as_str().to_ascii_lowercase(), h.value.as_str().to_string()))
            .collect(),
        body: Vec::new(),
    };
    let origin = req.header("origin").map(str::to_string);
    let cors_ok = origin.is_some() && app.policy.origin_ok(origin.as_deref());

    let reply = if !app.policy.host_ok(req.header("host")) {
        Reply::error(403, "forbidden_origin", "Host header does not name this machine")
    } else if !app.policy.origin_ok(origin.as_deref()) {
        Reply::error(403, "forbidden_origin", "requests from this Origin are not allowed")
    } else if req.method == "OPTIONS" {
        Reply::empty(204)
            .with_header("Access-Control-Allow-Methods", guard::CORS_METHODS)
            .with_header("Access-Control-Allow-Headers", guard::CORS_HEADERS)
            .with_header("Access-Control-Max-Age", "600")
    } else if !app.policy.authorized(req.header("authorization")) {
        Reply::error(401, "unauthorized", "missing or wrong bearer token")
            .with_header("WWW-Authenticate", "Bearer")
    } else if rq.body_length().is_some_and(|n| n > app.settings.max_body_bytes) {
        let declared = rq.body_length().unwrap_or(0);
        let reply = too_large(app.settings.max_body_bytes);
        log_request(&req, reply.status, started);
        let origin = cors_ok.then_some(origin.as_deref()).flatten();
        refuse_declared_body(rq, reply, declared, front, origin);
        return;
    } else {
        match read_body(&mut rq, app.settings.max_body_bytes) {
            Ok(body) => {
                req.body = body;
                catch_unwind(AssertUnwindSafe(|| (front.router)(app, &req))).unwrap_or_else(|_| {
                    log::error!("handler for {} {} panicked", req.method, req.path);
                    Reply::error(500, "internal", "internal error (logged)")
                })
            }
            Err(reply) => reply,
        }
    };
    let origin = cors_ok.then_some(origin).flatten();
    if let Some(later) = reply.later {
        // A call that may take long: answered from a thread of its own, never holding a worker.
        let (method, path, client) =
            (req.method.clone(), req.path.clone(), req.client_name().map(str::to_string));
        let spawned = std::thread::Builder::new().name("http-call".into()).spawn(move || {
            let mut reply = Reply::later(later);
            while let Some(f) = reply.later.take() {
                reply = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
                    log::error!("handler for {method} {path} panicked");
                    Reply::error(500, "internal", "internal error (logged)")
                });
            }
            log_line(&method, &path, reply.status, started, client.as_deref());
            match reply.stream {
                Some(_) => write_stream(rq, reply, origin.as_deref()),
                None => {
                    let _ = rq.respond(to_response(reply, origin.as_deref()));
                }
            }
        });
        if let Err(e) = spawned {
            log::error!("cannot spawn a call thread: {e}");
        }
        return;
    }
    log_request(&req, reply.status, started);
    if reply.stream.is_some() {
        stream_reply(rq, reply, origin);
        return;
    }
    let _ = rq.respond(to_response(reply, origin.as_deref()));
}

/// Sends a streamed reply from a thread of its own, so a long stream never holds a worker:
/// the head by hand (tiny_http buffers `Response` bodies), then the body as HTTP chunks, each
/// flushed as it is written.
fn stream_reply(rq: tiny_http::Request, reply: Reply, origin: Option<String>) {
    let spawned = std::thread::Builder::new()
        .name("http-stream".into())
        .spawn(move || write_stream(rq, reply, origin.as_deref()));
    if let Err(e) = spawned {
        log::error!("cannot spawn a stream thread: {e}");
    }
}

/// Writes a streamed reply on the calling thread.
fn write_stream(rq: tiny_http::Request, mut reply: Reply, origin: Option<&str>) {
    let Some(body) = reply.stream.take() else { return };
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n",
        reply.status,
        tiny_http::StatusCode(reply.status).default_reason_phrase(),
        reply.content_type
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(o) = origin {
        head.push_str(&format!(
            "Access-Control-Allow-Origin: {o}\r\nAccess-Control-Expose-Headers: {}\r\nVary: Origin\r\n",
            guard::CORS_EXPOSE
        ));
    }
    head.push_str("\r\n");
    let mut w = rq.into_writer();
    if w.write_all(head.as_bytes()).and_then(|()| w.flush()).is_err() {
        return;
    }
    let mut chunked = Chunked(w);
    body(&mut chunked);
    let _ = chunked.0.write_all(b"0\r\n\r\n").and_then(|()| chunked.0.flush());
}

/// HTTP/1.1 chunked framing: every write is one chunk.
struct Chunked<W: Write>(W);

impl<W: Write> Write for Chunked<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut framed = Vec::with_capacity(buf.len() + 12);
        framed.extend_from_slice(format!("{:x}\r\n", buf.len()).as_bytes());
        framed.extend_from_slice(buf);
        framed.extend_from_slice(b"\r\n");
        self.0.write_all(&framed)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

fn too_large(cap: usize) -> Reply {
    Reply::error(413, "payload_too_large", &format!("request body exceeds {cap} bytes"))
}

/// Reads at most `cap` bytes; a longer body (chunked, so undeclared) is a 413.
fn read_body(rq: &mut tiny_http::Request, cap: usize) -> std::result::Result<Vec<u8>, Reply> {
    let mut body = Vec::with_capacity(rq.body_length().unwrap_or(0).min(cap));
    match rq.as_reader().take(cap as u64 + 1).read_to_end(&mut body) {
        Ok(n) if n > cap => Err(too_large(cap)),
        Ok(_) => Ok(body),
        Err(e) => Err(Reply::error(400, "bad_request", &format!("cannot read the request body: {e}"))),
    }
}

/// Answers a request whose declared body is over the cap without reading it. tiny_http discards
/// an unread body when the request is dropped, by reading it to the end into one buffer of the
/// declared size: that blocks until the client sends it all or closes, and for a forged size the
/// allocation aborts the process. So a modest body is answered and discarded on a side thread,
/// and a huge one (or one past `MAX_DRAINS`) is answered and its connection abandoned: the
/// socket and one tiny_http connection thread stay parked until the hub exits.
fn refuse_declared_body(
    rq: tiny_http::Request,
    reply: Reply,
    declared: usize,
    front: &Front,
    origin: Option<&str>,
) {
    let drains = &front.drains;
    if declared <= DRAIN_LIMIT && drains.fetch_add(1, Ordering::SeqCst) < MAX_DRAINS {
        let response = to_response(reply, origin);
        let drains = drains.clone();
        let spawned = std::thread::Builder::new().name("http-drain".into()).spawn(move || {
            let _ = rq.respond(response);
            drains.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            log::warn!("cannot spawn a drain thread; connection dropped");
        }
        return;
    }
    if declared <= DRAIN_LIMIT {
        drains.fetch_sub(1, Ordering::SeqCst);
    }
    log::warn!("abandoning a connection that declared a {declared}-byte body");
    let peer = rq.remote_addr().copied();
    // `upgrade` hands over the raw stream without touching the body reader. It writes the head
    // without a length, so the body runs to the end of the connection, which is shut down here.
    let body = reply.body.clone();
    let head = to_response(Reply { body: Vec::new(), ..reply }, origin);
    let mut stream = rq.upgrade("none", head);
    let _ = stream.write_all(&body);
    let _ = stream.flush();
    std::mem::forget(stream);
    if let Some(peer) = peer {
        socket::shutdown_peer(peer, front.port);
    }
}

fn log_request(req: &Req, status: u16, started: Instant) {
    log_line(&req.method, &req.path, status, started, req.client_name());
}

fn log_line(method: &str, path: &str, status: u16, started: Instant, client: Option<&str>) {
    log::debug!(
        "{method} {path} {status} {:.3}ms client={}",
        started.elapsed().as_secs_f64() * 1000.0,
        client.unwrap_or("-")
    );
}

fn to_response(reply: Reply, cors_origin: Option<&str>) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let mut resp = tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
    let mut add = |name: &str, value: &str| {
        if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            resp.add_header(h);
        }
    };
    if !reply.content_type.is_empty() {
        add("Content-Type", reply.content_type);
    }
    for (name, value) in &reply.headers {
        add(name, value);
    }
    if let Some(origin) = cors_origin {
        add("Access-Control-Allow-Origin", origin);
        add("Access-Control-Expose-Headers", guard::CORS_EXPOSE);
        add("Vary", "Origin");
    }
    resp
}

/// Finding a connection's socket by its peer address, for the one case where tiny_http keeps
/// the socket out of reach (an abandoned oversized request).
mod socket {
    #[cfg(unix)]
    pub use crate::sys::shutdown_connection as shutdown_peer;

    #[cfg(not(unix))]
    pub fn shutdown_peer(_: std::net::SocketAddr, _: u16) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::BufRead;

    fn app() -> Arc<App> {
        let mut flags = HashMap::new();
        flags.insert("AGENTHUB_PORT", "0".to_string());
        flags.insert("AGENTHUB_WORKERS", "1".to_string());
        flags.insert("OLLAMA_URL", "http://127.0.0.1:9".to_string());
        let settings = crate::config::Settings::resolve(&flags, &|_| None).expect("settings");
        let loaded = crate::config::Loaded {
            servers: Vec::new(),
            rules: crate::config::parse_rules(crate::config::DEFAULT_RULES_JSON, "embedded").expect("rules"),
            servers_path: std::env::temp_dir().join("agenthub-unit-never-saved.json"),
            sources: Vec::new(),
            warnings: Vec::new(),
        };
        App::build(settings, loaded)
    }

    fn panicky(_: &App, req: &Req) -> Reply {
        if req.path == "/panic" {
            panic!("boom");
        }
        Reply::ok(&serde_json::json!({"path": req.path}))
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
        let http = Http::start(app(), panicky, fatal).expect("start");
        // One worker: if the panic killed it, the next request would never be answered.
        assert_eq!(get(http.addr(), "/panic"), 500);
        assert_eq!(get(http.addr(), "/fine"), 200);
        assert_eq!(get(http.addr(), "/panic"), 500);
        assert_eq!(get(http.addr(), "/fine"), 200);
        http.shutdown(Duration::from_secs(1));
    }
}
