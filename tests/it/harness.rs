//! Test harness: starts the real `agenthub` binary on port 0 with a temporary config dir, talks
//! raw HTTP/1.1 to it (so tests control every header, Host and Origin included), and waits on
//! conditions with deadlines. A started hub is killed when its `Hub` drops.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_agenthub");

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

/// A command line for the hub with a hermetic environment.
pub fn hub_command(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
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
        .env("AGENTHUB_LOG_LEVEL", "debug");
    cmd
}

pub struct HubBuilder {
    dir: TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Pass `--config-dir`; without it the hub looks in `$XDG_CONFIG_HOME/agenthub`.
    named_config: bool,
}

impl HubBuilder {
    pub fn servers(self, json: &str) -> Self {
        self.dir.write("mcp-servers.json", json);
        self
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

    pub fn start(self) -> Hub {
        let mut cmd = hub_command(self.dir.path());
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
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut hub = Hub { child, addr: String::new(), log, dir: self.dir };
        let addr = wait_for("the hub to print its address", Duration::from_secs(15), || {
            if let Ok(Some(status)) = hub.child.try_wait() {
                panic!("agenthub exited with {status} before listening:\n{}", hub.log());
            }
            let log = hub.log();
            let at = log.find("listening on http://")?;
            let rest = &log[at + "listening on http://".len()..];
            Some(rest.split_whitespace().next()?.to_string())
        });
        hub.addr = addr;
        hub
    }
}

/// A running hub.
pub struct Hub {
    pub child: Child,
    pub addr: String,
    log: Arc<Mutex<String>>,
    pub dir: TempDir,
}

impl Hub {
    pub fn builder() -> HubBuilder {
        HubBuilder { dir: TempDir::new("hub"), args: Vec::new(), env: Vec::new(), named_config: true }
    }

    /// A hub with no servers configured.
    pub fn empty() -> Hub {
        Hub::builder().servers(r#"{"servers": {}}"#).start()
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
        self.request("POST", path, &[("Content-Type", "application/json")], body.to_string().as_bytes())
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

    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = &mut self.child;
        wait_for("the hub to exit", timeout, || child.try_wait().ok().flatten())
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
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

/// Sends one HTTP/1.1 request with `Connection: close` and reads the whole answer.
pub fn raw_request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut stream = TcpStream::connect(addr).expect("connect to the hub");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
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
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // The hub may answer (413) before reading a large body and close: a failed write is fine.
    let _ = stream.write_all(body);
    read_response(&mut stream)
}

pub fn read_response(stream: &mut impl Read) -> Resp {
    let mut reader = BufReader::new(stream);
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
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).unwrap();
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        reader.read_exact(&mut body).unwrap();
    } else {
        let _ = reader.read_to_end(&mut body);
    }
    Resp { status, headers, body }
}

pub const FIXTURE: &str = env!("CARGO_BIN_EXE_mcp-fixture");

/// A servers file with one fixture server per (name, extra config) pair.
pub fn fixture_servers(servers: &[(&str, Value)]) -> String {
    let mut map = serde_json::Map::new();
    for (name, extra) in servers {
        let mut cfg =
            serde_json::json!({"command": FIXTURE, "restart_backoff": 0.1, "restart_backoff_max": 0.5});
        for (k, v) in extra.as_object().expect("extra config is an object") {
            cfg[k] = v.clone();
        }
        map.insert(name.to_string(), cfg);
    }
    serde_json::json!({ "servers": map }).to_string()
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
        self.call(server, "tools/call", &serde_json::json!({"name": tool, "arguments": args}))
    }

    pub fn server(&self, name: &str) -> Value {
        self.get(&format!("/servers/{name}")).json()
    }

    /// Waits until the server is RUNNING again after `count` restarts.
    pub fn wait_restarted(&self, name: &str, count: u64) -> Value {
        wait_for(&format!("{name} to run after {count} restart(s)"), Duration::from_secs(10), || {
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
        wait_for(&format!("{name} to log {needle:?}"), Duration::from_secs(5), || {
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
