//! The lifecycle transitions as tables: each case a sequence of events on a hand-driven clock.

use super::*;

struct Child;

impl Live for Child {
    fn pid(&self) -> Option<u32> {
        Some(42)
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    /// `begin_launch` must allow a launch (true) or refuse (false).
    Begin(bool),
    /// The launch under way ends: up, or failed (retry or not).
    Up,
    Down {
        retry: bool,
    },
    /// The running child exits.
    Crash,
    /// The clock moves on.
    Wait(u64),
    /// The supervisor's relaunch step: a launch begins (true) or not.
    Due(bool),
    Settle,
    /// The hub's stop begins (false: there was nothing to stop); then ends.
    Stop(bool),
    /// A person's stop begins (false: there was nothing to take down).
    PersonStop(bool),
    /// A start by someone may go ahead (true) or is refused: held.
    MayStart(By, bool),
    /// The idle check with a call in flight or not, the last call ended `n` seconds ago: the
    /// server goes to sleep (true) or not.
    Sleep {
        busy: bool,
        ago: u64,
        sleeps: bool,
    },
    /// Held by a person, or not.
    IsHeld(bool),
    StopEnds,
    /// A launch voided by the stop is still finishing.
    VoidedLaunch(bool),
    Is(Status, u32),
    /// The effects since the last `Said`.
    Said(&'static [&'static str]),
}
use Op::*;
use Status::{Failed, Running, Sleeping, Starting, Stopped, Stopping};

fn label(e: &Effect) -> String {
    match e {
        Effect::Status { from, to, .. } => format!("{}>{}", from.as_str(), to.as_str()),
        Effect::Restarting { count, delay, .. } => format!("restart {count} in {}s", delay.as_secs()),
        Effect::FreshBreaker => "fresh breaker".into(),
        Effect::Stable => "stable".into(),
        Effect::Held(on) => format!("held {on}"),
    }
}

/// Runs `ops` on a server with `max_restarts` (restart_on_failure unless 0) and a 1 s
/// backoff doubling to 30 s, on a hand-driven clock.
fn check(what: &str, max_restarts: u32, ops: &[Op]) {
    let config = ServerConfig { max_restarts, restart_on_failure: max_restarts > 0, ..Default::default() };
    check_with(what, config, ops)
}

fn check_with(what: &str, config: ServerConfig, ops: &[Op]) {
    let entry = ServerEntry {
        name: "s".into(),
        display_name: "s".into(),
        config,
        origin: "test".into(),
        problem: None,
    };
    let mut now = Instant::now();
    let mut st: State<Child> = State::new(&entry, now);
    let (mut said, mut generation) = (Vec::<String>::new(), 0);
    let since = |now| (SystemTime::UNIX_EPOCH, now);
    // A launch that began (or not, as `want` says): its generation is the one to end.
    let began = |got: Option<(Ticket, Effects)>, want: bool, generation: &mut u64, at: &str| match got {
        Some((t, fx)) => {
            assert!(want, "{at}: a launch began");
            *generation = t.generation;
            fx
        }
        None => {
            assert!(!want, "{at}: no launch");
            Effects::new()
        }
    };
    for (i, op) in ops.iter().enumerate() {
        let at = format!("{what}: op {i} {op:?}");
        let fx = match *op {
            Begin(ok) => began(st.begin_launch(), ok, &mut generation, &at),
            Up => st.launch_ended(generation, Ok(Child), since(now)).0,
            Down { retry } => st.launch_ended(generation, Err(("no handshake".into(), retry)), since(now)).0,
            Crash => {
                let (fx, run) = st.exited("exited unexpectedly".into(), now);
                assert!(run.is_some(), "{at}: the run is handed back to be taken down");
                fx
            }
            Wait(s) => {
                now += Duration::from_secs(s);
                Effects::new()
            }
            Due(want) => began(st.relaunch_due(now), want, &mut generation, &at),
            Settle => st.settle(now, Duration::from_secs(60)),
            Stop(any) | PersonStop(any) => {
                let by = if matches!(op, Stop(_)) { By::Hub } else { By::Person };
                let (fx, teardown) = st.begin_stop(by);
                assert_eq!(teardown.is_some(), any, "{at}: a stop began");
                fx
            }
            MayStart(by, ok) => match st.may_start(by) {
                Ok(fx) => {
                    assert!(ok, "{at}: the start may go ahead");
                    fx
                }
                Err(Held) => {
                    assert!(!ok, "{at}: the start is refused: held");
                    Effects::new()
                }
            },
            Sleep { busy, ago, sleeps } => {
                let last_call = now - Duration::from_secs(ago);
                assert_eq!(st.idle_due(now, busy, last_call), sleeps, "{at}: idle_due");
                match st.begin_sleep(now, busy, last_call) {
                    Some((fx, teardown)) => {
                        assert!(sleeps && teardown.run.is_some(), "{at}: the run is taken down");
                        fx
                    }
                    None => {
                        assert!(!sleeps, "{at}: it sleeps");
                        Effects::new()
                    }
                }
            }
            IsHeld(held) => {
                assert_eq!(st.held, held, "{at}");
                Effects::new()
            }
            StopEnds => st.stopped(),
            VoidedLaunch(want) => {
                assert_eq!(st.stop_waits_for_launch(), want, "{at}");
                Effects::new()
            }
            Is(status, restarts) => {
                assert_eq!((st.status(), st.restart_count), (status, restarts), "{at}");
                Effects::new()
            }
            Said(want) => {
                assert_eq!(said, want, "{at}");
                said.clear();
                Effects::new()
            }
        };
        said.extend(fx.iter().map(label));
    }
}

