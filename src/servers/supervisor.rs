//! The supervisor: one thread, one loop. Every `TICK` it looks at each server once and takes
//! these steps, each a transition of the server's phase with its effects fired after unlock:
//!
//! 1. `reap` — a running child that exited, or that closed its stdout and lives on (nothing it
//!    says can reach the hub any more: a crash too), is taken down and, within policy, a
//!    restart is scheduled (else FAILED with the reason and the last stderr lines); so is a
//!    remote server whose legacy SSE stream ended (the stream is its only way to answer);
//! 2. `ping` — a running child is pinged every `health_check_interval`; one that does not
//!    answer within `PING_DEADLINE` is treated as hung, like a crash;
//! 3. `settle` — running for `STABLE_AFTER` without a crash ends the restart streak;
//! 4. `relaunch` — a restart whose backoff has passed is launched on a thread of its own;
//! 5. `doze` — a running server with an `idle_timeout`, no call in flight and none ended within
//!    it is put to sleep on a thread of its own (SLEEPING: not a failure, no restart; its
//!    next use starts it).
//!
//! Then, once per turn, the elicitations held for a person past their deadline (or their
//! call's end) are declined; and every `ORPHAN_SCAN`, the orphans re-parented to the hub that
//! have exited are reaped.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::phase::Effects;
use super::{Run, Server, Servers, process, short};
use crate::exchange::{Event, Next, Request};

/// Running this long without a crash resets `restart_count` and the backoff.
pub(super) const STABLE_AFTER: Duration = Duration::from_secs(60);
/// How often the supervisor looks at every child.
const TICK: Duration = Duration::from_millis(100);
/// Longest a health-check ping may go unanswered.
const PING_DEADLINE: Duration = Duration::from_secs(10);
/// A child whose stdout closed as it exits is reported by its exit status: its leader gets
/// this long to be reaped before the closed stdout is the crash.
const CLOSED_GRACE: Duration = Duration::from_millis(500);
/// How often exited orphans are looked for.
const ORPHAN_SCAN: Duration = Duration::from_secs(1);

impl Servers {
    /// The supervisor's main loop.
    pub(super) fn supervise(self: &Arc<Self>) {
        let mut orphans_due = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            let servers = self.list.lock().clone();
            for srv in servers {
                if self.stop.load(Ordering::SeqCst) {
                    break;
                }
                self.check(&srv, Instant::now());
            }
            self.expire_elicitations(Instant::now());
            if Instant::now() >= orphans_due {
                process::reap_orphans();
                orphans_due = Instant::now() + ORPHAN_SCAN;
            }
            std::thread::sleep(TICK);
        }
    }

    /// One look at one server: the four steps in order.
    pub(super) fn check(self: &Arc<Self>, srv: &Arc<Server>, now: Instant) {
        let (fx, down) = {
            let mut st = srv.state.lock();
            let mut down = None;
            let mut fx = Effects::new();
            let looked =
                st.run_mut().map(|r| (r.try_wait(), r.lost_for(now), r.process.is_some(), r.stderr_mark));
            let failure = match looked {
                Some((Some(status), _, _, mark)) => Some(exit_reason(srv, status, mark)),
                // A child lost as it exits is reported by its exit status, given the time.
                Some((None, Some((why, seen)), child, mark)) if seen >= CLOSED_GRACE || !child => {
                    Some(with_stderr(srv, why, mark))
                }
                _ => ping(&mut st, now),
            };
            if let Some(reason) = failure {
                let (f, run) = st.exited(reason, now);
                fx.extend(f);
                down = run;
            }
            fx.extend(st.settle(now, STABLE_AFTER));
            (fx, down)
        };
        if let Some(mut run) = down {
            // The leader is gone (or hung): take its group down and release the callers.
            run.kill(Duration::from_millis(200));
        }
        self.fire(srv, fx);
        let due = srv.state.lock().relaunch_due(now);
        if let Some((ticket, fx)) = due {
            self.fire(srv, fx);
            let (me, srv) = (self.clone(), srv.clone());
            self.spawn_thread(format!("start-{}", short(&srv.name)), move || me.launch(&srv, ticket));
        }
        self.doze(srv, now);
    }

    /// Step 5: an idle server goes to sleep. The stop takes up to its grace, so it runs on a
    /// thread of its own (one at a time per server), which looks again in the server's turn.
    fn doze(self: &Arc<Self>, srv: &Arc<Server>, now: Instant) {
        let due = {
            let st = srv.state.lock();
            st.idle_due(now, srv.in_flight.load(Ordering::Acquire) > 0, srv.last_call.get())
        };
        if due && !srv.dozing.swap(true, Ordering::AcqRel) {
            let (me, srv) = (self.clone(), srv.clone());
            self.spawn_thread(format!("sleep-{}", short(&srv.name)), move || {
                me.sleep_if_idle(&srv);
                srv.dozing.store(false, Ordering::Release);
            });
        }
    }
}

/// Why the child exited, with the last lines this run (since `mark`) wrote to stderr.
fn exit_reason(srv: &Server, status: std::process::ExitStatus, mark: u64) -> String {
    with_stderr(srv, format!("exited unexpectedly ({})", process::describe(status)), mark)
}

/// Why a server is lost, with the last lines its child wrote to stderr since `mark` (its
/// launch; a remote server has none).
fn with_stderr(srv: &Server, why: String, mark: u64) -> String {
    let tail = srv.stderr.lock().tail_since(mark, 5).join(" | ");
    let mut reason = why;
    if !tail.is_empty() {
        reason.push_str(&format!("; stderr: {tail}"));
    }
    reason
}

/// Pings a running child every `health_check_interval`; the reason when it stopped answering.
fn ping(st: &mut super::State<Run>, now: Instant) -> Option<String> {
    let interval = st.config.health_check_interval;
    if interval.is_zero() {
        return None;
    }
    // A remote server is not pinged: its calls fail, and its breaker opens.
    let transport = st.run().filter(|r| r.process.is_some())?.transport.clone();
    if let Some((flight, deadline)) = &mut st.ping {
        // A look, not a wait: `now` has passed.
        match flight.next(now, now) {
            Next::Event(Event::Response(_)) | Next::Gone(_) => {
                st.ping = None;
                st.last_ping = now;
            }
            _ if now >= *deadline => {
                let waited = PING_DEADLINE.min(interval);
                return Some(format!(
                    "did not answer ping within {}s; treated as hung",
                    waited.as_secs_f64()
                ));
            }
            _ => {}
        }
        return None;
    }
    if now.duration_since(st.last_ping) >= interval {
        if let Ok(flight) = transport.open(Request::own("ping", None)) {
            st.ping = Some((flight, now + PING_DEADLINE.min(interval)));
        }
    }
    None
}
