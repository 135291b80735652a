//! `Queue`: a closable queue handed from producers to the thread that drains it (a child's
//! stdin writer, an SSE stream's writer, the HTTP workers). A mutex and a condvar rather than a channel: under
//! load a channel's receiver spins and yields before it sleeps, which on a small machine takes
//! the CPU the other threads need.

use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

pub struct Queue<T> {
    /// The items, and whether the queue is closed.
    state: Mutex<(VecDeque<T>, bool)>,
    ready: Condvar,
}

/// What `next` found.
pub enum Delivery<T> {
    Item(T),
    /// Nothing came within the wait.
    Idle,
    Closed,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue { state: Mutex::new((VecDeque::new(), false)), ready: Condvar::new() }
    }
}

impl<T> Queue<T> {
    /// False once closed (the item is dropped).
    pub fn push(&self, item: T) -> bool {
        let mut q = self.state.lock();
        if q.1 {
            return false;
        }
        q.0.push_back(item);
        self.ready.notify_one();
        true
    }

    /// As `push`, but false (the item dropped) when `max` items are already waiting.
    pub fn push_within(&self, item: T, max: usize) -> bool {
        let mut q = self.state.lock();
        if q.1 || q.0.len() >= max {
            return false;
        }
        q.0.push_back(item);
        self.ready.notify_one();
        true
    }

    /// No more items are taken; what is queued can still be drained.
    pub fn close(&self) {
        self.state.lock().1 = true;
        self.ready.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().1
    }

    /// Everything queued, waiting for at least one item; None once closed and empty.
    pub fn take_all(&self) -> Option<Vec<T>> {
        let mut q = self.state.lock();
        loop {
            if !q.0.is_empty() {
                return Some(q.0.drain(..).collect());
            }
            if q.1 {
                return None;
            }
            self.ready.wait(&mut q);
        }
    }

    /// The next item, waiting for one (several threads may wait: each item goes to one);
    /// None once closed and empty.
    pub fn pop(&self) -> Option<T> {
        let mut q = self.state.lock();
        loop {
            if let Some(item) = q.0.pop_front() {
                return Some(item);
            }
            if q.1 {
                return None;
            }
            self.ready.wait(&mut q);
        }
    }

    /// The next item, waiting at most `wait`.
    pub fn next(&self, wait: Duration) -> Delivery<T> {
        let mut q = self.state.lock();
        if q.0.is_empty() && !q.1 {
            self.ready.wait_for(&mut q, wait);
        }
        match q.0.pop_front() {
            Some(item) => Delivery::Item(item),
            None if q.1 => Delivery::Closed,
            None => Delivery::Idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_then_close() {
        let q = Queue::default();
        assert!(q.push(1) && q.push(2));
        assert_eq!(q.take_all(), Some(vec![1, 2]));
        assert!(matches!(q.next(Duration::from_millis(1)), Delivery::Idle));
        q.push(3);
        q.close();
        assert!(!q.push(4), "closed queues take nothing");
        assert!(matches!(q.next(Duration::ZERO), Delivery::Item(3)), "queued items still drain");
        assert!(matches!(q.next(Duration::ZERO), Delivery::Closed));
        assert_eq!(q.take_all(), None);
    }
}
