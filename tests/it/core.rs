//! The hub core end to end: CLI, configuration errors, /health, guards, error bodies, shutdown.

use std::process::Stdio;
use std::time::Instant;

use serde_json::json;

use crate::fake_ollama::FakeOllama;
use crate::harness::*;

const TWO_SERVERS: &str = r#"{"servers": {
    "alpha": {"command": "/bin/cat", "description": "a", "env": {"API_KEY": "sekrit-value"}},
    "beta": {"transport": "http", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer hdr-secret"}}
}}"#;

#[test]
fn health_reports_version_cache_ollama_and_servers() {
    let hub = Hub::builder().servers(TWO_SERVERS).start();
    let r = hub.request("GET", "/health", &[("X-Client-Name", "it-client")], b"");
    // One debug line per request: method, path, status, duration, client.
    wait_for("the request's log line", 5 * SEC, || {
        let log = hub.log();
        log.lines().any(|l| l.contains("GET /health 200") && l.contains("ms client=it-client")).then_some(())
    });
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let h = r.json();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    assert!(h["uptime_s"].as_f64().is_some_and(|u| u >= 0.0), "{h}");
    assert_eq!(h["ollama"]["status"], "down");
    assert_eq!(h["ollama"]["circuit"], "closed");
    assert_eq!(h["ollama"]["url"], "http://127.0.0.1:9");
    assert_eq!(h["cache"], json!({"size": 0, "max_size": 1000, "hits": 0, "misses": 0, "evictions": 0}));
    assert_eq!(
        h["servers"]["alpha"],
        json!({"status": "STOPPED", "transport": "stdio", "circuit": "closed", "pid": null, "restart_count": 0, "uptime_s": null, "held": false})
    );
    assert_eq!(h["servers"]["beta"]["transport"], "http");
}

#[test]
fn health_sees_ollama_and_its_models() {
    let ollama = FakeOllama::start(&["llama3.2:3b", "qwen2.5:7b"]);
    let hub = Hub::builder().servers(NO_SERVERS).env("OLLAMA_URL", &ollama.url).start();
    let h = wait_for("/health to show ollama up", 10 * SEC, || {
        let h = hub.get("/health").json();
        (h["ollama"]["status"] == "up").then_some(h)
    });
    assert_eq!(h["ollama"]["models"], json!(["llama3.2:3b", "qwen2.5:7b"]));
    assert_eq!(h["ollama"]["url"], ollama.url.as_str());
}

#[test]
fn server_health_is_404_when_unknown_and_503_when_not_running() {
    let hub = Hub::builder().servers(TWO_SERVERS).start();
    let msg = hub.get("/health/nope").expect_error(404, "not_found");
    assert!(msg.contains("nope"), "{msg}");
    let r = hub.get("/health/alpha");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["status"], "STOPPED");
    assert_eq!(r.json()["name"], "alpha");
}

#[test]
fn servers_api_masks_secrets() {
    let hub = Hub::builder().servers(TWO_SERVERS).start();
    let r = hub.get("/servers");
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(!text.contains("sekrit-value") && !text.contains("hdr-secret"), "{text}");
    let list = r.json()["servers"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["config"]["env"], json!({"API_KEY": "***"}));
    assert_eq!(list[1]["config"]["headers"], json!({"Authorization": "***"}));
    let one = hub.get("/servers/alpha").json();
    assert_eq!((one["name"].as_str(), one["status"].as_str()), (Some("alpha"), Some("STOPPED")));
    hub.get("/servers/ghost").expect_error(404, "not_found");
    assert!(!hub.log().contains("sekrit-value"), "secret in the log");
}

#[test]
fn unknown_paths_and_wrong_methods() {
    let hub = Hub::empty();
    let msg = hub.get("/nowhere").expect_error(404, "not_found");
    assert!(msg.contains("/nowhere"), "{msg}");
    let r = hub.request("DELETE", "/health", &[], b"");
    r.expect_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, OPTIONS"));
}

