//! Clients of the 2026-07-28 revision on the wire: `server/discover`, sessionless requests
//! with the `_meta` envelope, the header checks, results in the revision's shape, and a
//! server's own request during a call turned into `input_required` and resumed by the retry.

use serde_json::{Value, json};

use crate::harness::*;

const MODERN: &str = "2026-07-28";

fn envelope(caps: Value) -> Value {
    json!({"io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "modern-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": caps})
}

/// A modern request: the body with the envelope merged into its `params._meta`, the headers
/// the revision requires (`name` for Mcp-Name).
fn modern(hub: &Hub, path: &str, id: Value, method: &str, mut params: Value, name: Option<&str>) -> Resp {
    modern_with(hub, path, id, method, &mut params, name, json!({"sampling": {}}))
}

fn modern_with(
    hub: &Hub,
    path: &str,
    id: Value,
    method: &str,
    params: &mut Value,
    name: Option<&str>,
    caps: Value,
) -> Resp {
    let meta = params.as_object_mut().unwrap().entry("_meta").or_insert(json!({}));
    for (k, v) in envelope(caps).as_object().unwrap() {
        meta[k] = v.clone();
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let mut headers = vec![
        JSON,
        ("Accept", "application/json, text/event-stream"),
        ("MCP-Protocol-Version", MODERN),
        ("Mcp-Method", method),
    ];
    if let Some(n) = name {
        headers.push(("Mcp-Name", n));
    }
    hub.request("POST", path, &headers, body.to_string().as_bytes())
}

fn fixture_hub() -> Hub {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true, "request_timeout": 3}))]);
    hub.wait_status("fx", "RUNNING", 5 * SEC);
    hub
}

#[test]
fn server_discover_names_both_eras_on_each_endpoint() {
    let hub = fixture_hub();
    for (path, server) in [("/mcp/fx", "fixture"), ("/mcp", "agenthub")] {
        let r = modern(&hub, path, json!(1), "server/discover", json!({}), None);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(r.header("mcp-session-id").is_none(), "no session in this revision");
        let result = &r.json()["result"];
        let versions = result["supportedVersions"].as_array().unwrap();
        assert!(versions.contains(&json!(MODERN)) && versions.contains(&json!("2025-11-25")), "{result}");
        assert!(result["capabilities"]["tools"].is_object(), "{result}");
        assert_eq!(result["resultType"], "complete", "{result}");
        assert_eq!((result["ttlMs"].clone(), result["cacheScope"].clone()), (json!(0), json!("private")));
        let info = &result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"];
        assert!(info.as_str().unwrap().starts_with(server), "{path}: {result}");
    }
}

#[test]
fn sessionless_requests_are_answered_in_the_revisions_shape() {
    let hub = fixture_hub();
    let r = modern(&hub, "/mcp/fx", json!(1), "tools/list", json!({}), None);
    let result = &r.json()["result"];
    assert!(result["tools"].as_array().unwrap().iter().any(|t| t["name"] == "echo"), "{result}");
    assert_eq!(
        (result["resultType"].clone(), result["cacheScope"].clone()),
        (json!("complete"), json!("private"))
    );
    let r = modern(
        &hub,
        "/mcp",
        json!(2),
        "tools/call",
        json!({"name": "fx__echo", "arguments": {"text": "hi"}}),
        Some("fx__echo"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let result = &r.json()["result"];
    assert_eq!(result["content"][0]["text"], "hi", "{result}");
    assert_eq!(result["resultType"], "complete");
    assert!(result.get("ttlMs").is_none(), "a call's result is not cacheable: {result}");
}

#[test]
fn headers_and_envelope_are_checked_against_the_body() {
    let hub = fixture_hub();
    let call = json!({"name": "echo", "arguments": {"text": "x"}});
    let refused = |r: &Resp, status: u16, code: i64| {
        assert_eq!(r.status, status, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], code, "{}", r.text());
        assert_eq!(r.json()["id"], 7, "the id is kept: {}", r.text());
    };
    // Mcp-Name missing, then wrong.
    refused(&modern(&hub, "/mcp/fx", json!(7), "tools/call", call.clone(), None), 400, -32020);
    refused(&modern(&hub, "/mcp/fx", json!(7), "tools/call", call.clone(), Some("other")), 400, -32020);
    // Whitespace around a header value is not part of it.
    assert_eq!(modern(&hub, "/mcp/fx", json!(7), "tools/call", call.clone(), Some("  echo ")).status, 200);
    // Mcp-Method says another method.
    let body =
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {"_meta": envelope(json!({}))}});
    let headers = [JSON, ("MCP-Protocol-Version", MODERN), ("Mcp-Method", "prompts/list")];
    refused(&hub.request("POST", "/mcp/fx", &headers, body.to_string().as_bytes()), 400, -32020);
    // The envelope without its required fields.
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}});
    let headers = [JSON, ("MCP-Protocol-Version", MODERN), ("Mcp-Method", "tools/list")];
    let r = hub.request("POST", "/mcp/fx", &headers, body.to_string().as_bytes());
    refused(&r, 400, -32602);
    assert!(r.text().contains("clientCapabilities"), "{}", r.text());
    // A version the hub does not speak: the versions it does.
    let mut meta = envelope(json!({}));
    meta["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {"_meta": meta}});
    let headers = [JSON, ("MCP-Protocol-Version", "2099-01-01"), ("Mcp-Method", "tools/list")];
    let r = hub.request("POST", "/mcp/fx", &headers, body.to_string().as_bytes());
    refused(&r, 400, -32022);
    assert!(
        r.json()["error"]["data"]["supported"].as_array().unwrap().contains(&json!(MODERN)),
        "{}",
        r.text()
    );
    // What the revision removed is not found (HTTP 404).
    refused(&modern(&hub, "/mcp/fx", json!(7), "ping", json!({}), None), 404, -32601);
    refused(&modern(&hub, "/mcp/fx", json!(7), "no/such/method", json!({}), None), 404, -32601);
}

