//! The hub's answers to a child's own requests (`ping`; `roots/list`, sampling and
//! elicitation when no client can take them, as a client without the capability would) and what it does with the child's
//! notifications (the log, the activity feed, the listeners).

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Value, json};

use super::bridge::Peer;
use super::{Listener, Router};
use crate::activity::Activity;
use crate::config::{Secrets, ServerConfig};
use crate::jsonrpc::{self, RpcError};

/// Answers a child's own requests and records its notifications.
pub(super) struct ChildPeer {
    roots: Vec<String>,
    /// What the child was started with that its text must not carry into the log or the feed.
    secrets: Arc<Secrets>,
    activity: Arc<Activity>,
    listener: Option<Listener>,
    router: Option<Router>,
}

impl ChildPeer {
    pub fn new(
        cfg: &ServerConfig,
        secrets: Arc<Secrets>,
        activity: Arc<Activity>,
        listener: Option<Listener>,
        router: Option<Router>,
    ) -> ChildPeer {
        ChildPeer { roots: cfg.roots.clone(), secrets, activity, listener, router }
    }
}

impl ChildPeer {
    /// What a client without sampling answers, as the hub gives it. Issue 15 plugs the local
    /// model in here (the server's `sampling` policy); until then, an error saying why.
    fn sample_without_client(&self, server: &str, why: &str) -> Result<Value, RpcError> {
        Err(RpcError::new(
            jsonrpc::METHOD_NOT_FOUND,
            format!(
                "sampling/createMessage from {server} was not answered: {why}, and the hub samples no local model"
            ),
        ))
    }
}

impl Peer for ChildPeer {
    fn request(&self, server: &str, msg: &Value) -> Result<Value, RpcError> {
        match jsonrpc::method(msg) {
            "ping" => Ok(json!({})),
            m @ ("roots/list" | "sampling/createMessage" | "elicitation/create") => {
                self.unrouted(server, msg, &format!("{m} came with no client to ask"))
            }
            m => Err(RpcError::new(jsonrpc::METHOD_NOT_FOUND, format!("method not found: {m}"))),
        }
    }

    /// As a client without the capability: roots the configured ones (or none), elicitation
    /// declined, sampling by `sample_without_client`. Never an internal error.
    fn unrouted(&self, server: &str, msg: &Value, why: &str) -> Result<Value, RpcError> {
        let method = jsonrpc::method(msg);
        log::debug!("server {server}: {method} answered by the hub: {why}");
        match method {
            "roots/list" => Ok(json!({
                "roots": self.roots.iter().map(|uri| json!({"uri": uri})).collect::<Vec<_>>()
            })),
            "elicitation/create" => Ok(json!({"action": "decline"})),
            "sampling/createMessage" => self.sample_without_client(server, why),
            m => Err(RpcError::new(jsonrpc::METHOD_NOT_FOUND, format!("method not found: {m}"))),
        }
    }

    fn offer(&self, server: &str, forward: &Value) -> bool {
        self.router.as_ref().is_some_and(|r| r(server, forward))
    }

    fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.secrets.redact(text)
    }

    fn notification(&self, server: &str, msg: &Value) {
        let method = jsonrpc::method(msg);
        match method {
            "notifications/message" => {
                let p = &msg["params"];
                let text = match &p["data"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let text = self.secrets.redact(&text).into_owned();
                let level = self.secrets.redact(p["level"].as_str().unwrap_or("info")).into_owned();
                log::log!(log_level(&level), "[{server}] {level}: {text:.500}");
                self.activity.record("log", Some(server), text);
            }
            "notifications/progress" | "notifications/cancelled" => log::debug!("[{server}] {method}"),
            _ => self.activity.record("notification", Some(server), self.secrets.redact(method).into_owned()),
        }
        if let Some(l) = &self.listener {
            l(server, msg);
        }
    }
}

/// The hub's log level for a child's log message of MCP level `level` (RFC 5424 names).
fn log_level(level: &str) -> log::Level {
    match level {
        "debug" => log::Level::Debug,
        "info" | "notice" => log::Level::Info,
        "warning" => log::Level::Warn,
        "error" | "critical" | "alert" | "emergency" => log::Level::Error,
        _ => log::Level::Info,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn child_log_levels_map_to_the_hubs() {
        fn check(mcp: &str, hub: log::Level) {
            assert_eq!(super::log_level(mcp), hub, "{mcp}");
        }
        check("debug", log::Level::Debug);
        check("info", log::Level::Info);
        check("notice", log::Level::Info);
        check("warning", log::Level::Warn);
        check("error", log::Level::Error);
        check("emergency", log::Level::Error);
        check("odd", log::Level::Info);
    }
}