#[test]
fn transitions() {
    check(
        "a start launches, then runs with a fresh breaker",
        5,
        &[
            Begin(true),
            Is(Starting, 0),
            Up,
            Is(Running, 0),
            Said(&["STOPPED>STARTING", "STARTING>RUNNING", "fresh breaker"]),
        ],
    );
    check("one launch at a time", 5, &[Begin(true), Begin(false), Up, Begin(false)]);
    check(
        "crashes restart with a doubling backoff until the streak is spent",
        2,
        &[
            Begin(true),
            Up,
            Said(&["STOPPED>STARTING", "STARTING>RUNNING", "fresh breaker"]),
            Crash,
            Is(Starting, 1),
            Said(&["restart 1 in 1s", "RUNNING>STARTING"]),
            Due(false),
            Wait(1),
            Due(true),
            Up,
            Crash,
            Is(Starting, 2),
            Wait(1),
            Due(false),
            Wait(1),
            Due(true),
            Up,
            Crash,
            Is(Failed, 2),
        ],
    );
    check("no restarts when the policy says so", 0, &[Begin(true), Up, Crash, Is(Failed, 0), Due(false)]);
    check(
        "a failed handshake follows the policy; a hopeless one fails at once",
        5,
        &[
            Begin(true),
            Down { retry: true },
            Is(Starting, 1),
            Said(&["STOPPED>STARTING", "restart 1 in 1s"]),
            Wait(1),
            Due(true),
            Down { retry: false },
            Is(Failed, 1),
            Said(&["STARTING>FAILED"]),
        ],
    );
    check(
        "a stable period ends the streak",
        5,
        &[
            Begin(true),
            Up,
            Crash,
            Wait(1),
            Due(true),
            Up,
            Wait(59),
            Settle,
            Is(Running, 1),
            Wait(1),
            Settle,
            Is(Running, 0),
        ],
    );
    check(
        "a stop voids a launch under way; the launch's end is discarded",
        5,
        &[
            Begin(true),
            Stop(true),
            Is(Stopping, 0),
            VoidedLaunch(true),
            Up,
            VoidedLaunch(false),
            Is(Stopping, 0),
            StopEnds,
            Is(Stopped, 0),
            Said(&["STOPPED>STARTING", "STARTING>STOPPING", "STOPPING>STOPPED"]),
        ],
    );
    check("stopping a stopped server does nothing", 5, &[Stop(false), Is(Stopped, 0), Said(&[])]);
    check(
        "stopping a failed server clears it",
        5,
        &[Begin(true), Down { retry: false }, Stop(true), StopEnds, Is(Stopped, 0)],
    );
    check(
        "a stop during the backoff cancels the restart",
        5,
        &[Begin(true), Up, Crash, Stop(true), StopEnds, Wait(10), Due(false), Is(Stopped, 1)],
    );
    check(
        "a manual start after a crash loop begins a fresh streak",
        1,
        &[
            Begin(true),
            Up,
            Crash,
            Wait(1),
            Due(true),
            Up,
            Crash,
            Is(Failed, 1),
            Begin(true),
            Up,
            Is(Running, 1),
        ],
    );
}

