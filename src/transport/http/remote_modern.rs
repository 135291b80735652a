//! A remote server of revision 2026-07-28 over Streamable HTTP: probed with `server/discover`
//! (a POST with no session, naming its method and the revision in headers) before any
//! `initialize`; when it answers, every later POST is stateless (no session id), names its
//! method (`Mcp-Method`) and target (`Mcp-Name`), and carries the `_meta` envelope. Its input
//! requests (`input_required`) go through the same routing as a stdio child's
//! (`transport::inputs`), their answers to the waiting call's channel.

use std::time::Duration;

use serde_json::{Map, Value};

use super::answers::Ids;
use super::upstream::{Desk, Upstream, Wire};
use crate::exchange::modern::{self, MODERN_VERSION};
use crate::exchange::{Can, Event};
use crate::jsonrpc::{self, Kind, RpcError};
use crate::transport::Later;
use crate::transport::inputs::{self, InputDesk, MAX_WAITING};

impl Upstream {
    /// Asks a Streamable HTTP server `server/discover`: its handshake (shaped as an
    /// `initialize` result) when it speaks 2026-07-28 only, and from then on the server is
    /// spoken to in that era; `None` for anything else (the caller initializes it).
    pub fn discover(&self, timeout: Duration) -> Option<Value> {
        let Wire::Streamable(endpoint) = &self.wire else { return None };
        endpoint.forget_session();
        endpoint.set_version(MODERN_VERSION);
        endpoint.name_methods(true);
        let deadline = std::time::Instant::now() + timeout;
        let mut found = self.ask_discover(endpoint, timeout);
        // A server that refuses the version it then lists as supported (-32022) is asked
        // again, once, as clients retry with a version the server names.
        if found.as_ref().is_some_and(offers_modern_after_refusal) {
            found =
                self.ask_discover(endpoint, deadline.saturating_duration_since(std::time::Instant::now()));
        }
        // A server that speaks the initialize era too is spoken to in it, as over stdio: what
        // the hub relays there (subscriptions, the server's requests, its stream) is fuller.
        let handshake = found
            .and_then(|r| jsonrpc::outcome(&r).ok())
            .filter(|result| !modern::speaks_legacy(result))
            .and_then(|result| modern::handshake(&result, self.server()));
        match &handshake {
            Some(_) => self.modern.store(true, std::sync::atomic::Ordering::SeqCst),
            None => {
                endpoint.forget_session();
                endpoint.name_methods(false);
            }
        }
        handshake
    }

    /// One `server/discover` POST: the response, if one came.
    fn ask_discover(&self, endpoint: &super::endpoint::Endpoint, timeout: Duration) -> Option<Value> {
        let request = jsonrpc::request(0, "server/discover", Some(modern::discover_params()));
        let (ids, request) = Ids::outgoing(self.fresh_id(), &request);
        endpoint.post(&request, Some(timeout)).ok().and_then(|answer| {
            let mut reply = self.reply(ids, answer);
            while let Some(Ok(m)) = reply.next_message() {
                if jsonrpc::kind(&m) == Kind::Response {
                    return Some(m);
                }
            }
            None
        })
    }

    /// A request as a modern server gets it: the envelope in its params, the capabilities
    /// those of the caller's client (`None`: the hub's own request) and the local model's.
    pub(crate) fn with_envelope(&self, mut msg: Value, can: Option<Can>) -> Value {
        let local = self.peer.as_ref().is_some_and(|p| p.samples_locally());
        let roots = self.peer.as_ref().is_some_and(|p| p.has_roots());
        let caps = match can {
            Some(can) => modern::capabilities(can, local, roots),
            None => serde_json::json!({}),
        };
        let params = msg.get_mut("params").map(Value::take);
        msg["params"] = modern::with_envelope(params, caps);
        if let Some(level) = self.log_level.lock().clone() {
            msg["params"]["_meta"][modern::META_LOG_LEVEL] = serde_json::json!(level);
        }
        msg
    }

    /// Has a modern server's `inputRequests` answered, into `desk`.
    pub(crate) fn ask_inputs(&self, desk: &Desk, can: Option<Can>, requests: &Map<String, Value>) {
        let Some(peer) = self.peer.clone() else {
            for key in requests.keys() {
                let why = format!("{} asked for input and nobody can answer it", self.name);
                let _ =
                    desk.send(Event::Input(key.clone(), Err(RpcError::new(jsonrpc::INTERNAL_ERROR, why))));
            }
            return;
        };
        inputs::ask_inputs(&RemoteDesk { upstream: self, desk }, peer.as_ref(), can, requests);
    }

