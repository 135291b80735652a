//! Real MCP servers from npm (installed by `make test-deps` into .deps/npm, pinned by
//! tests/npm/package-lock.json) run under the hub, and the npm installer, offline from the
//! npm cache that the same step fills.

use serde_json::{Value, json};

use crate::harness::*;

/// npm and npx reading only the cache `make test-deps` filled: no download at test time.
fn offline(b: HubBuilder) -> HubBuilder {
    dep("npm/node_modules/.installed");
    b.env("npm_config_cache", dep("npm-cache").to_str().unwrap())
        .env("npm_config_offline", "true")
        .env("npm_config_update_notifier", "false")
}

fn tool_names(hub: &Hub, server: &str) -> Vec<String> {
    let r = hub.call(server, "tools/list", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn reference_servers_start_answer_restart_and_stop() {
    let data = TempDir::new("npm-data");
    let servers = json!({"servers": {
        "everything": {"command": npm_bin("mcp-server-everything")},
        "memory": {"command": npm_bin("mcp-server-memory"), "env": {"MEMORY_FILE_PATH": data.path().join("memory.jsonl").to_str().unwrap()}},
        "thinking": {"command": npm_bin("mcp-server-sequential-thinking")},
        "files": {"command": npm_bin("mcp-server-filesystem"), "args": [data.path().to_str().unwrap()]},
    }});
    let hub = Hub::builder().servers(&servers.to_string()).start();
    for name in ["everything", "memory", "thinking", "files"] {
        let r = hub.post(&format!("/servers/{name}/start"));
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert_eq!(r.json()["status"], "RUNNING");
    }

    assert!(tool_names(&hub, "everything").contains(&"echo".to_string()));
    let r = hub.tool("everything", "echo", json!({"message": "hello hub"}));
    assert!(tool_text(&r).contains("hello hub"), "{}", r.text());

    let r = hub.tool("memory", "create_entities", json!({"entities": [{"name": "AgentHub", "entityType": "project", "observations": ["written in Rust"]}]}));
    assert_eq!(r.status, 200, "{}", r.text());
    let graph = tool_text(&hub.tool("memory", "read_graph", json!({})));
    assert!(graph.contains("written in Rust"), "{graph}");

    assert!(tool_names(&hub, "thinking").contains(&"sequentialthinking".to_string()));
    let r = hub.tool(
        "thinking",
        "sequentialthinking",
        json!({"thought": "first", "thoughtNumber": 1, "totalThoughts": 2, "nextThoughtNeeded": true}),
    );
    assert!(tool_text(&r).contains("thoughtNumber"), "{}", r.text());

    let file = data.path().join("note.txt");
    let r =
        hub.tool("files", "write_file", json!({"path": file.to_str().unwrap(), "content": "from the hub"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "from the hub");
    let outside = hub.tool("files", "read_text_file", json!({"path": "/etc/hostname"}));
    assert!(outside.status != 200 || outside.json()["isError"] == true, "{}", outside.text());

    let pid = hub.server("memory")["pid"].as_i64().unwrap();
    let r = hub.post("/servers/memory/restart");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!alive(pid));
    let graph = tool_text(&hub.tool("memory", "read_graph", json!({})));
    assert!(graph.contains("written in Rust"), "memory kept its file across the restart: {graph}");

    for name in ["everything", "memory", "thinking", "files"] {
        let pid = hub.server(name)["pid"].as_i64().unwrap();
        assert_eq!(hub.post(&format!("/servers/{name}/stop")).json()["status"], "STOPPED");
        assert!(!alive(pid), "{name} survived its stop");
    }
}

#[test]
fn npx_servers_leave_nothing_behind_on_hub_sigterm() {
    // `-p` (a package and a bin named apart): left to npx, which has grandchildren.
    let servers = json!({"servers": {
        "mem": {"command": "npx", "args": ["-y", "-p", "@modelcontextprotocol/server-memory@2026.8.31", "mcp-server-memory"], "auto_start": true, "handshake_timeout": 60},
    }});
    let dir = TempDir::new("npx-home");
    let mut hub = offline(Hub::builder().servers(&servers.to_string()))
        .env("MEMORY_FILE_PATH", dir.path().join("m.jsonl").to_str().unwrap())
        .start();
    let s = hub.wait_status("mem", "RUNNING", 90 * SEC);
    let pgid = s["pid"].as_i64().unwrap();
    let group = || -> Vec<i64> { processes_in_group(pgid) };
    assert!(group().len() >= 2, "npx should have a node grandchild: {:?}", group());
    assert!(tool_names(&hub, "mem").contains(&"read_graph".to_string()));
    hub.signal(libc::SIGTERM);
    assert!(hub.wait_exit(15 * SEC).success(), "{}", hub.log());
    assert!(group().is_empty(), "left behind: {:?}", group());
}

#[test]
fn install_from_npm_then_start_and_call() {
    let hub = offline(Hub::builder().servers(NO_SERVERS)).start();
    let r = hub.post_json(
        "/servers/install",
        &json!({"package": "@modelcontextprotocol/server-memory@2026.8.31", "ignore_scripts": true,
                "env": {"MEMORY_FILE_PATH": hub.dir.path().join("mem.jsonl").to_str().unwrap()}}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let s = r.json();
    assert_eq!(s["name"], "server-memory");
    assert_eq!(s["config"]["package"], "@modelcontextprotocol/server-memory@2026.8.31");
    assert_eq!(s["config"]["env"]["MEMORY_FILE_PATH"], "***");
    let installed_bin = s["installed"]["bin"].as_str().unwrap();
    assert!(
        installed_bin.starts_with(hub.dir.path().join("xdg-data/agenthub/npm").to_str().unwrap()),
        "{installed_bin}"
    );
    // Saved in the hub's own file.
    let saved = hub.saved();
    assert_eq!(saved["servers"]["server-memory"]["package"], "@modelcontextprotocol/server-memory@2026.8.31");

    let r = hub.post("/servers/server-memory/start");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(tool_names(&hub, "server-memory").contains(&"create_entities".to_string()));
    // It runs the installed bin, not npx.
    let pid = r.json()["pid"].as_i64().unwrap();
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(!cmdline.contains("npx"), "{cmdline}");

    let msg = hub
        .post_json("/servers/install", &json!({"package": "@modelcontextprotocol/server-memory@2026.8.31"}))
        .expect_error(409, "conflict");
    assert!(msg.contains("server-memory"), "{msg}");
}

#[test]
fn a_package_the_registry_does_not_have_is_404() {
    // A registry on loopback that has nothing, answering as the npm registry does.
    let registry = Stub::start(0, |rq| {
        let _ =
            rq.respond(tiny_http::Response::from_string(r#"{"error":"Not found"}"#).with_status_code(404));
    });
    let url = format!("{}/", registry.url);
    let dir = TempDir::new("npm-cache-empty");
    let hub = Hub::builder()
        .servers(NO_SERVERS)
        .env("npm_config_registry", &url)
        .env("npm_config_offline", "false")
        .env("npm_config_cache", dir.path().to_str().unwrap())
        .env("npm_config_fetch_retries", "0")
        .start();
    let msg = hub
        .post_json(
            "/servers/install",
            &json!({"package": "@modelcontextprotocol/no-such-server-agenthub-test"}),
        )
        .expect_error(404, "not_found");
    assert!(msg.contains("no-such-server-agenthub-test"), "{msg}");
    assert!(hub.get("/servers/no-such-server-agenthub-test").status == 404, "nothing added");
    drop(registry);
}

#[test]
fn invalid_package_names_spawn_nothing() {
    let hub = Hub::builder().servers(NO_SERVERS).env("PATH", "/nonexistent").start();
    for package in ["; rm -rf /", "../../etc", "git+https://example.com/x.git", "-g", "Caps", "a b"] {
        let msg =
            hub.post_json("/servers/install", &json!({"package": package})).expect_error(400, "bad_request");
        assert!(msg.contains("invalid npm package"), "{msg}");
    }
    hub.post_json("/servers/install", &json!({})).expect_error(400, "bad_request");
    hub.request("POST", "/servers/install", &[], b"{").expect_error(400, "invalid_json");
    assert!(!hub.dir.path().join("xdg-data/agenthub/npm").exists(), "npm prefix created: something ran");
    // With no npm at all, a valid name reaches npm and gets 503.
    let msg = hub
        .post_json("/servers/install", &json!({"package": "left-pad"}))
        .expect_error(503, "server_unavailable");
    assert!(msg.contains("npm"), "{msg}");
}

#[test]
fn concurrent_installs_adds_and_deletes_leave_a_file_matching_memory() {
    let hub = offline(Hub::builder().servers(NO_SERVERS).env("AGENTHUB_WORKERS", "16")).start();
    let statuses = storm(&hub.addr, 200, |i| {
        let name = format!("s{}", i % 40);
        match i % 25 {
            // Real npm installs, queued one at a time by the hub; each builds a prefix of its own
            // (seconds), so few of them, to stay within a request's 30 s.
            0 if i % 100 == 0 => ("POST", "/servers/install".to_string(),
                json!({"package": "@modelcontextprotocol/server-memory@2026.8.31", "name": name, "ignore_scripts": true}).to_string()),
            n if n % 3 == 2 => ("DELETE", format!("/servers/{name}"), String::new()),
            _ => ("POST", "/servers".to_string(), json!({"name": name, "command": "x", "args": [i.to_string()]}).to_string()),
        }
    });
    let mut installs_ok = 0;
    for status in statuses {
        assert!([200, 201, 404, 409].contains(&status), "unexpected status {status}");
        installs_ok += usize::from(status == 201);
    }
    assert!(installs_ok > 0);
    let listed: Vec<Value> = hub.get("/servers").json()["servers"].as_array().unwrap().clone();
    let on_disk = hub.saved();
    let disk = on_disk["servers"].as_object().unwrap();
    assert_eq!(listed.len(), disk.len());
    for s in &listed {
        let name = s["name"].as_str().unwrap();
        let saved = &disk[name];
        assert_eq!(s["config"].get("args"), saved.get("args"), "{name}");
        assert_eq!(s["config"].get("package"), saved.get("package"), "{name}");
    }
}

/// The version of `package` installed in a server's own prefix.
fn installed_version(hub: &Hub, server: &str, package: &str) -> Option<String> {
    let manifest =
        hub.dir.path().join(format!("xdg-data/agenthub/npm/{server}/node_modules/{package}/package.json"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(manifest).ok()?).ok()?;
    v["version"].as_str().map(str::to_string)
}

#[test]
fn two_installs_of_one_package_keep_their_versions() {
    let hub = offline(Hub::builder().servers(NO_SERVERS)).start();
    let memory = "@modelcontextprotocol/server-memory";
    for (name, version) in [("mem-new", "2026.8.31"), ("mem-old", "2026.7.4")] {
        let r = hub.post_json(
            "/servers/install",
            &json!({"package": format!("{memory}@{version}"), "name": name, "ignore_scripts": true,
                    "env": {"MEMORY_FILE_PATH": hub.dir.path().join(format!("{name}.jsonl")).to_str().unwrap()}}),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let bin = r.json()["installed"]["bin"].as_str().unwrap().to_string();
        assert!(bin.contains(&format!("/npm/{name}/")), "{bin}");
    }
    assert_eq!(installed_version(&hub, "mem-new", memory).as_deref(), Some("2026.8.31"), "the pin held");
    assert_eq!(installed_version(&hub, "mem-old", memory).as_deref(), Some("2026.7.4"));
    let r = hub.post("/servers/mem-new/start");
    assert_eq!(r.status, 200, "{}", r.text());
    let pid = r.json()["pid"].as_i64().unwrap();
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(cmdline.contains("/npm/mem-new/"), "runs its own install: {cmdline}");
    // Removed with the server; the other stays.
    assert_eq!(hub.request("DELETE", "/servers/mem-old", &[], b"").status, 200);
    assert!(!hub.dir.path().join("xdg-data/agenthub/npm/mem-old").exists(), "prefix left behind");
    assert_eq!(installed_version(&hub, "mem-new", memory).as_deref(), Some("2026.8.31"));
}

#[test]
fn a_failed_install_leaves_no_trace() {
    let hub = offline(Hub::builder().servers(NO_SERVERS)).start();
    // In the npm cache (server-memory needs it), and npm installs it: but it has no executable.
    let msg = hub
        .post_json(
            "/servers/install",
            &json!({"package": "@modelcontextprotocol/sdk@1.32.2", "ignore_scripts": true}),
        )
        .expect_error(400, "bad_request");
    assert!(msg.contains("no executable"), "{msg}");
    hub.get("/servers/sdk").expect_error(404, "not_found");
    let npm = hub.dir.path().join("xdg-data/agenthub/npm");
    let left: Vec<_> =
        std::fs::read_dir(&npm).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
    // The line is logged before the answer goes out; the hub's stderr is read on a thread.
    wait_for("the failed install to be logged", 5 * SEC, || {
        hub.log().contains("install of @modelcontextprotocol/sdk@1.32.2 for server sdk failed").then_some(())
    });
}

/// The hub's token and a secret of its environment, which npm must never see.
const TOKEN: &str = "tok-installer-never-seen";
const SECRET: &str = "hub-secret-never-seen";

/// `POST /servers/install` with the hub's token.
fn install(hub: &Hub, body: &Value) -> Resp {
    let auth = format!("Bearer {TOKEN}");
    hub.request("POST", "/servers/install", &[JSON, ("Authorization", &auth)], body.to_string().as_bytes())
}

/// The environment npm or a script of the package dumped with `env`: no token, no secret, no
/// variable of the hub's but its run tag.
fn assert_clean(env: &str) {
    assert!(!env.contains(TOKEN) && !env.contains(SECRET), "{env}");
    for line in env.lines().filter(|l| l.starts_with("AGENTHUB_")) {
        assert!(line.starts_with("AGENTHUB_RUN="), "{line}");
    }
}

#[test]
fn install_scripts_run_only_when_asked_and_never_see_the_hubs_secrets() {
    // A package with an install script, served by a registry on loopback: nothing downloaded.
    let dir = TempDir::new("script-probe");
    let marker = dir.path().join("script-ran");
    let package = dir.path().join("package");
    std::fs::create_dir_all(&package).unwrap();
    let manifest = json!({"name": "agenthub-script-probe", "version": "1.0.0",
        "bin": {"agenthub-script-probe": "bin.js"},
        "scripts": {"install": format!("env > {}", marker.display())}});
    std::fs::write(package.join("package.json"), manifest.to_string()).unwrap();
    std::fs::write(package.join("bin.js"), "#!/usr/bin/env node\n").unwrap();
    let tarball = dir.path().join("probe.tgz");
    let tar = std::process::Command::new("tar")
        .args(["czf", tarball.to_str().unwrap(), "-C", dir.path().to_str().unwrap(), "package"])
        .status()
        .unwrap();
    assert!(tar.success());
    let bytes = std::fs::read(&tarball).unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut version = manifest.clone();
    version["dist"] =
        json!({"tarball": format!("{url}/agenthub-script-probe/-/agenthub-script-probe-1.0.0.tgz")});
    let packument = json!({"name": "agenthub-script-probe", "dist-tags": {"latest": "1.0.0"},
        "versions": {"1.0.0": version}})
    .to_string();
    let registry = Stub::start(port, move |rq| {
        let body = match rq.url() {
            "/agenthub-script-probe" => packument.clone().into_bytes(),
            u if u.ends_with(".tgz") => bytes.clone(),
            _ => return drop(rq.respond(tiny_http::Response::from_string("{}").with_status_code(404))),
        };
        let _ = rq.respond(tiny_http::Response::from_data(body));
    });
    let cache = TempDir::new("npm-cache-probe");
    let hub = Hub::builder()
        .servers(NO_SERVERS)
        .env("AGENTHUB_TOKEN", TOKEN)
        .env("SOME_SECRET", SECRET)
        .env("npm_config_registry", &format!("{url}/"))
        .env("npm_config_offline", "false")
        .env("npm_config_cache", cache.path().to_str().unwrap())
        .env("npm_config_fetch_retries", "0")
        .env("npm_config_update_notifier", "false")
        .start();

    let r = install(&hub, &json!({"package": "agenthub-script-probe", "name": "probe-a"}));
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(!marker.exists(), "the install script ran without being asked for");

    let r = install(
        &hub,
        &json!({"package": "agenthub-script-probe", "name": "probe-b", "ignore_scripts": false}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let env = std::fs::read_to_string(&marker).expect("the install script ran when asked for");
    assert!(env.contains("npm_config_registry="), "npm's own settings pass: {env}");
    assert_clean(&env);
    drop(registry);
}

/// Kills the processes named on drop (what a failed test would leave).
struct Kill(Vec<i64>);

impl Drop for Kill {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // SAFETY: signalling a process this test's hub started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// A directory with a fake `npm` that dumps its environment, starts a `sleep` in its group,
/// writes both pids (`<dir>/pids`: npm's, then the sleep's), and waits.
fn fake_npm() -> TempDir {
    let bin = TempDir::new("fake-npm");
    let script = "#!/bin/sh\nd=$(dirname \"$0\")\nenv > \"$d/env\"\nsleep 1000 &\n\
                  echo \"$$ $!\" > \"$d/pids.tmp\" && mv \"$d/pids.tmp\" \"$d/pids\"\nwait\n";
    let npm = bin.write("npm", script);
    std::fs::set_permissions(&npm, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    bin
}

/// Starts an install through the fake npm (its answer never read) and waits for npm's pids.
fn install_under_way(hub: &Hub, bin: &TempDir) -> (i64, i64, std::net::TcpStream) {
    let body = json!({"package": "some-server", "name": "some"}).to_string();
    let mut stream = std::net::TcpStream::connect(&hub.addr).unwrap();
    let head = format!(
        "POST /servers/install HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        hub.addr,
        body.len()
    );
    std::io::Write::write_all(&mut stream, head.as_bytes()).unwrap();
    let pids = wait_for("npm to start", 10 * SEC, || std::fs::read_to_string(bin.path().join("pids")).ok());
    let mut pids = pids.split_whitespace().map(|p| p.parse::<i64>().unwrap());
    (pids.next().unwrap(), pids.next().unwrap(), stream)
}

fn fake_npm_hub(bin: &TempDir, data: &TempDir) -> Hub {
    Hub::builder()
        .servers(NO_SERVERS)
        .env("PATH", &format!("{}:/usr/bin:/bin", bin.path().display()))
        .env("AGENTHUB_TOKEN", TOKEN)
        .env("SOME_SECRET", SECRET)
        .env("AGENTHUB_DATA_DIR", data.path().to_str().unwrap())
        .start()
}

#[test]
fn a_hub_stopped_mid_install_leaves_no_npm_behind() {
    let (bin, data) = (fake_npm(), TempDir::new("npm-stop-data"));
    let mut hub = fake_npm_hub(&bin, &data);
    let (npm, sleep, _client) = install_under_way(&hub, &bin);
    let _kill = Kill(vec![npm, sleep]);
    assert_clean(&std::fs::read_to_string(bin.path().join("env")).unwrap());
    assert!(data.path().join(format!("pids/npm-install.{npm}")).exists(), "npm's group is recorded");
    hub.signal(libc::SIGTERM);
    assert!(hub.wait_exit(15 * SEC).success(), "{}", hub.log());
    assert!(!alive(npm) && !alive(sleep), "npm {npm} or what it started ({sleep}) outlived the hub");
    assert!(!data.path().join(format!("pids/npm-install.{npm}")).exists(), "the record is gone with npm");
}

#[test]
fn a_new_hub_kills_what_a_killed_hubs_npm_left_and_its_staging() {
    let (bin, data) = (fake_npm(), TempDir::new("npm-kill-data"));
    let mut first = fake_npm_hub(&bin, &data);
    let (npm, sleep, _client) = install_under_way(&first, &bin);
    let _kill = Kill(vec![npm, sleep]);
    let planted = data.path().join("npm/.staging-x");
    std::fs::create_dir_all(&planted).unwrap();
    std::fs::write(planted.join("left.txt"), "left").unwrap();
    let _ = first.child.kill();
    let _ = first.wait_exit(5 * SEC);
    // npm died with the hub; what it started did not.
    wait_for("npm to die with its hub", 5 * SEC, || (!alive(npm)).then_some(()));
    assert!(alive(sleep), "the scenario needs a survivor");
    let staging = || -> Vec<String> {
        std::fs::read_dir(data.path().join("npm"))
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    };
    assert!(staging().len() >= 2, "the killed install's staging prefix and the planted one: {:?}", staging());

    let _second = fake_npm_hub(&bin, &data);
    wait_for("the survivor to be killed", 10 * SEC, || (!alive(sleep)).then_some(()));
    wait_for("the staging prefixes to be removed", 10 * SEC, || staging().is_empty().then_some(()));
}

const MEMORY: &str = "@modelcontextprotocol/server-memory";

/// The messages of the server's install events in the activity feed that start with `prefix`
/// (`installing ` for each npm run, `installed ` for each success, `install of ` for each
/// failure).
fn install_events(hub: &Hub, server: &str, prefix: &str) -> Vec<String> {
    let events = hub.get("/activity").json()["events"].as_array().cloned().unwrap_or_default();
    events
        .iter()
        .filter(|e| e["kind"] == "install" && e["server"] == server)
        .filter_map(|e| e["message"].as_str().filter(|m| m.starts_with(prefix)).map(str::to_string))
        .collect()
}

/// A process's arguments, from /proc.
fn argv(pid: i64) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Asserts the server runs as `node <its prefix's bin>` alone: nothing of npm, npx or a shell
/// in its process tree (the group it leads).
fn runs_as_node(hub: &Hub, server: &str, pid: i64) {
    let args = argv(pid);
    assert_eq!(args.first().map(String::as_str), Some("node"), "{args:?}");
    let bin =
        hub.dir.path().join(format!("xdg-data/agenthub/npm/{server}/node_modules/{MEMORY}/dist/index.js"));
    assert_eq!(args.get(1).map(String::as_str), bin.to_str(), "{args:?}");
    assert_eq!(processes_in_group(pid), [pid], "the server alone in its tree");
    for arg in &args {
        let base = arg.rsplit('/').next().unwrap_or(arg);
        assert!(!["npm", "npx", "sh", "npm-cli.js", "npx-cli.js"].contains(&base), "{args:?}");
    }
}

#[test]
fn npx_entries_are_installed_once_in_the_background_and_run_as_node() {
    let data = TempDir::new("npx-node");
    let spec = format!("{MEMORY}@2026.8.31");
    let servers = json!({"servers": {"mem": {"command": "npx", "args": ["-y", spec],
        "env": {"MEMORY_FILE_PATH": data.path().join("m.jsonl").to_str().unwrap()}}}});
    let hub = offline(Hub::builder().servers(&servers.to_string())).start();
    // Nobody asked it to start: it is installed as the configuration loads.
    wait_for("the background install to begin", 60 * SEC, || {
        install_events(&hub, "mem", "installing ").pop()
    });
    assert_eq!(hub.server("mem")["status"], "STOPPED");
    // Asked to start meanwhile (npm takes seconds), it waits for that install, STARTING, rather
    // than run npm too.
    let r = hub.post("/servers/mem/start");
    assert_eq!(r.status, 200, "{}", r.text());
    let done = install_events(&hub, "mem", "installed ").pop().expect("installed before it ran");
    assert!(done.starts_with(&format!("installed {spec} in ")), "{done}");
    let marker = hub.dir.path().join("xdg-data/agenthub/npm/mem/.agenthub-spec");
    assert_eq!(std::fs::read_to_string(marker).unwrap(), format!("{spec}\n"));
    let pid = r.json()["pid"].as_i64().unwrap();
    runs_as_node(&hub, "mem", pid);
    let r = hub.tool(
        "mem",
        "create_entities",
        json!({"entities": [{"name": "hub", "entityType": "t", "observations": ["ran as node"]}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(tool_text(&hub.tool("mem", "read_graph", json!({}))).contains("ran as node"));

    // A restart, and a crash the supervisor restarts: npm never runs again.
    let r = hub.post("/servers/mem/restart");
    assert_eq!(r.status, 200, "{}", r.text());
    let pid = r.json()["pid"].as_i64().unwrap();
    // SAFETY: signalling the server this test's hub started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let s = hub.wait_restarted("mem", 1);
    runs_as_node(&hub, "mem", s["pid"].as_i64().unwrap());
    assert!(tool_text(&hub.tool("mem", "read_graph", json!({}))).contains("ran as node"));
    assert_eq!(install_events(&hub, "mem", "installing ").len(), 1, "npm ran once");
}

#[test]
fn a_package_that_cannot_be_installed_fails_with_npms_reason_and_npm_is_not_rerun_on_restarts() {
    // Not in the npm cache, and npm is offline.
    let spec = format!("{MEMORY}@1999.1.1");
    let servers = json!({"servers": {"bad": {"command": "npx", "args": ["--yes", spec],
        "restart_backoff": 0.1, "max_restarts": 2}}});
    let hub = offline(Hub::builder().servers(&servers.to_string())).start();
    let failed = wait_for("the background install to fail", 60 * SEC, || {
        install_events(&hub, "bad", "install of ").pop()
    });
    assert!(failed.contains("No matching version found"), "{failed}");
    assert_eq!(hub.server("bad")["status"], "STOPPED", "nobody asked it to start");

    // A person's start runs npm again at once, and says why it failed.
    let msg = hub.post("/servers/bad/start").expect_error(502, "upstream_error");
    for needle in ["install of", "No matching version found", "no such package/version"] {
        assert!(msg.contains(needle), "{needle}: {msg}");
    }
    // Its restarts get the failure back without npm.
    let s = hub.wait_status("bad", "FAILED", 30 * SEC);
    assert_eq!(s["restart_count"], 2, "{s}");
    let last = s["last_error"].as_str().unwrap_or_default();
    assert!(last.contains("No matching version found") && last.contains("no such package/version"), "{s}");
    assert_eq!(
        install_events(&hub, "bad", "installing ").len(),
        2,
        "npm ran for the load and the start only"
    );
    assert!(hub.stderr_lines("bad", "[npm] npm error notarget") > 0, "npm's lines are in the logs");
    assert!(!hub.dir.path().join("xdg-data/agenthub/npm/bad").exists(), "nothing left behind");

    hub.post("/servers/bad/start").expect_error(502, "upstream_error");
    assert_eq!(install_events(&hub, "bad", "installing ").len(), 3, "each person's start tries again");
}

#[test]
fn a_new_version_in_the_entry_is_installed_and_run() {
    let data = TempDir::new("npx-bump");
    let entry = |version: &str| {
        json!({"servers": {"mem": {"command": "npx", "args": ["-y", format!("{MEMORY}@{version}")],
            "env": {"MEMORY_FILE_PATH": data.path().join("m.jsonl").to_str().unwrap()}}}})
        .to_string()
    };
    let hub = offline(Hub::builder().servers(&entry("2026.7.4"))).start();
    wait_for("the first install", 120 * SEC, || install_events(&hub, "mem", "installed ").pop());
    assert_eq!(installed_version(&hub, "mem", MEMORY).as_deref(), Some("2026.7.4"));
    let r = hub.post("/servers/mem/start");
    assert_eq!(r.status, 200, "{}", r.text());
    let old = r.json()["pid"].as_i64().unwrap();

    // The file changes: the new version is installed, and the server restarts onto it.
    std::fs::write(hub.dir.path().join("mcp-servers.json"), entry("2026.8.31")).unwrap();
    let s = wait_for("the restart on the new version", 120 * SEC, || {
        let s = hub.server("mem");
        (s["status"] == "RUNNING" && s["pid"].as_i64() != Some(old)).then_some(s)
    });
    assert_eq!(installed_version(&hub, "mem", MEMORY).as_deref(), Some("2026.8.31"));
    runs_as_node(&hub, "mem", s["pid"].as_i64().unwrap());
    assert!(!alive(old));
    assert_eq!(install_events(&hub, "mem", "installed ").len(), 2, "{:?}", install_events(&hub, "mem", ""));
}
