//! The HTTP front: the hub's own small HTTP/1.1 server. One `http-accept` thread accepts
//! connections (bounded below the descriptor limit: past it a 503 and close), one `http-conn`
//! thread per connection reads its requests (every read with a deadline, the head within size
//! limits) and runs the guards before any body is read, and a pool of `http-N` workers runs the
//! handlers and sends their answers; what may take long (`Reply::later`, streams) goes on on a
//! thread of its own, so it never holds a worker (`serve`). Handlers live in `routes`;
//! ARCHITECTURE.md says why this is not tiny_http any more.

mod conn;
mod dashboard;
pub mod guard;
mod pipelines;
pub mod response;
pub mod routes;
mod serve;

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

pub use crate::app::App;
use crate::error::{Error, Result};
use crate::queue::Queue;
use conn::Conn;
pub use response::{Reply, Req};

/// Produces the reply to a request whose guards passed (the route table, or a test's).
pub type Router = fn(&App, &Req) -> Reply;

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
    app: Arc<App>,
    router: Router,
    jobs: Queue<Job>,
    /// Open connections, so shutdown can end them; their count is bounded by `max_conns`.
    conns: Mutex<HashMap<u64, Arc<TcpStream>>>,
    next_conn: AtomicU64,
    max_conns: usize,
    stop: AtomicBool,
    /// How long a request's head or body may take once it started; idle keep-alive
    /// connections close after twice that; a write may block this long.
    read_timeout: Duration,
}

/// A running HTTP front.
pub struct Http {
    addr: SocketAddr,
    front: Arc<Front>,
    acceptor: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl Http {
    /// Binds `host:port`, starts the acceptor and `workers` threads. An accept failure that
    /// is not the client's (out of descriptors, ...) is reported on `fatal`.
    pub fn start(app: Arc<App>, router: Router, fatal: Fatal) -> Result<Http> {
        let s = &app.settings;
        let listener = bind(&s.host, s.port)?;
        let addr = listener.local_addr().map_err(|e| Error::io("reading the bound address", e))?;
        let max_conns = s.max_connections.unwrap_or_else(default_max_connections);
        let front = Arc::new(Front {
            router,
            jobs: Queue::default(),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            max_conns,
            stop: AtomicBool::new(false),
            read_timeout: s.read_timeout,
            app: app.clone(),
        });
        let mut workers = Vec::with_capacity(s.workers);
        for i in 0..s.workers {
            let front = front.clone();
            let handle = std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || worker(&front))
                .map_err(|e| Error::io("spawning an HTTP worker", e))?;
            workers.push(handle);
        }
        let acceptor = {
            let front = front.clone();
            std::thread::Builder::new()
                .name("http-accept".into())
                .spawn(move || accept_loop(&front, &listener, &fatal))
                .map_err(|e| Error::io("spawning the HTTP acceptor", e))?
        };
        log::debug!("HTTP front: {} workers, at most {max_conns} connections", s.workers);
        Ok(Http { addr, front, acceptor: Some(acceptor), workers })
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
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
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

fn bind(host: &str, port: u16) -> Result<TcpListener> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::Config(format!("AGENTHUB_HOST: cannot resolve '{host}': {e}")))?
        .collect();
    TcpListener::bind(&addrs[..]).map_err(|e| Error::io(format!("cannot listen on {host}:{port}"), e))
}

