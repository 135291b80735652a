//! Protocol revision 2026-07-28 as the hub speaks it to a server that knows nothing older
//! (the TypeScript SDK's `serveStdio(factory, {legacy: "reject"})`): no `initialize`, no
//! session; `server/discover` says what it speaks and offers; every request carries the
//! `_meta` envelope (protocol version, client info, client capabilities); results carry
//! `resultType`, cacheable ones `ttlMs` and `cacheScope`, all the server's info under `_meta`;
//! and the server's questions (sampling, elicitation, roots) come back as an `input_required`
//! result that the hub answers and retries (`Call`). Today's clients are given results as a
//! 2025 server would have sent them (`to_legacy`).

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::Can;

/// The revision a modern server speaks.
pub const MODERN_VERSION: &str = "2026-07-28";
/// Most `input_required` rounds one request may take before the hub gives up on it.
pub const MAX_INPUT_ROUNDS: u32 = 8;

pub const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT: &str = "io.modelcontextprotocol/clientInfo";
pub const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_SERVER: &str = "io.modelcontextprotocol/serverInfo";
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";

/// Which era a running server speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Era {
    /// `initialize` and sessions (2024-11-05 to 2025-11-25).
    #[default]
    Legacy,
    /// 2026-07-28: `server/discover`, the `_meta` envelope, `input_required`.
    Modern,
}

impl Era {
    pub fn as_str(self) -> &'static str {
        match self {
            Era::Legacy => "legacy",
            Era::Modern => "modern",
        }
    }
}

/// The capabilities a client that can answer `can` declares, with what the hub answers itself
/// when no client does: sampling by its own model (`local_sampling`), its configured roots
/// (`roots`).
pub fn capabilities(can: Can, local_sampling: bool, roots: bool) -> Value {
    let mut caps = Map::new();
    if can.roots || roots {
        caps.insert("roots".into(), json!({}));
    }
    if can.sampling || local_sampling {
        caps.insert("sampling".into(), json!({}));
    }
    let mut elicitation = Map::new();
    if can.form {
        elicitation.insert("form".into(), json!({}));
    }
    if can.url {
        elicitation.insert("url".into(), json!({}));
    }
    if !elicitation.is_empty() {
        caps.insert("elicitation".into(), Value::Object(elicitation));
    }
    Value::Object(caps)
}

