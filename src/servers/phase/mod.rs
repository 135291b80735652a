//! A server's lifecycle as data. `Phase` says where a server is; `State` holds it together
//! with what the phases share (configuration, restart streak, last error). Each transition is a
//! method that changes the state and returns what must happen because of it (`Effect`s: a log
//! line, an activity event, the listeners, the breaker), which the caller fires once the
//! server's lock is released. Nothing here does I/O or reads the clock: `now` is a parameter,
//! so the transitions are tested as tables.

use std::time::{Duration, Instant, SystemTime};

use super::{ProcessInfo, Status};
use crate::config::{ServerConfig, ServerEntry};
use crate::exchange::Flight;
use crate::resilience::Backoff;

/// Where a server is. `R` is what a running server holds (its child or remote session).
pub(super) enum Phase<R> {
    Stopped,
    /// Stopped for want of calls (`idle_timeout`); its next use starts it again.
    Sleeping,
    Failed,
    /// A remote server refused the hub until a person signs in (`oauth`); no retries.
    AuthRequired,
    /// Waiting to relaunch after a failure (reported STARTING).
    Backoff {
        until: Instant,
    },
    /// A launch is under way: spawn, bridge, handshake (reported STARTING). `pgid`: the child's
    /// group once spawned, so a stop can kill it before the handshake ends.
    Launching {
        pgid: Option<i32>,
    },
    Running {
        run: R,
        since: (SystemTime, Instant),
    },
    /// `launch`: a launch this stop voided has not finished yet. `sleep`: an idle server
    /// going to sleep (it ends SLEEPING, not STOPPED).
    Stopping {
        launch: bool,
        sleep: bool,
    },
}

/// Who asks for a start or a stop. A person's stop holds the server (`State::held`) until a
/// person starts it; starts for use (a client, a session, a pipeline, on demand) are refused
/// meanwhile, and the hub's own stops (reload, removal, shutdown) leave the hold as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum By {
    Person,
    Use,
    Hub,
}

/// What a transition asks for, fired after the lock is released.
#[derive(Debug, PartialEq)]
pub(super) enum Effect {
    /// The status changed: log it, record it, tell the listeners when running-ness changed.
    Status { from: Status, to: Status, why: String },
    /// A restart is scheduled.
    Restarting { reason: String, count: u32, max: u32, delay: Duration },
    /// A fresh child: its breaker starts closed (the last one's failures were its own).
    FreshBreaker,
    /// Running long enough: the restart streak is over.
    Stable,
    /// A person's stop took hold (true) or a person's start released it (false): saved.
    Held(bool),
}

pub(super) type Effects = Vec<Effect>;

/// What a running server must be able to say about itself.
pub(super) trait Live {
    fn pid(&self) -> Option<u32>;
}

/// A launch allowed to go ahead: what to launch, and the generation it belongs to.
pub(super) struct Ticket {
    pub config: ServerConfig,
    pub generation: u64,
}

/// A start for use refused: a person stopped the server.
#[derive(Debug, PartialEq)]
pub(super) struct Held;

/// A stop under way: what must be taken down (outside the lock).
pub(super) struct Teardown<R> {
    pub run: Option<R>,
    /// The group of a child still in its handshake.
    pub launching: Option<i32>,
}

pub(super) struct State<R> {
    pub config: ServerConfig,
    pub origin: String,
    /// Why the configuration cannot start (a missing variable, a bad entry): FAILED for good.
    pub problem: Option<String>,
    pub phase: Phase<R>,
    /// Restarts of the current streak.
    pub restart_count: u32,
    pub last_error: Option<String>,
    pub backoff: Backoff,
    /// Finished launch attempts and how the last one ended (`start` waits on the count).
    pub attempts: u64,
    pub last_attempt: Option<Result<(), String>>,
    /// Bumped by stop and remove: a launch begun under an older generation is discarded.
    pub generation: u64,
    pub removed: bool,
    /// The health-check ping out, and its deadline.
    pub ping: Option<(Box<dyn Flight>, Instant)>,
    pub last_ping: Instant,
    /// A person stopped it: nothing but a person's start starts it again (saved in the data
    /// dir, so it outlives the hub).
    pub held: bool,
}

