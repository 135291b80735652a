//! `Call::then`: a call's continuation kept with it, run by the thread that brings its first
//! event, so that nobody waits for a quick answer; and the one place that decides a call is
//! waited for on a thread of its own (`call-wait`): a call that cannot be parked (a remote
//! one, a modern child's), or one whose first event does not come within `QUICK_ANSWER`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::bridge::Woken;
use super::call::{Call, Step, while_caller_watched};

/// How long a call may wait for a server's first word without a thread of its own: most
/// answers take microseconds; long tools get a thread.
pub const QUICK_ANSWER: Duration = Duration::from_millis(10);

impl Call {
    /// Watches the caller's `gone` flag while waiting: once it turns true, the call is
    /// cancelled at the server and ends, instead of running to its deadline for nobody.
    pub fn watch(&mut self, gone: Arc<AtomicBool>) {
        self.set_watched(gone);
    }

    /// Runs `k` with the call and its first event (a message before the outcome, or the
    /// outcome): on the thread that brings that event (a child's reader: `k` must not block),
    /// or on a `call-wait` thread of its own (see the module's comment).
    pub fn then(self, k: impl FnOnce(Call, Step) + Send + 'static) {
        let until = (Instant::now() + QUICK_ANSWER).min(self.deadline());
        let Some(wake) = self.wake(until) else { return self.wait_then(k) };
        wake.park(Box::new(move |woken| match woken {
            Woken::Ready => {
                let mut call = self;
                match call.next(Instant::now()) {
                    // Here (a child's reader, as a rule) nothing may unwind.
                    Some(step) => {
                        if catch_unwind(AssertUnwindSafe(move || k(call, step))).is_err() {
                            log::error!("a call's continuation panicked; its caller is dropped");
                        }
                    }
                    None => call.wait_then(k),
                }
            }
            Woken::Wait => self.wait_then(k),
        }));
    }

    /// Waits for the first event on a `call-wait` thread, then runs `k` there. With no thread
    /// to be had, the call and its caller are dropped (the server is told; the client's
    /// connection closes) rather than block the thread that asked.
    fn wait_then(self, k: impl FnOnce(Call, Step) + Send + 'static) {
        // The request's id goes with it (a remote call's POST carries it).
        let id = crate::request_id::current();
        let spawned = std::thread::Builder::new()
            .name("call-wait".into())
            .spawn(move || crate::request_id::with(id, move || self.wait_here(k)));
        if let Err(e) = spawned {
            log::warn!("cannot start a thread to wait for a call ({e}); the call is dropped");
        }
    }

    fn wait_here(self, k: impl FnOnce(Call, Step)) {
        {
            let mut call = self;
            let watched = call.watched();
            let mut first = || loop {
                if let Some(step) = call.next(call.deadline()) {
                    break step;
                }
            };
            let step = match watched {
                Some(gone) => while_caller_watched(gone, first),
                None => first(),
            };
            k(call, step);
        }
    }
}
