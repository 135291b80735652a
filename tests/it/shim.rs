//! `agenthub stdio`: the shim a stdio-only client (Claude Desktop) launches once and keeps, so
//! it must ride out whatever the hub does: restarts, starting late, forgetting the session.

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

/// A running shim with its stdin and the lines of its stdout.
struct Shim {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Shim {
    fn start(args: &[&str]) -> Shim {
        let mut cmd = Command::new(BIN);
        cmd.arg("stdio").args(args).env_remove("AGENTHUB_URL").env_remove("AGENTHUB_TOKEN");
        let (child, stdin, lines) = spawn_lines(cmd);
        Shim { stdin: Some(stdin), child, lines }
    }

    fn to(addr: &str, server: &str, extra: &[&str]) -> Shim {
        let url = format!("http://{addr}");
        let mut args = vec![server, "--url", &url];
        args.extend_from_slice(extra);
        Shim::start(&args)
    }

    fn send(&mut self, msg: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{msg}").expect("write to the shim");
        stdin.flush().expect("flush");
    }

    /// The next line answering `id`, every line a JSON-RPC message.
    fn answer(&self, id: &Value, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line =
                self.lines.recv_timeout(left).unwrap_or_else(|_| panic!("no answer to {id} in {timeout:?}"));
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert_eq!(v["jsonrpc"], "2.0", "{line}");
            if &v["id"] == id {
                return v;
            }
        }
    }

    /// The answers to `ids`, in whatever order they come.
    fn answers(&self, ids: &[i64], timeout: Duration) -> Vec<(i64, Value)> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while got.len() < ids.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!("answers to {ids:?} in {timeout:?}: only {got:?}");
            });
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert_eq!(v["jsonrpc"], "2.0", "{line}");
            if let Some(id) = v["id"].as_i64().filter(|id| ids.contains(id)) {
                got.push((id, v));
            }
        }
        got
    }

    fn initialize(&mut self) -> Value {
        self.send(&initialize_body(MCP_VERSION));
        let r = self.answer(&json!(0), 20 * SEC);
        self.send(&initialized_note());
        r
    }

    fn echo(&mut self, id: i64, text: &str) -> Value {
        self.send_echo(id, text);
        self.answer(&json!(id), 20 * SEC)
    }

    fn send_echo(&mut self, id: i64, text: &str) {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": text}}}));
    }

    fn close_stdin(&mut self) {
        self.stdin.take();
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(r: &Value) -> &str {
    r["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text: {r}"))
}

fn hub_on(port: u16) -> Hub {
    Hub::builder()
        .fixtures(&[("fx", json!({"auto_start": true}))])
        .arg("--port")
        .arg(&port.to_string())
        .start()
}

#[test]
fn the_shim_rides_out_a_hub_restart() {
    let port = free_port();
    let mut hub = hub_on(port);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let mut shim = Shim::to(&hub.addr, "fx", &[]);
    assert!(shim.initialize()["result"]["serverInfo"].is_object());
    assert_eq!(text(&shim.echo(2, "before")), "before");

    hub.signal(libc::SIGTERM);
    hub.wait_exit(10 * SEC);
    let hub = hub_on(port);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    // The new hub knows nothing of the old session: the shim makes a new one, unseen.
    assert_eq!(text(&shim.echo(3, "after")), "after");
    assert_eq!(text(&shim.echo(4, "and on")), "and on");
}

/// Busy loops for as long as it lives, killed by pid and reaped on drop: the shim and the hubs
/// get the CPU late, which widens the windows between their steps.
struct BusyCpu(Vec<Child>);

impl BusyCpu {
    fn start(loops: usize) -> BusyCpu {
        let spawn = || {
            Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start a busy loop")
        };
        BusyCpu((0..loops).map(|_| spawn()).collect())
    }
}

