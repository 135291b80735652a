//! Which caller a child's own request (`roots/list`, `sampling/createMessage`,
//! `elicitation/create`) belongs to. Over stdio the SDKs name no originating request: the
//! TypeScript SDK's `relatedRequestId` and the Python SDK's `related_request_id` only steer
//! their HTTP transports, and nothing of them reaches the wire. What a message can name is a
//! task (`_meta["io.modelcontextprotocol/related-task"].taskId`). So: the caller of that task's
//! request in flight when it names one; else the one relayed request in flight whose client
//! declared what is asked; else, among several, the one whose own tool arguments (strings no
//! other sent) the child's request quotes, when only one's are. Otherwise nobody, with the
//! reason, and the hub answers as a client without the capability would (`peer`). A REST or
//! hub request is never the target. `for_a_client` carries the choice out for the stdout reader.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use serde_json::json;
use std::sync::atomic::Ordering;

use super::{Event, MAX_CHILD_REQUESTS, Peer, Shared, Slot, Waiting};
use crate::jsonrpc;
use crate::jsonrpc::RpcError;

/// The `_meta` key naming the task a message belongs to.
pub const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";
/// Argument strings shorter than this say too little to tie a child's request to a call.
const MIN_HINT: usize = 4;

/// What a client declared it can do, from its `initialize`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Can {
    pub roots: bool,
    pub sampling: bool,
    pub form: bool,
    pub url: bool,
}

impl Can {
    /// Everything: a relayed request whose client is not known (the bridge's own tests).
    pub const ALL: Can = Can { roots: true, sampling: true, form: true, url: true };

    /// From an `initialize`'s `capabilities`. `elicitation: {}` is form only (2025-06-18).
    pub fn of(capabilities: &Value) -> Can {
        let e = capabilities.get("elicitation");
        let form = e.is_some_and(|e| e.get("form").is_some() || e.get("url").is_none());
        Can {
            roots: capabilities.get("roots").is_some(),
            sampling: capabilities.get("sampling").is_some(),
            form,
            url: e.and_then(|e| e.get("url")).is_some(),
        }
    }

    /// Whether a client can answer this request of a server.
    pub fn answers(&self, msg: &Value) -> bool {
        match needs(msg) {
            Some(Need::Roots) => self.roots,
            Some(Need::Sampling) => self.sampling,
            Some(Need::Form) => self.form,
            Some(Need::Url) => self.url,
            None => false,
        }
    }
}

#[derive(Clone, Copy)]
enum Need {
    Roots,
    Sampling,
    Form,
    Url,
}

fn needs(msg: &Value) -> Option<Need> {
    match jsonrpc::method(msg) {
        "roots/list" => Some(Need::Roots),
        "sampling/createMessage" => Some(Need::Sampling),
        "elicitation/create" if msg.pointer("/params/mode").and_then(Value::as_str) == Some("url") => {
            Some(Need::Url)
        }
        "elicitation/create" => Some(Need::Form),
        _ => None,
    }
}

/// The capability a request needs, as the spec names it (for messages).
pub fn capability(msg: &Value) -> &'static str {
    match needs(msg) {
        Some(Need::Roots) => "roots",
        Some(Need::Sampling) => "sampling",
        Some(Need::Form) => "form elicitation",
        Some(Need::Url) => "url elicitation",
        None => "nothing",
    }
}

/// Whether this child request is one a client may be asked.
pub fn is_for_a_client(msg: &Value) -> bool {
    needs(msg).is_some()
}

/// Who sent a relayed request: its session and what its client can answer.
#[derive(Debug, Clone)]
pub struct Caller {
    pub session: String,
    pub can: Can,
}

/// What a relayed request offers the routing: its caller, the task it concerns, and the
/// strings of its arguments.
pub(super) struct Origin {
    pub caller: Caller,
    task: Option<String>,
    hints: Vec<String>,
}

impl Origin {
    pub fn of(request: &Value, caller: Caller) -> Origin {
        let params = request.get("params");
        let task = params.and_then(|p| p.get("taskId")).and_then(Value::as_str).map(str::to_string);
        let mut hints = Vec::new();
        if let Some(args) = params.and_then(|p| p.get("arguments")) {
            strings(args, &mut hints);
        }
        Origin { caller, task, hints }
    }
}

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.len() >= MIN_HINT => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(m) => m.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// The slot a child's request goes to, or why there is none.
pub(super) fn pick(
    server: &str,
    pending: &HashMap<u64, Arc<Slot>>,
    msg: &Value,
) -> Result<Arc<Slot>, String> {
    let what = capability(msg);
    let relays: Vec<&Arc<Slot>> = pending.values().filter(|s| !s.ping && s.origin.is_some()).collect();
    let origin = |s: &Arc<Slot>| s.origin.as_ref().map(|o| (o.caller.can, o.task.clone()));
    let task = msg.pointer(&format!("/params/_meta/{}/taskId", RELATED_TASK.replace('/', "~1")));
    if let Some(task) = task.and_then(Value::as_str) {
        let of_task: Vec<_> = relays
            .iter()
            .filter(|s| origin(s).is_some_and(|(can, t)| can.answers(msg) && t.as_deref() == Some(task)))
            .collect();
        if let [one] = of_task.as_slice() {
            return Ok((**one).clone());
        }
    }
    if relays.is_empty() {
        return Err(match pending.values().any(|s| !s.ping) {
            true => format!("only REST or hub requests are in flight on {server}, and they cannot answer"),
            false => format!("no client request is in flight on {server}"),
        });
    }
    let able: Vec<&Arc<Slot>> =
        relays.into_iter().filter(|s| origin(s).is_some_and(|(c, _)| c.answers(msg))).collect();
    match able.as_slice() {
        [] => Err(format!("no client with a request in flight on {server} declared {what}")),
        [one] => Ok((*one).clone()),
        several => {
            // Only what one caller alone sent counts: strings all share ("user", a tool's
            // method) say nothing about whose request this is.
            let text = msg.get("params").map(Value::to_string).unwrap_or_default();
            fn hints(s: &Slot) -> &[String] {
                s.origin.as_ref().map(|o| o.hints.as_slice()).unwrap_or_default()
            }
            let quoted: Vec<&&Arc<Slot>> = several
                .iter()
                .filter(|s| {
                    hints(s).iter().any(|h| {
                        text.contains(h.as_str())
                            && several.iter().filter(|o| !Arc::ptr_eq(o, s)).all(|o| !hints(o).contains(h))
                    })
                })
                .collect();
            match quoted.as_slice() {
                [one] => Ok((**one).clone()),
                _ => Err(format!(
                    "{} client requests that could answer are in flight on {server}, and the request names none of them",
                    several.len()
                )),
            }
        }
    }
}

