//! Live reload: the servers file edited on disk while the hub runs. An added server appears, a
//! removed one is stopped (its process gone), changed `args` restart only that server, a changed
//! `request_timeout` restarts nothing, a broken file leaves everything running with a
//! `config_error` event, the hub's own saves reload nothing, SIGHUP reloads at once.

use serde_json::{Value, json};

use crate::harness::*;

fn pid(hub: &Hub, name: &str) -> i64 {
    hub.wait_status(name, "RUNNING", 10 * SEC)["pid"].as_i64().expect("a pid")
}

/// Writes the servers file as an editor would: a new file renamed over the old one.
fn edit(hub: &Hub, servers: &[(&str, Value)]) {
    let path = hub.dir.path().join("mcp-servers.json");
    let tmp = hub.dir.path().join("mcp-servers.json.edit");
    std::fs::write(&tmp, fixture_servers(servers)).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
}

fn events(hub: &Hub, kind: &str) -> Vec<Value> {
    let all = hub.get("/activity").json()["events"].as_array().cloned().unwrap_or_default();
    all.into_iter().filter(|e| e["kind"] == kind).collect()
}

/// Waits for the `n`th reload event of the hub's life and returns its message.
fn wait_reloads(hub: &Hub, n: usize) -> String {
    wait_for(&format!("reload {n}"), 10 * SEC, || {
        let reloads: Vec<Value> = events(hub, "config")
            .into_iter()
            .filter(|e| e["message"].as_str().is_some_and(|m| m.starts_with("reloaded")))
            .collect();
        reloads.get(n - 1).map(|e| e["message"].as_str().unwrap_or("").to_string())
    })
}

#[test]
fn edits_on_disk_add_remove_restart_and_update_only_what_changed() {
    let auto = json!({"auto_start": true});
    let hub = Hub::builder().fixtures(&[("a", auto.clone()), ("b", auto.clone())]).start();
    let (a, b) = (pid(&hub, "a"), pid(&hub, "b"));

    // Added.
    edit(&hub, &[("a", auto.clone()), ("b", auto.clone()), ("n", auto.clone())]);
    let msg = wait_reloads(&hub, 1);
    assert!(msg.contains("added n"), "{msg}");
    let n = pid(&hub, "n");
    assert_eq!((pid(&hub, "a"), pid(&hub, "b")), (a, b));

    // Changed args: only that server restarts.
    let a_args = json!({"auto_start": true, "args": ["--no-ping"]});
    edit(&hub, &[("a", a_args.clone()), ("b", auto.clone()), ("n", auto.clone())]);
    let msg = wait_reloads(&hub, 2);
    assert!(msg.contains("restarted a"), "{msg}");
    let a2 = wait_for("a to run under a new pid", 10 * SEC, || {
        let s = hub.server("a");
        (s["status"] == "RUNNING" && s["pid"].as_i64() != Some(a)).then(|| s["pid"].as_i64().unwrap_or(0))
    });
    assert_eq!(hub.server("a")["config"]["args"], json!(["--no-ping"]));
    assert!(!alive(a), "the old process of a lives on");
    assert_eq!((pid(&hub, "b"), pid(&hub, "n")), (b, n), "others restarted");

    // Changed request_timeout: applied, nothing restarted.
    let b_timeout = json!({"auto_start": true, "request_timeout": 7});
    edit(&hub, &[("a", a_args.clone()), ("b", b_timeout.clone()), ("n", auto.clone())]);
    let msg = wait_reloads(&hub, 3);
    assert!(msg.contains("updated b") && !msg.contains("restarted"), "{msg}");
    assert_eq!(hub.server("b")["config"]["request_timeout"].as_f64(), Some(7.0));
    assert_eq!((pid(&hub, "a"), pid(&hub, "b"), pid(&hub, "n")), (a2, b, n));

    // Removed: stopped, its process gone, no longer listed.
    edit(&hub, &[("a", a_args.clone()), ("b", b_timeout.clone())]);
    let msg = wait_reloads(&hub, 4);
    assert!(msg.contains("removed n"), "{msg}");
    wait_for("n's process to be gone", 10 * SEC, || (!alive(n)).then_some(()));
    assert_eq!(hub.get("/servers/n").status, 404);
    assert_eq!((pid(&hub, "a"), pid(&hub, "b")), (a2, b));
}

