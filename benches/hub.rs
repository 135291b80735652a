//! `make bench`: measures the hub against its targets and against the same work done without it,
//! side by side in one run, and prints a table. It starts the release binary on port 0 with a
//! temporary config dir, talks raw HTTP/1.1 over keep-alive loopback connections (TCP_NODELAY
//! set), and drives MCP servers directly over pipes for the baselines. Targets are reported, not
//! asserted: a missed target shows in the table. Starting the hub, HTTP, MCP sessions and the
//! fake Ollama come from the integration tests' harness.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

// Shared with the integration tests: not every helper is used here.
#[allow(dead_code)]
#[path = "../tests/it/fake_ollama.rs"]
mod fake_ollama;
#[allow(dead_code)]
#[path = "../tests/it/harness.rs"]
mod harness;

// The first minute and the long day (`AGENTHUB_BENCH_ONLY=first`).
mod first_minute;

use fake_ollama::FakeOllama;
use harness::{
    Conn, FIXTURE, Hub, HubBuilder, MCP_VERSION, McpSession, NO_SERVERS, SEC, ServerProcess, deps,
    fixture_servers, free_port, initialize_body, initialized_note,
};

struct Row {
    metric: String,
    measured: String,
    target: String,
    /// None: informational, no target.
    pass: Option<bool>,
}

fn main() {
    let mut rows = Vec::new();

    // AGENTHUB_BENCH_ONLY=name,name runs a subset (while working on one number).
    let only = std::env::var("AGENTHUB_BENCH_ONLY").ok();
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o.split(',').any(|n| n == name));
    if wanted("startup") {
        startup(&mut rows);
    }
    if wanted("health") {
        health_latency_and_rss(&mut rows);
    }
    if wanted("large") {
        large_reply(&mut rows);
    }
    if wanted("size") {
        binary_size(&mut rows);
    }
    if wanted("echo") {
        echo_latency(&mut rows);
    }
    if wanted("catalog") {
        catalog_call(&mut rows);
    }
    if wanted("search") {
        tool_search(&mut rows);
    }
    if wanted("rps") {
        let everything = deps().join("npm/node_modules/.bin/mcp-server-everything");
        if everything.exists() {
            throughput(&everything, &mut rows);
        } else {
            rows.push(Row {
                metric: "RPS, 16 callers, server-everything".into(),
                measured: "not measured: run make test-deps".into(),
                target: "≥ 0.8× direct".into(),
                pass: Some(false),
            });
        }
    }
    if wanted("cpu") {
        let everything = deps().join("npm/node_modules/.bin/mcp-server-everything");
        cpu_per_call(everything.exists().then_some(everything.as_path()), &mut rows);
    }
    if wanted("children") {
        // Also the p50 of /dashboard/state with these ten servers.
        rss_with_children(&mut rows);
    }
    if wanted("enhance") {
        enhance_cached(&mut rows);
    }
    if wanted("peers") {
        peers(&mut rows);
    }
    if wanted("idle") {
        idle_cpu(&mut rows);
    }
    if wanted("first") {
        first_minute::first_minute(&mut rows);
    }

    println!("\n{:<58} {:>26} {:>22}", "metric", "measured", "target");
    println!("{}", "-".repeat(116));
    for r in &rows {
        let mark = match r.pass {
            Some(true) => "ok",
            Some(false) => "MISSED",
            None => "",
        };
        println!("{:<58} {:>26} {:>22}  {mark}", r.metric, r.measured, r.target);
    }
    let with_target: Vec<&Row> = rows.iter().filter(|r| r.pass.is_some()).collect();
    let met = with_target.iter().filter(|r| r.pass == Some(true)).count();
    println!("\nbench: {met} of {} targets met", with_target.len());
}

// ---------------------------------------------------------------------------------------------
// Measurements

/// A hub as the bench runs it: info logging (no line per request), stopped with SIGTERM.
fn bench_hub(servers: &str) -> HubBuilder {
    Hub::builder().servers(servers).env("AGENTHUB_LOG_LEVEL", "info").graceful()
}

/// A hub running server-everything (`bin`), with workers for 16 concurrent callers and more.
fn everything_hub(bin: &str) -> Hub {
    let servers = json!({"servers": {"everything": {"command": bin, "auto_start": true}}});
    let hub = bench_hub(&servers.to_string()).env("AGENTHUB_WORKERS", "32").start();
    hub.wait_status("everything", "RUNNING", 30 * SEC);
    hub
}

