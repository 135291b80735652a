//! Who a relayed request is for: its caller's session and what its client can answer
//! (`Can`, from the client's `initialize`), which decides whether a server's request for a
//! client (`roots/list`, `sampling/createMessage`, `elicitation/create`) may go to it.

use serde_json::Value;

use crate::jsonrpc;

/// The `_meta` key naming the task a message belongs to.
pub const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";

/// What a client declared it can do, from its `initialize`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Can {
    pub roots: bool,
    pub sampling: bool,
    pub form: bool,
    pub url: bool,
}

impl Can {
    /// Everything: a relayed request whose client is not known (the bridge's own tests).
    pub const ALL: Can = Can { roots: true, sampling: true, form: true, url: true };

    /// From an `initialize`'s `capabilities`. `elicitation: {}` is form only (2025-06-18).
    pub fn of(capabilities: &Value) -> Can {
        let e = capabilities.get("elicitation");
        let form = e.is_some_and(|e| e.get("form").is_some() || e.get("url").is_none());
        Can {
            roots: capabilities.get("roots").is_some(),
            sampling: capabilities.get("sampling").is_some(),
            form,
            url: e.and_then(|e| e.get("url")).is_some(),
        }
    }

    /// Whether a client can answer this request of a server.
    pub fn answers(&self, msg: &Value) -> bool {
        match needs(msg) {
            Some(Need::Roots) => self.roots,
            Some(Need::Sampling) => self.sampling,
            Some(Need::Form) => self.form,
            Some(Need::Url) => self.url,
            None => false,
        }
    }
}

/// Who sent a relayed request: its session and what its client can answer.
#[derive(Debug, Clone)]
pub struct Caller {
    pub session: String,
    pub can: Can,
}

#[derive(Clone, Copy)]
enum Need {
    Roots,
    Sampling,
    Form,
    Url,
}

fn needs(msg: &Value) -> Option<Need> {
    match jsonrpc::method(msg) {
        "roots/list" => Some(Need::Roots),
        "sampling/createMessage" => Some(Need::Sampling),
        "elicitation/create" if msg.pointer("/params/mode").and_then(Value::as_str) == Some("url") => {
            Some(Need::Url)
        }
        "elicitation/create" => Some(Need::Form),
        _ => None,
    }
}

/// The capability a request needs, as the spec names it (for messages).
pub fn capability(msg: &Value) -> &'static str {
    match needs(msg) {
        Some(Need::Roots) => "roots",
        Some(Need::Sampling) => "sampling",
        Some(Need::Form) => "form elicitation",
        Some(Need::Url) => "url elicitation",
        None => "nothing",
    }
}

/// Whether this request of a server is one a client may be asked.
pub fn is_for_a_client(msg: &Value) -> bool {
    needs(msg).is_some()
}
