//! The modern clients' calls parked while their clients answer what the server asked
//! (`input_required`), by request state: `Lot`, bookkeeping as a value that its owner locks and
//! that never drops a call itself.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{Map, Value};

use super::Target;
use crate::exchange::Call;

/// Calls parked waiting for their client's retry, at most.
const MAX_PARKED: usize = 1000;

/// A call waiting for its client to answer what its server asked.
pub(super) struct Parked {
    pub call: Call,
    pub target: Target,
    /// The server's requests the client was asked, by the key in `inputRequests`.
    pub asked: Map<String, Value>,
}

/// What a parked thing must say for the lot to keep it.
pub(super) trait Due {
    fn deadline(&self) -> Instant;
}

impl Due for Parked {
    fn deadline(&self) -> Instant {
        self.call.deadline()
    }
}

/// The parked calls by request state, as a value: the owner locks it. It never drops a call
/// itself: a call's drop tells its server (over HTTP for a remote one, up to 2 s), so what
/// leaves the lot is handed back, to be dropped once the lock is released.
pub(super) struct Lot<P = Parked> {
    pub calls: HashMap<String, P>,
}

impl<P> Default for Lot<P> {
    fn default() -> Self {
        Lot { calls: HashMap::new() }
    }
}

impl<P: Due> Lot<P> {
    /// Takes out the calls whose deadline passed.
    pub fn sweep(&mut self, now: Instant) -> Vec<P> {
        let due: Vec<String> =
            self.calls.iter().filter(|(_, p)| p.deadline() <= now).map(|(k, _)| k.clone()).collect();
        due.into_iter().filter_map(|k| self.calls.remove(&k)).collect()
    }

    /// Keeps `parked` under `state`; what it pushed out (past its deadline, or the oldest when
    /// the lot is full) is handed back.
    pub fn admit(&mut self, state: String, parked: P, now: Instant) -> Vec<P> {
        let mut gone = self.sweep(now);
        let oldest = (self.calls.len() >= MAX_PARKED)
            .then(|| self.calls.iter().min_by_key(|(_, p)| p.deadline()).map(|(k, _)| k.clone()))
            .flatten();
        gone.extend(oldest.and_then(|k| self.calls.remove(&k)));
        self.calls.insert(state, parked);
        gone
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Weak};
    use std::time::Duration;

    use parking_lot::Mutex;

    use super::*;

    /// A parked thing that checks, as it is dropped, that its lot is not locked.
    struct Probe {
        deadline: Instant,
        lot: Weak<Mutex<Lot<Probe>>>,
    }

    impl Due for Probe {
        fn deadline(&self) -> Instant {
            self.deadline
        }
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            if let Some(lot) = self.lot.upgrade() {
                assert!(lot.try_lock().is_some(), "a parked call was dropped under the lot's lock");
            }
        }
    }

    #[test]
    fn what_leaves_the_lot_is_dropped_after_its_lock() {
        let lot = Arc::new(Mutex::new(Lot::default()));
        let t = Instant::now();
        let probe = |due: Duration| Probe { deadline: t + due, lot: Arc::downgrade(&lot) };
        for (n, due) in [1, 5, 10].into_iter().enumerate() {
            let gone = lot.lock().admit(format!("s{n}"), probe(Duration::from_secs(due)), t);
            assert!(gone.is_empty());
        }
        // Two are past their deadline when the next comes: handed back, not dropped inside.
        let gone = lot.lock().admit("s3".into(), probe(Duration::from_secs(60)), t + Duration::from_secs(6));
        assert_eq!(gone.len(), 2);
        drop(gone);
        let swept = lot.lock().sweep(t + Duration::from_secs(11));
        assert_eq!(swept.len(), 1);
        drop(swept);
        assert_eq!(lot.lock().calls.len(), 1);
        // Full: the one due first makes room.
        let mut guard = lot.lock();
        for n in 0..MAX_PARKED {
            let _ = guard
                .calls
                .insert(format!("f{n}"), Probe { deadline: t + Duration::from_secs(30), lot: Weak::new() });
        }
        drop(guard);
        let gone = lot.lock().admit("last".into(), probe(Duration::from_secs(90)), t);
        assert_eq!(gone.len(), 1);
        drop(gone);
    }
}
