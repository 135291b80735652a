//! Circuit breakers and backoff as pure state machines: `CircuitBreaker` (one upstream's verdict),
//! `Breakers` (the named registry the hub shares across threads) and `Backoff` (restart delays).
//! Every method that depends on time takes `now`, so tests drive the clock by hand and nothing
//! here sleeps, spawns or reads the clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(&self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

// By hand rather than derived: the wire spelling is `as_str`'s, one place for both.
impl Serialize for CircuitState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker refuses calls before admitting one trial.
    pub recovery_timeout: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig { failure_threshold: 3, recovery_timeout: Duration::from_secs(30) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    /// Refusing since `since`; once the recovery timeout has passed this reads as half-open
    /// with the trial still on offer, so no call is needed to make that transition.
    Open {
        since: Instant,
    },
    /// The one trial call went out at `started`; its outcome decides.
    Trial {
        since: Instant,
        started: Instant,
    },
}

/// One upstream's breaker. Not synchronised: `Breakers` holds these behind its lock.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    phase: Phase,
    consecutive_failures: u32,
    total_failures: u64,
    total_successes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BreakerSnapshot {
    pub state: CircuitState,
    pub consecutive_failures: u32,
    pub total_failures: u64,
    pub total_successes: u64,
    /// Seconds since the breaker opened; `None` while closed.
    pub opened_for_s: Option<f64>,
    /// Seconds until `allow` would next say yes; `None` when it would say yes now.
    pub retry_after_s: Option<f64>,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreaker {
            config,
            phase: Phase::Closed,
            consecutive_failures: 0,
            total_failures: 0,
            total_successes: 0,
        }
    }

    /// Whether a call may go ahead now. Closed: yes. Open: no until the recovery timeout has
    /// passed, then yes exactly once (the trial) and no while that trial is out.
    pub fn allow(&mut self, now: Instant) -> bool {
        let recovery = self.config.recovery_timeout;
        match self.phase {
            Phase::Closed => true,
            Phase::Open { since } if now.saturating_duration_since(since) >= recovery => {
                self.phase = Phase::Trial { since, started: now };
                true
            }
            Phase::Open { .. } => false,
            // A trial whose outcome never comes back (the caller gave up, the stream was
            // dropped) would otherwise hold the breaker half-open for good: after another
            // recovery period it counts as lost and a new trial goes out.
            Phase::Trial { since, started } if now.saturating_duration_since(started) >= recovery => {
                self.phase = Phase::Trial { since, started: now };
                true
            }
            Phase::Trial { .. } => false,
        }
    }

    /// A call succeeded. The trial's success closes the breaker (any success while a trial is
    /// out counts as the trial's: the two cannot be told apart). While open with no trial out,
    /// the success is a straggler admitted before the verdict, and only a trial reopens traffic.
    pub fn record_success(&mut self, _now: Instant) {
        self.total_successes += 1;
        self.consecutive_failures = 0;
        if let Phase::Trial { .. } = self.phase {
            self.phase = Phase::Closed;
        }
    }

    /// A call failed. Enough in a row open the breaker; a failed trial opens it again with a
    /// fresh recovery period. A straggler's failure while open leaves the timer alone: that
    /// call started before the verdict and says nothing new about the upstream.
    pub fn record_failure(&mut self, now: Instant) {
        self.total_failures += 1;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        match self.phase {
            Phase::Closed if self.consecutive_failures >= self.config.failure_threshold => {
                self.phase = Phase::Open { since: now };
            }
            Phase::Trial { .. } => self.phase = Phase::Open { since: now },
            Phase::Closed | Phase::Open { .. } => {}
        }
    }

    /// A call ended without an outcome (its caller went away): a trial riding on it is given
    /// back at once, so the next caller takes a new one instead of waiting out another period.
    pub fn record_abandoned(&mut self, _now: Instant) {
        if let Phase::Trial { since, .. } = self.phase {
            self.phase = Phase::Open { since };
        }
    }

    /// Closes the breaker and forgets the failure streak; the totals stay.
    pub fn reset(&mut self) {
        self.phase = Phase::Closed;
        self.consecutive_failures = 0;
    }

    /// The state as callers see it: an open breaker whose recovery has passed reports
    /// half-open before anyone takes the trial (this does not take it).
    pub fn state(&self, now: Instant) -> CircuitState {
        match self.phase {
            Phase::Closed => CircuitState::Closed,
            Phase::Open { since } if now.saturating_duration_since(since) >= self.config.recovery_timeout => {
                CircuitState::HalfOpen
            }
            Phase::Open { .. } => CircuitState::Open,
            Phase::Trial { .. } => CircuitState::HalfOpen,
        }
    }

    pub fn snapshot(&self, now: Instant) -> BreakerSnapshot {
        // Durations rather than instants: `Instant + Duration` panics on overflow.
        let left =
            |from: Instant| self.config.recovery_timeout.saturating_sub(now.saturating_duration_since(from));
        let (opened_for, retry_after) = match self.phase {
            Phase::Closed => (None, None),
            Phase::Open { since } => (Some(now.saturating_duration_since(since)), Some(left(since))),
            Phase::Trial { since, started } => {
                (Some(now.saturating_duration_since(since)), Some(left(started)))
            }
        };
        BreakerSnapshot {
            state: self.state(now),
            consecutive_failures: self.consecutive_failures,
            total_failures: self.total_failures,
            total_successes: self.total_successes,
            opened_for_s: opened_for.map(|d| d.as_secs_f64()),
            retry_after_s: retry_after.filter(|d| !d.is_zero()).map(|d| d.as_secs_f64()),
        }
    }
}

