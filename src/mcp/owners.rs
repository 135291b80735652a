//! What each session owns of a child it shares with others: the tasks it created, the
//! resources it subscribed to, the log level it asked for, and the roots change it announced
//! (the child's next `roots/list` is that session's). A small value with no lock, thread or
//! I/O inside: the gateway locks it, and sends what it returns once the lock is released.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::Target;

/// How long after a session's `notifications/roots/list_changed` the child's `roots/list` is
/// taken to answer it.
pub const ROOTS_ANSWER_WINDOW: Duration = Duration::from_secs(10);
/// Most tasks remembered per server: past it the oldest are forgotten (they expire anyway).
const MAX_TASKS: usize = 10_000;

/// MCP log levels, least severe first (RFC 5424 names).
pub const LEVELS: [&str; 8] =
    ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];

/// A level's rank in `LEVELS`; unknown names rank as `info`.
pub fn rank(level: &str) -> u8 {
    LEVELS.iter().position(|l| *l == level).unwrap_or(1) as u8
}

struct Task {
    session: String,
    expires: Option<Instant>,
}

#[derive(Default)]
pub struct Owners {
    /// (server, task id) → the creating session and when the task expires (its `ttl`), in
    /// creation order per server.
    tasks: HashMap<(String, String), Task>,
    task_order: Vec<(String, String)>,
    /// (server, uri) → the sessions subscribed to it.
    subscriptions: HashMap<(String, String), BTreeSet<String>>,
    /// Session → what it talks to and the lowest level it wants.
    levels: HashMap<String, (Target, u8)>,
    /// Server → the session whose roots changed last, and when.
    roots: HashMap<String, (String, Instant)>,
}

/// What the child must be told once a session has ended.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ended {
    /// Resources nobody is subscribed to any more: (server, uri).
    pub unsubscribe: Vec<(String, String)>,
    /// The log level each affected server should now run at: (server, level).
    pub levels: Vec<(String, &'static str)>,
}

impl Owners {
    /// `expires`: when the task's `ttl` runs out (`None`: the server gave none).
    pub fn task_created(&mut self, server: &str, task: &str, session: &str, expires: Option<Instant>) {
        let key = (server.to_string(), task.to_string());
        let t = Task { session: session.to_string(), expires };
        if self.tasks.insert(key.clone(), t).is_none() {
            self.task_order.push(key);
        }
        if self.task_order.len() > MAX_TASKS {
            let old = self.task_order.remove(0);
            self.tasks.remove(&old);
        }
    }

    pub fn task_owner(&self, server: &str, task: &str) -> Option<&str> {
        self.tasks.get(&(server.to_string(), task.to_string())).map(|t| t.session.as_str())
    }

    /// When a task's `ttl` runs out, if the server said.
    pub fn task_expiry(&self, server: &str, task: &str) -> Option<Instant> {
        self.tasks.get(&(server.to_string(), task.to_string())).and_then(|t| t.expires)
    }

    pub fn owns_task(&self, server: &str, task: &str, session: &str) -> bool {
        self.task_owner(server, task) == Some(session)
    }

    /// True when `session` is the first subscriber of the URI.
    pub fn subscribe(&mut self, server: &str, uri: &str, session: &str) -> bool {
        let set = self.subscriptions.entry((server.to_string(), uri.to_string())).or_default();
        set.insert(session.to_string()) && set.len() == 1
    }

    /// True when `session` was the last subscriber (the child is to be unsubscribed).
    pub fn unsubscribe(&mut self, server: &str, uri: &str, session: &str) -> bool {
        let key = (server.to_string(), uri.to_string());
        let Some(set) = self.subscriptions.get_mut(&key) else { return false };
        let was = set.remove(session);
        if set.is_empty() {
            self.subscriptions.remove(&key);
        }
        was && !self.subscriptions.contains_key(&key)
    }

    pub fn subscribers(&self, server: &str, uri: &str) -> Vec<String> {
        let key = (server.to_string(), uri.to_string());
        self.subscriptions.get(&key).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    pub fn set_level(&mut self, session: &str, target: &Target, level: &str) {
        self.levels.insert(session.to_string(), (target.clone(), rank(level)));
    }

    /// The level a session asked for, if it did.
    pub fn level(&self, session: &str) -> Option<u8> {
        self.levels.get(session).map(|(_, l)| *l)
    }

    /// The lowest level any session of `server` (or of the aggregated endpoint) asked for.
    pub fn child_level(&self, server: &str) -> Option<&'static str> {
        let mine = |t: &Target| matches!(t, Target::Aggregate) || *t == Target::Server(server.to_string());
        let low = self.levels.values().filter(|(t, _)| mine(t)).map(|(_, l)| *l).min()?;
        Some(LEVELS[low as usize])
    }

