//! One call path: no request waits long on an HTTP worker, and however a call ends its
//! bookkeeping is done. Tests of the first kind run the hub with a single worker
//! (`AGENTHUB_WORKERS=1`) and check that `/health` keeps answering while something slow is
//! under way: with the worker taken, it could not.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fake_ollama::FakeOllama;
use crate::harness::*;

fn one_worker(servers: &[(&str, Value)]) -> HubBuilder {
    Hub::builder().fixtures(servers).env("AGENTHUB_WORKERS", "1")
}

/// Runs `slow` on a thread and, for the first second of it, asks `/health` again and again:
/// each must answer while `slow` is still out. (`slow` is sent first; with the only worker
/// held by it, the next `/health` would wait until it ended.) Returns what `slow` returned.
fn health_answers_during<T: Send>(hub: &Hub, what: &str, slow: impl FnOnce() -> T + Send) -> T {
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let slow = scope.spawn(|| {
            let out = slow();
            done.store(true, Ordering::SeqCst);
            out
        });
        let started = Instant::now();
        let mut answered = 0;
        while started.elapsed() < SEC {
            let h = hub.get("/health");
            assert_eq!(h.status, 200, "{}", h.text());
            assert!(!done.load(Ordering::SeqCst), "/health waited for {what} (after {answered} answers)");
            answered += 1;
        }
        slow.join().expect("the slow request")
    })
}

#[test]
fn a_call_to_a_starting_server_waits_off_the_worker() {
    let hub = one_worker(&[("fx", json!({"args": ["--slow-start", "3000"]}))]).start();
    let start = std::thread::spawn({
        let addr = hub.addr.clone();
        move || raw_request(&addr, "POST", "/servers/fx/start", &[], b"")
    });
    hub.wait_status("fx", "STARTING", 5 * SEC);
    let r = health_answers_during(&hub, "a call to a starting server", || {
        hub.tool("fx", "echo", json!({"text": "hi"}))
    });
    assert_eq!(tool_text(&r), "hi", "the call went through once the server ran");
    assert_eq!(start.join().unwrap().status, 200);
}

#[test]
fn a_slow_ollama_waits_off_the_worker() {
    let ollama = FakeOllama::start(&["llama3.2:3b"]);
    *ollama.delay.lock().unwrap() = 3 * SEC;
    // Under the model list's own 2 s deadline.
    *ollama.tags_delay.lock().unwrap() = Duration::from_millis(1500);
    let hub = one_worker(&[]).env("OLLAMA_URL", &ollama.url).start();
    let r = health_answers_during(&hub, "an enhancement", || {
        hub.post_json("/ollama/enhance", &json!({"prompt": "explain docker"}))
    });
    assert_eq!(r.json()["enhanced"], true, "{}", r.text());
    let r = health_answers_during(&hub, "the model list", || hub.get("/ollama/models"));
    assert_eq!(r.json()["models"], json!(["llama3.2:3b"]), "{}", r.text());
    let mcp = McpSession::connect(&hub, "/mcp");
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "agenthub__enhance_prompt", "arguments": {"prompt": "explain podman"}}});
    let r = health_answers_during(&hub, "the enhancement tool", || mcp.send(&call));
    assert_eq!(r.json()["result"]["content"][0]["text"], "[llama3.2:3b] explain podman", "{}", r.text());
}

