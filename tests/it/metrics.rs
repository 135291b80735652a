//! `GET /metrics`: Prometheus's own `promtool` accepts the page after real traffic, and the
//! counters count what happened (one tool call adds one to its series; a timeout is `timeout`).

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::harness::*;

/// The value of the sample written exactly as `series` (name and labels), if any.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn scrape(hub: &Hub) -> String {
    let r = hub.get("/metrics");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/plain; version=0.0.4")));
    r.text()
}

/// `promtool check metrics` on the page: its exit status and what it said.
fn promtool(page: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; `make test-deps` installs it)");
    child.stdin.take().expect("stdin").write_all(page.as_bytes()).expect("write the page");
    let out = child.wait_with_output().expect("promtool ran");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

#[test]
fn promtool_accepts_the_page_and_tool_calls_are_counted_by_outcome() {
    let hub = Hub::with_fixtures(&[
        ("fx", json!({"auto_start": true})),
        ("slow", json!({"auto_start": true, "request_timeout": 0.3})),
    ]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    hub.wait_status("slow", "RUNNING", 10 * SEC);
    let ok = r#"agenthub_tool_calls_total{server="fx",tool="echo",outcome="ok"}"#;
    let timeout = r#"agenthub_tool_calls_total{server="slow",tool="sleep",outcome="timeout"}"#;

    assert_eq!(hub.tool("fx", "echo", json!({"text": "one"})).status, 200);
    let page = scrape(&hub);
    assert_eq!(sample(&page, ok), Some(1.0), "{page}");
    assert_eq!(hub.tool("fx", "echo", json!({"text": "two"})).status, 200);
    assert_eq!(sample(&scrape(&hub), ok), Some(2.0));

    let r = hub.tool("slow", "sleep", json!({"ms": 3000}));
    assert_eq!(r.status, 504, "{}", r.text());
    // Traffic of other kinds: an MCP session, a 404, a refusal.
    let s = McpSession::connect(&hub, "/mcp/fx");
    s.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}}));
    assert_eq!(hub.get("/servers/nope-123").status, 404);

    let page = scrape(&hub);
    assert_eq!(sample(&page, timeout), Some(1.0), "{page}");
    assert_eq!(sample(&page, ok), Some(3.0), "{page}");
    assert_eq!(sample(&page, r#"agenthub_server_up{server="fx"}"#), Some(1.0), "{page}");
    assert_eq!(sample(&page, r#"agenthub_mcp_sessions{endpoint="/mcp/fx"}"#), Some(1.0), "{page}");
    assert_eq!(
        sample(&page, r#"agenthub_http_requests_total{route="/servers/{name}",status="404"}"#),
        Some(1.0),
        "{page}"
    );
    assert!(!page.contains("nope-123"), "a raw path became a label:\n{page}");
    assert!(
        page.contains(r#"mcp_server_operation_duration_seconds_count{mcp_method_name="tools/call",gen_ai_tool_name="echo",error_type=""}"#),
        "{page}"
    );
    assert!(page.contains(r#"agenthub_build_info{version=""#), "{page}");
    let (ok, said) = promtool(&page);
    assert!(ok, "promtool refused the page: {said}\n{page}");
}

#[test]
fn promtool_refuses_a_broken_page() {
    // The check above can fail: promtool does refuse what is not the text format.
    let (ok, _) = promtool("# TYPE x counter\nx{a=\"b} 1\n");
    assert!(!ok);
}

#[test]
fn metrics_are_behind_the_token() {
    let hub = Hub::builder().servers(NO_SERVERS).env("AGENTHUB_TOKEN", "a-token-of-some-length").start();
    hub.get("/metrics").expect_error(401, "unauthorized");
    let r = hub.request("GET", "/metrics", &[("Authorization", "Bearer a-token-of-some-length")], b"");
    assert_eq!(r.status, 200);
}
