//! Servers that speak only protocol revision 2026-07-28 (the TypeScript SDK's server package,
//! `serveStdio(factory, {legacy: "reject"})`: `initialize` refused) behind the hub, for
//! today's clients: the hub asks `initialize`, then `server/discover`, and from then on speaks
//! the modern era to the child; its clients see what a 2025 server would have sent them, and
//! the server's `input_required` is answered by the client (or the hub) and retried.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::fake_ollama::FakeOllama;
use crate::harness::*;

fn script(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel).to_string_lossy().into_owned()
}

/// The modern-only server's configuration, with `extra` fields.
fn modern(extra: Value) -> Value {
    let mut cfg = json!({
        "command": "node",
        "args": [script("tests/ts-sdk/modern_server.mjs")],
        "env": {"TS_SDK": dep("ts-sdk")},
        "auto_start": true,
    });
    for (k, v) in extra.as_object().expect("an object") {
        cfg[k] = v.clone();
    }
    cfg
}

/// A hub with the modern-only server (`modern`) beside the legacy fixture (`fx`), both running.
fn hub(extra: Value) -> Hub {
    let servers = json!({"servers": {
        "modern": modern(extra),
        "fx": {"command": FIXTURE, "auto_start": true},
    }});
    let hub = Hub::builder().servers(&servers.to_string()).start();
    hub.wait_status("modern", "RUNNING", 30 * SEC);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    hub
}

/// The modern keys a result must not carry to a 2025 client.
fn assert_legacy(result: &Value, what: &str) {
    for key in ["resultType", "ttlMs", "cacheScope"] {
        assert!(result.get(key).is_none(), "{what} carries {key}: {result}");
    }
    let info = result.pointer("/_meta/io.modelcontextprotocol~1serverInfo");
    assert!(info.is_none(), "{what} carries the server's info: {result}");
}

#[test]
fn the_python_sdk_uses_a_modern_only_server_through_the_hub() {
    let hub = hub(json!({}));
    let s = hub.server("modern");
    assert_eq!(s["era"], "modern", "{s}");
    assert_eq!(s["protocol_version"], "2026-07-28", "{s}");
    assert!(hub.log().contains("server modern: protocol 2026-07-28 (modern era)"), "{}", hub.log());
    let fx = hub.server("fx");
    assert_eq!(fx["era"], "legacy", "{fx}");

    let url = format!("http://{}/mcp/modern", hub.addr);
    let report = python_report(&hub, &url);
    assert_eq!(report["server"], "modern-only");
    assert_eq!(report["tools"], json!(["ask", "echo", "log", "nag", "roots", "sample"]));
    assert_eq!(report["echo"], "Echo: from python");
    // The client's elicitation callback answered the server's input request, and the state
    // the server passed came back to it untouched.
    assert_eq!(report["asked"], json!(["color?"]));
    assert_eq!(report["ask"], "color teal state state-1");
    assert_eq!(report["resource"], "hello from a modern server");
    assert_eq!(report["leaks"], json!([]), "{report}");

    // REST, and the legacy server in the same hub.
    let r = hub.tool("modern", "echo", json!({"message": "over REST"}));
    assert_eq!(tool_text(&r), "Echo: over REST");
    assert_legacy(&r.json(), "a REST tools/call");
    let r = hub.tool("fx", "echo", json!({"text": "legacy still"}));
    assert_eq!(tool_text(&r), "legacy still");
}

