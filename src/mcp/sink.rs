//! Where the gateway's answer to one HTTP request goes: a `Sink` (the API's wrapper of the
//! front's responder; a batch's `Collect`), so an answer given later (`Answer::Then`) needs no
//! thread to wait for it; `blocking` is an answer worked out where waiting is allowed.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::{Answer, fault};
use crate::jsonrpc;

/// Where the answer to one HTTP request goes, as the gateway sees it (the API's wrapper of the
/// front's responder; a batch's collector).
pub trait Sink: Send {
    /// The answer, from any thread; never blocks.
    fn send(self: Box<Self>, answer: Answer);
    /// The answer worked out by `f` where it may block: on a thread of its own.
    fn spawn(self: Box<Self>, f: Box<dyn FnOnce() -> Answer + Send>);
    /// Turns true once the client has gone.
    fn gone(&self) -> Arc<AtomicBool>;
}

pub type Out = Box<dyn Sink>;

/// An answer worked out by `f` on a thread of its own: the request may take long and must not
/// hold a worker.
pub(super) fn blocking(f: impl FnOnce() -> Answer + Send + 'static) -> Answer {
    Answer::Then(Box::new(move |out| out.spawn(Box::new(f))))
}

/// An answer worked out here, waiting as long as it takes (on a thread that may block). The
/// calls it makes watch `gone`, the flag of the client waiting for it.
pub(super) fn settle(answer: Answer, gone: &Arc<AtomicBool>) -> Answer {
    let Answer::Then(f) = answer else { return answer };
    let (tx, rx) = crossbeam_channel::bounded(1);
    f(Box::new(Collect { tx, gone: gone.clone() }));
    rx.recv().unwrap_or_else(|_| fault(500, jsonrpc::INTERNAL_ERROR, "the answer was lost"))
}

/// A sink that hands the answer back to a thread waiting for it (`settle`), on behalf of the
/// client whose `gone` flag it carries.
struct Collect {
    tx: crossbeam_channel::Sender<Answer>,
    gone: Arc<AtomicBool>,
}

impl Sink for Collect {
    fn send(self: Box<Self>, answer: Answer) {
        match answer {
            Answer::Then(f) => f(self),
            answer => {
                let _ = self.tx.send(answer);
            }
        }
    }

    fn spawn(self: Box<Self>, f: Box<dyn FnOnce() -> Answer + Send>) {
        // Its waiter's thread may block: the work runs here.
        self.send(f());
    }

    fn gone(&self) -> Arc<AtomicBool> {
        self.gone.clone()
    }
}
