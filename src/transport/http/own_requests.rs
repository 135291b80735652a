//! A Streamable HTTP server's own requests (`sampling/createMessage`, `elicitation/create`,
//! `roots/list`, `ping`) that arrive on a POST's event stream, in the initialize era: answered
//! by the hub's peer, as a legacy SSE server's are (the local model, the configured roots, an
//! elicitation declined for the user), and the answer POSTed back in the session. The call's
//! answer waits for it anyway: the server sends its response only after it has its answer.

use std::time::Duration;

use serde_json::Value;

use super::endpoint::Endpoint;
use super::upstream::Upstream;
use crate::exchange::Event;
use crate::jsonrpc::{self, Kind, RpcError};
use crate::transport::{Later, Peer};

/// How long the answer's POST may take.
const ANSWER_POST: Duration = Duration::from_secs(10);
/// The longest wait for an answer the hub gives later (the local model, a person).
const LATER: Duration = Duration::from_secs(300);

impl Upstream {
    /// Answers `msg` when it is the server's own request (and the hub has a peer); false for
    /// anything else, which goes to the call as it is.
    pub(super) fn answer_own_request(&self, endpoint: &Endpoint, msg: &Value) -> bool {
        let Some(peer) = self.peer.as_ref() else { return false };
        if self.is_modern() || jsonrpc::kind(msg) != Kind::Request {
            return false;
        }
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let outcome =
            self.answered_later(peer.as_ref(), msg).unwrap_or_else(|| peer.request(self.server(), msg));
        let answer = jsonrpc::response(id, outcome);
        if let Err(e) = endpoint.post(&answer, Some(ANSWER_POST)) {
            log::debug!("{}: answer to {} not delivered: {}", self.name, jsonrpc::method(msg), e.message);
        }
        true
    }

    /// An answer the peer gives later (sampling by the local model, elicitation by a person on
    /// the dashboard), waited for here under a relay id; `None` when the peer does not take it.
    fn answered_later(&self, peer: &dyn Peer, msg: &Value) -> Option<Result<Value, RpcError>> {
        let relay_id = format!("s:{}:r{}", self.server(), self.fresh_u64());
        let mut forward = msg.clone();
        forward["id"] = Value::String(relay_id.clone());
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.inputs.lock().insert(relay_id.clone(), (tx, String::new()));
        let why = "a remote server's request, with no client to ask";
        if !peer.answer_later(self.server(), Later { forward: &forward, why, call: None }) {
            self.inputs.lock().remove(&relay_id);
            return None;
        }
        let got = rx.recv_timeout(LATER);
        self.inputs.lock().remove(&relay_id);
        match got {
            Ok(Event::Input(_, outcome)) => Some(outcome),
            _ => Some(Err(RpcError::new(jsonrpc::REQUEST_TIMEOUT, "no answer came in time"))),
        }
    }
}