#[test]
fn a_legacy_client_sees_a_legacy_handshake_and_results() {
    let hub = hub(json!({}));
    let (c, r) = McpSession::initialize(
        &hub.addr,
        "/mcp/modern",
        &initialize_with(MCP_VERSION, json!({"elicitation": {}})),
    );
    let init = &r.json()["result"];
    assert_eq!(init["protocolVersion"], MCP_VERSION, "{init}");
    assert_eq!(init["serverInfo"]["name"], "modern-only", "{init}");
    assert_eq!(init["instructions"], "a modern-only test server", "{init}");
    assert!(init["capabilities"]["tools"].is_object(), "{init}");
    c.initialized();
    let tools = c.call(json!(1), "tools/list", json!({}));
    assert_legacy(&tools["result"], "tools/list");
    assert_eq!(tools["result"]["tools"].as_array().map(Vec::len), Some(6), "{tools}");
    let read = c.call(json!(2), "resources/read", json!({"uri": "demo://doc"}));
    assert_legacy(&read["result"], "resources/read");
    assert_eq!(read["result"]["contents"][0]["text"], "hello from a modern server");
    let list = c.call(json!(3), "resources/list", json!({}));
    assert_legacy(&list["result"], "resources/list");
    // A modern server has no logging/setLevel: the hub answers it and sends the level with
    // each request (the envelope's logLevel), which the server's own filter goes by.
    let set = c.call(json!(4), "logging/setLevel", json!({"level": "warning"}));
    assert_eq!(set["result"], json!({}), "{set}");
    let logged = c.call(json!(5), "tools/call", json!({"name": "log", "arguments": {}}));
    assert_eq!(logged["result"]["content"][0]["text"], "logged", "{logged}");
    wait_for("the warning in the hub's log", 5 * SEC, || hub.log().contains("a warning line").then_some(()));
    assert!(!hub.log().contains("an info line"), "{}", hub.log());
    // The aggregated view lists it too, under its prefix.
    let all = McpSession::connect(&hub, "/mcp");
    let tools = all.call(json!(1), "tools/list", json!({}));
    let names: Vec<&str> =
        tools["result"]["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"modern__echo") && names.contains(&"fx__echo"), "{names:?}");
    let r =
        all.call(json!(2), "tools/call", json!({"name": "modern__echo", "arguments": {"message": "all"}}));
    assert_eq!(r["result"]["content"][0]["text"], "Echo: all", "{r}");
    assert_legacy(&r["result"], "a tools/call on /mcp");
}

#[test]
fn input_the_hub_answers_itself_and_the_bound_on_rounds() {
    // The server's policy has the hub decline elicitation: the client is never asked. Health
    // pings every 0.2 s: the modern era has no ping, and its error answer counts as alive.
    let hub = hub(json!({"elicitation": "decline", "health_check_interval": 0.2}));
    let (c, _) = McpSession::initialize(
        &hub.addr,
        "/mcp/modern",
        &initialize_with(MCP_VERSION, json!({"elicitation": {}})),
    );
    c.initialized();
    let r = c.call(json!(1), "tools/call", json!({"name": "ask", "arguments": {}}));
    assert_eq!(r["result"]["content"][0]["text"], "color decline state state-1", "{r}");
    // A server that asks whatever it is told gets an error naming the bound.
    let r = c.call(json!(2), "tools/call", json!({"name": "nag", "arguments": {}}));
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("8 rounds"), "{r}");
    // The server is still fine, never taken for hung.
    std::thread::sleep(SEC);
    let r = hub.tool("modern", "echo", json!({"message": "after"}));
    assert_eq!(tool_text(&r), "Echo: after");
    let s = hub.server("modern");
    assert_eq!((&s["status"], &s["restart_count"]), (&json!("RUNNING"), &json!(0)), "{s}");
}

#[test]
fn the_hubs_own_answers_reach_a_modern_server() {
    // A client with neither sampling nor roots: the local model samples (the server's policy),
    // the configured roots answer roots/list, and the server is told the hub can do both.
    let ollama = FakeOllama::start(&["llama3.2:3b"]);
    let servers = json!({"servers": {"modern": modern(json!({"sampling": "local", "roots": ["file:///tmp/configured"]}))}});
    let hub = Hub::builder().servers(&servers.to_string()).env("OLLAMA_URL", &ollama.url).start();
    hub.wait_status("modern", "RUNNING", 30 * SEC);
    let (c, _) = McpSession::initialize(&hub.addr, "/mcp/modern", &initialize_with(MCP_VERSION, json!({})));
    c.initialized();
    let r = c.call(json!(1), "tools/call", json!({"name": "sample", "arguments": {}}));
    let text = r["result"]["content"][0]["text"].as_str().unwrap_or_default();
    assert_eq!(text, "sampled [llama3.2:3b] hello modern", "{r}");
    assert_eq!(ollama.received("/api/chat").len(), 1);
    let r = c.call(json!(2), "tools/call", json!({"name": "roots", "arguments": {}}));
    assert_eq!(r["result"]["content"][0]["text"], "roots file:///tmp/configured", "{r}");
}

