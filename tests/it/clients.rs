//! Client recipes (`src/clients.rs`) end to end: every snippet `agenthub connect` prints parses
//! in its client's format; `--write` merges into existing files of every format keeping what
//! they had; each entry, launched the way its client launches it by the official Python SDK,
//! reaches the hub and the activity feed names the client; `X-Client-Name` and
//! `clientInfo.name` choose the enhancement rule, as a fake Ollama sees it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::fake_ollama::FakeOllama;
use crate::harness::*;

const TOKEN: &str = "recipe-test-token-0123456789";

/// `agenthub connect ARGS` with `HOME` at `home`: status, stdout, stderr.
fn connect(home: &Path, args: &[&str], token: bool) -> (bool, String, String) {
    let mut cmd = hub_command(home);
    cmd.arg("connect").args(args);
    if token {
        cmd.env("AGENTHUB_TOKEN", TOKEN);
    }
    let out = cmd.output().expect("run agenthub connect");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// The file read by the system Python as its client reads it (`tests/python/parse_config.py`).
fn parse(format: &str, path: &Path) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/parse_config.py");
    let out = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(format.to_ascii_lowercase())
        .arg(path)
        .output()
        .expect("python3 (and python3-yaml: make test-deps installs docker-compose, which brings it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} does not parse as {format}: {}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
    serde_json::from_str(&text).unwrap()
}

/// The hub's entry in a parsed client file.
fn entry_of(key: &str, doc: &Value) -> Option<Value> {
    match &doc[key] {
        Value::Array(items) => items.iter().find(|i| i["name"] == "agenthub").cloned(),
        servers => servers.get("agenthub").cloned(),
    }
}

fn recipes() -> impl Iterator<Item = &'static agenthub::Recipe> {
    agenthub::RECIPES.iter()
}

/// A snippet's entry: printed by `connect`, parsed in its format.
fn printed_entry(dir: &TempDir, r: &agenthub::Recipe, url: &str, token: bool) -> (Value, String) {
    let (ok, out, err) = connect(dir.path(), &[r.id, "--url", url], token);
    assert!(ok, "{}: {err}", r.id);
    for text in [&out, &err] {
        assert!(!text.contains(TOKEN), "{}: the token in clear: {text}", r.id);
    }
    let file = dir.write(&format!("{}.snippet", r.id), &out);
    let doc = parse(r.format.as_str(), &file);
    (entry_of(r.key, &doc).unwrap_or_else(|| panic!("{}: no agenthub entry in {out}", r.id)), out)
}

