//! What a client sees through the hub is what it would see connected straight to the server:
//! the capabilities children are offered, the answers a client without one would give, the
//! handshake the hub owns.

use serde_json::{Value, json};

use crate::harness::*;

/// What the fixture's `ask` tool got back when it sent `method` to its client (the hub).
fn asked(hub: &Hub, method: &str, params: Value) -> Value {
    let r = hub.tool("fx", "ask", json!({"method": method, "params": params}));
    serde_json::from_str(&tool_text(&r)).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

#[test]
fn a_child_request_no_client_can_take_is_answered_as_a_client_without_it_would() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    // A REST caller can answer nothing: the hub answers, never with an internal error.
    let check = |method: &str, expected: &dyn Fn(&Value) -> bool| {
        let answer = asked(&hub, method, json!({}));
        assert!(expected(&answer), "{method}: {answer}");
        assert_ne!(answer["error"]["code"], -32603, "{method}: {answer}");
    };
    check("roots/list", &|a| a["result"] == json!({"roots": []}));
    check("elicitation/create", &|a| a["result"] == json!({"action": "decline"}));
    check("sampling/createMessage", &|a| {
        a["error"]["message"].as_str().is_some_and(|m| m.contains("no client that declared sampling"))
    });
    let with_roots =
        Hub::with_fixtures(&[("fx", json!({"auto_start": true, "roots": ["file:///tmp/project"]}))]);
    with_roots.wait_status("fx", "RUNNING", 10 * SEC);
    assert_eq!(
        asked(&with_roots, "roots/list", json!({}))["result"]["roots"][0]["uri"],
        "file:///tmp/project"
    );
}

#[test]
fn children_are_offered_every_capability_so_every_tool_is_listed() {
    let hub = Hub::builder()
        .servers(&json!({"servers": {"everything": {"command": npm_bin("mcp-server-everything"), "auto_start": true}}}).to_string())
        .start();
    hub.wait_status("everything", "RUNNING", 20 * SEC);
    let tools = hub.call("everything", "tools/list", &json!({})).json();
    let names: Vec<&str> =
        tools["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    for needed in [
        "get-roots-list",
        "trigger-url-elicitation",
        "trigger-elicitation-request",
        "trigger-sampling-request",
    ] {
        assert!(names.contains(&needed), "{needed} missing from {names:?}");
    }
}

#[test]
fn the_rest_route_refuses_a_second_handshake() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let msg = hub
        .call("fx", "initialize", &initialize_params(MCP_VERSION, json!({})))
        .expect_error(400, "bad_request");
    assert!(msg.contains("the hub owns the handshake"), "{msg}");
    assert_eq!(
        hub.stderr_lines("fx", "notification notifications/initialized"),
        1,
        "only the hub's own handshake"
    );
}

#[test]
fn child_log_lines_keep_their_level_and_requests_name_their_method_and_client() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let c = McpSession::connect(&hub, "/mcp/fx");
    c.call(json!(1), "tools/call", json!({"name": "notify", "arguments": {"level": "warning"}}));
    wait_for("the child's warning in the hub's log", 5 * SEC, || {
        hub.log()
            .lines()
            .any(|l| l.contains("[WARN]") && l.contains("[fx] warning: hello from fixture"))
            .then_some(())
    });
    wait_for("the request line", 5 * SEC, || {
        hub.log()
            .lines()
            .any(|l| l.contains("POST /mcp/fx (tools/call) 200") && l.contains("client=it"))
            .then_some(())
    });
}