#[test]
fn each_callers_input_is_asked_of_its_own_client() {
    // Two sessions' calls wait on the same child at once: each input request belongs to its
    // call, so each client is asked its own, and each result carries its own client's answer.
    let hub = hub(json!({}));
    let session = || {
        let init = initialize_with(MCP_VERSION, json!({"elicitation": {}}));
        let (c, _) = McpSession::initialize(&hub.addr, "/mcp/modern", &init);
        c.initialized();
        c
    };
    let (a, b) = (session(), session());
    let ask = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "ask", "arguments": {}}});
    let mut sa = a.post_streaming(&ask);
    let qa = next_matching(&mut sa, "a's elicitation", |v| v["method"] == "elicitation/create");
    let mut sb = b.post_streaming(&ask);
    let qb = next_matching(&mut sb, "b's elicitation", |v| v["method"] == "elicitation/create");
    assert_ne!(qa["id"], qb["id"]);
    let answer = |id: &Value, color: &str| json!({"jsonrpc": "2.0", "id": id, "result": {"action": "accept", "content": {"color": color}}});
    assert_eq!(b.send(&answer(&qb["id"], "blue")).status, 202);
    assert_eq!(a.send(&answer(&qa["id"], "amber")).status, 202);
    let done = next_matching(&mut sa, "a's result", |v| v["id"] == 1);
    assert_eq!(done["result"]["content"][0]["text"], "color amber state state-1", "{done}");
    assert_legacy(&done["result"], "a streamed result");
    let done = next_matching(&mut sb, "b's result", |v| v["id"] == 1);
    assert_eq!(done["result"]["content"][0]["text"], "color blue state state-1", "{done}");
}

/// The modern-only server over Streamable HTTP on a free port, each POST's headers logged.
fn remote_server(dir: &TempDir) -> (ServerProcess, u16, PathBuf) {
    let port = free_port();
    let log = dir.path().join("posts.log");
    let mut cmd = Command::new("node");
    cmd.arg(script("tests/ts-sdk/modern_server.mjs"))
        .args(["--http", &port.to_string()])
        .arg(&log)
        .env("TS_SDK", dep("ts-sdk"));
    (ServerProcess::start(&mut cmd, port, 20 * SEC), port, log)
}

#[test]
fn a_modern_only_remote_server_is_reached_in_its_era() {
    let dir = TempDir::new("modern-remote");
    let (_server, port, log) = remote_server(&dir);
    let remote =
        json!({"transport": "http", "url": format!("http://127.0.0.1:{port}/mcp"), "auto_start": true});
    let servers = json!({"servers": {"remote": remote, "fx": {"command": FIXTURE, "auto_start": true}}});
    let hub = Hub::builder().servers(&servers.to_string()).start();
    let s = hub.wait_status("remote", "RUNNING", 20 * SEC);
    assert_eq!((&s["era"], &s["protocol_version"]), (&json!("modern"), &json!("2026-07-28")), "{s}");

    let url = format!("http://{}/mcp/remote", hub.addr);
    let report = python_report(&hub, &url);
    assert_eq!(report["server"], "modern-only");
    assert_eq!(report["echo"], "Echo: from python");
    assert_eq!(report["ask"], "color teal state state-1", "{report}");
    assert_eq!(report["resource"], "hello from a modern server");
    assert_eq!(report["leaks"], json!([]), "{report}");
    let r = hub.tool("remote", "echo", json!({"message": "over REST"}));
    assert_eq!(tool_text(&r), "Echo: over REST");
    assert_legacy(&r.json(), "a REST tools/call");

    // On the wire: no initialize, no session, each POST naming its method and target.
    let posts: Vec<Value> = std::fs::read_to_string(&log)
        .expect("the server's log")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(posts[0], json!(["POST", "server/discover", null, null, "2026-07-28"]), "{posts:?}");
    for p in &posts {
        assert_eq!((&p[3], &p[4]), (&Value::Null, &json!("2026-07-28")), "{posts:?}");
        assert!(p[1].is_string(), "every POST names its method: {posts:?}");
    }
    let named = |method: &str, name: &str| posts.iter().any(|p| p[1] == method && p[2] == name);
    assert!(named("tools/call", "echo") && named("tools/call", "ask"), "{posts:?}");
    assert!(named("resources/read", "demo://doc"), "{posts:?}");
    assert!(!posts.iter().any(|p| p[1] == "initialize"), "{posts:?}");
}

/// What the Python SDK (`tests/python/modern_client.py`, a client of today's era) reports of
/// the server at `url`.
fn python_report(hub: &Hub, url: &str) -> Value {
    let out = Command::new(dep("venv/bin/python"))
        .arg(script("tests/python/modern_client.py"))
        .arg(url)
        .output()
        .expect("run the Python client");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the Python client failed: {stdout}\n{stderr}\n{}", hub.log());
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not a report ({e}): {stdout}\n{stderr}"))
}
