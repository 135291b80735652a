//! SEP-2243 custom headers: a tool parameter annotated `"x-mcp-header": "Name"` in its
//! `inputSchema` is mirrored by the client into an `Mcp-Param-Name` header on the
//! `tools/call` POST (strings as they are, or `=?base64?…?=` when they hold what a header
//! cannot carry; integers and booleans as text; a null or missing argument sends none).
//! A tool whose declarations are invalid (an empty name, a name that is not an HTTP token, two
//! names equal but for case, an annotation on anything but a string, integer or boolean) is
//! refused: left out of the server's `tools/list` answers and not called.

use std::collections::HashMap;

use serde_json::Value;

/// What the hub learnt of one server's tools from its `tools/list` answers: per tool, its
/// mirrored parameters (`(parameter, header name)`), or why it is refused.
#[derive(Default)]
pub(super) struct Declared {
    tools: HashMap<String, Result<Vec<(String, String)>, String>>,
}

impl Declared {
    /// Reads a `tools/list` result: keeps each tool's declarations and takes the tools with
    /// invalid ones out of it; returns the tools newly refused, with why.
    pub fn learn(&mut self, result: &mut Value) -> Vec<(String, String)> {
        let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) else { return Vec::new() };
        let mut refused = Vec::new();
        tools.retain(|tool| {
            let Some(name) = tool.get("name").and_then(Value::as_str) else { return true };
            let declared = declarations(tool.get("inputSchema").unwrap_or(&Value::Null));
            let keep = declared.is_ok();
            let known = self.tools.insert(name.to_string(), declared.clone());
            if let Err(why) = declared
                && known.is_none_or(|k| k.is_ok())
            {
                refused.push((name.to_string(), why));
            }
            keep
        });
        refused
    }

    /// The headers a `tools/call` request carries, or why the tool is refused.
    pub fn headers_for(&self, call: &Value) -> Result<Vec<(String, String)>, String> {
        let name = call.pointer("/params/name").and_then(Value::as_str).unwrap_or("");
        let Some(declared) = self.tools.get(name) else { return Ok(Vec::new()) };
        let declared = declared.as_ref().map_err(|why| format!("tool {name} is refused: {why}"))?;
        let args = call.pointer("/params/arguments");
        Ok(declared
            .iter()
            .filter_map(|(param, header)| {
                let value = encode(args?.get(param)?)?;
                Some((format!("Mcp-Param-{header}"), value))
            })
            .collect())
    }
}

/// A tool's `x-mcp-header` declarations, `(parameter, header name)`, or why they are invalid.
fn declarations(schema: &Value) -> Result<Vec<(String, String)>, String> {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else { return Ok(Vec::new()) };
    let mut out: Vec<(String, String)> = Vec::new();
    for (param, prop) in props {
        let Some(header) = prop.get("x-mcp-header") else { continue };
        let Some(header) = header.as_str() else {
            return Err(format!("x-mcp-header of {param} is not a string"));
        };
        if header.is_empty() {
            return Err(format!("x-mcp-header of {param} is empty"));
        }
        if !header.bytes().all(is_token_byte) {
            return Err(format!("x-mcp-header {header:?} of {param} is not an HTTP header name"));
        }
        let kinds: Vec<&str> = match prop.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect(),
            _ => Vec::new(),
        };
        if kinds.is_empty() && prop.get("type").is_some()
            || kinds.iter().any(|t| !matches!(*t, "string" | "integer" | "boolean"))
        {
            return Err(format!(
                "x-mcp-header {header:?} is on {param}, which is not a string, integer or boolean"
            ));
        }
        if out.iter().any(|(_, h)| h.eq_ignore_ascii_case(header)) {
            return Err(format!("x-mcp-header {header:?} is declared twice"));
        }
        out.push((param.clone(), header.to_string()));
    }
    Ok(out)
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// An argument as a header value; `None` for a null (no header is sent).
fn encode(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) if needs_base64(s) => Some(format!("=?base64?{}?=", base64(s.as_bytes()))),
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// A value a header cannot carry as it is: outside visible ASCII and space, or with
/// whitespace at either end (which a header loses).
fn needs_base64(s: &str) -> bool {
    s.chars().any(|c| !(' '..='~').contains(&c)) || s != s.trim()
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(prop: Value, ok: bool) {
        let schema = json!({"type": "object", "properties": {"p": prop}});
        assert_eq!(declarations(&schema).is_ok(), ok, "{schema}");
    }

    #[test]
    fn declarations_are_checked() {
        check(json!({"type": "string", "x-mcp-header": "Region"}), true);
        check(json!({"type": "integer", "x-mcp-header": "Priority"}), true);
        check(json!({"type": "boolean", "x-mcp-header": "Debug"}), true);
        check(json!({"type": "string", "x-mcp-header": ""}), false);
        check(json!({"type": "number", "x-mcp-header": "Score"}), false);
        check(json!({"type": "object", "x-mcp-header": "Data"}), false);
        check(json!({"type": "null", "x-mcp-header": "Nil"}), false);
        check(json!({"type": "string", "x-mcp-header": "My Region"}), false);
        check(json!({"type": "string", "x-mcp-header": "Region:Primary"}), false);
        check(json!({"type": "string", "x-mcp-header": "Région"}), false);
        let twice = json!({"properties": {"a": {"type": "string", "x-mcp-header": "MyField"},
            "b": {"type": "string", "x-mcp-header": "myfield"}}});
        assert!(declarations(&twice).is_err());
    }

    #[test]
    fn values_are_encoded() {
        assert_eq!(encode(&json!("us-west1")).unwrap(), "us-west1");
        assert_eq!(encode(&json!(42)).unwrap(), "42");
        assert_eq!(encode(&json!(false)).unwrap(), "false");
        assert_eq!(encode(&json!("")).unwrap(), "");
        assert_eq!(encode(&json!(" padded ")).unwrap(), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(encode(&json!("Hello, 世界")).unwrap(), "=?base64?SGVsbG8sIOS4lueVjA==?=");
        assert_eq!(encode(&Value::Null), None);
        assert_eq!(base64(b"ab"), "YWI=");
    }
}
