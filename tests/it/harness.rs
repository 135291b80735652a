//! Test harness: starts the real `agenthub` binary on port 0 with a temporary config dir, talks
//! raw HTTP/1.1 to it (so tests control every header, Host and Origin included), speaks MCP
//! sessions to it, and waits on conditions with deadlines. A started hub is killed when its `Hub`
//! drops.
//!
//! The integration tests (`tests/it`) and the benchmark (`benches/hub.rs`, through `#[path]`)
//! both use this file, so it uses only what both have: the crate's dependencies and `env!`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_agenthub");
/// The misbehaving MCP server the tests run under the hub (`tests/fixture`).
pub const FIXTURE: &str = env!("CARGO_BIN_EXE_mcp-fixture");
/// One second, for deadlines written as `5 * SEC`.
pub const SEC: Duration = Duration::from_secs(1);
/// A servers file with no servers in it.
pub const NO_SERVERS: &str = r#"{"servers": {}}"#;

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "agenthub-it-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write a temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `f` until it returns Some, or panics naming `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A free port below the kernel's ephemeral range (32768 up), for a server that binds it only
/// later (a container publishing it): a port from `free_port` may meanwhile be handed to
/// another test's hub binding port 0.
pub fn unshared_port() -> u16 {
    let start = 20000 + (std::process::id() % 10000) as u16;
    (start..32768)
        .chain(20000..start)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below 32768")
}

/// A command line for the hub with a hermetic environment.
pub fn hub_command(dir: &Path) -> Command {
    hub_environment(Command::new(BIN), dir)
}

/// The hermetic environment of `hub_command` on any command line.
fn hub_environment(mut cmd: Command, dir: &Path) -> Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("AGENTHUB_") || k.starts_with("OLLAMA_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        // Port 9 (discard) is closed on loopback: Ollama is "down" unless a test says otherwise.
        .env("OLLAMA_URL", "http://127.0.0.1:9")
        // The hub installs npm entries in the background: no test downloads (npm reads only
        // its cache; a test serving a registry on loopback turns this off).
        .env("npm_config_offline", "true")
        .env("AGENTHUB_LOG_LEVEL", "debug");
    cmd
}

pub struct HubBuilder {
    dir: TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Pass `--config-dir`; without it the hub looks in `$XDG_CONFIG_HOME/agenthub`.
    named_config: bool,
    graceful: bool,
    /// Start under this open-file limit (soft and hard).
    fd_limit: Option<u64>,
}

impl HubBuilder {
    /// Runs the hub with at most `n` open files (it cannot raise the limit past that).
    pub fn fd_limit(mut self, n: u64) -> Self {
        self.fd_limit = Some(n);
        self
    }

    pub fn servers(self, json: &str) -> Self {
        self.dir.write("mcp-servers.json", json);
        self
    }

    /// A servers file of fixture servers (see [`fixture_servers`]).
    pub fn fixtures(self, servers: &[(&str, Value)]) -> Self {
        self.servers(&fixture_servers(servers))
    }

    pub fn file(self, name: &str, text: &str) -> Self {
        self.dir.write(name, text);
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Start with no config dir named (embedded defaults, saves to the user's config dir).
    pub fn unnamed(mut self) -> Self {
        self.named_config = false;
        self
    }

    /// On drop, SIGTERM first and give the hub 10 s to stop its children, then SIGKILL (the
    /// bench: nothing left running into the next measurement).
    pub fn graceful(mut self) -> Self {
        self.graceful = true;
        self
    }

    pub fn start(self) -> Hub {
        let mut cmd = match self.fd_limit {
            // prlimit execs the hub: the pid is the hub's.
            Some(n) => {
                let mut c = hub_environment(Command::new("prlimit"), self.dir.path());
                c.arg(format!("--nofile={n}:{n}")).arg(BIN);
                c
            }
            None => hub_command(self.dir.path()),
        };
        cmd.arg("serve").args(["--port", "0"]);
        if self.named_config {
            cmd.arg("--config-dir").arg(self.dir.path());
        }
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn agenthub");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = log.clone();
        // The address is passed on the moment it is printed (no polling: the bench times start-up).
        let (listening, addr) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                {
                    let mut l = sink.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
                if let Some(at) = line.find("listening on http://") {
                    let rest = &line[at + "listening on http://".len()..];
                    let _ = listening.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
            }
        });
        let mut hub = Hub {
            child,
            addr: String::new(),
            log,
            dir: self.dir,
            graceful: self.graceful,
            reader: Some(reader),
        };
        let timeout = 15 * SEC;
        hub.addr = match addr.recv_timeout(timeout) {
            Ok(addr) => addr,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("timed out after {timeout:?} waiting for the hub to print its address")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let child = &mut hub.child;
                let status = wait_for("the hub to exit", 5 * SEC, || child.try_wait().ok().flatten());
                panic!("agenthub exited with {status} before listening:\n{}", hub.log());
            }
        };
        hub
    }
}

