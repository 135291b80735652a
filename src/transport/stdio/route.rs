//! Which caller a child's own request (`roots/list`, `sampling/createMessage`,
//! `elicitation/create`) belongs to. It goes to a client only when it is provably that
//! client's: the caller of the task the request names
//! (`_meta["io.modelcontextprotocol/related-task"].taskId`); else the caller of the one request
//! in flight on the child (the hub's health pings aside); else, with several relayed requests in
//! flight, the one whose own argument strings (ones no other sent) the request quotes, when
//! exactly one's are. Over stdio the SDKs name no originating request (the TypeScript SDK's
//! `relatedRequestId` and the Python SDK's `related_request_id` only steer their HTTP
//! transports), and a guess could show one client another's prompt: with a REST or hub request
//! among several in flight (their arguments are not kept) nobody is picked. Otherwise nobody,
//! with the reason, and the hub answers as a client without the capability would (`peer`: roots
//! the configured ones, elicitation declined, sampling by the local model when the server's
//! policy allows, else an error saying why). A REST or hub request is never the target.
//! `for_a_client` carries the choice out for the stdout reader.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::slot::Slot;
use super::stdin::Stdin;
use super::{Shared, Waiting};
use crate::exchange::{Event, Inbox, RELATED_TASK, capability};
use crate::jsonrpc::{self, RpcError};
use crate::text::for_log;
use crate::transport::inputs::{InputDesk, MAX_WAITING};
use crate::transport::{Later, Peer};

/// The slot a child's request goes to (with its hub id), or why there is none.
pub(super) fn pick(
    server: &str,
    pending: &HashMap<u64, Arc<Slot>>,
    msg: &Value,
) -> Result<(u64, Arc<Slot>), String> {
    let what = capability(msg);
    let task = msg.pointer(&format!("/params/_meta/{}/taskId", RELATED_TASK.replace('/', "~1")));
    if let Some(task) = task.and_then(Value::as_str) {
        let mut of_task = pending
            .iter()
            .filter(|(_, s)| s.origin.as_ref().is_some_and(|o| o.task.as_deref() == Some(task)));
        if let (Some((id, one)), None) = (of_task.next(), of_task.next()) {
            return match one.origin.as_ref().is_some_and(|o| o.caller.can.answers(msg)) {
                true => Ok((*id, one.clone())),
                false => Err(format!("the client of task {task} on {server} did not declare {what}")),
            };
        }
    }
    let busy: Vec<(&u64, &Arc<Slot>)> = pending.iter().filter(|(_, s)| !s.ping).collect();
    let (id, one) = match busy.as_slice() {
        [] => return Err(format!("no client request is in flight on {server}")),
        [(id, one)] => (*id, *one),
        several => quoted(server, several, msg)?,
    };
    match &one.origin {
        None => Err(format!("only a REST or hub request is in flight on {server}, and it cannot answer")),
        Some(o) if !o.caller.can.answers(msg) => {
            Err(format!("no client with a request in flight on {server} declared {what}"))
        }
        Some(_) => Ok((*id, one.clone())),
    }
}

/// The call a child's request belongs to whoever its caller is (a REST or hub request too), for
/// its deadline: the task's when it names one, else the one request in flight. `None` when the
/// hub cannot tell.
fn belongs_to(pending: &HashMap<u64, Arc<Slot>>, msg: &Value) -> Option<Arc<Inbox>> {
    let task = msg.pointer(&format!("/params/_meta/{}/taskId", RELATED_TASK.replace('/', "~1")));
    let mut of_task = pending.values().filter(|s| {
        let named = task.and_then(Value::as_str);
        named.is_some() && s.origin.as_ref().is_some_and(|o| o.task.as_deref() == named)
    });
    if let (Some(one), None) = (of_task.next(), of_task.next()) {
        return Some(one.inbox.clone());
    }
    let mut busy = pending.values().filter(|s| !s.ping);
    match (busy.next(), busy.next()) {
        (Some(one), None) => Some(one.inbox.clone()),
        _ => None,
    }
}

