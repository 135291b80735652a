//! The Raycast script commands (`assets/raycast/`): their headers against Raycast's schema
//! version 1, and each run by bash against a hub and a fake Ollama with nothing else on PATH
//! but bash, curl and, for one run, a fake clipboard tool.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::fake_ollama::FakeOllama;
use crate::harness::*;

const TOKEN: &str = "raycast-test-token-0123456789";

fn scripts() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/raycast");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    out.sort();
    out
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/raycast").join(name)
}

/// `# @raycast.key value` lines.
fn headers(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# @raycast."))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn the_scripts_headers_follow_raycasts_schema() {
    let all = scripts();
    assert_eq!(all.len(), 3, "enhance, status, restart: {all:?}");
    let known = [
        "schemaVersion",
        "title",
        "mode",
        "icon",
        "packageName",
        "refreshTime",
        "argument1",
        "argument2",
        "argument3",
        "description",
        "author",
        "authorURL",
        "currentDirectoryPath",
        "needsConfirmation",
    ];
    for path in &all {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(text.starts_with("#!/bin/bash\n"), "{name}: a bash script");
        assert!(std::fs::metadata(path).unwrap().permissions().mode() & 0o111 != 0, "{name}: executable");
        let h = headers(&text);
        assert_eq!(h.get("schemaVersion").map(String::as_str), Some("1"), "{name}");
        assert!(h.get("title").is_some_and(|t| !t.is_empty()), "{name}: title");
        let mode = h.get("mode").map(String::as_str).unwrap_or("");
        assert!(["silent", "compact", "fullOutput", "inline"].contains(&mode), "{name}: mode {mode:?}");
        for k in h.keys() {
            assert!(known.contains(&k.as_str()), "{name}: unknown key @raycast.{k}");
        }
        let args = h.keys().filter(|k| k.starts_with("argument")).count();
        assert!(args <= 3, "{name}: at most three arguments");
        for n in 1..=args {
            let arg: Value = serde_json::from_str(&h[&format!("argument{n}")])
                .unwrap_or_else(|e| panic!("{name}: argument{n} is not JSON: {e}"));
            assert!(
                ["text", "password", "dropdown"].contains(&arg["type"].as_str().unwrap_or("")),
                "{name}: {arg}"
            );
            assert!(arg["placeholder"].is_string(), "{name}: argument{n} needs a placeholder");
        }
        if mode == "inline" {
            assert!(h.contains_key("refreshTime"), "{name}: an inline command refreshes");
        }
        assert!(!text.contains("jq"), "{name}: no jq");
    }
}

/// A PATH holding bash and curl only, plus `extra` (name, bash body) scripts.
fn bare_path(dir: &Path, extra: &[(&str, &str)]) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["bash", "curl"] {
        let found =
            ["/usr/bin", "/bin"].iter().map(|d| Path::new(d).join(tool)).find(|p| p.exists()).unwrap();
        let _ = std::os::unix::fs::symlink(found, bin.join(tool));
    }
    for (name, body) in extra {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!{}\n{body}\n", bin.join("bash").display())).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin.display().to_string()
}

