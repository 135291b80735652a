//! `Inbox`: where one request's events land, pushed by the carrier's reader and taken by the
//! request's call, which waits on a condvar or parks a continuation for the pusher to
//! run. A mutex and a condvar, not a channel: under load a channel's receiver spins and yields
//! before it sleeps, taking the CPU a child needs.
//!
//! What waits unread is bounded: once `COALESCE_AFTER` messages wait, a progress notification
//! replaces an unread one of the same token (only the latest progress matters; a caller that
//! keeps up sees every one, as it would connected directly), and the other messages for the caller are held up
//! to `UNREAD_MESSAGES` and `UNREAD_BYTES`; past either the call fails with an error naming the
//! bound (a client that does not read its stream cannot make the hub hold what its server
//! sends), and the carrier forgets the request.

use std::collections::VecDeque;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use serde_json::Value;

use super::{Event, Next, Parked, Woken};
use crate::jsonrpc::{self, RpcError};

/// Unread messages past which a progress notification replaces an unread one of its token.
pub const COALESCE_AFTER: usize = 16;
/// Messages for its caller (progress of other tokens, a server's requests) a call holds
/// unread at most.
pub const UNREAD_MESSAGES: usize = 256;
/// Bytes (as the server wrote them) of those messages a call holds unread at most; one message
/// alone may be larger (its carrier bounds it).
pub const UNREAD_BYTES: usize = 4 << 20;

#[derive(Default)]
pub struct Inbox {
    events: Mutex<Events>,
    ready: Condvar,
    /// The deadline of the call reading it, as the call last set it: what a request of the
    /// server for that call's client may wait for (a person answering it on the dashboard).
    term: Mutex<Term>,
}

/// The time left to the call an inbox belongs to, as a request of its server for its client
/// sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Term {
    /// The call's deadline (progress moves it); `None` until a call has set one.
    pub deadline: Option<Instant>,
    /// The call has ended (answered, timed out, cancelled, its caller gone).
    pub ended: bool,
}

#[derive(Default)]
struct Events {
    /// Each event with its size in bytes (0 but for messages).
    queue: VecDeque<(Event, usize)>,
    /// Messages in `queue`, their bytes, and how many of them are progress.
    messages: usize,
    bytes: usize,
    progress: usize,
    /// Past a bound: the call's answer is the error queued last; nothing more is taken.
    failed: bool,
    /// No answer will come (the carrier closed).
    ended: bool,
    /// A caller that does not wait on `ready` but is run by the next event.
    parked: Option<Parked>,
}

/// Whether an event ends the wait for the outcome (else it is only a step on the way).
fn is_final(e: &Event) -> bool {
    matches!(e, Event::Response(_) | Event::Cancelled)
}

/// The token of a progress notification.
fn progress_token(e: &Event) -> Option<&Value> {
    match e {
        Event::Message(m) if jsonrpc::method(m) == "notifications/progress" => {
            m.pointer("/params/progressToken")
        }
        _ => None,
    }
}

/// The error a call ends with when what waits unread for its caller passes a bound.
fn overflow() -> Value {
    let message = format!(
        "the call was ended: more than {UNREAD_MESSAGES} messages or {} MiB for its client waited unread \
         (the hub holds no more per call)",
        UNREAD_BYTES >> 20
    );
    jsonrpc::error(Value::Null, jsonrpc::SERVER_UNAVAILABLE, &message)
}

impl Inbox {
    pub fn push(&self, e: Event) {
        let e = match e {
            Event::Message(m) => {
                self.push_message(m, 0);
                return;
            }
            e => e,
        };
        let woken = if is_final(&e) { Woken::Ready } else { Woken::Wait };
        let parked = {
            let mut ev = self.events.lock();
            if ev.failed {
                return;
            }
            ev.queue.push_back((e, 0));
            ev.parked.take()
        };
        // Parked on an empty queue: this event is the first.
        self.tell(parked, woken);
    }