/// The acceptor's main loop: each connection gets a thread of its own, or a 503 when the
/// front is full.
fn accept_loop(front: &Arc<Front>, listener: &TcpListener, fatal: &Fatal) {
    loop {
        let (stream, _) = match listener.accept() {
            Ok(c) => c,
            Err(e) if transient(&e) => continue,
            Err(e) => {
                let _ = fatal.send(format!("the HTTP listener failed: {e}"));
                return;
            }
        };
        if front.stop.load(Ordering::SeqCst) {
            return;
        }
        let _ = stream.set_nodelay(true);
        let stream = Arc::new(stream);
        let id = front.next_conn.fetch_add(1, Ordering::Relaxed);
        {
            let mut conns = front.conns.lock();
            if conns.len() >= front.max_conns {
                drop(conns);
                busy(&stream, "too many connections");
                continue;
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

/// The main loop of a worker: take a request, produce its reply and send it on, until the
/// front closes.
fn worker(front: &Front) {
    while let Some(Job { req, answer }) = front.jobs.pop() {
        let id = Some(req.id.clone());
        let run = || crate::request_id::with(id, || (front.router)(&front.app, &req));
        let reply = catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|_| {
            log::error!("handler for {} {} panicked", req.method, req.path);
            Reply::error(500, "internal", "internal error (logged)")
        });
        // The answer's turn ends however this ends (`serve::Owed`); the worker lives on.
        if catch_unwind(AssertUnwindSafe(|| serve::answer(req, reply, answer))).is_err() {
            log::error!("sending an answer panicked; its connection is closed");
        }
    }
}

fn code_of(status: u16) -> &'static str {
    match status {
        408 => "timeout",
        413 => "payload_too_large",
        414 | 431 => "header_too_large",
        501 | 505 => "not_implemented",
        _ => "bad_request",
    }
}

/// What an answered request adds to the metrics: its route and status, and for an MCP request
/// (JSON-RPC on `/mcp...`, or the REST relay) the operation's duration by method and tool.
fn record(req: &Req, reply: &Reply, started: Instant) {
    let metrics = crate::metrics::global();
    let route = reply.route.unwrap_or_else(|| routes::template(&req.path));
    metrics.http_request(route, reply.status);
    if req.method != "POST" {
        return;
    }
    let mut segs = req.path.trim_start_matches('/').split('/').skip(1);
    let server = segs.next().unwrap_or("");
    let (method, tool) = match route {
        "/mcp" | "/mcp/{server}" => rpc_of(&req.body),
        "/mcp/{server}/{*method}" => (segs.collect::<Vec<_>>().join("/"), rpc_of(&req.body).1),
        _ => return,
    };
    metrics.client_operation(server, &method, &tool, &error_type(reply), started.elapsed());
}

#[derive(serde::Deserialize)]
struct RpcHead {
    #[serde(default)]
    method: String,
    params: Option<RpcParams>,
    /// A REST relay's body is the params themselves.
    name: Option<String>,
}

#[derive(serde::Deserialize)]
struct RpcParams {
    name: Option<String>,
}

/// A JSON-RPC body's method and tool name (`batch` for an array), read without building a
/// value of the whole body.
fn rpc_of(body: &[u8]) -> (String, String) {
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return ("batch".into(), String::new());
    }
    match serde_json::from_slice::<RpcHead>(body) {
        Ok(h) => {
            let tool = h.params.and_then(|p| p.name).or(h.name).unwrap_or_default();
            (h.method, tool)
        }
        Err(_) => (String::new(), String::new()),
    }
}

#[derive(serde::Deserialize)]
struct AnswerHead {
    error: Option<AnswerError>,
    result: Option<ResultHead>,
    #[serde(rename = "isError")]
    is_error: Option<bool>,
}

#[derive(serde::Deserialize)]
struct AnswerError {
    code: Option<i64>,
}

#[derive(serde::Deserialize)]
struct ResultHead {
    #[serde(rename = "isError")]
    is_error: Option<bool>,
}

/// The OpenTelemetry `error.type` of an answer: the HTTP status past 400, the JSON-RPC error
/// code (known ones; `other`), `tool_error` for an `isError` result, empty for success.
fn error_type(reply: &Reply) -> String {
    if reply.status >= 400 {
        return reply.status.to_string();
    }
    if reply.content_type != "application/json" {
        return String::new();
    }
    let Ok(a) = serde_json::from_slice::<AnswerHead>(&reply.body) else { return String::new() };
    match a.error.and_then(|e| e.code) {
        Some(code @ (-32700 | -32600 | -32601 | -32602 | -32603 | -32000 | -32001 | -32002)) => {
            code.to_string()
        }
        Some(_) => crate::metrics::OTHER.into(),
        None if a.result.and_then(|r| r.is_error).or(a.is_error) == Some(true) => "tool_error".into(),
        None => String::new(),
    }
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
            pipelines: Vec::new(),
            pipelines_embedded: true,
            servers_path: std::env::temp_dir().join("agenthub-unit-never-saved.json"),
            document: crate::config::Document::empty(Default::default()),
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
