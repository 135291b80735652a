//! Several replicas behind one address, said plainly in the README ("Running for a team"): a
//! client of the 2026-07-28 revision keeps no session, so any replica answers it; a legacy
//! session lives in the replica that opened it, and another replica answers 404, after which
//! its client initializes again (as the spec asks of it).

use serde_json::{Value, json};

use crate::harness::*;

/// A modern request, answered 200.
fn modern(hub: &Hub, id: u64, method: &str, params: Value, name: Option<&str>) -> Value {
    let r = modern_request(hub, id, method, params, name, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[test]
fn a_modern_client_alternates_between_two_replicas_and_a_legacy_session_starts_over() {
    // Two hubs sharing one configuration (the same servers file, as a ConfigMap would give).
    let config = TempDir::new("replicas");
    let servers = config.write("servers.json", &fixture_servers(&[("fx", json!({"auto_start": true}))]));
    let replica = || {
        let hub = Hub::builder()
            .servers(NO_SERVERS)
            .env("AGENTHUB_SERVERS_FILE", servers.to_str().unwrap())
            .start();
        hub.wait_status("fx", "RUNNING", 10 * SEC);
        hub
    };
    let (a, b) = (replica(), replica());
    for (n, hub) in [&a, &b, &a, &b].into_iter().enumerate() {
        let text = format!("call {n}");
        let call = json!({"name": "fx__echo", "arguments": {"text": text}});
        let r = modern(hub, n as u64, "tools/call", call, Some("fx__echo"));
        assert_eq!(r["result"]["content"][0]["text"], text, "{r}");
    }
    // A legacy session opened on one replica is unknown to the other: 404, then a new one there.
    let session = McpSession::connect(&a, "/mcp");
    let headers = [
        MCP_ACCEPT,
        JSON,
        ("Mcp-Session-Id", session.session.as_str()),
        ("MCP-Protocol-Version", MCP_VERSION),
    ];
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    assert_eq!(b.request("POST", "/mcp", &headers, ping.as_bytes()).status, 404);
    let again = McpSession::connect(&b, "/mcp");
    let r = again.call(json!(2), "tools/call", json!({"name": "fx__echo", "arguments": {"text": "again"}}));
    assert_eq!(r["result"]["content"][0]["text"], "again", "{r}");
}
