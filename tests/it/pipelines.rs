//! Pipelines with the real servers they chain (server-filesystem, sequential-thinking and
//! desktop-commander from npm, telemetry and remote feature flags off) and the fake Ollama:
//! the documentation pipeline on a copy of this repository into a temp vault, with and without
//! the model; failures, bad inputs, async runs, and the same pipeline over `/mcp` with the
//! Python SDK; desktop-commander's configuration put back after every run, vaults kept under
//! the vault root; runs past `AGENTHUB_MAX_PIPELINE_RUNS` refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::fake_ollama::FakeOllama;
use crate::harness::*;

/// A repository (a copy of this project's tree), a vault, and the hub running the servers the
/// documentation pipeline uses, stopped until the pipeline needs them. The vault root is the
/// temporary folder, and desktop-commander's home (its configuration) is in it too.
struct World {
    root: TempDir,
    repo: PathBuf,
    vault: PathBuf,
    /// desktop-commander's `config.json`.
    dc_config: PathBuf,
    hub: Hub,
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().map_while(Result::ok) {
        let name = entry.file_name();
        if [".git", "target", ".deps", "node_modules"].iter().any(|n| name == *n) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

fn world(ollama_url: &str) -> World {
    let root = TempDir::new("pipelines");
    let base = root.path().canonicalize().unwrap();
    let (repo, vault, home) = (base.join("repo"), base.join("vault"), base.join("home"));
    let project = Path::new(env!("CARGO_MANIFEST_DIR"));
    for part in ["src", "configs", "assets"] {
        copy_tree(&project.join(part), &repo.join(part));
    }
    for file in ["Cargo.toml", "Makefile", "README.md", "ARCHITECTURE.md", "Dockerfile"] {
        std::fs::copy(project.join(file), repo.join(file)).unwrap();
    }
    std::fs::create_dir_all(&vault).unwrap();
    std::fs::create_dir_all(home.join(".claude-server-commander")).unwrap();
    let dc = json!({"telemetryEnabled": false, "allowedDirectories": [base.to_str().unwrap()]});
    std::fs::write(home.join(".claude-server-commander/config.json"), dc.to_string()).unwrap();
    let root_str = base.to_str().unwrap().to_string();
    let servers = json!({"servers": {
        "filesystem": {"command": npm_bin("mcp-server-filesystem"), "args": [root_str],
                       "roots": [format!("file://{root_str}")]},
        "sequential-thinking": {"command": npm_bin("mcp-server-sequential-thinking"),
                                "env": {"DISABLE_THOUGHT_LOGGING": "true"}},
        "desktop-commander": {"command": npm_bin("desktop-commander"),
                              "env": {"HOME": home.to_str().unwrap(), "DC_FLAG_URL": "http://127.0.0.1:9/flags.json"}},
    }});
    let hub = Hub::builder()
        .servers(&servers.to_string())
        .env("OLLAMA_URL", ollama_url)
        .env("AGENTHUB_VAULT_ROOT", &root_str)
        .start();
    let dc_config = home.join(".claude-server-commander/config.json");
    World { root, repo, vault, dc_config, hub }
}

impl World {
    /// desktop-commander's `allowedDirectories` as its file says.
    fn allowed_directories(&self) -> Value {
        let text = std::fs::read_to_string(&self.dc_config).expect("desktop-commander's config");
        serde_json::from_str::<Value>(&text).expect("JSON")["allowedDirectories"].clone()
    }

    fn inputs(&self, project: &str) -> Value {
        json!({"repo_path": self.repo, "project_name": project, "vault_path": self.vault})
    }

    /// A run, waited for through its `Location` (a synchronous POST would wait as long).
    fn run(&self, inputs: &Value) -> Value {
        let headers = [("Content-Type", "application/json"), ("Prefer", "respond-async")];
        let r = self.hub.request("POST", "/pipelines/documentation", &headers, inputs.to_string().as_bytes());
        assert_eq!(r.status, 202, "{}", r.text());
        let location = r.header("location").expect("a Location").to_string();
        wait_for("the run to end", 120 * SEC, || {
            let v = self.hub.get(&location).json();
            (v["status"] != "running").then_some(v)
        })
    }
}

/// The report's steps as `id: status`.
fn statuses(report: &Value) -> Vec<String> {
    let steps = report["steps"].as_array().unwrap_or_else(|| panic!("{report}"));
    steps
        .iter()
        .map(|s| format!("{}: {}", s["id"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect()
}

/// The note's front matter as key → value (one `key: value` per line).
fn front_matter(note: &str) -> Vec<(String, String)> {
    let body = note.strip_prefix("---\n").unwrap_or_else(|| panic!("no front matter:\n{note}"));
    let end = body.find("\n---\n").expect("the front matter ends");
    body[..end]
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap_or_else(|| panic!("not key: value: {l}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn the_documentation_pipeline_writes_a_note_from_a_real_repository() {
    let ollama = FakeOllama::start(&["llama3.2:3b"]);
    let w = world(&ollama.url);
    let report = w.run(&w.inputs("AgentHub"));
    assert_eq!(report["status"], "ok", "{report:#}");
    for s in statuses(&report) {
        assert!(s.ends_with(": ok") || s == "package: skipped", "{s}: {report:#}");
    }
    let note_path = w.vault.join("AgentHub/AgentHub.md");
    assert_eq!(report["result"]["note"], note_path.to_str().unwrap());
    assert_eq!(report["result"]["model_used"], true);
    let note = std::fs::read_to_string(&note_path).expect("the note is written");
    let front = front_matter(&note);
    let keys: Vec<&str> = front.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["title", "tags", "source", "generated"], "{note}");
    assert_eq!(serde_json::from_str::<String>(&front[0].1).unwrap(), "AgentHub");
    assert_eq!(serde_json::from_str::<String>(&front[2].1).unwrap(), w.repo.to_str().unwrap());
    assert!(front[3].1.len() == 10 && front[3].1.as_bytes()[4] == b'-', "a date: {}", front[3].1);
    // The facts are the repository's, quoted; the narrative is the model's.
    assert!(note.contains("\n- src/\n"), "the directory map names src/:\n{note}");
    assert!(note.contains("make run") && note.contains("make test"), "{note}");
    assert!(note.contains("[llama3.2:3b]"), "the model's draft is in the note:\n{note}");
    // Each planned section was recorded as a thought, in order.
    let thoughts =
        report["steps"].as_array().unwrap().iter().find(|s| s["id"] == "thoughts").unwrap().clone();
    assert_eq!(thoughts["items"], 2, "{thoughts}");
    let generations = ollama.received("/api/generate");
    assert!(generations.iter().any(|g| g.body["format"]["properties"]["sections"].is_object()));
    let events = w.hub.get("/activity?since=0").json();
    let steps_seen = events["events"].as_array().unwrap().iter().filter(|e| e["kind"] == "pipeline").count();
    assert!(steps_seen >= 14, "each step is an activity event: {events}");

    // Again, after the README changed: the note is replaced, not duplicated.
    let readme = w.repo.join("README.md");
    let text = std::fs::read_to_string(&readme).unwrap();
    std::fs::write(&readme, format!("{text}\n```sh\nmake pipeline-marker\n```\n")).unwrap();
    assert_eq!(w.run(&w.inputs("AgentHub"))["status"], "ok");
    let again = std::fs::read_to_string(&note_path).unwrap();
    assert!(again.contains("make pipeline-marker"), "{again}");
    assert_eq!(again.matches("\ntitle: ").count(), 1, "{again}");
    let files: Vec<_> = std::fs::read_dir(w.vault.join("AgentHub")).unwrap().collect();
    assert_eq!(files.len(), 1, "{files:?}");
}

#[test]
fn without_the_model_the_note_holds_the_facts_and_says_so() {
    // Nothing listens where Ollama should be. A synchronous POST: the report when the run ends.
    let w = world(&format!("http://127.0.0.1:{}", free_port()));
    let r = w.hub.post_json("/pipelines/documentation", &w.inputs("Offline"));
    assert_eq!(r.status, 200, "{}", r.text());
    let report = r.json();
    assert_eq!(report["status"], "ok", "{report:#}");
    let steps = statuses(&report);
    assert!(
        steps.contains(&"plan: failed".to_string()) && steps.contains(&"draft: skipped".to_string()),
        "{steps:?}"
    );
    let plan = report["steps"].as_array().unwrap().iter().find(|s| s["id"] == "plan").unwrap().clone();
    assert!(plan["error"].as_str().unwrap_or_default().contains("ollama_unreachable"), "{plan}");
    assert_eq!(report["result"]["model_used"], false);
    let note = std::fs::read_to_string(w.vault.join("Offline/Offline.md")).unwrap();
    assert!(note.contains("Written without the local model"), "{note}");
    assert!(note.contains("\n- src/\n") && note.contains("make test"), "{note}");
    drop(w.root);
}

#[test]
fn pipeline_runs_report_failures_bad_inputs_async_and_over_mcp() {
    let ollama = FakeOllama::start(&["llama3.2:3b"]);
    let w = world(&ollama.url);

    let listed = w.hub.get("/pipelines").json();
    let names: Vec<&str> =
        listed["pipelines"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["documentation", "file-summary"]);
    assert_eq!(
        listed["pipelines"][0]["inputs"]["required"],
        json!(["repo_path", "project_name", "vault_path"])
    );

    // Bad inputs are the only 4xx, and they name the field.
    let check = |body: Value, status: u16, message: &str| {
        let r = w.hub.post_json("/pipelines/documentation", &body);
        assert_eq!(r.status, status, "{}", r.text());
        assert!(r.json()["error"]["message"].as_str().unwrap_or_default().contains(message), "{}", r.text());
    };
    check(json!({"repo_path": "/r", "project_name": "p"}), 400, "inputs.vault_path: required");
    check(
        json!({"repo_path": 1, "project_name": "p", "vault_path": "/v"}),
        400,
        "inputs.repo_path: expected a string",
    );
    check(
        json!({"repo_path": "/r", "project_name": "p", "vault_path": "/v", "colour": 1}),
        400,
        "inputs.colour: unknown input",
    );
    let r = w.hub.post_json("/pipelines/nope", &json!({}));
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("documentation"), "names the known pipelines: {}", r.text());

    // A vault that cannot be written: the run stops at that step, earlier results kept.
    let blocker = w.root.path().canonicalize().unwrap().join("not-a-dir");
    std::fs::write(&blocker, "a file").unwrap();
    let mut inputs = w.inputs("Blocked");
    inputs["vault_path"] = json!(blocker.join("vault"));
    let report = w.run(&inputs);
    assert_eq!(report["status"], "failed", "{report:#}");
    let steps = statuses(&report);
    let failed: Vec<&String> = steps.iter().filter(|s| s.ends_with(": failed")).collect();
    assert_eq!(failed.len(), 1, "{steps:?}");
    let at = failed[0].split(':').next().unwrap();
    assert!(["confine", "folder"].contains(&at), "{steps:?}");
    assert!(
        steps.contains(&"note: ok".to_string()) && !steps.iter().any(|s| s.starts_with("write:")),
        "{steps:?}"
    );
    assert_eq!(report["result"], Value::Null);

    // Async: 202 with a Location that reports until the run is done.
    let r = w.hub.request(
        "POST",
        "/pipelines/documentation",
        &[("Content-Type", "application/json"), ("Prefer", "respond-async")],
        w.inputs("Later").to_string().as_bytes(),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let location = r.header("location").expect("a Location").to_string();
    assert_eq!(r.json()["status"], "running");
    let done = wait_for("the async run to end", 120 * SEC, || {
        let v = w.hub.get(&location).json();
        (v["status"] != "running").then_some(v)
    });
    assert_eq!(done["status"], "ok", "{done:#}");
    let runs = w.hub.get("/pipelines/runs").json();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2, "{runs}");
    assert_eq!(w.hub.get("/pipelines/runs/run-999").status, 404);

    // The same pipeline as an MCP tool, with progress per step, through the Python SDK.
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/pipeline.py");
    let out = Command::new(dep("venv/bin/python"))
        .arg(script)
        .arg(format!("http://{}/mcp", w.hub.addr))
        .arg("agenthub__pipeline_documentation")
        .arg(w.inputs("OverMcp").to_string())
        .output()
        .expect("run the Python SDK");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(seen["properties"], json!(["goal", "project_name", "repo_path", "vault_path"]), "{seen}");
    assert_eq!(seen["is_error"], false, "{seen}");
    assert_eq!(seen["report"]["status"], "ok", "{seen}");
    let progress = seen["progress"].as_array().unwrap();
    assert_eq!(progress.len(), 17, "one per step: {seen}");
    assert_eq!(progress[16][0], 17.0);
    assert!(progress[0][2].as_str().unwrap_or_default().starts_with("step top ok"), "{seen}");
    assert!(w.vault.join("OverMcp/OverMcp.md").exists());
}

#[test]
fn desktop_commander_is_given_back_its_allowed_directories_and_vaults_stay_under_the_root() {
    // No model: the run is quick, and what matters is what it does to desktop-commander.
    let w = world(&format!("http://127.0.0.1:{}", free_port()));
    let base = w.root.path().canonicalize().unwrap();
    let before = w.allowed_directories();
    assert_eq!(before, json!([base.to_str().unwrap()]));

    let report = w.run(&w.inputs("Kept"));
    assert_eq!(report["status"], "ok", "{report:#}");
    assert_eq!(w.allowed_directories(), before, "put back after a run that succeeded");
    let steps = statuses(&report);
    assert!(steps.contains(&"confine: ok".into()) && steps.contains(&"restore: ok".into()), "{steps:?}");
    assert!(w.vault.join("Kept/Kept.md").exists());

    // A run that fails after the confinement (the vault's folder cannot be made) puts it back too.
    let blocker = base.join("not-a-dir");
    std::fs::write(&blocker, "a file").unwrap();
    let mut inputs = w.inputs("Blocked");
    inputs["vault_path"] = json!(blocker.join("vault"));
    let report = w.run(&inputs);
    assert_eq!(report["status"], "failed", "{report:#}");
    assert_eq!(w.allowed_directories(), before, "put back after a run that failed");
    let steps = statuses(&report);
    assert!(
        steps.contains(&"confine: ok".into())
            && steps.contains(&"folder: failed".into())
            && steps.contains(&"restore: ok".into())
            && !steps.iter().any(|s| s.starts_with("write:")),
        "{steps:?}"
    );

    // A vault outside the root, through a symlink or `..`, is refused before anything runs.
    let elsewhere = TempDir::new("elsewhere");
    let outside = elsewhere.path().canonicalize().unwrap();
    std::os::unix::fs::symlink(&outside, base.join("link")).unwrap();
    let runs_before = w.hub.get("/pipelines/runs").json()["runs"].as_array().unwrap().len();
    for vault in [outside.clone(), base.join("link"), base.join("vault/../../escape")] {
        let mut inputs = w.inputs("Outside");
        inputs["vault_path"] = json!(vault);
        let r = w.hub.post_json("/pipelines/documentation", &inputs);
        let message = r.expect_error(400, "bad_request");
        assert!(message.starts_with("inputs.vault_path: "), "{vault:?}: {message}");
        assert!(
            message.contains("outside the vault root") || message.contains("\"..\" is not allowed"),
            "{vault:?}: {message}"
        );
    }
    let runs_after = w.hub.get("/pipelines/runs").json()["runs"].as_array().unwrap().len();
    assert_eq!(runs_after, runs_before, "no run started");
    assert!(!outside.join("Outside").exists());
    assert_eq!(w.allowed_directories(), before);
}

#[test]
fn a_pipelines_file_is_checked_before_anything_runs() {
    let check = |pipelines: &str, code: i32, want: &str| {
        let dir = TempDir::new("pipelines-check");
        dir.write("mcp-servers.json", &fixture_servers(&[("fx", json!({}))]));
        dir.write("pipelines.json", pipelines);
        let out = hub_command(dir.path())
            .args(["check-config", "--config-dir", dir.path().to_str().unwrap()])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run check-config");
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{text}");
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    };
    let one = |steps: &str| format!("{{\"pipelines\": {{\"p\": {{\n  \"steps\": [\n{steps}\n  ]\n}}}}}}");
    check(
        &one(r#"    {"id": "a", "tool": "fx/echo", "args": {"message": "hi"}}"#),
        0,
        "p                        a",
    );
    check(
        &one(r#"    {"id": "a", "tool": "nosuch/echo"}"#),
        1,
        "error: uses server \"nosuch\", which is not configured",
    );
    check(
        &one(
            "    {\"id\": \"a\", \"template\": \"${steps.b.text}\"},\n    {\"id\": \"b\", \"template\": \"x\"}",
        ),
        1,
        "pipelines.json:3: pipelines.p.steps[0] (step \"a\"): step \"b\" comes later",
    );
    check(&one(r#"    {"id": "a", "run": "rm -rf /"}"#), 1, "steps[0].run (step \"a\"): unknown field");
}

/// A pipeline of one `llm` step: a run lasts as long as the fake Ollama holds its generation.
const THINK: &str = r#"{"pipelines": {"think": {
  "inputs": {"topic": {"type": "string"}}, "required": ["topic"],
  "steps": [{"id": "answer", "llm": {"prompt": "${inputs.topic}"}}],
  "result": {"text": "${steps.answer.text}"}}}}"#;

/// `POST /pipelines/think`, asynchronous or not.
fn think(hub: &Hub, topic: &str, asynchronous: bool) -> Resp {
    let mut headers = vec![JSON];
    if asynchronous {
        headers.push(("Prefer", "respond-async"));
    }
    hub.request("POST", "/pipelines/think", &headers, json!({"topic": topic}).to_string().as_bytes())
}

#[test]
fn runs_past_the_cap_are_refused_with_429_until_one_ends() {
    let ollama = FakeOllama::start(&["llama3.2:3b"]);
    ollama.hold();
    let hub = Hub::builder()
        .servers(NO_SERVERS)
        .file("pipelines.json", THINK)
        .env("OLLAMA_URL", &ollama.url)
        .env("AGENTHUB_MAX_PIPELINE_RUNS", "3")
        .start();
    let locations: Vec<String> = (0..3)
        .map(|i| {
            let r = think(&hub, &format!("topic {i}"), true);
            assert_eq!(r.status, 202, "{}", r.text());
            r.header("location").expect("a Location").to_string()
        })
        .collect();
    wait_for("the three runs to ask Ollama", 20 * SEC, || {
        (ollama.received("/api/generate").len() == 3).then_some(())
    });
    // Three under way: one more, async or not, is refused and names the cap.
    for asynchronous in [true, false] {
        let r = think(&hub, "one too many", asynchronous);
        let message = r.expect_error(429, "too_many_requests");
        assert!(message.contains("AGENTHUB_MAX_PIPELINE_RUNS=3"), "{message}");
        assert_eq!(r.header("retry-after"), Some("5"));
    }
    assert_eq!(hub.get("/pipelines/runs").json()["runs"].as_array().unwrap().len(), 3);
    assert_eq!(ollama.received("/api/generate").len(), 3, "a refused run asks nothing");

    ollama.release();
    for location in &locations {
        let done = wait_for("a held run to end", 20 * SEC, || {
            let v = hub.get(location).json();
            (v["status"] != "running").then_some(v)
        });
        assert_eq!(done["status"], "ok", "{done:#}");
    }
    let r = think(&hub, "once they ended", false);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"]["text"], "[llama3.2:3b] once they ended");
}

#[test]
fn an_exclusive_pipeline_runs_one_run_at_a_time() {
    let ollama = FakeOllama::start(&["llama3.2:3b"]);
    ollama.hold();
    let hub = Hub::builder()
        .servers(NO_SERVERS)
        .file("pipelines.json", &THINK.replace(r#""think": {"#, r#""think": {"exclusive": true,"#))
        .env("OLLAMA_URL", &ollama.url)
        .start();
    let start = |topic: &str| {
        let r = think(&hub, topic, true);
        assert_eq!(r.status, 202, "{}", r.text());
        r.header("location").expect("a Location").to_string()
    };
    let (first, second) = (start("first"), start("second"));
    wait_for("the first run to ask Ollama", 20 * SEC, || {
        (ollama.received("/api/generate").len() == 1).then_some(())
    });
    // The second waits for the first, and says so in the feed.
    wait_for("the second run to say it waits", 20 * SEC, || {
        let feed = hub.get("/activity?since=0").text();
        feed.contains("waiting for the run before it to end").then_some(())
    });
    let generations = ollama.received("/api/generate");
    assert_eq!(generations.len(), 1, "one run at a time: {generations:?}");
    assert_eq!(hub.get(&second).json()["steps_done"], 0);
    ollama.release();
    for location in [first, second] {
        let done = wait_for("a run to end", 20 * SEC, || {
            let v = hub.get(&location).json();
            (v["status"] != "running").then_some(v)
        });
        assert_eq!(done["status"], "ok", "{done:#}");
    }
    assert_eq!(ollama.received("/api/generate").len(), 2);
}

#[test]
fn a_result_too_large_to_keep_fails_the_run_with_a_note() {
    let echo = r#"{"pipelines": {"echo": {"inputs": {"text": {"type": "string"}},
      "steps": [{"id": "t", "template": "${inputs.text}${inputs.text}"}],
      "result": {"text": "${steps.t.text}"}}}}"#;
    let hub = Hub::builder().servers(NO_SERVERS).file("pipelines.json", echo).start();
    let small = hub.post_json("/pipelines/echo", &json!({"text": "ab"})).json();
    assert_eq!((small["status"].clone(), small["result"].clone()), (json!("ok"), json!({"text": "abab"})));
    // 2 × 600 KiB: past the MiB a run keeps.
    let big = "x".repeat(600 * 1024);
    let r = hub.post_json("/pipelines/echo", &json!({"text": big}));
    assert_eq!(r.status, 200);
    assert!(r.body.len() < 64 * 1024, "the report is small: {} bytes", r.body.len());
    let report = r.json();
    assert_eq!(report["status"], "failed", "{report:#}");
    let error = report["result"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("1228811 bytes, over the 1048576 a run keeps"), "{error}");
    let kept = hub.get(&format!("/pipelines/runs/{}", report["run_id"].as_str().unwrap())).json();
    assert_eq!(kept["result"], report["result"]);
}
