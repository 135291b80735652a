//! Elicitations waiting for a person. A child's `elicitation/create` that no client can take
//! (none declared it, or the hub cannot tell whose it is) is held here instead of being
//! declined at once: `GET /elicitations` and the dashboard show it, `POST /elicitations/{id}`
//! answers it (a form's content checked against its `requestedSchema` by `form`), and at its
//! deadline it is declined. The deadline is the request's own: that of the call it belongs to
//! when the hub can tell (progress moves it), else `AGENTHUB_ELICITATION_WAIT_S` after it
//! came. It goes, declined, when its call ends first; it goes unanswered when its child
//! withdraws it (`notifications/cancelled`) or exits. At most `MAX_HELD` wait at once; past
//! that the hub declines at once, as before.
//!
//! `Book` is the bookkeeping as a value (no lock, no thread, `now` passed in); `Elicitations`
//! locks it for lookups only. The table's side (`Servers::answer_elicitation`,
//! `expire_elicitations`, `elicitations_gone`) sends answers to children once the lock is
//! released. Holding one costs a child's reader a lookup: it never waits for the person.

mod form;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use serde_json::{Value, json};

use super::Servers;
use crate::error::{Error, Result};
use crate::exchange::Inbox;
use crate::text::for_log;
use crate::time::rfc3339;
use crate::transport::Later;

/// Elicitations held for a person at once; past it, the next is declined at once.
pub const MAX_HELD: usize = 32;

/// The elicitations waiting for a person, behind one lock.
pub struct Elicitations {
    book: Mutex<Book>,
    /// How long one waits when its call is not known (zero: none is held).
    wait: Duration,
}

/// One elicitation waiting for a person.
struct Held {
    id: String,
    server: String,
    /// The child's request under its relay id, which the answer names.
    relay_id: String,
    /// The request's params: `message`, and `requestedSchema` (form) or `url` (URL mode).
    params: Value,
    received: Instant,
    received_at: SystemTime,
    /// Its deadline when its call is not known.
    fallback: Instant,
    /// The inbox of the call it belongs to, when the hub could tell.
    call: Option<Arc<Inbox>>,
}

/// Why a held elicitation leaves without a person's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gone {
    /// Its deadline passed: declined.
    Expired,
    /// The call it belongs to ended first: declined.
    CallEnded,
}

impl Held {
    /// Its deadline, and whether it is its request's (else the setting's).
    fn deadline(&self) -> (Instant, bool) {
        match self.call.as_ref().and_then(|c| c.term().deadline) {
            Some(at) => (at, true),
            None => (self.fallback, false),
        }
    }

    fn due(&self, now: Instant) -> Option<Gone> {
        if now >= self.deadline().0 {
            return Some(Gone::Expired);
        }
        self.call.as_ref().is_some_and(|c| c.term().ended).then_some(Gone::CallEnded)
    }

    fn message(&self) -> &str {
        self.params.get("message").and_then(Value::as_str).unwrap_or("")
    }

    fn is_url(&self) -> bool {
        self.params.get("mode").and_then(Value::as_str) == Some("url")
    }

    /// As `GET /elicitations` shows it.
    fn json(&self, now: Instant) -> Value {
        let (deadline, of_request) = self.deadline();
        let left = deadline.saturating_duration_since(now);
        let at = self.received_at + deadline.saturating_duration_since(self.received);
        let mut v = json!({
            "id": self.id,
            "server": self.server,
            "message": self.message(),
            "mode": if self.is_url() { "url" } else { "form" },
            "received_at": rfc3339(self.received_at),
            "deadline": rfc3339(at),
            "expires_in_s": (left.as_secs_f64() * 10.0).round() / 10.0,
            "deadline_of": if of_request { "request" } else { "setting" },
        });
        match self.is_url() {
            true => {
                v["url"] = self.params.get("url").cloned().unwrap_or(Value::Null);
                v["elicitationId"] = self.params.get("elicitationId").cloned().unwrap_or(Value::Null);
            }
            false => v["requestedSchema"] = self.params.get("requestedSchema").cloned().unwrap_or(json!({})),
        }
        v
    }
}

/// The held elicitations as a value: oldest first, each under an id of its own.
#[derive(Default)]
struct Book {
    next: u64,
    held: Vec<Held>,
}

impl Book {
    /// Keeps `held` under a fresh id, unless `MAX_HELD` wait already.
    fn hold(&mut self, mut held: Held) -> std::result::Result<&Held, String> {
        if self.held.len() >= MAX_HELD {
            return Err(format!("{MAX_HELD} elicitations already wait for a person"));
        }
        self.next += 1;
        held.id = format!("e{}", self.next);
        self.held.push(held);
        Ok(&self.held[self.held.len() - 1])
    }

    fn find(&self, id: &str) -> Option<&Held> {
        self.held.iter().find(|h| h.id == id)
    }

    fn take(&mut self, id: &str) -> Option<Held> {
        let i = self.held.iter().position(|h| h.id == id)?;
        Some(self.held.remove(i))
    }

    fn take_due(&mut self, now: Instant) -> Vec<(Held, Gone)> {
        let mut due = Vec::new();
        let mut i = 0;
        while i < self.held.len() {
            match self.held[i].due(now) {
                Some(why) => due.push((self.held.remove(i), why)),
                None => i += 1,
            }
        }
        due
    }

    fn take_where(&mut self, f: impl Fn(&Held) -> bool) -> Vec<Held> {
        let (gone, kept) = std::mem::take(&mut self.held).into_iter().partition(f);
        self.held = kept;
        gone
    }
}

