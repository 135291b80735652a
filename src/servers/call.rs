//! `Call`: one request to a server, whoever asks (a REST caller, an MCP client's request
//! relayed, the aggregated fan-out, the hub itself). `Servers::acquire` checks the server is
//! running and its breaker lets the call through, then sends the request; `Call::next` yields
//! what the server sends for it, messages first and the outcome last.
//!
//! Cleanup is by ownership: however a call ends — answered, timed out, the child gone, the
//! caller gone mid-stream, a thread that never started — its `Drop` records the breaker's
//! outcome (once), runs the owner's `on_end` (the session forgets the request) and, when the
//! request was still out, tells the server to stop working on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::bridge::{Bridge, Caller, Pending, Wake};
use super::remote_call::{Remote, next_http};
use super::stdio_call::{Got, Rounds, next_stdio};
use super::upstream::Upstream;
use super::{Channel, Run, Servers, Status};
use crate::config::Transport;
use crate::error::{Error, Result};
use crate::jsonrpc::{self, RpcError};
use crate::resilience::Breakers;

/// How often a watched call looks at whether its caller is still there.
const WATCH_SLICE: Duration = Duration::from_millis(100);

std::thread_local! {
    /// Set while a caller that may go away waits on this thread (the HTTP front sets it for a
    /// request answered off the worker): true once it has gone.
    static CALLER_GONE: std::cell::RefCell<Option<Arc<AtomicBool>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with the calls it waits on watching `gone`: once it turns true, a waiting stdio
/// call is cancelled at the child and ends, instead of running to its deadline for nobody.
pub fn while_caller_watched<T>(gone: Arc<AtomicBool>, f: impl FnOnce() -> T) -> T {
    CALLER_GONE.with(|g| *g.borrow_mut() = Some(gone));
    let out = f();
    CALLER_GONE.with(|g| *g.borrow_mut() = None);
    out
}

/// The watched caller's flag, if any, and how long to wait before looking at it again.
pub(super) fn watch_slice(until: Instant) -> (Option<Arc<AtomicBool>>, Instant) {
    let watched = CALLER_GONE.with(|g| g.borrow().clone());
    let slice = match &watched {
        Some(_) => until.min(Instant::now() + WATCH_SLICE),
        None => until,
    };
    (watched, slice)
}

pub(super) fn is_gone(watched: &Option<Arc<AtomicBool>>) -> bool {
    watched.as_ref().is_some_and(|g| g.load(Ordering::Acquire))
}

/// What `try_acquire` found. Returned once and matched at once: the size of a `Call` is
/// not worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Acquired {
    Ready(Call),
    /// The server is starting: the request is given back, to be sent with `acquire` from a
    /// thread that may wait.
    Starting(Request),
}

impl Servers {
    /// Sends `method` to a server and waits for its result. A STARTING server is waited for
    /// (within the deadline); a STOPPED or FAILED one is refused, as is one whose breaker is
    /// open (as -32000 errors). Blocks: never on a worker.
    pub fn call(
        &self,
        name: &str,
        method: &str,
        params: Option<Value>,
    ) -> std::result::Result<Value, RpcError> {
        match self.acquire(name, Request::own(method, params)) {
            Ok(call) => call.wait(),
            Err(e) => Err(RpcError::new(jsonrpc::SERVER_UNAVAILABLE, e.to_string())),
        }
    }

    /// Sends a request to a running server. A STARTING server is waited for, up to the
    /// request's deadline (so never on a worker); STOPPED, FAILED or an open breaker refuse.
    pub fn acquire(&self, name: &str, request: Request) -> Result<Call> {
        match self.open_call(name, request, true)? {
            Acquired::Ready(call) => Ok(call),
            Acquired::Starting(_) => Err(Error::Timeout(format!("server {name} is still starting"))),
        }
    }

    /// As `acquire`, but a STARTING server gives the request back at once instead of waiting.
    pub fn try_acquire(&self, name: &str, request: Request) -> Result<Acquired> {
        self.open_call(name, request, false)
    }