#[test]
fn a_broken_file_leaves_everything_running_and_says_where() {
    let auto = json!({"auto_start": true});
    let hub = Hub::builder().fixtures(&[("a", auto.clone())]).start();
    let a = pid(&hub, "a");
    let path = hub.dir.path().join("mcp-servers.json");

    std::fs::write(&path, "{\n  \"servers\": {\n    \"a\": {\"command\": \n}").expect("write");
    let event =
        wait_for("a config_error event", 10 * SEC, || events(&hub, "config_error").into_iter().next());
    let msg = event["message"].as_str().unwrap_or("");
    assert!(msg.contains("mcp-servers.json:4:"), "no file and line: {msg}");
    assert_eq!(pid(&hub, "a"), a);
    assert!(hub.log().contains("configuration not reloaded"), "{}", hub.log());

    // A field of the wrong type: refused too, by JSON path and line.
    let text = format!(
        "{{\"servers\": {{\n  \"a\": {{\"command\": {:?}}},\n  \"bad\": {{\"command\": \"x\", \"args\": 5}}\n}}}}",
        FIXTURE
    );
    std::fs::write(&path, text).expect("write");
    let event =
        wait_for("a second config_error", 10 * SEC, || events(&hub, "config_error").into_iter().nth(1));
    let msg = event["message"].as_str().unwrap_or("");
    assert!(msg.contains("servers.bad.args") && msg.contains("line 3"), "{msg}");
    assert_eq!(hub.get("/servers/bad").status, 404);
    assert_eq!(pid(&hub, "a"), a);
}

#[test]
fn the_hubs_own_saves_reload_nothing_and_sighup_reloads_at_once() {
    let hub = Hub::builder().fixtures(&[("a", json!({}))]).start();
    let r = hub.post_json("/servers", &json!({"name": "b", "command": FIXTURE}));
    assert_eq!(r.status, 201, "{}", r.text());
    // The watcher saw the file change, and knew the save for the hub's own.
    wait_for("the watcher to pass over the hub's own save", 10 * SEC, || {
        hub.log().contains("the hub's own save; not reloaded").then_some(())
    });
    assert!(
        !events(&hub, "config")
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.starts_with("reloaded"))),
        "the hub reloaded its own save: {}",
        hub.get("/activity").text()
    );
    hub.signal(libc::SIGHUP);
    let msg = wait_reloads(&hub, 1);
    assert!(msg.starts_with("reloaded (SIGHUP)") && msg.contains("no server changed"), "{msg}");
    assert!(alive(i64::from(hub.pid())), "SIGHUP stopped the hub");
    assert_eq!(hub.get("/health").status, 200);
}

#[test]
fn aggregated_sessions_hear_that_the_lists_changed() {
    let hub = Hub::builder().fixtures(&[("a", json!({"auto_start": true}))]).start();
    let a = pid(&hub, "a");
    let c = McpSession::connect(&hub, "/mcp");
    let mut stream = c.open_stream();
    // A change of policy only: no server starts or stops, yet what `/mcp` lists may differ.
    edit(&hub, &[("a", json!({"auto_start": true, "description": "now described"}))]);
    wait_line(&mut stream, "tools/list_changed", 10 * SEC, |line| {
        line.contains("notifications/tools/list_changed").then_some(())
    });
    assert_eq!(pid(&hub, "a"), a);
}

const RULES: &str = r#"{
  "default": {"model": "llama3.2:3b", "system_prompt": "DEFAULT SYS"},
  "clients": {"vscode": {"system_prompt": "VSCODE SYS"}, "cursor": {"system_prompt": "CURSOR SYS"}}
}"#;

