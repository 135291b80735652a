//! Children that flood the hub: progress for a client that does not read, requests whose
//! answers they never read, log messages and stderr lines by the thousand, and a child's
//! request for a client while several clients' requests are in flight. The hub stays small,
//! its log bounded and unforged, and each client sees only what is its own.

use std::cell::Cell;
use std::io::BufRead;

use serde_json::{Value, json};

use crate::harness::*;

/// The hub's resident memory in KiB (`VmRSS` of /proc/PID/status).
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the hub's status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// How much the hub may grow while a child floods it.
const GROWTH_KIB: u64 = 32 << 10;

#[test]
fn progress_for_a_client_that_does_not_read_cannot_grow_the_hub() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let c = McpSession::connect(&hub, "/mcp/fx");
    let before = rss_kib(hub.pid());
    let count = 200_000;
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "progress_flood",
        "arguments": {"count": count}, "_meta": {"progressToken": "p"}}});
    // Not read until the child has said everything.
    let mut stream = c.post_streaming(&call);
    wait_for("the child to finish its flood", 60 * SEC, || {
        (hub.stderr_lines("fx", "fixture: progress flood done") > 0).then_some(())
    });
    let grown = rss_kib(hub.pid()).saturating_sub(before);
    eprintln!("the hub grew by {grown} KiB");
    assert!(grown < GROWTH_KIB, "the hub grew by {grown} KiB");
    // Read now: some progress, the latest last, then the result.
    let mut line = String::new();
    stream.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let (progress, last) = (Cell::new(0), Cell::new(0));
    let done = next_matching(&mut stream, "the tool's result", |v| {
        if v["method"] == "notifications/progress" {
            progress.set(progress.get() + 1);
            last.set(v["params"]["progress"].as_u64().unwrap_or(0));
        }
        v["id"] == 1
    });
    let (progress, last) = (progress.get(), last.get());
    assert_eq!(done["result"]["content"][0]["text"], format!("sent {count}"), "{done}");
    assert!(progress < count, "{progress} progress notifications");
    assert_eq!(last, count, "the latest progress came last");
}

#[test]
fn a_child_that_asks_and_never_reads_is_restarted_and_the_hub_serves_on() {
    let hub = Hub::with_fixtures(&[
        ("flood", json!({"auto_start": true, "args": ["--flood-pings", "1000000"]})),
        ("fx", json!({"auto_start": true})),
    ]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let before = rss_kib(hub.pid());
    let mut peak = 0;
    let s = wait_for("the flooding child to be treated as hung", 30 * SEC, || {
        peak = peak.max(rss_kib(hub.pid()));
        let grown = peak.saturating_sub(before);
        assert!(grown < GROWTH_KIB, "the hub grew by {grown} KiB");
        let s = hub.server("flood");
        s["last_error"].as_str().is_some_and(|e| e.contains("did not read its stdin")).then_some(s)
    });
    let e = s["last_error"].as_str().unwrap();
    assert!(e.contains("lines") && e.contains("treated as hung"), "{e}");
    eprintln!("the hub grew by {} KiB", peak.saturating_sub(before));
    // The other server was served all along.
    assert_eq!(tool_text(&hub.tool("fx", "echo", json!({"text": "still here"}))), "still here");
}

#[test]
fn a_childs_request_for_a_client_reaches_no_other_client() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    // B, whose client can sample, has a call in flight.
    let b = McpSession::connect(&hub, "/mcp/fx");
    let sleep = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "sleep", "arguments": {"ms": 1500}}});
    let mut bs = b.post_streaming(&sleep);
    wait_for("B's call to start", 5 * SEC, || (hub.in_flight("fx") > 0).then_some(()));
    // A REST caller's tool asks for sampling meanwhile: nobody can say whose it is.
    let prompt = json!({"messages": [{"role": "user", "content": {"type": "text", "text": "A's private prompt"}}], "maxTokens": 5});
    let a = hub.tool("fx", "ask", json!({"method": "sampling/createMessage", "params": prompt}));
    let heard: Value = serde_json::from_str(&tool_text(&a)).unwrap();
    let why = heard["error"]["message"].as_str().unwrap_or_else(|| panic!("{heard}"));
    assert!(why.contains("2 requests are in flight on fx, and the request names none of them"), "{why}");
    // B sees its own answer, and nothing of A's.
    let r = read_buffered_response(&mut bs);
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.text();
    assert!(!body.contains("private prompt") && !body.contains("sampling/createMessage"), "{body}");
    let done = match r.header("content-type") {
        Some("text/event-stream") => events(&body).into_iter().find(|e| e["id"] == 7).expect("B's answer"),
        _ => r.json(),
    };
    assert_eq!(done["result"]["content"][0]["text"], "slept 1500", "{done}");
    assert!(
        hub.log().contains("sampling/createMessage goes to no client in flight: 2 requests"),
        "the why is logged"
    );
}

#[test]
fn a_child_flooding_its_log_leaves_the_hubs_log_bounded_and_unforged() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let before = hub.log().len();
    assert_eq!(tool_text(&hub.tool("fx", "log_flood", json!({"count": 10_000}))), "flooded");
    hub.wait_stderr("fx", "fixture: log flood done");
    // The request's own line comes after every message the child sent before its answer.
    wait_for("the call's request line", 5 * SEC, || hub.log().contains("/mcp/fx/tools/call").then_some(()));
    let unforged = |log: &str| {
        for l in log.lines() {
            assert!(!l.starts_with("2099-01-01"), "a forged line: {l}");
            assert!(!l.contains('\r') && !l.contains('\u{1b}'), "a control character: {l:?}");
        }
    };
    let log = hub.log();
    let grown = log.len() - before;
    eprintln!("the log grew by {grown} bytes");
    assert!(grown < 512 << 10, "the log grew by {grown} bytes");
    assert!(!log.contains("xxxxxxxxxx"), "the 1 MB level was logged");
    assert!(log.contains("[fx] unknown-level: big level"), "the unknown level's placeholder");
    assert!(log.contains("log messages suppressed (too many)"), "the suppressed lines are told");
    unforged(&log);
    // The stderr lines, on a thread of their own, show escaped.
    wait_for("an escaped stderr line", 5 * SEC, || {
        hub.log().contains("FORGED line\\r\\u{1b}[31m").then_some(())
    });
    let log = hub.log();
    assert!(log.len() - before < 1 << 20, "the log grew by {} bytes", log.len() - before);
    unforged(&log);
}