/// A child's request for a client: to the caller it belongs to (`route`), else offered to a
/// client outside any call, else to the peer to answer later (the local model), else answered
/// by the peer at once; the peer first when the server's policy says so. `None`: someone has
/// it and answers through `Bridge::answer_child`.
pub(super) fn for_a_client(shared: &Shared, peer: &dyn Peer, msg: Value) -> Option<Result<Value, RpcError>> {
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let first = peer.answers_first(&shared.name, &msg);
    let picked = match (first, shared.pending.lock().as_ref()) {
        (true, _) => Err(format!("the configuration of {} has the hub answer it", shared.name)),
        (false, Some(p)) => pick(&shared.name, p, &msg),
        (false, None) => Err(format!("server {} is going away", shared.name)),
    };
    let n = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let relay_id = format!("s:{}:{n}", shared.name);
    let mut forward = msg.clone();
    forward["id"] = json!(relay_id);
    let why = match picked {
        Ok(slot) => {
            shared.child_requests.lock().insert(relay_id, Waiting::Child(id));
            slot.push(Event::Message(forward));
            return None;
        }
        Err(why) => why,
    };
    {
        let mut waiting = shared.child_requests.lock();
        if waiting.len() >= MAX_CHILD_REQUESTS {
            let why = format!("{why}; {MAX_CHILD_REQUESTS} requests already wait for clients");
            return Some(peer.unrouted(&shared.name, &msg, &why));
        }
        waiting.insert(relay_id.clone(), Waiting::Child(id));
    }
    if !first && peer.offer(&shared.name, &forward) {
        return None;
    }
    if peer.answer_later(&shared.name, &forward, &why) {
        return None;
    }
    shared.child_requests.lock().remove(&relay_id);
    Some(peer.unrouted(&shared.name, &msg, &why))
}

/// Where a modern server's input requests for one waiting request are kept and answered: a
/// stdio child's slot, or a remote call's channel (`Upstream`).
pub trait InputDesk {
    fn server(&self) -> &str;
    /// A fresh relay id (`s:<server>:<n>`).
    fn relay_id(&self) -> String;
    /// Keeps `relay_id` waiting for the answer to input `key`; false when too many wait.
    fn keep(&self, relay_id: &str, key: &str) -> bool;
    fn drop_kept(&self, relay_id: &str);
    /// An event for the waiting request: a request for its caller, or an input's answer.
    fn push(&self, event: Event);
}

/// A modern server's `inputRequests` for a waiting request whose caller's client can answer
/// `can` (`None`: a REST or hub request): each is what a legacy server's own request would
/// have been, and goes where that would have gone, the caller known: relayed to the caller
/// (under a relay id, as an `Event::Message`) when its client can answer and the server's
/// policy does not have the hub answer first; else to the peer to answer later (the local
/// model), else answered by the peer at once. Every answer lands as an `Event::Input` under
/// its key.
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
            let why = format!("{why}; {MAX_CHILD_REQUESTS} requests already wait for clients");
            desk.push(Event::Input(key.clone(), peer.unrouted(server, &msg, &why)));
            continue;
        }
        if is_for_a_client(&msg) && can.is_some_and(|c| c.answers(&msg)) && !first {
            desk.push(Event::Message(msg));
            continue;
        }
        if peer.answer_later(server, &msg, &why) {
            continue;
        }
        desk.drop_kept(&relay_id);
        desk.push(Event::Input(key.clone(), peer.unrouted(server, &msg, &why)));
    }
}

/// A stdio child's waiting request as an `InputDesk`.
pub(super) struct SlotDesk<'a> {
    pub shared: &'a Shared,
    pub slot: &'a Arc<Slot>,
}

impl InputDesk for SlotDesk<'_> {
    fn server(&self) -> &str {
        &self.shared.name
    }

    fn relay_id(&self) -> String {
        format!("s:{}:{}", self.shared.name, self.shared.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn keep(&self, relay_id: &str, key: &str) -> bool {
        let mut waiting = self.shared.child_requests.lock();
        if waiting.len() >= MAX_CHILD_REQUESTS {
            return false;
        }
        waiting.insert(relay_id.to_string(), Waiting::Input(self.slot.clone(), key.to_string()));
        true
    }

    fn drop_kept(&self, relay_id: &str) {
        self.shared.child_requests.lock().remove(relay_id);
    }

    fn push(&self, event: Event) {
        self.slot.push(event);
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
