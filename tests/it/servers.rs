//! Server management end to end against the fixture MCP server: lifecycle, the stdio bridge,
//! supervision (crash, crash loop, hang), configuration changes and shutdown.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

#[test]
fn start_call_restart_stop() {
    let hub = Hub::with_fixtures(&[("fx", json!({}))]);
    assert_eq!(hub.server("fx")["status"], "STOPPED");
    let r = hub.post("/servers/fx/start");
    assert_eq!(r.status, 200, "{}", r.text());
    let s = r.json();
    assert_eq!(s["status"], "RUNNING");
    let pid = s["pid"].as_i64().expect("a pid");
    assert!(alive(pid));
    assert!(s["started_at"].as_str().unwrap().ends_with('Z'));
    // Start on RUNNING is a no-op.
    assert_eq!(hub.post("/servers/fx/start").json()["pid"], pid);

    let tools = hub.call("fx", "tools/list", &json!({})).json();
    assert!(tools["tools"].as_array().unwrap().iter().any(|t| t["name"] == "echo"), "{tools}");
    assert_eq!(tool_text(&hub.tool("fx", "echo", json!({"text": "hi there"}))), "hi there");
    let h = hub.get("/health").json();
    assert_eq!(h["servers"]["fx"]["status"], "RUNNING");
    assert_eq!(hub.get("/health/fx").status, 200);

    let r = hub.post("/servers/fx/restart");
    assert_eq!(r.status, 200, "{}", r.text());
    let new_pid = r.json()["pid"].as_i64().unwrap();
    assert_ne!(new_pid, pid);
    assert!(!alive(pid), "old child still alive");
    assert_eq!(tool_text(&hub.tool("fx", "echo", json!({"text": "again"}))), "again");

    let r = hub.post("/servers/fx/stop");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "STOPPED");
    assert_eq!(r.json()["pid"], Value::Null);
    assert!(!alive(new_pid));
    assert_eq!(hub.post("/servers/fx/stop").status, 200, "stop on STOPPED is a no-op");
    let log = hub.log();
    assert!(log.contains("server fx: STARTING -> RUNNING"), "{log}");
    let events = hub.get("/activity").json();
    assert!(
        events["events"].as_array().unwrap().iter().any(|e| e["server"] == "fx" && e["message"] == "RUNNING")
    );
}

#[test]
fn calls_report_errors_with_fitting_statuses() {
    let hub = Hub::with_fixtures(&[
        ("fx", json!({})),
        ("bad", json!({"args": ["--exit-at-start", "2"], "restart_on_failure": false})),
    ]);
    // A STOPPED server is started for the call, as `/mcp/{server}` starts it for a session.
    let r = hub.call("fx", "tools/list", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(hub.server("fx")["status"], "RUNNING");
    // One that cannot start: the call says why.
    let msg = hub.call("bad", "tools/list", &json!({})).expect_error(503, "server_unavailable");
    assert!(msg.contains("FAILED") && msg.contains("exiting at start"), "{msg}");
    hub.call("ghost", "tools/list", &json!({})).expect_error(404, "not_found");
    let r = hub.call("fx", "no/such", &json!({}));
    r.expect_error(400, "bad_request");
    assert_eq!(r.json()["error"]["rpc"]["code"], -32601);
    hub.request("POST", "/mcp/fx/tools/list", &[], b"{not json").expect_error(400, "invalid_json");
    hub.request("POST", "/mcp/fx/tools/list", &[], b"[1]").expect_error(400, "bad_request");
    // A tool's own failure is a result, not an error.
    let r = hub.tool("fx", "nonexistent-tool", json!({}));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["isError"], true);
}