#[test]
fn bodies_over_the_cap_get_413() {
    let hub = Hub::builder().servers(NO_SERVERS).env("AGENTHUB_MAX_BODY_BYTES", "1024").start();
    // Declared length over the cap: refused without reading.
    hub.request("POST", "/health", &[], &[b'x'; 2000]).expect_error(413, "payload_too_large");
    // Chunked, so undeclared: refused once the cap is passed.
    let mut chunked = Vec::new();
    for _ in 0..3 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend_from_slice(&[b'y'; 0x200]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    hub.request("POST", "/health", &[("Transfer-Encoding", "chunked")], &chunked)
        .expect_error(413, "payload_too_large");
    // Within the cap the route answers (405 here: /health takes GET).
    assert_eq!(hub.request("POST", "/health", &[], &[b'z'; 1000]).status, 405);
    assert_eq!(hub.get("/health").status, 200);
}

#[test]
fn a_forged_huge_content_length_does_not_kill_the_hub() {
    let hub = Hub::empty();
    for declared in ["1000000000000000000", "70000000", "9999999999999"] {
        let r = hub.request("POST", "/health", &[("Content-Length", declared)], b"{}");
        r.expect_error(413, "payload_too_large");
    }
    // A modest oversized body that is actually sent is discarded and the hub goes on.
    hub.request("POST", "/health", &[], &vec![b'a'; 5 << 20]).expect_error(413, "payload_too_large");
    assert_eq!(hub.get("/health").status, 200, "hub died:\n{}", hub.log());
}

#[test]
fn cors_preflight_and_headers_for_local_origins() {
    let hub = Hub::empty();
    let r = hub.request(
        "OPTIONS",
        "/health",
        &[("Origin", "http://localhost:3000"), ("Access-Control-Request-Method", "GET")],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("http://localhost:3000"));
    assert!(r.header("access-control-allow-methods").unwrap_or("").contains("POST"));
    assert!(r.header("access-control-allow-headers").unwrap_or("").contains("Mcp-Session-Id"));
    let r = hub.request("GET", "/health", &[("Origin", "http://127.0.0.1:5173")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("http://127.0.0.1:5173"));
    assert!(hub.get("/health").header("access-control-allow-origin").is_none());
}

#[test]
fn foreign_origin_or_host_is_forbidden_everywhere() {
    let hub = Hub::empty();
    for path in ["/health", "/servers", "/nowhere"] {
        let r = hub.request("GET", path, &[("Origin", "http://evil.example")], b"");
        r.expect_error(403, "forbidden_origin");
        assert!(r.header("access-control-allow-origin").is_none());
        hub.request("GET", path, &[("Host", "evil.example:9090")], b"").expect_error(403, "forbidden_origin");
    }
    hub.request("OPTIONS", "/health", &[("Origin", "http://evil.example")], b"")
        .expect_error(403, "forbidden_origin");
    hub.request("GET", "/health", &[("Origin", "null")], b"").expect_error(403, "forbidden_origin");
    assert_eq!(hub.request("GET", "/health", &[("Host", "localhost:1")], b"").status, 200);
}

#[test]
fn bearer_token_is_required_when_set() {
    let hub = Hub::builder().servers(NO_SERVERS).env("AGENTHUB_TOKEN", "tok-123").start();
    let r = hub.get("/health");
    r.expect_error(401, "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    hub.request("GET", "/health", &[("Authorization", "Bearer wrong")], b"")
        .expect_error(401, "unauthorized");
    assert_eq!(hub.request("GET", "/health", &[("Authorization", "Bearer tok-123")], b"").status, 200);
    // Preflight carries no credentials and still passes.
    assert_eq!(hub.request("OPTIONS", "/health", &[("Origin", "http://localhost")], b"").status, 204);
    assert!(!hub.log().contains("tok-123"), "token in the log");
}

#[test]
fn non_loopback_bind_without_token_is_refused() {
    let dir = TempDir::new("bind");
    let out = hub_command(dir.path())
        .args(["--host", "0.0.0.0", "--port", "0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AGENTHUB_TOKEN") && err.contains("0.0.0.0"), "{err}");
}

#[test]
fn sigterm_and_sigint_exit_zero_promptly() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut hub = Hub::empty();
        assert_eq!(hub.get("/health").status, 200);
        let t = Instant::now();
        hub.signal(sig);
        let status = hub.wait_exit(2 * SEC);
        assert!(status.success(), "exit {status} after signal {sig}\n{}", hub.log());
        assert!(t.elapsed() < 2 * SEC);
        assert!(hub.log().contains("stopped"), "{}", hub.log());
    }
}

#[test]
fn listening_line_names_the_real_port() {
    let hub = Hub::empty();
    let port: u16 = hub.addr.rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, 0);
    assert!(hub.addr.starts_with("127.0.0.1:"), "{}", hub.addr);
}

#[test]
fn runs_on_embedded_defaults_with_nothing_named() {
    let hub = Hub::builder().unnamed().start();
    let h = hub.get("/health").json();
    assert_eq!(h["servers"]["everything"]["status"], "STOPPED", "{h}");
    assert!(hub.log().contains("config servers: embedded defaults"), "{}", hub.log());
}