impl<R: Live> State<R> {
    pub fn new(entry: &ServerEntry, now: Instant) -> State<R> {
        let phase = if entry.problem.is_some() { Phase::Failed } else { Phase::Stopped };
        State {
            backoff: Backoff::new(entry.config.restart_backoff, entry.config.restart_backoff_max),
            config: entry.config.clone(),
            origin: entry.origin.clone(),
            problem: entry.problem.clone(),
            last_error: entry.problem.clone(),
            phase,
            restart_count: 0,
            attempts: 0,
            last_attempt: None,
            generation: 0,
            removed: false,
            ping: None,
            last_ping: now,
            held: false,
        }
    }

    pub fn status(&self) -> Status {
        match self.phase {
            Phase::Stopped => Status::Stopped,
            Phase::Sleeping => Status::Sleeping,
            Phase::Failed => Status::Failed,
            Phase::AuthRequired => Status::AuthRequired,
            Phase::Backoff { .. } | Phase::Launching { .. } => Status::Starting,
            Phase::Running { .. } => Status::Running,
            Phase::Stopping { .. } => Status::Stopping,
        }
    }

    pub fn info(&self) -> ProcessInfo {
        let (pid, started_at) = match &self.phase {
            Phase::Running { run, since } => (run.pid(), Some(*since)),
            _ => (None, None),
        };
        ProcessInfo {
            status: self.status(),
            pid,
            started_at,
            restart_count: self.restart_count,
            last_error: self.last_error.clone(),
            held: self.held,
        }
    }

    pub fn run(&self) -> Option<&R> {
        match &self.phase {
            Phase::Running { run, .. } => Some(run),
            _ => None,
        }
    }

    pub fn run_mut(&mut self) -> Option<&mut R> {
        match &mut self.phase {
            Phase::Running { run, .. } => Some(run),
            _ => None,
        }
    }

    /// Whether a use starts it: asleep, going to sleep, or stopped but not by a person (and
    /// able to start: enabled, no problem in its configuration).
    pub fn wakes(&self) -> bool {
        let rests = match self.phase {
            Phase::Sleeping | Phase::Stopping { sleep: true, .. } => true,
            Phase::Stopped => !self.held,
            _ => false,
        };
        rests && self.config.enabled && self.problem.is_none() && !self.removed
    }

    pub fn is_launching(&self) -> bool {
        matches!(self.phase, Phase::Launching { .. })
    }

    fn set(&mut self, phase: Phase<R>, why: &str, fx: &mut Effects) {
        let from = self.status();
        self.phase = phase;
        let to = self.status();
        if from != to {
            fx.push(Effect::Status { from, to, why: why.to_string() });
        }
    }

    /// A manual start begins a fresh streak.
    pub fn fresh_streak(&mut self) {
        self.restart_count = 0;
        self.backoff.reset();
    }

    /// Whether a start `by` may go ahead: a start for use is refused while a person holds the
    /// server stopped; a person's start releases the hold (its effect saves that).
    pub fn may_start(&mut self, by: By) -> Result<Effects, Held> {
        match by {
            By::Use | By::Hub if self.held => Err(Held),
            By::Person if self.held => {
                self.held = false;
                Ok(vec![Effect::Held(false)])
            }
            _ => Ok(Effects::new()),
        }
    }

    /// A launch may begin unless one is under way, the server runs, stops, or is gone.
    pub fn begin_launch(&mut self) -> Option<(Ticket, Effects)> {
        let idle = matches!(
            self.phase,
            Phase::Stopped | Phase::Sleeping | Phase::Failed | Phase::AuthRequired | Phase::Backoff { .. }
        );
        if !idle || self.removed || self.problem.is_some() {
            return None;
        }
        let mut fx = Effects::new();
        self.set(Phase::Launching { pgid: None }, "", &mut fx);
        Some((Ticket { config: self.config.clone(), generation: self.generation }, fx))
    }

    /// The launching child is spawned: a stop from now on kills its group. False when a stop
    /// already voided the launch: the launch kills its child at once.
    pub fn spawned(&mut self, generation: u64, pgid: i32) -> bool {
        match (&mut self.phase, generation == self.generation) {
            (Phase::Launching { pgid: slot }, true) => {
                *slot = Some(pgid);
                true
            }
            _ => false,
        }
    }

    /// Whether a launch of `generation` still counts (no stop or removal voided it).
    pub fn is_current(&self, generation: u64) -> bool {
        generation == self.generation && !self.removed
    }