#[test]
fn deadline_cancels_and_repeated_timeouts_open_the_breaker() {
    let hub = Hub::builder()
        .fixtures(&[("fx", json!({"request_timeout": 0.3}))])
        .env("AGENTHUB_BREAKER_THRESHOLD", "2")
        .env("AGENTHUB_BREAKER_RECOVERY_S", "1")
        .start();
    assert_eq!(hub.post("/servers/fx/start").status, 200);
    for _ in 0..2 {
        let t = Instant::now();
        let r = hub.tool("fx", "hang", json!({}));
        r.expect_error(504, "timeout");
        assert_eq!(r.json()["error"]["rpc"]["code"], -32001);
        assert!(t.elapsed() < 2 * SEC);
    }
    hub.wait_stderr("fx", "notifications/cancelled");
    let msg = hub.tool("fx", "echo", json!({"text": "x"})).expect_error(503, "circuit_open");
    assert!(msg.contains("open"), "{msg}");
    assert_eq!(hub.get("/health").json()["servers"]["fx"]["circuit"], "open");
    // After recovery one trial goes through and closes it.
    let text = wait_for("the breaker to admit a trial", 5 * SEC, || {
        let r = hub.tool("fx", "echo", json!({"text": "back"}));
        (r.status == 200).then(|| tool_text(&r))
    });
    assert_eq!(text, "back");
    assert_eq!(hub.get("/health").json()["servers"]["fx"]["circuit"], "closed");
}

#[test]
fn a_server_answering_with_its_own_errors_keeps_its_breaker_closed() {
    let hub = Hub::builder().fixtures(&[("fx", json!({}))]).env("AGENTHUB_BREAKER_THRESHOLD", "2").start();
    assert_eq!(hub.post("/servers/fx/start").status, 200);
    // -32000 and -32001 are what the hub itself uses for "unavailable" and "timed out"; from
    // the server they are answers, and a server that answers is healthy.
    for code in [-32000, -32001, -32000, -32603, -32000] {
        let r = hub.tool("fx", "fail", json!({"code": code}));
        assert_eq!(r.json()["error"]["rpc"]["code"], code, "{}", r.text());
        assert_ne!(r.status, 503, "{}", r.text());
    }
    assert_eq!(hub.get("/health").json()["servers"]["fx"]["circuit"], "closed");
    assert_eq!(tool_text(&hub.tool("fx", "echo", json!({"text": "still here"}))), "still here");
}

#[test]
fn killed_child_fails_waiting_callers_at_once_and_is_restarted() {
    // Every waiting call holds a worker: 16 callers need more than the default pool.
    let hub = Hub::builder().fixtures(&[("fx", json!({}))]).env("AGENTHUB_WORKERS", "24").start();
    let pid = hub.post("/servers/fx/start").json()["pid"].as_i64().unwrap();
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let addr = hub.addr.clone();
            std::thread::spawn(move || {
                let body = json!({"name": "sleep", "arguments": {"ms": 20000}}).to_string();
                let r = raw_request(&addr, "POST", "/mcp/fx/tools/call", &[], body.as_bytes());
                (r, Instant::now())
            })
        })
        .collect();
    // All 16 calls in flight: the fixture has started 16 sleeps.
    wait_for("16 calls in flight", 5 * SEC, || (hub.in_flight("fx") >= 16).then_some(()));
    let killed = Instant::now();
    // SAFETY: killing the child the hub started for this test.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    for c in callers {
        let (r, answered) = c.join().unwrap();
        assert_eq!(r.status, 502, "{}", r.text());
        assert!(r.text().contains("exited"), "{}", r.text());
        assert!(
            answered.duration_since(killed) < SEC,
            "answered {:?} after the kill",
            answered.duration_since(killed)
        );
    }
    let s = hub.wait_restarted("fx", 1);
    assert_ne!(s["pid"].as_i64().unwrap(), pid);
    assert_eq!(tool_text(&hub.tool("fx", "echo", json!({"text": "alive"}))), "alive");
    assert!(hub.log().contains("killed by signal 9"), "{}", hub.log());
}

