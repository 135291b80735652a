//! Children that cannot wedge the hub or outlive it: a child that closes its stdout and lives
//! on, lifecycle operations racing on one server, grandchildren that leave the process group,
//! SIGINT, and a hub killed outright (the parent-death signal, the records of its groups).

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::harness::*;

/// Kills the processes a test saw, whatever its outcome: a failing test leaves no `sleep 1000`.
struct Cleanup(Vec<i64>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // SAFETY: signalling a process (or group) this test's hub started.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
                libc::kill(-(pid as i32), libc::SIGKILL);
            }
        }
    }
}

/// The children of `parent`, zombies included, with their state letters.
fn children_of(parent: i32) -> Vec<(i64, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i64>().ok()))
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let f: Vec<String> =
                stat[stat.rfind(')')? + 1..].split_whitespace().map(str::to_string).collect();
            (f.get(1)? == &parent.to_string()).then(|| (pid, f[0].clone()))
        })
        .collect()
}

/// The pid of the newest `--setsid-grandchild` the server's fixture reported, once it is not
/// `old`.
fn setsid_grandchild(hub: &Hub, name: &str, old: Option<i64>) -> i64 {
    wait_for("a new setsid grandchild", 5 * SEC, || {
        let logs = hub.get(&format!("/servers/{name}/logs?lines=500")).json();
        let newest = logs["lines"]
            .as_array()?
            .iter()
            .rev()
            .find_map(|l| l.as_str()?.strip_prefix("fixture: setsid grandchild ")?.trim().parse().ok())?;
        (Some(newest) != old).then_some(newest)
    })
}

#[test]
fn a_child_that_closes_its_stdout_and_lives_on_is_treated_as_crashed() {
    let hub =
        Hub::with_fixtures(&[("mute", json!({"args": ["--close-stdout-after", "1"], "max_restarts": 1}))]);
    let pid = hub.post("/servers/mute/start").json()["pid"].as_i64().unwrap();
    let _cleanup = Cleanup(vec![pid]);
    assert_eq!(tool_text(&hub.tool("mute", "echo", json!({"text": "one"}))), "one");
    // The fixture closes its stdout instead of answering, and stays alive.
    hub.tool("mute", "echo", json!({"text": "two"})).expect_error(502, "upstream_error");
    let s = hub.wait_restarted("mute", 1);
    let second = s["pid"].as_i64().unwrap();
    assert_ne!(second, pid);
    assert!(!alive(pid), "the mute child {pid} was left running");
    assert!(hub.log().contains("closed its stdout"), "{}", hub.log());
    // Once more, past max_restarts: FAILED, and the reason says what happened.
    assert_eq!(tool_text(&hub.tool("mute", "echo", json!({"text": "three"}))), "three");
    hub.tool("mute", "echo", json!({"text": "four"})).expect_error(502, "upstream_error");
    let s = hub.wait_status("mute", "FAILED", 10 * SEC);
    let err = s["last_error"].as_str().unwrap();
    assert!(err.contains("closed its stdout"), "{err}");
    // Taken down right after the verdict, which may be read first.
    wait_for(&format!("the mute child {second} to be gone"), 5 * SEC, || (!alive(second)).then_some(()));
}

#[test]
fn racing_restarts_and_stops_leave_one_child_and_no_thread_or_descriptor_behind() {
    let hub = Hub::with_fixtures(&[("fx", json!({}))]);
    assert_eq!(hub.post("/servers/fx/start").status, 200);
    // Settled: the start's connection has ended.
    std::thread::sleep(Duration::from_millis(300));
    let (threads, fds) = threads_and_fds(hub.pid());
    for round in 0..3 {
        let statuses = storm(&hub.addr, 20, |i| {
            let op = if i % 5 == 4 { "stop" } else { "restart" };
            ("POST", format!("/servers/fx/{op}"), String::new())
        });
        // A restart overtaken by a later stop or restart is a conflict, never a failure.
        assert!(statuses.iter().all(|s| *s == 200 || *s == 409), "round {round}: {statuses:?}");
    }
    let pid = hub.post("/servers/fx/restart").json()["pid"].as_i64().unwrap();
    let _cleanup = Cleanup(vec![pid]);
    let seen = wait_for("threads and descriptors back to where they were", 10 * SEC, || {
        let now = threads_and_fds(hub.pid());
        (now.0 <= threads + 1 && now.1 <= fds + 1).then_some(now)
    });
    let children = children_of(hub.pid());
    let pids: Vec<i64> = children.iter().map(|c| c.0).collect();
    assert_eq!(pids, vec![pid], "{children:?}; before: {threads} threads, {fds} fds; now {seen:?}");
    assert_ne!(children[0].1, "Z");
    assert_eq!(tool_text(&hub.tool("fx", "echo", json!({"text": "one child"}))), "one child");
}