    /// `open_uncounted`, with a refusal counted in the metrics (the call counts its own outcome).
    fn open_call(&self, name: &str, request: Request, wait: bool) -> Result<Acquired> {
        let (method, tool) = request.method_and_tool();
        let started = Instant::now();
        let opened = self.open_uncounted(name, request, wait);
        if let Err(e) = &opened {
            let outcome = match e {
                Error::Timeout(_) => crate::metrics::Outcome::Timeout,
                Error::CircuitOpen(_) => crate::metrics::Outcome::CircuitOpen,
                Error::NotFound(_) => return opened,
                _ => crate::metrics::Outcome::Unavailable,
            };
            crate::metrics::global().server_call(name, &method, &tool, outcome, started.elapsed());
        }
        opened.map(|a| match a {
            Acquired::Ready(mut call) => {
                call.labels = (method, tool);
                Acquired::Ready(call)
            }
            starting => starting,
        })
    }

    fn open_uncounted(&self, name: &str, request: Request, wait: bool) -> Result<Acquired> {
        let srv = self.must_find(name)?;
        let started = Instant::now();
        let (channel, (timeout, max_timeout)) = {
            let mut st = srv.state.lock();
            let timeout = st.config.request_timeout.unwrap_or(self.ctx.default_timeout);
            let max_timeout = st.config.max_request_timeout.max(timeout);
            let deadline = started + timeout;
            while wait && st.status() == Status::Starting && Instant::now() < deadline {
                srv.changed.wait_until(&mut st, deadline);
            }
            match (st.status(), st.run()) {
                (Status::Running, Some(run)) => (run.channel(), (timeout, max_timeout)),
                (Status::Starting, _) if !wait => return Ok(Acquired::Starting(request)),
                (Status::Starting, _) => {
                    return Err(Error::Timeout(format!("server {name} is still starting")));
                }
                (status, _) => {
                    let why = st.last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
                    return Err(Error::Unavailable(format!("server {name} is {}{why}", status.as_str())));
                }
            }
        };
        // Taken before the breaker is asked: a call refused here must not use up a trial.
        let max = self.ctx.max_calls;
        let in_flight = InFlight::take(&srv.in_flight, max).ok_or_else(|| {
            Error::Unavailable(format!("server {name} has {max} calls in flight already; retry later"))
        })?;
        let max = self.ctx.max_calls_total;
        let in_flight_total = InFlight::take(&self.in_flight, max).ok_or_else(|| {
            Error::Unavailable(format!("the hub has {max} calls in flight already; retry later"))
        })?;
        let breakers = &self.ctx.breakers;
        if !breakers.allow(name, Instant::now()) {
            let snap = breakers.snapshot(name, Instant::now());
            return Err(Error::CircuitOpen(format!(
                "circuit breaker for {name} is {}; retry in {:.0}s",
                snap.state.as_str(),
                snap.retry_after_s.unwrap_or(0.0).ceil()
            )));
        }
        let lease = Lease {
            server: name.to_string(),
            breakers: breakers.clone(),
            deadline: started + timeout,
            latest: started + max_timeout,
            timeout,
            in_flight: [in_flight, in_flight_total],
        };
        Ok(Acquired::Ready(match channel {
            Channel::Stdio(bridge) => Call::stdio(lease, bridge, request),
            Channel::Http(upstream) => Call::http(lease, upstream, request),
        }))
    }

    /// Tells a server to stop working on a request (a client's cancellation), by the hub id it
    /// saw. A remote server is told over HTTP: call this off the worker.
    pub fn cancel(&self, name: &str, hub_id: &Value, reason: &Value) {
        let channel = self.find(name).and_then(|srv| srv.state.lock().run().map(Run::channel));
        let params = json!({"requestId": hub_id, "reason": reason});
        match channel {
            Some(Channel::Stdio(b)) => match hub_id.as_u64() {
                Some(id) if b.cancel_for_client(id, reason) => {}
                _ => b.notify("notifications/cancelled", Some(params)),
            },
            Some(Channel::Http(u)) => {
                u.cancel_for_client(hub_id, reason.as_str().unwrap_or("cancelled by the client"))
            }
            None => {}
        }
    }

