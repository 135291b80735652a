//! A modern (2026-07-28) server's input requests (`input_required`), asked within its answer
//! instead of as requests of its own. Each is what a legacy server's own request would have
//! been, and goes where that would have gone, the caller known: to the caller (as an
//! `Event::Message` under a relay id) when its client can answer, else to the hub. Both
//! carriers keep the requests waiting for answers in a place of their own (`InputDesk`).

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Later, Peer};
use crate::exchange::{Can, Event, Inbox, capability, is_for_a_client};
use crate::jsonrpc::{self, RpcError};

/// Most requests of one server waiting for clients' answers at once: past it the hub answers.
pub const MAX_WAITING: usize = 256;

/// Where a modern server's input requests for one waiting request are kept and answered: a
/// stdio child's slot, or a remote call's channel.
pub trait InputDesk {
    fn server(&self) -> &str;
    /// A fresh relay id (`s:<server>:<n>`).
    fn relay_id(&self) -> String;
    /// Keeps `relay_id` waiting for the answer to input `key`; false when too many wait.
    fn keep(&self, relay_id: &str, key: &str) -> bool;
    fn drop_kept(&self, relay_id: &str);
    /// An event for the waiting request: a request for its caller, or an input's answer.
    fn push(&self, event: Event);
    /// The waiting request's inbox, when it has one (a stdio slot's): its call's deadline.
    fn call(&self) -> Option<Arc<Inbox>> {
        None
    }
}

/// A modern server's `inputRequests` for a waiting request whose caller's client can answer
/// `can` (`None`: a REST or hub request): relayed to the caller when its client can answer and
/// the server's policy does not have the hub answer first; else to the peer to answer later
/// (the local model), else answered by the peer at once. Every answer lands as an
/// `Event::Input` under its key.
pub fn ask_inputs(
    desk: &dyn InputDesk,
    peer: &dyn Peer,
    can: Option<Can>,
    requests: &serde_json::Map<String, Value>,
) {
    let server = desk.server();
    for (key, request) in requests {
        let method = request.get("method").and_then(Value::as_str).unwrap_or_default();
        let relay_id = desk.relay_id();
        let mut msg = json!({"jsonrpc": "2.0", "id": relay_id, "method": method});
        if let Some(p) = request.get("params") {
            msg["params"] = p.clone();
        }
        let first = peer.answers_first(server, &msg);
        let why = match (first, can) {
            (true, _) => format!("the configuration of {server} has the hub answer it"),
            (false, None) => "it belongs to a REST or hub request, which cannot answer".to_string(),
            (false, Some(_)) => {
                format!("the client of the request it belongs to did not declare {}", capability(&msg))
            }
        };
        if !desk.keep(&relay_id, key) {
            let why = format!("{why}; {MAX_WAITING} requests already wait for clients");
            desk.push(Event::Input(key.clone(), peer.unrouted(server, &msg, &why)));
            continue;
        }
        if is_for_a_client(&msg) && can.is_some_and(|c| c.answers(&msg)) && !first {
            desk.push(Event::Message(msg));
            continue;
        }
        let call = desk.call();
        if peer.answer_later(server, Later { forward: &msg, why: &why, call: call.as_ref() }) {
            continue;
        }
        desk.drop_kept(&relay_id);
        desk.push(Event::Input(key.clone(), peer.unrouted(server, &msg, &why)));
    }
}

/// A client's answer message (`result` or `error`) as an outcome.
pub fn outcome_of(answer: &Value) -> Result<Value, RpcError> {
    match (answer.get("result"), answer.get("error")) {
        (Some(r), _) => Ok(r.clone()),
        (None, Some(e)) => Err(RpcError::new(
            e.get("code").and_then(Value::as_i64).unwrap_or(jsonrpc::INTERNAL_ERROR),
            e.get("message").and_then(Value::as_str).unwrap_or("the client answered with an error"),
        )),
        (None, None) => {
            Err(RpcError::new(jsonrpc::INVALID_REQUEST, "the client's answer had neither result nor error"))
        }
    }
}
