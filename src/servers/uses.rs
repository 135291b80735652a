//! Starts on behalf of clients (not a person): a server an aggregated client will list is
//! started in the background, and the list waits for it, bounded.

use std::sync::Arc;
use std::time::Instant;

use super::{Servers, Status, short};

impl Servers {
    /// Starts each of these servers for a client's use, each on a `start-*` thread of its own;
    /// returns at once.
    pub fn start_for_use_background(self: &Arc<Self>, names: &[String]) {
        self.start_for_use_on_threads(names, "start for a client");
    }

    /// `start_for_use` of each server on a `start-*` thread of its own; a failure is logged as
    /// `what` of that server.
    pub(super) fn start_for_use_on_threads(self: &Arc<Self>, names: &[String], what: &'static str) {
        self.start_counted(names, what, None);
    }

    /// As `start_for_use_on_threads`, each start counted down in `over` when it is over (its
    /// server RUNNING, or its launch failed).
    pub(super) fn start_counted(
        self: &Arc<Self>,
        names: &[String],
        what: &'static str,
        over: Option<Arc<std::sync::atomic::AtomicIsize>>,
    ) {
        for name in names {
            let (me, name, over) = (self.clone(), name.clone(), over.clone());
            self.spawn_thread(format!("start-{}", short(&name)), move || {
                if let Err(e) = me.start_for_use(&name) {
                    log::warn!("{what} of {name} failed: {e}");
                }
                if let Some(over) = over {
                    over.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                }
            });
        }
    }

    /// Waits until each of these servers is RUNNING or FAILED (or gone), or `until`: a server
    /// still STOPPED is taken to be about to start.
    pub fn wait_up(&self, names: &[String], until: Instant) {
        for name in names {
            let Some(srv) = self.find(name) else { continue };
            let mut st = srv.state.lock();
            while matches!(st.status(), Status::Starting | Status::Stopped | Status::Sleeping)
                && Instant::now() < until
            {
                srv.changed.wait_until(&mut st, until);
            }
        }
    }

    /// Whether every auto-start server has been tried once since the hub started (`/health/ready`).
    pub fn first_starts_over(&self) -> bool {
        self.first_starts.load(std::sync::atomic::Ordering::Acquire) == 0
    }
}
