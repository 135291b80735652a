//! The dashboard in a real browser: Debian's headless Chromium driven by playwright-core
//! (`tests/browser/dashboard.mjs`) against a hub with fixture servers and a fake Ollama.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::fake_ollama::FakeOllama;
use crate::harness::*;

const RULES: &str = r#"{
  "default": {"model": "llama3.2:3b"},
  "clients": {"vscode": {"model": "qwen2.5-coder:7b"}}
}"#;
const TOKEN: &str = "dashboard-test-token-0123456789";
/// A server name as long as names go (64 characters, no break in it): the page must hold it.
const LONG_NAME: &str = "a-server-with-a-very-long-name-that-keeps-going-and-going-012345";
/// A pipeline over the fixture, its last step slow enough to watch the run on the page.
const PIPELINES: &str = r#"{"pipelines": {"greet": {
  "description": "Greets through the fixture",
  "inputs": {"who": {"type": "string", "description": "Whom to greet"}, "times": {"type": "integer", "default": 2}},
  "required": ["who"],
  "steps": [
    {"id": "line", "template": "hello ${inputs.who} x${inputs.times}"},
    {"id": "echo", "tool": "fx/echo", "args": {"text": "${steps.line.text}"}},
    {"id": "later", "tool": "fx/sleep", "args": {"ms": 1500}}
  ],
  "result": {"said": "${steps.echo.text}"}
},
"report": {
  "description": "Answers an MCP content array of two lines",
  "inputs": {},
  "steps": [
    {"id": "lines", "template": "first line\nsecond line"},
    {"id": "echo", "tool": "fx/echo", "args": {"text": "${steps.lines.text}"}}
  ],
  "result": {"content": [{"type": "text", "text": "${steps.echo.text}"}]}
}}}"#;

