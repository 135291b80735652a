//! A server's life past start and stop: a person's stop that sticks (through sessions, calls,
//! reloads and a restart of the hub) until a person starts it; on-demand servers that start
//! at their first use and sleep when idle; `last_error` saying the last attempt's reason once.

use serde_json::{Value, json};

use crate::harness::*;

/// Writes the servers file as an editor would: a new file renamed over the old one.
fn edit(hub: &Hub, servers: &[(&str, Value)]) {
    let path = hub.dir.path().join("mcp-servers.json");
    let tmp = hub.dir.path().join("mcp-servers.json.edit");
    std::fs::write(&tmp, fixture_servers(servers)).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
}

/// Waits for the `n`th reload of the hub's life (from the activity feed).
fn wait_reloads(hub: &Hub, n: usize) -> String {
    wait_for(&format!("reload {n}"), 10 * SEC, || {
        let all = hub.get("/activity").json()["events"].as_array().cloned().unwrap_or_default();
        let reloads: Vec<String> = all
            .iter()
            .filter(|e| e["kind"] == "config")
            .filter_map(|e| e["message"].as_str().filter(|m| m.starts_with("reloaded")).map(str::to_string))
            .collect();
        reloads.get(n - 1).cloned()
    })
}

/// The refusal of a start for use: names the server, says a person stopped it and how to start it.
fn says_held(msg: &str) {
    assert!(
        msg.contains("server fx")
            && msg.contains("stopped by a person")
            && msg.contains("POST /servers/fx/start"),
        "{msg}"
    );
}

fn held_file(data: &TempDir) -> Value {
    let text = std::fs::read_to_string(data.path().join("held.json")).unwrap_or_else(|_| "{}".into());
    serde_json::from_str(&text).expect("held.json is JSON")
}

#[test]
fn a_persons_stop_sticks_until_a_persons_start() {
    let data = TempDir::new("held-data");
    let data_dir = data.path().to_str().expect("a UTF-8 path");
    // `witness` starts with the hub: once it runs, every auto-start has been handed out.
    let servers = [("fx", json!({"auto_start": true})), ("witness", json!({"auto_start": true}))];
    let mut hub = Hub::builder().fixtures(&servers).env("AGENTHUB_DATA_DIR", data_dir).start();
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let session = McpSession::connect(&hub, "/mcp/fx");

    let r = hub.post("/servers/fx/stop");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!((r.json()["status"].clone(), r.json()["held"].clone()), (json!("STOPPED"), json!(true)));
    assert_eq!(held_file(&data), json!({"held": ["fx"]}));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.path().join("held.json")).expect("held.json").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // A session's call does not start it, nor does a new session, an aggregated one, a REST call.
    let answer = session.call(json!(1), "tools/call", json!({"name": "echo", "arguments": {"text": "x"}}));
    assert_eq!(answer["error"]["code"], -32000, "{answer}");
    says_held(answer["error"]["message"].as_str().unwrap_or(""));
    let r = hub.request(
        "POST",
        "/mcp/fx",
        &[MCP_ACCEPT, JSON],
        initialize_body(MCP_VERSION).to_string().as_bytes(),
    );
    says_held(r.json()["error"]["message"].as_str().unwrap_or(""));
    McpSession::connect(&hub, "/mcp");
    says_held(&hub.tool("fx", "echo", json!({"text": "x"})).expect_error(503, "server_unavailable"));
    let shown = hub.server("fx");
    assert_eq!((shown["status"].clone(), shown["held"].clone()), (json!("STOPPED"), json!(true)), "{shown}");
    assert_eq!(hub.get("/health").json()["servers"]["fx"]["held"], true);
    let state = hub.get("/dashboard/state").json();
    let card = state["servers"].as_array().and_then(|l| l.iter().find(|s| s["name"] == "fx").cloned());
    assert_eq!(card.map(|c| c["held"].clone()), Some(json!(true)), "{state}");

    // A reload that restarts changed servers, and one that toggles `enabled`: still stopped.
    let changed = json!({"auto_start": true, "args": ["--version", "2025-06-18"]});
    edit(&hub, &[("fx", changed.clone()), servers[1].clone()]);
    wait_reloads(&hub, 1);
    let mut off = changed.clone();
    off["enabled"] = json!(false);
    edit(&hub, &[("fx", off), servers[1].clone()]);
    wait_reloads(&hub, 2);
    edit(&hub, &[("fx", changed.clone()), servers[1].clone()]);
    let msg = wait_reloads(&hub, 3);
    assert!(!msg.contains("started fx"), "{msg}");
    let shown = hub.server("fx");
    assert_eq!((shown["status"].clone(), shown["held"].clone()), (json!("STOPPED"), json!(true)), "{shown}");

    // A new hub on the same data dir: auto_start does not start it either.
    hub.signal(libc::SIGTERM);
    hub.wait_exit(15 * SEC);
    let again = [("fx", changed), servers[1].clone()];
    let hub = Hub::builder().fixtures(&again).env("AGENTHUB_DATA_DIR", data_dir).start();
    hub.wait_status("witness", "RUNNING", 10 * SEC);
    let shown = hub.server("fx");
    assert_eq!((shown["status"].clone(), shown["held"].clone()), (json!("STOPPED"), json!(true)), "{shown}");
    says_held(&hub.tool("fx", "echo", json!({"text": "x"})).expect_error(503, "server_unavailable"));

    // A person's start releases it.
    let r = hub.post("/servers/fx/start");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!((r.json()["status"].clone(), r.json()["held"].clone()), (json!("RUNNING"), json!(false)));
    assert_eq!(held_file(&data), json!({"held": []}));
    assert_eq!(tool_text(&hub.tool("fx", "echo", json!({"text": "free"}))), "free");
}

