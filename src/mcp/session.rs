//! MCP sessions of the Streamable HTTP endpoints: unguessable ids, idle expiry, a cap, the
//! requests each has in flight, and its open GET streams.
//!
//! The cap cannot be used to push a working client out. A session that has made no request
//! since its handshake (`initialize` and `notifications/initialized` alone) is fresh: fresh
//! sessions are at most `MAX_FRESH`, and past it the least recently seen of them goes, so a
//! flood of handshakes evicts only itself. A session in use goes only when the table is full
//! and it has been idle for `EVICT_FLOOR` at least, with no stream open; when no session can go,
//! a new one is refused.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;

use crate::exchange::Can;
use crate::queue::Queue;

/// Sessions idle this long are forgotten (an open GET stream is use: such a session stays).
pub const IDLE_EXPIRY: Duration = Duration::from_secs(3600);
/// Most sessions kept, fresh ones included.
pub const MAX_SESSIONS: usize = 1000;
/// Most sessions kept that made no request after their handshake: past it the least recently
/// seen of them is evicted.
pub const MAX_FRESH: usize = 100;
/// How long a session in use must have been idle before a full table may evict it.
pub const EVICT_FLOOR: Duration = Duration::from_secs(600);
/// Messages a GET stream may have waiting for a client that does not read them: past it the
/// stream is dropped (the client reconnects), so a stalled client cannot grow the hub.
pub const STREAM_BACKLOG: usize = 1000;

/// What a session talks to: one server, or the aggregated endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Server(String),
    Aggregate,
}

/// The client of a session, as its `initialize` described it.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub can: Can,
    pub name: Option<String>,
    /// `X-Client-Name` on its `initialize`, when sent.
    pub header: Option<String>,
    /// It opted in to tasks as servers may make them (the V2 extension,
    /// `extensions["io.modelcontextprotocol/tasks"]`).
    pub tasks_v2: bool,
    /// The name of the tokens-file token it presented (its profile applies).
    pub token: Option<String>,
}

impl Client {
    pub fn of(initialize: &Value) -> Client {
        let params = initialize.get("params");
        let caps = params.and_then(|p| p.get("capabilities")).cloned().unwrap_or(Value::Null);
        let name =
            params.and_then(|p| p.pointer("/clientInfo/name")).and_then(Value::as_str).map(str::to_string);
        let tasks_v2 = caps.pointer("/extensions/io.modelcontextprotocol~1tasks").is_some();
        Client { can: Can::of(&caps), name, header: None, tasks_v2, token: None }
    }

    /// A client that said nothing of itself (a REST caller).
    pub fn none() -> Client {
        Client::of(&Value::Null)
    }
}

/// A server→client stream (one open GET): messages queue here until its thread writes them.
pub type Stream = Queue<Value>;

pub struct Session {
    pub id: String,
    pub target: Target,
    /// The protocol version agreed at initialize.
    pub version: String,
    /// What its client declared it can answer, and its name (`clientInfo.name`).
    pub client: Client,
    /// When it began: a cold `/mcp`'s first lists may wait for servers until a while after.
    pub opened: Instant,
    last_used: Mutex<Instant>,
    /// A request came after the handshake, or a GET stream was opened.
    used: std::sync::atomic::AtomicBool,
    streams: Mutex<Vec<Arc<Stream>>>,
    /// Requests in flight: the client's id (as JSON text) → (server, hub id).
    inflight: Mutex<HashMap<String, (String, Value)>>,
}

impl Session {
    /// A session for one request, kept nowhere: what a client without sessions (the 2026-07-28
    /// revision) gets; `id` is what owns what it creates.
    pub fn transient(id: &str, target: Target, version: &str, client: Client) -> Session {
        Session {
            id: id.to_string(),
            target,
            version: version.to_string(),
            client,
            opened: Instant::now(),
            last_used: Mutex::new(Instant::now()),
            used: std::sync::atomic::AtomicBool::new(true),
            streams: Mutex::new(Vec::new()),
            inflight: Mutex::new(HashMap::new()),
        }
    }

    /// Seen now (any message, the handshake's end too): idle expiry starts again.
    fn touch(&self, now: Instant) {
        *self.last_used.lock() = now;
    }