    /// A launch ended. Its run comes back when a stop or removal voided the launch meanwhile:
    /// the caller takes it down.
    pub fn launch_ended(
        &mut self,
        generation: u64,
        outcome: Result<R, (String, bool)>,
        since: (SystemTime, Instant),
    ) -> (Effects, Option<R>) {
        let mut fx = Effects::new();
        self.attempts += 1;
        self.last_attempt = Some(outcome.as_ref().map(|_| ()).map_err(|(e, _)| e.clone()));
        if generation != self.generation || self.removed || !self.is_launching() {
            if let Phase::Stopping { launch, .. } = &mut self.phase {
                *launch = false;
            }
            return (fx, outcome.ok());
        }
        match outcome {
            Ok(run) => {
                self.last_error = None;
                self.last_ping = since.1;
                self.ping = None;
                self.set(Phase::Running { run, since }, "", &mut fx);
                fx.push(Effect::FreshBreaker);
            }
            Err((e, true)) => self.after_failure(Status::Starting, e, since.1, &mut fx),
            Err((e, false)) => {
                self.last_error = Some(e.clone());
                self.set(Phase::Failed, &e, &mut fx);
            }
        }
        (fx, None)
    }

    /// The launch was refused until a person signs in: AUTH_REQUIRED with the reason, no
    /// restart (a person's sign-in starts it).
    pub fn needs_sign_in(&mut self, generation: u64, reason: String) -> Effects {
        let mut fx = Effects::new();
        // Counted as an attempt that failed, so a start waiting for it answers at once.
        self.attempts += 1;
        self.last_attempt = Some(Err(reason.clone()));
        if generation == self.generation && !self.removed && self.is_launching() {
            self.last_error = Some(reason.clone());
            self.set(Phase::AuthRequired, &reason, &mut fx);
        }
        fx
    }

    /// The running child exited or hung: its run comes back to be taken down; a restart is
    /// scheduled within policy.
    pub fn exited(&mut self, reason: String, now: Instant) -> (Effects, Option<R>) {
        let mut fx = Effects::new();
        match std::mem::replace(&mut self.phase, Phase::Stopped) {
            Phase::Running { run, .. } => {
                self.after_failure(Status::Running, reason, now, &mut fx);
                (fx, Some(run))
            }
            other => {
                self.phase = other;
                (fx, None)
            }
        }
    }

    /// After a crash, a hung child or a failed handshake (`from` the status before): a restart
    /// after the backoff while the streak allows, else FAILED.
    fn after_failure(&mut self, from: Status, reason: String, now: Instant, fx: &mut Effects) {
        self.last_error = Some(reason.clone());
        self.ping = None;
        let (phase, why) = if self.config.restart_on_failure && self.restart_count < self.config.max_restarts
        {
            self.restart_count += 1;
            let delay = self.backoff.next_delay();
            fx.push(Effect::Restarting {
                reason: reason.clone(),
                count: self.restart_count,
                max: self.config.max_restarts,
                delay,
            });
            (Phase::Backoff { until: now + delay }, format!("{reason}; restarting"))
        } else {
            (Phase::Failed, reason)
        };
        self.phase = phase;
        let to = self.status();
        if from != to {
            fx.push(Effect::Status { from, to, why });
        }
    }

    /// A relaunch is due: the launch begins (the caller runs it on a thread of its own).
    pub fn relaunch_due(&mut self, now: Instant) -> Option<(Ticket, Effects)> {
        match self.phase {
            Phase::Backoff { until } if until <= now => self.begin_launch(),
            _ => None,
        }
    }

    /// Running for `stable` without a crash ends the restart streak.
    pub fn settle(&mut self, now: Instant, stable: Duration) -> Effects {
        match &self.phase {
            Phase::Running { since, .. }
                if self.restart_count > 0 && now.duration_since(since.1) >= stable =>
            {
                self.restart_count = 0;
                self.backoff.reset();
                vec![Effect::Stable]
            }
            _ => Effects::new(),
        }
    }