/// `params` with the envelope merged into its `_meta` (the request's own keys, a progress
/// token among them, kept).
pub fn with_envelope(params: Option<Value>, capabilities: Value) -> Value {
    let mut params = match params {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let meta = params.entry("_meta").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta[META_VERSION] = json!(MODERN_VERSION);
    meta[META_CLIENT] = json!({"name": "agenthub", "version": crate::VERSION});
    meta[META_CAPABILITIES] = capabilities;
    Value::Object(params)
}

/// The headers a 2026-07-28 POST of `msg` carries: `Mcp-Method`, and `Mcp-Name` for the
/// requests that name a target (`tools/call`, `prompts/get`: `params.name`; `resources/read`:
/// `params.uri`).
pub fn method_headers(msg: &Value) -> Vec<(&'static str, String)> {
    let Some(method) = msg.get("method").and_then(Value::as_str) else { return Vec::new() };
    let mut headers = vec![("Mcp-Method", method.to_string())];
    let name = match method {
        "tools/call" | "prompts/get" => msg.pointer("/params/name"),
        "resources/read" => msg.pointer("/params/uri"),
        "tasks/get" | "tasks/cancel" | "tasks/update" | "tasks/result" => msg.pointer("/params/taskId"),
        _ => None,
    };
    if let Some(n) = name.and_then(Value::as_str) {
        headers.push(("Mcp-Name", n.to_string()));
    }
    headers
}

/// The params of the hub's `server/discover`.
pub fn discover_params() -> Value {
    with_envelope(None, json!({}))
}

/// Whether a `server/discover` result offers a version of the initialize era the hub speaks.
pub fn speaks_legacy(discover: &Value) -> bool {
    let versions = discover.get("supportedVersions").and_then(Value::as_array);
    versions
        .is_some_and(|v| v.iter().any(|v| v.as_str().is_some_and(|v| super::SUPPORTED_VERSIONS.contains(&v))))
}

/// What the hub keeps of a `server/discover` result, shaped as an `initialize` result (the
/// gateway answers its clients' `initialize` from it); `None` when the server does not speak
/// `MODERN_VERSION`.
pub fn handshake(discover: &Value, name: &str) -> Option<Value> {
    let speaks = discover
        .get("supportedVersions")
        .and_then(Value::as_array)
        .is_some_and(|v| v.iter().any(|v| v.as_str() == Some(MODERN_VERSION)));
    if !speaks {
        return None;
    }
    let info = discover
        .pointer(&format!("/_meta/{}", META_SERVER.replace('/', "~1")))
        .or_else(|| discover.get("serverInfo"))
        .cloned()
        .unwrap_or_else(|| json!({"name": name, "version": "unknown"}));
    let mut init = json!({
        "protocolVersion": MODERN_VERSION,
        "capabilities": discover.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "serverInfo": info,
    });
    if let Some(i) = discover.get("instructions") {
        init["instructions"] = i.clone();
    }
    Some(init)
}

/// An `input_required` answer's next round: its requests and its state, or, past the hub's
/// bound on rounds, the error that ends the call.
pub fn next_round(
    server: &str,
    round: &mut u32,
    result: &Value,
) -> Result<(serde_json::Map<String, Value>, Option<Value>), crate::jsonrpc::RpcError> {
    if *round >= MAX_INPUT_ROUNDS {
        let why = format!("{server} still asked for input after {MAX_INPUT_ROUNDS} rounds (the hub's bound)");
        return Err(crate::jsonrpc::RpcError::new(crate::jsonrpc::INTERNAL_ERROR, why));
    }
    *round += 1;
    let requests = result.get("inputRequests").and_then(Value::as_object).cloned().unwrap_or_default();
    Ok((requests, result.get("requestState").cloned()))
}

/// Whether a result asks the client for input before it can complete.
pub fn is_input_required(result: &Value) -> bool {
    result.get("resultType").and_then(Value::as_str) == Some("input_required")
}

/// The requests whose results carry a cache hint (`ttlMs`, `cacheScope`; SEP-2549), the
/// skills extension's included.
pub const CACHEABLE: &[&str] = &[
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "server/discover",
    "skills/list",
    "skills/get",
];

/// A modern result of `method` as a 2025 server would have sent it: no `resultType:
/// "complete"`, no cache hint, no server info under `_meta` (and no `_meta` left empty). A
/// task (`resultType: "task"`) keeps its `ttlMs`, which is the task's.
pub fn to_legacy(result: &mut Value, method: &str) {
    let Some(r) = result.as_object_mut() else { return };
    if r.get("resultType").and_then(Value::as_str) == Some("complete") {
        r.remove("resultType");
    }
    if CACHEABLE.contains(&method) {
        r.remove("ttlMs");
        r.remove("cacheScope");
    }
    if let Some(Value::Object(meta)) = r.get_mut("_meta") {
        meta.remove(META_SERVER);
        if meta.is_empty() {
            r.remove("_meta");
        }
    }
}

/// The params of a request retried with the answers to its `input_required`: the original
/// params (their earlier answers replaced), `inputResponses` and `requestState` untouched.
pub fn retry_params(original: Option<&Value>, responses: Map<String, Value>, state: Option<&Value>) -> Value {
    let mut params = match original {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    params.insert("inputResponses".into(), Value::Object(responses));
    match state {
        Some(s) => params.insert("requestState".into(), s.clone()),
        None => params.remove("requestState"),
    };
    Value::Object(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_lose_what_a_legacy_client_never_saw() {
        let mut r = json!({"tools": [], "resultType": "complete", "ttlMs": 0, "cacheScope": "private",
            "_meta": {META_SERVER: {"name": "m", "version": "1"}}});
        to_legacy(&mut r, "tools/list");
        assert_eq!(r, json!({"tools": []}));
        let mut r =
            json!({"resultType": "task", "taskId": "t", "ttlMs": 60000, "_meta": {META_SERVER: {}, "x": 1}});
        to_legacy(&mut r, "tools/call");
        assert_eq!(r, json!({"resultType": "task", "taskId": "t", "ttlMs": 60000, "_meta": {"x": 1}}));
    }

    #[test]
    fn the_envelope_keeps_the_requests_own_meta() {
        let p =
            with_envelope(Some(json!({"name": "t", "_meta": {"progressToken": 7}})), json!({"roots": {}}));
        assert_eq!(p["name"], "t");
        assert_eq!(p["_meta"]["progressToken"], 7);
        assert_eq!(p["_meta"][META_VERSION], MODERN_VERSION);
        assert_eq!(p["_meta"][META_CLIENT]["name"], "agenthub");
        assert_eq!(p["_meta"][META_CAPABILITIES], json!({"roots": {}}));
        assert_eq!(with_envelope(None, json!({}))["_meta"][META_CAPABILITIES], json!({}));
    }

    #[test]
    fn capabilities_say_what_can_be_answered() {
        let none = Can::default();
        assert_eq!(capabilities(none, false, false), json!({}));
        assert_eq!(capabilities(none, true, false), json!({"sampling": {}}));
        assert_eq!(capabilities(none, false, true), json!({"roots": {}}));
        let form = Can { form: true, ..none };
        assert_eq!(capabilities(form, false, false), json!({"elicitation": {"form": {}}}));
        assert_eq!(
            capabilities(Can::ALL, false, false),
            json!({"roots": {}, "sampling": {}, "elicitation": {"form": {}, "url": {}}})
        );
    }

    #[test]
    fn a_discover_result_becomes_a_handshake() {
        let d = json!({"supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}},
            "resultType": "complete", "_meta": {META_SERVER: {"name": "m", "version": "1"}}});
        let h = handshake(&d, "srv").unwrap();
        assert_eq!(
            h,
            json!({"protocolVersion": "2026-07-28", "capabilities": {"tools": {}},
            "serverInfo": {"name": "m", "version": "1"}})
        );
        let bare = handshake(&json!({"supportedVersions": ["2026-07-28"]}), "srv").unwrap();
        assert_eq!(bare["serverInfo"]["name"], "srv");
        assert!(handshake(&json!({"supportedVersions": ["2027-01-01"]}), "srv").is_none());
        assert!(handshake(&json!({}), "srv").is_none());
        assert!(speaks_legacy(&json!({"supportedVersions": ["2025-11-25", "2026-07-28"]})));
        assert!(!speaks_legacy(&d));
    }

    #[test]
    fn posts_name_their_method_and_target() {
        let call = json!({"method": "tools/call", "params": {"name": "echo"}});
        assert_eq!(
            method_headers(&call),
            vec![("Mcp-Method", "tools/call".into()), ("Mcp-Name", "echo".into())]
        );
        let read = json!({"method": "resources/read", "params": {"uri": "demo://doc"}});
        assert_eq!(method_headers(&read)[1], ("Mcp-Name", "demo://doc".into()));
        assert_eq!(method_headers(&json!({"method": "tools/list"})).len(), 1);
        assert!(method_headers(&json!({"result": {}})).is_empty());
    }

    #[test]
    fn a_retry_carries_the_answers_and_the_state_untouched() {
        let original = json!({"name": "ask", "arguments": {}, "inputResponses": {"old": 1}});
        let mut answers = Map::new();
        answers.insert("color".into(), json!({"action": "accept"}));
        let p = retry_params(Some(&original), answers, Some(&json!({"opaque": [1]})));
        assert_eq!(p["name"], "ask");
        assert_eq!(p["inputResponses"], json!({"color": {"action": "accept"}}));
        assert_eq!(p["requestState"], json!({"opaque": [1]}));
    }
}