/// A running hub.
pub struct Hub {
    pub child: Child,
    pub addr: String,
    log: Arc<Mutex<String>>,
    pub dir: TempDir,
    graceful: bool,
    /// The thread collecting the hub's stderr into `log`.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Hub {
    pub fn builder() -> HubBuilder {
        HubBuilder {
            dir: TempDir::new("hub"),
            args: Vec::new(),
            env: Vec::new(),
            named_config: true,
            graceful: false,
            fd_limit: None,
        }
    }

    /// A hub with no servers configured.
    pub fn empty() -> Hub {
        Hub::builder().servers(NO_SERVERS).start()
    }

    /// A hub with these fixture servers (see [`fixture_servers`]) and nothing else set.
    pub fn with_fixtures(servers: &[(&str, Value)]) -> Hub {
        Hub::builder().fixtures(servers).start()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], b"")
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Resp {
        self.request("POST", path, &[JSON], body.to_string().as_bytes())
    }

    /// One request on a fresh connection. `Host` defaults to the hub's address.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        raw_request(&self.addr, method, path, headers, body)
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child by its pid.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Waits for the hub to exit, and for its last log lines to be collected.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = &mut self.child;
        let status = wait_for("the hub to exit", timeout, || child.try_wait().ok().flatten());
        if let Some(reader) = self.reader.take() {
            // Its stderr ends with it (unless something it started still holds it: then give up).
            let deadline = Instant::now() + 2 * SEC;
            while !reader.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
        status
    }

    /// The servers file the hub saved in its config dir.
    pub fn saved(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.path().join("mcp-servers.json")).expect("the saved file");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("saved file is not JSON ({e}):\n{text}"))
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if self.graceful {
                self.signal(libc::SIGTERM);
                let deadline = Instant::now() + 10 * SEC;
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = self.child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {} {}", self.status, self.text()))
    }

    /// Asserts a JSON error body with this status and code; returns the message.
    pub fn expect_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.text());
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "{v}");
        v["error"]["message"].as_str().expect("error.message is a string").to_string()
    }
}

/// `Content-Type: application/json`.
pub const JSON: (&str, &str) = ("Content-Type", "application/json");

/// A request line and headers, not yet ended by the blank line: `Host` added unless given,
/// `Content-Length` unless a length or chunking is given.
fn request_head(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body_len: usize) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding"))
    {
        head.push_str(&format!("Content-Length: {body_len}\r\n"));
    }
    head
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the whole answer.
pub fn raw_request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut stream = TcpStream::connect(addr).expect("connect to the hub");
    stream.set_read_timeout(Some(30 * SEC)).unwrap();
    let mut head = request_head(addr, method, path, headers, body.len());
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // The hub may answer (413) before reading a large body and close: a failed write is fine.
    let _ = stream.write_all(body);
    read_response(&mut stream)
}

pub fn read_response(stream: &mut impl Read) -> Resp {
    read_buffered_response(&mut BufReader::new(stream))
}

/// One response, read to its end and no further (the next one on a keep-alive connection stays).
pub fn read_buffered_response(reader: &mut impl BufRead) -> Resp {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("read the status line");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read a header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let find = |name: &str| {
        headers.iter().find(|(n, _): &&(String, String)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).unwrap();
            body.extend_from_slice(&chunk[..n]);
        }
        // Trailers, up to the blank line that ends the message.
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 && !line.trim_end().is_empty() {
            line.clear();
        }
    } else if let Some(n) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        reader.read_exact(&mut body).unwrap();
    } else if status != 204 && status != 304 {
        let _ = reader.read_to_end(&mut body);
    }
    Resp { status, headers, body }
}

