//! `Call`: one request to a server, whoever asks (a REST caller, an MCP client's request
//! relayed, the aggregated fan-out, the hub itself). The server table checks the server may
//! take it and gives a `Lease`; `Call::open` sends the request over the server's transport;
//! `Call::next` yields what the server sends for it, messages first and the outcome last (or
//! `Call::then` has a continuation run with the first of them).
//!
//! Cleanup is by ownership: however a call ends — answered, timed out, the server gone, the
//! caller gone mid-stream, a thread that never started — its `Drop` records the breaker's
//! outcome (once), runs the owner's `on_end` (the session forgets the request) and, when the
//! request was still out, tells the server to stop working on it.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::rounds::{Got, Rounds, Wait};
use super::{Flight, Request, Step, Transport, cancelled};
use crate::jsonrpc::{self, RpcError};
use crate::resilience::Breakers;

/// A server's permission for one request: its breaker let it through, with this deadline.
pub struct Lease {
    pub server: String,
    pub breakers: Arc<Breakers>,
    pub deadline: Instant,
    /// Progress moves the deadline, never past this.
    pub latest: Instant,
    pub timeout: Duration,
    /// The server's place and the hub's.
    pub in_flight: [InFlight; 2],
    /// Method and tool, for the metrics.
    pub labels: (String, String),
}

/// One of a bounded number of places for a call in flight, given back when the call ends
/// (and, for a server's place, the time it ended marked).
pub struct InFlight {
    count: Arc<AtomicUsize>,
    ended: Option<Arc<LastCall>>,
}

impl InFlight {
    /// A place among `count`'s, unless `max` are taken.
    pub fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<InFlight> {
        count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok()?;
        Some(InFlight { count: count.clone(), ended: None })
    }