#[test]
fn a_slow_aggregated_list_waits_off_the_worker() {
    let hub = one_worker(&[("fx", json!({"auto_start": true, "args": ["--slow-list", "3000"]}))]).start();
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let mcp = McpSession::connect(&hub, "/mcp");
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let r = health_answers_during(&hub, "the aggregated tools/list", || mcp.send(&list));
    let names: Vec<Value> =
        r.json()["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].clone()).collect();
    assert!(names.contains(&json!("fx__echo")), "{names:?}");
    let resources = json!({"jsonrpc": "2.0", "id": 2, "method": "resources/list"});
    let r = health_answers_during(&hub, "the aggregated resources/list", || mcp.send(&resources));
    assert_eq!(r.json()["result"]["resources"][0]["uri"], "fixture://fx+one", "{}", r.text());
}

#[test]
fn a_batch_waits_off_the_worker() {
    let hub = one_worker(&[("fx", json!({"auto_start": true}))]).start();
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let (mcp, _) = McpSession::initialize(&hub.addr, "/mcp/fx", &initialize_body("2025-03-26"));
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "sleep", "arguments": {"ms": 3000}}},
        {"jsonrpc": "2.0", "id": 2, "method": "ping"},
    ]);
    let r = health_answers_during(&hub, "a batch", || mcp.send(&batch));
    let answers = r.json();
    assert_eq!(answers[0]["result"]["content"][0]["text"], "slept 3000", "{answers}");
    assert_eq!(answers[1], json!({"jsonrpc": "2.0", "id": 2, "result": {}}));
}

#[test]
fn the_aggregated_lists_ask_every_server_at_once() {
    let slow = json!({"auto_start": true, "args": ["--slow-list", "2000"]});
    let hub = Hub::with_fixtures(&[("a", slow.clone()), ("b", slow)]);
    hub.wait_status("a", "RUNNING", 10 * SEC);
    hub.wait_status("b", "RUNNING", 10 * SEC);
    let mcp = McpSession::connect(&hub, "/mcp");
    std::thread::scope(|scope| {
        let list = scope.spawn(|| mcp.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})));
        // Asked one after the other, b would only hear of the list once a had answered.
        wait_for("b to be asked for its tools", 10 * SEC, || {
            (hub.stderr_lines("b", "fixture: slow tools/list") > 0).then_some(())
        });
        assert_eq!(
            hub.stderr_lines("a", "fixture: answering tools/list"),
            0,
            "b was asked only after a answered"
        );
        let tools = list.join().unwrap().json();
        let names: Vec<&str> =
            tools["result"]["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
        assert!(names.contains(&"a__echo") && names.contains(&"b__echo"), "{names:?}");
    });
}

#[test]
fn a_stream_the_client_drops_gives_the_breaker_trial_back() {
    let hub = Hub::builder()
        .fixtures(&[("fx", json!({"auto_start": true, "request_timeout": 1}))])
        .env("AGENTHUB_BREAKER_THRESHOLD", "1")
        .env("AGENTHUB_BREAKER_RECOVERY_S", "3")
        .start();
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    hub.tool("fx", "hang", json!({})).expect_error(504, "timeout");
    wait_for("the breaker to let a trial through", 10 * SEC, || {
        (hub.get("/health").json()["servers"]["fx"]["circuit"] == "half_open").then_some(())
    });
    // The trial: a streamed call whose client goes away after the first event.
    let mcp = McpSession::connect(&hub, "/mcp/fx");
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "progress",
        "arguments": {"count": 100, "ms": 20}, "_meta": {"progressToken": "p"}}});
    let mut stream = mcp.post_streaming(&call);
    wait_line(&mut stream, "the first progress event", 5 * SEC, |l| {
        l.contains("notifications/progress").then_some(())
    });
    drop(stream);
    // The timed-out call was cancelled first; then the dropped stream's.
    wait_for("the dropped stream's call to be cancelled", 5 * SEC, || {
        (hub.stderr_lines("fx", "notification notifications/cancelled") == 2).then_some(())
    });
    // The trial proved nothing: the next call is the new trial, not refused for another period.
    assert_eq!(tool_text(&hub.tool("fx", "echo", json!({"text": "after"}))), "after");
    assert_eq!(hub.get("/health").json()["servers"]["fx"]["circuit"], "closed");
}

