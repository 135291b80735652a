//! The hub's answers to a child's own requests (`ping`; `roots/list`, sampling and
//! elicitation when no client can take them, as a client without the capability would, or as
//! the server's `sampling` and `elicitation` policies say: sampling by the local model,
//! elicitation held for a person until its deadline, `elicitations`) and what
//! it does with the child's notifications (the log, the activity feed, the listeners). A child's
//! log messages are logged at the hub's level for theirs, their text redacted, escaped and cut,
//! within a budget of lines (`LogBudget`); an unknown level is logged as `UNKNOWN_LEVEL`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use serde_json::{Value, json};

use super::elicitations::Elicitations;
use super::{Listener, Router, Sampler};
use crate::activity::Activity;
use crate::config::{Elicitation, Sampling, Secrets, ServerConfig};
use crate::jsonrpc::{self, RpcError};
use crate::text::{LogBudget, for_log};
use crate::transport::{Later, Peer};

/// What a child's log message whose level is none of MCP's is logged as.
const UNKNOWN_LEVEL: &str = "unknown-level";
/// Bytes of a child's log message written to the hub's log (the activity feed keeps more).
const LOG_TEXT_BYTES: usize = 500;

/// Answers a child's own requests and records its notifications.
pub(super) struct ChildPeer {
    roots: Vec<String>,
    sampling: Sampling,
    sampling_model: Option<String>,
    elicitation: Elicitation,
    sampler: Option<Sampler>,
    /// What the child was started with that its text must not carry into the log or the feed.
    secrets: Arc<Secrets>,
    activity: Arc<Activity>,
    listener: Option<Listener>,
    router: Option<Router>,
    /// How many of the child's log messages reach the hub's log.
    log_budget: Mutex<LogBudget>,
    /// Where an elicitation no client can take waits for a person.
    held: Arc<Elicitations>,
}

impl ChildPeer {
    pub fn new(
        cfg: &ServerConfig,
        secrets: Arc<Secrets>,
        activity: Arc<Activity>,
        listener: Option<Listener>,
        router: Option<Router>,
        sampler: Option<Sampler>,
        held: Arc<Elicitations>,
    ) -> ChildPeer {
        ChildPeer {
            roots: cfg.roots.clone(),
            sampling: cfg.sampling,
            sampling_model: cfg.sampling_model.clone(),
            elicitation: cfg.elicitation,
            sampler,
            secrets,
            activity,
            listener,
            router,
            log_budget: Mutex::new(LogBudget::for_child()),
            held,
        }
    }

    /// An elicitation no client can take, held for a person (the dashboard, `POST
    /// /elicitations/{id}`); false when it cannot wait (the bound, or no wait set), and then the
    /// hub declines it at once.
    fn hold_for_a_person(&self, server: &str, later: &Later<'_>) -> bool {
        let asked = later.forward.pointer("/params/message").and_then(Value::as_str).unwrap_or("");
        match self.held.hold(server, later, Instant::now()) {
            Ok(kept) => {
                let whose =
                    if kept.of_request { "its request's deadline" } else { "AGENTHUB_ELICITATION_WAIT_S" };
                let line = format!(
                    "waiting for a person: \"{}\" (elicitation {}, {} s left by {whose}; {})",
                    for_log(asked, 200),
                    kept.id,
                    kept.waits.as_secs(),
                    for_log(later.why, 200)
                );
                log::info!("server {server}: elicitation {line}");
                self.activity.record("elicitation", Some(server), line);
                true
            }
            Err(why) => {
                log::info!(
                    "server {server}: elicitation \"{}\" not held for a person: {why}",
                    for_log(asked, 200)
                );
                false
            }
        }
    }
}