    /// A client's (or the local model's) answer to an input request relayed under `relay_id`;
    /// false when none waits under it.
    pub fn answer_input(&self, relay_id: &str, answer: &Value) -> bool {
        let Some((desk, key)) = self.inputs.lock().remove(relay_id) else { return false };
        let _ = desk.send(Event::Input(key, inputs::outcome_of(answer)));
        true
    }

    /// An input request relayed to a caller that cannot take it (its answer is no stream):
    /// answered as a client without the capability would.
    pub(crate) fn refuse_input(&self, msg: &Value) {
        let (Some(peer), Some(id)) = (&self.peer, msg.get("id").and_then(Value::as_str)) else { return };
        if !self.inputs.lock().contains_key(id) {
            return;
        }
        let why = "the client's request that it belongs to does not take a stream";
        if peer.answer_later(self.server(), Later { forward: msg, why, call: None }) {
            return;
        }
        let answer = match peer.unrouted(self.server(), msg, why) {
            Ok(r) => serde_json::json!({"result": r}),
            Err(e) => serde_json::json!({"error": e.to_value()}),
        };
        self.answer_input(id, &answer);
    }

    /// Forgets the input requests still waiting for `desk` (its call ended).
    pub(crate) fn forget_inputs(&self, desk: &Desk) {
        self.inputs.lock().retain(|_, (d, _)| !d.same_channel(desk));
    }
}

struct RemoteDesk<'a> {
    upstream: &'a Upstream,
    desk: &'a Desk,
}

impl InputDesk for RemoteDesk<'_> {
    fn server(&self) -> &str {
        self.upstream.server()
    }

    fn relay_id(&self) -> String {
        let n = self.upstream.fresh_id();
        format!("s:{}:r{n}", self.upstream.server())
    }

    fn keep(&self, relay_id: &str, key: &str) -> bool {
        let mut inputs = self.upstream.inputs.lock();
        if inputs.len() >= MAX_WAITING {
            return false;
        }
        inputs.insert(relay_id.to_string(), (self.desk.clone(), key.to_string()));
        true
    }

    fn drop_kept(&self, relay_id: &str) {
        self.upstream.inputs.lock().remove(relay_id);
    }

    fn push(&self, event: Event) {
        let _ = self.desk.send(event);
    }
}

/// A `server/discover` refused as an unsupported version (-32022) by a server whose `supported`
/// list names the version the hub asked for.
fn offers_modern_after_refusal(response: &Value) -> bool {
    let error = response.get("error");
    let code = error.and_then(|e| e.get("code")).and_then(Value::as_i64);
    let supported = error.and_then(|e| e.pointer("/data/supported")).and_then(Value::as_array);
    code == Some(-32022) && supported.is_some_and(|v| v.iter().any(|v| v.as_str() == Some(MODERN_VERSION)))
}

impl Upstream {
    /// The `Mcp-Param-*` headers of a `tools/call` (SEP-2243); none for anything else.
    pub(super) fn param_headers(&self, msg: &Value) -> Vec<(String, String)> {
        if jsonrpc::method(msg) != "tools/call" {
            return Vec::new();
        }
        self.declared.lock().headers_for(msg).unwrap_or_default()
    }

    /// A `tools/list` response: the tools' header declarations kept, the invalid ones taken out.
    pub(super) fn learn_tools(&self, response: &mut Value) {
        let Some(result) = response.get_mut("result") else { return };
        let refused = self.declared.lock().learn(result);
        for (tool, why) in refused {
            log::warn!("{}: tool {tool} left out: {why}", self.name);
        }
    }

    /// A `tools/call` of a tool refused for its header declarations, answered here as an error.
    pub(super) fn refused_here(&self, request: &Value) -> Option<super::upstream::Pieces> {
        if jsonrpc::method(request) != "tools/call" {
            return None;
        }
        let why = self.declared.lock().headers_for(request).err()?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let error = RpcError::new(jsonrpc::INVALID_PARAMS, why);
        let answer = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": error.to_value()});
        let _ = tx.send(super::answers::Piece { message: Ok(answer), last: true });
        Some(super::upstream::Pieces { rx, _ticket: None })
    }
}
