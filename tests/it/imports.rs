//! The files users already have (tests/configs: Claude Desktop, Cursor, VS Code), imported as
//! they are: what the hub loads, runs and reports for each, asserted as data; imports beside no
//! file of the hub's own; imported servers read-only; and what `check-config` says.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};

use crate::harness::*;

fn configs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/configs")
}

/// PATH with the fixture on it, as `mcp-fixture` (what the files name).
fn path_with_fixture() -> String {
    let dir = Path::new(FIXTURE).parent().expect("the fixture's dir");
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default())
}

/// `agenthub check-config` with these args; (exit code, stdout, stderr).
fn check_config(dir: &TempDir, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = hub_command(dir.path())
        .arg("check-config")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run check-config");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// One server of a file, as the hub must show it.
struct Server {
    name: &'static str,
    display: &'static str,
    transport: &'static str,
    /// STOPPED, or FAILED with `last_error` containing `error`.
    error: Option<&'static str>,
    enabled: bool,
    /// Started, it runs with these in its argv and its environment (`{ws}` is the VS Code
    /// workspace folder, `{home}` the hub's HOME); None: not started (a start of a FAILED,
    /// disabled or remote one is refused).
    runs: Option<(&'static [&'static str], &'static [&'static str])>,
}

/// One file: its servers, and what `check-config` and the hub's log must say about it.
struct Case {
    file: &'static str,
    servers: &'static [Server],
    /// In check-config's output and in the hub's log (warnings with their JSON path).
    warnings: &'static [&'static str],
    /// In check-config's output.
    report: &'static [&'static str],
    /// Secrets that GET /servers, check-config and the log never show.
    hidden: &'static [&'static str],
}

const fn stopped(name: &'static str, transport: &'static str) -> Server {
    Server { name, display: name, transport, error: None, enabled: true, runs: None }
}

const CLAUDE: Case = Case {
    file: "claude_desktop.json",
    servers: &[
        Server { runs: Some((&["--root", "/Users/me/Desktop"], &[])), ..stopped("filesystem", "stdio") },
        stopped("memory", "stdio"),
        Server {
            display: "Brave Search",
            runs: Some((&["--api-key", "BSA-arg-secret-1"], &["BRAVE_API_KEY=brave-env-secret-1"])),
            ..stopped("brave-search", "stdio")
        },
        Server { display: "github.com", enabled: false, ..stopped("github_com", "stdio") },
        Server { runs: Some((&[], &[])), ..stopped("typos", "stdio") },
        Server { error: Some("mcpServers.broken.command: expected a string"), ..stopped("broken", "stdio") },
    ],
    warnings: &[
        "mcpServers.typos.autostart: unknown field (did you mean \"auto_start\"?)",
        "mcpServers.typos.restartOnFailure: unknown field (did you mean \"restart_on_failure\"?)",
    ],
    report: &[
        "6 server(s)",
        "brave-search (\"Brave Search\")",
        "--api-key ***",
        "npx -y @modelcontextprotocol/server-memory@2026.8.31",
        "github_com (\"github.com\")",
        " disabled",
        "error: ",
    ],
    hidden: &["BSA-arg-secret-1", "brave-env-secret-1"],
};

const CURSOR: Case = Case {
    file: "cursor.json",
    servers: &[
        stopped("remote", "url"),
        Server {
            runs: Some((&[], &["FROM_FILE=file-value", "FROM_JSON=json", "QUOTED=a b"])),
            ..stopped("with-env-file", "stdio")
        },
        Server { error: Some("no-such.env: cannot read"), ..stopped("missing-env-file", "stdio") },
        Server { runs: Some((&[], &[])), ..stopped("env_file-typo", "stdio") },
    ],
    warnings: &["mcpServers.env_file-typo.env_file: unknown field (did you mean \"envFile\"?)"],
    report: &["4 server(s)", "http://127.0.0.1:9/mcp?api_key=***", "envFile", "no-such.env"],
    hidden: &["cursor-query-secret", "cursor-header-secret"],
};

