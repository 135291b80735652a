//! `Slot`: where one request to the child waits: its `Inbox` (the events its caller takes, or
//! the continuation its caller parked there) and what the routing needs to know of it (its
//! `Origin`: whose it is, the task it concerns).

use std::sync::Arc;

use serde_json::Value;

use crate::exchange::{Caller, Event, Inbox};

pub(super) struct Slot {
    /// Shared with the call, which parks its continuation there itself.
    pub inbox: Arc<Inbox>,
    /// A client's request relayed whole: it may receive progress.
    pub relay: bool,
    /// Whose it is, for the child's requests to its client (`route`).
    pub origin: Option<Origin>,
    /// The caller's own progress token, put back on progress notifications.
    pub client_token: Option<Value>,
    /// The hub's health ping: it cannot be why the child asks its client anything.
    pub ping: bool,
}

impl Slot {
    pub fn new(relay: bool, client_token: Option<Value>) -> Slot {
        Slot { inbox: Arc::default(), relay, origin: None, client_token, ping: false }
    }

    pub fn push(&self, e: Event) {
        self.inbox.push(e);
    }

    /// A message for the caller, within the inbox's bounds (`Inbox::push_message`): false when
    /// it was not taken and the call has failed.
    pub fn push_message(&self, m: Value, bytes: usize) -> bool {
        self.inbox.push_message(m, bytes)
    }

    /// The child's stdout closed: no answer will come.
    pub fn end(&self) {
        self.inbox.end();
    }
}

/// Argument strings shorter than this say too little to tie a child's request to a call.
const MIN_HINT: usize = 4;

/// What a relayed request offers the routing: its caller, the task it concerns, and the
/// strings of its arguments (a child's request that quotes them is that call's).
pub(super) struct Origin {
    pub caller: Caller,
    pub task: Option<String>,
    pub hints: Vec<String>,
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