/// A server's request during a modern client's call: the call is parked and the client is
/// asked by `input_required`; its retry answers the server, and the same call ends with the
/// server's result. The server speaks the initialize era throughout.
#[test]
fn a_servers_request_becomes_input_required_and_the_retry_resumes_the_call() {
    let hub = fixture_hub();
    let ask = json!({"name": "ask", "arguments": {"method": "sampling/createMessage",
        "params": {"messages": [{"role": "user", "content": {"type": "text", "text": "colour?"}}], "maxTokens": 5}}});
    let r = modern(&hub, "/mcp/fx", json!(1), "tools/call", ask.clone(), Some("ask"));
    assert_eq!(r.status, 200, "{}", r.text());
    let first = r.json()["result"].clone();
    assert_eq!(first["resultType"], "input_required", "{first}");
    let requests = first["inputRequests"].as_object().unwrap();
    let (key, request) = requests.iter().next().unwrap();
    assert_eq!(requests.len(), 1, "{first}");
    assert_eq!(request["method"], "sampling/createMessage", "{first}");
    assert_eq!(request["params"]["messages"][0]["content"]["text"], "colour?", "{first}");
    let state = first["requestState"].as_str().unwrap().to_string();

    // A state the hub did not make, or made for another endpoint, is refused.
    let mut tampered = ask.clone();
    tampered["requestState"] = json!(format!("{state}x"));
    tampered["inputResponses"] = json!({});
    let r = modern(&hub, "/mcp/fx", json!(2), "tools/call", tampered, Some("ask"));
    assert_eq!(r.json()["error"]["code"], -32602, "{}", r.text());

    // The retry without the answer is asked again; with it, the call ends.
    let mut retry = ask.clone();
    retry["requestState"] = json!(state);
    retry["inputResponses"] = json!({});
    let again =
        modern(&hub, "/mcp/fx", json!(3), "tools/call", retry.clone(), Some("ask")).json()["result"].clone();
    assert_eq!(again["resultType"], "input_required", "{again}");
    assert!(again["inputRequests"].get(key).is_some(), "{again}");
    retry["requestState"] = again["requestState"].clone();
    retry["inputResponses"] = json!({key: {"role": "assistant", "content": {"type": "text", "text": "teal"},
        "model": "m", "stopReason": "endTurn"}});
    let r = modern(&hub, "/mcp/fx", json!(4), "tools/call", retry, Some("ask"));
    let done = r.json()["result"].clone();
    assert_eq!(done["resultType"], "complete", "{done}");
    assert!(done["content"][0]["text"].as_str().unwrap().contains("teal"), "{done}");

    // A client that never comes back: its parked call ends at its deadline (3 s), cancelled
    // at the server, and the server is free again.
    let r = modern(&hub, "/mcp/fx", json!(5), "tools/call", ask, Some("ask"));
    assert_eq!(r.json()["result"]["resultType"], "input_required");
    hub.wait_stderr("fx", "notification notifications/cancelled");
    let r = modern(
        &hub,
        "/mcp/fx",
        json!(6),
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "free"}}),
        Some("echo"),
    );
    assert_eq!(r.json()["result"]["content"][0]["text"], "free");
}

/// A client that declared no sampling is not asked: the server gets the answer a client
/// without it gives, and the call ends without a round trip.
#[test]
fn a_client_without_the_capability_is_not_asked() {
    let hub = fixture_hub();
    let mut ask = json!({"name": "ask", "arguments": {"method": "sampling/createMessage",
        "params": {"messages": [], "maxTokens": 5}}});
    let r = modern_with(&hub, "/mcp/fx", json!(1), "tools/call", &mut ask, Some("ask"), json!({}));
    let result = r.json()["result"].clone();
    assert_eq!(result["resultType"], "complete", "{result}");
    assert!(result["content"][0]["text"].as_str().unwrap().contains("error"), "{result}");
}

#[test]
fn tool_search_works_for_a_client_without_sessions() {
    let hub = Hub::builder()
        .fixtures(&[("fx", json!({"auto_start": true}))])
        .env("AGENTHUB_TOOL_SEARCH", "on")
        .start();
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let r = modern(&hub, "/mcp", json!(1), "tools/list", json!({}), None);
    let tools = r.json()["result"]["tools"].clone();
    let names: Vec<&str> = tools.as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"agenthub__find_tools") && !names.contains(&"fx__echo"), "{names:?}");
    let find = json!({"name": "agenthub__find_tools", "arguments": {"query": "echo back the text"}});
    let r = modern(&hub, "/mcp", json!(2), "tools/call", find, Some("agenthub__find_tools"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"]["structuredContent"]["tools"][0]["name"], "fx__echo", "{}", r.text());
    let call = json!({"name": "agenthub__call_tool", "arguments": {"name": "fx__echo", "arguments": {"text": "hi"}}});
    let r = modern(&hub, "/mcp", json!(3), "tools/call", call, Some("agenthub__call_tool"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"]["content"][0]["text"], "hi", "{}", r.text());
}