fn startup(rows: &mut Vec<Row>) {
    let mut times = Vec::new();
    for _ in 0..20 {
        let hub = bench_hub(NO_SERVERS);
        let t = Instant::now();
        let hub = hub.start();
        let mut c = Conn::new(&hub.addr);
        assert_eq!(c.get("/health").status, 200);
        times.push(t.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    rows.push(Row {
        metric: "start to first /health answer (median of 20)".into(),
        measured: format!(
            "{:.1} ms (min {:.1}, max {:.1})",
            ms(median),
            ms(times[0]),
            ms(times[times.len() - 1])
        ),
        target: "≤ 20 ms".into(),
        pass: Some(median <= Duration::from_millis(20)),
    });
}

fn health_latency_and_rss(rows: &mut Vec<Row>) {
    let hub = bench_hub(NO_SERVERS).start();
    let mut c = Conn::new(&hub.addr);
    for _ in 0..200 {
        c.get("/health");
    }
    let lat = sample(5000, || {
        c.get("/health");
    });
    rows.push(Row {
        metric: "/health over keep-alive loopback, p50 (p99)".into(),
        measured: format!("{:.0} µs ({:.0} µs)", us(pct(&lat, 50)), us(pct(&lat, 99))),
        target: "≤ 200 µs".into(),
        pass: Some(pct(&lat, 50) <= Duration::from_micros(200)),
    });
    std::thread::sleep(Duration::from_millis(500));
    let (rss, hwm) = rss_kib(hub.pid());
    rows.push(Row {
        metric: "idle RSS (peak)".into(),
        measured: format!("{:.1} MiB ({:.1} MiB)", rss as f64 / 1024.0, hwm as f64 / 1024.0),
        target: "≤ 8 MiB".into(),
        pass: Some(rss <= 8 * 1024),
    });
}

/// A ~60 KB JSON reply (the server list) at one keep-alive client: with Nagle and delayed ACKs
/// this would cost ~40 ms a request; TCP_NODELAY on the listener keeps it at wire speed.
fn large_reply(rows: &mut Vec<Row>) {
    let mut servers = serde_json::Map::new();
    for i in 0..160 {
        servers.insert(
            format!("server-{i:03}"),
            json!({"command": "/usr/bin/true", "args": ["--flag", "value"], "description": "x".repeat(200)}),
        );
    }
    let hub = bench_hub(&json!({"servers": servers}).to_string()).start();
    let mut c = Conn::new(&hub.addr);
    let body = c.get("/servers").body;
    let lat = sample(300, || {
        c.get("/servers");
    });
    rows.push(Row {
        metric: format!("{} KB reply (GET /servers), keep-alive p50", body.len() / 1000),
        measured: format!("{:.0} µs", us(pct(&lat, 50))),
        target: "≪ 40 ms (no Nagle stall)".into(),
        pass: Some(pct(&lat, 50) < Duration::from_millis(5)),
    });
}

fn binary_size(rows: &mut Vec<Row>) {
    let path = std::env::var("AGENTHUB_STATIC_BIN").map(PathBuf::from).ok().filter(|p| p.exists());
    rows.push(match path {
        Some(p) => {
            let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            Row {
                metric: "stripped static binary".into(),
                measured: format!("{:.2} MB", size as f64 / 1e6),
                target: "≤ 5 MB".into(),
                pass: Some(size <= 5_000_000),
            }
        }
        None => Row {
            metric: "stripped static binary".into(),
            measured: "not built (make release)".into(),
            target: "≤ 5 MB".into(),
            pass: Some(false),
        },
    });
}

/// `tools/call` echo through `POST /mcp/fx/tools/call` against the same calls straight over the
/// fixture's pipes.
fn echo_latency(rows: &mut Vec<Row>) {
    let mut direct = Pipe::spawn(FIXTURE, &[]);
    let call = |i: u64| json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hello"}}});
    for i in 0..200 {
        direct.send(&call(1000 + i));
        direct.recv();
    }
    let mut n = 0;
    let base = sample(3000, || {
        n += 1;
        direct.send(&call(n));
        direct.recv();
    });

    let hub = bench_hub(&fixture_servers(&[("fx", json!({"auto_start": true}))])).start();
    hub.wait_status("fx", "RUNNING", 30 * SEC);
    let mut c = Conn::new(&hub.addr);
    let body = json!({"name": "echo", "arguments": {"text": "hello"}}).to_string();
    for _ in 0..200 {
        c.post("/mcp/fx/tools/call", &body);
    }
    let via = sample(3000, || {
        assert_eq!(c.post("/mcp/fx/tools/call", &body).status, 200);
    });
    let added = pct(&via, 50).saturating_sub(pct(&base, 50));
    rows.push(Row {
        metric: "tools/call echo, direct pipes p50 / p99".into(),
        measured: format!("{:.0} / {:.0} µs", us(pct(&base, 50)), us(pct(&base, 99))),
        target: "baseline".into(),
        pass: None,
    });
    rows.push(Row {
        metric: "tools/call echo via POST /mcp/fx/tools/call p50 / p99".into(),
        measured: format!("{:.0} / {:.0} µs", us(pct(&via, 50)), us(pct(&via, 99))),
        target: "".into(),
        pass: None,
    });
    rows.push(Row {
        metric: "  added by the hub at p50".into(),
        measured: format!("{:.0} µs", us(added)),
        target: "≤ 50 µs".into(),
        pass: Some(added <= Duration::from_micros(50)),
    });
}

/// A `tools/call` on `/mcp` with one server of 10 tools and with one of 2,010: the call finds
/// its tool by hash in a shared index, so the size of the catalog should not show. Calls are
/// taken in turns on the two hubs, so whatever else the machine does slows both alike.
fn catalog_call(rows: &mut Vec<Row>) {
    let hubs: Vec<Hub> =
        [json!({"auto_start": true}), json!({"auto_start": true, "args": ["--many-tools", "2000"]})]
            .into_iter()
            .map(|cfg| {
                let hub = bench_hub(&fixture_servers(&[("fx", cfg)])).start();
                hub.wait_status("fx", "RUNNING", 30 * SEC);
                hub
            })
            .collect();
    let sessions: Vec<McpSession> = hubs.iter().map(|h| McpSession::keep_alive(&h.addr, "/mcp")).collect();
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}).to_string();
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "fx__echo", "arguments": {"text": "hello"}}}).to_string();
    for c in &sessions {
        assert_eq!(c.send_raw(list.as_bytes()).status, 200);
    }
    let mut took = [Vec::new(), Vec::new()];
    for i in 0..3200 {
        for (h, c) in sessions.iter().enumerate() {
            let t = Instant::now();
            let r = c.send_raw(call.as_bytes());
            assert!(r.status == 200 && String::from_utf8_lossy(&r.body).contains("hello"), "{}", r.status);
            if i >= 200 {
                took[h].push(t.elapsed());
            }
        }
    }
    for t in &mut took {
        t.sort();
    }
    let (small, big) = (pct(&took[0], 50), pct(&took[1], 50));
    for (label, t) in [("10 tools", &took[0]), ("2,010 tools", &took[1])] {
        rows.push(Row {
            metric: format!("tools/call on /mcp, one server of {label}, p50 / p99"),
            measured: format!("{:.0} / {:.0} µs", us(pct(t, 50)), us(pct(t, 99))),
            target: "".into(),
            pass: None,
        });
    }
    rows.push(Row {
        metric: "  p50 with 2,010 tools ÷ p50 with 10".into(),
        measured: format!("{:.2}×", big.as_secs_f64() / small.as_secs_f64()),
        target: "≤ 1.2×".into(),
        pass: Some(big.as_secs_f64() <= 1.2 * small.as_secs_f64()),
    });
}