    /// A request came after the handshake: the session is in use, no longer fresh.
    pub fn mark_used(&self) {
        self.used.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn is_used(&self) -> bool {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn idle(&self, now: Instant) -> Duration {
        now.saturating_duration_since(*self.last_used.lock())
    }

    pub fn open_stream(&self) -> Arc<Stream> {
        self.mark_used();
        let s = Arc::new(Stream::default());
        let mut streams = self.streams.lock();
        streams.retain(|s| !s.is_closed());
        streams.push(s.clone());
        s
    }

    /// Sends a message on one open stream (each message goes on only one). False if none is open.
    pub fn deliver(&self, msg: Value) -> bool {
        let mut streams = self.streams.lock();
        streams.retain(|s| !s.is_closed());
        let Some(first) = streams.first() else { return false };
        if first.push_within(msg, STREAM_BACKLOG) {
            return true;
        }
        log::warn!("mcp session {}: a GET stream's client stopped reading; dropping the stream", self.id);
        first.close();
        streams.remove(0);
        false
    }

    fn close(&self) {
        for s in self.streams.lock().drain(..) {
            s.close();
        }
    }

    /// Nothing asked for `IDLE_EXPIRY` and no stream open: the client is gone.
    fn expired(&self, now: Instant) -> bool {
        self.idle(now) >= IDLE_EXPIRY && !self.streaming()
    }

    fn streaming(&self) -> bool {
        self.streams.lock().iter().any(|s| !s.is_closed())
    }

    pub fn track(&self, client_id: &Value, server: &str, hub_id: Value) {
        self.inflight.lock().insert(client_id.to_string(), (server.to_string(), hub_id));
    }

    pub fn untrack(&self, client_id: &Value) {
        self.inflight.lock().remove(&client_id.to_string());
    }

    /// The server and hub id of one of this session's requests in flight.
    pub fn find(&self, client_id: &Value) -> Option<(String, Value)> {
        self.inflight.lock().get(&client_id.to_string()).cloned()
    }
}

/// Told of every session that ends (deleted, expired, evicted), after the table's lock.
pub type OnEnd = Box<dyn Fn(&Session) + Send + Sync>;

#[derive(Default)]
pub struct Sessions {
    map: Mutex<Table>,
    on_end: std::sync::OnceLock<OnEnd>,
}

/// The sessions by id, and by what they talk to: a server's notification reaches its own
/// sessions without a look at every other.
#[derive(Default)]
struct Table {
    by_id: HashMap<String, Arc<Session>>,
    by_target: HashMap<Target, HashMap<String, Arc<Session>>>,
}

impl Table {
    fn insert(&mut self, s: Arc<Session>) {
        self.by_target.entry(s.target.clone()).or_default().insert(s.id.clone(), s.clone());
        self.by_id.insert(s.id.clone(), s);
    }

    fn remove(&mut self, id: &str) -> Option<Arc<Session>> {
        let s = self.by_id.remove(id)?;
        if let Some(of) = self.by_target.get_mut(&s.target) {
            of.remove(id);
            if of.is_empty() {
                self.by_target.remove(&s.target);
            }
        }
        Some(s)
    }

    /// The session to evict before one more is added, if one must go: the least recently seen
    /// fresh session once `MAX_FRESH` are; when the table is full, the least recently used
    /// session in use idle past `EVICT_FLOOR` with no stream, else the oldest fresh one.
    fn victim(&self, now: Instant) -> Option<String> {
        let oldest = |it: &mut dyn Iterator<Item = &Arc<Session>>| {
            it.min_by_key(|s| *s.last_used.lock()).map(|s| s.id.clone())
        };
        let fresh = self.by_id.values().filter(|s| !s.is_used()).count();
        if fresh >= MAX_FRESH {
            return oldest(&mut self.by_id.values().filter(|s| !s.is_used()));
        }
        if self.by_id.len() < MAX_SESSIONS {
            return None;
        }
        let idle = |s: &&Arc<Session>| s.is_used() && s.idle(now) >= EVICT_FLOOR && !s.streaming();
        oldest(&mut self.by_id.values().filter(idle))
            .or_else(|| oldest(&mut self.by_id.values().filter(|s| !s.is_used())))
    }
}

impl Sessions {
    pub fn set_on_end(&self, f: OnEnd) {
        let _ = self.on_end.set(f);
    }

    fn ended(&self, s: &Session) {
        s.close();
        if let Some(f) = self.on_end.get() {
            f(s);
        }
    }

    #[cfg(test)]
    pub fn create(&self, target: Target, version: &str, now: Instant) -> Option<Arc<Session>> {
        self.create_for(target, version, Client::default(), now)
    }

    /// A new session for `client`; None when the table is full of sessions in use that may not
    /// be evicted yet.
    pub fn create_for(
        &self,
        target: Target,
        version: &str,
        client: Client,
        now: Instant,
    ) -> Option<Arc<Session>> {
        let s = Arc::new(Session {
            id: new_id(),
            target,
            version: version.to_string(),
            client,
            opened: now,
            last_used: Mutex::new(now),
            used: std::sync::atomic::AtomicBool::new(false),
            streams: Mutex::new(Vec::new()),
            inflight: Mutex::new(HashMap::new()),
        });
        let (evicted, room) = {
            let mut map = self.map.lock();
            let mut gone: Vec<Arc<Session>> = Vec::new();
            let expired: Vec<String> =
                map.by_id.iter().filter(|(_, s)| s.expired(now)).map(|(k, _)| k.clone()).collect();
            for k in expired {
                gone.extend(map.remove(&k));
            }
            if let Some(k) = map.victim(now) {
                gone.extend(map.remove(&k));
            }
            let room = map.by_id.len() < MAX_SESSIONS;
            if room {
                map.insert(s.clone());
            }
            (gone, room)
        };
        for e in evicted {
            self.ended(&e);
        }
        room.then_some(s)
    }

    /// A live session, untouched (for the hub's own deliveries).
    pub fn peek(&self, id: &str) -> Option<Arc<Session>> {
        self.map.lock().by_id.get(id).cloned()
    }

    /// A live session (touched), or None when unknown or expired.
    pub fn get(&self, id: &str, now: Instant) -> Option<Arc<Session>> {
        let s = self.map.lock().by_id.get(id).cloned()?;
        if s.expired(now) {
            self.remove(id);
            return None;
        }
        s.touch(now);
        Some(s)
    }

    pub fn remove(&self, id: &str) -> bool {
        let s = self.map.lock().remove(id);
        match s {
            Some(s) => {
                self.ended(&s);
                true
            }
            None => false,
        }
    }

    /// Every session talking to `target`.
    pub fn of(&self, target: &Target) -> Vec<Arc<Session>> {
        self.map.lock().by_target.get(target).map(|of| of.values().cloned().collect()).unwrap_or_default()
    }

    /// Open sessions by endpoint path (`/mcp`, `/mcp/<server>`), for the metrics.
    pub fn counts(&self) -> Vec<(String, usize)> {
        let map = self.map.lock();
        let mut counts: Vec<(String, usize)> = map
            .by_target
            .iter()
            .map(|(t, of)| match t {
                Target::Aggregate => ("/mcp".to_string(), of.len()),
                Target::Server(s) => (format!("/mcp/{s}"), of.len()),
            })
            .collect();
        drop(map);
        counts.sort();
        counts
    }

    pub fn len(&self) -> usize {
        self.map.lock().by_id.len()
    }

    /// Sessions that sent nothing for `quiet` and hold no GET stream open (the dashboard's
    /// "idle"): clients likely gone, kept until `IDLE_EXPIRY`.
    pub fn idle(&self, now: Instant, quiet: Duration) -> usize {
        let map = self.map.lock();
        map.by_id.values().filter(|s| s.idle(now) >= quiet && !s.streaming()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.map.lock().by_id.is_empty()
    }

    /// Ends every session (hub shutdown): their streams finish.
    pub fn close_all(&self) {
        let all: Vec<Arc<Session>> = std::mem::take(&mut *self.map.lock()).by_id.into_values().collect();
        for s in all {
            s.close();
        }
    }
}

/// 128 random bits from the kernel, hex.
pub(super) fn new_id() -> String {
    let mut bytes = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if filled.is_err() {
        // No /dev/urandom: fall back to hashing what differs between calls.
        let seed = format!("{:?}{:?}{}", Instant::now(), std::thread::current().id(), std::process::id());
        let h = crate::cache::hash_prompt(&seed);
        return h[..32].to_string();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_128_bit_hex_and_distinct() {
        let a = new_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, new_id());
    }

    /// A session that made a request after its handshake.
    fn in_use(sessions: &Sessions, now: Instant) -> Arc<Session> {
        let s = sessions.create(Target::Aggregate, "v", now).expect("room for a session");
        s.mark_used();
        s
    }

    #[test]
    fn expiry() {
        let sessions = Sessions::default();
        let t = Instant::now();
        let s = sessions.create(Target::Aggregate, "2025-06-18", t).unwrap();
        assert!(sessions.get(&s.id, t + Duration::from_secs(10)).is_some());
        assert!(sessions.get(&s.id, t + Duration::from_secs(10) + IDLE_EXPIRY).is_none(), "idle expiry");
        // An open GET stream is a client still there, however long it has been quiet.
        let listening = sessions.create(Target::Aggregate, "v", t).unwrap();
        let stream = listening.open_stream();
        let hour_later = t + Duration::from_secs(10) + IDLE_EXPIRY;
        assert!(sessions.get(&listening.id, hour_later).is_some(), "a streaming session stays");
        stream.close();
        assert!(sessions.get(&listening.id, hour_later + IDLE_EXPIRY).is_none(), "then expires");
    }

    #[test]
    fn a_session_in_use_goes_only_idle_past_the_floor() {
        let sessions = Sessions::default();
        let t = Instant::now();
        let first = in_use(&sessions, t);
        for _ in 0..MAX_SESSIONS - 1 {
            in_use(&sessions, t + Duration::from_secs(1));
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        // Every session was used within the floor: none goes, the new one is refused.
        assert!(sessions.create(Target::Aggregate, "v", t + Duration::from_secs(2)).is_none());
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.peek(&first.id).is_some());
        // Past the floor the least recently used goes.
        let later = t + EVICT_FLOOR + Duration::from_millis(500);
        assert!(sessions.create(Target::Aggregate, "v", later).is_some());
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.peek(&first.id).is_none(), "the least recently used went");
    }

    #[test]
    fn a_full_table_takes_an_idle_session_in_use_then_a_fresh_one() {
        let sessions = Sessions::default();
        let t = Instant::now();
        let old = in_use(&sessions, t);
        for _ in 0..MAX_SESSIONS - 2 {
            in_use(&sessions, t + EVICT_FLOOR);
        }
        let fresh = sessions.create(Target::Aggregate, "v", t).unwrap();
        let ms = Duration::from_millis;
        let later = t + EVICT_FLOOR + EVICT_FLOOR / 2;
        // Seen again (its handshake's end, say), but still fresh.
        assert!(sessions.get(&fresh.id, later).is_some());
        // The session in use idle past the floor goes, not the fresh one.
        let newer = sessions.create(Target::Aggregate, "v", later + ms(1)).unwrap();
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.peek(&old.id).is_none());
        assert!(sessions.peek(&fresh.id).is_some());
        // No session in use may go now: the least recently seen fresh one does.
        assert!(sessions.create(Target::Aggregate, "v", later + ms(2)).is_some());
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.peek(&fresh.id).is_none());
        assert!(sessions.peek(&newer.id).is_some());
    }

