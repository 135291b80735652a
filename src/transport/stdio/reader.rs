//! The `stdout-*` thread: one JSON-RPC message per line from the child, each routed: a response
//! to the slot waiting on its hub id, progress to the caller that asked for it under its own
//! token, a request for a client to the caller it belongs to (`route`), any other request and
//! every other notification to the hub's `Peer`. A line that is not JSON-RPC is logged and
//! skipped. At the end every waiter hears at once.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

use super::lines::{STDOUT_LINE_BYTES, read_line_capped};
use super::stdin::Stdin;
use super::{Shared, Waiting, route};
use crate::exchange::Event;
use crate::jsonrpc::{self, Kind};
use crate::text::{LogBudget, for_log};
use crate::transport::Peer;

/// The child's cancellation of its own request that waits for a client's answer: the wait is
/// forgotten, and the notification names the request by its relay id, the one name the hub's
/// side knows it by (so whoever holds it, a person's dashboard too, lets it go).
fn withdrawn(shared: &Shared, mut msg: Value) -> Value {
    let Some(id) = msg.pointer("/params/requestId").cloned() else { return msg };
    let mut waiting = shared.child_requests.lock();
    let relay_id = waiting.iter().find_map(|(relay, w)| match w {
        Waiting::Child(child) if *child == id => Some(relay.clone()),
        _ => None,
    });
    if let Some(relay_id) = relay_id {
        waiting.remove(&relay_id);
        drop(waiting);
        msg["params"]["requestId"] = json!(relay_id);
    }
    msg
}

pub(super) fn read_loop(
    stdout: impl Read,
    shared: &Shared,
    outbox: &Stdin,
    closed: &AtomicBool,
    peer: &dyn Peer,
) {
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    // The child's bad lines: each logged, redacted and escaped, within a budget.
    let mut budget = LogBudget::for_child();
    let mut skipped = |what: &str, text: &str| {
        if let Some(suppressed) = budget.allow(Instant::now()) {
            if suppressed > 0 {
                log::warn!("{}: {suppressed} more bad stdout lines skipped", shared.name);
            }
            log::warn!("{}: skipping {what}: {}", shared.name, for_log(&peer.redact(text), 200));
        }
    };
    loop {
        line.clear();
        // Bytes, not `read_line`: a line that is not UTF-8 is the child's mistake, to skip like
        // any other bad line, not the end of its output.
        match read_line_capped(&mut reader, &mut line, STDOUT_LINE_BYTES) {
            Ok((0, _)) | Err(_) => break,
            Ok((_, false)) => {}
            Ok((_, true)) => {
                log::error!(
                    "{}: a stdout message over {} MiB; the child is treated as broken",
                    shared.name,
                    STDOUT_LINE_BYTES >> 20
                );
                break;
            }
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            skipped("a stdout line that is not UTF-8", "");
            continue;
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let msg: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                skipped(&format!("a stdout line that is not JSON ({e})"), text);
                continue;
            }
        };
        match jsonrpc::kind(&msg) {
            Kind::Response => {
                let waiter = msg
                    .get("id")
                    .and_then(Value::as_u64)
                    .and_then(|id| shared.pending.lock().as_mut().and_then(|p| p.remove(&id)));
                match waiter {
                    Some(slot) => slot.push(Event::Response(msg)),
                    None => log::debug!(
                        "{}: answer to no pending request (late or cancelled): {}",
                        shared.name,
                        for_log(&peer.redact(text), 200)
                    ),
                }
            }
            Kind::Request => {
                let id = msg.get("id").cloned().unwrap_or(Value::Null);
                let outcome = match crate::exchange::is_for_a_client(&msg) {
                    true => route::for_a_client(shared, outbox, peer, msg, text.len()),
                    false => Some(peer.request(&shared.name, &msg)),
                };
                let answer = match outcome {
                    None => continue,
                    Some(Ok(result)) => jsonrpc::result(id, result),
                    Some(Err(e)) => json!({"jsonrpc": "2.0", "id": id, "error": e.to_value()}),
                };
                outbox.push(answer.to_string());
            }
            Kind::Notification if jsonrpc::method(&msg) == "notifications/progress" => {
                // The child sees the hub id as the token.
                let hub_id = msg.pointer("/params/progressToken").and_then(Value::as_u64);
                let slot =
                    hub_id.and_then(|t| shared.pending.lock().as_ref().and_then(|p| p.get(&t).cloned()));
                match (hub_id, slot.as_ref().and_then(|s| s.client_token.clone().map(|t| (s, t)))) {
                    // Only a caller that asked for progress gets it, under its own token.
                    (Some(hub_id), Some((slot, token))) if slot.relay => {
                        let mut m = msg;
                        m["params"]["progressToken"] = token;
                        if !slot.push_message(m, text.len()) {
                            shared.give_up(outbox, hub_id);
                        }
                    }
                    _ => log::debug!("{}: progress for no pending request", shared.name),
                }
            }
            Kind::Notification if jsonrpc::method(&msg) == "notifications/cancelled" => {
                peer.notification(&shared.name, &withdrawn(shared, msg))
            }
            Kind::Notification => peer.notification(&shared.name, &msg),
            Kind::Invalid => skipped("an invalid JSON-RPC message", text),
        }
    }
    // All bookkeeping is gone before anyone hears of it: a waiter that wakes finds the bridge
    // closed and the child's requests forgotten.
    let waiting = shared.pending.lock().take();
    let asking = std::mem::take(&mut *shared.child_requests.lock());
    for w in asking.into_values() {
        if let Waiting::Input(slot, _) = w {
            // A request waiting for its inputs' answers ends like one waiting for its own.
            slot.end();
        }
    }
    closed.store(true, Ordering::SeqCst);
    // Every waiter wakes at once with "exited".
    for slot in waiting.into_iter().flat_map(HashMap::into_values) {
        slot.end();
    }
}
