//! The request id: `X-Request-Id` kept when sane, else made by the hub; on every answer, in the
//! request's log line, in the activity events it causes, and sent on to remote MCP servers.

use serde_json::{Value, json};

use crate::harness::*;

#[test]
fn the_id_is_on_the_answer_the_log_line_and_the_activity_it_causes() {
    let hub = Hub::with_fixtures(&[("fx", json!({}))]);
    let r = hub.request("POST", "/servers/fx/start", &[("X-Request-Id", "trace-abc-123")], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-request-id"), Some("trace-abc-123"));
    wait_for("the request's log line with its id", 5 * SEC, || {
        hub.log()
            .lines()
            .any(|l| l.contains("POST /servers/fx/start 200") && l.ends_with(" id=trace-abc-123"))
            .then_some(())
    });
    let events = hub.get("/activity").json()["events"].as_array().cloned().unwrap_or_default();
    let caused: Vec<&Value> = events.iter().filter(|e| e["request_id"] == "trace-abc-123").collect();
    assert!(
        caused
            .iter()
            .any(|e| e["server"] == "fx" && e["message"].as_str().is_some_and(|m| m.starts_with("RUNNING"))),
        "no event of the start carries its id: {events:?}"
    );
    // Another request's events do not carry it.
    let r = hub.request("POST", "/servers/fx/stop", &[("X-Request-Id", "trace-stop")], b"");
    assert_eq!(r.status, 200);
    let events = hub.get("/activity").json()["events"].as_array().cloned().unwrap_or_default();
    let stopped = events.iter().rev().find(|e| e["message"] == "STOPPED").expect("a STOPPED event");
    assert_eq!(stopped["request_id"], "trace-stop");
}

#[test]
fn insane_ids_are_replaced_and_every_answer_has_one() {
    let hub = Hub::empty();
    let long = "x".repeat(129);
    for sent in ["has space", long.as_str(), "ünïcode"] {
        let r = hub.request("GET", "/health", &[("X-Request-Id", sent)], b"");
        let id = r.header("x-request-id").expect("an id").to_string();
        assert!(
            id != sent && id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{sent:?} -> {id}"
        );
    }
    let a = hub.get("/health").header("x-request-id").map(str::to_string);
    let b = hub.get("/health").header("x-request-id").map(str::to_string);
    assert!(a.is_some() && a != b, "{a:?} {b:?}");
    // Refusals too: an unknown route, a bad Host.
    assert!(hub.get("/no/such/route").header("x-request-id").is_some());
    let r = hub.request("GET", "/health", &[("Host", "evil.example"), ("X-Request-Id", "r-1")], b"");
    assert_eq!((r.status, r.header("x-request-id")), (403, Some("r-1")));
}

#[test]
fn remote_servers_receive_the_id() {
    // The remote server is another hub: its log line shows the id it was sent.
    let inner = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    inner.wait_status("fx", "RUNNING", 10 * SEC);
    let url = format!("http://{}/mcp/fx", inner.addr);
    let servers = json!({"servers": {"remote": {"transport": "http", "url": url}}});
    let hub = Hub::builder().servers(&servers.to_string()).start();
    assert_eq!(hub.post("/servers/remote/start").status, 200);
    let body = json!({"name": "echo", "arguments": {"text": "hi"}}).to_string();
    let r = hub.request(
        "POST",
        "/mcp/remote/tools/call",
        &[JSON, ("X-Request-Id", "outer-req-42")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    wait_for("the remote's log line with the id", 5 * SEC, || {
        inner
            .log()
            .lines()
            .any(|l| {
                l.contains("POST /mcp/fx 200")
                    && l.contains("rpc=tools/call")
                    && l.ends_with(" id=outer-req-42")
            })
            .then_some(())
    });
}