    #[test]
    fn a_message_goes_on_one_stream() {
        let sessions = Sessions::default();
        let s = sessions.create(Target::Server("x".into()), "v", Instant::now()).unwrap();
        assert!(!s.deliver(serde_json::json!(1)), "no stream open");
        let a = s.open_stream();
        let b = s.open_stream();
        assert!(s.deliver(serde_json::json!(2)));
        let got =
            |s: &Stream| matches!(s.next(Duration::from_millis(1)), crate::queue::Delivery::Item(_)) as u8;
        assert_eq!(got(&a) + got(&b), 1);
        sessions.remove(&s.id);
        assert!(
            matches!(a.next(Duration::from_millis(1)), crate::queue::Delivery::Closed),
            "closed with the session"
        );
    }

    #[test]
    fn a_flood_of_handshakes_evicts_only_its_own_sessions() {
        let sessions = Sessions::default();
        let t = Instant::now();
        let worked = in_use(&sessions, t);
        let streaming = sessions.create(Target::Aggregate, "v", t).unwrap();
        let _stream = streaming.open_stream();
        for i in 0..3 * MAX_SESSIONS {
            let at = t + Duration::from_millis(i as u64);
            let s = sessions.create(Target::Aggregate, "v", at).expect("a fresh session always finds room");
            // The handshake's end is no use.
            assert!(sessions.get(&s.id, at).is_some());
        }
        assert_eq!(sessions.len(), 2 + MAX_FRESH, "fresh sessions are evicted among themselves");
        let later = t + Duration::from_secs(10);
        assert!(sessions.get(&worked.id, later).is_some(), "a session in use stays");
        assert!(sessions.get(&streaming.id, later).is_some(), "a session with a stream stays");
    }