/// Named breakers shared across threads, each created on first use with the registry's config.
/// The lock covers a map lookup and a few assignments, never a call.
pub struct Breakers {
    config: BreakerConfig,
    map: Mutex<HashMap<String, CircuitBreaker>>,
}

impl Breakers {
    pub fn new(config: BreakerConfig) -> Self {
        Breakers { config, map: Mutex::new(HashMap::new()) }
    }

    fn with<T>(&self, name: &str, f: impl FnOnce(&mut CircuitBreaker) -> T) -> T {
        let mut map = self.map.lock();
        // Look up before inserting so the common case allocates no key.
        if let Some(b) = map.get_mut(name) {
            return f(b);
        }
        f(map.entry(name.to_string()).or_insert_with(|| CircuitBreaker::new(self.config)))
    }

    pub fn allow(&self, name: &str, now: Instant) -> bool {
        self.with(name, |b| b.allow(now))
    }

    pub fn record_success(&self, name: &str, now: Instant) {
        self.with(name, |b| b.record_success(now));
    }

    pub fn record_failure(&self, name: &str, now: Instant) {
        self.with(name, |b| b.record_failure(now));
    }

    pub fn record_abandoned(&self, name: &str, now: Instant) {
        if let Some(b) = self.map.lock().get_mut(name) {
            b.record_abandoned(now);
        }
    }

    /// `Closed` for a name never used: nothing has failed there.
    pub fn state(&self, name: &str, now: Instant) -> CircuitState {
        self.map.lock().get(name).map_or(CircuitState::Closed, |b| b.state(now))
    }

    /// A fresh breaker's snapshot for a name never used, without registering it.
    pub fn snapshot(&self, name: &str, now: Instant) -> BreakerSnapshot {
        match self.map.lock().get(name) {
            Some(b) => b.snapshot(now),
            None => CircuitBreaker::new(self.config).snapshot(now),
        }
    }

    /// Forgets the breaker, totals included (the upstream is gone or replaced).
    pub fn remove(&self, name: &str) {
        self.map.lock().remove(name);
    }

    /// Closes the breaker, keeping its totals; an unknown name stays unknown.
    pub fn reset(&self, name: &str) {
        if let Some(b) = self.map.lock().get_mut(name) {
            b.reset();
        }
    }
}