/// Among several requests in flight, the one whose own argument strings (ones no other sent)
/// the child's request quotes, when exactly one's are. Only relayed requests carry their
/// arguments: with a REST or hub request among them nobody can tell, so nobody is picked.
fn quoted<'a>(
    server: &str,
    several: &[(&'a u64, &'a Arc<Slot>)],
    msg: &Value,
) -> Result<(&'a u64, &'a Arc<Slot>), String> {
    let n = several.len();
    let unnamed = || format!("{n} requests are in flight on {server}, and the request names none of them");
    let mut hints = Vec::with_capacity(n);
    for (_, s) in several {
        match &s.origin {
            Some(o) => hints.push(o.hints.as_slice()),
            None => return Err(unnamed()),
        }
    }
    let text = msg.get("params").map(Value::to_string).unwrap_or_default();
    let theirs = |i: usize, h: &String| hints.iter().enumerate().all(|(j, o)| j == i || !o.contains(h));
    let mut quoting = (0..n).filter(|&i| hints[i].iter().any(|h| text.contains(h.as_str()) && theirs(i, h)));
    match (quoting.next(), quoting.next()) {
        (Some(i), None) => Ok(several[i]),
        _ => Err(unnamed()),
    }
}

/// A child's request for a client: to the caller it belongs to (`route`), else offered to a
/// client outside any call, else to the peer to answer later (the local model), else answered
/// by the peer at once; the peer first when the server's policy says so. `None`: someone has
/// it and answers through `Bridge::answer_child`. `bytes`: its line's length.
pub(super) fn for_a_client(
    shared: &Shared,
    outbox: &Stdin,
    peer: &dyn Peer,
    msg: Value,
    bytes: usize,
) -> Option<Result<Value, RpcError>> {
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let first = peer.answers_first(&shared.name, &msg);
    let (picked, call) = match (first, shared.pending.lock().as_ref()) {
        (true, p) => (
            Err(format!("the configuration of {} has the hub answer it", shared.name)),
            p.and_then(|p| belongs_to(p, &msg)),
        ),
        (false, Some(p)) => (pick(&shared.name, p, &msg), belongs_to(p, &msg)),
        (false, None) => (Err(format!("server {} is going away", shared.name)), None),
    };
    let n = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let relay_id = format!("s:{}:{n}", shared.name);
    let mut forward = msg.clone();
    forward["id"] = json!(relay_id);
    {
        let mut waiting = shared.child_requests.lock();
        if waiting.len() >= MAX_WAITING {
            let why = match &picked {
                Ok(_) => format!("{MAX_WAITING} requests of {} already wait for clients", shared.name),
                Err(why) => format!("{why}; {MAX_WAITING} requests already wait for clients"),
            };
            return Some(peer.unrouted(&shared.name, &msg, &why));
        }
        waiting.insert(relay_id.clone(), Waiting::Child(id));
    }
    let why = match picked {
        Ok((hub_id, slot)) => {
            if slot.push_message(forward, bytes) {
                return None;
            }
            // Its call just failed: too much waited unread for its client.
            shared.child_requests.lock().remove(&relay_id);
            shared.give_up(outbox, hub_id);
            let why = format!("the call it belongs to on {} has ended", shared.name);
            return Some(Err(RpcError::new(jsonrpc::SERVER_UNAVAILABLE, why)));
        }
        Err(why) => why,
    };
    log::debug!(
        "{}: {} goes to no client in flight: {}",
        shared.name,
        jsonrpc::method(&msg),
        for_log(&why, 300)
    );
    if !first && peer.offer(&shared.name, &forward) {
        return None;
    }
    if peer.answer_later(&shared.name, Later { forward: &forward, why: &why, call: call.as_ref() }) {
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

    fn call(&self) -> Option<Arc<Inbox>> {
        Some(self.slot.inbox.clone())
    }
}