fn headers_of(entry: &Value) -> Value {
    [&entry["headers"], &entry["http_headers"], &entry["requestOptions"]["headers"]]
        .into_iter()
        .find(|h| h.is_object())
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn every_snippet_parses_in_its_format_and_names_the_hub() {
    let dir = TempDir::new("snippets");
    let url = "http://127.0.0.1:4321";
    for token in [false, true] {
        for r in recipes() {
            let (entry, text) = printed_entry(&dir, r, url, token);
            if let Some(cmd) = entry.get("command") {
                // The binary's own absolute path: GUI apps do not see the shell's PATH.
                let own = Path::new(BIN).canonicalize().unwrap();
                assert_eq!(cmd, &json!(own.display().to_string()), "{}: {text}", r.id);
                let args: Vec<&str> =
                    entry["args"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
                assert_eq!(args, ["stdio", "--client", r.id, "--url", url], "{}", r.id);
                continue;
            }
            assert!(!token || r.id != "zed", "zed expands no variables: the shim carries the token");
            let address = entry.get("url").or(entry.get("serverUrl")).unwrap_or(&Value::Null);
            assert_eq!(address, &json!(format!("{url}/mcp")), "{}: {text}", r.id);
            let headers = headers_of(&entry);
            assert_eq!(headers["X-Client-Name"], r.id, "{}: {text}", r.id);
            match (token, headers.get("Authorization"), entry.get("bearer_token_env_var")) {
                (false, None, None) => {}
                (true, Some(auth), None) => {
                    let auth = auth.as_str().unwrap();
                    assert!(
                        auth == "Bearer ${env:AGENTHUB_TOKEN}" || auth == "Bearer ${AGENTHUB_TOKEN}",
                        "{auth}"
                    );
                }
                (true, None, Some(var)) => assert_eq!(var, "AGENTHUB_TOKEN"),
                other => panic!("{}: token {token}: {other:?}\n{text}", r.id),
            }
        }
    }
}

/// One `--write` case: a client's file as it was, and what must still be in it after.
struct Case {
    client: &'static str,
    /// As it was; `None`: absent.
    before: Option<&'static str>,
    mode: u32,
    /// Written through a symlink at the client's path.
    symlink: bool,
    /// Text that must survive (comments, other entries).
    kept: &'static [&'static str],
    /// JSON pointers that must still hold these values in the parsed file.
    values: &'static [(&'static str, &'static str)],
}

#[test]
fn connect_write_keeps_other_entries_comments_mode_and_symlinks() {
    let cases = [
        Case {
            client: "vscode",
            before: Some(
                "// my servers\n{\n  \"servers\": {\n    \"mine\": {\"command\": \"x\"}, // trailing comment\n  },\n  \"inputs\": [],\n}\n",
            ),
            mode: 0o640,
            symlink: false,
            kept: &["// my servers", "// trailing comment"],
            values: &[("/servers/mine/command", "x")],
        },
        Case {
            client: "cursor",
            before: Some("{\"mcpServers\": {\"other\": {\"url\": \"http://x\"}}}"),
            mode: 0o600,
            symlink: true,
            kept: &[],
            values: &[("/mcpServers/other/url", "http://x")],
        },
        Case {
            client: "claude-desktop",
            before: Some(
                "{\n  \"globalShortcut\": \"Ctrl+Space\",\n  \"mcpServers\": {\n    \"agenthub\": {\"command\": \"old\"},\n    \"fs\": {\"command\": \"npx\"}\n  }\n}\n",
            ),
            mode: 0o644,
            symlink: false,
            kept: &[],
            values: &[("/globalShortcut", "Ctrl+Space"), ("/mcpServers/fs/command", "npx")],
        },
        Case {
            client: "zed",
            before: Some(
                "// Zed settings\n{\n  \"theme\": \"One Dark\", /* mine */\n  \"context_servers\": {}\n}\n",
            ),
            mode: 0o644,
            symlink: true,
            kept: &["// Zed settings", "/* mine */"],
            values: &[("/theme", "One Dark")],
        },
        Case {
            client: "codex",
            before: Some("# codex config\nmodel = \"o3\"\n\n[mcp_servers.other]\ncommand = \"x\" # inline\n"),
            mode: 0o600,
            symlink: false,
            kept: &["# codex config", "# inline"],
            values: &[("/model", "o3"), ("/mcp_servers/other/command", "x")],
        },
        Case {
            client: "continue",
            before: Some(
                "name: mine\nversion: 1.0.0\nschema: v1\n# my models\nmodels: []\nmcpServers:\n  - name: other\n    command: x\n",
            ),
            mode: 0o644,
            symlink: false,
            kept: &["# my models"],
            values: &[("/name", "mine"), ("/mcpServers/0/name", "other")],
        },
        Case { client: "windsurf", before: None, mode: 0o600, symlink: false, kept: &[], values: &[] },
    ];
    let home = TempDir::new("connect-write");
    for c in &cases {
        let r = agenthub::find_client(c.client).unwrap();
        let path = agenthub::expand_path(r.linux.unwrap(), &|k| {
            (k == "HOME").then(|| home.path().display().to_string())
        });
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // The real file: at the client's path, or elsewhere behind a symlink there.
        let real = match c.symlink {
            true => {
                let real = home.path().join("dotfiles").join(format!("{}.conf", c.client));
                std::fs::create_dir_all(real.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(&real, &path).unwrap();
                real
            }
            false => path.clone(),
        };
        if let Some(text) = c.before {
            std::fs::write(&real, text).unwrap();
            std::fs::set_permissions(&real, std::fs::Permissions::from_mode(c.mode)).unwrap();
        }
        let (ok, out, err) = connect(home.path(), &[c.client, "--write"], true);
        assert!(ok, "{}: {out}{err}", c.client);
        let after = std::fs::read_to_string(&real).unwrap();
        assert!(!after.contains(TOKEN), "{}: the token in clear", c.client);
        let doc = parse(r.format.as_str(), &real);
        let entry = entry_of(r.key, &doc).unwrap_or_else(|| panic!("{}: no entry in\n{after}", c.client));
        assert!(entry.to_string().contains(c.client), "{}: {entry}", c.client);
        if let Some(cmd) = entry.get("command") {
            // Run from target/: still the absolute path, with a word on `make install`.
            assert_eq!(cmd, &json!(Path::new(BIN).canonicalize().unwrap().display().to_string()));
            assert!(err.contains("build folder") && err.contains("make install"), "{}: {err}", c.client);
        }
        for k in c.kept {
            assert!(after.contains(k), "{}: lost {k:?}:\n{after}", c.client);
        }
        for (pointer, value) in c.values {
            assert_eq!(doc.pointer(pointer), Some(&json!(value)), "{}: {pointer} in\n{after}", c.client);
        }
        let meta = std::fs::metadata(&real).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, c.mode, "{}: the mode", c.client);
        if c.symlink {
            assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink(), "{}", c.client);
        }
        let bak = PathBuf::from(format!("{}.bak", real.display()));
        match c.before {
            Some(text) => assert_eq!(std::fs::read_to_string(&bak).unwrap(), text, "{}: the .bak", c.client),
            None => assert!(!bak.exists() && out.contains("created"), "{}: {out}", c.client),
        }
        let (ok, out, _) = connect(home.path(), &[c.client, "--write"], true);
        assert!(ok && out.contains("unchanged"), "{}: a second write: {out}", c.client);
        assert_eq!(std::fs::read_to_string(&real).unwrap(), after);
    }
    let (ok, list, err) = connect(home.path(), &["--list"], false);
    assert!(ok, "{err}");
    for r in recipes() {
        let line = list.lines().find(|l| l.split_whitespace().any(|w| w == r.id)).unwrap_or("");
        let want = match (cases.iter().any(|c| c.client == r.id), r.linux) {
            (true, _) => "connected",
            (false, None) => "no file",
            (false, Some(_)) => "not found",
        };
        assert!(line.contains(want), "{}: expected {want:?} in {line:?}\n{list}", r.id);
    }
    // A file that is not what its format says is left alone.
    let broken = home.write("broken.json", "{\"mcpServers\": ");
    let (ok, _, err) =
        connect(home.path(), &["cursor", "--write", "--file", broken.to_str().unwrap()], false);
    assert!(!ok && err.contains("not valid JSON"), "{err}");
    assert_eq!(std::fs::read_to_string(&broken).unwrap(), "{\"mcpServers\": ");
}