#[test]
fn a_crash_loop_ends_failed_with_the_reason() {
    let hub = Hub::with_fixtures(&[("loop", json!({"args": ["--exit-at-start", "3"], "max_restarts": 2}))]);
    let r = hub.post("/servers/loop/start");
    let msg = r.expect_error(502, "upstream_error");
    assert!(msg.contains("exit status 3"), "{msg}");
    let s = hub.wait_status("loop", "FAILED", 10 * SEC);
    assert_eq!(s["restart_count"], 2);
    let err = s["last_error"].as_str().unwrap();
    assert!(err.contains("exit status 3") && err.contains("exiting at start"), "{err}");
    assert_eq!(hub.get("/health").json()["status"], "degraded");
    assert_eq!(hub.get("/health/loop").status, 503);
    hub.call("loop", "tools/list", &json!({})).expect_error(503, "server_unavailable");
}

#[test]
fn a_crash_after_calls_is_restarted_then_fails_past_max_restarts() {
    let hub = Hub::with_fixtures(&[("fx", json!({"args": ["--crash-after", "1"], "max_restarts": 1}))]);
    assert_eq!(hub.post("/servers/fx/start").status, 200);
    assert_eq!(tool_text(&hub.tool("fx", "echo", json!({"text": "one"}))), "one");
    hub.tool("fx", "echo", json!({"text": "two"})).expect_error(502, "upstream_error");
    hub.wait_restarted("fx", 1);
    assert_eq!(tool_text(&hub.tool("fx", "echo", json!({"text": "three"}))), "three");
    hub.tool("fx", "echo", json!({"text": "four"})).expect_error(502, "upstream_error");
    let s = hub.wait_status("fx", "FAILED", 10 * SEC);
    assert!(s["last_error"].as_str().unwrap().contains("exit status 7"), "{s}");
    // A manual start clears FAILED.
    assert_eq!(hub.post("/servers/fx/start").json()["status"], "RUNNING");
    assert_eq!(hub.server("fx")["restart_count"], 0);
}

#[test]
fn a_child_that_stops_answering_pings_is_restarted() {
    let hub = Hub::with_fixtures(&[("mute", json!({"args": ["--no-ping"], "health_check_interval": 0.3}))]);
    let pid = hub.post("/servers/mute/start").json()["pid"].as_i64().unwrap();
    let s = wait_for("the hung child to be replaced", 10 * SEC, || {
        let s = hub.server("mute");
        (s["restart_count"] == 1 && s["status"] == "RUNNING").then_some(s)
    });
    assert_ne!(s["pid"].as_i64().unwrap(), pid);
    assert!(!alive(pid));
    assert!(hub.log().contains("did not answer ping"), "{}", hub.log());
}

#[test]
fn slow_handshake_past_the_timeout_fails_the_start() {
    let hub = Hub::with_fixtures(&[(
        "slow",
        json!({"args": ["--slow-start", "3000"], "handshake_timeout": 0.5, "restart_on_failure": false}),
    )]);
    let t = Instant::now();
    let msg = hub.post("/servers/slow/start").expect_error(502, "upstream_error");
    assert!(msg.contains("no answer to initialize within 0.5s"), "{msg}");
    assert!(t.elapsed() < 3 * SEC);
    assert_eq!(hub.server("slow")["status"], "FAILED");
}

#[test]
fn unsupported_protocol_version_fails_the_handshake() {
    let hub = Hub::with_fixtures(&[(
        "old",
        json!({"args": ["--version", "1999-01-01"], "restart_on_failure": false}),
    )]);
    let msg = hub.post("/servers/old/start").expect_error(502, "upstream_error");
    assert!(msg.contains("unsupported protocol version \"1999-01-01\""), "{msg}");
}

