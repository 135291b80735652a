//! Profiles: what each client sees, chosen by its name (`X-Client-Name`, else `clientInfo.name`
//! through the shipped client names) or by its token, enforced at every list and every call on
//! `/mcp`, `/mcp/{server}`, the stdio shim and the REST relay, in both protocol eras; reloaded
//! live, with `list_changed` for the sessions whose view changed.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::*;

const PROFILES: &str = r#"{
  "profiles": {
    "coding": {"servers": {"files": {"tools": ["echo", "slee*"],
                                     "overrides": {"echo": {"description": "Say it back"}}}}},
    "notes-only": {"servers": {"notes": {}}}
  },
  "clients": {"cursor": "coding"},
  "default": "notes-only"
}"#;
const ALICE: &str = "alice-token-0123456789";

fn hub() -> Hub {
    let builder = Hub::builder()
        .fixtures(&[("files", json!({"auto_start": true})), ("notes", json!({"auto_start": true}))])
        .file("profiles.json", PROFILES)
        .file(
            "tokens.json",
            &json!({"tokens": {"alice": {"token": ALICE, "profile": "coding"}}}).to_string(),
        );
    let tokens = builder.dir().join("tokens.json");
    let hub = builder.env("AGENTHUB_TOKENS_FILE", tokens.to_str().unwrap()).start();
    hub.wait_status("files", "RUNNING", 10 * SEC);
    hub.wait_status("notes", "RUNNING", 10 * SEC);
    hub
}

/// What the Python SDK sees as this client (`args`: the script's options after the kind).
fn python_sees(args: &[&str]) -> Value {
    let python = dep("venv/bin/python");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/profile_client.py");
    let out = Command::new(python).arg(script).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "profile client failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn tool_names(seen: &Value) -> Vec<String> {
    let mut names: Vec<String> = seen["tools"].as_object().unwrap().keys().cloned().collect();
    names.sort();
    names
}