/// Tool search over 2,010 tools: `agenthub__find_tools`' p50, lexical and reranked by the fake
/// Ollama's embeddings with every tool's vector cached (so one `/api/embed` of the query per
/// find), and the bytes of the `tools/list` a client takes with search on and off.
fn tool_search(rows: &mut Vec<Row>) {
    let servers = fixture_servers(&[("fx", json!({"auto_start": true, "args": ["--many-tools", "2000"]}))]);
    let ollama = FakeOllama::start(&["embed-bench"]);
    let mut bytes = Vec::new();
    let mut found = Vec::new();
    for search in ["off", "on", "reranked"] {
        let mut hub =
            bench_hub(&servers).env("AGENTHUB_TOOL_SEARCH", if search == "off" { "off" } else { "on" });
        if search == "reranked" {
            hub = hub.env("OLLAMA_URL", &ollama.url).env("AGENTHUB_EMBED_MODEL", "embed-bench");
        }
        let hub = hub.start();
        hub.wait_status("fx", "RUNNING", 30 * SEC);
        let c = McpSession::keep_alive(&hub.addr, "/mcp");
        let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}).to_string();
        let r = c.send_raw(list.as_bytes());
        assert_eq!(r.status, 200);
        bytes.push(r.body.len());
        if search != "off" {
            let find = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "agenthub__find_tools",
                "arguments": {"query": "tool number 1234 of the large catalog", "limit": 5}}}).to_string();
            for _ in 0..20 {
                c.send_raw(find.as_bytes());
            }
            found.push(sample(500, || {
                let r = c.send_raw(find.as_bytes());
                assert!(
                    r.status == 200 && String::from_utf8_lossy(&r.body).contains("fx__many_"),
                    "{}",
                    r.status
                );
            }));
        }
    }
    let embedded = ollama.embedded();
    assert!(
        embedded.len() > 500 && embedded[1..].iter().all(|i| i.len() == 1),
        "one query per find, tools cached"
    );
    for (found, how) in found.iter().zip(["", ", reranked"]) {
        rows.push(Row {
            metric: format!("agenthub__find_tools over 2,010 tools{how}, p50 / p99"),
            measured: format!("{:.0} / {:.0} µs", us(pct(found, 50)), us(pct(found, 99))),
            target: "".into(),
            pass: None,
        });
    }
    rows.push(Row {
        metric: "tools/list on /mcp with 2,010 tools: search off / on".into(),
        measured: format!("{} / {} bytes", bytes[0], bytes[1]),
        target: "".into(),
        pass: None,
    });
}