/// One keep-alive HTTP/1.1 connection (TCP_NODELAY set) for requests one after another: what a
/// client that keeps its connection sees, connection set-up left out.
pub struct Conn {
    reader: BufReader<TcpStream>,
    addr: String,
}

impl Conn {
    pub fn new(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect to the hub");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        stream.set_read_timeout(Some(30 * SEC)).unwrap();
        Conn { reader: BufReader::new(stream), addr: addr.to_string() }
    }

    /// One request on this connection (head and body in one write). `Host` defaults to `addr`.
    pub fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let mut req = request_head(&self.addr, method, path, headers, body.len()).into_bytes();
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(body);
        self.reader.get_mut().write_all(&req).expect("send a request");
        read_buffered_response(&mut self.reader)
    }

    pub fn get(&mut self, path: &str) -> Resp {
        self.request("GET", path, &[], b"")
    }

    /// POST with a JSON body given as text.
    pub fn post(&mut self, path: &str, json: &str) -> Resp {
        self.request("POST", path, &[JSON], json.as_bytes())
    }
}

/// A servers file with one fixture server per (name, extra config) pair.
pub fn fixture_servers(servers: &[(&str, Value)]) -> String {
    let mut map = serde_json::Map::new();
    for (name, extra) in servers {
        let mut cfg = json!({"command": FIXTURE, "restart_backoff": 0.1, "restart_backoff_max": 0.5});
        for (k, v) in extra.as_object().expect("extra config is an object") {
            cfg[k] = v.clone();
        }
        map.insert(name.to_string(), cfg);
    }
    json!({ "servers": map }).to_string()
}

impl Hub {
    pub fn post(&self, path: &str) -> Resp {
        self.request("POST", path, &[], b"")
    }

    /// `POST /mcp/{server}/{method}` with `params` as the body.
    pub fn call(&self, server: &str, method: &str, params: &Value) -> Resp {
        self.post_json(&format!("/mcp/{server}/{method}"), params)
    }

    /// `tools/call` of the fixture's `tool` with `args`.
    pub fn tool(&self, server: &str, tool: &str, args: Value) -> Resp {
        self.call(server, "tools/call", &json!({"name": tool, "arguments": args}))
    }

    pub fn server(&self, name: &str) -> Value {
        self.get(&format!("/servers/{name}")).json()
    }

    /// Waits until the server is RUNNING again after `count` restarts.
    pub fn wait_restarted(&self, name: &str, count: u64) -> Value {
        wait_for(&format!("{name} to run after {count} restart(s)"), 10 * SEC, || {
            let s = self.server(name);
            (s["status"] == "RUNNING" && s["restart_count"] == count).then_some(s)
        })
    }

    /// How many `sleep` tool calls the fixture server has begun (from its stderr).
    pub fn in_flight(&self, name: &str) -> usize {
        self.stderr_lines(name, "fixture: sleep start")
    }

    /// How many of the server's kept stderr lines contain `needle`.
    pub fn stderr_lines(&self, name: &str, needle: &str) -> usize {
        let logs = self.get(&format!("/servers/{name}/logs?lines=500")).json();
        logs["lines"]
            .as_array()
            .map_or(0, |l| l.iter().filter(|x| x.as_str().is_some_and(|s| s.contains(needle))).count())
    }

    /// Waits until the server has written a stderr line containing `needle`.
    pub fn wait_stderr(&self, name: &str, needle: &str) {
        wait_for(&format!("{name} to log {needle:?}"), 5 * SEC, || {
            (self.stderr_lines(name, needle) > 0).then_some(())
        });
    }

    pub fn wait_status(&self, name: &str, status: &str, timeout: Duration) -> Value {
        wait_for(&format!("{name} to be {status}"), timeout, || {
            let s = self.server(name);
            (s["status"] == status).then_some(s)
        })
    }
}

