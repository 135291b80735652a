//! `Slot`: where one request to the child waits: its `Inbox` (the events its caller takes, or
//! the continuation its caller parked there) and what the routing needs to know of it.

use serde_json::Value;

use super::route::Origin;
use crate::exchange::{Dock, Event, Inbox, Parked, Woken};

pub(super) struct Slot {
    pub inbox: Inbox,
    /// A client's request relayed whole: it may receive progress.
    pub relay: bool,
    /// Whose it is, for the child's requests to its client (`route`).
    pub origin: Option<Origin>,
    /// The caller's own progress token, put back on progress notifications.
    pub client_token: Option<Value>,
    /// The hub's health ping: it cannot be why the child asks its client anything.
    pub ping: bool,
}

impl Slot {
    pub fn new(relay: bool, client_token: Option<Value>) -> Slot {
        Slot { inbox: Inbox::default(), relay, origin: None, client_token, ping: false }
    }

    pub fn push(&self, e: Event) {
        self.inbox.push(e);
    }

    /// The child's stdout closed: no answer will come.
    pub fn end(&self) {
        self.inbox.end();
    }
}

impl Dock for Slot {
    fn park(&self, then: Parked) -> Result<(), (Parked, Woken)> {
        self.inbox.park(then)
    }

    fn unpark(&self) -> Option<Parked> {
        self.inbox.unpark()
    }
}
