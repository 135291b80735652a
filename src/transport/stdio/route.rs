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
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::slot::Slot;
use super::{Shared, Waiting};
use crate::exchange::{Event, RELATED_TASK, capability};
use crate::jsonrpc::RpcError;
use crate::transport::Peer;
use crate::transport::inputs::{InputDesk, MAX_WAITING};

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
        if waiting.len() >= MAX_WAITING {
            let why = format!("{why}; {MAX_WAITING} requests already wait for clients");
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
        if waiting.len() >= MAX_WAITING {
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