fn dashboard_hub(ollama: &FakeOllama, token: Option<&str>) -> Hub {
    let servers = [
        ("fx", json!({"auto_start": true, "args": ["--destructive-tool"]})),
        ("fx2", json!({"auto_start": true})),
        ("idle", json!({"auto_start": false})),
        (LONG_NAME, json!({"auto_start": false})),
    ];
    let mut b = Hub::builder()
        .fixtures(&servers)
        .file("enhancement-rules.json", RULES)
        .file("pipelines.json", PIPELINES)
        .file("profiles.json", r#"{"profiles": {"coding": {"servers": {"fx": {"tools": ["echo"]}}}}, "clients": {"cursor": "coding"}}"#)
        .env("OLLAMA_URL", &ollama.url);
    if let Some(t) = token {
        b = b.env("AGENTHUB_TOKEN", t);
    }
    let hub = b.start();
    let auth = token.map(|t| format!("Bearer {t}")).unwrap_or_default();
    wait_for("fx and fx2 to be RUNNING", 20 * SEC, || {
        let s = hub.request("GET", "/dashboard/state", &[("Authorization", &auth)], b"").json();
        let running = s["servers"].as_array()?.iter().filter(|v| v["status"] == "RUNNING").count();
        (running == 2).then_some(())
    });
    hub
}

/// Runs the browser script; panics with its output unless it passed within a minute.
fn browse(hub: &Hub, mode: &str, screenshot: &str, token: &str) {
    assert_eq!(LONG_NAME.len(), 64);
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "run `make test-deps` (make test does) first"
    );
    let modules = dep("browser/node_modules");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/dashboard.mjs");
    let mut child = Command::new("node")
        .arg(script)
        .args([&format!("http://{}", hub.addr), mode, screenshot, token, LONG_NAME])
        .env("PLAYWRIGHT_CORE_DIR", modules.join("playwright-core"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node");
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().expect("wait on node").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("node output");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("dashboard: ok"), "{text}\n--- hub log ---\n{}", hub.log());
}

#[test]
fn the_dashboard_shows_and_acts_in_a_real_browser() {
    let ollama = FakeOllama::start(&["llama3.2:3b", "qwen2.5-coder:7b"]);
    let hub = dashboard_hub(&ollama, None);
    let shot = concat!(env!("CARGO_MANIFEST_DIR"), "/target/dashboard.png");
    browse(&hub, "open", shot, "");
    let narrow = concat!(env!("CARGO_MANIFEST_DIR"), "/target/dashboard-narrow.png");
    for shot in [shot, narrow] {
        assert!(
            std::fs::metadata(shot).map(|m| m.len() > 10_000).unwrap_or(false),
            "no screenshot at {shot}"
        );
    }
}

#[test]
fn a_person_answers_a_servers_question_and_the_feed_keeps_quiet() {
    // The pending form answers an elicitation end to end, consecutive alike events are one line
    // (list_changed and debug lines hidden unless asked for), a pipeline's result is text, and
    // the header's session count says what it counts.
    let ollama = FakeOllama::start(&["llama3.2:3b"]);
    let hub = dashboard_hub(&ollama, None);
    browse(&hub, "waiting", "-", "");
}

#[test]
fn hidden_the_dashboard_polls_less_and_offline_it_backs_off() {
    let ollama = FakeOllama::start(&["llama3.2:3b"]);
    let hub = dashboard_hub(&ollama, None);
    browse(&hub, "offline", "-", "");
}

#[test]
fn with_fifty_servers_a_quiet_poll_leaves_the_page_alone() {
    let ollama = FakeOllama::start(&["llama3.2:3b"]);
    let names: Vec<String> = (0..50).map(|i| format!("s{i:02}")).collect();
    let servers: Vec<(&str, serde_json::Value)> =
        names.iter().enumerate().map(|(i, n)| (n.as_str(), json!({"auto_start": i < 5}))).collect();
    let hub = Hub::builder().fixtures(&servers).env("OLLAMA_URL", &ollama.url).start();
    wait_for("s00..s04 to be RUNNING", 20 * SEC, || {
        let s = hub.get("/dashboard/state").json();
        let running = s["servers"].as_array()?.iter().filter(|v| v["status"] == "RUNNING").count();
        (running == 5).then_some(())
    });
    browse(&hub, "many", "-", "");
}

#[test]
fn with_a_token_the_dashboard_asks_for_it_then_works() {
    let ollama = FakeOllama::start(&["llama3.2:3b"]);
    let hub = dashboard_hub(&ollama, Some(TOKEN));
    // The page itself needs no token; its data does.
    let page = hub.get("/dashboard");
    assert_eq!(page.status, 200);
    assert_eq!(hub.get("/dashboard/state").status, 401);
    browse(&hub, "token", "-", TOKEN);
}

#[test]
fn the_page_and_its_state() {
    let ollama = FakeOllama::start(&["llama3.2:3b"]);
    let hub = dashboard_hub(&ollama, None);
    let root = hub.get("/");
    assert_eq!((root.status, root.header("location")), (302, Some("/dashboard")));
    let page = hub.get("/dashboard");
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap_or("").starts_with("text/html"));
    let csp = page.header("content-security-policy").unwrap_or("");
    for part in [
        "default-src 'none'",
        "script-src 'sha256-",
        "style-src 'sha256-",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{part} missing from {csp}");
    }
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert!(page.body.len() < 50 * 1024);
    let s = hub.get("/dashboard/state").json();
    let names: Vec<&str> =
        s["servers"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["fx", "fx2", "idle", LONG_NAME]);
    assert_eq!(
        (s["servers"][0]["status"].as_str(), s["servers"][0]["circuit"].as_str()),
        (Some("RUNNING"), Some("closed"))
    );
    assert_eq!((s["sessions"].clone(), s["sessions_idle"].clone()), (json!(0), json!(0)));
    assert_eq!(s["elicitations"], json!([]));
    assert_eq!(s["cache"]["size"], 0);
    assert_eq!(s["ollama"]["rules"], json!(["vscode"]));
    let last = s["events"].as_array().unwrap().last().unwrap()["seq"].as_u64().unwrap();
    hub.post_json("/ollama/enhance", &json!({"prompt": "explain docker"}));
    let s = hub.get(&format!("/dashboard/state?since={last}")).json();
    assert!(s["events"].as_array().unwrap().iter().all(|e| e["seq"].as_u64().unwrap() > last));
    let m = &s["ollama"]["stats"]["llama3.2:3b"];
    assert_eq!((m["calls"].clone(), m["errors"].clone()), (json!(1), json!(0)));
    assert!(m["mean_ms"].as_f64().unwrap() >= 0.0);
}