#[test]
fn a_persons_stop_holds_until_a_persons_start() {
    check(
        "a person's stop of a running server holds it: uses are refused, a person's start releases it",
        5,
        &[
            Begin(true),
            Up,
            PersonStop(true),
            StopEnds,
            Is(Stopped, 0),
            IsHeld(true),
            Said(&[
                "STOPPED>STARTING",
                "STARTING>RUNNING",
                "fresh breaker",
                "held true",
                "RUNNING>STOPPING",
                "STOPPING>STOPPED",
            ]),
            MayStart(By::Use, false),
            MayStart(By::Hub, false),
            IsHeld(true),
            MayStart(By::Person, true),
            IsHeld(false),
            Said(&["held false"]),
            MayStart(By::Use, true),
            Begin(true),
        ],
    );
    check(
        "a person's stop of a stopped server holds it too (an on-demand server never started)",
        5,
        &[
            PersonStop(false),
            IsHeld(true),
            Said(&["held true"]),
            MayStart(By::Use, false),
            PersonStop(false),
            Said(&[]),
        ],
    );
    check(
        "the hub's stops (reload, removal) leave the hold as it is",
        5,
        &[Begin(true), Up, Stop(true), StopEnds, IsHeld(false), MayStart(By::Use, true)],
    );
    check(
        "a failed server a person stops is STOPPED and held",
        5,
        &[Begin(true), Down { retry: false }, PersonStop(true), StopEnds, Is(Stopped, 0), IsHeld(true)],
    );
}

#[test]
fn idle_servers_sleep_and_wake_on_use() {
    let idle = ServerConfig { idle_timeout: Duration::from_secs(60), ..Default::default() };
    check_with(
        "idle for the timeout with no call in flight: it sleeps; a use starts it again",
        idle.clone(),
        &[
            Begin(true),
            Up,
            // Just started: the start counts as a use.
            Sleep { busy: false, ago: 3600, sleeps: false },
            Wait(59),
            Sleep { busy: false, ago: 3600, sleeps: false },
            Wait(1),
            // A call in flight, however long, keeps it awake.
            Sleep { busy: true, ago: 3600, sleeps: false },
            // A call that ended within the timeout too.
            Sleep { busy: false, ago: 59, sleeps: false },
            Sleep { busy: false, ago: 60, sleeps: true },
            Is(Stopping, 0),
            StopEnds,
            Is(Sleeping, 0),
            Said(&[
                "STOPPED>STARTING",
                "STARTING>RUNNING",
                "fresh breaker",
                "RUNNING>STOPPING",
                "STOPPING>SLEEPING",
            ]),
            MayStart(By::Use, true),
            Begin(true),
            Up,
            Is(Running, 0),
        ],
    );
    check_with(
        "no idle_timeout: never sleeps",
        ServerConfig::default(),
        &[Begin(true), Up, Wait(100_000), Sleep { busy: false, ago: 100_000, sleeps: false }],
    );
    check_with(
        "a person's stop of a sleeping server makes it STOPPED and held",
        idle.clone(),
        &[
            Begin(true),
            Up,
            Wait(60),
            Sleep { busy: false, ago: 60, sleeps: true },
            StopEnds,
            Said(&[
                "STOPPED>STARTING",
                "STARTING>RUNNING",
                "fresh breaker",
                "RUNNING>STOPPING",
                "STOPPING>SLEEPING",
            ]),
            PersonStop(false),
            Is(Stopped, 0),
            IsHeld(true),
            Said(&["held true", "SLEEPING>STOPPED"]),
            MayStart(By::Use, false),
        ],
    );
    check_with(
        "a person's stop while it goes to sleep ends STOPPED, held",
        idle,
        &[
            Begin(true),
            Up,
            Wait(60),
            Sleep { busy: false, ago: 60, sleeps: true },
            PersonStop(true),
            StopEnds,
            Is(Stopped, 0),
            IsHeld(true),
        ],
    );
}