#[test]
fn a_grandchild_that_left_the_group_dies_on_stop_restart_crash_and_shutdown() {
    let mut hub = Hub::with_fixtures(&[("d", json!({"args": ["--setsid-grandchild"]}))]);
    let mut cleanup = Cleanup(Vec::new());
    assert_eq!(hub.post("/servers/d/start").status, 200);
    let first = setsid_grandchild(&hub, "d", None);
    cleanup.0.push(first);
    assert!(alive(first));
    assert_eq!(hub.post("/servers/d/stop").status, 200);
    assert!(!alive(first), "stop left the grandchild {first}");

    assert_eq!(hub.post("/servers/d/start").status, 200);
    let second = setsid_grandchild(&hub, "d", Some(first));
    cleanup.0.push(second);
    assert_eq!(hub.post("/servers/d/restart").status, 200);
    assert!(!alive(second), "restart left the grandchild {second}");

    // A crash: the grandchild's parent is gone before the hub looks for it.
    let third = setsid_grandchild(&hub, "d", Some(second));
    cleanup.0.push(third);
    let leader = hub.server("d")["pid"].as_i64().unwrap();
    // SAFETY: killing the child the hub started for this test.
    unsafe { libc::kill(leader as i32, libc::SIGKILL) };
    hub.wait_restarted("d", 1);
    wait_for("the crashed child's grandchild to be killed", 5 * SEC, || (!alive(third)).then_some(()));

    let fourth = setsid_grandchild(&hub, "d", Some(third));
    cleanup.0.push(fourth);
    hub.signal(libc::SIGTERM);
    let status = hub.wait_exit(10 * SEC);
    assert!(status.success(), "{status}\n{}", hub.log());
    assert!(!alive(fourth), "shutdown left the grandchild {fourth}");
}

#[test]
fn sigint_stops_the_hub_like_sigterm() {
    let mut hub = Hub::with_fixtures(&[("a", json!({"args": ["--grandchild"], "auto_start": true}))]);
    let pid = hub.wait_status("a", "RUNNING", 5 * SEC)["pid"].as_i64().unwrap();
    let _cleanup = Cleanup(vec![pid]);
    hub.signal(libc::SIGINT);
    let status = hub.wait_exit(10 * SEC);
    assert!(status.success(), "{status}\n{}", hub.log());
    let left = processes_in_group(pid);
    assert!(left.is_empty(), "left in group {pid}: {left:?}");
}

#[test]
fn children_die_with_a_hub_killed_outright_even_when_they_ignore_stdin_eof() {
    let mut hub =
        Hub::with_fixtures(&[("stays", json!({"args": ["--linger", "--ignore-term"], "auto_start": true}))]);
    let pid = hub.wait_status("stays", "RUNNING", 5 * SEC)["pid"].as_i64().unwrap();
    let _cleanup = Cleanup(vec![pid]);
    let _ = hub.child.kill();
    let _ = hub.child.wait();
    wait_for("the child to die with the hub", 5 * SEC, || (!alive(pid)).then_some(()));
}

#[test]
fn a_new_hub_kills_the_groups_a_killed_one_left_behind() {
    let data = TempDir::new("data");
    let data_dir = data.path().to_str().unwrap();
    let args = json!({"args": ["--grandchild", "--linger", "--ignore-term"], "auto_start": true});
    let mut first = Hub::builder().fixtures(&[("fx", args)]).env("AGENTHUB_DATA_DIR", data_dir).start();
    let pid = first.wait_status("fx", "RUNNING", 5 * SEC)["pid"].as_i64().unwrap();
    let _cleanup = Cleanup(vec![pid]);
    // The fixture and the `sleep` it started, one group.
    wait_for("the grandchild in the group", 5 * SEC, || (processes_in_group(pid).len() == 2).then_some(()));
    let record = Path::new(data_dir).join("pids").join(format!("fx.{pid}"));
    assert!(record.is_file(), "no record of the group at {}", record.display());
    let _ = first.child.kill();
    let _ = first.child.wait();
    // The grandchild outlives the hub: it ignores stdin's end, and no signal reaches it.
    std::thread::sleep(Duration::from_millis(300));
    let _second = Hub::builder().servers(NO_SERVERS).env("AGENTHUB_DATA_DIR", data_dir).start();
    wait_for("the first hub's group to be gone", 5 * SEC, || {
        processes_in_group(pid).is_empty().then_some(())
    });
    wait_for("the record to be removed", 5 * SEC, || (!record.exists()).then_some(()));
}
