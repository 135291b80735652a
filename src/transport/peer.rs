//! What a carrier asks of the hub about the messages its server starts: its requests (`ping`,
//! `roots/list`, ...) and notifications. The server table implements it (`servers::peer`).

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;

use crate::exchange::Inbox;
use crate::jsonrpc::RpcError;

/// A child's request for a client that the hub may take to answer later (`Peer::answer_later`).
pub struct Later<'a> {
    /// The request under its relay id (`s:<server>:<n>`), which its answer names.
    pub forward: &'a Value,
    /// Why no client takes it.
    pub why: &'a str,
    /// The inbox of the call it belongs to, when the hub can tell: that call's deadline is the
    /// request's, and its end the request's end.
    pub call: Option<&'a Arc<Inbox>>,
}

/// What the hub does with messages the child starts: its requests (`ping`, `roots/list`, ...)
/// and notifications.
pub trait Peer: Send + Sync {
    /// The answer to a child's request: a result or an error.
    fn request(&self, server: &str, msg: &Value) -> Result<Value, RpcError>;
    /// The answer to a child's request for a client (`roots/list`, sampling, elicitation) that
    /// no caller in flight can take, `why` saying so: what a client without it would answer.
    fn unrouted(&self, server: &str, msg: &Value, why: &str) -> Result<Value, RpcError> {
        let _ = why;
        self.request(server, msg)
    }
    /// Offers such a request, under its relay id, to a client outside any call (a session's
    /// GET stream); true when one took it (its answer comes through `Transport::answer_child`).
    fn offer(&self, server: &str, forward: &Value) -> bool {
        let _ = (server, forward);
        false
    }
    /// Whether the hub answers such a request itself before any client is asked (the
    /// server's policy: sampling by the local model or refused, elicitation declined).
    fn answers_first(&self, server: &str, msg: &Value) -> bool {
        let _ = (server, msg);
        false
    }
    /// Takes such a request, under its relay id, to answer it later through
    /// `Transport::answer_child` (sampling by the local model, elicitation by a person on the
    /// dashboard); true when it took it.
    fn answer_later(&self, server: &str, later: Later<'_>) -> bool {
        let _ = (server, later);
        false
    }
    /// Whether the hub's local model answers this server's sampling when no client does (what
    /// a modern server is told the hub can answer).
    fn samples_locally(&self) -> bool {
        false
    }
    /// Whether the hub has roots of its own to answer this server's `roots/list` with (its
    /// configured `roots`) when no client does.
    fn has_roots(&self) -> bool {
        false
    }
    fn notification(&self, server: &str, msg: &Value);
    /// The child's text (stderr, a line it should not have written) as the hub may keep and
    /// log it: the secrets it was started with taken out.
    fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        Cow::Borrowed(text)
    }
}