#[test]
fn auto_start_runs_in_parallel_without_delaying_the_hub() {
    let t = Instant::now();
    let hub = Hub::with_fixtures(&[
        ("slow", json!({"auto_start": true, "args": ["--slow-start", "1500"]})),
        ("fast", json!({"auto_start": true})),
    ]);
    assert_eq!(hub.get("/health").status, 200);
    assert!(t.elapsed() < Duration::from_millis(1500), "the hub waited for a slow server");
    hub.wait_status("fast", "RUNNING", 5 * SEC);
    assert_eq!(hub.server("slow")["status"], "STARTING", "fast must not wait for slow");
    // A call to a STARTING server waits for it.
    assert_eq!(tool_text(&hub.tool("slow", "echo", json!({"text": "waited"}))), "waited");
}

#[test]
fn garbage_on_stdout_is_skipped() {
    let hub = Hub::with_fixtures(&[("messy", json!({"args": ["--garbage"]}))]);
    assert_eq!(hub.post("/servers/messy/start").status, 200);
    assert_eq!(tool_text(&hub.tool("messy", "echo", json!({"text": "clean"}))), "clean");
    assert!(hub.log().contains("not JSON"), "{}", hub.log());
}

#[test]
fn stderr_is_kept_in_a_bounded_tail() {
    let hub = Hub::with_fixtures(&[("loud", json!({"args": ["--stderr-flood", "3000"]}))]);
    assert_eq!(hub.post("/servers/loud/start").status, 200);
    assert_eq!(tool_text(&hub.tool("loud", "echo", json!({"text": "fine"}))), "fine");
    let logs = wait_for("the flood to be drained", 5 * SEC, || {
        let l = hub.get("/servers/loud/logs?lines=1000").json();
        let lines = l["lines"].as_array().unwrap().clone();
        lines.iter().any(|x| x.as_str().unwrap().contains("started pid")).then_some(lines)
    });
    assert_eq!(logs.len(), 500);
    assert_eq!(hub.get("/servers/loud/logs?lines=3").json()["lines"].as_array().unwrap().len(), 3);
    hub.get("/servers/ghost/logs").expect_error(404, "not_found");
}

#[test]
fn child_requests_are_answered_by_the_hub() {
    // `plain` declines elicitation by policy: without it a person would be asked first
    // (tests/it/elicitations.rs).
    let hub = Hub::with_fixtures(&[
        ("rooted", json!({"roots": ["file:///tmp/project"]})),
        ("plain", json!({"elicitation": "decline"})),
    ]);
    for name in ["rooted", "plain"] {
        assert_eq!(hub.post(&format!("/servers/{name}/start")).status, 200);
    }
    let ask = |server: &str, method: &str| -> Value {
        serde_json::from_str(&tool_text(&hub.tool(server, "ask", json!({"method": method})))).unwrap()
    };
    assert_eq!(ask("rooted", "ping")["result"], json!({}));
    assert_eq!(ask("rooted", "roots/list")["result"]["roots"], json!([{"uri": "file:///tmp/project"}]));
    // A REST caller cannot answer: the hub answers as a client without the capability would.
    assert_eq!(ask("plain", "roots/list")["result"]["roots"], json!([]));
    assert_eq!(ask("plain", "elicitation/create")["result"], json!({"action": "decline"}));
    let s = ask("plain", "sampling/createMessage");
    assert_eq!(s["error"]["code"], -32000, "{s}");
    let why = s["error"]["message"].as_str().unwrap();
    assert!(why.contains("only a REST or hub request is in flight on plain"), "{why}");
    assert!(why.contains("the request has no messages"), "{why}");
    // Notifications reach the log and the activity feed.
    assert_eq!(tool_text(&hub.tool("plain", "notify", json!({}))), "notified");
    wait_for("the log notification in the feed", 5 * SEC, || {
        let events = hub.get("/activity").json();
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["message"] == "hello from fixture")
            .then_some(())
    });
}

