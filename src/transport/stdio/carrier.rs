//! The bridge as an `exchange::Transport`: a call's request goes out under a hub id and its
//! events land in its slot, which is also the dock its caller may park a continuation in (the
//! stdout reader runs it with the answer).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::{Bridge, Pending};
use crate::exchange::{Flight, Inbox, Next, Request, Transport};
use crate::jsonrpc::RpcError;

impl Transport for Bridge {
    fn open(self: Arc<Self>, request: Request) -> Result<Box<dyn Flight>, RpcError> {
        let pending = match request {
            Request::Own { method, params } => self.begin(&method, params)?,
            Request::Relay(msg, caller) => self.begin_relay_owned(msg, caller)?,
        };
        Ok(Box::new(Out { bridge: self, pending }))
    }

    fn is_modern(&self) -> bool {
        Bridge::is_modern(self)
    }

    fn cancel_for_client(self: Arc<Self>, hub_id: &Value, reason: &Value) {
        match hub_id.as_u64() {
            Some(id) if Bridge::cancel_for_client(&self, id, reason) => {}
            // Not (or no longer) out as a call's: the child is told all the same.
            _ => Bridge::notify(
                &self,
                "notifications/cancelled",
                Some(serde_json::json!({"requestId": hub_id, "reason": reason})),
            ),
        }
    }

    fn answer_child(&self, relay_id: &str, answer: &Value) -> bool {
        Bridge::answer_child(self, relay_id, answer)
    }

    fn notify(self: Arc<Self>, method: &str, params: Option<Value>) {
        Bridge::notify(&self, method, params)
    }

    fn send_only(self: Arc<Self>, method: &str, params: Option<Value>) {
        Bridge::send_only(&self, method, params)
    }

    fn lost(&self) -> Option<String> {
        self.hung().or_else(|| {
            self.is_closed().then(|| "closed its stdout but kept running; treated as a crash".to_string())
        })
    }

    fn close(&self) {
        self.close_stdin();
    }

    fn join(&self, grace: Duration) {
        Bridge::join(self, grace)
    }
}

/// One call's request to the child.
struct Out {
    bridge: Arc<Bridge>,
    pending: Pending,
}

impl Flight for Out {
    fn hub_id(&self) -> u64 {
        self.pending.id
    }

    fn next(&mut self, until: Instant, _latest: Instant) -> Next {
        self.bridge.next(&self.pending, until)
    }

    fn dock(&self) -> Option<Arc<Inbox>> {
        Some(self.pending.slot.inbox.clone())
    }

    fn cancel(&mut self, reason: &str) {
        self.bridge.cancel_if_out(&self.pending, reason);
    }

    fn refuse(&self, msg: &Value) {
        self.bridge.refuse_relay(msg, Some(&self.pending.slot.inbox));
    }

    fn ask_inputs(&mut self, requests: &Map<String, Value>) {
        self.bridge.ask_inputs(&self.pending, requests);
    }

    fn resend(&mut self, method: &str, params: Value) -> Result<(), RpcError> {
        self.pending = self.bridge.resend(&self.pending, method, params)?;
        Ok(())
    }

    fn forget_inputs(&mut self) {
        self.bridge.forget_inputs(&self.pending);
    }
}