    #[test]
    fn a_stream_nobody_reads_is_dropped_not_grown() {
        let sessions = Sessions::default();
        let s = sessions.create(Target::Server("x".into()), "v", Instant::now()).unwrap();
        let stream = s.open_stream();
        for i in 0..STREAM_BACKLOG {
            assert!(s.deliver(serde_json::json!(i)));
        }
        assert!(!s.deliver(serde_json::json!("one too many")), "the stalled stream is dropped");
        assert!(stream.is_closed());
        assert!(!s.deliver(serde_json::json!("again")), "and no longer fed");
    }

    #[test]
    fn sessions_are_found_by_what_they_talk_to() {
        let sessions = Sessions::default();
        let t = Instant::now();
        let a = sessions.create(Target::Server("a".into()), "v", t).unwrap();
        let _b = sessions.create(Target::Server("b".into()), "v", t).unwrap();
        let all = sessions.create(Target::Aggregate, "v", t).unwrap();
        let ids = |target: &Target| sessions.of(target).into_iter().map(|s| s.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&Target::Server("a".into())), [a.id.as_str()]);
        assert_eq!(ids(&Target::Aggregate), [all.id.as_str()]);
        sessions.remove(&a.id);
        assert!(ids(&Target::Server("a".into())).is_empty());
        assert_eq!(sessions.len(), 2);
    }
}