    /// A message for the caller, `bytes` long as its server wrote it: a progress notification
    /// replaces the unread one of its token. False when it was not taken: past a bound (the
    /// call now fails with the error that names it) or after; the carrier then forgets the
    /// request and tells its server.
    pub fn push_message(&self, m: Value, bytes: usize) -> bool {
        let e = Event::Message(m);
        let (parked, woken) = {
            let mut ev = self.events.lock();
            if ev.failed {
                return false;
            }
            let token = progress_token(&e);
            if token.is_some() && ev.progress > 0 && ev.messages >= COALESCE_AFTER {
                let older =
                    ev.queue.iter().position(|(q, _)| progress_token(q).is_some_and(|t| Some(t) == token));
                if let Some(i) = older {
                    if let Some((_, size)) = ev.queue.remove(i) {
                        ev.messages -= 1;
                        ev.bytes -= size;
                        ev.progress -= 1;
                    }
                }
            }
            if ev.messages >= UNREAD_MESSAGES || ev.messages > 0 && ev.bytes + bytes > UNREAD_BYTES {
                ev.failed = true;
                ev.queue.push_back((Event::Response(overflow()), 0));
                (ev.parked.take(), None)
            } else {
                ev.progress += usize::from(token.is_some());
                ev.messages += 1;
                ev.bytes += bytes;
                ev.queue.push_back((e, bytes));
                (ev.parked.take(), Some(Woken::Wait))
            }
        };
        self.tell(parked, woken.unwrap_or(Woken::Ready));
        woken.is_some()
    }

    /// No answer will come: the waiter hears at once.
    pub fn end(&self) {
        let parked = {
            let mut ev = self.events.lock();
            ev.ended = true;
            ev.parked.take()
        };
        self.tell(parked, Woken::Ready);
    }

    /// Runs what was parked (taken out under the lock, run after it), else wakes the waiter.
    fn tell(&self, parked: Option<Parked>, woken: Woken) {
        match parked {
            Some(then) => then(woken),
            None => {
                self.ready.notify_one();
            }
        }
    }

    /// The next event, waiting until `until`; once the inbox has ended and is empty,
    /// `Next::Gone` with what `ended` says.
    pub fn next(&self, until: Instant, ended: impl FnOnce() -> RpcError) -> Next {
        let mut ev = self.events.lock();
        loop {
            if let Some((e, bytes)) = ev.queue.pop_front() {
                if let Event::Message(_) = e {
                    ev.messages -= 1;
                    ev.bytes -= bytes;
                    ev.progress -= usize::from(progress_token(&e).is_some());
                }
                return Next::Event(e);
            }
            if ev.ended {
                drop(ev);
                return Next::Gone(ended());
            }
            // A look without a wait (a poll, a continuation run by a reader) takes no sleep.
            if Instant::now() >= until
                || self.ready.wait_until(&mut ev, until).timed_out() && ev.queue.is_empty() && !ev.ended
            {
                return Next::TimedOut;
            }
        }
    }

    /// Parks `then`. Refused, with how it would be woken, when an event is already there.
    pub fn park(&self, then: Parked) -> Result<(), (Parked, Woken)> {
        let mut ev = self.events.lock();
        if ev.ended || !ev.queue.is_empty() {
            let ready = ev.queue.front().is_none_or(|(e, _)| is_final(e));
            return Err((then, if ready { Woken::Ready } else { Woken::Wait }));
        }
        ev.parked = Some(then);
        Ok(())
    }

    /// The call's deadline, now or moved (by progress, or a task's life).
    pub fn set_deadline(&self, at: Instant) {
        self.term.lock().deadline = Some(at);
    }

    /// The call has ended: nothing for its client is waited for any more.
    pub fn call_ended(&self) {
        self.term.lock().ended = true;
    }

    pub fn term(&self) -> Term {
        *self.term.lock()
    }

    /// Takes back what is parked, if it still is (its time has passed).
    pub fn unpark(&self) -> Option<Parked> {
        self.events.lock().parked.take()
    }
}
