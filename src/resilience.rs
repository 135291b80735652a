//! Circuit breakers and backoff: pure state machines. Every method takes `now`, so tests drive
//! time by hand and nothing here sleeps or reads the clock.

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
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

impl Serialize for CircuitState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy)]
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

#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    failures: u32,
    /// Set while open (and half-open): when it opened.
    opened_at: Option<Instant>,
    /// A half-open trial call is out.
    trial: bool,
    total_failures: u64,
    total_successes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BreakerSnapshot {
    pub state: CircuitState,
    pub consecutive_failures: u32,
    pub total_failures: u64,
    pub total_successes: u64,
    /// Seconds until an open breaker admits a trial.
    pub retry_after_s: Option<f64>,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreaker {
            config,
            failures: 0,
            opened_at: None,
            trial: false,
            total_failures: 0,
            total_successes: 0,
        }
    }

    pub fn state(&self, now: Instant) -> CircuitState {
        match self.opened_at {
            None => CircuitState::Closed,
            Some(at) if self.trial || now.saturating_duration_since(at) >= self.config.recovery_timeout => {
                CircuitState::HalfOpen
            }
            Some(_) => CircuitState::Open,
        }
    }

    /// Whether a call may go ahead. After the recovery timeout exactly one trial is admitted
    /// until its outcome is recorded.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.state(now) {
            CircuitState::Closed => true,
            CircuitState::Open => false,
            CircuitState::HalfOpen if self.trial => false,
            CircuitState::HalfOpen => {
                self.trial = true;
                true
            }
        }
    }

    pub fn record_success(&mut self, _now: Instant) {
        self.total_successes += 1;
        self.failures = 0;
        self.opened_at = None;
        self.trial = false;
    }

    pub fn record_failure(&mut self, now: Instant) {
        self.total_failures += 1;
        self.failures = self.failures.saturating_add(1);
        if self.opened_at.is_some() {
            // A failed trial (or a straggler while open) starts a fresh recovery period.
            self.opened_at = Some(now);
            self.trial = false;
        } else if self.failures >= self.config.failure_threshold {
            self.opened_at = Some(now);
        }
    }

    pub fn snapshot(&self, now: Instant) -> BreakerSnapshot {
        let state = self.state(now);
        BreakerSnapshot {
            state,
            consecutive_failures: self.failures,
            total_failures: self.total_failures,
            total_successes: self.total_successes,
            retry_after_s: match (state, self.opened_at) {
                (CircuitState::Open, Some(at)) => Some(
                    (self.config.recovery_timeout.saturating_sub(now.saturating_duration_since(at)))
                        .as_secs_f64(),
                ),
                _ => None,
            },
        }
    }
}

/// Breakers by name, created on first use. Critical sections are map lookups.
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
        if !map.contains_key(name) {
            map.insert(name.to_string(), CircuitBreaker::new(self.config));
        }
        f(map.get_mut(name).expect("inserted above"))
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

    pub fn state(&self, name: &str, now: Instant) -> CircuitState {
        self.map.lock().get(name).map_or(CircuitState::Closed, |b| b.state(now))
    }

    pub fn snapshot(&self, name: &str, now: Instant) -> BreakerSnapshot {
        self.map
            .lock()
            .get(name)
            .map_or_else(|| CircuitBreaker::new(self.config).snapshot(now), |b| b.snapshot(now))
    }

    pub fn remove(&self, name: &str) {
        self.map.lock().remove(name);
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
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.attempt = self.attempt.saturating_add(1);
        self.initial.saturating_mul(factor).min(self.max)
    }

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

    fn breaker() -> (CircuitBreaker, Instant) {
        (
            CircuitBreaker::new(BreakerConfig { failure_threshold: 3, recovery_timeout: 30 * S }),
            Instant::now(),
        )
    }

    #[test]
    fn closed_until_threshold_consecutive_failures() {
        let (mut b, t) = breaker();
        b.record_failure(t);
        b.record_failure(t);
        assert_eq!(b.state(t), CircuitState::Closed);
        assert!(b.allow(t));
        b.record_success(t);
        b.record_failure(t);
        b.record_failure(t);
        assert_eq!(b.state(t), CircuitState::Closed, "a success resets the count");
        b.record_failure(t);
        assert_eq!(b.state(t), CircuitState::Open);
        assert!(!b.allow(t + 29 * S));
    }

    #[test]
    fn one_trial_after_recovery_and_its_outcome_decides() {
        let (mut b, t) = breaker();
        for _ in 0..3 {
            b.record_failure(t);
        }
        let later = t + 30 * S;
        assert_eq!(b.state(later), CircuitState::HalfOpen);
        assert!(b.allow(later), "one trial");
        assert!(!b.allow(later), "only one");
        b.record_success(later);
        assert_eq!(b.state(later), CircuitState::Closed);
        assert!(b.allow(later));

        for _ in 0..3 {
            b.record_failure(later);
        }
        let trial = later + 30 * S;
        assert!(b.allow(trial));
        b.record_failure(trial);
        assert_eq!(b.state(trial), CircuitState::Open, "a failed trial re-opens");
        assert!(!b.allow(trial + 29 * S), "with a fresh recovery period");
        assert!(b.allow(trial + 30 * S));
    }

    #[test]
    fn snapshot_counts() {
        let (mut b, t) = breaker();
        b.record_success(t);
        for _ in 0..3 {
            b.record_failure(t);
        }
        let s = b.snapshot(t + 10 * S);
        assert_eq!(
            (s.state, s.consecutive_failures, s.total_failures, s.total_successes),
            (CircuitState::Open, 3, 3, 1)
        );
        assert_eq!(s.retry_after_s, Some(20.0));
        assert_eq!(serde_json::to_value(CircuitState::HalfOpen).unwrap(), "half_open");
    }

    #[test]
    fn registry_keeps_breakers_apart() {
        let r = Breakers::new(BreakerConfig { failure_threshold: 1, recovery_timeout: S });
        let t = Instant::now();
        assert_eq!(r.state("never-used", t), CircuitState::Closed);
        r.record_failure("a", t);
        assert_eq!(r.state("a", t), CircuitState::Open);
        assert_eq!(r.state("b", t), CircuitState::Closed);
        assert!(!r.allow("a", t));
        assert!(r.allow("b", t));
        r.remove("a");
        assert_eq!(r.state("a", t), CircuitState::Closed);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut b = Backoff::new(S, 30 * S);
        let got: Vec<u64> = (0..7).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(b.attempts(), 7);
        b.reset();
        assert_eq!(b.next_delay(), S);
        for _ in 0..1000 {
            b.next_delay();
        }
        assert_eq!(b.next_delay(), 30 * S);
        assert_eq!(Backoff::new(Duration::ZERO, S).next_delay(), Duration::ZERO);
    }
}
