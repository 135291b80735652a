//! The memory all connections' request bodies may hold at once. Each connection's body is
//! capped on its own (`max_body_bytes`), but connections × cap is far more than a hub should
//! hold (256 slow 4 MiB bodies: a gigabyte). So a body larger than `FREE` reserves its size in
//! `Bodies` before it is read (a chunked one as it grows); a reservation that does not fit waits
//! a little for others to end, then the request is refused with 503. The reservation (`Hold`)
//! lasts until the request is answered. Small bodies reserve nothing: they are bounded by the
//! connections, like heads, and never pay for a lock.
//!
//! When the bodies held fall back to nothing after a burst, the allocator is asked to give the
//! freed memory back to the system (`sys::give_back_memory`): glibc keeps it otherwise.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

/// Bodies this large or smaller reserve nothing.
pub const FREE: usize = 64 << 10;
/// How long a body waits for room before its request is refused.
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// Bytes released since memory was last given back, past which the next time no body is held
/// gives it back again (a trim costs a walk of the heap: not after every body).
const TRIM_AFTER: usize = 8 << 20;

/// The budget shared by every connection.
pub struct Bodies {
    limit: usize,
    held: Mutex<Held>,
    freed: Condvar,
}

#[derive(Default)]
struct Held {
    bytes: usize,
    /// Released since memory was last given back.
    released: usize,
    /// Reservations waiting for room.
    waiting: usize,
}

impl Bodies {
    pub fn new(limit: usize) -> Arc<Bodies> {
        Arc::new(Bodies { limit, held: Mutex::default(), freed: Condvar::new() })
    }

    /// Grows `hold` to cover a body of `bytes`, waiting for room until `until`; false when there
    /// was none by then.
    pub fn reserve(self: &Arc<Bodies>, hold: &mut Hold, bytes: usize, until: Instant) -> bool {
        if bytes <= hold.bytes || (bytes <= FREE && hold.bytes == 0) {
            return true;
        }
        let more = bytes - hold.bytes;
        let mut held = self.held.lock();
        while held.bytes + more > self.limit {
            held.waiting += 1;
            let timed_out = self.freed.wait_until(&mut held, until).timed_out();
            held.waiting -= 1;
            if timed_out && held.bytes + more > self.limit {
                return false;
            }
        }
        held.bytes += more;
        drop(held);
        hold.bytes = bytes;
        hold.bodies.get_or_insert_with(|| self.clone());
        true
    }

    /// Bytes reserved now, for tests.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.lock().bytes
    }
}

/// One request body's reservation, given back on drop.
#[derive(Default)]
pub struct Hold {
    bodies: Option<Arc<Bodies>>,
    bytes: usize,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let Some(bodies) = self.bodies.take() else { return };
        let mut held = bodies.held.lock();
        held.bytes -= self.bytes;
        held.released += self.bytes;
        if held.waiting > 0 {
            bodies.freed.notify_all();
        }
        let settled = held.bytes == 0 && held.released >= TRIM_AFTER;
        if settled {
            held.released = 0;
        }
        drop(held);
        if settled {
            crate::sys::give_back_memory();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bodies_past_the_budget_wait_then_are_refused_and_a_release_makes_room() {
        let bodies = Bodies::new(10 << 20);
        let soon = || Instant::now() + Duration::from_millis(20);
        let (mut a, mut b, mut small) = (Hold::default(), Hold::default(), Hold::default());
        assert!(bodies.reserve(&mut small, FREE, soon()), "small bodies reserve nothing");
        assert_eq!(bodies.held(), 0);
        assert!(bodies.reserve(&mut a, 6 << 20, soon()));
        assert!(!bodies.reserve(&mut b, 6 << 20, soon()), "past the budget");
        assert!(bodies.reserve(&mut b, 4 << 20, soon()));
        // A chunked body grows its reservation; past the budget it is refused.
        assert!(!bodies.reserve(&mut b, 5 << 20, soon()));
        assert_eq!(bodies.held(), 10 << 20);
        drop(a);
        assert!(bodies.reserve(&mut b, 9 << 20, soon()), "room once a body is released");
        assert_eq!(bodies.held(), 9 << 20);
        drop(b);
        assert_eq!(bodies.held(), 0);
    }

    #[test]
    fn a_waiting_body_takes_the_room_a_release_makes() {
        let bodies = Bodies::new(4 << 20);
        let mut first = Hold::default();
        assert!(bodies.reserve(&mut first, 4 << 20, Instant::now()));
        let waiter = {
            let bodies = bodies.clone();
            std::thread::Builder::new()
                .name("body-wait".into())
                .spawn(move || {
                    let mut hold = Hold::default();
                    bodies.reserve(&mut hold, 3 << 20, Instant::now() + Duration::from_secs(10))
                })
                .unwrap()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while bodies.held.lock().waiting == 0 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        drop(first);
        assert!(waiter.join().unwrap());
    }
}