    /// Sends a notification to a server; a remote one is told from a thread of its own.
    pub fn notify(&self, name: &str, method: &str, params: Option<Value>) {
        self.tell(name, method, params, false);
    }

    /// Sends the hub's own request to a server without waiting for its answer (what the hub
    /// tells a server once a session has ended).
    pub fn send_only(&self, name: &str, method: &str, params: Option<Value>) {
        self.tell(name, method, params, true);
    }

    fn tell(&self, name: &str, method: &str, params: Option<Value>, request: bool) {
        let channel = self.find(name).and_then(|srv| srv.state.lock().run().map(Run::channel));
        match channel {
            Some(Channel::Stdio(b)) if request => b.send_only(method, params),
            Some(Channel::Stdio(b)) => b.notify(method, params),
            Some(Channel::Http(u)) => {
                // An HTTP request of its own, bounded by its 2 s timeout; the caller may be a worker.
                let method = method.to_string();
                let spawned = std::thread::Builder::new()
                    .name(format!("upstream-tell-{}", name.chars().take(8).collect::<String>()))
                    .spawn(move || u.tell(&method, params, request));
                if let Err(e) = spawned {
                    log::warn!("server {name}: cannot start a thread to tell it something: {e}");
                }
            }
            None => log::debug!("{method} not sent to {name}: not running"),
        }
    }

    /// Whether a server is remote (its calls always block on the network).
    pub fn is_remote(&self, name: &str) -> bool {
        self.find(name).is_some_and(|s| s.state.lock().config.transport != Transport::Stdio)
    }

    /// Hands a client's answer to a request the child sent it (sampling, elicitation) back to
    /// the child; false when no such request is waiting.
    pub fn answer_child(&self, name: &str, relay_id: &str, answer: &Value) -> bool {
        let channel = self.find(name).and_then(|srv| srv.state.lock().run().map(Run::channel));
        match channel {
            Some(Channel::Stdio(b)) => b.answer_child(relay_id, answer),
            // A modern remote server's input request (a legacy one's requests are answered by its peer).
            Some(Channel::Http(u)) => u.answer_input(relay_id, answer),
            None => false,
        }
    }
}

/// What a caller sends.
pub enum Request {
    /// A request the hub makes itself: a fresh id, no progress, no child requests for it.
    Own { method: String, params: Option<Value> },
    /// A client's request relayed whole: its id and progress token are swapped for the hub's on
    /// the way in and put back on the way out; the child's requests for its client (`caller`
    /// says which it can answer) come back as messages.
    Relay(Value, Caller),
}

impl Request {
    pub fn own(method: &str, params: Option<Value>) -> Request {
        Request::Own { method: method.to_string(), params }
    }

    /// The method and, for `tools/call`, the tool: the call's metrics labels.
    fn method_and_tool(&self) -> (String, String) {
        let (method, params) = match self {
            Request::Own { method, params } => (method.as_str(), params.as_ref()),
            Request::Relay(msg, _) => (jsonrpc::method(msg), msg.get("params")),
        };
        let tool = params.and_then(|p| p.get("name")).and_then(Value::as_str).unwrap_or("");
        (method.to_string(), tool.to_string())
    }

    pub(super) fn message(&self) -> Value {
        match self {
            Request::Own { method, params } => jsonrpc::request(0, method, params.clone()),
            Request::Relay(msg, _) => msg.clone(),
        }
    }
}

/// What `Call::next` found.
#[derive(Debug)]
pub enum Step {
    /// A message for the caller before the outcome: progress (the caller's token restored), a
    /// log line, or a request of the server for the client (sampling, elicitation) under a hub id.
    Message(Value),
    /// The end: the result, or the error from the server, the deadline or the server's death.
    Done(Result<Value, RpcError>),
}

/// A server's permission for one request: its breaker let it through, with this deadline.
pub(super) struct Lease {
    pub server: String,
    pub breakers: Arc<Breakers>,
    pub deadline: Instant,
    /// Progress moves the deadline, never past this.
    pub latest: Instant,
    pub timeout: Duration,
    /// The server's place and the hub's.
    pub in_flight: [InFlight; 2],
}