#[test]
fn a_profile_decides_what_a_client_sees_and_calls_on_every_endpoint() {
    let hub = hub();
    let mcp = format!("http://{}/mcp", hub.addr);
    let calls = ["--call", "files__echo", "--call", "notes__echo", "--call", "files__notify"];

    // By its name: X-Client-Name.
    let cursor = python_sees(&[&["http", &mcp, "--header", "X-Client-Name:cursor"][..], &calls].concat());
    assert_eq!(tool_names(&cursor), ["files__echo", "files__sleep"], "{cursor}");
    assert_eq!(cursor["tools"]["files__echo"], "Say it back", "the profile's description: {cursor}");
    assert_eq!(cursor["prompts"], json!(["files__greet"]), "{cursor}");
    let resources = cursor["resources"].as_array().unwrap();
    assert!(resources.len() == 1 && resources[0].as_str().unwrap().contains("files"), "{cursor}");
    assert_eq!(cursor["calls"]["files__echo"], "hi", "{cursor}");
    for hidden in ["notes__echo", "files__notify"] {
        let said = cursor["calls"][hidden].as_str().unwrap();
        assert!(
            said.starts_with("error") && said.contains(&format!("unknown tool \"{hidden}\"")),
            "{cursor}"
        );
    }

    // By the name it gives itself (Cursor's clientInfo.name, a name the hub ships), and by its
    // token, which decides over any name.
    let by_info = python_sees(&["http", &mcp, "--client-info", "cursor-vscode"]);
    assert_eq!(tool_names(&by_info), ["files__echo", "files__sleep"], "{by_info}");
    let bearer = format!("Authorization:Bearer {ALICE}");
    let by_token = python_sees(&["http", &mcp, "--header", &bearer, "--header", "X-Client-Name:vscode"]);
    assert_eq!(tool_names(&by_token), ["files__echo", "files__sleep"], "{by_token}");

    // Nobody in particular: the default profile, the notes server whole and nothing else
    // (not the hub's own tools: the profile does not name "agenthub").
    let other = python_sees(&["http", &mcp, "--call", "files__echo"]);
    let names = tool_names(&other);
    assert!(!names.is_empty() && names.iter().all(|n| n.starts_with("notes__")), "{other}");
    assert_eq!(other["prompts"], json!(["notes__greet"]), "{other}");
    assert!(other["calls"]["files__echo"].as_str().unwrap().contains("unknown tool"), "{other}");

    // A server's own endpoint: a hidden server does not exist for the client; a shown one
    // lists and calls only the profile's tools.
    let notes = format!("http://{}/mcp/notes", hub.addr);
    let refused = python_sees(&["http", &notes, "--header", "X-Client-Name:cursor"]);
    assert!(refused["initialize_error"].as_str().unwrap().contains("no server named \"notes\""), "{refused}");
    let files = format!("http://{}/mcp/files", hub.addr);
    let own = python_sees(&[
        "http",
        &files,
        "--header",
        "X-Client-Name:cursor",
        "--call",
        "echo",
        "--call",
        "notify",
    ]);
    assert_eq!(tool_names(&own), ["echo", "sleep"], "{own}");
    assert_eq!(own["tools"]["echo"], "Say it back", "{own}");
    assert_eq!(own["calls"]["echo"], "hi", "{own}");
    assert!(own["calls"]["notify"].as_str().unwrap().contains("unknown tool \"notify\""), "{own}");

    // The stdio shim, as Claude Desktop would launch it for this client.
    let url = format!("http://{}", hub.addr);
    let shim = python_sees(&[
        "stdio",
        "--call",
        "notes__echo",
        "--",
        BIN,
        "stdio",
        "--url",
        &url,
        "--client",
        "cursor",
    ]);
    assert_eq!(tool_names(&shim), ["files__echo", "files__sleep"], "{shim}");
    assert!(shim["calls"]["notes__echo"].as_str().unwrap().contains("unknown tool"), "{shim}");

    // The REST relay, for curl.
    let rest = |path: &str, headers: &[(&str, &str)], body: Value| {
        hub.request("POST", path, &[&[JSON][..], headers].concat(), body.to_string().as_bytes())
    };
    let cursor_h = [("X-Client-Name", "cursor")];
    let listed = rest("/mcp/files/tools/list", &cursor_h, json!({}));
    let listed = listed.json();
    let names: Vec<&str> =
        listed["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["echo", "sleep"], "{listed}");
    let hidden = rest("/mcp/files/tools/call", &cursor_h, json!({"name": "notify", "arguments": {}}));
    assert!(hidden.expect_error(400, "bad_request").contains("unknown tool \"notify\""));
    let gone = rest("/mcp/notes/tools/list", &cursor_h, json!({}));
    assert!(gone.expect_error(404, "not_found").contains("no server named \"notes\""));
    let unknown = rest("/mcp/nope/tools/list", &cursor_h, json!({}));
    assert!(!unknown.text().contains("notes"), "a hidden server is not named: {}", unknown.text());

    // A client's token reaches the MCP endpoints, not the rest of the API.
    let auth = format!("Bearer {ALICE}");
    let with_token = [("Authorization", auth.as_str())];
    assert_eq!(rest("/mcp/files/tools/list", &with_token, json!({})).status, 200);
    let admin = hub.request("GET", "/servers", &with_token, b"");
    assert!(admin.expect_error(403, "forbidden").contains("AGENTHUB_TOKENS_FILE"));

    // Each refusal is logged, naming the client and its profile; no token ever is.
    let log = hub.log();
    assert!(log.contains("tool notes__echo refused to cursor (profile coding)"), "{log}");
    assert!(log.contains("tool notify on /mcp/files refused to cursor (profile coding)"), "{log}");
    assert!(!log.contains(ALICE));

    // GET /profiles: each profile with its servers, tools, size and who gets it.
    let profiles = hub.get("/profiles").json();
    let coding =
        profiles["profiles"].as_array().unwrap().iter().find(|p| p["name"] == "coding").unwrap().clone();
    assert_eq!(
        (coding["tool_count"].clone(), coding["clients"].clone()),
        (json!(2), json!(["cursor"])),
        "{profiles}"
    );
    assert_eq!(coding["token_names"], json!(["alice"]), "{profiles}");
    assert_eq!(coding["servers"][0]["name"], "files", "{profiles}");
    assert!(coding["bytes"].as_u64().unwrap() > 0 && coding["tokens"].as_u64().unwrap() > 0, "{profiles}");
    assert_eq!(profiles["default"], "notes-only");
    assert!(!profiles.to_string().contains(ALICE));
    let catalog = hub.get("/catalog").json();
    let sized =
        catalog["profiles"].as_array().unwrap().iter().find(|p| p["name"] == "coding").unwrap().clone();
    assert_eq!(sized["bytes"], coding["bytes"], "{catalog}");
}

/// A modern request (2026-07-28: no session, the envelope in `_meta`) from a named client.
fn modern(hub: &Hub, client: &str, method: &str, params: Value, name: Option<&str>) -> Value {
    modern_request(hub, 1, method, params, name, &[("X-Client-Name", client)]).json()
}

#[test]
fn a_profile_holds_for_clients_without_sessions() {
    let hub = hub();
    let listed = modern(&hub, "cursor", "tools/list", json!({}), None);
    let names: Vec<&str> =
        listed["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["files__echo", "files__sleep"], "{listed}");
    let call = json!({"name": "notes__echo", "arguments": {"text": "x"}});
    let hidden = modern(&hub, "cursor", "tools/call", call, Some("notes__echo"));
    assert!(hidden["error"]["message"].as_str().unwrap().contains("unknown tool"), "{hidden}");
    let call = json!({"name": "files__echo", "arguments": {"text": "x"}});
    let shown = modern(&hub, "cursor", "tools/call", call, Some("files__echo"));
    assert_eq!(shown["result"]["content"][0]["text"], "x", "{shown}");
}

/// The next message on a session's GET stream (its `data:` line).
fn next_message(stream: &mut impl BufRead) -> Value {
    loop {
        let mut line = String::new();
        assert!(stream.read_line(&mut line).unwrap() > 0, "the stream ended");
        if let Some(data) = line.strip_prefix("data: ") {
            return serde_json::from_str(data.trim()).unwrap();
        }
    }
}

#[test]
fn a_profile_change_is_live_and_told_only_to_the_sessions_whose_view_changed() {
    let hub = hub();
    let init = |name: &str| {
        let mut body = initialize_body(MCP_VERSION);
        body["params"]["clientInfo"]["name"] = json!(name);
        let (session, _) = McpSession::initialize(&hub.addr, "/mcp", &body);
        session.initialized();
        session
    };
    let (cursor, other) = (init("cursor-vscode"), init("someone-else"));
    // The other client hears its server's log messages: the marker that ends the wait below.
    let r = other.call(json!(1), "logging/setLevel", json!({"level": "info"}));
    assert!(r.get("result").is_some(), "{r}");
    let (mut cursor_stream, mut other_stream) = (cursor.open_stream(), other.open_stream());

    // Coding's description changes: its client is told, and lists the new one.
    hub.dir.write("profiles.json", &PROFILES.replace("Say it back", "Repeat it"));
    let told = next_message(&mut cursor_stream);
    assert!(told["method"].as_str().unwrap().ends_with("/list_changed"), "{told}");
    let listed = cursor.call(json!(2), "tools/list", json!({}));
    let echo =
        listed["result"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == "files__echo").cloned();
    assert_eq!(echo.unwrap()["description"], "Repeat it", "{listed}");

    // The other client's view did not change: the first thing it hears is its server's message.
    let r = hub.tool("notes", "notify", json!({"data": "marker"}));
    assert_eq!(r.status, 200, "{}", r.text());
    let first = next_message(&mut other_stream);
    assert_eq!(
        (first["method"].as_str(), first["params"]["data"].as_str()),
        (Some("notifications/message"), Some("marker")),
        "{first}"
    );

    // A profiles file that does not load is refused whole: the running one stays.
    hub.dir.write("profiles.json", r#"{"default": "nobody"}"#);
    wait_for("the refusal", 10 * SEC, || hub.log().contains("no profile named \"nobody\"").then_some(()));
    let still = cursor.call(json!(3), "tools/list", json!({}));
    assert_eq!(still["result"]["tools"].as_array().unwrap().len(), 2, "{still}");
}

#[test]
fn a_client_starts_only_the_servers_its_profile_shows() {
    let profiles =
        r#"{"profiles": {"seen-only": {"servers": {"seen": {}}}}, "clients": {"cursor": "seen-only"}}"#;
    let hub = Hub::builder()
        .fixtures(&[("seen", json!({"auto_start": false})), ("hidden", json!({"auto_start": false}))])
        .file("profiles.json", profiles)
        .start();
    let mut body = initialize_body(MCP_VERSION);
    body["params"]["clientInfo"]["name"] = json!("cursor-vscode");
    let (c, _) = McpSession::initialize(&hub.addr, "/mcp", &body);
    c.initialized();
    // The first list waits for the servers the client may use that have no catalog yet.
    let listed = c.call(json!(1), "tools/list", json!({}));
    assert!(
        listed["result"]["tools"].as_array().unwrap().iter().any(|t| t["name"] == "seen__echo"),
        "{listed}"
    );
    assert_eq!(hub.server("seen")["status"], "RUNNING");
    assert_eq!(hub.server("hidden")["status"], "STOPPED", "nobody who sees it asked");
}

/// The audit trail's lines.
fn audit_lines(hub: &Hub) -> Vec<Value> {
    let text =
        std::fs::read_to_string(hub.dir.path().join("xdg-data/agenthub/audit.jsonl")).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn every_tool_call_is_one_audit_line_naming_who_and_never_what() {
    let hub = hub();
    let secret = "an-argument-nobody-should-read";
    // By MCP on /mcp (cursor), on /mcp/files (by token), and by REST (by name).
    let mut body = initialize_body(MCP_VERSION);
    body["params"]["clientInfo"]["name"] = json!("cursor-vscode");
    let (c, _) = McpSession::initialize(&hub.addr, "/mcp", &body);
    c.initialized();
    let r = c.call(json!(1), "tools/call", json!({"name": "files__echo", "arguments": {"text": secret}}));
    assert_eq!(r["result"]["content"][0]["text"], secret, "{r}");
    let auth = format!("Bearer {ALICE}");
    let call = json!({"name": "sleep", "arguments": {"ms": 1, "note": secret}}).to_string();
    let r = hub.request("POST", "/mcp/files/tools/call", &[JSON, ("Authorization", &auth)], call.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let call = json!({"name": "echo", "arguments": {"text": secret}}).to_string();
    let r = hub.request("POST", "/mcp/notes/tools/call", &[JSON, ("X-Client-Name", "zed")], call.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());

    let lines = wait_for("three audit lines", 10 * SEC, || Some(audit_lines(&hub)).filter(|l| l.len() >= 3));
    let said: Vec<(Value, Value, Value, Value, Value, Value)> = lines
        .iter()
        .map(|l| {
            (
                l["client"].clone(),
                l["profile"].clone(),
                l["token"].clone(),
                l["server"].clone(),
                l["tool"].clone(),
                l["outcome"].clone(),
            )
        })
        .collect();
    assert_eq!(
        said,
        [
            (json!("cursor"), json!("coding"), json!(null), json!("files"), json!("echo"), json!("ok")),
            (json!(null), json!("coding"), json!("alice"), json!("files"), json!("sleep"), json!("ok")),
            (json!("zed"), json!("notes-only"), json!(null), json!("notes"), json!("echo"), json!("ok")),
        ],
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["time"].as_str().is_some_and(|t| t.ends_with('Z')) && l["duration_ms"].is_number())
    );
    let text = std::fs::read_to_string(hub.dir.path().join("xdg-data/agenthub/audit.jsonl")).unwrap();
    assert!(!text.contains(secret) && !text.contains(ALICE), "never the arguments, the result or a token");
    use std::os::unix::fs::PermissionsExt;
    let mode =
        std::fs::metadata(hub.dir.path().join("xdg-data/agenthub/audit.jsonl")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn with_audit_on_stdout_the_lines_go_there_for_a_clusters_log_shipping() {
    use std::io::{BufRead, BufReader, Read};
    let dir = TempDir::new("audit-stdout");
    dir.write("mcp-servers.json", &fixture_servers(&[("fx", json!({"auto_start": true}))]));
    let mut child = hub_command(dir.path())
        .args(["serve", "--port", "0", "--config-dir"])
        .arg(dir.path())
        .env("AGENTHUB_AUDIT", "stdout")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let addr = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "the hub ended before listening");
        if let Some(at) = line.find("listening on http://") {
            break line[at + 20..].split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    wait_for("fx to run", 10 * SEC, || {
        let r = raw_request(&addr, "GET", "/servers/fx", &[], b"");
        (r.json()["status"] == "RUNNING").then_some(())
    });
    let call = json!({"name": "echo", "arguments": {"text": "x"}}).to_string();
    assert_eq!(raw_request(&addr, "POST", "/mcp/fx/tools/call", &[JSON], call.as_bytes()).status, 200);
    // SAFETY: the hub this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let _ = child.wait();
    let line: Value =
        serde_json::from_str(out.lines().next().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(
        (line["server"].as_str(), line["tool"].as_str(), line["outcome"].as_str()),
        (Some("fx"), Some("echo"), Some("ok"))
    );
    assert!(!dir.path().join("xdg-data/agenthub/audit.jsonl").exists(), "not to the file as well");
}