impl ChildPeer {
    /// Sampling no client answers (the local model took it otherwise): an error that says why.
    fn sample_without_client(&self, server: &str, why: &str) -> Result<Value, RpcError> {
        let policy = match self.sampling {
            Sampling::Deny => {
                return Err(RpcError::new(
                    jsonrpc::METHOD_NOT_FOUND,
                    format!(
                        "sampling/createMessage from {server} is refused: its configuration says \"sampling\": \"deny\""
                    ),
                ));
            }
            Sampling::Client => {
                "its configuration relays sampling to clients only (\"sampling\": \"client\")"
            }
            Sampling::Local | Sampling::ClientThenLocal => "no local model can take it",
        };
        Err(RpcError::new(
            jsonrpc::METHOD_NOT_FOUND,
            format!("sampling/createMessage from {server} was not answered: {why}, and {policy}"),
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
        log::debug!("server {server}: {method} answered by the hub: {}", for_log(why, 300));
        match method {
            "roots/list" => Ok(json!({
                "roots": self.roots.iter().map(|uri| json!({"uri": uri})).collect::<Vec<_>>()
            })),
            "elicitation/create" => {
                // Declined on the user's behalf: never silently (what was asked, and why).
                let asked = msg.pointer("/params/message").and_then(Value::as_str).unwrap_or("");
                let line = format!("declined for you: \"{}\" ({})", for_log(asked, 200), for_log(why, 200));
                log::info!("server {server}: elicitation {line}");
                self.activity.record("elicitation", Some(server), line);
                Ok(json!({"action": "decline"}))
            }
            "sampling/createMessage" => self.sample_without_client(server, why),
            m => Err(RpcError::new(jsonrpc::METHOD_NOT_FOUND, format!("method not found: {m}"))),
        }
    }

    fn offer(&self, server: &str, forward: &Value) -> bool {
        self.router.as_ref().is_some_and(|r| r(server, forward))
    }

    fn answers_first(&self, _server: &str, msg: &Value) -> bool {
        match jsonrpc::method(msg) {
            "sampling/createMessage" => matches!(self.sampling, Sampling::Local | Sampling::Deny),
            "elicitation/create" => self.elicitation == Elicitation::Decline,
            _ => false,
        }
    }

    fn answer_later(&self, server: &str, later: Later<'_>) -> bool {
        let local = matches!(self.sampling, Sampling::Local | Sampling::ClientThenLocal);
        match (&self.sampler, jsonrpc::method(later.forward)) {
            (Some(sample), "sampling/createMessage") if local => {
                sample(server, later.forward, self.sampling_model.as_deref(), later.why)
            }
            (_, "elicitation/create") if self.elicitation == Elicitation::Client => {
                self.hold_for_a_person(server, &later)
            }
            _ => false,
        }
    }

    fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.secrets.redact(text)
    }

    fn has_roots(&self) -> bool {
        !self.roots.is_empty()
    }

    fn samples_locally(&self) -> bool {
        self.sampler.is_some() && matches!(self.sampling, Sampling::Local | Sampling::ClientThenLocal)
    }

    fn notification(&self, server: &str, msg: &Value) {
        let method = jsonrpc::method(msg);
        match method {
            "notifications/message" => {
                let p = &msg["params"];
                let text = match &p["data"] {
                    Value::String(s) => Cow::Borrowed(s.as_str()),
                    other => Cow::Owned(other.to_string()),
                };
                // Redacted whole, then cut: a cut could split a secret and leave its head.
                let text = self.secrets.redact(&text).into_owned();
                let level = known_level(p.get("level"));
                let hub_level = log_level(level);
                if log::log_enabled!(hub_level) {
                    if let Some(suppressed) = self.log_budget.lock().allow(Instant::now()) {
                        if suppressed > 0 {
                            log::warn!("[{server}] {suppressed} log messages suppressed (too many)");
                        }
                        log::log!(hub_level, "[{server}] {level}: {}", for_log(&text, LOG_TEXT_BYTES));
                    }
                }
                self.activity.record_log(level, server, text);
            }
            "notifications/cancelled" => {
                log::debug!("[{server}] {method}");
                let relay_id = msg.pointer("/params/requestId").and_then(Value::as_str).unwrap_or("");
                if let Some(asked) = self.held.withdrawn(server, relay_id) {
                    let line = format!("withdrawn by the server, unanswered: \"{}\"", for_log(&asked, 200));
                    log::info!("server {server}: elicitation {line}");
                    self.activity.record("elicitation", Some(server), line);
                }
            }
            "notifications/progress" => log::debug!("[{server}] {method}"),
            _ => self.activity.record("notification", Some(server), self.secrets.redact(method).into_owned()),
        }
        if let Some(l) = &self.listener {
            l(server, msg);
        }
    }
}

/// A child's log level as one of MCP's names (RFC 5424's), `info` when it gives none,
/// `UNKNOWN_LEVEL` for anything else.
fn known_level(level: Option<&Value>) -> &'static str {
    const LEVELS: [&str; 8] =
        ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];
    match level {
        None => "info",
        Some(l) => LEVELS.into_iter().find(|known| l.as_str() == Some(known)).unwrap_or(UNKNOWN_LEVEL),
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

    #[test]
    fn only_mcps_log_levels_are_taken() {
        use serde_json::json;
        fn check(level: Option<serde_json::Value>, known: &str) {
            assert_eq!(super::known_level(level.as_ref()), known, "{level:?}");
        }
        check(Some(json!("warning")), "warning");
        check(Some(json!("emergency")), "emergency");
        check(None, "info");
        check(Some(json!("x".repeat(1 << 20))), super::UNKNOWN_LEVEL);
        check(Some(json!("info\nERROR forged")), super::UNKNOWN_LEVEL);
        check(Some(json!(3)), super::UNKNOWN_LEVEL);
    }
}