/// Exponential backoff: `initial`, doubling per attempt, capped at `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max, attempt: 0 }
    }

    pub fn next_delay(&mut self) -> Duration {
        // 2^31 times any non-zero delay already passes any sane cap, so the shift stops there
        // and the multiplication saturates instead of overflowing.
        let factor = 1u32 << self.attempt.min(31);
        self.attempt = self.attempt.saturating_add(1);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// Delays handed out since creation or the last `reset`.
    #[cfg(test)]
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[derive(Debug, Clone, Copy)]
    enum Op {
        Fail,
        Succeed,
        /// A call admitted earlier ended without an outcome.
        Abandon,
        /// `allow` must answer this.
        Allow(bool),
        /// `state` must read this.
        Is(CircuitState),
        /// Move the clock forward.
        Wait(Duration),
    }
    use CircuitState::{Closed, HalfOpen, Open};
    use Op::{Abandon, Allow, Fail, Is, Succeed, Wait};

    /// Runs `ops` against a breaker (threshold 3, recovery 30 s) on a hand-driven clock.
    fn check(what: &str, ops: &[Op]) {
        let mut b = CircuitBreaker::new(BreakerConfig { failure_threshold: 3, recovery_timeout: 30 * S });
        // The only clock read: an origin to add offsets to (`Instant` has no constructor).
        let mut now = Instant::now();
        for (i, op) in ops.iter().enumerate() {
            match *op {
                Fail => b.record_failure(now),
                Succeed => b.record_success(now),
                Abandon => b.record_abandoned(now),
                Allow(want) => assert_eq!(b.allow(now), want, "{what}: op {i} {op:?}"),
                Is(want) => assert_eq!(b.state(now), want, "{what}: op {i} {op:?}"),
                Wait(d) => now += d,
            }
        }
    }

    #[test]
    fn transitions() {
        check("closed below the threshold", &[Fail, Fail, Is(Closed), Allow(true)]);
        check("a success resets the streak", &[Fail, Fail, Succeed, Fail, Fail, Is(Closed), Allow(true)]);
        check("the threshold opens", &[Fail, Fail, Fail, Is(Open), Allow(false)]);
        check("open refuses until recovery", &[Fail, Fail, Fail, Wait(29 * S), Is(Open), Allow(false)]);
        check(
            "recovery reads half-open without taking the trial",
            &[Fail, Fail, Fail, Wait(30 * S), Is(HalfOpen), Is(HalfOpen), Allow(true)],
        );
        check(
            "exactly one trial",
            &[Fail, Fail, Fail, Wait(30 * S), Allow(true), Allow(false), Is(HalfOpen), Allow(false)],
        );
        check(
            "a successful trial closes",
            &[Fail, Fail, Fail, Wait(30 * S), Allow(true), Succeed, Is(Closed), Allow(true), Allow(true)],
        );
        check(
            "closed again means a full streak to reopen",
            &[Fail, Fail, Fail, Wait(30 * S), Allow(true), Succeed, Fail, Fail, Is(Closed), Fail, Is(Open)],
        );
        check(
            "a failed trial reopens with a fresh timer",
            &[
                Fail,
                Fail,
                Fail,
                Wait(30 * S),
                Allow(true),
                Wait(5 * S),
                Fail,
                Is(Open),
                Allow(false),
                Wait(29 * S),
                Is(Open),
                Allow(false),
                Wait(S),
                Is(HalfOpen),
                Allow(true),
                Allow(false),
            ],
        );
        check(
            "a straggler's success while open does not close",
            &[Fail, Fail, Fail, Succeed, Is(Open), Allow(false), Wait(30 * S), Allow(true)],
        );
        check(
            "a straggler's failure while open keeps the timer",
            &[Fail, Fail, Fail, Wait(20 * S), Fail, Wait(10 * S), Is(HalfOpen), Allow(true)],
        );
        check(
            "a lost trial is replaced after another recovery period",
            &[Fail, Fail, Fail, Wait(30 * S), Allow(true), Wait(29 * S), Allow(false), Wait(S), Allow(true)],
        );
        check(
            "an abandoned trial is given back at once",
            &[Fail, Fail, Fail, Wait(30 * S), Allow(true), Allow(false), Abandon, Is(HalfOpen), Allow(true)],
        );
        check("an abandoned call leaves a closed breaker closed", &[Fail, Fail, Abandon, Fail, Is(Open)]);
        check(
            "an abandoned straggler leaves an open breaker's timer alone",
            &[Fail, Fail, Fail, Wait(10 * S), Abandon, Is(Open), Allow(false), Wait(20 * S), Allow(true)],
        );
    }

    #[test]
    fn snapshot_reports_counts_and_timers() {
        let t = Instant::now();
        let mut b = CircuitBreaker::new(BreakerConfig { failure_threshold: 3, recovery_timeout: 30 * S });
        let s = b.snapshot(t);
        assert_eq!((s.state, s.opened_for_s, s.retry_after_s), (Closed, None, None));
        b.record_success(t);
        for _ in 0..3 {
            b.record_failure(t);
        }
        let s = b.snapshot(t + 10 * S);
        assert_eq!((s.state, s.consecutive_failures, s.total_failures, s.total_successes), (Open, 3, 3, 1));
        assert_eq!((s.opened_for_s, s.retry_after_s), (Some(10.0), Some(20.0)));
        let s = b.snapshot(t + 30 * S);
        assert_eq!((s.state, s.retry_after_s), (HalfOpen, None), "the trial is on offer");
        assert!(b.allow(t + 30 * S));
        let s = b.snapshot(t + 40 * S);
        assert_eq!((s.state, s.opened_for_s, s.retry_after_s), (HalfOpen, Some(40.0), Some(20.0)));

        let json = serde_json::to_value(&s).expect("a snapshot serializes");
        assert_eq!(json["state"], "half_open");
        assert_eq!(serde_json::to_value(Closed).expect("serializes"), "closed");
        assert_eq!(serde_json::to_value(Open).expect("serializes"), "open");
    }

    #[test]
    fn registry_keeps_breakers_apart() {
        let r = Breakers::new(BreakerConfig { failure_threshold: 1, recovery_timeout: S });
        let t = Instant::now();
        assert_eq!(r.state("never-used", t), Closed);
        assert_eq!(r.snapshot("never-used", t).total_failures, 0);
        r.record_failure("a", t);
        assert_eq!((r.state("a", t), r.state("b", t)), (Open, Closed));
        assert!(!r.allow("a", t));
        assert!(r.allow("b", t));
        assert_eq!(r.snapshot("a", t).total_failures, 1);

        r.reset("a");
        assert_eq!(r.state("a", t), Closed);
        assert!(r.allow("a", t));
        assert_eq!(r.snapshot("a", t).total_failures, 1, "reset keeps the totals");

        r.record_failure("a", t);
        r.remove("a");
        assert_eq!(r.state("a", t), Closed);
        assert_eq!(r.snapshot("a", t).total_failures, 0, "remove forgets everything");

        r.reset("ghost");
        assert_eq!(r.state("ghost", t), Closed);
    }

    fn check_backoff(initial: Duration, max: Duration, want: &[Duration]) {
        let mut b = Backoff::new(initial, max);
        let got: Vec<Duration> = want.iter().map(|_| b.next_delay()).collect();
        assert_eq!(got, want, "({initial:?}, {max:?})");
        assert_eq!(b.attempts() as usize, want.len());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        check_backoff(S, 30 * S, &[S, 2 * S, 4 * S, 8 * S, 16 * S, 30 * S, 30 * S]);
        check_backoff(Duration::ZERO, S, &[Duration::ZERO; 4]);
        check_backoff(5 * S, 2 * S, &[2 * S, 2 * S]);
        let ms = Duration::from_millis(1);
        check_backoff(100 * ms, 250 * ms, &[100 * ms, 200 * ms, 250 * ms]);
    }

    #[test]
    fn backoff_resets_and_never_overflows() {
        let mut b = Backoff::new(S, 30 * S);
        b.next_delay();
        b.next_delay();
        b.reset();
        assert_eq!((b.attempts(), b.next_delay()), (0, S));
        for _ in 0..1000 {
            assert!(b.next_delay() <= 30 * S);
        }
        assert_eq!((b.attempts(), b.next_delay()), (1001, 30 * S));

        let mut huge = Backoff::new(Duration::MAX, Duration::MAX);
        for _ in 0..100 {
            assert_eq!(huge.next_delay(), Duration::MAX);
        }
    }
}
