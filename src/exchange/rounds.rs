//! How a call waits for its outcome, over any transport: the server's messages for the caller,
//! its answer, its death, the deadline and the caller's going away. For a modern (2026-07-28)
//! server an `input_required` answer is no outcome: its input requests are answered (relayed
//! to the caller as messages, or by the hub, through the flight) and the request is sent again
//! with the answers under the same hub id, up to `MAX_INPUT_ROUNDS` rounds; every other result
//! is made legacy (`modern::to_legacy`). Written once here; the carriers only move messages.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::call::Outcome;
use super::{Event, Flight, Next, Request, modern};
use crate::jsonrpc::{self, RpcError};

/// A modern server's request as first sent, and where its `input_required` rounds stand.
pub(super) struct Rounds {
    method: String,
    params: Option<Value>,
    /// Rounds taken (bounded by `MAX_INPUT_ROUNDS`).
    round: u32,
    asking: Option<Asking>,
}

/// One `input_required` round: its answers as they come.
struct Asking {
    waiting: BTreeSet<String>,
    answers: Map<String, Value>,
    state: Option<Value>,
}

impl Rounds {
    pub fn of(request: &Request) -> Rounds {
        let (method, params) = request.method_and_params();
        Rounds { method, params, round: 0, asking: None }
    }
}

/// What one wait found.
pub(super) enum Got {
    /// A message for the caller before the outcome.
    Message(Value),
    Done(Outcome),
    /// The caller went away (the server was told, or had nothing in flight).
    Abandoned,
    /// The caller's client cancelled the request (the server was told).
    Cancelled,
    /// `until` came first.
    Nothing,
}

/// What a wait is bounded by.
pub(super) struct Wait<'a> {
    pub server: &'a str,
    pub deadline: Instant,
    pub latest: Instant,
    pub timeout: Duration,
    pub until: Instant,
    /// The caller's "gone" flag, when someone watches it: the wait is cut in slices to look.
    pub gone: Option<&'a AtomicBool>,
}

impl Wait<'_> {
    /// How long the next look waits.
    fn slice(&self) -> Instant {
        let until = match self.gone {
            Some(_) => self.until.min(Instant::now() + super::then::WATCH_SLICE),
            None => self.until,
        };
        until.min(self.deadline)
    }

    fn caller_gone(&self) -> bool {
        self.gone.is_some_and(|g| g.load(Ordering::Acquire))
    }

    fn timed_out(&self, what: &str) -> RpcError {
        let secs = self.timeout.as_secs_f64();
        RpcError::new(
            jsonrpc::REQUEST_TIMEOUT,
            format!("request to {} timed out after {secs}s{what}", self.server),
        )
    }
}

/// The next step of a call (see the module's comment).
pub(super) fn next(w: &Wait, flight: &mut dyn Flight, rounds: &mut Option<Box<Rounds>>) -> Got {
    let answered = |r| Got::Done(Outcome::Answer(r));
    let failed = |e| Got::Done(Outcome::Failed(e));
    loop {
        let wait = w.slice();
        if let Some(r) = rounds.as_deref_mut() {
            if let Some(asking) = r.asking.as_mut() {
                if asking.waiting.is_empty() {
                    let Some(asking) = r.asking.take() else { continue };
                    let params =
                        modern::retry_params(r.params.as_ref(), asking.answers, asking.state.as_ref());
                    match flight.resend(&r.method, params) {
                        Ok(()) => continue,
                        Err(e) => return failed(e),
                    }
                }
                let ended = match flight.next(wait, w.latest) {
                    Next::Event(Event::Message(m)) => return Got::Message(m),
                    // A late answer of a round already over.
                    Next::Event(Event::Response(_)) => continue,
                    Next::Event(Event::Cancelled) => Got::Cancelled,
                    Next::Event(Event::Input(key, Ok(v))) => {
                        if asking.waiting.remove(&key) {
                            asking.answers.insert(key, v);
                        }
                        continue;
                    }
                    Next::Event(Event::Input(key, Err(e))) => {
                        let why = format!(
                            "{} asked for input {key:?}, which was not given: {}",
                            w.server, e.message
                        );
                        answered(Err(RpcError::new(e.code, why)))
                    }
                    Next::Gone(e) => failed(e),
                    Next::TimedOut if w.caller_gone() => Got::Abandoned,
                    Next::TimedOut if Instant::now() < w.deadline => return Got::Nothing,
                    Next::TimedOut => failed(w.timed_out(" waiting for the input it asked for")),
                };
                flight.forget_inputs();
                r.asking = None;
                return ended;
            }
        }
        match flight.next(wait, w.latest) {
            Next::Event(Event::Message(m)) => return Got::Message(m),
            // A late answer for a round already sent again.
            Next::Event(Event::Input(..)) => continue,
            Next::Event(Event::Cancelled) => return Got::Cancelled,
            Next::Event(Event::Response(msg)) => {
                let outcome = jsonrpc::into_outcome(msg);
                let Some(r) = rounds.as_deref_mut() else { return answered(outcome) };
                match outcome {
                    Ok(v) if modern::is_input_required(&v) => {
                        let (requests, state) = match modern::next_round(w.server, &mut r.round, &v) {
                            Ok(next) => next,
                            Err(e) => return answered(Err(e)),
                        };
                        let waiting = requests.keys().cloned().collect();
                        r.asking = Some(Asking { waiting, answers: Map::new(), state });
                        flight.ask_inputs(&requests);
                    }
                    Ok(mut v) => {
                        modern::to_legacy(&mut v, &r.method);
                        return answered(Ok(v));
                    }
                    Err(e) => return answered(Err(e)),
                }
            }
            Next::Gone(e) => return failed(e),
            Next::TimedOut if w.caller_gone() => {
                flight.cancel("the client went away");
                return Got::Abandoned;
            }
            Next::TimedOut if Instant::now() < w.deadline => return Got::Nothing,
            Next::TimedOut => {
                let e = w.timed_out("");
                flight.cancel(&format!("timed out after {}s", w.timeout.as_secs_f64()));
                return failed(e);
            }
        }
    }
}
