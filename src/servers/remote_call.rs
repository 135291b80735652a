//! How a call to a remote server waits for its outcome: the request POSTed on the first
//! `next` (the POST blocks, so on the thread that waits), its answer read message by message
//! from `Upstream::send`'s pieces. For a modern (2026-07-28) server, as over stdio
//! (`stdio_call`), an `input_required` answer is no outcome: its input requests are answered
//! and the request is POSTed again with the answers, up to `MAX_INPUT_ROUNDS` rounds; every
//! other result is made legacy.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::{Map, Value};

use super::bridge::{Can, Event};
use super::call::{Outcome, Request, is_gone, watch_slice};
use super::modern;
use super::stdio_call::Got;
use super::upstream::{Piece, Pieces, Upstream};
use crate::jsonrpc::{self, RpcError};

/// A remote request: sent on the first `next`, then its answer read message by message.
pub(super) struct Remote {
    pub upstream: Arc<Upstream>,
    pub request: Option<Value>,
    pub answer: Option<Pieces>,
    pub id: Value,
    /// A modern server's request, kept to be sent again with its inputs' answers.
    rounds: Option<Box<Rounds>>,
}

struct Rounds {
    method: String,
    params: Option<Value>,
    /// What the caller's client can answer (`None`: a REST or hub request).
    can: Option<Can>,
    round: u32,
    asking: Option<Asking>,
}

struct Asking {
    desk: (Sender<Event>, Receiver<Event>),
    waiting: BTreeSet<String>,
    answers: Map<String, Value>,
    state: Option<Value>,
}

impl Remote {
    pub fn new(upstream: Arc<Upstream>, request: &Request) -> Remote {
        let id = upstream.fresh_id();
        let mut msg = request.message();
        let rounds = upstream.is_modern().then(|| {
            let can = match request {
                Request::Own { .. } => None,
                Request::Relay(_, caller) => Some(caller.can),
            };
            msg = upstream.with_envelope(msg.clone(), can);
            let method = jsonrpc::method(&msg).to_string();
            let params = match request {
                Request::Own { params, .. } => params.clone(),
                Request::Relay(m, _) => m.get("params").cloned(),
            };
            Box::new(Rounds { method, params, can, round: 0, asking: None })
        });
        Remote { upstream, request: Some(msg), answer: None, id, rounds }
    }

    /// The call ends: what still waits for its inputs' answers is forgotten.
    pub fn forget_inputs(&mut self) {
        if let Some(asking) = self.rounds.as_mut().and_then(|r| r.asking.take()) {
            self.upstream.forget_inputs(&asking.desk.0);
        }
    }
}

/// The next step of a remote call (see the module's comment). `latest`: how long the answer
/// may take if progress keeps coming.
pub(super) fn next_http(
    server: &str,
    (deadline, latest, timeout, until): (Instant, Instant, Duration, Instant),
    remote: &mut Remote,
) -> Got {
    let answered = |r| Got::Done(Outcome::Answer(r));
    let failed = |e| Got::Done(Outcome::Failed(e));
    loop {
        let (watched, slice) = watch_slice(until);
        let wait = slice.min(deadline);
        if let Some(r) = remote.rounds.as_deref_mut() {
            if let Some(asking) = r.asking.as_mut() {
                if asking.waiting.is_empty() {
                    let asking = r.asking.take().expect("a round");
                    let params =
                        modern::retry_params(r.params.as_ref(), asking.answers, asking.state.as_ref());
                    let msg = jsonrpc::request(0, &r.method, Some(params));
                    remote.request = Some(remote.upstream.with_envelope(msg, r.can));
                    continue;
                }
                let ended = match asking.desk.1.recv_deadline(wait) {
                    Ok(Event::Message(m)) => return Got::Message(m),
                    Ok(Event::Response(_)) => continue,
                    Ok(Event::Cancelled) => Got::Cancelled,
                    Ok(Event::Input(key, Ok(v))) => {
                        if asking.waiting.remove(&key) {
                            asking.answers.insert(key, v);
                        }
                        continue;
                    }
                    Ok(Event::Input(key, Err(e))) => {
                        let why =
                            format!("{server} asked for input {key:?}, which was not given: {}", e.message);
                        answered(Err(RpcError::new(e.code, why)))
                    }
                    Err(RecvTimeoutError::Timeout) if is_gone(&watched) => Got::Abandoned,
                    Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => return Got::Nothing,
                    Err(_) => {
                        let why = format!(
                            "request to {server} timed out after {}s waiting for the input it asked for",
                            timeout.as_secs_f64()
                        );
                        failed(RpcError::new(jsonrpc::REQUEST_TIMEOUT, why))
                    }
                };
                remote.forget_inputs();
                return ended;
            }
        }
        let Remote { upstream, request, answer, id, rounds } = remote;
        if let Some(msg) = request.take() {
            let remaining = latest.saturating_duration_since(Instant::now());
            match upstream.send(id.clone(), msg, remaining) {
                Ok(rx) => *answer = Some(rx),
                Err(e) => return failed(e),
            }
        }
        let Some(rx) = answer.as_ref() else { return Got::Nothing };
        match rx.recv_deadline(wait) {
            Ok(Piece { message: Ok(m), last: false }) => return Got::Message(m),
            Ok(Piece { message: Err(e), .. }) if e.code == jsonrpc::REQUEST_CANCELLED => {
                *answer = None;
                return Got::Cancelled;
            }
            // The answer could not be read: the hub's failure, not the server's answer.
            Ok(Piece { message: Err(e), .. }) => {
                *answer = None;
                return failed(e);
            }
            Ok(Piece { message: Ok(msg), .. }) => {
                *answer = None;
                let outcome = jsonrpc::into_outcome(msg);
                let Some(r) = rounds.as_deref_mut() else { return answered(outcome) };
                match outcome {
                    Ok(v) if modern::is_input_required(&v) => {
                        let (requests, state) = match modern::next_round(server, &mut r.round, &v) {
                            Ok(next) => next,
                            Err(e) => return answered(Err(e)),
                        };
                        let desk = crossbeam_channel::unbounded();
                        let waiting = requests.keys().cloned().collect();
                        upstream.ask_inputs(&desk.0, r.can, &requests);
                        r.asking = Some(Asking { desk, waiting, answers: Map::new(), state });
                    }
                    Ok(mut v) => {
                        modern::to_legacy(&mut v, &r.method);
                        return answered(Ok(v));
                    }
                    Err(e) => return answered(Err(e)),
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                *answer = None;
                return failed(RpcError::new(
                    jsonrpc::SERVER_UNAVAILABLE,
                    "the answer ended without a response",
                ));
            }
            Err(RecvTimeoutError::Timeout) if is_gone(&watched) => {
                *answer = None;
                upstream.cancel(id, "the client went away");
                return Got::Abandoned;
            }
            Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => return Got::Nothing,
            Err(RecvTimeoutError::Timeout) => {
                *answer = None;
                let reason = format!("timed out after {}s", timeout.as_secs_f64());
                upstream.cancel(id, &reason);
                let e = RpcError::new(jsonrpc::REQUEST_TIMEOUT, format!("request to {server} {reason}"));
                return failed(e);
            }
        }
    }
}
