//! `make soak`: the hub under steady load for a while (`SOAK_SECONDS`, default 120): 16
//! keep-alive connections at once, half calling a tool through the REST route, half through an
//! MCP session on `/mcp/{server}`. It prints requests and errors, and the hub's RSS, threads and
//! descriptors at the start, the middle and the end; checks that every connection was served
//! throughout; then sends SIGTERM while the load goes on and checks that the hub exits 0 and
//! leaves no process behind. Exits non-zero when any check fails.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

#[allow(dead_code)]
#[path = "../tests/it/harness.rs"]
mod harness;

use harness::{Conn, Hub, McpSession, SEC, processes_in_group, threads_and_fds};

const CONNECTIONS: usize = 16;

/// Set once SIGTERM is sent: clients then see their connections end, which is expected.
static TERMINATING: AtomicBool = AtomicBool::new(false);

/// RSS (KiB), threads and open descriptors of a process.
fn vitals(pid: i32) -> (u64, usize, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    let (threads, fds) = threads_and_fds(pid);
    (rss, threads, fds)
}

/// One line of vitals and counts.
fn report(at: &str, v: (u64, usize, usize), requests: &AtomicU64, errors: &AtomicU64) {
    let (r, e) = (requests.load(Ordering::Relaxed), errors.load(Ordering::Relaxed));
    println!("{at:<7} rss {} KiB, threads {}, fds {}; {r} requests, {e} errors", v.0, v.1, v.2);
}

fn main() -> ExitCode {
    let seconds: u64 = std::env::var("SOAK_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(120);
    let mut hub = Hub::builder()
        .fixtures(&[("fx", json!({"auto_start": true}))])
        .env("AGENTHUB_LOG_LEVEL", "info")
        .graceful()
        .start();
    let deadline = Instant::now() + 10 * SEC;
    while hub.server("fx")["status"] != "RUNNING" {
        assert!(Instant::now() < deadline, "fx did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let child_pgid = hub.server("fx")["pid"].as_i64().unwrap_or(0);
    let pid = hub.pid();
    let start = vitals(pid);
    println!("soak: {CONNECTIONS} connections for {seconds} s (REST and /mcp/fx)");
    println!("start   rss {} KiB, threads {}, fds {}", start.0, start.1, start.2);
    let (requests, errors) = (AtomicU64::new(0), AtomicU64::new(0));
    let stop = AtomicBool::new(false);
    let terminating = &TERMINATING;
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !TERMINATING.load(Ordering::Relaxed) {
            quiet(info);
        }
    }));
    let answered: Vec<AtomicU64> = (0..CONNECTIONS).map(|_| AtomicU64::new(0)).collect();
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut checks = Vec::<String>::new();
    let addr = hub.addr.clone();
    let served: Vec<u64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CONNECTIONS)
            .map(|i| {
                let (addr, requests, errors, stop) = (&addr, &requests, &errors, &stop);
                let answered = &answered[i];
                scope.spawn(move || {
                    let mut rest = (i % 2 == 0).then(|| Conn::new(addr));
                    let mcp = (i % 2 == 1).then(|| McpSession::keep_alive(addr, "/mcp/fx"));
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let text = format!("c{i}-{n}");
                        let ok = match (&mut rest, &mcp) {
                            (Some(c), _) => {
                                let body = json!({"name": "echo", "arguments": {"text": text}}).to_string();
                                let r = c.post("/mcp/fx/tools/call", &body);
                                r.status == 200 && r.json()["content"][0]["text"] == text
                            }
                            (_, Some(m)) => {
                                let r = m.call(
                                    json!(n),
                                    "tools/call",
                                    json!({"name": "echo", "arguments": {"text": text}}),
                                );
                                r["result"]["content"][0]["text"] == text
                            }
                            _ => false,
                        };
                        if ok {
                            answered.fetch_add(1, Ordering::Relaxed);
                            requests.fetch_add(1, Ordering::Relaxed);
                        } else if !terminating.load(Ordering::Relaxed) {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(seconds / 2));
        let middle = vitals(pid);
        report("middle", middle, &requests, &errors);
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        let end = vitals(pid);
        report("end", end, &requests, &errors);
        if end.1 > middle.1 + 2 || end.2 > middle.2 + 2 {
            checks.push(format!("threads or fds grew from the middle to the end: {middle:?} -> {end:?}"));
        }
        // SIGTERM while the load goes on.
        terminating.store(true, Ordering::Relaxed);
        hub.signal(libc::SIGTERM);
        let status = hub.wait_exit(10 * SEC);
        if !status.success() {
            checks.push(format!("the hub exited with {status} on SIGTERM"));
        }
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            // A client whose connection the stopping hub closed ends in a panic: expected.
            let _ = w.join();
        }
        answered.iter().map(|a| a.load(Ordering::Relaxed)).collect()
    });
    println!("per connection: {served:?}");
    let errors = errors.load(Ordering::Relaxed);
    if errors > 0 {
        checks.push(format!("{errors} errors"));
    }
    if served.contains(&0) {
        checks.push("a connection was never served".into());
    }
    let left = processes_in_group(child_pgid);
    if !left.is_empty() {
        checks.push(format!("processes left in the child's group: {left:?}"));
    }
    if checks.is_empty() {
        println!("soak: ok");
        ExitCode::SUCCESS
    } else {
        for c in &checks {
            println!("soak: FAILED: {c}");
        }
        ExitCode::FAILURE
    }
}