#[test]
fn rules_swap_and_only_the_changed_rules_cache_entries_go() {
    let ollama = crate::fake_ollama::FakeOllama::start(&["llama3.2:3b"]);
    let hub = Hub::builder()
        .servers(NO_SERVERS)
        .file("enhancement-rules.json", RULES)
        .env("OLLAMA_URL", &ollama.url)
        .start();
    let enhance = |client: &str| {
        let body = json!({"prompt": "explain docker"}).to_string();
        let r = hub.request("POST", "/ollama/enhance", &[JSON, ("X-Client-Name", client)], body.as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    let entries = || hub.get("/health").json()["cache"]["size"].as_u64();
    assert_eq!(enhance("vscode")["enhanced"], true);
    assert_eq!(enhance("cursor")["enhanced"], true);
    assert_eq!(entries(), Some(2));

    hub.dir.write("enhancement-rules.json", &RULES.replace("VSCODE SYS", "VSCODE SYS, AGAIN"));
    let msg = wait_reloads(&hub, 1);
    assert!(msg.contains("rules changed: vscode"), "{msg}");
    assert_eq!(entries(), Some(1), "the changed rule's entry is dropped, the other kept");
    assert_eq!(enhance("cursor")["cached"], true);
    let v = enhance("vscode");
    assert_eq!((v["cached"].clone(), v["enhanced"].clone()), (json!(false), json!(true)));
    assert!(
        ollama.received("/api/generate").iter().any(|r| r.body["system"] == "VSCODE SYS, AGAIN"),
        "the new rule is used"
    );

    let page = hub.get("/metrics").text();
    for series in [
        r#"agenthub_enhance_total{client="vscode",result="enhanced"} 2"#,
        r#"agenthub_enhance_total{client="cursor",result="cached"} 1"#,
        r#"agenthub_ollama_requests_total{model="llama3.2:3b",outcome="ok"} 3"#,
        r#"agenthub_config_reloads_total{result="applied"} 1"#,
        r#"agenthub_ollama_tokens_total{model="llama3.2:3b",kind="prompt"} 15"#,
        r#"agenthub_ollama_tokens_total{model="llama3.2:3b",kind="completion"} 9"#,
    ] {
        assert!(page.lines().any(|l| l == series), "{series} missing in\n{page}");
    }
}

#[test]
fn enabled_toggled_stops_and_starts() {
    let auto = json!({"auto_start": true});
    let hub = Hub::builder().fixtures(&[("a", auto.clone()), ("b", auto.clone())]).start();
    let (a, b) = (pid(&hub, "a"), pid(&hub, "b"));
    edit(&hub, &[("a", auto.clone()), ("b", json!({"auto_start": true, "enabled": false}))]);
    let msg = wait_reloads(&hub, 1);
    assert!(msg.contains("stopped b"), "{msg}");
    wait_for("b's process to be gone", 10 * SEC, || (!alive(b)).then_some(()));
    hub.wait_status("b", "STOPPED", 10 * SEC);
    edit(&hub, &[("a", auto.clone()), ("b", auto.clone())]);
    let msg = wait_reloads(&hub, 2);
    assert!(msg.contains("started b"), "{msg}");
    assert_ne!(pid(&hub, "b"), b);
    assert_eq!(pid(&hub, "a"), a);
}

#[test]
fn pipelines_reload_too() {
    let one = |name: &str| {
        json!({"pipelines": {name: {"steps": [{"id": "a", "tool": "fx/echo", "args": {"text": "hi"}}]}}})
            .to_string()
    };
    let hub = Hub::builder().fixtures(&[("fx", json!({}))]).file("pipelines.json", &one("first")).start();
    let names = || -> Vec<String> {
        let list = hub.get("/pipelines").json();
        let list = list["pipelines"].as_array().cloned().unwrap_or_default();
        list.iter().filter_map(|p| p["name"].as_str().map(str::to_string)).collect()
    };
    assert_eq!(names(), ["first"]);
    hub.dir.write("pipelines.json", &one("second"));
    let msg = wait_reloads(&hub, 1);
    assert!(msg.contains("pipelines changed: first, second"), "{msg}");
    assert_eq!(names(), ["second"]);
}

#[test]
fn a_servers_file_gone_for_a_while_changes_nothing_and_is_picked_up_when_back() {
    let auto = json!({"auto_start": true});
    let hub = Hub::builder().fixtures(&[("a", auto.clone())]).start();
    let a = pid(&hub, "a");
    let path = hub.dir.path().join("mcp-servers.json");
    let away = hub.dir.path().join("mcp-servers.json.away");
    std::fs::rename(&path, &away).expect("move the file away");

    let event = wait_for("a config_error", 10 * SEC, || events(&hub, "config_error").into_iter().next());
    let msg = event["message"].as_str().unwrap_or("");
    assert!(msg.contains("mcp-servers.json") && msg.contains("not found"), "{msg}");
    // Asked again while it is still gone: refused again.
    hub.signal(libc::SIGHUP);
    wait_for("a second config_error", 10 * SEC, || events(&hub, "config_error").into_iter().nth(1));
    let names: Vec<Value> =
        hub.get("/servers").json()["servers"].as_array().unwrap().iter().map(|s| s["name"].clone()).collect();
    assert_eq!(names, [json!("a")], "no server stopped, no example started");
    assert_eq!(pid(&hub, "a"), a);
    // Nor does an API change write a new file in its place meanwhile.
    let msg =
        hub.post_json("/servers", &json!({"name": "api", "command": FIXTURE})).expect_error(409, "conflict");
    assert!(msg.contains("mcp-servers.json") && msg.contains("gone"), "{msg}");
    assert!(!path.exists(), "a file written where the moved one was");
    assert!(
        events(&hub, "config").iter().all(|e| !e["message"].as_str().unwrap_or("").starts_with("reloaded"))
    );

    // Back, with an edit: applied.
    std::fs::write(&away, fixture_servers(&[("a", auto.clone()), ("n", json!({}))])).expect("edit");
    std::fs::rename(&away, &path).expect("move the file back");
    let msg = wait_reloads(&hub, 1);
    assert!(msg.contains("added n") && !msg.contains("removed"), "{msg}");
    assert_eq!(hub.server("n")["status"], "STOPPED");
    assert_eq!(pid(&hub, "a"), a);
}

#[test]
fn an_api_change_never_overwrites_an_edit_on_disk_not_yet_reloaded() {
    let hub = Hub::builder().fixtures(&[("a", json!({}))]).start();
    let path = hub.dir.path().join("mcp-servers.json");
    let edited = fixture_servers(&[("a", json!({})), ("mine", json!({}))]);
    std::fs::write(&path, &edited).expect("edit");
    // The file keeps changing (its time only) until the API is asked: no reload settles first.
    let hold = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let toucher = {
        let (hold, path) = (hold.clone(), path.clone());
        std::thread::spawn(move || {
            let base = std::time::SystemTime::now();
            let mut n = 0;
            while hold.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let f = std::fs::File::options().write(true).open(&path).expect("open");
                f.set_modified(base + n * SEC).expect("touch");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        })
    };
    let body = json!({"name": "api", "command": FIXTURE});
    let msg = hub.post_json("/servers", &body).expect_error(409, "conflict");
    assert!(msg.contains("mcp-servers.json") && msg.contains("changed on disk"), "{msg}");
    let put = json!({"command": FIXTURE, "description": "from the API"}).to_string();
    hub.request("PUT", "/servers/a", &[], put.as_bytes()).expect_error(409, "conflict");
    hub.request("DELETE", "/servers/a", &[], b"").expect_error(409, "conflict");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), edited, "the edit on disk was overwritten");
    hub.get("/servers/api").expect_error(404, "not_found");
    assert_eq!(hub.server("a")["status"], "STOPPED");
    hold.store(false, std::sync::atomic::Ordering::SeqCst);
    toucher.join().expect("the toucher");

    // Once the reload has it, the API change is made over it.
    let msg = wait_reloads(&hub, 1);
    assert!(msg.contains("added mine"), "{msg}");
    assert_eq!(hub.post_json("/servers", &body).status, 201);
    let saved = hub.saved();
    assert!(saved["servers"].get("mine").is_some() && saved["servers"].get("api").is_some(), "{saved}");
}