#[test]
fn connect_write_never_writes_through_a_planted_backup() {
    // A cloned repository ships `.vscode/mcp.json` and, beside it, `.vscode/mcp.json.bak`
    // pointing at a file of the user's.
    let home = TempDir::new("connect-bak");
    let vscode = home.path().join("repo/.vscode");
    std::fs::create_dir_all(&vscode).unwrap();
    let file = vscode.join("mcp.json");
    let before = "{\"servers\": {\"theirs\": {\"command\": \"x\"}}}\n";
    std::fs::write(&file, before).unwrap();
    let victim = home.write(".bashrc", "export PATH=$HOME/bin:$PATH\n");
    let bak = vscode.join("mcp.json.bak");
    std::os::unix::fs::symlink(&victim, &bak).unwrap();
    let write = || connect(home.path(), &["vscode", "--write", "--file", file.to_str().unwrap()], false);

    let (ok, out, err) = write();
    assert!(!ok, "written through a symlinked .bak: {out}{err}");
    assert!(err.contains(&bak.display().to_string()) && err.contains("not a regular file"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "export PATH=$HOME/bin:$PATH\n");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before, "nothing written");
    assert!(std::fs::symlink_metadata(&bak).unwrap().file_type().is_symlink());

    // A directory there is refused the same way.
    std::fs::remove_file(&bak).unwrap();
    std::fs::create_dir(&bak).unwrap();
    let (ok, _, err) = write();
    assert!(!ok && err.contains("not a regular file"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    // A regular `.bak` (an earlier one) is replaced by the file as it was.
    std::fs::remove_dir(&bak).unwrap();
    std::fs::write(&bak, "an older backup").unwrap();
    let (ok, out, err) = write();
    assert!(ok, "{out}{err}");
    assert_eq!(std::fs::read_to_string(&bak).unwrap(), before);
    assert!(std::fs::read_to_string(&file).unwrap().contains("agenthub"));
    let leftovers: Vec<_> = std::fs::read_dir(&vscode)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "export PATH=$HOME/bin:$PATH\n");
}

/// `tests/python/recipe_client.py`: the entry launched as its client launches it.
fn run_entry(entry: &Value, client_info: &str, prompt: Option<&str>) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/recipe_client.py");
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = Command::new(dep("venv/bin/python"));
    cmd.arg(script).arg(entry.to_string()).arg(client_info).args(prompt);
    let out = cmd.env("PATH", path).env("AGENTHUB_TOKEN", TOKEN).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("all ok"), "{entry}: the python SDK failed:\n{text}");
    text
}

