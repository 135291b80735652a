//! The activity feed: a bounded log of what happened (server state changes, notifications,
//! installs) for the dashboard and `GET /activity`.

use std::collections::VecDeque;
use std::time::SystemTime;

use parking_lot::Mutex;
use serde::Serialize;

/// Events kept.
const CAPACITY: usize = 1000;
/// Longest message kept per event (a child's log line may be anything).
pub const MESSAGE_BYTES: usize = 4 << 10;

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub seq: u64,
    /// Unix time in milliseconds.
    pub at_ms: u64,
    pub kind: &'static str,
    pub server: Option<String>,
    pub message: String,
    /// A server's log message's level (MCP's names), so a reader can leave out the chatter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<&'static str>,
    /// The HTTP request that caused it, when one did (`X-Request-Id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Default)]
pub struct Activity {
    inner: Mutex<(u64, VecDeque<Event>)>,
}

impl Activity {
    pub fn record(&self, kind: &'static str, server: Option<&str>, message: impl Into<String>) {
        self.record_at(None, kind, server, message)
    }

    /// As `record`, for a server's log message at `level`.
    pub fn record_log(&self, level: &'static str, server: &str, message: impl Into<String>) {
        self.record_at(Some(level), "log", Some(server), message)
    }

    fn record_at(
        &self,
        level: Option<&'static str>,
        kind: &'static str,
        server: Option<&str>,
        message: impl Into<String>,
    ) {
        let at_ms =
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let mut message = message.into();
        if message.len() > MESSAGE_BYTES {
            // A copy of the kept part: a truncated `String` would keep the whole allocation.
            message = crate::text::cut_marked(&message, MESSAGE_BYTES);
        }
        let request_id = crate::request_id::current();
        let mut inner = self.inner.lock();
        inner.0 += 1;
        let event = Event {
            seq: inner.0,
            at_ms,
            kind,
            server: server.map(str::to_string),
            message,
            level,
            request_id,
        };
        if inner.1.len() == CAPACITY {
            inner.1.pop_front();
        }
        inner.1.push_back(event);
    }

    /// Events after `since` (a `seq`), oldest first, at most `limit`.
    pub fn since(&self, since: u64, limit: usize) -> Vec<Event> {
        let inner = self.inner.lock();
        let newer = inner.1.iter().filter(|e| e.seq > since);
        let skip = newer.clone().count().saturating_sub(limit);
        newer.skip(skip).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_events_in_order() {
        let a = Activity::default();
        for i in 0..(CAPACITY + 5) {
            a.record("test", Some("s"), i.to_string());
        }
        let all = a.since(0, usize::MAX);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].message, "5");
        let last = a.since(0, 2);
        assert_eq!(last.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(), ["1003", "1004"]);
        assert!(a.since(last[1].seq, 10).is_empty());
    }

    #[test]
    fn long_messages_are_cut() {
        let a = Activity::default();
        a.record("log", Some("s"), "é".repeat(MESSAGE_BYTES));
        let m = &a.since(0, 1)[0].message;
        assert!(m.len() <= MESSAGE_BYTES + " [...]".len() && m.ends_with(" [...]"), "{}", m.len());
    }

    #[test]
    fn a_cut_message_keeps_no_more_memory_than_its_text() {
        let a = Activity::default();
        a.record("log", Some("s"), "x".repeat(1 << 20));
        let inner = a.inner.lock();
        let kept = &inner.1[0].message;
        assert_eq!(kept.len(), MESSAGE_BYTES + " [...]".len());
        assert!(kept.capacity() <= MESSAGE_BYTES + 64, "capacity {}", kept.capacity());
    }
}