/// A ConfigMap as Kubernetes mounts one: the file a symlink through `..data`, a symlink to a
/// timestamped directory that an update replaces (a new directory, then `..data` renamed over).
fn configmap_version(dir: &std::path::Path, version: &str, servers: &str) {
    let data = dir.join(version);
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("mcp-servers.json"), servers).unwrap();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(version, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
}

#[test]
fn a_configmaps_update_by_symlink_swap_is_followed() {
    let mount = TempDir::new("configmap");
    configmap_version(
        mount.path(),
        "..2026_12_07_a",
        &fixture_servers(&[("one", json!({"auto_start": true}))]),
    );
    let file = mount.path().join("mcp-servers.json");
    std::os::unix::fs::symlink("..data/mcp-servers.json", &file).unwrap();
    let hub = Hub::builder().servers(NO_SERVERS).env("AGENTHUB_SERVERS_FILE", file.to_str().unwrap()).start();
    hub.wait_status("one", "RUNNING", 10 * SEC);
    let two = fixture_servers(&[("one", json!({"auto_start": true})), ("two", json!({"auto_start": true}))]);
    configmap_version(mount.path(), "..2026_12_07_b", &two);
    hub.wait_status("two", "RUNNING", 10 * SEC);
    // Imported: read-only to the API.
    let r = hub.request("DELETE", "/servers/two", &[], b"");
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (409, Some("read_only")), "{}", r.text());
}