fn activity(hub: &Hub) -> Vec<String> {
    let r = hub.request("GET", "/activity", &[("Authorization", &format!("Bearer {TOKEN}"))], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let events = r.json()["events"].as_array().cloned().unwrap_or_default();
    events
        .iter()
        .filter(|e| e["kind"] == "client")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_entry_reaches_the_hub_as_its_client_launches_it() {
    let hub =
        Hub::builder().fixtures(&[("fx", json!({"auto_start": true}))]).env("AGENTHUB_TOKEN", TOKEN).start();
    let dir = TempDir::new("entries");
    let url = format!("http://{}", hub.addr);
    for r in recipes() {
        let (entry, _) = printed_entry(&dir, r, &url, true);
        let out = run_entry(&entry, &format!("probe-{}", r.id), None);
        assert!(out.contains("ok tools/list"), "{}: {out}", r.id);
        let expected = format!("{} connected to /mcp", r.id);
        wait_for(&format!("{expected} in the activity"), 5 * SEC, || {
            activity(&hub).iter().any(|m| m.starts_with(&expected)).then_some(())
        });
    }
}

const RULES: &str = r#"{
  "default": {"model": "llama3.2:3b", "system_prompt": "DEFAULT SYS"},
  "client_names": {"Visual Studio Code": "vscode", "claude-ai": "claude-desktop"},
  "clients": {
    "vscode": {"system_prompt": "VSCODE SYS"},
    "raycast": {"system_prompt": "RAYCAST SYS"},
    "claude-desktop": {"system_prompt": "CLAUDE SYS"}
  }
}"#;

#[test]
fn x_client_name_and_client_info_choose_different_rules() {
    let ollama = FakeOllama::start(&["llama3.2:3b"]);
    let hub = Hub::builder()
        .servers(NO_SERVERS)
        .file("enhancement-rules.json", RULES)
        .env("OLLAMA_URL", &ollama.url)
        .env("AGENTHUB_TOKEN", TOKEN)
        .start();
    let mcp = format!("http://{}/mcp", hub.addr);
    let bearer = format!("Bearer {TOKEN}");
    let cases = [
        // (X-Client-Name, clientInfo.name, the rule, its system prompt)
        (Some("raycast"), "Visual Studio Code", "raycast", "RAYCAST SYS"),
        (None, "Visual Studio Code", "vscode", "VSCODE SYS"),
        (None, "claude-ai", "claude-desktop", "CLAUDE SYS"),
        (None, "someone-else", "default", "DEFAULT SYS"),
    ];
    for (n, (header, info, rule, system)) in cases.iter().enumerate() {
        let mut headers = json!({"Authorization": bearer});
        if let Some(h) = header {
            headers["X-Client-Name"] = json!(h);
        }
        let prompt = format!("prompt number {n}");
        let out = run_entry(&json!({"url": mcp, "headers": headers}), info, Some(&prompt));
        assert!(out.contains(&format!("ok enhance {rule} [llama3.2:3b] {prompt}")), "{info}: {out}");
        let got = ollama.received("/api/generate");
        let last = got.iter().find(|g| g.body["prompt"] == json!(prompt)).expect("Ollama was asked");
        assert_eq!(last.body["system"], *system, "{header:?} {info}");
    }
    let feed = activity(&hub);
    assert!(
        feed.iter()
            .any(|m| m == "raycast connected to /mcp (clientInfo \"Visual Studio Code\"), profile all"),
        "{feed:?}"
    );
    assert!(
        feed.iter().any(|m| m == "vscode connected to /mcp (clientInfo \"Visual Studio Code\"), profile all"),
        "{feed:?}"
    );
}

#[test]
fn get_clients_serves_the_table_for_this_hubs_address_behind_the_token() {
    let hub = Hub::builder().servers(NO_SERVERS).env("AGENTHUB_TOKEN", TOKEN).start();
    assert_eq!(hub.get("/clients").status, 401);
    let r = hub.request("GET", "/clients", &[("Authorization", &format!("Bearer {TOKEN}"))], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["token"], true);
    let list = body["clients"].as_array().unwrap();
    let ids: Vec<&str> = list.iter().filter_map(|c| c["id"].as_str()).collect();
    let expected: Vec<&str> = recipes().map(|r| r.id).collect();
    assert_eq!(ids, expected);
    let vscode = list.iter().find(|c| c["id"] == "vscode").unwrap();
    let snippet = vscode["snippet"].as_str().unwrap();
    assert!(snippet.contains(&format!("http://{}/mcp", hub.addr)), "{snippet}");
    assert!(snippet.contains("${env:AGENTHUB_TOKEN}") && !snippet.contains(TOKEN), "{snippet}");
    assert_eq!(vscode["connect"], "agenthub connect vscode --write");
}
