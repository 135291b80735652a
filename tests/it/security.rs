//! The security review's findings, end to end: masked secrets sent back by a client, the saved
//! file's modes, secrets in what the hub writes about a server, weak tokens, and cross-origin
//! requests to the management API and to the hub's data.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use serde_json::json;

use crate::harness::*;

#[test]
fn putting_back_the_masked_config_keeps_the_secrets() {
    let hub = Hub::empty();
    let add = json!({"name": "x", "command": FIXTURE, "args": ["--api-key", "arg-s3cret"], "env": {"API_KEY": "s3cret"}});
    assert_eq!(hub.post_json("/servers", &add).status, 201);
    let remote = json!({"name": "remote", "transport": "http", "url": "https://u:pw@r.example/mcp?token=qtok",
        "headers": {"Authorization": "Bearer hdr-s3cret"}});
    assert_eq!(hub.post_json("/servers", &remote).status, 201);

    let shown = hub.server("x")["config"].clone();
    assert_eq!(shown["env"], json!({"API_KEY": "***"}));
    let r = hub.request("PUT", "/servers/x", &[JSON], shown.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let saved = &hub.saved()["servers"]["x"];
    assert_eq!(saved["env"]["API_KEY"], "s3cret", "{saved}");
    // A secret-looking arg is masked too, and kept the same way.
    assert_eq!(shown["args"], json!(["--api-key", "***"]));
    assert_eq!(saved["args"], json!(["--api-key", "arg-s3cret"]));

    // An edit sent back with the rest masked changes what was edited, and only that.
    let mut edited = shown.clone();
    edited["description"] = json!("edited");
    edited["env"]["OTHER"] = json!("new");
    let r = hub.request("PUT", "/servers/x", &[JSON], edited.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let saved = &hub.saved()["servers"]["x"];
    assert_eq!(saved["env"], json!({"API_KEY": "s3cret", "OTHER": "new"}));
    assert_eq!(saved["description"], "edited");
    // A new value is a new value.
    edited["env"]["API_KEY"] = json!("rotated");
    assert_eq!(hub.request("PUT", "/servers/x", &[JSON], edited.to_string().as_bytes()).status, 200);
    assert_eq!(hub.saved()["servers"]["x"]["env"]["API_KEY"], "rotated");

    let shown = hub.server("remote")["config"].clone();
    assert_eq!(shown["url"], "https://***@r.example/mcp?token=***");
    assert_eq!(shown["headers"], json!({"Authorization": "***"}));
    let r = hub.request("PUT", "/servers/remote", &[JSON], shown.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let saved = &hub.saved()["servers"]["remote"];
    assert_eq!(saved["url"], "https://u:pw@r.example/mcp?token=qtok");
    assert_eq!(saved["headers"]["Authorization"], "Bearer hdr-s3cret");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[test]
fn the_saved_file_is_private() {
    // A fresh config dir: the first save creates it.
    let hub = Hub::builder().unnamed().start();
    assert_eq!(hub.post_json("/servers", &json!({"name": "mine", "command": "x"})).status, 201);
    let dir = hub.dir.path().join("xdg-config/agenthub");
    assert_eq!(mode(&dir), 0o700, "the config dir");
    assert_eq!(mode(&dir.join("mcp-servers.json")), 0o600, "the servers file");

    // A servers file that is a symlink: written through, the link kept, the target private.
    let b = Hub::builder();
    let real = b.dir().join("real");
    std::fs::create_dir(&real).unwrap();
    let target = real.join("servers.json");
    std::fs::write(&target, NO_SERVERS).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = b.dir().join("mcp-servers.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let hub = b.start();
    assert_eq!(hub.post_json("/servers", &json!({"name": "a", "command": "x"})).status, 201);
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced");
    assert!(std::fs::read_to_string(&target).unwrap().contains("\"a\""));
    assert_eq!(mode(&target), 0o600, "a looser mode is tightened");
    // A stricter mode is kept.
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(hub.post_json("/servers", &json!({"name": "b", "command": "x"})).status, 201);
    assert_eq!(mode(&target), 0o400);
    assert!(std::fs::read_to_string(&target).unwrap().contains("\"b\""));
}

#[test]
fn secrets_stay_out_of_last_error_activity_and_the_log() {
    let secret = "value-of-secret-for-test";
    let literal = "literal-env-secret-42";
    let leaky = json!({"args": ["--print-env", "TOKEN,LITERAL"], "max_restarts": 1,
        "env": {"TOKEN": "${SECRET_FOR_TEST}", "LITERAL": literal}});
    let hub = Hub::builder().fixtures(&[("leaky", leaky)]).env("SECRET_FOR_TEST", secret).start();
    let started = hub.post("/servers/leaky/start");
    assert_eq!(started.status, 502, "{}", started.text());
    let failed = hub.wait_status("leaky", "FAILED", 10 * SEC);
    // What the child wrote is still there to read, its secrets taken out.
    let last = failed["last_error"].as_str().unwrap_or_default();
    assert!(last.contains("TOKEN=***") && last.contains("LITERAL=***"), "{last}");
    wait_for("the stderr line in the log", 5 * SEC, || {
        hub.log().contains("fixture: TOKEN=***").then_some(())
    });
    let seen = [
        ("POST /servers/leaky/start", started.text()),
        ("GET /servers/leaky", hub.get("/servers/leaky").text()),
        ("GET /servers", hub.get("/servers").text()),
        ("GET /servers/leaky/logs", hub.get("/servers/leaky/logs").text()),
        ("GET /activity", hub.get("/activity").text()),
        ("GET /health", hub.get("/health").text()),
        ("GET /health/leaky", hub.get("/health/leaky").text()),
        ("the log", hub.log()),
    ];
    for (what, text) in seen {
        assert!(!text.contains(secret) && !text.contains(literal), "a secret in {what}:\n{text}");
    }
}

#[test]
fn blank_and_short_tokens_are_refused_at_start() {
    let dir = TempDir::new("token");
    dir.write("mcp-servers.json", NO_SERVERS);
    let check = |host: &str, token: &str| {
        let out = hub_command(dir.path())
            .args(["check-config", "--config-dir", dir.path().to_str().unwrap(), "--host", host])
            .env("AGENTHUB_TOKEN", token)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    for (host, token) in [
        ("127.0.0.1", "   "),
        ("127.0.0.1", "\t"),
        ("0.0.0.0", "                    "),
        ("0.0.0.0", "short-token"),
        ("0.0.0.0", "a b c d e f g h i j k l m n o"),
    ] {
        let (code, err) = check(host, token);
        assert_eq!(code, Some(2), "{host} {token:?} accepted: {err}");
        assert!(err.contains("AGENTHUB_TOKEN"), "{err}");
        if !token.trim().is_empty() {
            assert!(!err.contains(token), "the message repeats the token: {err}");
        }
    }
    assert_eq!(check("0.0.0.0", "sixteen-chars-ok").0, Some(0));
    assert_eq!(check("127.0.0.1", "short").0, Some(0), "any non-blank token on loopback");
    // Serving refuses the same.
    let out = hub_command(dir.path())
        .args(["--host", "0.0.0.0", "--port", "0", "--config-dir", dir.path().to_str().unwrap()])
        .env("AGENTHUB_TOKEN", "change-me")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AGENTHUB_TOKEN"));
}

#[test]
fn other_local_origins_cannot_manage_the_hub() {
    let hub = Hub::with_fixtures(&[("fx", json!({}))]);
    let other = ("Origin", "http://localhost:3000");
    // The attack: a simple cross-origin POST (no preflight) that adds a command to run.
    let body = json!({"name": "pwned", "command": "/bin/sh", "args": ["-c", "exit 0"]}).to_string();
    let r = hub.request("POST", "/servers", &[other, ("Content-Type", "text/plain")], body.as_bytes());
    let msg = r.expect_error(403, "forbidden_origin");
    assert!(msg.contains("AGENTHUB_ALLOWED_ORIGINS"), "{msg}");
    assert!(r.header("access-control-allow-origin").is_none());
    hub.get("/servers/pwned").expect_error(404, "not_found");
    for (method, path) in [
        ("GET", "/servers"),
        ("GET", "/servers/fx"),
        ("GET", "/servers/fx/logs"),
        ("PUT", "/servers/fx"),
        ("DELETE", "/servers/fx"),
        ("POST", "/servers/fx/start"),
        ("POST", "/servers/install"),
        ("POST", "/cache/clear"),
    ] {
        hub.request(method, path, &[other], b"").expect_error(403, "forbidden_origin");
    }
    let preflight = [other, ("Access-Control-Request-Method", "POST")];
    hub.request("OPTIONS", "/servers", &preflight, b"").expect_error(403, "forbidden_origin");
    assert_eq!(hub.server("fx")["status"], "STOPPED");

    // The hub's own origin (its dashboard) may.
    let own = format!("http://{}", hub.addr);
    let r = hub.post_json_from(&own, "/servers", &json!({"name": "mine", "command": "x"}));
    assert_eq!(r.status, 201, "{}", r.text());

    // The MCP endpoints and /health keep CORS for local pages (the Inspector).
    let r = hub.request("OPTIONS", "/mcp/fx", &preflight, b"");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("http://localhost:3000"));
    let init = initialize_body(MCP_VERSION).to_string();
    let r = hub.request("POST", "/mcp/fx", &[MCP_ACCEPT, JSON, other], init.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some("http://localhost:3000"));
    let r = hub.request("POST", "/mcp", &[MCP_ACCEPT, JSON, other], init.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let r = hub.request("GET", "/health", &[other], b"");
    assert_eq!((r.status, r.header("access-control-allow-origin")), (200, Some("http://localhost:3000")));

    // An origin listed in AGENTHUB_ALLOWED_ORIGINS may manage.
    let listed =
        Hub::builder().servers(NO_SERVERS).env("AGENTHUB_ALLOWED_ORIGINS", "http://localhost:3000").start();
    let r = listed.request("POST", "/servers", &[other, JSON], br#"{"name": "ok", "command": "x"}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some("http://localhost:3000"));
}

impl Hub {
    /// `POST` of a JSON body sent with this `Origin`.
    fn post_json_from(&self, origin: &str, path: &str, body: &serde_json::Value) -> Resp {
        self.request("POST", path, &[("Origin", origin), JSON], body.to_string().as_bytes())
    }
}

#[test]
fn secrets_in_args_and_urls_are_masked_everywhere() {
    let secrets = ["pw-secret-1", "query-secret-2", "header-secret-3", "sbp_token_secret_4"];
    let servers = json!({"servers": {"remote-bridge": {"command": FIXTURE, "args": [
        "mcp-remote", "https://user:pw-secret-1@h.example/sse?api_key=query-secret-2",
        "--header", "Authorization: Bearer header-secret-3", "--access-token", "sbp_token_secret_4"]}}});
    let hub = Hub::builder().servers(&servers.to_string()).start();
    let shown = hub.server("remote-bridge")["config"].clone();
    assert_eq!(
        shown["args"],
        json!([
            "mcp-remote",
            "https://***@h.example/sse?api_key=***",
            "--header",
            "Authorization: ***",
            "--access-token",
            "***"
        ])
    );
    assert_eq!(hub.post("/servers/remote-bridge/start").json()["status"], "RUNNING");
    // Sent back masked, the real values stay.
    let r = hub.request("PUT", "/servers/remote-bridge", &[JSON], shown.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(hub.saved()["servers"]["remote-bridge"]["args"], servers["servers"]["remote-bridge"]["args"]);
    let dir = TempDir::new("mask-check");
    dir.write("mcp-servers.json", &servers.to_string());
    let check = hub_command(dir.path())
        .args(["check-config", "--config-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let seen = [
        hub.get("/servers").text(),
        hub.get("/servers/remote-bridge").text(),
        r.text(),
        hub.log(),
        String::from_utf8_lossy(&check.stdout).into_owned(),
        String::from_utf8_lossy(&check.stderr).into_owned(),
    ];
    for secret in secrets {
        for (i, text) in seen.iter().enumerate() {
            assert!(!text.contains(secret), "{secret} shown in #{i}: {text}");
        }
    }
}

#[test]
fn other_local_origins_cannot_read_what_the_hub_holds_of_other_clients() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    // Something of another client's in the activity feed.
    let (c, _) = McpSession::initialize(&hub.addr, "/mcp/fx", &initialize_body(MCP_VERSION));
    c.initialized();
    assert!(hub.get("/activity").text().contains("connected to /mcp/fx"));
    let other = ("Origin", "http://localhost:3000");
    for path in [
        "/activity",
        "/pipelines",
        "/pipelines/runs",
        "/pipelines/runs/1",
        "/metrics",
        "/dashboard/state",
        "/clients",
        "/ollama/models",
    ] {
        let r = hub.request("GET", path, &[other], b"");
        let msg = r.expect_error(403, "forbidden_origin");
        assert!(msg.contains("AGENTHUB_ALLOWED_ORIGINS"), "{path}: {msg}");
        assert!(r.header("access-control-allow-origin").is_none(), "{path}");
        let preflight = [other, ("Access-Control-Request-Method", "GET")];
        hub.request("OPTIONS", path, &preflight, b"").expect_error(403, "forbidden_origin");
    }
    // The hub's own page (same origin) reads them as before.
    let own = format!("http://{}", hub.addr);
    for path in ["/activity", "/pipelines/runs", "/metrics", "/dashboard/state"] {
        let r = hub.request("GET", path, &[("Origin", own.as_str())], b"");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(r.header("access-control-allow-origin").is_none(), "{path}");
    }
    // What browser MCP clients use stays open to local pages.
    let r = hub.request("GET", "/health", &[other], b"");
    assert_eq!((r.status, r.header("access-control-allow-origin")), (200, Some("http://localhost:3000")));
    let r = hub.request("POST", "/mcp/fx/tools/list", &[other, JSON], b"{}");
    assert_eq!((r.status, r.header("access-control-allow-origin")), (200, Some("http://localhost:3000")));
    // A listed origin may read.
    let listed =
        Hub::builder().servers(NO_SERVERS).env("AGENTHUB_ALLOWED_ORIGINS", "http://localhost:3000").start();
    let r = listed.request("GET", "/activity", &[other], b"");
    assert_eq!((r.status, r.header("access-control-allow-origin")), (200, Some("http://localhost:3000")));
}

#[test]
fn client_text_cannot_forge_a_log_line() {
    let hub = Hub::builder().env("AGENTHUB_LOG_LEVEL", "debug").start();
    let addr = &hub.addr;
    // Control characters in a head are refused by the front before anything logs them.
    for head in [
        format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nX-Client-Name: a\rINFO forged-cr\r\n\r\n"),
        format!(
            "GET /health HTTP/1.1\r\nHost: {addr}\r\nX-Client-Name: a\x1b[2K\x1b[1GINFO forged-esc\r\n\r\n"
        ),
        format!("GET /health\x1b[2K HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
    ] {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        std::io::Write::write_all(&mut s, head.as_bytes()).unwrap();
        assert_eq!(read_response(&mut s).status, 400, "{head:?}");
    }
    // A path's escapes stay escapes; names and methods from a JSON body are escaped in the line.
    assert_eq!(hub.get("/health%0d%0aINFO%20forged-path").status, 404);
    let mut init = initialize_body(MCP_VERSION);
    init["params"]["clientInfo"]["name"] = json!("evil\nINFO forged-name\x1b[31m");
    let r = raw_request(addr, "POST", "/mcp", &[JSON, MCP_ACCEPT], init.to_string().as_bytes());
    assert!(r.status < 500, "{}", r.text());
    let forged_method = json!({"jsonrpc": "2.0", "id": 2, "method": "x\r\nINFO forged-method"});
    raw_request(addr, "POST", "/mcp", &[JSON, MCP_ACCEPT], forged_method.to_string().as_bytes());
    let log = wait_for("the requests' lines in the log", 5 * SEC, || {
        let log = hub.log();
        (log.contains("evil\\nINFO forged-name") && log.contains("x\\r\\nINFO forged-method")).then_some(log)
    });
    assert!(log.contains("/health%0d%0aINFO%20forged-path"), "{log}");
    assert!(!log.lines().any(|l| l.trim_start().starts_with("INFO forged")), "a forged line:\n{log}");
    assert!(!log.contains('\x1b') && !log.contains('\r'), "a control character reached the log:\n{log:?}");
}