    /// A stop `by` someone begins: any launch is voided, any run handed over to be taken down.
    /// A person's stop holds the server, whatever its phase (a server stopped already is held
    /// too, so no use starts it). No teardown when there is nothing to stop.
    pub fn begin_stop(&mut self, by: By) -> (Effects, Option<Teardown<R>>) {
        self.generation += 1;
        self.ping = None;
        let mut fx = Effects::new();
        if by == By::Person && !self.held {
            self.held = true;
            fx.push(Effect::Held(true));
        }
        if matches!(self.phase, Phase::Stopped) {
            return (fx, None);
        }
        if matches!(self.phase, Phase::Sleeping) {
            // Nothing runs: a sleeping server that is stopped is STOPPED (and held by a person).
            self.set(Phase::Stopped, "", &mut fx);
            return (fx, None);
        }
        let from = self.status();
        let (run, launching, launch) =
            match std::mem::replace(&mut self.phase, Phase::Stopping { launch: false, sleep: false }) {
                Phase::Running { run, .. } => (Some(run), None, false),
                Phase::Launching { pgid } => (None, pgid, true),
                Phase::Stopping { launch, .. } => (None, None, launch),
                Phase::Stopped
                | Phase::Sleeping
                | Phase::Failed
                | Phase::AuthRequired
                | Phase::Backoff { .. } => (None, None, false),
            };
        self.phase = Phase::Stopping { launch, sleep: false };
        if from != Status::Stopping {
            fx.push(Effect::Status { from, to: Status::Stopping, why: String::new() });
        }
        (fx, Some(Teardown { run, launching }))
    }

    /// Whether a running server has been idle long enough to sleep at `now`: it has an
    /// `idle_timeout`, no call is in flight (`busy`), and none ended (`last_call`) nor did it
    /// start within the timeout.
    pub fn idle_due(&self, now: Instant, busy: bool, last_call: Instant) -> bool {
        let timeout = self.config.idle_timeout;
        match &self.phase {
            Phase::Running { since, .. } if !timeout.is_zero() && !busy => {
                now.saturating_duration_since(last_call.max(since.1)) >= timeout
            }
            _ => false,
        }
    }

    /// An idle server goes to sleep: its run is handed over to be taken down, and the stop
    /// ends SLEEPING. `None` unless it is (still) idle at `now`.
    pub fn begin_sleep(
        &mut self,
        now: Instant,
        busy: bool,
        last_call: Instant,
    ) -> Option<(Effects, Teardown<R>)> {
        if !self.idle_due(now, busy, last_call) {
            return None;
        }
        let Phase::Running { run, .. } =
            std::mem::replace(&mut self.phase, Phase::Stopping { launch: false, sleep: true })
        else {
            return None;
        };
        self.generation += 1;
        self.ping = None;
        let idle = self.config.idle_timeout.as_secs_f64();
        let why = format!("no call for {idle}s");
        let fx = vec![Effect::Status { from: Status::Running, to: Status::Stopping, why }];
        Some((fx, Teardown { run: Some(run), launching: None }))
    }

    /// Whether a launch voided by the stop under way is still finishing.
    pub fn stop_waits_for_launch(&self) -> bool {
        matches!(self.phase, Phase::Stopping { launch: true, .. })
    }

    /// The stop is done: STOPPED, or FAILED when the configuration itself cannot start.
    pub fn stopped(&mut self) -> Effects {
        let mut fx = Effects::new();
        if self.problem.is_none() {
            self.last_error = None;
        }
        let sleep = matches!(self.phase, Phase::Stopping { sleep: true, .. });
        let phase = match (&self.problem, sleep) {
            (Some(_), _) => Phase::Failed,
            (None, true) => Phase::Sleeping,
            (None, false) => Phase::Stopped,
        };
        let why = self.problem.clone().unwrap_or_default();
        self.set(phase, &why, &mut fx);
        fx
    }

    /// The configuration was replaced: a FAILED server is STOPPED again (its problem is gone).
    pub fn replaced(
        &mut self,
        config: ServerConfig,
        origin: String,
    ) -> (ServerConfig, String, Option<String>) {
        self.backoff = Backoff::new(config.restart_backoff, config.restart_backoff_max);
        let old = std::mem::replace(&mut self.config, config);
        let old_origin = std::mem::replace(&mut self.origin, origin);
        (old, old_origin, self.problem.take())
    }

    /// After a replaced configuration was saved.
    pub fn clear_failure(&mut self) -> Effects {
        let mut fx = Effects::new();
        if matches!(self.phase, Phase::Failed) {
            self.set(Phase::Stopped, "configuration replaced", &mut fx);
        }
        fx
    }
}

#[cfg(test)]
mod tests;