const VSCODE: Case = Case {
    file: "vscode/.vscode/mcp.json",
    servers: &[
        Server {
            runs: Some((
                &["--workspace", "{ws}", "--region", "eu-west-1", "--home", "{home}"],
                &["GITHUB_TOKEN=ghp-input-secret", "WORKSPACE_ENV=from-dotenv"],
            )),
            ..stopped("github", "stdio")
        },
        Server {
            error: Some(
                "missing input \"unset-one\" (the hub cannot prompt for it: set AGENTHUB_INPUT_UNSET_ONE, or give the input a \"default\")",
            ),
            ..stopped("needs-input", "stdio")
        },
        stopped("legacy", "sse"),
    ],
    warnings: &[],
    report: &["3 server(s)", "sse   http://127.0.0.1:9/sse", "AGENTHUB_INPUT_UNSET_ONE"],
    hidden: &["ghp-input-secret"],
};

fn check(case: &Case) {
    let file = configs().join(case.file);
    let before = std::fs::read(&file).expect("the config file");
    let ws = configs().join("vscode").display().to_string();
    let env =
        [("PATH", path_with_fixture()), ("AGENTHUB_INPUT_GITHUB_TOKEN", "ghp-input-secret".to_string())];

    // check-config: every server listed, every warning named, the bad ones are errors.
    let dir = TempDir::new("import-check");
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args = ["--config-dir", dir.path().to_str().unwrap(), "--servers-file", file.to_str().unwrap()];
    let (code, out, err) = check_config(&dir, &args, &env_refs);
    let failing = case.servers.iter().any(|s| s.error.is_some());
    assert_eq!(code, if failing { 1 } else { 0 }, "{}: {out}{err}", case.file);
    for needle in case.warnings.iter().chain(case.report) {
        assert!(out.contains(needle), "{}: check-config lacks {needle:?}:\n{out}", case.file);
    }
    for s in case.servers.iter().filter_map(|s| s.error) {
        assert!(out.contains(s), "{}: check-config lacks the error {s:?}:\n{out}", case.file);
    }

    // The hub: an empty config dir and the import. Its servers are the file's, no others.
    let mut b = Hub::builder().arg("--servers-file").arg(file.to_str().unwrap());
    for (k, v) in &env {
        b = b.env(k, v);
    }
    let hub = b.start();
    let home = hub.dir.path().display().to_string();
    let listed = hub.get("/servers").json();
    let names: Vec<&str> =
        listed["servers"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    let want: Vec<&str> = case.servers.iter().map(|s| s.name).collect();
    assert_eq!(names, want, "{}", case.file);
    for s in case.servers {
        let shown = hub.server(s.name);
        let what = format!("{} {}: {shown}", case.file, s.name);
        assert_eq!(shown["display_name"], s.display, "{what}");
        assert_eq!(shown["transport"], s.transport, "{what}");
        assert_eq!(shown["config"]["enabled"], s.enabled, "{what}");
        match s.error {
            Some(e) => {
                assert_eq!(shown["status"], "FAILED", "{what}");
                assert!(shown["last_error"].as_str().unwrap_or("").contains(e), "{what}");
            }
            None => assert_eq!(shown["status"], "STOPPED", "{what}"),
        }
        let refused = s.error.is_some() || !s.enabled || s.transport != "stdio";
        let Some((argv, environ)) = s.runs else {
            if refused {
                let started = hub.post(&format!("/servers/{}/start", s.name));
                assert_ne!(started.status, 200, "{what}: started: {}", started.text());
            }
            continue;
        };
        let started = hub.post(&format!("/servers/{}/start", s.name));
        assert_eq!(started.status, 200, "{what}: {}", started.text());
        let pid = started.json()["pid"].as_i64().unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let args: Vec<String> =
            cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let expand = |t: &str| t.replace("{ws}", &ws).replace("{home}", &home);
        for a in argv {
            assert!(args.contains(&expand(a)), "{what}: argv {args:?} lacks {a}");
        }
        let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let vars: Vec<String> =
            raw.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        for v in environ {
            assert!(vars.contains(&v.to_string()), "{what}: env lacks {v}");
        }
        assert_eq!(hub.post(&format!("/servers/{}/stop", s.name)).json()["status"], "STOPPED", "{what}");
    }
    if case.file.contains("vscode") {
        let legacy = hub.server("legacy");
        // Nothing listens there: the legacy SSE server is tried, and its stream cannot open.
        assert!(
            legacy["last_error"].as_str().unwrap_or("").contains("cannot open its event stream"),
            "{legacy}"
        );
    }

    // What it warned about at start, and what it never shows.
    for w in case.warnings {
        assert!(hub.log().contains(w), "{}: the log lacks {w:?}", case.file);
    }
    let seen = [hub.get("/servers").text(), out, hub.log()];
    for secret in case.hidden {
        assert!(seen.iter().all(|t| !t.contains(secret)), "{}: {secret} shown:\n{seen:?}", case.file);
    }
    // An import is never written.
    assert_eq!(std::fs::read(&file).unwrap(), before, "{} rewritten", case.file);
    assert!(!hub.dir.path().join("mcp-servers.json").exists(), "nothing saved");
}

#[test]
fn a_claude_desktop_file_loads_runs_and_reports_as_written() {
    check(&CLAUDE);
}

#[test]
fn a_cursor_file_loads_runs_and_reports_as_written() {
    check(&CURSOR);
}

#[test]
fn a_vscode_file_loads_runs_and_reports_as_written() {
    check(&VSCODE);
}

#[test]
fn an_import_beside_no_own_file_keeps_the_users_servers() {
    let desktop = json!({"mcpServers": {"filesystem": {"command": "npx",
        "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me/Desktop"]}}});
    let only_theirs = |hub: &Hub| {
        let list = hub.get("/servers").json();
        let names: Vec<&str> =
            list["servers"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["filesystem"], "{list}");
        let args = &hub.server("filesystem")["config"]["args"];
        assert_eq!(args, &json!(["-y", "@modelcontextprotocol/server-filesystem", "/home/me/Desktop"]));
    };
    // An empty --config-dir and --servers-file.
    let b = Hub::builder().file("claude.json", &desktop.to_string());
    let import = b.dir().join("claude.json");
    only_theirs(&b.arg("--servers-file").arg(import.to_str().unwrap()).start());
    // No config dir named, AGENTHUB_SERVERS_FILE.
    let b = Hub::builder().unnamed().file("claude.json", &desktop.to_string());
    let import = b.dir().join("claude.json");
    let hub = b.env("AGENTHUB_SERVERS_FILE", import.to_str().unwrap()).start();
    only_theirs(&hub);
    // The first change saves the user's server alone, in a new private file.
    assert_eq!(hub.post_json("/servers", &json!({"name": "mine", "command": "x"})).status, 201);
    let saved = hub.dir.path().join("xdg-config/agenthub/mcp-servers.json");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(saved).unwrap()).unwrap();
    assert_eq!(saved, json!({"servers": {"mine": {"command": "x"}}}));
}