impl Drop for BusyCpu {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Four calls at once through the shim, each answer checked (`restart`: the hub's turn).
fn echo_burst(shim: &mut Shim, next_id: &mut i64, restart: usize) {
    let ids: Vec<i64> = (0..4)
        .map(|_| {
            *next_id += 1;
            shim.send_echo(*next_id, &format!("call {next_id}"));
            *next_id
        })
        .collect();
    for (id, r) in shim.answers(&ids, 20 * SEC) {
        assert_eq!(r["result"]["content"][0]["text"], format!("call {id}"), "after restart {restart}: {r}");
    }
}

/// Each stop ends the shim's GET stream while the old hub still takes connections, so the shim
/// replays the client's `initialize` at a hub going away. When that replay failed, the shim was
/// left with no session at all, and the calls that came next were refused ("Mcp-Session-Id
/// header is required"). Twenty restarts on a busy CPU give that race its chances.
#[test]
fn the_shim_rides_out_twenty_hub_restarts_on_a_busy_cpu() {
    let _busy = BusyCpu::start(2);
    let port = free_port();
    let mut hub = hub_on(port);
    hub.wait_status("fx", "RUNNING", 20 * SEC);
    let mut shim = Shim::to(&hub.addr, "fx", &[]);
    assert!(shim.initialize()["result"]["serverInfo"].is_object());
    let mut id = 1;
    for restart in 1..=20 {
        // The client calls until the shim's GET stream is open on this hub (the shim opens it
        // at most once a second), so that the stop ends it.
        wait_for(&format!("the shim's GET stream before restart {restart}"), 20 * SEC, || {
            echo_burst(&mut shim, &mut id, restart - 1);
            hub.log().contains("GET /mcp/fx 200").then_some(())
        });
        hub.signal(libc::SIGTERM);
        hub.wait_exit(10 * SEC);
        hub = hub_on(port);
        // And again the moment the new hub listens, whatever the shim is still sorting out.
        echo_burst(&mut shim, &mut id, restart);
    }
}

#[test]
fn the_shim_waits_for_a_hub_that_comes_up_late() {
    let port = free_port();
    let mut shim = Shim::to(&format!("127.0.0.1:{port}"), "fx", &[]);
    shim.send(&initialize_body(MCP_VERSION));
    // The client's initialize is waiting in the shim; the hub starts now.
    let hub = hub_on(port);
    let r = shim.answer(&json!(0), 20 * SEC);
    assert!(r["result"]["serverInfo"].is_object(), "{r}");
    shim.send(&initialized_note());
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    assert_eq!(text(&shim.echo(2, "late but there")), "late but there");
}

#[test]
fn a_hub_that_never_comes_is_a_clear_json_rpc_error() {
    let port = free_port();
    let mut shim = Shim::to(&format!("127.0.0.1:{port}"), "fx", &["--wait", "1"]);
    shim.send(&initialize_body(MCP_VERSION));
    let r = shim.answer(&json!(0), 10 * SEC);
    let msg = r["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("did not answer within 1s") && msg.contains("agenthub"), "{r}");
}

#[test]
fn a_server_name_that_does_not_exist_is_answered_naming_the_known_ones() {
    let hub = Hub::with_fixtures(&[("fx", json!({})), ("fy", json!({}))]);
    let mut shim = Shim::to(&hub.addr, "typo", &[]);
    shim.send(&initialize_body(MCP_VERSION));
    let r = shim.answer(&json!(0), 10 * SEC);
    let msg = r["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("no server named \"typo\"") && msg.contains("fx, fy"), "{r}");

    // The same for an MCP client over HTTP: a JSON-RPC error it can show, under its own id.
    let r = hub.request(
        "POST",
        "/mcp/typo",
        &[MCP_ACCEPT, JSON],
        initialize_body(MCP_VERSION).to_string().as_bytes(),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["id"], 0, "{}", r.text());
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("known servers: fx, fy"), "{}", r.text());
}

#[test]
fn answers_in_flight_when_stdin_closes_are_still_written() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let mut shim = Shim::to(&hub.addr, "fx", &[]);
    shim.initialize();
    shim.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "sleep", "arguments": {"ms": 500}}}));
    hub.wait_stderr("fx", "fixture: call sleep");
    shim.close_stdin();
    assert_eq!(text(&shim.answer(&json!(2), 10 * SEC)), "slept 500");
    let child = &mut shim.child;
    let status = wait_for("the shim to exit", 10 * SEC, || child.try_wait().ok().flatten());
    assert!(status.success(), "{status}");
}

#[test]
fn the_2026_probe_reaches_the_hub_and_without_one_fails_after_the_wait() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 5 * SEC);
    let mut shim = Shim::to(&hub.addr, "fx", &[]);
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "probe", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}});
    shim.send(&json!({"jsonrpc": "2.0", "id": "d", "method": "server/discover", "params": {"_meta": meta}}));
    let r = shim.answer(&json!("d"), 10 * SEC);
    assert!(r["result"]["supportedVersions"].as_array().unwrap().contains(&json!("2026-07-28")), "{r}");
    assert_eq!(r["result"]["resultType"], "complete", "{r}");
    // A request of that revision goes without a session, with the headers it needs.
    shim.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "modern"}, "_meta": meta}}));
    let r = shim.answer(&json!(2), 10 * SEC);
    assert_eq!(r["result"]["resultType"], "complete", "{r}");
    assert!(r.to_string().contains("modern"), "{r}");

    // No hub at all: the probe is answered with an error once the wait is over, never silence.
    let port = free_port();
    let mut shim = Shim::to(&format!("127.0.0.1:{port}"), "fx", &["--wait", "0.5"]);
    shim.send(&json!({"jsonrpc": "2.0", "id": "d", "method": "server/discover", "params": {"_meta": meta}}));
    let r = shim.answer(&json!("d"), 10 * SEC);
    assert_eq!(r["error"]["code"], -32000, "{r}");
}

#[test]
fn the_client_name_reaches_the_hub() {
    // A stand-in hub that records the header each request carries.
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let addr = server.server_addr().to_ip().unwrap().to_string();
    let (tx, seen) = mpsc::channel();
    std::thread::spawn(move || {
        for mut req in server.incoming_requests() {
            let name =
                req.headers().iter().find(|h| h.field.equiv("X-Client-Name")).map(|h| h.value.to_string());
            let mut body = String::new();
            let _ = req.as_reader().read_to_string(&mut body);
            let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let _ = tx.send((msg["method"].as_str().unwrap_or_default().to_string(), name));
            let answer = json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"protocolVersion": MCP_VERSION,
                "capabilities": {}, "serverInfo": {"name": "stand-in", "version": "1"}}});
            let header = tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap();
            let _ = req.respond(tiny_http::Response::from_string(answer.to_string()).with_header(header));
        }
    });
    let check = |args: &[&str], expected: &str| {
        let mut shim = Shim::to(&addr, "fx", args);
        shim.initialize();
        // Only this shim's initialize counts: the previous shim's requests (its notification,
        // its GET, a handshake of its own) may still be arriving.
        let deadline = Instant::now() + 5 * SEC;
        let mut others = Vec::new();
        loop {
            match seen.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok((method, name)) if method == "initialize" && name.as_deref() == Some(expected) => break,
                Ok(other) => others.push(other),
                Err(_) => panic!("no initialize named {expected} with {args:?}; the stand-in saw {others:?}"),
            }
        }
    };
    // The client's own name by default (initialize_body's clientInfo), --client over it.
    let own = initialize_body(MCP_VERSION)["params"]["clientInfo"]["name"].as_str().unwrap().to_string();
    check(&[], &own);
    check(&["--client", "claude-desktop"], "claude-desktop");
}