    /// As `take`, and the call's end is marked in `ended` (a server's idle clock).
    pub fn take_marked(count: &Arc<AtomicUsize>, max: usize, ended: &Arc<LastCall>) -> Option<InFlight> {
        let mut place = InFlight::take(count, max)?;
        place.ended = Some(ended.clone());
        Some(place)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Marked before the place is given back: whoever sees no call in flight sees this end.
        if let Some(ended) = &self.ended {
            ended.mark(Instant::now());
        }
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// When a server's last call ended: one atomic store per call (no lock), read by the
/// supervisor's idle check.
#[derive(Debug, Default)]
pub struct LastCall(AtomicU64);

/// What `LastCall` counts from (nanoseconds since the first time anyone asked).
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl LastCall {
    pub fn mark(&self, now: Instant) {
        let nanos = now.saturating_duration_since(origin()).as_nanos();
        self.0.store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Release);
    }

    /// The last mark (the origin when none was made: older than any server's start).
    pub fn get(&self) -> Instant {
        origin() + Duration::from_nanos(self.0.load(Ordering::Acquire))
    }
}

enum Link {
    /// Sent (or to be sent on the first `next`): what comes for it is read through its flight.
    Out(Box<dyn Flight>),
    /// It failed before reaching the server (the child's pipe closed): the outcome is waiting
    /// (boxed: a rare path, kept out of every call's size).
    Failed(Option<Box<RpcError>>),
}

pub struct Call {
    pub(super) server: String,
    breakers: Arc<Breakers>,
    pub(super) deadline: Instant,
    latest: Instant,
    timeout: Duration,
    link: Link,
    /// The flight's inbox when a continuation may park there (read once, at open).
    inbox: Option<Arc<super::Inbox>>,
    /// A modern server's request, kept to be sent again with its inputs' answers.
    rounds: Option<Box<Rounds>>,
    /// The outcome was handed out (and recorded).
    finished: bool,
    /// The caller's "gone" flag (`watch`).
    gone: Option<Arc<AtomicBool>>,
    on_end: Option<Box<dyn FnOnce() + Send>>,
    on_result: Option<Box<dyn FnOnce(Value) -> Value + Send>>,
    /// `on_result` may block: the outcome is never taken on a thread that must not (a child's
    /// reader), so the call is never docked.
    result_blocks: bool,
    _in_flight: [InFlight; 2],
    labels: (String, String),
    /// Who made the call, for the audit trail (a `tools/call` is written there as it ends).
    who: Option<std::sync::Arc<crate::audit::Who>>,
    started: Instant,
}

impl Call {
    /// Sends `request` over `transport` under `lease`.
    pub fn open(lease: Lease, transport: Arc<dyn Transport>, request: Request) -> Call {
        let rounds = transport.is_modern().then(|| Box::new(Rounds::of(&request)));
        let (link, inbox) = match transport.open(request) {
            Ok(flight) => {
                let inbox = flight.dock();
                (Link::Out(flight), inbox)
            }
            Err(e) => (Link::Failed(Some(Box::new(e))), None),
        };
        let Lease { server, breakers, deadline, latest, timeout, in_flight, labels } = lease;
        if let Some(inbox) = &inbox {
            inbox.set_deadline(deadline);
        }
        Call {
            server,
            breakers,
            deadline,
            latest,
            timeout,
            link,
            inbox,
            rounds,
            finished: false,
            gone: None,
            on_end: None,
            on_result: None,
            result_blocks: false,
            _in_flight: in_flight,
            labels,
            who: None,
            started: Instant::now(),
        }
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The id the server sees for this request (what a cancellation names).
    pub fn hub_id(&self) -> Value {
        match &self.link {
            Link::Out(flight) => json!(flight.hub_id()),
            Link::Failed(_) => Value::Null,
        }
    }

    /// Where a continuation may wait for the first event instead of a thread: a request whose
    /// carrier can hold one (a stdio child's), and not a modern server's, whose answer may
    /// start input rounds (work of its own).
    pub(super) fn dock(&self) -> Option<Arc<super::Inbox>> {
        match (&self.inbox, &self.rounds) {
            (Some(inbox), None) if !self.result_blocks => Some(inbox.clone()),
            _ => None,
        }
    }

    /// Whether the request never reached its server (its outcome is waiting).
    pub(super) fn failed_to_open(&self) -> bool {
        matches!(self.link, Link::Failed(_))
    }

    /// Passes the result through `f` before it is handed out (the gateway keeps what it must
    /// know of it: a task's owner, one session's share of a list).
    pub fn on_result(&mut self, f: impl FnOnce(Value) -> Value + Send + 'static) {
        self.on_result = Some(Box::new(f));
    }

    /// As `on_result`, for an `f` that may block (it asks a server itself): the call is then
    /// always waited for on a thread of its own, where `f` runs.
    pub fn on_result_blocking(&mut self, f: impl FnOnce(Value) -> Value + Send + 'static) {
        self.on_result = Some(Box::new(f));
        self.result_blocks = true;
    }

    /// Waits on something with a life of its own (a task's result): the deadline moves to
    /// `until`, or with none to the server's `max_request_timeout`; never earlier.
    pub fn last_until(&mut self, until: Option<Instant>) {
        let until = until.unwrap_or(self.latest);
        self.latest = self.latest.max(until);
        self.deadline = self.deadline.max(until);
        self.deadline_moved();
    }

    /// Tells the inbox, where the server's requests for the client see it.
    fn deadline_moved(&self) {
        if let Some(inbox) = &self.inbox {
            inbox.set_deadline(self.deadline);
        }
    }

    /// Runs `f` when the call ends, however it ends.
    /// Names who made the call in the audit trail.
    pub fn attribute(&mut self, who: std::sync::Arc<crate::audit::Who>) {
        self.who = Some(who);
    }

    /// A `tools/call`'s line in the audit trail.
    fn audited(&self, outcome: &str) {
        let (method, tool) = &self.labels;
        if method == "tools/call" {
            crate::audit::global().tool_call(
                self.who.as_deref(),
                &self.server,
                tool,
                outcome,
                self.started.elapsed(),
            );
        }
    }

    pub fn on_end(&mut self, f: impl FnOnce() + Send + 'static) {
        self.on_end = Some(Box::new(f));
    }

    /// Watches the caller's "gone" flag while waiting: once it is true, the call is cancelled
    /// at the server and ends, instead of running to its deadline for nobody. It takes
    /// precedence over the thread's (`while_caller_watched`).
    pub fn watch(&mut self, gone: Arc<AtomicBool>) {
        self.gone = Some(gone);
    }

    /// The next thing the server sends for this call, waiting until `until` at most; `None`
    /// when `until` came first and the deadline has not passed. After `Done`, always `None`:
    /// callers stop there.
    pub fn next(&mut self, until: Instant) -> Option<Step> {
        if self.finished {
            return None;
        }
        let got = match &mut self.link {
            Link::Failed(e) => Got::Done(Outcome::Failed(
                e.take().map_or_else(|| RpcError::new(jsonrpc::INTERNAL_ERROR, "failed"), |e| *e),
            )),
            Link::Out(flight) => {
                let watched = super::then::watched(&self.gone);
                let wait = Wait {
                    server: &self.server,
                    deadline: self.deadline,
                    latest: self.latest,
                    timeout: self.timeout,
                    until,
                    gone: watched.as_deref(),
                };
                match (&self.inbox, self.rounds.is_none()) {
                    (Some(inbox), true) => {
                        let mut docked = Docked { inbox, flight: flight.as_mut() };
                        super::rounds::next(&wait, &mut docked, &mut self.rounds)
                    }
                    _ => super::rounds::next(&wait, flight.as_mut(), &mut self.rounds),
                }
            }
        };
        Some(match got {
            Got::Done(outcome) => self.done(outcome),
            Got::Abandoned => {
                self.abandoned(RpcError::new(jsonrpc::SERVER_UNAVAILABLE, "the client went away"))
            }
            Got::Cancelled => self.abandoned(cancelled()),
            Got::Nothing => return None,
            Got::Message(m) => {
                if jsonrpc::method(&m) == "notifications/progress" {
                    // Progress shows the server at work: the deadline starts again (as the SDKs'
                    // resetTimeoutOnProgress does), up to `max_request_timeout` from the start.
                    self.deadline = (Instant::now() + self.timeout).min(self.latest).max(self.deadline);
                    self.deadline_moved();
                }
                Step::Message(m)
            }
        })
    }

    /// Waits for the outcome, dropping any message before it (refusing the server's requests:
    /// this caller cannot answer them).
    pub fn wait(self) -> Result<Value, RpcError> {
        let deadline = self.deadline;
        self.wait_until(deadline)
    }

    /// As `wait`, but gives up at `until` if that comes before the deadline (the server is told
    /// and the breaker learns nothing: the caller, not the server, set the shorter time).
    pub fn wait_until(mut self, until: Instant) -> Result<Value, RpcError> {
        loop {
            match self.next(until) {
                Some(Step::Done(r)) => return r,
                Some(Step::Message(m)) => self.refuse(&m),
                None if Instant::now() >= until => {
                    return Err(RpcError::new(
                        jsonrpc::REQUEST_TIMEOUT,
                        format!("{} did not answer in time", self.server),
                    ));
                }
                None => {}
            }
        }
    }

    /// Answers a server's request relayed to this caller with an error: it cannot take it.
    pub fn refuse(&self, msg: &Value) {
        if let Link::Out(flight) = &self.link {
            flight.refuse(msg);
        }
    }

    /// The call ends without the server's outcome (its caller went away, its client cancelled
    /// it, no thread could wait for it): the server is told if it still works on it, and the
    /// breaker learns nothing.
    pub(super) fn abandoned(&mut self, why: RpcError) -> Step {
        self.finished = true;
        self.let_go("the caller gave up");
        self.breakers.record_abandoned(&self.server, Instant::now());
        self.audited("cancelled");
        Step::Done(Err(why))
    }

    fn let_go(&mut self, reason: &str) {
        if let Link::Out(flight) = &mut self.link {
            flight.cancel(reason);
            flight.forget_inputs();
        }
    }

    fn done(&mut self, outcome: Outcome) -> Step {
        self.finished = true;
        let now = Instant::now();
        match &outcome {
            Outcome::Failed(_) => self.breakers.record_failure(&self.server, now),
            Outcome::Answer(_) => self.breakers.record_success(&self.server, now),
        }
        let (method, tool) = &self.labels;
        let metric = outcome.metric();
        crate::metrics::global().server_call(&self.server, method, tool, metric, self.started.elapsed());
        self.audited(if metric == crate::metrics::Outcome::IsError { "tool_error" } else { metric.as_str() });
        match (outcome.into_result(), self.on_result.take()) {
            (Ok(v), Some(f)) => Step::Done(Ok(f(v))),
            (outcome, _) => Step::Done(outcome),
        }
    }
}

/// A flight whose events are read from its inbox here, in exchange: the thread that brings
/// an answer runs the call's continuation without a call back into the carrier, which is
/// asked only why no answer will come.
struct Docked<'a> {
    inbox: &'a super::Inbox,
    flight: &'a mut dyn Flight,
}

impl Flight for Docked<'_> {
    fn hub_id(&self) -> u64 {
        self.flight.hub_id()
    }