#[test]
fn calls_in_flight_are_bounded_per_server() {
    let hub = Hub::builder()
        .fixtures(&[("fx", json!({"auto_start": true}))])
        .env("AGENTHUB_MAX_CALLS", "2")
        .start();
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    std::thread::scope(|scope| {
        let slow: Vec<_> =
            (0..2).map(|_| scope.spawn(|| hub.tool("fx", "sleep", json!({"ms": 2000})))).collect();
        wait_for("both slow calls to run", 5 * SEC, || (hub.in_flight("fx") == 2).then_some(()));
        let refused = hub.tool("fx", "echo", json!({"text": "one too many"}));
        let msg = refused.expect_error(503, "server_unavailable");
        assert!(msg.contains("calls in flight"), "{msg}");
        for s in slow {
            assert_eq!(tool_text(&s.join().unwrap()), "slept 2000");
        }
    });
    assert_eq!(tool_text(&hub.tool("fx", "echo", json!({"text": "room again"}))), "room again");
}

#[test]
fn calls_in_flight_are_bounded_across_the_hub() {
    let hub = Hub::builder()
        .fixtures(&[("fx", json!({"auto_start": true})), ("fy", json!({"auto_start": true}))])
        .env("AGENTHUB_MAX_CALLS_TOTAL", "2")
        .start();
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    hub.wait_status("fy", "RUNNING", 10 * SEC);
    let hub = &hub;
    std::thread::scope(|scope| {
        let slow: Vec<_> = ["fx", "fy"]
            .map(|name| scope.spawn(move || hub.tool(name, "sleep", json!({"ms": 2000}))))
            .into_iter()
            .collect();
        wait_for("one slow call on each server", 5 * SEC, || {
            (hub.in_flight("fx") == 1 && hub.in_flight("fy") == 1).then_some(())
        });
        // Each server has room of its own (256), the hub has none.
        let refused = hub.tool("fx", "echo", json!({"text": "one too many"}));
        let msg = refused.expect_error(503, "server_unavailable");
        assert!(msg.contains("the hub has 2 calls in flight"), "{msg}");
        for s in slow {
            assert_eq!(tool_text(&s.join().unwrap()), "slept 2000");
        }
    });
    assert_eq!(tool_text(&hub.tool("fy", "echo", json!({"text": "room again"}))), "room again");
}

/// Sends a REST call of the fixture's `hang` tool on a connection of its own, left open.
fn call_hang(hub: &Hub, server: &str) -> std::net::TcpStream {
    let body = json!({"name": "hang", "arguments": {}}).to_string();
    let mut s = std::net::TcpStream::connect(&hub.addr).unwrap();
    let head = format!(
        "POST /mcp/{server}/tools/call HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
        hub.addr,
        body.len()
    );
    std::io::Write::write_all(&mut s, (head + &body).as_bytes()).unwrap();
    s
}

#[test]
fn a_client_that_leaves_has_its_call_cancelled_at_the_server() {
    let hub = Hub::builder().fixtures(&[("fx", json!({"auto_start": true, "request_timeout": 60}))]).start();
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let s = call_hang(&hub, "fx");
    hub.wait_stderr("fx", "fixture: call hang");
    drop(s);
    // Not at the 60 s deadline: as soon as the hub sees the client gone.
    hub.wait_stderr("fx", "notification notifications/cancelled");
    assert_eq!(
        tool_text(&hub.tool("fx", "echo", json!({"text": "on"}))),
        "on",
        "the connection's end changed nothing else"
    );
}

#[test]
fn a_client_that_leaves_has_its_remote_call_cancelled_upstream() {
    // The remote server is another hub's fixture: its stderr shows what reaches the child.
    let inner =
        Hub::builder().fixtures(&[("fx", json!({"auto_start": true, "request_timeout": 60}))]).start();
    inner.wait_status("fx", "RUNNING", 10 * SEC);
    let url = format!("http://{}/mcp/fx", inner.addr);
    let servers = json!({"servers": {"remote": {"transport": "http", "url": url, "request_timeout": 60}}});
    let hub = Hub::builder().servers(&servers.to_string()).start();
    assert_eq!(hub.post("/servers/remote/start").status, 200);
    let s = call_hang(&hub, "remote");
    inner.wait_stderr("fx", "fixture: call hang");
    drop(s);
    // Not at the 60 s deadline: as soon as the hub sees the client gone.
    inner.wait_stderr("fx", "notification notifications/cancelled");
    assert_eq!(tool_text(&hub.tool("remote", "echo", json!({"text": "on"}))), "on");
}
