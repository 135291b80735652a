//! An upstream as an `exchange::Transport`. A remote call's request is POSTed on its first
//! `next` (the thread that waits for the call starts it: `Upstream::send` reads the answer on a
//! thread of its own), and its answer is read piece by piece; a modern server's input requests
//! are answered into a channel of the call's own. What must reach the server outside a call
//! (a cancellation, a notification) goes on an `upstream-tell-*` thread: nothing here blocks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::{Map, Value, json};

use super::answers::Piece;
use super::upstream::{Pieces, Upstream};
use crate::exchange::{Can, Event, Flight, Next, Request, Transport};
use crate::jsonrpc::{self, RpcError};

impl Transport for Upstream {
    fn open(self: Arc<Self>, request: Request) -> Result<Box<dyn Flight>, RpcError> {
        Ok(Box::new(Remote::new(self, &request)))
    }

    fn is_modern(&self) -> bool {
        Upstream::is_modern(self)
    }

    fn cancel_for_client(self: Arc<Self>, hub_id: &Value, reason: &Value) {
        let (id, reason) = (hub_id.clone(), reason.as_str().unwrap_or("cancelled by the client").to_string());
        self.later("a cancellation", move |u| u.cancel_for_client(&id, &reason));
    }

    fn answer_child(&self, relay_id: &str, answer: &Value) -> bool {
        // A modern server's input request (a legacy one's requests are answered by its peer).
        self.answer_input(relay_id, answer)
    }

    fn notify(self: Arc<Self>, method: &str, params: Option<Value>) {
        let method = method.to_string();
        self.later("a notification", move |u| u.tell(&method, params, false));
    }

    fn send_only(self: Arc<Self>, method: &str, params: Option<Value>) {
        let method = method.to_string();
        self.later("a request", move |u| u.tell(&method, params, true));
    }

    fn lost(&self) -> Option<String> {
        Upstream::lost(self)
    }

    fn close(&self) {
        Upstream::close(self)
    }

    fn join(&self, _grace: Duration) {}
}

/// A remote request: sent on the first `next`, then its answer read message by message.
struct Remote {
    upstream: Arc<Upstream>,
    id: u64,
    /// The request as the upstream gets it (a modern server's with the envelope), until sent.
    request: Option<Value>,
    answer: Option<Pieces>,
    /// What the caller's client can answer (`None`: a REST or hub request): a modern server's
    /// envelope says so, and its input requests go by it.
    can: Option<Can>,
    /// While a modern server's input requests wait for answers: where they land.
    inputs: Option<(Sender<Event>, Receiver<Event>)>,
}

impl Remote {
    fn new(upstream: Arc<Upstream>, request: &Request) -> Remote {
        let id = upstream.fresh_u64();
        let can = request.caller().map(|c| c.can);
        let mut msg = request.message();
        if upstream.is_modern() {
            msg = upstream.with_envelope(msg, can);
        }
        Remote { upstream, id, request: Some(msg), answer: None, can, inputs: None }
    }
}

impl Flight for Remote {
    fn hub_id(&self) -> u64 {
        self.id
    }

    fn next(&mut self, until: Instant, latest: Instant) -> Next {
        if let Some((_, rx)) = &self.inputs {
            return match rx.recv_deadline(until) {
                Ok(event) => Next::Event(event),
                Err(_) => Next::TimedOut,
            };
        }
        if let Some(msg) = self.request.take() {
            let remaining = latest.saturating_duration_since(Instant::now());
            match self.upstream.send(json!(self.id), msg, remaining, self.can) {
                Ok(rx) => self.answer = Some(rx),
                Err(e) => return Next::Gone(e),
            }
        }
        let Some(rx) = self.answer.as_ref() else {
            return Next::Gone(RpcError::new(jsonrpc::INTERNAL_ERROR, "no request is out"));
        };
        let got = rx.recv_deadline(until);
        if !matches!(got, Err(RecvTimeoutError::Timeout) | Ok(Piece { last: false, message: Ok(_) })) {
            // The answer ended: nothing of it is out any more.
            self.answer = None;
        }
        match got {
            Ok(Piece { message: Ok(m), last: false }) => Next::Event(Event::Message(m)),
            Ok(Piece { message: Ok(m), last: true }) => Next::Event(Event::Response(m)),
            Ok(Piece { message: Err(e), .. }) if e.code == jsonrpc::REQUEST_CANCELLED => {
                Next::Event(Event::Cancelled)
            }
            // The answer could not be read: the hub's failure, not the server's answer.
            Ok(Piece { message: Err(e), .. }) => Next::Gone(e),
            Err(RecvTimeoutError::Disconnected) => {
                Next::Gone(RpcError::new(jsonrpc::SERVER_UNAVAILABLE, "the answer ended without a response"))
            }
            Err(RecvTimeoutError::Timeout) => Next::TimedOut,
        }
    }

    fn cancel(&mut self, reason: &str) {
        if self.answer.take().is_some() {
            let (id, reason) = (json!(self.id), reason.to_string());
            self.upstream.clone().later("a cancellation", move |u| u.cancel(&id, &reason));
        }
    }

    fn refuse(&self, msg: &Value) {
        self.upstream.refuse_input(msg);
    }

    fn ask_inputs(&mut self, requests: &Map<String, Value>) {
        let desk = crossbeam_channel::unbounded();
        self.upstream.ask_inputs(&desk.0, self.can, requests);
        self.inputs = Some(desk);
    }

    fn resend(&mut self, method: &str, params: Value) -> Result<(), RpcError> {
        // Every input request was answered: its channel goes.
        self.inputs = None;
        // SEP-2322: the retry is a new request, under a new JSON-RPC id.
        self.id = self.upstream.fresh_u64();
        let msg = jsonrpc::request(0, method, Some(params));
        self.request = Some(self.upstream.with_envelope(msg, self.can));
        Ok(())
    }

    fn forget_inputs(&mut self) {
        if let Some((desk, _)) = self.inputs.take() {
            self.upstream.forget_inputs(&desk);
        }
    }
}