/// Requests per second at 16 concurrent callers on one server-everything child, through the
/// hub and over the child's pipes with 16 requests kept in flight.
fn throughput(everything: &Path, rows: &mut Vec<Row>) {
    const CALLERS: usize = 16;
    const RUN: Duration = Duration::from_secs(3);
    let bin = everything.display().to_string();
    let mut direct = Pipe::spawn(&bin, &[]);
    let call = |i: u64| json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hello"}}});
    // Pipelined: the writer keeps CALLERS requests outstanding, the reader counts answers.
    let stop = Arc::new(AtomicBool::new(false));
    let mut stdin = direct.stdin.take().expect("stdin");
    let inflight = Arc::new(AtomicU64::new(0));
    let (s, f) = (stop.clone(), inflight.clone());
    let writer = std::thread::spawn(move || {
        let mut i = 0;
        while !s.load(Ordering::SeqCst) {
            if f.load(Ordering::SeqCst) < CALLERS as u64 {
                i += 1;
                f.fetch_add(1, Ordering::SeqCst);
                let _ = writeln!(stdin, "{}", call(i));
                let _ = stdin.flush();
            } else {
                std::hint::spin_loop();
            }
        }
        stdin
    });
    let t = Instant::now();
    let mut answered = 0u64;
    while t.elapsed() < RUN {
        direct.recv();
        inflight.fetch_sub(1, Ordering::SeqCst);
        answered += 1;
    }
    stop.store(true, Ordering::SeqCst);
    let direct_rps = answered as f64 / t.elapsed().as_secs_f64();
    direct.stdin = Some(writer.join().expect("writer"));
    drop(direct);

    let hub = everything_hub(&bin);
    let body = json!({"name": "echo", "arguments": {"message": "hello"}}).to_string();
    let count = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..CALLERS {
            let (addr, body, count) = (hub.addr.clone(), body.clone(), count.clone());
            scope.spawn(move || {
                let mut c = Conn::new(&addr);
                while t.elapsed() < RUN {
                    assert_eq!(c.post("/mcp/everything/tools/call", &body).status, 200);
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let hub_rps = count.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();
    rows.push(Row {
        metric: "RPS, 16 callers, server-everything: direct pipelined".into(),
        measured: format!("{direct_rps:.0} req/s"),
        target: "baseline".into(),
        pass: None,
    });
    rows.push(Row {
        metric: "RPS, 16 callers, server-everything: through the hub".into(),
        measured: format!("{hub_rps:.0} req/s ({:.2}×)", hub_rps / direct_rps),
        target: "≥ 0.8× direct".into(),
        pass: Some(hub_rps >= 0.8 * direct_rps),
    });
}

/// CPU time the hub and the child spend per forwarded `tools/call` echo, over a fixed number of
/// calls (so the figure holds on a busy machine): REST and `/mcp/{server}`, 1 and 16 callers,
/// the Rust fixture child and server-everything, the hub on its default worker count.
fn cpu_per_call(everything: Option<&Path>, rows: &mut Vec<Row>) {
    const CALLS: usize = 8000;
    let mut children = vec![(
        "fixture",
        fixture_servers(&[("fx", json!({"auto_start": true}))]),
        json!({"name": "echo", "arguments": {"text": "hello"}}),
    )];
    if let Some(bin) = everything {
        let servers = json!({"servers": {"fx": {"command": bin, "auto_start": true}}});
        children.push((
            "server-everything",
            servers.to_string(),
            json!({"name": "echo", "arguments": {"message": "hello"}}),
        ));
    }
    // What one hand-off between two threads costs here (a wake on each side): the unit the
    // hub's per-call figures are made of, measured in the same run.
    let handoff = handoff_cpu_us();
    rows.push(Row {
        metric: "reference: one thread hand-off and back (condvar), CPU".into(),
        measured: format!("{handoff:.1} µs"),
        target: "".into(),
        pass: None,
    });
    // AGENTHUB_BENCH_WORKERS=N measures another worker count (the default otherwise).
    let workers = std::env::var("AGENTHUB_BENCH_WORKERS").ok();
    for (label, servers, args) in children {
        let mut hub = bench_hub(&servers);
        if let Some(w) = &workers {
            hub = hub.env("AGENTHUB_WORKERS", w);
        }
        let hub = hub.start();
        hub.wait_status("fx", "RUNNING", 30 * SEC);
        let child = hub.server("fx")["pid"].as_i64().expect("a pid") as i32;
        let rest = args.to_string();
        let mcp = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": args}).to_string();
        for (route, callers) in [("REST", 1), ("REST", 16), ("/mcp/fx", 1), ("/mcp/fx", 16)] {
            // Each caller keeps its connection from the warm-up to the end, so every hub thread
            // that served the run is still there to be counted (`sleeps_of`).
            let (ready, done) = (Barrier::new(callers + 1), Barrier::new(callers + 1));
            let mut before = (0, 0, 0);
            let mut after = (0, 0, 0);
            let mut took = (Instant::now(), Instant::now());
            std::thread::scope(|scope| {
                for _ in 0..callers {
                    let (addr, rest, mcp, ready, done) = (&hub.addr, &rest, &mcp, &ready, &done);
                    scope.spawn(move || {
                        let mut call: Box<dyn FnMut()> = if route == "REST" {
                            let mut c = Conn::new(addr);
                            Box::new(move || assert_eq!(c.post("/mcp/fx/tools/call", rest).status, 200))
                        } else {
                            let c = McpSession::keep_alive(addr, "/mcp/fx");
                            Box::new(move || assert_eq!(c.send_raw(mcp.as_bytes()).status, 200))
                        };
                        for _ in 0..400 / callers {
                            call();
                        }
                        ready.wait();
                        ready.wait();
                        for _ in 0..CALLS / callers {
                            call();
                        }
                        done.wait();
                        done.wait();
                    });
                }
                ready.wait();
                before = (cpu_ns(hub.pid()), cpu_ns(child), sleeps_of(hub.pid()));
                took.0 = Instant::now();
                ready.wait();
                done.wait();
                took.1 = Instant::now();
                after = (cpu_ns(hub.pid()), cpu_ns(child), sleeps_of(hub.pid()));
                done.wait();
            });
            let per = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / 1e3 / CALLS as f64;
            let (hub_us, child_us) = (per(before.0, after.0), per(before.1, after.1));
            let sleeps = after.2.saturating_sub(before.2) as f64 / CALLS as f64;
            let rate = CALLS as f64 / took.1.duration_since(took.0).as_secs_f64();
            let target = if callers == 16 { "≤ 20 µs" } else { "" };
            rows.push(Row {
                metric: format!("hub CPU per call, {route}, {callers} caller(s), {label}"),
                measured: format!(
                    "{hub_us:.1} µs, {sleeps:.2} sleeps (child {child_us:.1}); {rate:.0} calls/s"
                ),
                target: target.into(),
                pass: (callers == 16).then_some(hub_us <= 20.0),
            });
        }
    }
}

/// How many times the threads of a process have gone to sleep (blocked waiting: a lock, a
/// condvar, a read), each a wake to come: the sum of their voluntary context switches.
fn sleeps_of(pid: i32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .filter_map(|status| {
            let line = status.lines().find(|l| l.starts_with("voluntary_ctxt_switches:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum()
}

/// CPU time of this process per round trip of a value between two threads over a mutex and a
/// condvar (each side sleeps until woken), over 20000 round trips.
fn handoff_cpu_us() -> f64 {
    use std::sync::{Condvar, Mutex};
    const TRIPS: u64 = 20_000;
    let shared = Arc::new((Mutex::new(0u64), Condvar::new()));
    let other = shared.clone();
    let echo = std::thread::spawn(move || {
        let (m, c) = &*other;
        for i in 0..TRIPS {
            let mut turn = m.lock().unwrap();
            while *turn != 2 * i + 1 {
                turn = c.wait(turn).unwrap();
            }
            *turn += 1;
            c.notify_one();
        }
    });
    let me = cpu_ns(std::process::id() as i32);
    let (m, c) = &*shared;
    for i in 0..TRIPS {
        let mut turn = m.lock().unwrap();
        *turn += 1;
        c.notify_one();
        while *turn != 2 * i + 2 {
            turn = c.wait(turn).unwrap();
        }
    }
    echo.join().expect("the echo thread");
    (cpu_ns(std::process::id() as i32) - me) as f64 / 1e3 / TRIPS as f64
}

/// CPU time a process has used, in nanoseconds: user + system from `/proc/PID/stat`, which counts
/// threads that have ended too (clock ticks of 10 ms: the runs are long enough for that).
fn cpu_ns(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which may hold spaces: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks * 10_000_000
}

fn rss_with_children(rows: &mut Vec<Row>) {
    let names: Vec<String> = (0..10).map(|i| format!("fx{i}")).collect();
    let servers: Vec<(&str, Value)> =
        names.iter().map(|n| (n.as_str(), json!({"auto_start": true}))).collect();
    let hub = bench_hub(&fixture_servers(&servers)).start();
    for name in &names {
        hub.wait_status(name, "RUNNING", 30 * SEC);
    }
    let mut c = Conn::new(&hub.addr);
    for _ in 0..100 {
        for i in 0..10 {
            c.post(&format!("/mcp/fx{i}/tools/call"), r#"{"name":"echo","arguments":{"text":"x"}}"#);
        }
    }
    // The dashboard's one poll, with the same ten servers.
    for _ in 0..200 {
        c.get("/dashboard/state");
    }
    let lat = sample(2000, || {
        c.get("/dashboard/state");
    });
    rows.push(Row {
        metric: "/dashboard/state with 10 servers, keep-alive p50 (p99)".into(),
        measured: format!("{:.0} µs ({:.0} µs)", us(pct(&lat, 50)), us(pct(&lat, 99))),
        target: "≤ 300 µs".into(),
        pass: Some(pct(&lat, 50) <= Duration::from_micros(300)),
    });
    // The Prometheus scrape, with the same ten servers and the traffic above recorded.
    for _ in 0..200 {
        c.get("/metrics");
    }
    let lat = sample(2000, || {
        c.get("/metrics");
    });
    rows.push(Row {
        metric: "/metrics with 10 servers, keep-alive p50 (p99)".into(),
        measured: format!("{:.0} µs ({:.0} µs)", us(pct(&lat, 50)), us(pct(&lat, 99))),
        target: "≤ 500 µs".into(),
        pass: Some(pct(&lat, 50) <= Duration::from_micros(500)),
    });
    std::thread::sleep(Duration::from_millis(500));
    let (rss, _) = rss_kib(hub.pid());
    rows.push(Row {
        metric: "hub RSS with 10 running children (children excluded)".into(),
        measured: format!("{:.1} MiB", rss as f64 / 1024.0),
        target: "≤ 15 MiB".into(),
        pass: Some(rss <= 15 * 1024),
    });
}

/// A cached `/ollama/enhance` over keep-alive loopback (the tests' fake Ollama answers the
/// first, uncached call).
fn enhance_cached(rows: &mut Vec<Row>) {
    let ollama = FakeOllama::start(&["llama3.2:3b"]);
    let hub = bench_hub(NO_SERVERS).env("OLLAMA_URL", &ollama.url).start();
    let mut c = Conn::new(&hub.addr);
    let body = r#"{"prompt": "explain docker"}"#;
    let first = c.post("/ollama/enhance", body);
    assert!(
        first.status == 200 && String::from_utf8_lossy(&first.body).contains("\"enhanced\":true"),
        "{}",
        first.status
    );
    for _ in 0..200 {
        c.post("/ollama/enhance", body);
    }
    let lat = sample(5000, || {
        let r = c.post("/ollama/enhance", body);
        debug_assert!(String::from_utf8_lossy(&r.body).contains("\"cached\":true"));
    });
    rows.push(Row {
        metric: "cached /ollama/enhance, keep-alive p50 (p99)".into(),
        measured: format!("{:.0} µs ({:.0} µs)", us(pct(&lat, 50)), us(pct(&lat, 99))),
        target: "≤ 150 µs".into(),
        pass: Some(pct(&lat, 50) <= Duration::from_micros(150)),
    });
}

/// `tools/call` echo on server-everything through `/mcp/everything`, beside supergateway
/// (`--stateful`, Streamable HTTP) and the PyPI `mcp-proxy` in front of the same server, at 1 and
/// 16 concurrent clients (each its own MCP session on its own keep-alive connection).
fn peers(rows: &mut Vec<Row>) {
    let everything = deps().join("npm/node_modules/.bin/mcp-server-everything");
    let supergateway = deps().join("bench/npm/node_modules/.bin/supergateway");
    let mcp_proxy = deps().join("bench/venv/bin/mcp-proxy");
    if !(everything.exists() && supergateway.exists() && mcp_proxy.exists()) {
        rows.push(Row {
            metric: "MCP endpoint vs supergateway and mcp-proxy".into(),
            measured: "not measured: run make bench-deps".into(),
            target: "≥ 2× RPS at 16, lower p50 at 1".into(),
            pass: Some(false),
        });
        return;
    }
    let ev = everything.display().to_string();
    let mut results: Vec<(&str, [(f64, Duration); 2])> = Vec::new();
    {
        let hub = everything_hub(&ev);
        results.push(("agenthub /mcp/everything", load_mcp(&hub.addr, "/mcp/everything")));
    }
    {
        let port = free_port();
        let _sg = ServerProcess::start(
            Command::new(&supergateway).args([
                "--stdio",
                &ev,
                "--outputTransport",
                "streamableHttp",
                "--stateful",
                "--port",
                &port.to_string(),
            ]),
            port,
            30 * SEC,
        );
        results.push(("supergateway --stateful", load_mcp(&format!("127.0.0.1:{port}"), "/mcp")));
    }
    {
        let port = free_port();
        let _mp = ServerProcess::start(
            Command::new(&mcp_proxy).args(["--host", "127.0.0.1", "--port", &port.to_string(), &ev]),
            port,
            30 * SEC,
        );
        results.push(("mcp-proxy (PyPI)", load_mcp(&format!("127.0.0.1:{port}"), "/mcp")));
    }
    for (name, r) in &results {
        rows.push(Row {
            metric: format!("MCP tools/call echo: {name}"),
            measured: format!("1: {:.0} µs p50; 16: {:.0} req/s", us(r[0].1), r[1].0),
            target: "".into(),
            pass: None,
        });
    }
    let best_peer_rps = results[1..].iter().map(|(_, r)| r[1].0).fold(0.0, f64::max);
    let best_peer_p50 = results[1..].iter().map(|(_, r)| r[0].1).min().unwrap_or(Duration::ZERO);
    let hub = results[0].1;
    rows.push(Row {
        metric: "  hub RPS at 16 clients vs the better peer".into(),
        measured: format!("{:.2}×", hub[1].0 / best_peer_rps),
        target: "≥ 2×".into(),
        pass: Some(hub[1].0 >= 2.0 * best_peer_rps),
    });
    rows.push(Row {
        metric: "  hub p50 at 1 client vs the better peer".into(),
        measured: format!("{:.0} vs {:.0} µs", us(hub[0].1), us(best_peer_p50)),
        target: "lower than both".into(),
        pass: Some(hub[0].1 < best_peer_p50),
    });
}

/// (requests/s, p50) at 1 and at 16 clients, 3 s each.
fn load_mcp(addr: &str, path: &str) -> [(f64, Duration); 2] {
    let mut out = [(0.0, Duration::ZERO); 2];
    for (slot, clients) in [(0, 1usize), (1, 16)] {
        let run = Duration::from_secs(3);
        let lat = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let t = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..clients {
                let lat = lat.clone();
                scope.spawn(move || {
                    let c = McpSession::keep_alive(addr, path);
                    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hello"}}}).to_string();
                    let mut mine = Vec::new();
                    while t.elapsed() < run {
                        let s = Instant::now();
                        let r = c.send_raw(body.as_bytes());
                        assert!(r.status == 200 && String::from_utf8_lossy(&r.body).contains("hello"), "{}", r.status);
                        mine.push(s.elapsed());
                    }
                    lat.lock().extend(mine);
                });
            }
        });
        let mut all = std::mem::take(&mut *lat.lock());
        all.sort();
        out[slot] = (all.len() as f64 / t.elapsed().as_secs_f64(), pct(&all, 50));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn sample(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    let mut v: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    v.sort();
    v
}

fn pct(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// VmRSS and VmHWM in KiB.
/// CPU time (user + system, in clock ticks) of a process's threads, by thread name.
fn cpu_ticks_by_thread(pid: i32) -> Vec<(String, u64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        .filter_map(|stat| {
            let name = stat[stat.find('(')? + 1..stat.rfind(')')?].to_string();
            let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
            // utime and stime: fields 14 and 15 of stat, 12 and 13 after the name and state.
            let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            Some((name, ticks))
        })
        .collect()
}

/// An idle hub over a fixed window: its whole CPU time, and that of the `config-watch` thread
/// polling the configuration files each second.
fn idle_cpu(rows: &mut Vec<Row>) {
    const WINDOW: Duration = Duration::from_secs(20);
    let hub = bench_hub(NO_SERVERS).file("enhancement-rules.json", agenthub_rules()).start();
    std::thread::sleep(Duration::from_secs(2));
    let sum = |pid: i32, only: Option<&str>| -> u64 {
        cpu_ticks_by_thread(pid).iter().filter(|(n, _)| only.is_none_or(|o| n == o)).map(|(_, t)| t).sum()
    };
    assert!(
        cpu_ticks_by_thread(hub.pid()).iter().any(|(n, _)| n == "config-watch"),
        "no config-watch thread"
    );
    let (all0, watch0) = (sum(hub.pid(), None), sum(hub.pid(), Some("config-watch")));
    std::thread::sleep(WINDOW);
    let (all1, watch1) = (sum(hub.pid(), None), sum(hub.pid(), Some("config-watch")));
    // Clock ticks are 10 ms (USER_HZ 100).
    let ms = |ticks: u64| ticks * 10;
    rows.push(Row {
        metric: format!("idle hub CPU over {} s, no servers", WINDOW.as_secs()),
        measured: format!("{} ms", ms(all1 - all0)),
        target: String::new(),
        pass: None,
    });
    rows.push(Row {
        metric: format!("config file polling (config-watch) CPU over {} s idle", WINDOW.as_secs()),
        measured: format!("{} ms", ms(watch1 - watch0)),
        target: "≤ 10 ms (one tick)".into(),
        pass: Some(watch1 - watch0 <= 1),
    });
}

/// A rules file for the idle hub to watch (the shipped example).
fn agenthub_rules() -> &'static str {
    include_str!("../configs/enhancement-rules.json")
}

fn rss_kib(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// An MCP server driven straight over its pipes, initialized.
struct Pipe {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Pipe {
    fn spawn(program: &str, args: &[&str]) -> Pipe {
        let mut cmd = Command::new(program);
        cmd.args(args);
        Pipe::from_command(cmd)
    }

    /// `cmd` started with its pipes and initialized.
    fn from_command(mut cmd: Command) -> Pipe {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn an MCP server");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut p = Pipe { child, stdin, stdout };
        p.send(&initialize_body(MCP_VERSION));
        p.recv();
        p.send(&initialized_note());
        p
    }

    fn send(&mut self, v: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{v}").expect("write to the server");
        stdin.flush().expect("flush");
    }

    /// The next response line (notifications are skipped).
    fn recv(&mut self) -> Value {
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line).unwrap_or(0) == 0 {
                panic!("the server closed its stdout");
            }
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if v.get("id").is_some() {
                    return v;
                }
            }
        }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
