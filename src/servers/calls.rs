//! The server table's side of a call: whether a server may take a request now (RUNNING, a place
//! among the calls in flight, its breaker), and what reaches a running server outside a call
//! (a client's cancellation, notifications, answers to its requests). The call itself is an
//! `exchange::Call` over the server's transport.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::{Servers, Status, short};
use crate::config::Transport as Kind;
use crate::error::{Error, Result};
use crate::exchange::{Call, InFlight, Lease, Request, Transport};
use crate::jsonrpc::{self, RpcError};

/// What `try_acquire` found.
pub enum Acquired {
    Ready(Call),
    /// The server is starting: the request is given back, to be sent with `acquire` from a
    /// thread that may wait.
    Starting(Request),
}

impl Servers {
    /// Sends `method` to a server and waits for its result. A STARTING server is waited for
    /// (within the deadline), a SLEEPING one or one STOPPED but not by a person is started for
    /// it; a FAILED one is refused, as is one a person stopped or whose breaker is open (as
    /// -32000 errors). Blocks: never on a worker.
    pub fn call(
        self: &Arc<Self>,
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
    /// request's deadline (so never on a worker); a SLEEPING one or one STOPPED but not by a
    /// person is started for it first (`start_for_use`); FAILED, held by a person's stop, or an
    /// open breaker refuse.
    pub fn acquire(self: &Arc<Self>, name: &str, request: Request) -> Result<Call> {
        match self.open_call(name, request, true)? {
            Acquired::Ready(call) => Ok(call),
            Acquired::Starting(_) => Err(Error::Timeout(format!("server {name} is still starting"))),
        }
    }

    /// As `acquire`, but a server that is STARTING, or would have to be started, gives the
    /// request back at once instead of waiting (to be sent with `acquire` off the worker).
    pub fn try_acquire(self: &Arc<Self>, name: &str, request: Request) -> Result<Acquired> {
        self.open_call(name, request, false)
    }

    /// `open_uncounted`, with a refusal counted in the metrics (the call counts its own outcome).
    fn open_call(self: &Arc<Self>, name: &str, request: Request, wait: bool) -> Result<Acquired> {
        let started = Instant::now();
        let labels = request.method_and_tool();
        let Refused(e, (method, tool)) = match self.open_uncounted(name, request, wait, labels) {
            Ok(acquired) => return Ok(acquired),
            Err(refused) => refused,
        };
        let outcome = match e {
            Error::Timeout(_) => crate::metrics::Outcome::Timeout,
            Error::CircuitOpen(_) => crate::metrics::Outcome::CircuitOpen,
            Error::NotFound(_) => return Err(e),
            _ => crate::metrics::Outcome::Unavailable,
        };
        crate::metrics::global().server_call(name, &method, &tool, outcome, started.elapsed());
        Err(e)
    }

    fn open_uncounted(
        self: &Arc<Self>,
        name: &str,
        request: Request,
        wait: bool,
        labels: (String, String),
    ) -> std::result::Result<Acquired, Refused> {
        let refused = |e| Refused(e, labels.clone());
        let srv = self.must_find(name).map_err(refused)?;
        let started = Instant::now();
        // The launch attempts counted when this call woke the server: until the next one ends
        // (or the server runs), the call waits for it.
        let mut woken: Option<u64> = None;
        let (transport, (timeout, max_timeout), in_flight) = loop {
            let mut st = srv.state.lock();
            let timeout = st.config.request_timeout.unwrap_or(self.ctx.default_timeout);
            let max_timeout = st.config.max_request_timeout.max(timeout);
            let deadline = started + timeout;
            let waking = |st: &super::State<super::Run>| {
                woken.is_some_and(|n| st.attempts == n && st.wakes() && st.status() != Status::Running)
            };
            while wait && (st.status() == Status::Starting || waking(&st)) && Instant::now() < deadline {
                srv.changed.wait_until(&mut st, deadline);
            }
            match (st.status(), st.run()) {
                (Status::Running, Some(run)) => {
                    // Taken under the state lock: the idle check, under it too, sees this call.
                    let max = self.ctx.max_calls;
                    let place =
                        InFlight::take_marked(&srv.in_flight, max, &srv.last_call).ok_or_else(|| {
                            refused(Error::Unavailable(format!(
                                "server {name} has {max} calls in flight already; retry later"
                            )))
                        })?;
                    break (run.transport.clone(), (timeout, max_timeout), place);
                }
                (Status::Starting, _) if !wait => return Ok(Acquired::Starting(request)),
                (Status::Starting, _) => {
                    return Err(refused(Error::Timeout(format!("server {name} is still starting"))));
                }
                _ if waking(&st) => {
                    return Err(refused(Error::Timeout(format!("server {name} did not start in time"))));
                }
                _ if st.held => return Err(refused(super::lifecycle::held_refusal(name))),
                // Asleep, stopped (not by a person) or going to sleep: started for this use (on
                // a thread of its own, so the call waits no longer than its deadline), by a
                // caller that may wait; one that may not gets the request back.
                _ if st.wakes() && woken.is_none() => {
                    if !wait {
                        return Ok(Acquired::Starting(request));
                    }
                    woken = Some(st.attempts);
                    drop(st);
                    self.wake(&srv.name);
                }
                (status, _) => {
                    let why = st.last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
                    let e = Error::Unavailable(format!("server {name} is {}{why}", status.as_str()));
                    return Err(refused(e));
                }
            }
        };
        let max = self.ctx.max_calls_total;
        let in_flight_total = InFlight::take(&self.in_flight, max).ok_or_else(|| {
            refused(Error::Unavailable(format!("the hub has {max} calls in flight already; retry later")))
        })?;
        let breakers = &self.ctx.breakers;
        if !breakers.allow(name, Instant::now()) {
            let snap = breakers.snapshot(name, Instant::now());
            return Err(refused(Error::CircuitOpen(format!(
                "circuit breaker for {name} is {}; retry in {:.0}s",
                snap.state.as_str(),
                snap.retry_after_s.unwrap_or(0.0).ceil()
            ))));
        }
        let lease = Lease {
            server: name.to_string(),
            breakers: breakers.clone(),
            deadline: started + timeout,
            latest: started + max_timeout,
            timeout,
            in_flight: [in_flight, in_flight_total],
            labels,
        };
        Ok(Acquired::Ready(Call::open(lease, transport, request)))
    }

    /// Starts a server for a call, on a `start-*` thread; the call waits for it.
    fn wake(self: &Arc<Self>, name: &str) {
        let (me, name) = (self.clone(), name.to_string());
        self.spawn_thread(format!("start-{}", short(&name)), move || {
            if let Err(e) = me.start_for_use(&name) {
                log::debug!("start of {name} for a call: {e}");
            }
        });
    }

    /// A running server's transport.
    fn transport(&self, name: &str) -> Option<Arc<dyn Transport>> {
        self.find(name).and_then(|srv| srv.state.lock().run().map(|r| r.transport.clone()))
    }

    /// Tells a server to stop working on a request (a client's cancellation), by the hub id it
    /// saw: the call waiting for it ends at once, cancelled.
    pub fn cancel(&self, name: &str, hub_id: &Value, reason: &Value) {
        if let Some(t) = self.transport(name) {
            t.cancel_for_client(hub_id, reason);
        }
    }

    /// Sends a notification to a server.
    pub fn notify(&self, name: &str, method: &str, params: Option<Value>) {
        match self.transport(name) {
            Some(t) => t.notify(method, params),
            None => log::debug!("{method} not sent to {name}: not running"),
        }
    }

    /// Sends the hub's own request to a server without waiting for its answer (what the hub
    /// tells a server once a session has ended).
    pub fn send_only(&self, name: &str, method: &str, params: Option<Value>) {
        match self.transport(name) {
            Some(t) => t.send_only(method, params),
            None => log::debug!("{method} not sent to {name}: not running"),
        }
    }

    /// Whether a server is remote (its calls always block on the network).
    pub fn is_remote(&self, name: &str) -> bool {
        self.find(name).is_some_and(|s| s.state.lock().config.transport != Kind::Stdio)
    }

    /// Hands a client's answer to a request the server sent it (sampling, elicitation, a modern
    /// server's input request) back to the server; false when no such request is waiting.
    pub fn answer_child(&self, name: &str, relay_id: &str, answer: &Value) -> bool {
        self.transport(name).is_some_and(|t| t.answer_child(relay_id, answer))
    }
}

/// A call refused before it reached its server, with its metrics labels.
struct Refused(Error, (String, String));
