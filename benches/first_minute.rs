//! The first minute and the long day: how long from the hub's start until a client's first
//! `tools/list` on `/mcp` holds every embedded server's tools — the first run ever (npm installs
//! included) and warm (installed, the catalog on disk) — beside `npx -y` launching the same
//! servers directly; a warm restart of one npm server; and the memory of the hub and its
//! children with the five servers configured, idle (on demand) and all running.
//!
//! The servers are the embedded defaults (`configs/mcp-servers.json`) with their packages pinned
//! to the versions the tests' npm cache holds (`make bench-deps` warms it), and npm offline:
//! nothing is downloaded.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Conn, Hub, McpSession, SEC, TempDir, deps};
use crate::{Pipe, Row, bench_hub, ms};

/// The versions of the embedded defaults' packages in the tests' npm cache.
const PINS: [(&str, &str); 5] = [
    ("@modelcontextprotocol/server-everything", "2026.8.31"),
    ("@modelcontextprotocol/server-memory", "2026.8.31"),
    ("@modelcontextprotocol/server-filesystem", "2026.8.31"),
    ("@modelcontextprotocol/server-sequential-thinking", "2026.8.31"),
    ("@wonderwhy-er/desktop-commander", "0.2.52"),
];

/// Longest the bench waits for a complete list (a first run installs five packages).
const COMPLETE_WITHIN: Duration = Duration::from_secs(300);

/// `name@version` of a package spec, by `PINS`.
fn pinned(spec: &str) -> String {
    let body = usize::from(spec.starts_with('@'));
    let name = match spec[body..].find('@') {
        Some(i) => &spec[..body + i],
        None => spec,
    };
    match PINS.iter().find(|(n, _)| *n == name) {
        Some((n, v)) => format!("{n}@{v}"),
        None => spec.to_string(),
    }
}

/// The embedded defaults, each package pinned (in `package` or in `npx -y <pkg>`).
fn defaults() -> Value {
    let mut cfg: Value =
        serde_json::from_str(include_str!("../configs/mcp-servers.json")).expect("the embedded defaults");
    for (_, server) in cfg["servers"].as_object_mut().expect("servers").iter_mut() {
        if let Some(p) = server.get("package").and_then(Value::as_str) {
            server["package"] = json!(pinned(p));
        }
        if let Some(args) = server.get_mut("args").and_then(Value::as_array_mut) {
            for a in args.iter_mut() {
                if let Some(s) = a.as_str().filter(|s| s.starts_with('@')) {
                    *a = json!(pinned(s));
                }
            }
        }
    }
    cfg
}

fn names(cfg: &Value) -> Vec<String> {
    cfg["servers"].as_object().expect("servers").keys().cloned().collect()
}

/// npm as the bench runs it: the tests' cache, offline, no scripts, no Chrome download.
fn npm_env(cmd: &mut Command) {
    cmd.env("npm_config_cache", deps().join("npm-cache"))
        .env("npm_config_offline", "true")
        .env("npm_config_ignore_scripts", "true")
        .env("npm_config_update_notifier", "false")
        .env("PUPPETEER_SKIP_DOWNLOAD", "1");
}

/// A hub on the embedded defaults with `data` as its data dir.
fn start_hub(cfg: &Value, data: &Path) -> Hub {
    let cache = deps().join("npm-cache");
    bench_hub(&cfg.to_string())
        .env("AGENTHUB_DATA_DIR", &data.display().to_string())
        .env("npm_config_cache", &cache.display().to_string())
        .env("npm_config_offline", "true")
        .env("npm_config_update_notifier", "false")
        .env("PUPPETEER_SKIP_DOWNLOAD", "1")
        .start()
}