    pub fn roots_changed(&mut self, server: &str, session: &str, now: Instant) {
        self.roots.insert(server.to_string(), (session.to_string(), now));
    }

    /// The session a child's `roots/list` answers to, once: the last to announce a change,
    /// within `ROOTS_ANSWER_WINDOW`.
    pub fn take_roots(&mut self, server: &str, now: Instant) -> Option<String> {
        let (session, at) = self.roots.remove(server)?;
        (now.saturating_duration_since(at) < ROOTS_ANSWER_WINDOW).then_some(session)
    }

    /// Forgets a session; says what its servers must be told.
    pub fn session_ended(&mut self, session: &str) -> Ended {
        let mut ended = Ended::default();
        let held: Vec<(String, String)> =
            self.subscriptions.iter().filter(|(_, s)| s.contains(session)).map(|(k, _)| k.clone()).collect();
        for (server, uri) in held {
            if self.unsubscribe(&server, &uri, session) {
                ended.unsubscribe.push((server, uri));
            }
        }
        self.tasks.retain(|_, t| t.session != session);
        self.task_order.retain(|k| self.tasks.contains_key(k));
        self.roots.retain(|_, (s, _)| s != session);
        if let Some((target, _)) = self.levels.get(session).cloned() {
            let servers: BTreeSet<String> = match &target {
                Target::Server(s) => [s.clone()].into(),
                Target::Aggregate => self
                    .levels
                    .values()
                    .filter_map(|(t, _)| match t {
                        Target::Server(s) => Some(s.clone()),
                        Target::Aggregate => None,
                    })
                    .collect(),
            };
            let before: Vec<_> = servers.iter().map(|s| self.child_level(s)).collect();
            self.levels.remove(session);
            for (server, was) in servers.into_iter().zip(before) {
                match self.child_level(&server) {
                    Some(now) if Some(now) != was => ended.levels.push((server, now)),
                    _ => {}
                }
            }
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_belong_to_their_creator() {
        let mut o = Owners::default();
        let expires = Instant::now() + Duration::from_secs(60);
        o.task_created("e", "t1", "a", Some(expires));
        assert!(o.owns_task("e", "t1", "a"));
        assert_eq!(o.task_expiry("e", "t1"), Some(expires));
        assert!(!o.owns_task("e", "t1", "b"));
        assert!(!o.owns_task("f", "t1", "a"), "per server");
        o.session_ended("a");
        assert!(!o.owns_task("e", "t1", "a"));
    }

    #[test]
    fn the_child_is_unsubscribed_when_the_last_subscriber_goes() {
        let mut o = Owners::default();
        assert!(o.subscribe("e", "u", "a"));
        assert!(!o.subscribe("e", "u", "b"));
        assert_eq!(o.subscribers("e", "u"), ["a", "b"]);
        assert!(!o.unsubscribe("e", "u", "a"));
        assert!(!o.unsubscribe("e", "u", "c"), "never subscribed");
        assert_eq!(o.session_ended("b").unsubscribe, [("e".to_string(), "u".to_string())]);
        assert!(o.subscribers("e", "u").is_empty());
    }

    #[test]
    fn the_child_runs_at_the_lowest_level_asked() {
        let mut o = Owners::default();
        let e = Target::Server("e".into());
        assert_eq!(o.child_level("e"), None);
        o.set_level("a", &e, "warning");
        o.set_level("b", &e, "debug");
        o.set_level("c", &Target::Server("other".into()), "debug");
        assert_eq!(o.child_level("e"), Some("debug"));
        assert_eq!(o.session_ended("b").levels, [("e".to_string(), "warning")]);
        o.set_level("all", &Target::Aggregate, "info");
        assert_eq!(o.child_level("e"), Some("info"));
        assert_eq!(o.session_ended("all").levels, [("e".to_string(), "warning")]);
        assert_eq!(o.level("a"), Some(rank("warning")));
    }

    #[test]
    fn a_roots_change_is_answered_once_within_its_window() {
        let mut o = Owners::default();
        let t = Instant::now();
        o.roots_changed("e", "a", t);
        assert_eq!(o.take_roots("e", t + Duration::from_secs(1)).as_deref(), Some("a"));
        assert_eq!(o.take_roots("e", t + Duration::from_secs(1)), None, "once");
        o.roots_changed("e", "a", t);
        assert_eq!(o.take_roots("e", t + ROOTS_ANSWER_WINDOW), None, "too late");
    }
}
