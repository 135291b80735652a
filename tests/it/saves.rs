//! Saves that lose nothing: a client-format file used as the hub's own keeps its shape, its
//! unknown keys and key order, its symlink and its mode; the first save over the embedded
//! defaults keeps their shape and says so; and JSON key order holds end to end (a tool's
//! schema reaches the client in the order its server wrote it).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Value, json};

use crate::harness::*;

/// JSON as written: objects keep their keys in order whatever serde_json's features are.
#[derive(Debug, PartialEq)]
enum Ordered {
    Object(Vec<(String, Ordered)>),
    Array(Vec<Ordered>),
    Text(String),
    Other,
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ordered, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Ordered>()? {
                    out.push((k, v));
                }
                Ok(Ordered::Object(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = s.next_element::<Ordered>()? {
                    out.push(v);
                }
                Ok(Ordered::Array(out))
            }
            fn visit_str<E>(self, v: &str) -> Result<Ordered, E> {
                Ok(Ordered::Text(v.to_string()))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
        }
        d.deserialize_any(V)
    }
}

impl Ordered {
    fn parse(text: &str) -> Ordered {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    fn get(&self, key: &str) -> &Ordered {
        match self {
            Ordered::Object(kv) => {
                kv.iter().find(|(k, _)| k == key).map(|(_, v)| v).unwrap_or(&Ordered::Other)
            }
            _ => &Ordered::Other,
        }
    }

    fn keys(&self) -> Vec<&str> {
        match self {
            Ordered::Object(kv) => kv.iter().map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    /// The tool of a `tools/list` result named `name`.
    fn tool(&self, name: &str) -> &Ordered {
        match self.get("tools") {
            Ordered::Array(tools) => tools
                .iter()
                .find(|t| t.get("name") == &Ordered::Text(name.to_string()))
                .unwrap_or_else(|| panic!("no tool {name}")),
            _ => panic!("no tools"),
        }
    }
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_save_through_a_private_symlinked_claude_file_keeps_link_mode_shape_and_unknown_keys() {
    let claude = r#"{
  "globalShortcut": "Ctrl+Space",
  "mcpServers": {
    "zeta": {"command": "z-server", "args": ["--a"], "x-vendor": {"keep": [1, 2]}, "disabled": true},
    "alpha": {"env": {"K": "v"}, "command": "a-server"},
    "gone": {"command": "g"}
  },
  "preferences": {"theme": "dark"}
}"#;
    let b = Hub::builder();
    let real = b.dir().join("Claude");
    std::fs::create_dir(&real).unwrap();
    let target = real.join("claude_desktop_config.json");
    std::fs::write(&target, claude).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = b.dir().join("mcp-servers.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let hub = b.start();

    assert_eq!(hub.post_json("/servers", &json!({"name": "added", "command": "n"})).status, 201);
    let shown = hub.server("zeta")["config"].clone();
    let mut edited = shown.clone();
    edited["args"] = json!(["--a", "--b"]);
    let r = hub.request("PUT", "/servers/zeta", &[JSON], edited.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(hub.request("DELETE", "/servers/gone", &[], b"").status, 200);

    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced");
    assert_eq!(mode(&target), 0o600, "the mode");
    let text = std::fs::read_to_string(&target).unwrap();
    let saved = Ordered::parse(&text);
    assert_eq!(saved.keys(), ["globalShortcut", "mcpServers", "preferences"], "{text}");
    assert_eq!(saved.get("mcpServers").keys(), ["zeta", "alpha", "added"], "{text}");
    assert_eq!(
        saved.get("mcpServers").get("zeta").keys(),
        ["command", "args", "x-vendor", "disabled"],
        "{text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["mcpServers"]["zeta"],
        json!({"command": "z-server", "args": ["--a", "--b"], "x-vendor": {"keep": [1, 2]}, "disabled": true})
    );
    assert_eq!(
        v["mcpServers"]["alpha"],
        json!({"env": {"K": "v"}, "command": "a-server"}),
        "unchanged as read"
    );
    assert_eq!(v["mcpServers"]["added"], json!({"command": "n"}));
    assert_eq!(v["preferences"], json!({"theme": "dark"}));
    assert!(hub.log().contains(&format!("to {}", link.display())), "the save is logged with its path");
}

#[test]
fn first_save_on_embedded_defaults_keeps_their_shape_and_says_so() {
    let hub = Hub::builder().unnamed().start();
    assert_eq!(hub.post_json("/servers", &json!({"name": "mine", "command": "x"})).status, 201);
    let file = hub.dir.path().join("xdg-config/agenthub/mcp-servers.json");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let embedded: Value =
        serde_json::from_str(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/mcp-servers.json")))
            .unwrap();
    for (name, server) in embedded["servers"].as_object().unwrap() {
        assert_eq!(&saved["servers"][name], server, "{name} written as shipped");
    }
    assert_eq!(saved["servers"]["mine"], json!({"command": "x"}));
    wait_for("the first save in the log", 5 * SEC, || {
        hub.log().contains("first save: the embedded example servers").then_some(())
    });
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
}

/// A `tools/list` answer straight from a child over stdio: the raw line.
fn tools_list_from(program: &std::path::Path) -> String {
    let mut child = Command::new(program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut send = |v: Value| writeln!(stdin, "{v}").unwrap();
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize_params(MCP_VERSION, json!({}))}),
    );
    let answer = |id: u64| loop {
        let line = rx.recv_timeout(10 * SEC).expect("an answer from the server");
        if serde_json::from_str::<Value>(&line).is_ok_and(|v| v["id"] == id) {
            break line;
        }
    };
    answer(1);
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}));
    let line = answer(2);
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    line
}

#[test]
fn tool_schemas_reach_clients_in_the_childs_key_order() {
    let bin = npm_bin("mcp-server-sequential-thinking");
    let direct = tools_list_from(&bin);
    let direct = Ordered::parse(&direct);
    let schema = |list: &Ordered| {
        list.tool("sequentialthinking").get("inputSchema").get("properties").keys().join(",")
    };
    let child_order = schema(direct.get("result"));
    let mut sorted: Vec<&str> = child_order.split(',').collect();
    sorted.sort();
    assert_ne!(
        child_order,
        sorted.join(","),
        "the child's order is not alphabetical: the test means something"
    );

    let hub = Hub::builder().servers(&json!({"servers": {"think": {"command": bin}}}).to_string()).start();
    assert_eq!(hub.post("/servers/think/start").json()["status"], "RUNNING");
    let r = hub.call("think", "tools/list", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(schema(&Ordered::parse(&r.text())), child_order, "REST");
    let session = McpSession::connect(&hub, "/mcp/think");
    let r = session.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}));
    let text = r.text();
    let body = if r.header("content-type") == Some("text/event-stream") {
        text.lines().find_map(sse_data).unwrap_or("").to_string()
    } else {
        text
    };
    assert_eq!(schema(Ordered::parse(&body).get("result")), child_order, "MCP");
}

