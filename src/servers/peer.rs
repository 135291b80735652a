//! The hub's answers to a child's own requests (`ping`, `roots/list`; sampling and
//! elicitation when no client request can take them) and what it does with the child's
//! notifications (the log, the activity feed, the listeners).

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Value, json};

use super::Listener;
use super::bridge::Peer;
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
}

impl ChildPeer {
    pub fn new(
        cfg: &ServerConfig,
        secrets: Arc<Secrets>,
        activity: Arc<Activity>,
        listener: Option<Listener>,
    ) -> ChildPeer {
        ChildPeer { roots: cfg.roots.clone(), secrets, activity, listener }
    }
}

impl Peer for ChildPeer {
    fn request(&self, server: &str, msg: &Value) -> std::result::Result<Value, RpcError> {
        match jsonrpc::method(msg) {
            "ping" => Ok(json!({})),
            "roots/list" if !self.roots.is_empty() => Ok(json!({
                "roots": self.roots.iter().map(|uri| json!({"uri": uri})).collect::<Vec<_>>()
            })),
            "roots/list" => {
                Err(RpcError::new(jsonrpc::METHOD_NOT_FOUND, "no roots are configured for this server"))
            }
            m @ ("sampling/createMessage" | "elicitation/create") => {
                log::info!("server {server} asked for {m}, but no client session is waiting on it");
                Err(RpcError::new(
                    jsonrpc::METHOD_NOT_FOUND,
                    format!(
                        "{m} cannot be relayed: no client session has a request in flight on this server"
                    ),
                ))
            }
            m => Err(RpcError::new(jsonrpc::METHOD_NOT_FOUND, format!("method not found: {m}"))),
        }
    }

    fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.secrets.redact(text)
    }

    fn notification(&self, server: &str, msg: &Value, relayed: bool) {
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
                // Children log as much as they like: at debug, the hub's own log stays readable.
                log::debug!("[{server}] {level}: {text:.500}");
                self.activity.record("log", Some(server), text);
            }
            "notifications/progress" | "notifications/cancelled" => log::debug!("[{server}] {method}"),
            _ => self.activity.record("notification", Some(server), self.secrets.redact(method).into_owned()),
        }
        if let Some(l) = self.listener.as_ref().filter(|_| !relayed) {
            l(server, msg);
        }
    }
}