#[test]
fn concurrent_callers_each_get_their_own_answer() {
    let hub = Hub::with_fixtures(&[("fx", json!({}))]);
    assert_eq!(hub.post("/servers/fx/start").status, 200);
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let addr = hub.addr.clone();
            std::thread::spawn(move || {
                let body = json!({"name": "echo", "arguments": {"text": format!("caller-{i}")}}).to_string();
                let r = raw_request(&addr, "POST", "/mcp/fx/tools/call", &[], body.as_bytes());
                (i, tool_text(&r))
            })
        })
        .collect();
    for t in threads {
        let (i, text) = t.join().unwrap();
        assert_eq!(text, format!("caller-{i}"));
    }
}

#[test]
fn sigterm_leaves_no_process_behind() {
    let mut hub = Hub::with_fixtures(&[
        ("a", json!({"args": ["--grandchild"], "auto_start": true})),
        ("b", json!({"args": ["--ignore-term"], "auto_start": true})),
    ]);
    hub.wait_status("a", "RUNNING", 5 * SEC);
    hub.wait_status("b", "RUNNING", 5 * SEC);
    let mut pids: Vec<i64> = ["a", "b"].iter().map(|n| hub.server(n)["pid"].as_i64().unwrap()).collect();
    pids.push(tool_text(&hub.tool("a", "spawn", json!({}))).parse().unwrap());
    let pgid: i64 = pids[0];
    hub.signal(libc::SIGTERM);
    let status = hub.wait_exit(10 * SEC);
    assert!(status.success(), "{status}\n{}", hub.log());
    for pid in pids {
        assert!(!alive(pid), "process {pid} survived the hub");
    }
    // Nothing at all is left in the first child's group (its start-up grandchild included).
    let left = processes_in_group(pgid);
    assert!(left.is_empty(), "left in group {pgid}: {left:?}");
}

#[test]
fn missing_command_fails_with_a_clear_error() {
    let hub =
        Hub::builder().servers(r#"{"servers": {"nope": {"command": "/nonexistent/mcp-server"}}}"#).start();
    let msg = hub.post("/servers/nope/start").expect_error(502, "upstream_error");
    assert!(msg.contains("command '/nonexistent/mcp-server' not found"), "{msg}");
    assert_eq!(hub.server("nope")["status"], "FAILED");
}

#[test]
fn children_exit_when_the_hub_is_killed_outright() {
    let mut hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    let pid = hub.wait_status("fx", "RUNNING", 5 * SEC)["pid"].as_i64().unwrap();
    // SIGKILL: the hub cannot clean up; the child sees its stdin close and exits.
    let _ = hub.child.kill();
    let _ = hub.child.wait();
    wait_for("the orphaned child to exit", 5 * SEC, || (!alive(pid)).then_some(()));
}

#[test]
fn long_calls_never_hold_a_worker() {
    // One worker only: if a waiting call held it, nothing else would be answered.
    let hub = Hub::builder().fixtures(&[("fx", json!({}))]).env("AGENTHUB_WORKERS", "1").start();
    assert_eq!(hub.post("/servers/fx/start").status, 200);
    let calls: Vec<_> = (0..6)
        .map(|i| {
            let addr = hub.addr.clone();
            std::thread::spawn(move || {
                let body = json!({"name": "sleep", "arguments": {"ms": 1500 + i}}).to_string();
                let r = raw_request(&addr, "POST", "/mcp/fx/tools/call", &[], body.as_bytes());
                (i, tool_text(&r))
            })
        })
        .collect();
    wait_for("6 calls in flight at once", 5 * SEC, || (hub.in_flight("fx") >= 6).then_some(()));
    let t = Instant::now();
    assert_eq!(hub.get("/health").status, 200);
    assert!(t.elapsed() < Duration::from_millis(500), "/health waited {:?}", t.elapsed());
    for c in calls {
        let (i, text) = c.join().unwrap();
        assert_eq!(text, format!("slept {}", 1500 + i));
    }
}