#[test]
fn temp_files_of_unfinished_saves_are_removed_at_start() {
    let b = Hub::builder().fixtures(&[("a", json!({}))]);
    // A hub SIGKILLed mid-save left its temp file; pid 999999999 runs nowhere.
    let stale = b.dir().join(".mcp-servers.json.tmp-999999999");
    std::fs::write(&stale, "{\"servers\": {\"half\": ").unwrap();
    // Not the hub's stale saves: a process still running (this test) may be saving, and other
    // names are not the hub's.
    let live = b.dir().join(format!(".mcp-servers.json.tmp-{}", std::process::id()));
    let others =
        [".mcp-servers.json.tmp-12x", ".mcp-servers.json.tmp-", ".other.json.tmp-999999999", "notes.tmp-1"];
    for name in others.iter().map(|n| b.dir().join(n)).chain([live.clone()]) {
        std::fs::write(&name, "keep").unwrap();
    }
    let hub = b.start();
    wait_for("the stale temp file to be removed", 10 * SEC, || (!stale.exists()).then_some(()));
    wait_for("the removal in the log", 10 * SEC, || {
        hub.log().contains("tmp-999999999, left by").then_some(())
    });
    for name in others.iter().map(|n| hub.dir.path().join(n)).chain([live]) {
        assert_eq!(std::fs::read_to_string(&name).ok().as_deref(), Some("keep"), "{}", name.display());
    }
    assert_eq!(hub.server("a")["name"], "a");
}
