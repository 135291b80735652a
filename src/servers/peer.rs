//! The hub's answers to a child's own requests (`ping`, `roots/list`; sampling and
//! elicitation when no client request can take them) and what it does with the child's
//! notifications (the log, the activity feed, the listeners).

use std::borrow::Cow;
use std::sync::Arc;

use parking_lot::Mutex;
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
    /// The start of the current second and the child's log lines in it.
    log_window: Mutex<(std::time::Instant, u32)>,
}

/// A child's log lines per second logged at their own level; the rest at debug.
const LOG_BURST: u32 = 20;

impl ChildPeer {
    pub fn new(
        cfg: &ServerConfig,
        secrets: Arc<Secrets>,
        activity: Arc<Activity>,
        listener: Option<Listener>,
    ) -> ChildPeer {
        let log_window = Mutex::new((std::time::Instant::now(), 0));
        ChildPeer { roots: cfg.roots.clone(), secrets, activity, listener, log_window }
    }

    /// A sampling request no client can take. (Where the local model will answer instead.)
    fn no_sampling(&self, server: &str) -> RpcError {
        log::info!("server {server} asked for sampling, but no client that can sample is waiting on it");
        RpcError::new(
            jsonrpc::METHOD_NOT_FOUND,
            format!(
                "sampling/createMessage: no client that declared sampling has a request in flight on {server}, and no local model answers for it"
            ),
        )
    }

    /// A child's log line goes to the hub's log at its own level, up to `LOG_BURST` lines a
    /// second per child; past that at debug, so a flood cannot fill the log.
    fn log_level(&self, level: &str) -> log::Level {
        let wanted = match level {
            "debug" => log::Level::Debug,
            "info" | "notice" => log::Level::Info,
            "warning" => log::Level::Warn,
            "error" | "critical" | "alert" | "emergency" => log::Level::Error,
            _ => log::Level::Info,
        };
        if wanted == log::Level::Debug {
            return wanted;
        }
        let now = std::time::Instant::now();
        let mut window = self.log_window.lock();
        if now.saturating_duration_since(window.0) >= std::time::Duration::from_secs(1) {
            *window = (now, 0);
        }
        window.1 += 1;
        if window.1 <= LOG_BURST { wanted } else { log::Level::Debug }
    }
}

impl Peer for ChildPeer {
    fn request(&self, server: &str, msg: &Value) -> std::result::Result<Value, RpcError> {
        match jsonrpc::method(msg) {
            "ping" => Ok(json!({})),
            // What a client without the capability would be expected to give.
            "roots/list" => Ok(json!({
                "roots": self.roots.iter().map(|uri| json!({"uri": uri})).collect::<Vec<_>>()
            })),
            "elicitation/create" => {
                log::info!(
                    "server {server} asked for input, but no client that can answer is waiting on it: declined"
                );
                Ok(json!({"action": "decline"}))
            }
            "sampling/createMessage" => Err(self.no_sampling(server)),
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
                log::log!(self.log_level(&level), "[{server}] {level}: {text:.500}");
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
