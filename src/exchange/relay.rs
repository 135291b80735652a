//! The one relay over an `exchange::Call`, for the REST route and the MCP endpoints alike: the
//! outcome as plain JSON when it comes first, else (for a client that takes SSE) an event
//! stream that passes on each message as the server sends it, the response last. Nobody waits
//! for a call here: what becomes of it is handed to a continuation once its first event is
//! there, on the thread that brings that event (`Call::then`).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde_json::Value;

use super::{Call, Step};
use crate::jsonrpc::{self, RpcError};

/// Writes an SSE body, event by event, flushing each.
pub type StreamBody = Box<dyn FnOnce(&mut dyn Write) + Send>;

/// What became of a relayed call.
pub enum Relayed {
    /// It ended: its outcome.
    Done(Result<Value, RpcError>),
    /// It goes on as an event stream (the client takes SSE and the server sent a message).
    Stream(StreamBody),
}

/// What becomes of a call whose server asks its client something the client cannot be sent
/// (a client of the 2026-07-28 revision): it takes the call and the server's request, and
/// gives the result to answer with instead (`input_required`).
pub type Park = Box<dyn FnOnce(Call, Value) -> Value + Send>;

/// How a relay goes: the caller's gone flag, the client's id when it takes an event stream
/// (the last event carries the response under it; without one, messages before the outcome
/// are dropped and the server's requests refused), and where a server's request for a client
/// that cannot be sent it goes.
pub struct Relay {
    pub gone: Option<Arc<AtomicBool>>,
    pub stream_id: Option<Value>,
    pub park: Option<Park>,
}

/// Relays `call`, and hands what becomes of it to `done`: on the thread that brings the call's
/// first event (a child's reader, where `done` must not block) or on a thread of its own.
pub fn relay(mut call: Call, how: Relay, done: impl FnOnce(Relayed) + Send + 'static) {
    let Relay { gone, stream_id, park } = how;
    if let Some(gone) = gone {
        call.watch(gone);
    }
    call.then(move |call, step| first(call, step, stream_id, park, Box::new(done)));
}

type Done = Box<dyn FnOnce(Relayed) + Send>;

fn is_request(m: &Value) -> bool {
    m.get("method").is_some() && m.get("id").is_some()
}

/// The call's first event decides: the outcome; a request for a client that cannot take it
/// (parked); a stream; or, with no stream to send a message on, the message dropped (a request
/// refused) and the next event awaited the same way.
fn first(call: Call, step: Step, stream_id: Option<Value>, park: Option<Park>, done: Done) {
    match step {
        Step::Done(r) => done(Relayed::Done(r)),
        Step::Message(m) if is_request(&m) && park.is_some() => {
            let park = park.expect("checked");
            done(Relayed::Done(Ok(park(call, m))))
        }
        Step::Message(m) => match stream_id {
            Some(id) => done(Relayed::Stream(stream(call, id, m, park))),
            None => {
                call.refuse(&m);
                call.then(move |call, step| first(call, step, None, park, done));
            }
        },
    }
}

fn stream(mut call: Call, id: Value, first: Value, mut park: Option<Park>) -> StreamBody {
    // A failed write means the client went away: returning drops the call, which tells the
    // server and the breaker.
    Box::new(move |w: &mut dyn Write| {
        if write_event(w, &first).is_err() {
            return;
        }
        loop {
            let sent = match call.next(call.deadline()) {
                Some(Step::Message(m)) if is_request(&m) && park.is_some() => {
                    let park = park.take().expect("checked");
                    let _ = write_event(w, &jsonrpc::response(id, Ok(park(call, m))));
                    return;
                }
                Some(Step::Message(m)) => write_event(w, &m),
                Some(Step::Done(r)) => {
                    let _ = write_event(w, &jsonrpc::response(id, r));
                    return;
                }
                None => Ok(()),
            };
            if sent.is_err() {
                return;
            }
        }
    })
}

/// One SSE event, flushed.
pub fn write_event(w: &mut dyn Write, msg: &Value) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(b"event: message\ndata: ");
    serde_json::to_writer(&mut buf, msg).map_err(std::io::Error::other)?;
    buf.extend_from_slice(b"\n\n");
    w.write_all(&buf)?;
    w.flush()
}
