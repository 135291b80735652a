//! `Later`: work that waits for something, so it must not run on an HTTP worker. It runs on a
//! thread of its own, unless it says what it waits for (a `Wake`: a stdio call's answer); then
//! it is run by whichever thread brings that (the child's stdout reader, as a rule) the moment
//! it comes, and a thread of its own is started only if it does not come quickly.

use crate::exchange::Wake;

/// Work to run once what it waits for is there.
pub struct Later<T> {
    run: Box<dyn FnOnce() -> T + Send>,
    wake: Option<Wake>,
}

impl<T: 'static> Later<T> {
    /// Work that may block as long as it likes: it gets a thread of its own.
    pub fn new(f: impl FnOnce() -> T + Send + 'static) -> Later<T> {
        Later { run: Box::new(f), wake: None }
    }

    /// Work that does not block once `wake` says its outcome is there.
    pub fn on(wake: Wake, f: impl FnOnce() -> T + Send + 'static) -> Later<T> {
        Later { run: Box::new(f), wake: Some(wake) }
    }

    /// The same work, its outcome passed through `f`. `f` runs wherever the work runs (on a
    /// child's reader, for one with a `Wake`): it must not block.
    pub fn map<U: 'static>(self, f: impl FnOnce(T) -> U + Send + 'static) -> Later<U> {
        let run = self.run;
        Later { run: Box::new(move || f(run())), wake: self.wake }
    }

    /// Does the work here, waiting as long as it takes.
    pub fn run(self) -> T {
        (self.run)()
    }

    /// The work, and what it waits for when it says.
    pub fn into_parts(self) -> (Box<dyn FnOnce() -> T + Send>, Option<Wake>) {
        (self.run, self.wake)
    }
}
