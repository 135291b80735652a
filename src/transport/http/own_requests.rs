//! A Streamable HTTP server's own requests (`sampling/createMessage`, `elicitation/create`,
//! `roots/list`, `ping`) that arrive on a POST's event stream, in the initialize era: relayed
//! to the calling client when it can answer, else answered by the hub (the local model, a
//! person, the configured roots, a decline), as a stdio child's are; the answer is POSTed back
//! in the session. The call's
//! answer waits for it anyway: the server sends its response only after it has its answer.

use std::time::{Duration, Instant};

use serde_json::Value;

use crossbeam_channel::Sender;
use serde_json::Map;

use super::answers::Piece;
use super::endpoint::Endpoint;
use super::upstream::Upstream;
use crate::exchange::{Can, Event};
use crate::jsonrpc::{self, Kind, RpcError};

/// How long the answer's POST may take.
const ANSWER_POST: Duration = Duration::from_secs(10);
/// The longest wait for an answer the hub gives later (the local model, a person).
const LATER: Duration = Duration::from_secs(300);

impl Upstream {
    /// Answers `msg` when it is the server's own request (and the hub has a peer); false for
    /// anything else, which goes to the call as it is. The request goes to the calling client
    /// when it can answer it (on the call's stream, under a relay id: `tx`), else to the hub's
    /// fallbacks, as a modern server's input requests do (`inputs::ask_inputs`).
    pub(super) fn answer_own_request(
        &self,
        endpoint: &Endpoint,
        msg: &Value,
        can: Option<Can>,
        tx: &Sender<Piece>,
    ) -> bool {
        if self.peer.is_none() || self.is_modern() || jsonrpc::kind(msg) != Kind::Request {
            return false;
        }
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        if jsonrpc::method(msg) == "ping" {
            let _ = endpoint.post(&jsonrpc::response(id, Ok(serde_json::json!({}))), Some(ANSWER_POST));
            return true;
        }
        let (desk, answers) = crossbeam_channel::unbounded();
        let mut one = Map::new();
        one.insert(String::new(), msg.clone());
        self.ask_inputs(&desk, can, &one);
        let deadline = Instant::now() + LATER;
        let outcome = loop {
            match answers.recv_deadline(deadline) {
                Ok(Event::Message(m)) => {
                    if tx.send(Piece { message: Ok(m), last: false }).is_err() {
                        break Err(RpcError::new(jsonrpc::REQUEST_CANCELLED, "the call ended"));
                    }
                }
                Ok(Event::Input(_, outcome)) => break outcome,
                Ok(_) => {}
                Err(_) => break Err(RpcError::new(jsonrpc::REQUEST_TIMEOUT, "no answer came in time")),
            }
        };
        self.forget_inputs(&desk);
        let answer = jsonrpc::response(id, outcome);
        if let Err(e) = endpoint.post(&answer, Some(ANSWER_POST)) {
            log::debug!("{}: answer to {} not delivered: {}", self.name, jsonrpc::method(msg), e.message);
        }
        true
    }
}