/// Runs a script with bash as Raycast does: (exit ok, stdout + stderr).
fn run(script: &Path, args: &[&str], path: &str, env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new("/bin/bash");
    cmd.arg(script).args(args).env_clear().env("PATH", path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

const RULES: &str = r#"{
  "default": {"model": "llama3.2:3b", "system_prompt": "DEFAULT SYS"},
  "clients": {"raycast": {"system_prompt": "RAYCAST SYS"}}
}"#;

#[test]
fn enhance_prompt_prints_and_copies_the_rewrite_with_the_raycast_rule() {
    let ollama = FakeOllama::start(&["llama3.2:3b"]);
    let hub = Hub::builder()
        .servers(NO_SERVERS)
        .file("enhancement-rules.json", RULES)
        .env("OLLAMA_URL", &ollama.url)
        .env("OLLAMA_TIMEOUT_S", "1")
        .env("AGENTHUB_TOKEN", TOKEN)
        .start();
    let dir = TempDir::new("raycast-enhance");
    let clip = dir.path().join("clipboard");
    let copy = format!("IFS= read -r -d '' text; printf '%s' \"$text\" > {}", clip.display());
    let path = bare_path(dir.path(), &[("pbcopy", &copy)]);
    let url = format!("http://{}", hub.addr);
    let prompt = "explain \"docker\"\n\tand k8s \\ ünïcode \u{1}";
    let env = [("AGENTHUB_URL", url.as_str()), ("AGENTHUB_TOKEN", TOKEN)];
    let (ok, out) = run(&script("agenthub-enhance-prompt.sh"), &[prompt], &path, &env);
    let expected = format!("[llama3.2:3b] {prompt}");
    assert!(ok && out.starts_with(&format!("{expected}\n")), "{out}");
    assert!(out.contains("(copied to the clipboard)"), "{out}");
    assert_eq!(std::fs::read_to_string(&clip).unwrap(), expected);
    let got = ollama.received("/api/generate");
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].body["prompt"].clone(), got[0].body["system"].clone()),
        (json!(prompt), json!("RAYCAST SYS"))
    );
    // Without the token: the hub's refusal, said.
    let (ok, out) = run(&script("agenthub-enhance-prompt.sh"), &["x"], &path, &[("AGENTHUB_URL", &url)]);
    assert!(!ok && out.contains("401"), "{out}");
    // Ollama too slow: the prompt as it was, and why.
    *ollama.delay.lock().unwrap() = 3 * SEC;
    let path = bare_path(&dir.path().join("no-clipboard"), &[]);
    let (ok, out) = run(&script("agenthub-enhance-prompt.sh"), &["another prompt"], &path, &env);
    assert!(ok && out.starts_with("another prompt\n") && out.contains("not enhanced: timeout"), "{out}");
    assert!(!out.contains("copied"), "{out}");
}

#[test]
fn status_shows_servers_running_and_failed_and_restart_restarts_one() {
    let hub = Hub::builder()
        .fixtures(&[
            ("fx", json!({"auto_start": true})),
            ("broken", json!({"command": "/nonexistent/server", "auto_start": true})),
        ])
        .env("AGENTHUB_TOKEN", TOKEN)
        .start();
    let dir = TempDir::new("raycast-status");
    let path = bare_path(dir.path(), &[]);
    let url = format!("http://{}", hub.addr);
    let env = [("AGENTHUB_URL", url.as_str()), ("AGENTHUB_TOKEN", TOKEN)];
    let bearer = format!("Bearer {TOKEN}");
    let pid_of = || {
        let r = hub.request("GET", "/servers/fx", &[("Authorization", &bearer)], b"");
        (r.json()["status"] == "RUNNING").then(|| r.json()["pid"].as_i64()).flatten()
    };
    let first = wait_for("fx running", 10 * SEC, pid_of);
    let out = wait_for("the status line", 10 * SEC, || {
        let (ok, out) = run(&script("agenthub-status.sh"), &[], &path, &env);
        (ok && out.contains("1 failed")).then_some(out)
    });
    assert!(out.contains("AgentHub: 1 running, 1 failed · Ollama down"), "{out}");
    let (ok, out) = run(&script("agenthub-status.sh"), &[], &path, &[("AGENTHUB_URL", &url)]);
    assert!(!ok && out.contains("set AGENTHUB_TOKEN"), "{out}");

    let (ok, out) = run(&script("agenthub-restart-server.sh"), &["fx"], &path, &env);
    assert!(ok && out.trim() == "Restarted fx: RUNNING", "{out}");
    let second = pid_of().expect("fx running after its restart");
    assert_ne!(first, second, "a new child");
    let (ok, out) = run(&script("agenthub-restart-server.sh"), &["nope"], &path, &env);
    assert!(!ok && out.contains("Restart failed (404)") && out.contains("no server named"), "{out}");
    let (ok, out) = run(&script("agenthub-status.sh"), &[], &path, &[("AGENTHUB_URL", "http://127.0.0.1:9")]);
    assert!(!ok && out.contains("AgentHub down"), "{out}");
}