#[test]
fn imported_servers_are_read_only() {
    let claude = json!({"mcpServers": {"desk": {"command": FIXTURE}}});
    let b = Hub::builder().servers(NO_SERVERS).file("claude.json", &claude.to_string());
    let import = b.dir().join("claude.json");
    let hub = b.arg("--servers-file").arg(import.to_str().unwrap()).start();
    let own = std::fs::read_to_string(hub.dir.path().join("mcp-servers.json")).unwrap();
    let put = hub.request("PUT", "/servers/desk", &[JSON], br#"{"command": "other", "args": ["--v2"]}"#);
    let msg = put.expect_error(409, "read_only");
    assert!(msg.contains(import.to_str().unwrap()), "names the file to edit: {msg}");
    let msg = hub.request("DELETE", "/servers/desk", &[], b"").expect_error(409, "read_only");
    assert!(msg.contains(import.to_str().unwrap()), "{msg}");
    assert_eq!(hub.server("desk")["config"]["command"], FIXTURE, "unchanged in memory");
    assert_eq!(
        std::fs::read_to_string(hub.dir.path().join("mcp-servers.json")).unwrap(),
        own,
        "nothing saved"
    );
    assert_eq!(std::fs::read_to_string(&import).unwrap(), claude.to_string(), "the import untouched");
    // Start and stop work.
    assert_eq!(hub.post("/servers/desk/start").json()["status"], "RUNNING");
    assert_eq!(hub.post("/servers/desk/stop").json()["status"], "STOPPED");
}

#[test]
fn check_config_shows_what_will_run() {
    let dir = TempDir::new("check-run");
    // An installed package: its bin, not npx.
    let pkg = dir.path().join("xdg-data/agenthub/npm/mem/node_modules/fake-mcp-server");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("package.json"), r#"{"name": "fake-mcp-server", "bin": "cli.js"}"#).unwrap();
    std::fs::write(pkg.join("cli.js"), "#!/usr/bin/env node\n").unwrap();
    let servers = "\u{feff}{\"servers\": {\"mem\": {\"package\": \"fake-mcp-server\"}, \"ghost\": {\"command\": \"no-such-command-agenthub\"}, \"ok\": {\"command\": \"sh\", \"restart_on_faliure\": false}}}";
    dir.write("mcp-servers.json", servers);
    let (code, out, err) = check_config(&dir, &["--config-dir", dir.path().to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{out}{err}");
    for needle in [
        pkg.join("cli.js").to_str().unwrap(),
        "error: command \"no-such-command-agenthub\" not found on PATH",
        "servers.ok.restart_on_faliure: unknown field (did you mean \"restart_on_failure\"?)",
    ] {
        assert!(out.contains(needle), "check-config lacks {needle:?}:\n{out}");
    }
    assert!(!out.contains("npx -y fake-mcp-server"), "{out}");
    let ok_lines: Vec<&str> =
        out.lines().filter(|l| l.contains(" ok ") || l.trim_start().starts_with("ok ")).collect();
    assert_eq!(ok_lines.len(), 1, "{out}");
}

#[test]
fn check_config_never_prints_a_secret() {
    let dir = TempDir::new("check-secrets");
    let token = "tok-4f1b9a7e-secret";
    let servers = json!({"servers": {
        "local": {
            "command": "node",
            "args": ["x.js", "--token", "${MY_TOKEN}", "--api-key=${MY_TOKEN}", "plain-${MY_TOKEN}"],
            "env": {"T": "${MY_TOKEN}", "LITERAL": "literal-secret-xyz"}
        },
        "remote": {
            "transport": "http",
            "url": "https://u:${MY_TOKEN}@example.com/mcp?key=${MY_TOKEN}",
            "headers": {"Authorization": "Bearer ${MY_TOKEN}"}
        },
        "from-var": {"command": "${MY_TOKEN}", "env": {"K": "v-${MY_TOKEN}"}}
    }});
    dir.write("mcp-servers.json", &servers.to_string());
    let (code, out, err) =
        check_config(&dir, &["--config-dir", dir.path().to_str().unwrap()], &[("MY_TOKEN", token)]);
    assert_eq!(code, 1, "the command from $MY_TOKEN is not on PATH:\n{out}{err}");
    assert!(out.contains("error: command \"***\" not found on PATH"), "{out}");
    for secret in [token, "literal-secret-xyz"] {
        assert!(!out.contains(secret) && !err.contains(secret), "{secret} shown:\n{out}{err}");
    }
}
