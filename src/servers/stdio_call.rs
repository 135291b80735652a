//! How a call to a stdio child waits for its outcome: the child's messages for the caller,
//! its answer, its death, the deadline and the caller's going away. For a modern (2026-07-28)
//! child, an `input_required` answer is no outcome: its input requests are answered (relayed
//! to the caller as messages, or by the hub) and the request is sent again with the answers,
//! up to `MAX_INPUT_ROUNDS` rounds; every other result is made legacy (`modern::to_legacy`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::bridge::{Bridge, Event, Next, Pending};
use super::call::{Outcome, Request, exited, is_gone, watch_slice};
use super::modern;
use crate::jsonrpc::{self, RpcError};

/// A modern child's request as first sent, and where its `input_required` rounds stand.
pub(super) struct Rounds {
    method: String,
    params: Option<Value>,
    /// Rounds taken (bounded by `MAX_INPUT_ROUNDS`).
    round: u32,
    pub asking: Option<Asking>,
}

/// One `input_required` round: its answers as they come.
pub(super) struct Asking {
    /// The request answered `input_required` (its slot still the caller's).
    pub earlier: Pending,
    waiting: BTreeSet<String>,
    answers: Map<String, Value>,
    state: Option<Value>,
}

impl Rounds {
    pub fn of(request: &Request) -> Rounds {
        let (method, params) = match request {
            Request::Own { method, params } => (method.clone(), params.clone()),
            Request::Relay(msg, _) => (jsonrpc::method(msg).to_string(), msg.get("params").cloned()),
        };
        Rounds { method, params, round: 0, asking: None }
    }
}

/// What a stdio call's wait found.
pub(super) enum Got {
    /// A message for the caller before the outcome.
    Message(Value),
    Done(Outcome),
    /// The caller went away (the child was told, or had nothing in flight).
    Abandoned,
    /// `until` came first.
    Nothing,
    /// The caller's client cancelled the request (the server was told).
    Cancelled,
}

/// The next step of a stdio call (see the module's comment).
pub(super) fn next_stdio(
    server: &str,
    (deadline, timeout, until): (Instant, Duration, Instant),
    bridge: &Arc<Bridge>,
    pending: &mut Option<Pending>,
    rounds: &mut Option<Box<Rounds>>,
) -> Got {
    let answered = |r| Got::Done(Outcome::Answer(r));
    let failed = |e| Got::Done(Outcome::Failed(e));
    loop {
        let (watched, slice) = watch_slice(until);
        let wait = slice.min(deadline);
        if let Some(r) = rounds.as_deref_mut() {
            if let Some(asking) = r.asking.as_mut() {
                if asking.waiting.is_empty() {
                    let asking = r.asking.take().expect("a round");
                    let params =
                        modern::retry_params(r.params.as_ref(), asking.answers, asking.state.as_ref());
                    match bridge.resend(&asking.earlier, &r.method, params) {
                        Ok(p) => *pending = Some(p),
                        Err(e) => return failed(e),
                    }
                    continue;
                }
                let ended = match bridge.next(&asking.earlier, wait) {
                    Next::Event(Event::Message(m)) => return Got::Message(m),
                    Next::Event(Event::Response(_)) => continue,
                    Next::Event(Event::Cancelled) => Got::Cancelled,
                    Next::Event(Event::Input(key, Ok(v))) => {
                        if asking.waiting.remove(&key) {
                            asking.answers.insert(key, v);
                        }
                        continue;
                    }
                    Next::Event(Event::Input(key, Err(e))) => {
                        let why =
                            format!("{server} asked for input {key:?}, which was not given: {}", e.message);
                        answered(Err(RpcError::new(e.code, why)))
                    }
                    Next::Gone => failed(exited(server)),
                    Next::TimedOut if is_gone(&watched) => Got::Abandoned,
                    Next::TimedOut if Instant::now() < deadline => return Got::Nothing,
                    Next::TimedOut => {
                        let why = format!(
                            "request to {server} timed out after {}s waiting for the input it asked for",
                            timeout.as_secs_f64()
                        );
                        failed(RpcError::new(jsonrpc::REQUEST_TIMEOUT, why))
                    }
                };
                bridge.forget_inputs(&asking.earlier);
                r.asking = None;
                return ended;
            }
        }
        let Some(p) = pending.as_ref() else { return Got::Nothing };
        match bridge.next(p, wait) {
            Next::Event(Event::Message(m)) => return Got::Message(m),
            // A late answer for a round already sent again.
            Next::Event(Event::Input(..)) => continue,
            Next::Event(Event::Cancelled) => {
                pending.take();
                return Got::Cancelled;
            }
            Next::Event(Event::Response(msg)) => {
                let earlier = pending.take().expect("a request in flight");
                let outcome = jsonrpc::into_outcome(msg);
                let Some(r) = rounds.as_deref_mut() else { return answered(outcome) };
                match outcome {
                    Ok(v) if modern::is_input_required(&v) => {
                        let (requests, state) = match modern::next_round(server, &mut r.round, &v) {
                            Ok(next) => next,
                            Err(e) => return answered(Err(e)),
                        };
                        let waiting = requests.keys().cloned().collect();
                        let asking = Asking { earlier, waiting, answers: Map::new(), state };
                        bridge.ask_inputs(&asking.earlier, &requests);
                        r.asking = Some(asking);
                    }
                    Ok(mut v) => {
                        modern::to_legacy(&mut v, &r.method);
                        return answered(Ok(v));
                    }
                    Err(e) => return answered(Err(e)),
                }
            }
            Next::Gone => {
                pending.take();
                return failed(exited(server));
            }
            Next::TimedOut if is_gone(&watched) => {
                if let Some(p) = pending.take() {
                    bridge.cancel(p, "the client went away");
                }
                return Got::Abandoned;
            }
            Next::TimedOut if Instant::now() < deadline => return Got::Nothing,
            Next::TimedOut => {
                let p = pending.take().expect("a request in flight");
                return failed(bridge.timed_out(p, timeout));
            }
        }
    }
}
