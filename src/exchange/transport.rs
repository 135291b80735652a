//! What exchange needs of whatever carries requests to a server: `Transport`, the carrier
//! shared by every call to one server, and `Flight`, one request in flight on it, owned by its
//! `Call`. Where a request's events land in an `Inbox` (a stdio child's slot), the flight hands
//! it over (`dock`): a continuation parks there instead of a waiting thread, and the child's
//! stdout reader runs it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::{Inbox, Next, Request};
use crate::jsonrpc::RpcError;

/// A carrier of requests to one server: a child's pipes (the stdio bridge) or HTTP (a remote
/// server). No method blocks: what must cross the network is done on a thread of the
/// carrier's own (which is why the methods that may send take the carrier's `Arc`).
pub trait Transport: Send + Sync {
    /// Sends a request: the hub's own under a fresh id, or a client's relayed whole (its id and
    /// progress token swapped for the hub's id). A carrier whose sending blocks sends on the
    /// flight's first `next` instead.
    fn open(self: Arc<Self>, request: Request) -> Result<Box<dyn Flight>, RpcError>;
    /// Whether the server speaks 2026-07-28: requests carry the envelope, and an
    /// `input_required` answer starts input rounds.
    fn is_modern(&self) -> bool;
    /// A client's cancellation of the request the server knows as `hub_id`: the server is told,
    /// and the call waiting for it gets `Event::Cancelled` at once.
    fn cancel_for_client(self: Arc<Self>, hub_id: &Value, reason: &Value);
    /// Hands a client's answer to a request the server sent it (sampling, elicitation, a
    /// modern server's input request) back; false when none waits under `relay_id`.
    fn answer_child(&self, relay_id: &str, answer: &Value) -> bool;
    fn notify(self: Arc<Self>, method: &str, params: Option<Value>);
    /// Sends the hub's own request without waiting for its answer.
    fn send_only(self: Arc<Self>, method: &str, params: Option<Value>);
    /// Why the server can no longer be reached, once that is so (a child that closed its
    /// stdout, a legacy event stream that ended). A Streamable HTTP server is never lost: its
    /// calls fail, and its breaker opens.
    fn lost(&self) -> Option<String>;
    /// Stops sending: a child's stdin is closed (the polite way to ask it to exit), a remote
    /// session ended.
    fn close(&self);
    /// Waits up to `grace` for the carrier's threads once the server is gone.
    fn join(&self, grace: Duration);
}

/// One request in flight on a transport.
pub trait Flight: Send {
    /// The id the server sees (what a cancellation names).
    fn hub_id(&self) -> u64;
    /// The next thing for this request, waiting until `until` at most; the answer may take
    /// until `latest` (what a carrier that sends on the first `next` gives its HTTP client).
    fn next(&mut self, until: Instant, latest: Instant) -> Next;
    /// Where a continuation may wait for this request's next event instead of a thread (a
    /// stdio slot's inbox, read once when the call opens: parking is exchange's own code);
    /// `None` when the event comes through a thread that waits anyway.
    fn dock(&self) -> Option<Arc<Inbox>> {
        None
    }
    /// Tells the server to stop working on the request, if it is still out.
    fn cancel(&mut self, reason: &str);
    /// Answers a request of the server relayed to this call, whose caller cannot take it, as a
    /// client without the capability would.
    fn refuse(&self, msg: &Value);
    /// A modern server's `inputRequests` for this request: each relayed to the caller (an
    /// `Event::Message`) or answered by the hub; every answer comes as an `Event::Input`.
    fn ask_inputs(&mut self, requests: &Map<String, Value>);
    /// Sends the request again (a modern server's, with its inputs' answers in `params`): over
    /// HTTP under a new hub id (SEP-2322), over stdio under the same; its caller, progress and
    /// routing stay as they were.
    fn resend(&mut self, method: &str, params: Value) -> Result<(), RpcError>;
    /// Forgets what still waits for answers to this request's input requests.
    fn forget_inputs(&mut self);
}

/// How a parked continuation is woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// The outcome is there: waiting for it returns at once.
    Ready,
    /// Something else came, or the time passed: go on where waiting is allowed.
    Wait,
}

/// A continuation parked in an `Inbox`.
pub type Parked = Box<dyn FnOnce(Woken) + Send>;