#[test]
fn on_demand_servers_start_at_first_use_and_sleep_when_idle() {
    let od = json!({"on_demand": true, "auto_start": true, "idle_timeout": 1, "args": ["--grandchild"]});
    let hub = Hub::with_fixtures(&[("od", od), ("witness", json!({"auto_start": true}))]);
    hub.wait_status("witness", "RUNNING", 10 * SEC);
    assert_eq!(hub.server("od")["status"], "STOPPED", "on_demand wins over auto_start");
    assert_eq!(hub.server("od")["config"]["idle_timeout"], 1);

    // The first call starts it and is answered.
    assert_eq!(tool_text(&hub.tool("od", "echo", json!({"text": "first"}))), "first");
    let pid = hub.server("od")["pid"].as_i64().expect("a pid");
    let group = processes_in_group(pid);
    assert!(group.len() >= 2, "the fixture and its grandchild: {group:?}");

    // Idle for its timeout: asleep, and nothing of it left running.
    let asleep = hub.wait_status("od", "SLEEPING", 10 * SEC);
    assert_eq!((asleep["pid"].clone(), asleep["restart_count"].clone()), (Value::Null, json!(0)), "{asleep}");
    wait_for("the sleeping server's processes to be gone", 5 * SEC, || {
        group.iter().all(|p| !alive(*p)).then_some(())
    });
    let health = hub.get("/health").json();
    assert_eq!(
        (health["status"].clone(), health["servers"]["od"]["status"].clone()),
        (json!("ok"), json!("SLEEPING"))
    );

    // The next call wakes it, on REST as on a session opened before it slept.
    assert_eq!(tool_text(&hub.tool("od", "echo", json!({"text": "again"}))), "again");
    let woken = hub.server("od")["pid"].as_i64().expect("a pid");
    assert_ne!(woken, pid);
    let session = McpSession::connect(&hub, "/mcp/od");
    hub.wait_status("od", "SLEEPING", 10 * SEC);
    let answer =
        session.call(json!(1), "tools/call", json!({"name": "echo", "arguments": {"text": "session"}}));
    assert_eq!(answer["result"]["content"][0]["text"], "session", "{answer}");

    // A sleeping server a person stops is STOPPED and held: no use wakes it.
    hub.wait_status("od", "SLEEPING", 10 * SEC);
    let r = hub.post("/servers/od/stop");
    assert_eq!((r.json()["status"].clone(), r.json()["held"].clone()), (json!("STOPPED"), json!(true)));
    hub.tool("od", "echo", json!({"text": "x"})).expect_error(503, "server_unavailable");
    let log = hub.log();
    assert!(log.contains("server od: RUNNING -> STOPPING: no call for 1s"), "{log}");
    assert!(!log.contains("server od: RUNNING -> STARTING"), "sleeping is no crash: {log}");
}