    fn next(&mut self, until: Instant, latest: Instant) -> super::Next {
        match self.inbox.next(until, || RpcError::new(jsonrpc::SERVER_UNAVAILABLE, "gone")) {
            // The carrier says why (its inbox has ended: it answers at once).
            super::Next::Gone(_) => self.flight.next(Instant::now(), latest),
            next => next,
        }
    }

    fn cancel(&mut self, reason: &str) {
        self.flight.cancel(reason)
    }

    fn refuse(&self, msg: &Value) {
        self.flight.refuse(msg)
    }

    fn ask_inputs(&mut self, requests: &serde_json::Map<String, Value>) {
        self.flight.ask_inputs(requests)
    }

    fn resend(&mut self, method: &str, params: Value) -> Result<(), RpcError> {
        self.flight.resend(method, params)
    }

    fn forget_inputs(&mut self) {
        self.flight.forget_inputs()
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished {
            // The caller went away before the outcome: the server is told to stop, and a breaker
            // trial riding on this call is given back, since it proved nothing either way.
            self.let_go("the caller gave up");
            self.breakers.record_abandoned(&self.server, Instant::now());
        }
        if let Some(inbox) = &self.inbox {
            inbox.call_ended();
        }
        if let Some(f) = self.on_end.take() {
            f();
        }
    }
}

/// How a call ended: what the server answered, its own JSON-RPC error included (a server that
/// answers is healthy, whatever its code), apart from the hub's failure to get an answer (the
/// deadline, the server's death, an unreadable answer). Only a failure counts against the
/// server's breaker.
#[derive(Debug)]
pub enum Outcome {
    Answer(Result<Value, RpcError>),
    Failed(RpcError),
}

impl Outcome {
    pub fn into_result(self) -> Result<Value, RpcError> {
        match self {
            Outcome::Answer(r) => r,
            Outcome::Failed(e) => Err(e),
        }
    }

    /// How it is counted: an `isError` result apart from a JSON-RPC error.
    fn metric(&self) -> crate::metrics::Outcome {
        use crate::metrics::Outcome as M;
        match self {
            Outcome::Answer(Ok(v)) if v.get("isError").and_then(Value::as_bool) == Some(true) => M::IsError,
            Outcome::Answer(Ok(_)) => M::Ok,
            Outcome::Answer(Err(_)) => M::RpcError,
            Outcome::Failed(e) if e.code == jsonrpc::REQUEST_TIMEOUT => M::Timeout,
            Outcome::Failed(_) => M::Unavailable,
        }
    }
}