fn run(args: &[&str], dir: &TempDir) -> (i32, String, String) {
    let out = hub_command(dir.path()).args(args).stdin(Stdio::null()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_version_and_bad_flags() {
    let dir = TempDir::new("cli");
    let (code, out, _) = run(&["--help"], &dir);
    assert_eq!(code, 0);
    for needle in ["check-config", "--port", "AGENTHUB_PORT", "AGENTHUB_TOKEN", "OLLAMA_HOST", "9090"] {
        assert!(out.contains(needle), "help lacks {needle}:\n{out}");
    }
    let (code, out, _) = run(&["--version"], &dir);
    assert_eq!((code, out.trim()), (0, format!("agenthub {}", env!("CARGO_PKG_VERSION")).as_str()));
    let (code, _, err) = run(&["--frobnicate"], &dir);
    assert_eq!(code, 2);
    assert!(err.contains("unknown flag '--frobnicate'") && err.contains("usage:"), "{err}");
    let (code, _, err) = run(&["--port", "http"], &dir);
    assert_eq!(code, 2);
    assert!(err.contains("--port"), "{err}");
}

#[test]
fn check_config_summarizes_a_valid_config() {
    let dir = TempDir::new("check");
    dir.write("mcp-servers.json", TWO_SERVERS);
    let import = dir.write(
        "claude.json",
        r#"{"mcpServers": {"gamma": {"command": "node", "args": ["g.js"]}, "alpha": {"command": "other"}}}"#,
    );
    let (code, out, err) = run(
        &[
            "check-config",
            "--config-dir",
            dir.path().to_str().unwrap(),
            "--servers-file",
            import.to_str().unwrap(),
        ],
        &dir,
    );
    assert_eq!(code, 0, "{out}{err}");
    for needle in [
        "3 server(s)",
        "alpha",
        "/bin/cat",
        "beta",
        "http://127.0.0.1:9/mcp",
        "gamma",
        "node g.js",
        "valid",
        "default model llama3.2:3b",
    ] {
        assert!(out.contains(needle), "summary lacks {needle}:\n{out}");
    }
    assert!(out.contains("warning: server \"alpha\""), "clash not reported:\n{out}");
    assert!(!out.contains("sekrit"), "{out}");
}

#[test]
fn bad_config_files_name_file_path_and_line() {
    fn check(file: &str, text: &str, needles: &[&str]) {
        let dir = TempDir::new("bad");
        let path = dir.write(file, text);
        let (code, _, err) = run(&["check-config", "--config-dir", dir.path().to_str().unwrap()], &dir);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(&path.display().to_string()), "{err} lacks the file name");
        for n in needles {
            assert!(err.contains(n), "{err:?} lacks {n:?}");
        }
        // Serving refuses the same config.
        let mut cmd = hub_command(dir.path());
        let out = cmd
            .args(["--port", "0", "--config-dir", dir.path().to_str().unwrap()])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(needles.iter().all(|n| err.contains(n)), "{err}");
    }
    check(
        "mcp-servers.json",
        "{\n  \"servers\": {\n    \"a\": {\"command\" \"x\"}\n  }\n}\n",
        &[":3:", "invalid JSON"],
    );
    check("mcp-servers.json", r#"{"servers": []}"#, &["servers: expected an object"]);
    check("enhancement-rules.json", r#"{"default": {"model": "m", "options": 3}}"#, &["default.options"]);
}

#[test]
fn missing_config_dir_or_import_is_fatal_and_named() {
    let dir = TempDir::new("missing");
    let ghost = dir.path().join("no-such-dir");
    let (code, _, err) = run(&["check-config", "--config-dir", ghost.to_str().unwrap()], &dir);
    assert_eq!(code, 1);
    assert!(err.contains(ghost.to_str().unwrap()), "{err}");
    let out = hub_command(dir.path()).args(["--port", "0", "--config-dir"]).arg(&ghost).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-dir"));
    let ghost_file = dir.path().join("nope.json");
    let out = hub_command(dir.path())
        .args(["check-config"])
        .env("AGENTHUB_SERVERS_FILE", &ghost_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.json"));
}

#[test]
fn missing_variable_fails_only_that_server() {
    let cfg = r#"{"servers": {
        "needs-key": {"command": "srv", "env": {"KEY": "${AGENTHUB_IT_UNSET_VAR}"}},
        "fine": {"command": "srv", "args": ["${HOME}"]}
    }}"#;
    let dir = TempDir::new("vars");
    dir.write("mcp-servers.json", cfg);
    let (code, out, err) = run(&["check-config", "--config-dir", dir.path().to_str().unwrap()], &dir);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("missing environment variable AGENTHUB_IT_UNSET_VAR"), "{out}");
    let hub = Hub::builder().servers(cfg).start();
    let h = hub.get("/health").json();
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["servers"]["needs-key"]["status"], "FAILED");
    assert_eq!(h["servers"]["fine"]["status"], "STOPPED");
    let s = hub.get("/servers/needs-key").json();
    assert!(s["last_error"].as_str().unwrap().contains("AGENTHUB_IT_UNSET_VAR"), "{s}");
    // The saved form stays unexpanded.
    assert_eq!(s["config"]["env"]["KEY"], "***");
    assert_eq!(hub.get("/servers/fine").json()["config"]["args"][0], "${HOME}");
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let hub = Hub::empty();
    let mut c = Conn::new(&hub.addr);
    for _ in 0..50 {
        let r = c.get("/health");
        assert_eq!(r.status, 200);
    }
}