#[test]
fn a_call_in_flight_keeps_an_idle_server_awake() {
    let hub = Hub::with_fixtures(&[("od", json!({"on_demand": true, "idle_timeout": 1}))]);
    // A call longer than the idle timeout: the server is not put to sleep under it.
    let r = hub.tool("od", "sleep", json!({"ms": 2500}));
    assert_eq!(r.status, 200, "{}", r.text());
    let log = hub.log();
    assert!(!log.contains("server od: RUNNING -> STOPPING"), "slept during a call: {log}");
    hub.wait_status("od", "SLEEPING", 10 * SEC);
}

#[test]
fn last_error_holds_the_last_attempts_stderr_once_and_failed_is_a_warning() {
    let bad = json!({"args": ["--exit-at-start", "3"], "max_restarts": 2});
    let hub = Hub::with_fixtures(&[("bad", bad)]);
    assert_eq!(hub.post("/servers/bad/start").status, 502);
    let failed = hub.wait_status("bad", "FAILED", 10 * SEC);
    assert_eq!(failed["restart_count"], 2, "{failed}");
    let last = failed["last_error"].as_str().expect("a last_error");
    assert_eq!(last.matches("fixture: exiting at start with 3").count(), 1, "{last}");
    let log = hub.log();
    let line = log.lines().find(|l| l.contains("server bad: STARTING -> FAILED")).expect("the FAILED line");
    assert!(line.contains("WARN"), "{line}");
}

#[test]
fn check_config_says_which_servers_wait_for_their_first_use() {
    let dir = TempDir::new("check-on-demand");
    let servers =
        [("od", json!({"on_demand": true, "auto_start": true, "idle_timeout": 600})), ("plain", json!({}))];
    dir.write("mcp-servers.json", &fixture_servers(&servers));
    let out = hub_command(dir.path())
        .args(["check-config", "--config-dir", dir.path().to_str().expect("a UTF-8 path")])
        .output()
        .expect("run check-config");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let od = text.lines().find(|l| l.trim_start().starts_with("od ")).expect("od's line");
    assert!(od.contains(" on_demand idle_timeout=600s") && !od.contains("auto_start"), "{od}");
    let plain = text.lines().find(|l| l.trim_start().starts_with("plain ")).expect("plain's line");
    assert!(!plain.contains("on_demand") && !plain.contains("idle_timeout"), "{plain}");
}

#[test]
fn a_call_that_wakes_a_server_waits_no_longer_than_its_deadline() {
    let slow = json!({"on_demand": true, "request_timeout": 0.5, "args": ["--slow-start", "3000"]});
    let hub = Hub::with_fixtures(&[("slow", slow)]);
    let t = std::time::Instant::now();
    hub.tool("slow", "echo", json!({"text": "x"})).expect_error(504, "timeout");
    assert!(t.elapsed() < 2 * SEC, "waited {:?} for a start slower than the call's deadline", t.elapsed());
    // The start goes on, and the next call finds the server up.
    hub.wait_status("slow", "RUNNING", 10 * SEC);
    assert_eq!(tool_text(&hub.tool("slow", "echo", json!({"text": "up"}))), "up");
}

/// `agenthub server ARGS --url` against `hub`: exit code, stdout, stderr.
fn server_cli(hub: &Hub, args: &[&str]) -> (i32, String, String) {
    let url = format!("http://{}", hub.addr);
    let out = hub_command(hub.dir.path())
        .arg("server")
        .args(args)
        .args(["--url", &url])
        .output()
        .expect("run agenthub server");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn the_command_line_stops_and_starts_as_a_person_does() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let (code, out, err) = server_cli(&hub, &["stop", "fx"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("fx: STOPPED (stopped by you"), "{out}");
    // Held: a client's call does not start it again.
    let r = hub.post("/mcp/fx/tools/call");
    assert_eq!(r.status, 503, "{}", r.text());
    let (code, out, _) = server_cli(&hub, &["status"]);
    assert_eq!((code, out.lines().count()), (0, 1), "{out}");
    assert!(out.contains("fx: STOPPED (stopped by you"), "{out}");
    let (code, out, err) = server_cli(&hub, &["start", "fx"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("fx: RUNNING, pid "), "{out}");
    assert_eq!(hub.get("/servers/fx").json()["held"], false);
    // What it cannot do, it says.
    let (code, _, err) = server_cli(&hub, &["start", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("404") && err.contains("nope"), "{err}");
    let (code, _, err) = server_cli(&hub, &["frob"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("usage: agenthub server"), "{err}");
}
