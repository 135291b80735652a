//! One request's answer from a remote server as the hub reads it: the ids swapped on the way
//! out and back (`Ids`), the messages of a Streamable HTTP answer (`Reply`), and what
//! `Upstream::send` hands its call one at a time (`Piece`).

use serde_json::Value;

use super::endpoint::{Body, unreachable};
use crate::jsonrpc::{self, RpcError};

/// One message of an answer read by `Upstream::send`; `last` after the response or a failure.
pub struct Piece {
    pub message: Result<Value, RpcError>,
    pub last: bool,
}

impl Piece {
    /// What a call whose client cancelled it receives in place of its answer.
    pub fn cancelled() -> Piece {
        Piece { message: Err(crate::exchange::cancelled()), last: true }
    }
}

/// The ids of one relayed request: the upstream sees the hub's id, and the hub's id as its
/// progress token when the client sent one; what comes back for it gets the client's back.
pub struct Ids {
    pub hub: Value,
    client: Value,
    token: Option<Value>,
}

impl Ids {
    /// `request` as the upstream gets it, under hub id `hub`, and the ids to put back.
    pub fn outgoing(hub: Value, request: &Value) -> (Ids, Value) {
        let mut msg = request.clone();
        let client = msg.get("id").cloned().unwrap_or(Value::Null);
        msg["id"] = hub.clone();
        let token = msg.pointer_mut("/params/_meta/progressToken").map(|t| std::mem::replace(t, hub.clone()));
        (Ids { hub, client, token }, msg)
    }

    /// A message the upstream sent for this request, with the client's ids back; true when it
    /// is the response.
    pub fn incoming(&self, mut msg: Value) -> (Value, bool) {
        if jsonrpc::kind(&msg) == jsonrpc::Kind::Response && msg.get("id") == Some(&self.hub) {
            msg["id"] = self.client.clone();
            return (msg, true);
        }
        if jsonrpc::method(&msg) == "notifications/progress" {
            if let (Some(token), Some(t)) = (&self.token, msg.pointer_mut("/params/progressToken")) {
                if *t == self.hub {
                    *t = token.clone();
                }
            }
        }
        (msg, false)
    }
}

/// One request's answer from a Streamable HTTP upstream, message by message: notifications and
/// requests the upstream sends first, then the response (with the client's ids put back).
pub(super) struct Reply {
    pub(super) name: String,
    pub(super) body: Body,
    pub(super) ids: Ids,
    pub(super) done: bool,
}

/// Where an event stream that ended before its response may be resumed: the last event id it
/// gave, and how long the server asked to wait first.
pub(super) struct Resume {
    pub last_id: String,
    pub retry: Option<std::time::Duration>,
}

impl Reply {
    pub(super) fn next_message(&mut self) -> Option<Result<Value, RpcError>> {
        if self.done {
            return None;
        }
        let msg = match self.body.next_message() {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                self.done = true;
                return Some(Err(unreachable(&self.name, e)));
            }
            None => {
                self.done = true;
                return match self.body {
                    Body::Empty => None,
                    _ => Some(Err(unreachable(&self.name, "the answer ended without a response"))),
                };
            }
        };
        let (msg, response) = self.ids.incoming(msg);
        self.done = response;
        Some(Ok(msg))
    }

    /// After the answer's event stream ended without the response: where it may be resumed
    /// (it gave an event id), if anywhere.
    pub(super) fn resume(&self) -> Option<Resume> {
        match &self.body {
            Body::Events(events) => {
                Some(Resume { last_id: events.last_id()?.to_string(), retry: events.retry() })
            }
            _ => None,
        }
    }

    /// Reads on from `body` (a resumed stream) as from the answer's own.
    pub(super) fn resumed(&mut self, body: Body) {
        self.body = body;
        self.done = false;
    }

    /// Whether the last message returned was the response.
    pub(super) fn is_done(&self) -> bool {
        self.done
    }
}
