//! Remote servers over the legacy HTTP+SSE transport (`"type": "sse"`, MCP 2024-11-05), against
//! server-everything in its `sse` mode: started, relayed (REST and MCP, progress included),
//! taken down when its stream drops and brought back by the restart policy, stopped cleanly.

use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};

use crate::harness::*;

/// server-everything in its legacy SSE mode (`GET /sse`, `POST /message`) on a port of its own.
fn sse_everything(port: u16) -> ServerProcess {
    let mut cmd = Command::new(npm_bin("mcp-server-everything"));
    cmd.arg("sse").env("PORT", port.to_string());
    ServerProcess::start(&mut cmd, port, 20 * SEC)
}

/// The names of the hub's threads.
fn threads(hub: &Hub) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", hub.pid())).unwrap();
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .collect()
}

fn echo(text: &str) -> Value {
    json!({"name": "echo", "arguments": {"message": text}})
}

#[test]
fn legacy_sse_servers_run_relay_fail_fast_and_come_back() {
    let port = free_port();
    let remote = sse_everything(port);
    let servers = json!({"servers": {"legacy": {"type": "sse", "url": format!("http://127.0.0.1:{port}/sse"),
        "request_timeout": 3, "restart_backoff": 0.2, "restart_backoff_max": 0.5, "max_restarts": 1000}}});
    let hub = Hub::builder().servers(&servers.to_string()).start();
    let s = hub.post("/servers/legacy/start");
    assert_eq!(s.status, 200, "{}", s.text());
    assert_eq!((s.json()["status"].clone(), s.json()["pid"].clone()), (json!("RUNNING"), Value::Null));
    assert!(threads(&hub).contains(&"sse-legacy".to_string()), "{:?}", threads(&hub));

    let r = hub.call("legacy", "tools/list", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    let tools = r.json();
    let names: Vec<&str> =
        tools["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"echo") && names.contains(&"trigger-long-running-operation"), "{names:?}");
    assert!(tool_text(&hub.call("legacy", "tools/call", &echo("over sse"))).contains("over sse"));

    // Answers come back on one stream: each caller gets its own.
    std::thread::scope(|s| {
        for i in 0..8 {
            let hub = &hub;
            s.spawn(move || {
                let text = format!("caller {i}");
                assert!(tool_text(&hub.call("legacy", "tools/call", &echo(&text))).contains(&text));
            });
        }
    });

    let c = McpSession::connect(&hub, "/mcp/legacy");
    let r = c.call(json!("e1"), "tools/call", echo("through mcp"));
    assert_eq!(r["id"], "e1");
    assert!(r["result"]["content"][0]["text"].as_str().unwrap().contains("through mcp"), "{r}");

    // Progress from the stream reaches the caller, under its own token, as it comes.
    let r = c.send(&json!({"jsonrpc": "2.0", "id": "lr", "method": "tools/call", "params": {
        "name": "trigger-long-running-operation", "arguments": {"duration": 1, "steps": 3}, "_meta": {"progressToken": "tok"}}}));
    assert_eq!(r.header("content-type"), Some("text/event-stream"), "{}", r.text());
    let ev = events(&r.text());
    let progress = ev
        .iter()
        .filter(|e| e["method"] == "notifications/progress" && e["params"]["progressToken"] == "tok")
        .count();
    assert_eq!(progress, 3, "{ev:?}");
    assert_eq!(ev.last().unwrap()["id"], "lr");
    assert!(ev.last().unwrap()["result"]["content"][0]["text"].as_str().unwrap().contains("completed"));

    // A call in flight when the server dies fails at once with the reason, not at its deadline.
    let mut reader = c.post_streaming(&json!({"jsonrpc": "2.0", "id": "dying", "method": "tools/call", "params": {
        "name": "trigger-long-running-operation", "arguments": {"duration": 15, "steps": 15}, "_meta": {"progressToken": 1}}}));
    assert_eq!(next_event(&mut reader, "the first progress")["method"], "notifications/progress");
    let t = Instant::now();
    drop(remote);
    let last = loop {
        let v = next_event(&mut reader, "the failed call's answer");
        if v["id"] == "dying" {
            break v;
        }
    };
    assert!(t.elapsed() < 5 * SEC, "the call failed when the stream dropped: {:?}", t.elapsed());
    let msg = last["error"]["message"].as_str().unwrap_or_default().to_string();
    assert_eq!(last["error"]["code"], -32000, "{last}");
    assert!(msg.contains("server legacy is down"), "{msg}");

    // The server leaves RUNNING and is restarted by its policy; a call meanwhile waits for the
    // restart no longer than its own deadline, as for any server that is starting.
    let s = wait_for("legacy to leave RUNNING", 5 * SEC, || {
        let s = hub.server("legacy");
        (s["status"] != "RUNNING").then_some(s)
    });
    assert!(s["last_error"].as_str().unwrap_or_default().contains("event stream"), "{s}");
    let t = Instant::now();
    let msg = hub.call("legacy", "tools/call", &echo("while down")).expect_error(504, "timeout");
    assert!(msg.contains("server legacy is still starting"), "{msg}");
    assert!(t.elapsed() < 5 * SEC, "a call to a server that is down does not hang: {:?}", t.elapsed());
    wait_for("a failed relaunch", 10 * SEC, || {
        (hub.server("legacy")["restart_count"].as_u64() >= Some(2)).then_some(())
    });

    let _back = sse_everything(port);
    hub.wait_status("legacy", "RUNNING", 15 * SEC);
    assert!(tool_text(&hub.call("legacy", "tools/call", &echo("back again"))).contains("back again"));
    assert_eq!(
        threads(&hub).iter().filter(|t| *t == "sse-legacy").count(),
        1,
        "one reader: {:?}",
        threads(&hub)
    );

    // A stop closes the stream and joins its reader.
    assert_eq!(hub.post("/servers/legacy/stop").json()["status"], "STOPPED");
    let left = threads(&hub);
    assert!(!left.iter().any(|t| t.starts_with("sse-")), "{left:?}");
}