/// The servers whose tools a `tools/list` answer holds.
fn servers_listed(answer: &Value) -> HashSet<String> {
    answer["result"]["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t["name"].as_str()?.split_once("__").map(|(s, _)| s.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// From `t0` until a client's `tools/list` on `/mcp` holds every one of `want`: the first list
/// of a new session, then again each 100 ms on that session until complete. None: not within
/// `COMPLETE_WITHIN` (the servers still missing are printed).
fn until_complete(hub: &Hub, want: &[String], t0: Instant) -> Option<Duration> {
    let session = McpSession::keep_alive(&hub.addr, "/mcp");
    let mut missing: Vec<&String> = Vec::new();
    let mut id = 1;
    while t0.elapsed() < COMPLETE_WITHIN {
        let listed = servers_listed(&session.call(json!(id), "tools/list", json!({})));
        missing = want.iter().filter(|w| !listed.contains(*w)).collect();
        if missing.is_empty() {
            return Some(t0.elapsed());
        }
        id += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("first minute: still missing after {COMPLETE_WITHIN:?}: {missing:?}\n{}", hub.log());
    None
}

/// `npx -y <pkg>` for each server the way its entry says, all at once, each initialized and
/// listed over its pipes: the time until the last one's list.
fn npx_directly(cfg: &Value, home: &Path) -> Duration {
    let t0 = Instant::now();
    let threads: Vec<_> = cfg["servers"]
        .as_object()
        .expect("servers")
        .values()
        .map(|server| {
            let (program, args) = match server.get("package").and_then(Value::as_str) {
                Some(p) => ("npx".to_string(), vec!["-y".to_string(), p.to_string()]),
                None => (
                    server["command"].as_str().unwrap_or("npx").to_string(),
                    server["args"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|v| v.as_str()).map(str::to_string).collect())
                        .unwrap_or_default(),
                ),
            };
            let home = home.to_path_buf();
            let env: Vec<(String, String)> = server
                .get("env")
                .and_then(Value::as_object)
                .map(|e| e.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
                .unwrap_or_default();
            std::thread::spawn(move || {
                let args: Vec<String> =
                    args.iter().map(|a| a.replace("${HOME}", &home.display().to_string())).collect();
                let mut cmd = Command::new(&program);
                cmd.args(&args).env("HOME", &home).envs(env);
                npm_env(&mut cmd);
                let mut pipe = Pipe::from_command(cmd);
                pipe.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
                pipe.recv();
            })
        })
        .collect();
    for t in threads {
        t.join().expect("an npx server answered its list");
    }
    t0.elapsed()
}

/// Resident memory of `pid` and every process below it, in KiB.
fn tree_rss_kib(pid: i32) -> u64 {
    let mut parents: Vec<(i32, i32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        // The parent is the second field after the command's closing parenthesis.
        if let Some(ppid) = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)) {
            parents.push((p, ppid.parse().unwrap_or(0)));
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    tree.iter().map(|p| crate::rss_kib(*p).0).sum()
}

pub fn first_minute(rows: &mut Vec<Row>) {
    if !deps().join("npm-cache").exists() {
        rows.push(Row {
            metric: "first complete /mcp tools/list, five embedded servers".into(),
            measured: "not measured: run make bench-deps".into(),
            target: "warm ≤ 1 s".into(),
            pass: Some(false),
        });
        return;
    }
    let cfg = defaults();
    let want = names(&cfg);
    let data = TempDir::new("first-minute");

    // The first run ever: nothing installed, no catalog.
    let t0 = Instant::now();
    let hub = start_hub(&cfg, data.path());
    let first = until_complete(&hub, &want, t0);
    drop(hub);
    // Warm: the same data dir.
    let t0 = Instant::now();
    let hub = start_hub(&cfg, data.path());
    let warm = until_complete(&hub, &want, t0);
    let show = |d: Option<Duration>| {
        d.map_or_else(|| "incomplete".to_string(), |d| format!("{:.2} s", d.as_secs_f64()))
    };
    rows.push(Row {
        metric: "first complete /mcp tools/list, 5 servers: first run ever".into(),
        measured: show(first),
        target: "".into(),
        pass: None,
    });
    rows.push(Row {
        metric: "first complete /mcp tools/list, 5 servers: warm".into(),
        measured: show(warm),
        target: "≤ 1 s".into(),
        pass: Some(warm.is_some_and(|d| d <= SEC)),
    });

    // Memory: on demand nothing runs; then every server started.
    std::thread::sleep(Duration::from_millis(500));
    let idle = tree_rss_kib(hub.pid());
    let mut c = Conn::new(&hub.addr);
    for name in &want {
        let r = c.post(&format!("/servers/{name}/start"), "");
        if r.status != 200 {
            eprintln!("first minute: start {name}: {} {}", r.status, r.text());
        }
    }
    std::thread::sleep(Duration::from_millis(1500));
    let running = tree_rss_kib(hub.pid());
    rows.push(Row {
        metric: "RSS, hub + children, 5 servers: on demand (idle) / all running".into(),
        measured: format!("{:.0} / {:.0} MiB", idle as f64 / 1024.0, running as f64 / 1024.0),
        target: "".into(),
        pass: None,
    });

    // A warm restart of one npm server (installed: `node <bin>`).
    let restart = (0..3)
        .map(|_| {
            let t = Instant::now();
            let r = c.post("/servers/memory/restart", "");
            (r.status == 200).then(|| t.elapsed())
        })
        .collect::<Option<Vec<_>>>()
        .and_then(|mut v| {
            v.sort();
            v.get(1).copied()
        });
    rows.push(Row {
        metric: "warm restart of one npm server (memory), median of 3".into(),
        measured: restart.map_or_else(|| "failed".to_string(), |d| format!("{:.0} ms", ms(d))),
        target: "≤ 500 ms".into(),
        pass: Some(restart.is_some_and(|d| d <= Duration::from_millis(500))),
    });
    drop(hub);

    // The same five through `npx -y`, directly, twice (the second with npx's own cache warm).
    let home = TempDir::new("npx-home");
    let npx_first = npx_directly(&cfg, home.path());
    let npx_again = npx_directly(&cfg, home.path());
    rows.push(Row {
        metric: "the same 5 servers by npx -y directly, all listed: first / again".into(),
        measured: format!("{:.2} s / {:.2} s", npx_first.as_secs_f64(), npx_again.as_secs_f64()),
        target: "".into(),
        pass: None,
    });
}
