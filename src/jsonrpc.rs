//! JSON-RPC 2.0 as MCP uses it: one message per line, ids that are integers or strings. Messages
//! stay `serde_json::Value` so that whatever a peer sends is relayed whole; this module
//! classifies them and builds the ones the hub writes itself.

use serde_json::{Value, json};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// Server unavailable or breaker open (the hub's own code for "cannot reach the server").
pub const SERVER_UNAVAILABLE: i64 = -32000;
/// Request timed out (the SDKs' convention).
pub const REQUEST_TIMEOUT: i64 = -32001;
/// The hub's answer to a request its client cancelled (the client no longer waits for it).
pub const REQUEST_CANCELLED: i64 = -32800;

/// What a parsed message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    Response,
    Invalid,
}

pub fn kind(msg: &Value) -> Kind {
    let Some(obj) = msg.as_object() else {
        return Kind::Invalid;
    };
    let has_id = obj.get("id").is_some_and(|id| id.is_string() || id.is_i64() || id.is_u64());
    match (obj.get("method").and_then(Value::as_str), has_id) {
        (Some(_), true) => Kind::Request,
        (Some(_), false) if !obj.contains_key("id") => Kind::Notification,
        (None, true) if obj.contains_key("result") || obj.contains_key("error") => Kind::Response,
        // Error responses to unparseable requests carry `id: null`.
        (None, false) if obj.get("id").is_some_and(Value::is_null) && obj.contains_key("error") => {
            Kind::Response
        }
        _ => Kind::Invalid,
    }
}

pub fn method(msg: &Value) -> &str {
    msg.get("method").and_then(Value::as_str).unwrap_or("")
}

pub fn request(id: impl Into<Value>, method: &str, params: Option<Value>) -> Value {
    let mut m = json!({"jsonrpc": "2.0", "id": id.into(), "method": method});
    if let Some(p) = params {
        m["params"] = p;
    }
    m
}

/// `request(id, method, params)` as its line of JSON, written straight from the parts.
pub fn request_line(id: u64, method: &str, params: Option<&Value>) -> String {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        jsonrpc: &'static str,
        id: u64,
        method: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        params: Option<&'a Value>,
    }
    // Serializing plain strings, numbers and a `Value` cannot fail.
    serde_json::to_string(&Line { jsonrpc: "2.0", id, method, params }).unwrap_or_default()
}

pub fn notification(method: &str, params: Option<Value>) -> Value {
    let mut m = json!({"jsonrpc": "2.0", "method": method});
    if let Some(p) = params {
        m["params"] = p;
    }
    m
}

pub fn result(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

pub fn error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// An error a call ended with: from the server (its error object) or from the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError { code, message: message.into(), data: None }
    }

    pub fn from_value(v: &Value) -> RpcError {
        RpcError {
            code: v.get("code").and_then(Value::as_i64).unwrap_or(INTERNAL_ERROR),
            message: v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("error without a message")
                .to_string(),
            data: v.get("data").cloned(),
        }
    }

    pub fn to_value(&self) -> Value {
        let mut v = json!({"code": self.code, "message": self.message});
        if let Some(d) = &self.data {
            v["data"] = d.clone();
        }
        v
    }
}

/// Splits a response into its result or error, taking them out of it.
pub fn into_outcome(mut response: Value) -> Result<Value, RpcError> {
    match response.get("error") {
        Some(e) => Err(RpcError::from_value(e)),
        None => Ok(response.get_mut("result").map(Value::take).unwrap_or(Value::Null)),
    }
}

/// The response a caller with `id` gets for an outcome.
pub fn response(id: Value, outcome: Result<Value, RpcError>) -> Value {
    match outcome {
        Ok(r) => result(id, r),
        Err(e) => json!({"jsonrpc": "2.0", "id": id, "error": e.to_value()}),
    }
}

/// Splits a response into its result or error.
pub fn outcome(response: &Value) -> Result<Value, RpcError> {
    match response.get("error") {
        Some(e) => Err(RpcError::from_value(e)),
        None => Ok(response.get("result").cloned().unwrap_or(Value::Null)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_line_is_the_request_as_json() {
        fn check(method: &str, params: Option<Value>) {
            let line = request_line(7, method, params.as_ref());
            assert_eq!(line, request(7, method, params).to_string());
        }
        check("ping", None);
        check("tools/call", Some(json!({"name": "echo", "arguments": {"text": "a \"quoted\" é"}})));
        check("odd \"method\"\n", Some(Value::Null));
    }

    #[test]
    fn classifies_messages() {
        fn check(text: &str, expected: Kind) {
            let v: Value = serde_json::from_str(text).unwrap();
            assert_eq!(kind(&v), expected, "{text}");
        }
        check(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, Kind::Request);
        check(r#"{"jsonrpc":"2.0","id":"a","method":"tools/list","params":{}}"#, Kind::Request);
        check(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#, Kind::Notification);
        check(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#, Kind::Response);
        check(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"x"}}"#, Kind::Response);
        check(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#, Kind::Response);
        check(r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#, Kind::Invalid);
        check(r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#, Kind::Invalid);
        check(r#"{"jsonrpc":"2.0","id":1}"#, Kind::Invalid);
        check(r#"[1]"#, Kind::Invalid);
        check(r#""text""#, Kind::Invalid);
    }

    #[test]
    fn outcomes_and_errors() {
        assert_eq!(outcome(&result(json!(1), json!({"a": 1}))), Ok(json!({"a": 1})));
        let e = outcome(&error(json!(1), METHOD_NOT_FOUND, "nope")).unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (METHOD_NOT_FOUND, "nope"));
        assert_eq!(e.to_value(), json!({"code": -32601, "message": "nope"}));
        assert_eq!(request(7, "ping", None), json!({"jsonrpc": "2.0", "id": 7, "method": "ping"}));
    }
}