/// One of a server's places for a call in flight, given back when the call ends.
pub(super) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<InFlight> {
        count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok()?;
        Some(InFlight(count.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

enum Link {
    Stdio {
        bridge: Arc<Bridge>,
        pending: Option<Pending>,
        /// A modern child's request, kept to be sent again with its inputs' answers.
        rounds: Option<Box<Rounds>>,
    },
    /// The request goes out on the first `next`: the POST blocks until the upstream answers,
    /// so it must happen on the thread that waits.
    Http(Box<Remote>),
    /// It failed before reaching the server (the child's pipe closed): the outcome is waiting.
    Failed(Option<RpcError>),
}

pub struct Call {
    server: String,
    breakers: Arc<Breakers>,
    deadline: Instant,
    latest: Instant,
    timeout: Duration,
    link: Link,
    /// The outcome was handed out (and recorded).
    finished: bool,
    on_end: Option<Box<dyn FnOnce() + Send>>,
    on_result: Option<Box<dyn FnOnce(Value) -> Value + Send>>,
    /// `on_result` may block: the outcome is never taken on a thread that must not (a child's
    /// reader), so the call is never parked.
    result_blocks: bool,
    _in_flight: [InFlight; 2],
    /// Method and tool, for the metrics.
    labels: (String, String),
    started: Instant,
    /// The caller's "client has gone" flag (`watch`).
    watched: Option<Arc<AtomicBool>>,
}

impl Call {
    pub(super) fn stdio(lease: Lease, bridge: Arc<Bridge>, request: Request) -> Call {
        let rounds = bridge.is_modern().then(|| Box::new(Rounds::of(&request)));
        let sent = match request {
            Request::Own { method, params } => bridge.begin(&method, params),
            Request::Relay(msg, caller) => bridge.begin_relay_owned(msg, caller),
        };
        let link = match sent {
            Ok(p) => Link::Stdio { bridge, pending: Some(p), rounds },
            Err(e) => Link::Failed(Some(e)),
        };
        Call::new(lease, link)
    }

    pub(super) fn http(lease: Lease, upstream: Arc<Upstream>, request: Request) -> Call {
        Call::new(lease, Link::Http(Box::new(Remote::new(upstream, &request))))
    }

    fn new(lease: Lease, link: Link) -> Call {
        let Lease { server, breakers, deadline, latest, timeout, in_flight } = lease;
        Call {
            server,
            breakers,
            deadline,
            latest,
            timeout,
            link,
            finished: false,
            on_end: None,
            on_result: None,
            result_blocks: false,
            _in_flight: in_flight,
            labels: (String::new(), String::new()),
            started: Instant::now(),
            watched: None,
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
            Link::Stdio { pending: Some(p), .. } => json!(p.id()),
            Link::Http(remote) => remote.id.clone(),
            _ => Value::Null,
        }
    }

    /// Whether `next` can wait with a short `until`: a remote server's answer is read with a
    /// blocking HTTP client, so a remote call is always waited on a thread of its own.
    pub fn is_quick(&self) -> bool {
        !matches!(self.link, Link::Http(_))
    }

    /// How to be told when the outcome is there instead of waiting for it, up to `until`:
    /// for a stdio child's plain request (not a modern child's, whose answer may start rounds
    /// of its own), while nothing has come for it yet.
    pub fn wake(&self, until: Instant) -> Option<Wake> {
        match &self.link {
            Link::Stdio { pending: Some(p), rounds: None, .. } if !self.result_blocks => Some(p.wake(until)),
            _ => None,
        }
    }

    pub(super) fn set_watched(&mut self, gone: Arc<AtomicBool>) {
        self.watched = Some(gone);
    }

    pub(super) fn watched(&self) -> Option<Arc<AtomicBool>> {
        self.watched.clone()
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
    }

    /// Runs `f` when the call ends, however it ends.
    pub fn on_end(&mut self, f: impl FnOnce() + Send + 'static) {
        self.on_end = Some(Box::new(f));
    }

    /// The next thing the server sends for this call, waiting until `until` at most; `None`
    /// when `until` came first and the deadline has not passed. After `Done`, always `None`...
    /// callers stop there. A remote call blocks until its next message whatever `until` says.
    pub fn next(&mut self, until: Instant) -> Option<Step> {
        if self.finished {
            return None;
        }
        let got = match &mut self.link {
            Link::Failed(e) => Got::Done(Outcome::Failed(
                e.take().unwrap_or_else(|| RpcError::new(jsonrpc::INTERNAL_ERROR, "failed")),
            )),
            Link::Stdio { bridge, pending, rounds } => {
                let (server, deadline, timeout) = (self.server.as_str(), self.deadline, self.timeout);
                next_stdio(server, (deadline, timeout, until), bridge, pending, rounds)
            }
            Link::Http(remote) => {
                let (server, timeout) = (self.server.as_str(), self.timeout);
                next_http(server, (self.deadline, self.latest, timeout, until), remote)
            }
        };
        Some(match got {
            Got::Done(outcome) => self.done(outcome),
            Got::Abandoned => self.abandoned(),
            Got::Cancelled => self.cancelled(),
            Got::Nothing => return None,
            Got::Message(m) => {
                if jsonrpc::method(&m) == "notifications/progress" {
                    // Progress shows the server at work: the deadline starts again (as the SDKs'
                    // resetTimeoutOnProgress does), up to `max_request_timeout` from the start.
                    self.deadline = (Instant::now() + self.timeout).min(self.latest).max(self.deadline);
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
        match &self.link {
            Link::Stdio { bridge, .. } => bridge.refuse_relay(msg),
            Link::Http(remote) => remote.upstream.refuse_input(msg),
            Link::Failed(_) => {}
        }
    }

    /// The caller went away (the server was told to stop): the breaker learns nothing.
    fn abandoned(&mut self) -> Step {
        self.finished = true;
        self.breakers.record_abandoned(&self.server, Instant::now());
        Step::Done(Err(RpcError::new(jsonrpc::SERVER_UNAVAILABLE, "the client went away")))
    }

    /// The caller's client cancelled it (the server was told): like a caller that went away,
    /// the breaker learns nothing; the caller is answered so that nothing waits on.
    fn cancelled(&mut self) -> Step {
        self.finished = true;
        self.breakers.record_abandoned(&self.server, Instant::now());
        Step::Done(Err(super::bridge::cancelled()))
    }

    fn done(&mut self, outcome: Outcome) -> Step {
        self.finished = true;
        let now = Instant::now();
        match &outcome {
            Outcome::Failed(_) => self.breakers.record_failure(&self.server, now),
            Outcome::Answer(_) => self.breakers.record_success(&self.server, now),
        }
        let (method, tool) = &self.labels;
        crate::metrics::global().server_call(
            &self.server,
            method,
            tool,
            outcome.metric(),
            self.started.elapsed(),
        );
        match (outcome.into_result(), self.on_result.take()) {
            (Ok(v), Some(f)) => Step::Done(Ok(f(v))),
            (outcome, _) => Step::Done(outcome),
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished {
            // The caller went away before the outcome: the server is told to stop, and a breaker
            // trial riding on this call is given back, since it proved nothing either way.
            let reason = "the caller gave up";
            match &mut self.link {
                Link::Stdio { bridge, pending, rounds } => {
                    if let Some(p) = pending.take() {
                        bridge.cancel(p, reason);
                    }
                    if let Some(asking) = rounds.as_mut().and_then(|r| r.asking.take()) {
                        bridge.forget_inputs(&asking.earlier);
                    }
                }
                Link::Http(remote) => {
                    if remote.answer.is_some() {
                        remote.upstream.cancel(&remote.id, reason);
                    }
                    remote.forget_inputs();
                }
                Link::Failed(_) => {}
            }
            self.breakers.record_abandoned(&self.server, Instant::now());
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

pub(super) fn exited(server: &str) -> RpcError {
    RpcError::new(
        jsonrpc::SERVER_UNAVAILABLE,
        format!("server {server} exited while the request was in flight"),
    )
}
