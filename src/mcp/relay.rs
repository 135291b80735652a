//! The one relay over an `exchange::Call`, for the REST route and the MCP endpoints alike: the
//! outcome as plain JSON when it comes first, else (for a client that takes SSE) an event
//! stream that passes on each message as the server sends it, the response last. A stdio
//! call is not waited for on the worker: it is finished by whoever brings its answer (the
//! child's stdout reader) and goes on on a thread of its own only if that takes longer than
//! `QUICK_ANSWER`, or something else comes first. A remote call always has a thread.

use std::io::Write;
use std::time::Instant;

use serde_json::Value;

use crate::exchange::{Call, QUICK_ANSWER, Step};
use crate::jsonrpc::{self, RpcError};
use crate::later::Later;

/// Writes an SSE body, event by event, flushing each.
pub type StreamBody = Box<dyn FnOnce(&mut dyn Write) + Send>;

/// Where a relayed call stands when the worker lets go of it.
pub enum Relayed {
    /// It ended: its outcome.
    Done(Result<Value, RpcError>),
    /// It goes on as an event stream (the client takes SSE and the server sent a message).
    Stream(StreamBody),
    /// It goes on later: when the server's answer comes, or on a thread of its own.
    Later(Later<Relayed>),
}

/// What becomes of a call whose server asks its client something the client cannot be sent
/// (a client of the 2026-07-28 revision): it takes the call and the server's request, and
/// gives the result to answer with instead (`input_required`).
pub type Park = Box<dyn FnOnce(Call, Value) -> Value + Send>;

/// Relays a call. `stream_id`: the client's id when it takes an event stream (the last event
/// carries the response under it); without one, messages before the outcome are dropped and
/// the server's requests refused.
pub fn relay(call: Call, stream_id: Option<Value>) -> Relayed {
    relay_parking(call, stream_id, None)
}

/// As `relay`; a request of the server for the client goes to `park` when there is one.
pub fn relay_parking(call: Call, stream_id: Option<Value>, park: Option<Park>) -> Relayed {
    if !call.is_quick() {
        return Relayed::Later(Later::new(move || wait(call, stream_id, None, park)));
    }
    let until = Instant::now() + QUICK_ANSWER;
    // A deadline sooner than that is kept by the thread the timer hands the call to.
    match call.wake(until.min(call.deadline())) {
        // Woken `Ready`, the wait below returns at once.
        Some(wake) => Relayed::Later(Later::on(wake, move || wait(call, stream_id, None, park))),
        None => wait(call, stream_id, Some(until), park),
    }
}

fn is_request(m: &Value) -> bool {
    m.get("method").is_some() && m.get("id").is_some()
}

fn wait(mut call: Call, stream_id: Option<Value>, quick: Option<Instant>, mut park: Option<Park>) -> Relayed {
    loop {
        match call.next(quick.unwrap_or_else(|| call.deadline())) {
            Some(Step::Done(r)) => return Relayed::Done(r),
            Some(Step::Message(m)) if is_request(&m) && park.is_some() => {
                let park = park.take().expect("checked");
                return Relayed::Done(Ok(park(call, m)));
            }
            Some(Step::Message(m)) => match stream_id {
                Some(id) => return Relayed::Stream(stream(call, id, m, park)),
                None => call.refuse(&m),
            },
            None if quick.is_some() => {
                return Relayed::Later(Later::new(move || wait(call, stream_id, None, park)));
            }
            None => {}
        }
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
