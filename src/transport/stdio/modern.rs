//! A modern (2026-07-28) child's requests for input, asked within its answer
//! (`input_required`) instead of as requests of its own: the request is sent again with the
//! answers under the same hub id and slot; what its client is told it can answer (the
//! envelope's `clientCapabilities`) comes from the slot's caller.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::slot::Slot;
use super::{Bridge, Pending, Waiting, route};
use crate::exchange::{Event, modern};
use crate::jsonrpc::RpcError;
use crate::transport::inputs;

impl Bridge {
    /// From now on the child is spoken to in the 2026-07-28 era: every request carries the
    /// `_meta` envelope, results are made legacy by the call, `roots/list_changed` is not sent.
    pub fn set_modern(&self) {
        self.shared.modern.store(true, Ordering::SeqCst);
    }

    pub fn is_modern(&self) -> bool {
        self.shared.modern.load(Ordering::SeqCst)
    }

    /// Sends again a request of a modern child that answered `input_required`, under the same
    /// hub id and slot: its caller, progress, routing and cancellation stay as they were.
    pub fn resend(&self, earlier: &Pending, method: &str, mut params: Value) -> Result<Pending, RpcError> {
        let id = earlier.id;
        if let Some(t) = params.pointer_mut("/_meta/progressToken") {
            if earlier.slot.client_token.is_some() {
                *t = json!(id);
            }
        }
        self.send_in(id, method, Some(params), earlier.slot.clone())
    }

    /// Has a modern child's `inputRequests` for `earlier` answered: relayed to its caller,
    /// or by the hub (`inputs::ask_inputs`); the answers come as `Event::Input`.
    pub fn ask_inputs(&self, earlier: &Pending, requests: &serde_json::Map<String, Value>) {
        let desk = route::SlotDesk { shared: &self.shared, slot: &earlier.slot };
        let can = earlier.slot.origin.as_ref().map(|o| o.caller.can);
        inputs::ask_inputs(&desk, self.peer.as_ref(), can, requests);
    }

    /// Forgets what still waits for the answers to `earlier`'s input requests (its caller is gone).
    pub fn forget_inputs(&self, earlier: &Pending) {
        self.shared
            .child_requests
            .lock()
            .retain(|_, w| !matches!(w, Waiting::Input(slot, _) if Arc::ptr_eq(slot, &earlier.slot)));
    }

    /// A request's params as a modern child gets them: with the envelope (and the log level
    /// last set). `None`: the hub answered it (into the slot) and nothing is sent: a modern
    /// child has no `logging/setLevel`, the level goes with each request instead.
    pub(super) fn modern_params(
        &self,
        id: u64,
        method: &str,
        params: Option<Value>,
        slot: &Slot,
    ) -> Option<Value> {
        if method == "logging/setLevel" {
            let level = params.as_ref().and_then(|p| p.get("level")).and_then(Value::as_str);
            *self.shared.log_level.lock() = level.map(str::to_string);
            slot.push(Event::Response(json!({"jsonrpc": "2.0", "id": id, "result": {}})));
            return None;
        }
        let mut params = modern::with_envelope(params, self.capabilities(slot));
        if let Some(level) = self.shared.log_level.lock().clone() {
            params["_meta"][modern::META_LOG_LEVEL] = json!(level);
        }
        Some(params)
    }

    /// What a modern child is told its request's client can answer.
    pub(super) fn capabilities(&self, slot: &Slot) -> Value {
        match &slot.origin {
            Some(o) => modern::capabilities(o.caller.can, self.peer.samples_locally(), self.peer.has_roots()),
            None => json!({}),
        }
    }
}
