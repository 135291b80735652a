//! One request to one server, whatever carries it. A `Call` owns the request from the moment it
//! is sent to its outcome: it reads what the server sends for it (`Call::next`, or
//! `Call::then`, a continuation run by the thread that brings the first event), keeps the
//! server's answer apart from the hub's failure to get one (`Outcome`), runs the input rounds of
//! a 2026-07-28 server, and cleans up on drop (breaker, `on_end`, the server told to stop).
//!
//! What carries the request is a `Transport` (a child's pipes, an HTTP server): this module
//! knows none of them, nor the server table above; `transport` implements the trait, `servers`
//! opens calls, the gateway and the REST route relay them. `memory` is an in-memory transport
//! for the tests here.

mod call;
mod caller;
mod inbox;
#[cfg(test)]
mod memory;
pub mod modern;
mod relay;
mod rounds;
#[cfg(test)]
mod tests;
mod then;
mod timer;
mod transport;

use serde_json::Value;

pub use call::{Call, InFlight, LastCall, Lease};
pub use caller::{Caller, Can, RELATED_TASK, capability, is_for_a_client};
pub use inbox::Inbox;
#[cfg(test)]
pub use inbox::{COALESCE_AFTER, UNREAD_BYTES};
pub use relay::{Park, Relay, Relayed, StreamBody, relay, write_event};
#[cfg(test)]
pub use then::Wake;
pub use then::while_caller_watched;
pub use transport::{Flight, Parked, Transport, Woken};

use crate::jsonrpc::{self, RpcError};

/// Protocol version the hub asks servers for, and the ones it accepts back (from servers and
/// from its own clients).
pub const PROTOCOL_VERSION: &str = "2025-11-25";
pub const SUPPORTED_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// What a caller sends.
pub enum Request {
    /// A request the hub makes itself: a fresh id, no progress, no server requests for it.
    Own { method: String, params: Option<Value> },
    /// A client's request relayed whole: its id and progress token are swapped for the hub's on
    /// the way in and put back on the way out; the server's requests for its client (`Caller`
    /// says which it can answer) come back as messages.
    Relay(Value, Caller),
}

impl Request {
    pub fn own(method: &str, params: Option<Value>) -> Request {
        Request::Own { method: method.to_string(), params }
    }

    /// The method and, for `tools/call`, the tool: a call's metrics labels.
    pub fn method_and_tool(&self) -> (String, String) {
        let (method, params) = match self {
            Request::Own { method, params } => (method.as_str(), params.as_ref()),
            Request::Relay(msg, _) => (jsonrpc::method(msg), msg.get("params")),
        };
        let tool = params.and_then(|p| p.get("name")).and_then(Value::as_str).unwrap_or("");
        (method.to_string(), tool.to_string())
    }

    /// The method and params as sent (what a modern server's request is sent again with).
    pub fn method_and_params(&self) -> (String, Option<Value>) {
        match self {
            Request::Own { method, params } => (method.clone(), params.clone()),
            Request::Relay(msg, _) => (jsonrpc::method(msg).to_string(), msg.get("params").cloned()),
        }
    }

    /// The whole message (the hub's own under id 0, which the carrier replaces).
    pub fn message(&self) -> Value {
        match self {
            Request::Own { method, params } => jsonrpc::request(0, method, params.clone()),
            Request::Relay(msg, _) => msg.clone(),
        }
    }

    /// The caller's client, for a relayed request.
    pub fn caller(&self) -> Option<&Caller> {
        match self {
            Request::Own { .. } => None,
            Request::Relay(_, caller) => Some(caller),
        }
    }
}

/// What reaches a call from its server, before (and as) the answer.
#[derive(Debug)]
pub enum Event {
    /// A message for this call's caller: progress on its request (the caller's token restored),
    /// or a request the server sends its client (sampling, elicitation) under a relay id
    /// `s:<server>:<n>`; its answer goes back through `Transport::answer_child`.
    Message(Value),
    /// The final answer.
    Response(Value),
    /// The answer to one of a modern server's `inputRequests` (by its key) for this request:
    /// the client's result, or why there is none.
    Input(String, Result<Value, RpcError>),
    /// The caller's client cancelled the request (`notifications/cancelled`): no answer will
    /// be waited for.
    Cancelled,
}

/// What waiting for a request's next event found.
#[derive(Debug)]
pub enum Next {
    Event(Event),
    /// No answer will come (the server died, its answer could not be read): why.
    Gone(RpcError),
    /// Nothing came in time.
    TimedOut,
}

/// What `Call::next` found.
#[derive(Debug)]
pub enum Step {
    /// A message for the caller before the outcome: progress (the caller's token restored), a
    /// log line, or a request of the server for the client (sampling, elicitation) under a
    /// relay id.
    Message(Value),
    /// The end: the result, or the error from the server, the deadline or the server's death.
    Done(Result<Value, RpcError>),
}

/// What a caller whose client cancelled its request is answered (its client no longer waits).
pub fn cancelled() -> RpcError {
    RpcError::new(jsonrpc::REQUEST_CANCELLED, "the request was cancelled by the client")
}