/// What `Elicitations::hold` kept: its id, and how long it waits.
pub(super) struct Kept {
    pub id: String,
    pub waits: Duration,
    pub of_request: bool,
}

impl Elicitations {
    pub fn new(wait: Duration) -> Elicitations {
        Elicitations { book: Mutex::default(), wait }
    }

    /// Holds a child's `elicitation/create` for a person; why not when it cannot be.
    pub(super) fn hold(
        &self,
        server: &str,
        later: &Later<'_>,
        now: Instant,
    ) -> std::result::Result<Kept, String> {
        if self.wait.is_zero() {
            return Err("AGENTHUB_ELICITATION_WAIT_S is 0: none is held for a person".into());
        }
        let relay_id = later.forward.get("id").and_then(Value::as_str).unwrap_or_default();
        let held = Held {
            id: String::new(),
            server: server.to_string(),
            relay_id: relay_id.to_string(),
            params: later.forward.get("params").cloned().unwrap_or(Value::Null),
            received: now,
            received_at: SystemTime::now(),
            fallback: now + self.wait,
            call: later.call.cloned(),
        };
        let mut book = self.book.lock();
        let kept = book.hold(held)?;
        let (deadline, of_request) = kept.deadline();
        Ok(Kept { id: kept.id.clone(), waits: deadline.saturating_duration_since(now), of_request })
    }

    /// Every held elicitation, oldest first, as the API shows them.
    pub fn list(&self, now: Instant) -> Vec<Value> {
        self.book.lock().held.iter().filter(|h| h.due(now).is_none()).map(|h| h.json(now)).collect()
    }

    /// The child withdrew its request (`notifications/cancelled` naming its relay id): the
    /// message it asked, if it was held.
    pub(super) fn withdrawn(&self, server: &str, relay_id: &str) -> Option<String> {
        let mut gone = self.book.lock().take_where(|h| h.server == server && h.relay_id == relay_id);
        gone.pop().map(|h| h.message().to_string())
    }
}

impl Servers {
    /// The elicitations waiting for a person (`GET /elicitations`).
    pub fn elicitations(&self, now: Instant) -> Vec<Value> {
        self.elicitations.list(now)
    }

    /// A person's answer, `{"action": "accept"|"decline"|"cancel", "content"?}`, checked (a
    /// form's content against its schema) and sent to the child as its request's result.
    /// Unknown, expired or no longer awaited: `NotFound`; bad input: `BadRequest` naming the
    /// field.
    pub fn answer_elicitation(&self, id: &str, body: &Value, now: Instant) -> Result<Value> {
        let action = match body.get("action").and_then(Value::as_str) {
            Some(a @ ("accept" | "decline" | "cancel")) => a,
            _ => {
                return Err(Error::BadRequest(
                    "action: expected \"accept\", \"decline\" or \"cancel\"".into(),
                ));
            }
        };
        let unknown = || {
            Error::NotFound(format!(
                "no elicitation {id} waits for an answer (answered, expired or withdrawn)"
            ))
        };
        let (schema, url) = {
            let book = self.elicitations.book.lock();
            let held = book.find(id).filter(|h| h.due(now).is_none()).ok_or_else(unknown)?;
            (held.params.get("requestedSchema").cloned().unwrap_or(json!({})), held.is_url())
        };
        let mut result = json!({"action": action});
        if action == "accept" && !url {
            let content = body.get("content").cloned().unwrap_or(json!({}));
            form::check(&schema, &content).map_err(Error::BadRequest)?;
            result["content"] = content;
        }
        let held = self.elicitations.book.lock().take(id).ok_or_else(unknown)?;
        if !self.answer_child(&held.server, &held.relay_id, &json!({"result": result})) {
            return Err(Error::NotFound(format!(
                "server {} no longer waits for elicitation {id}",
                held.server
            )));
        }
        let line = format!("answered by a person ({action}): \"{}\"", for_log(held.message(), 200));
        log::info!("server {}: elicitation {id} {line}", held.server);
        self.ctx.activity.record("elicitation", Some(&held.server), line);
        Ok(json!({"id": id, "server": held.server, "action": action}))
    }

    /// Declines what waited past its deadline, or outlived its call (the supervisor, each turn).
    pub(super) fn expire_elicitations(&self, now: Instant) {
        let due = self.elicitations.book.lock().take_due(now);
        for (held, why) in due {
            let waited = now.saturating_duration_since(held.received).as_secs();
            let why = match why {
                Gone::Expired => format!("expired unanswered after {waited} s"),
                Gone::CallEnded => format!("the request it belonged to ended first, after {waited} s"),
            };
            let line = format!("declined: \"{}\" {why}", for_log(held.message(), 200));
            log::info!("server {}: elicitation {} {line}", held.server, held.id);
            self.ctx.activity.record("elicitation", Some(&held.server), line);
            if !self.answer_child(&held.server, &held.relay_id, &json!({"result": {"action": "decline"}})) {
                log::debug!("server {}: elicitation {} found nobody waiting", held.server, held.id);
            }
        }
    }

    /// A server stopped running: its held elicitations go with it (nobody waits for them).
    pub(super) fn elicitations_gone(&self, server: &str) {
        let gone = self.elicitations.book.lock().take_where(|h| h.server == server);
        for held in gone {
            let line = format!("gone with the server, unanswered: \"{}\"", for_log(held.message(), 200));
            self.ctx.activity.record("elicitation", Some(server), line);
        }
    }
}

#[cfg(test)]
mod tests;
