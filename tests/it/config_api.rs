//! Configuration changes through the API: add, replace, remove, the saved file, imports,
//! a failed save, and a storm of concurrent changes.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use crate::harness::*;

#[test]
fn add_replace_remove_are_saved() {
    let hub = Hub::empty();
    let r = hub.post_json(
        "/servers",
        &json!({"name": "fx", "command": FIXTURE, "env": {"TOKEN": "${AGENTHUB_IT_TOKEN}"}}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["status"], "STOPPED");
    assert_eq!(r.json()["config"]["env"]["TOKEN"], "***");
    assert_eq!(hub.saved()["servers"]["fx"]["env"]["TOKEN"], "${AGENTHUB_IT_TOKEN}", "saved unexpanded");
    hub.post_json("/servers", &json!({"name": "fx", "command": "x"})).expect_error(409, "conflict");
    let msg = hub
        .post_json("/servers", &json!({"name": "bad name", "command": "x"}))
        .expect_error(400, "bad_request");
    assert!(msg.contains("bad name"), "{msg}");
    let msg = hub.post_json("/servers", &json!({"name": "y", "command": 5})).expect_error(400, "bad_request");
    assert!(msg.contains("$.command"), "{msg}");
    hub.post_json("/servers", &json!({"command": "x"})).expect_error(400, "bad_request");
    let msg = hub.request("POST", "/servers", &[], b"{\"name\": \"z\",").expect_error(400, "invalid_json");
    assert!(msg.contains("line 1"), "{msg}");

    // Replacing a running server restarts it with the new configuration.
    let hub2 = Hub::with_fixtures(&[("fx", json!({}))]);
    let pid = hub2.post("/servers/fx/start").json()["pid"].as_i64().unwrap();
    let r = hub2.request(
        "PUT",
        "/servers/fx",
        &[],
        json!({"command": FIXTURE, "args": ["--garbage"], "description": "v2"}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "RUNNING");
    assert_ne!(r.json()["pid"].as_i64().unwrap(), pid);
    assert!(!alive(pid));
    assert_eq!(hub2.saved()["servers"]["fx"]["args"], json!(["--garbage"]));
    assert_eq!(hub2.server("fx")["config"]["description"], "v2");
    hub2.request("PUT", "/servers/ghost", &[], br#"{"command": "x"}"#).expect_error(404, "not_found");

    let pid = hub2.server("fx")["pid"].as_i64().unwrap();
    assert_eq!(hub2.request("DELETE", "/servers/fx", &[], b"").status, 200);
    assert!(!alive(pid), "removed server's process survived");
    hub2.get("/servers/fx").expect_error(404, "not_found");
    assert!(hub2.saved()["servers"].get("fx").is_none());
    hub2.request("DELETE", "/servers/fx", &[], b"").expect_error(404, "not_found");
}

#[test]
fn a_put_that_disables_a_running_server_saves_stops_and_answers_200() {
    let hub = Hub::with_fixtures(&[("fx", json!({}))]);
    let pid = hub.post("/servers/fx/start").json()["pid"].as_i64().unwrap();
    let r = hub.request(
        "PUT",
        "/servers/fx",
        &[],
        json!({"command": FIXTURE, "enabled": false}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert!(body["status"] == "STOPPED" || body["status"] == "STOPPING", "{body}");
    assert_eq!(body["config"]["enabled"], false, "{body}");
    assert_eq!(hub.saved()["servers"]["fx"]["enabled"], false);
    wait_for("the disabled server's process to be gone", 10 * SEC, || (!alive(pid)).then_some(()));
    assert_eq!(hub.server("fx")["status"], "STOPPED");
}

#[test]
fn a_failed_save_changes_nothing() {
    let hub = Hub::with_fixtures(&[("keep", json!({}))]);
    let file = hub.dir.path().join("mcp-servers.json");
    let before = std::fs::read_to_string(&file).unwrap();
    // A directory where the file was: the rename cannot replace it.
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    std::fs::write(file.join("blocker"), "x").unwrap();
    let msg =
        hub.post_json("/servers", &json!({"name": "new", "command": "x"})).expect_error(500, "internal");
    assert!(msg.contains("mcp-servers.json"), "{msg}");
    hub.get("/servers/new").expect_error(404, "not_found");
    hub.request("DELETE", "/servers/keep", &[], b"").expect_error(500, "internal");
    assert_eq!(hub.server("keep")["name"], "keep", "rolled back");
    std::fs::remove_dir_all(&file).unwrap();
    std::fs::write(&file, &before).unwrap();
    assert_eq!(hub.post_json("/servers", &json!({"name": "new", "command": "x"})).status, 201);
    let names: BTreeSet<String> = hub.saved()["servers"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(names, BTreeSet::from(["keep".to_string(), "new".to_string()]));
    assert!(
        std::fs::read_dir(hub.dir.path())
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().contains(".tmp"))
    );
}

#[test]
fn a_storm_of_concurrent_changes_leaves_a_file_matching_memory() {
    let hub = Hub::builder().servers(NO_SERVERS).env("AGENTHUB_WORKERS", "16").start();
    let statuses = storm(&hub.addr, 200, |i| {
        let name = format!("s{}", i % 50);
        if i % 3 == 2 {
            ("DELETE", format!("/servers/{name}"), String::new())
        } else {
            (
                "POST",
                "/servers".to_string(),
                json!({"name": name, "command": "x", "args": [i.to_string()]}).to_string(),
            )
        }
    });
    for status in statuses {
        assert!([200, 201, 404, 409].contains(&status), "unexpected status {status}");
    }
    let in_memory: BTreeSet<String> = hub.get("/servers").json()["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    let on_disk = hub.saved();
    let on_disk_names: BTreeSet<String> = on_disk["servers"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(in_memory, on_disk_names);
    assert!(!in_memory.is_empty());
    for name in &in_memory {
        assert_eq!(hub.server(name)["config"]["args"], on_disk["servers"][name]["args"]);
    }
}

#[test]
fn imported_files_are_never_rewritten_and_lose_name_clashes() {
    let b = Hub::builder().servers(r#"{"servers": {"shared": {"command": "own-version"}}}"#).file(
        "claude.json",
        r#"{"mcpServers": {"shared": {"command": "imported-version"}, "desk": {"command": "desk-server"}}}"#,
    );
    let import = b.dir().join("claude.json");
    let hub = b.env("AGENTHUB_SERVERS_FILE", import.to_str().unwrap()).start();
    assert_eq!(hub.server("shared")["config"]["command"], "own-version");
    assert_eq!(hub.server("desk")["config"]["command"], "desk-server");
    assert!(hub.log().contains("server \"shared\" is defined in"), "clash not logged");
    let import = std::fs::read_to_string(hub.dir.path().join("claude.json")).unwrap();
    assert_eq!(hub.post_json("/servers", &json!({"name": "added", "command": "x"})).status, 201);
    assert_eq!(
        std::fs::read_to_string(hub.dir.path().join("claude.json")).unwrap(),
        import,
        "import rewritten"
    );
    let own = hub.saved();
    assert!(own["servers"].get("desk").is_none(), "imported server copied into the hub's file");
    assert!(own["servers"].get("added").is_some() && own["servers"].get("shared").is_some());
}

#[test]
fn api_answers_name_unknown_fields() {
    let hub = Hub::empty();
    let r = hub.post_json("/servers", &json!({"name": "t", "command": "x", "autostart": true}));
    assert_eq!(r.status, 201, "{}", r.text());
    let warnings = r.json()["warnings"].clone();
    assert_eq!(
        warnings,
        json!(["request body: $.autostart: unknown field (did you mean \"auto_start\"?); ignored"])
    );
    assert_eq!(r.json()["config"]["auto_start"], false);
    let r = hub.request("PUT", "/servers/t", &[JSON], br#"{"command": "x", "env_file": ".env"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["warnings"],
        json!(["request body: $.env_file: unknown field (did you mean \"envFile\"?); ignored"])
    );
    let r = hub.request("PUT", "/servers/t", &[JSON], br#"{"command": "x"}"#);
    assert_eq!(r.json()["warnings"], json!([]));
}

#[test]
fn a_removal_does_not_hold_up_other_changes_while_its_server_stops() {
    // TERM ignored and stdin EOF too: its stop takes the whole grace, then a KILL (~6 s).
    let stubborn = json!({"auto_start": true, "args": ["--ignore-term", "--linger"]});
    let hub = Hub::with_fixtures(&[("stubborn", stubborn)]);
    hub.wait_status("stubborn", "RUNNING", 10 * SEC);
    let removing = AtomicBool::new(true);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let r = hub.request("DELETE", "/servers/stubborn", &[], b"");
            assert_eq!(r.status, 200, "{}", r.text());
            removing.store(false, Ordering::SeqCst);
        });
        wait_for("the removal to be under way", 5 * SEC, || {
            let s = hub.get("/servers/stubborn");
            (s.status == 404 || s.json()["status"] == "STOPPING").then_some(())
        });
        let added = hub.post_json("/servers", &json!({"name": "other", "command": FIXTURE}));
        assert_eq!(added.status, 201, "{}", added.text());
        assert!(removing.load(Ordering::SeqCst), "the add waited for the stop to end");
    });
    let names: Vec<String> = hub.saved()["servers"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(names, ["other"]);
}