/// The text of a tool result's first content item.
pub fn tool_text(r: &Resp) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["content"][0]["text"].as_str().expect("a text content item").to_string()
}

/// Whether a pid is a live process (zombies count as dead).
pub fn alive(pid: i64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let state = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_string));
    state.is_some_and(|s| s != "Z")
}

/// The threads and open descriptors of process `pid`, from /proc.
pub fn threads_and_fds(pid: i32) -> (usize, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (threads, fds)
}

/// The resident memory of process `pid`, in bytes, from /proc.
pub fn rss(pid: i32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    kib << 10
}

/// Live (non-zombie) processes whose group is `pgid`.
pub fn processes_in_group(pgid: i64) -> Vec<i64> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i64>().ok()))
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let Some(i) = stat.rfind(')') else { return false };
            let f: Vec<&str> = stat[i + 1..].split_whitespace().collect();
            f.len() > 2 && f[2] == pgid.to_string() && f[0] != "Z"
        })
        .collect()
}

/// Sends `n` requests at once, each from a thread of its own: request `i` is `request(i)`, a
/// (method, path, body) sent to `addr`. Returns the statuses in the order of `i`.
pub fn storm(
    addr: &str,
    n: usize,
    request: impl Fn(usize) -> (&'static str, String, String) + Sync,
) -> Vec<u16> {
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let request = &request;
                s.spawn(move || {
                    let (method, path, body) = request(i);
                    raw_request(addr, method, &path, &[], body.as_bytes()).status
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

// ---------------------------------------------------------------------------------------------
// MCP over Streamable HTTP

/// The protocol version sessions ask for unless a test says otherwise.
pub const MCP_VERSION: &str = "2025-06-18";
/// The `Accept` header an MCP client sends with every POST.
pub const MCP_ACCEPT: (&str, &str) = ("Accept", "application/json, text/event-stream");

/// The params of an MCP `initialize` asking for `version` and declaring `capabilities`; the
/// client is named after the crate it runs in (`it` for the tests, `hub` for the bench).
pub fn initialize_params(version: &str, capabilities: Value) -> Value {
    json!({"protocolVersion": version, "capabilities": capabilities,
        "clientInfo": {"name": env!("CARGO_CRATE_NAME"), "version": "1"}})
}

/// An MCP `initialize` request (id 0) asking for `version`, declaring no client capabilities.
pub fn initialize_body(version: &str) -> Value {
    initialize_with(version, json!({}))
}

/// An MCP `initialize` request (id 0) asking for `version` and declaring `capabilities`.
pub fn initialize_with(version: &str, capabilities: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": initialize_params(version, capabilities)})
}

/// The notification that ends the MCP handshake.
pub fn initialized_note() -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
}

/// An MCP client session over raw HTTP: its messages carry the session id and the protocol
/// version it asked for.
pub struct McpSession {
    addr: String,
    pub path: String,
    pub session: String,
    version: String,
    /// Some: every message goes on this one keep-alive connection, in turn. None: each on a
    /// fresh connection, so a session's messages may be sent concurrently.
    conn: Option<Mutex<Conn>>,
}

impl McpSession {
    /// A session on the hub's `path`: `initialize` asking for [`MCP_VERSION`] (offering sampling)
    /// answered with that version, then `notifications/initialized`.
    pub fn connect(hub: &Hub, path: &str) -> McpSession {
        let (c, r) =
            McpSession::initialize(&hub.addr, path, &initialize_with(MCP_VERSION, json!({"sampling": {}})));
        assert_eq!(r.json()["result"]["protocolVersion"], MCP_VERSION);
        c.initialized();
        c
    }

    /// A session on `path` at any MCP endpoint's `addr` over one keep-alive connection,
    /// handshake done (the bench's client: the hub and the gateways it is measured against).
    pub fn keep_alive(addr: &str, path: &str) -> McpSession {
        let (c, _) = McpSession::open(addr, path, &initialize_body(MCP_VERSION), Some(Conn::new(addr)));
        c.initialized();
        c
    }

    /// Sends `init` (an `initialize` request) to `path`, expects 200 and a session id, and
    /// returns the session (not yet initialized) with the answer.
    pub fn initialize(addr: &str, path: &str, init: &Value) -> (McpSession, Resp) {
        McpSession::open(addr, path, init, None)
    }

    fn open(addr: &str, path: &str, init: &Value, conn: Option<Conn>) -> (McpSession, Resp) {
        let version = init["params"]["protocolVersion"].as_str().expect("initialize asks for a version");
        let mut c = McpSession {
            addr: addr.to_string(),
            path: path.to_string(),
            session: String::new(),
            version: version.to_string(),
            conn: conn.map(Mutex::new),
        };
        let r = c.post(&[MCP_ACCEPT, JSON], init.to_string().as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        c.session = r.header("mcp-session-id").expect("a session id").to_string();
        (c, r)
    }

    /// Ends the handshake: `notifications/initialized`, accepted with 202.
    pub fn initialized(&self) {
        assert_eq!(self.send(&initialized_note()).status, 202);
    }

    fn post(&self, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        match &self.conn {
            Some(conn) => conn.lock().unwrap().request("POST", &self.path, headers, body),
            None => raw_request(&self.addr, "POST", &self.path, headers, body),
        }
    }

    pub fn send(&self, msg: &Value) -> Resp {
        self.send_raw(msg.to_string().as_bytes())
    }

    /// Sends a message already serialized.
    pub fn send_raw(&self, body: &[u8]) -> Resp {
        let headers =
            [MCP_ACCEPT, JSON, ("Mcp-Session-Id", &self.session), ("MCP-Protocol-Version", &self.version)];
        self.post(&headers, body)
    }

    /// A request on a connection of its own, its answer left to read as it comes.
    fn stream(&self, method: &str, headers: &[(&str, &str)], body: &[u8]) -> BufReader<TcpStream> {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(10 * SEC)).unwrap();
        let mut req = request_head(&self.addr, method, &self.path, headers, body.len()).into_bytes();
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(body);
        stream.write_all(&req).unwrap();
        BufReader::new(stream)
    }

    /// POSTs `msg` and returns the answer unread (status line first), to read as it streams.
    pub fn post_streaming(&self, msg: &Value) -> BufReader<TcpStream> {
        let headers = [
            MCP_ACCEPT,
            JSON,
            ("Mcp-Session-Id", &self.session),
            ("MCP-Protocol-Version", &self.version),
            ("Connection", "close"),
        ];
        self.stream("POST", &headers, msg.to_string().as_bytes())
    }

    /// Ends the session (DELETE).
    pub fn delete(&self) -> Resp {
        let headers =
            [("Mcp-Session-Id", self.session.as_str()), ("MCP-Protocol-Version", self.version.as_str())];
        raw_request(&self.addr, "DELETE", &self.path, &headers, b"")
    }

    /// Opens the session's GET stream and waits until it is open (its first comment).
    pub fn open_stream(&self) -> BufReader<TcpStream> {
        let headers = [
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", &self.session),
            ("MCP-Protocol-Version", &self.version),
        ];
        let mut reader = self.stream("GET", &headers, b"");
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        wait_line(&mut reader, "the stream to open", 5 * SEC, |l| l.contains(": stream open").then_some(()));
        reader
    }

    /// A request's answer: the JSON body, or the response in the SSE stream.
    pub fn call(&self, id: Value, method: &str, params: Value) -> Value {
        let r = self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        assert_eq!(r.status, 200, "{}", r.text());
        match r.header("content-type") {
            Some("application/json") => r.json(),
            Some("text/event-stream") => events(&r.text())
                .into_iter()
                .find(|e| e.get("id") == Some(&id))
                .expect("the response in the stream"),
            other => panic!("unexpected content type {other:?}: {}", r.text()),
        }
    }
}

/// What an SSE `data:` line carries; None for any other line.
pub fn sse_data(line: &str) -> Option<&str> {
    line.trim_end().strip_prefix("data: ")
}

/// The JSON messages of an SSE body.
pub fn events(body: &str) -> Vec<Value> {
    body.lines().filter_map(sse_data).map(|d| serde_json::from_str(d).unwrap()).collect()
}

/// Reads `reader` line by line (read timeouts retried) until `f` maps a line to Some, or panics
/// naming `what` after `timeout`.
pub fn wait_line<T>(
    reader: &mut impl BufRead,
    what: &str,
    timeout: Duration,
    mut f: impl FnMut(&str) -> Option<T>,
) -> T {
    let mut line = String::new();
    wait_for(what, timeout, || {
        line.clear();
        reader.read_line(&mut line).ok()?;
        f(&line)
    })
}

/// The next message on a stream that satisfies `f` (others skipped), within 10 s.
pub fn next_matching(reader: &mut impl BufRead, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + 10 * SEC;
    loop {
        assert!(Instant::now() < deadline, "no {what}");
        let v = next_event(reader, what);
        if f(&v) {
            return v;
        }
    }
}

/// Reads an SSE stream up to its next message; panics if the stream ends `before` one came.
pub fn next_event(reader: &mut impl BufRead, before: &str) -> Value {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "stream ended before {before}");
        if let Some(d) = sse_data(&line) {
            return serde_json::from_str(d).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Other processes and servers

/// Where `make test-deps` (and `make bench-deps`) install the third-party parts some tests and
/// the bench run against.
pub fn deps() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".deps")
}

/// `.deps/{rel}`, asserting that `make test-deps` has installed it.
pub fn dep(rel: &str) -> PathBuf {
    let path = deps().join(rel);
    assert!(path.exists(), "run `make test-deps` (make test does) first");
    path
}

/// The bin of an MCP server from npm that `make test-deps` installed (all of them installed).
pub fn npm_bin(name: &str) -> PathBuf {
    dep("npm/node_modules/.installed");
    dep(&format!("npm/node_modules/.bin/{name}"))
}

/// A server process (another gateway, a remote MCP server) listening on a loopback port: started
/// with its stdio closed, waited for until the port accepts connections, and killed with its
/// whole process group on drop.
pub struct ServerProcess(Child);

impl ServerProcess {
    pub fn start(cmd: &mut Command, port: u16, timeout: Duration) -> ServerProcess {
        use std::os::unix::process::CommandExt;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start a server process");
        let server = ServerProcess(child);
        wait_for(&format!("the server to listen on port {port}"), timeout, || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        server
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // SAFETY: killing the process group this harness created.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// An HTTP server on 127.0.0.1:`port` (0: any free port) handing each request to `answer` on a
/// thread of its own; stopped when dropped.
pub struct Stub {
    /// `http://127.0.0.1:{port}`
    pub url: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Stub {
    pub fn start(port: u16, answer: impl Fn(tiny_http::Request) + Send + Sync + 'static) -> Stub {
        let server = tiny_http::Server::http(("127.0.0.1", port)).expect("bind a stub server");
        let url = format!("http://{}", server.server_addr().to_ip().expect("an ip address"));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let answer = Arc::new(answer);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                if let Ok(Some(rq)) = server.recv_timeout(Duration::from_millis(20)) {
                    let answer = answer.clone();
                    std::thread::spawn(move || answer(rq));
                }
            }
        });
        Stub { url, stop, thread: Some(thread) }
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A stdio program started with its stdin and stdout piped (stderr dropped): the child, its
/// stdin, and its stdout's lines as they come, read on a thread of their own.
pub fn spawn_lines(mut cmd: Command) -> (Child, ChildStdin, mpsc::Receiver<String>) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let stdin = child.stdin.take().expect("piped stdin");
    (child, stdin, lines)
}

/// A request of the 2026-07-28 revision on `/mcp`: no session, the `_meta` envelope, the
/// revision's headers (`name` for `Mcp-Name`), and any `extra` headers (`X-Client-Name`).
pub fn modern_request(
    hub: &Hub,
    id: u64,
    method: &str,
    mut params: Value,
    name: Option<&str>,
    extra: &[(&str, &str)],
) -> Resp {
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "modern-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}});
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let mut headers = vec![
        JSON,
        ("Accept", "application/json, text/event-stream"),
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", method),
    ];
    headers.extend(name.map(|n| ("Mcp-Name", n)));
    headers.extend_from_slice(extra);
    hub.request("POST", "/mcp", &headers, body.to_string().as_bytes())
}
