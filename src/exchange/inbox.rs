//! `Inbox`: where one request's events land, pushed by the carrier's reader and taken by the
//! request's call, which waits on a condvar or parks a continuation for the pusher to
//! run. A mutex and a condvar, not a channel: under load a channel's receiver spins and yields
//! before it sleeps, taking the CPU a child needs.

use std::collections::VecDeque;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::{Event, Next, Parked, Woken};
use crate::jsonrpc::RpcError;

#[derive(Default)]
pub struct Inbox {
    events: Mutex<Events>,
    ready: Condvar,
}

#[derive(Default)]
struct Events {
    queue: VecDeque<Event>,
    /// No answer will come (the carrier closed).
    ended: bool,
    /// A caller that does not wait on `ready` but is run by the next event.
    parked: Option<Parked>,
}

/// Whether an event ends the wait for the outcome (else it is only a step on the way).
fn is_final(e: &Event) -> bool {
    matches!(e, Event::Response(_) | Event::Cancelled)
}

impl Inbox {
    pub fn push(&self, e: Event) {
        let woken = if is_final(&e) { Woken::Ready } else { Woken::Wait };
        let parked = {
            let mut ev = self.events.lock();
            ev.queue.push_back(e);
            ev.parked.take()
        };
        // Parked on an empty queue: this event is the first.
        self.tell(parked, woken);
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
            if let Some(e) = ev.queue.pop_front() {
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
            let ready = ev.queue.front().is_none_or(is_final);
            return Err((then, if ready { Woken::Ready } else { Woken::Wait }));
        }
        ev.parked = Some(then);
        Ok(())
    }

    /// Takes back what is parked, if it still is (its time has passed).
    pub fn unpark(&self) -> Option<Parked> {
        self.events.lock().parked.take()
    }
}
