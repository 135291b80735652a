//! Tool search on `/mcp`: two tools in place of every server's, finding and calling them; the
//! ranking reordered by an Ollama embedding model when one is configured.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fake_ollama::FakeOllama;
use crate::harness::*;

fn names(list: &Value) -> Vec<String> {
    list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

fn hub(search: &str) -> Hub {
    let hub = Hub::builder()
        .fixtures(&[("files", json!({"auto_start": true, "description": "A test server"}))])
        .env("AGENTHUB_TOOL_SEARCH", search)
        .start();
    hub.wait_status("files", "RUNNING", 10 * SEC);
    hub
}

#[test]
fn with_search_on_two_tools_find_and_call_every_servers_tools() {
    let hub = hub("on");
    let c = McpSession::connect(&hub, "/mcp");
    let list = c.call(json!(1), "tools/list", json!({}));
    let listed = names(&list);
    assert!(listed.contains(&"agenthub__find_tools".to_string()), "{listed:?}");
    assert!(listed.contains(&"agenthub__call_tool".to_string()), "{listed:?}");
    assert!(!listed.iter().any(|n| n.starts_with("files__")), "{listed:?}");
    let find =
        list["result"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == "agenthub__find_tools");
    let described = find.unwrap()["description"].as_str().unwrap().to_string();
    assert!(described.contains("files (A test server)"), "{described}");

    // Found: the tool with its schema and server, as structured content and as text.
    let r = c.call(
        json!(2),
        "tools/call",
        json!({"name": "agenthub__find_tools", "arguments": {"query": "echo back some text", "limit": 3}}),
    );
    let found = r["result"]["structuredContent"]["tools"].as_array().unwrap_or_else(|| panic!("{r}")).clone();
    assert!(!found.is_empty() && found.len() <= 3, "{r}");
    assert_eq!(
        (found[0]["name"].clone(), found[0]["server"].clone(), found[0]["inputSchema"]["type"].clone()),
        (json!("files__echo"), json!("files"), json!("object")),
        "{r}"
    );
    assert!(r["result"]["content"][0]["text"].as_str().unwrap().contains("files__echo"), "{r}");

    // Called through the call tool, answered as the server answers.
    let r = c.call(json!(3), "tools/call", json!({"name": "agenthub__call_tool", "arguments": {"name": "files__echo", "arguments": {"text": "hi there"}}}));
    assert_eq!(r["result"]["content"][0]["text"], "hi there", "{r}");

    // What is wrong is said.
    for (args, says) in [
        (json!({"name": "agenthub__find_tools", "arguments": {}}), "\"query\""),
        (json!({"name": "agenthub__find_tools", "arguments": {"query": "x", "limit": 50}}), "\"limit\""),
        (json!({"name": "agenthub__call_tool", "arguments": {}}), "\"name\""),
        (json!({"name": "agenthub__call_tool", "arguments": {"name": "files__nope"}}), "files__nope"),
    ] {
        let r = c.call(json!(4), "tools/call", args.clone());
        assert_eq!(r["error"]["code"], -32602, "{args}: {r}");
        assert!(r["error"]["message"].as_str().unwrap().contains(says), "{args}: {r}");
    }
}

#[test]
fn auto_searches_only_past_its_cap_and_off_lists_everything() {
    for (setting, searching) in [("auto:5", true), ("auto:50", false), ("off", false)] {
        let hub = hub(setting);
        let c = McpSession::connect(&hub, "/mcp");
        let listed = names(&c.call(json!(1), "tools/list", json!({})));
        assert_eq!(listed.contains(&"agenthub__find_tools".to_string()), searching, "{setting}: {listed:?}");
        assert_eq!(listed.iter().any(|n| n == "files__echo"), !searching, "{setting}: {listed:?}");
    }
    // A setting that is none of them stops the hub at start, naming it.
    let out = hub_command(TempDir::new("bad-search").path())
        .args(["check-config"])
        .env("AGENTHUB_TOOL_SEARCH", "sometimes")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("AGENTHUB_TOOL_SEARCH"), "{out:?}");
}

#[test]
fn each_profile_chooses_its_tool_search_and_auto_follows_the_clients_cap() {
    let profiles = json!({"profiles": {
        "wide": {"servers": {"big": {}}, "tool_search": "auto"},
        "narrow": {"servers": {"files": {"tools": ["echo"]}}, "tool_search": "on"}},
        "clients": {"vscode": "wide", "cursor": "wide", "raycast": "narrow"}});
    let hub = Hub::builder()
        .fixtures(&[
            ("files", json!({"auto_start": true})),
            ("big", json!({"auto_start": true, "args": ["--many-tools", "50"]})),
        ])
        .file("profiles.json", &profiles.to_string())
        .start();
    hub.wait_status("files", "RUNNING", 10 * SEC);
    hub.wait_status("big", "RUNNING", 10 * SEC);
    let session = |client_info: &str| {
        let mut body = initialize_body(MCP_VERSION);
        body["params"]["clientInfo"]["name"] = json!(client_info);
        let (c, _) = McpSession::initialize(&hub.addr, "/mcp", &body);
        c.initialized();
        c
    };
    // 60 tools: past Cursor's cap (40), within VS Code's (128).
    let cursor = names(&session("cursor-vscode").call(json!(1), "tools/list", json!({})));
    assert_eq!(cursor, ["agenthub__find_tools", "agenthub__call_tool"], "{cursor:?}");
    let vscode = names(&session("Visual Studio Code").call(json!(1), "tools/list", json!({})));
    assert_eq!(vscode.len(), 60, "{vscode:?}");
    assert!(vscode.iter().all(|n| n.starts_with("big__")), "{vscode:?}");

    // A search finds only what the profile shows, and says which servers it covers.
    let raycast = session("Raycast");
    let list = raycast.call(json!(1), "tools/list", json!({}));
    let find =
        list["result"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == "agenthub__find_tools");
    let described = find.unwrap()["description"].as_str().unwrap().to_string();
    assert!(described.contains("among 1 tool(s)") && !described.contains("big"), "{described}");
    let found = raycast.call(
        json!(2),
        "tools/call",
        json!({"name": "agenthub__find_tools", "arguments": {"query": "many tool", "limit": 20}}),
    );
    let found: Vec<&str> = found["result"]["structuredContent"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(found.iter().all(|n| *n == "files__echo"), "{found:?}");
    let call =
        json!({"name": "agenthub__call_tool", "arguments": {"name": "big__many_0001", "arguments": {}}});
    let r = raycast.call(json!(3), "tools/call", call);
    assert!(r["error"]["message"].as_str().unwrap().contains("unknown tool"), "{r}");
}

/// A request whose words point at the tools that "answer" (`hang` first, its description the
/// shortest), and whose sense, for the fake's embedding model, at the one that waits (`sleep`).
const WAIT: &str = "wait before you answer";
const LEXICAL_FIRST: &str = "files__hang";
const EMBEDDING_FIRST: &str = "files__sleep";
const EMBED_MODEL: &str = "embed-test";

/// A searching hub over the fixture (and 40 tools of a large catalog), with these settings.
fn searching_hub(env: &[(&str, &str)]) -> Hub {
    let fixture = json!({"auto_start": true, "args": ["--many-tools", "40"]});
    let mut b = Hub::builder().fixtures(&[("files", fixture)]).env("AGENTHUB_TOOL_SEARCH", "on");
    for (k, v) in env {
        b = b.env(k, v);
    }
    let hub = b.start();
    hub.wait_status("files", "RUNNING", 10 * SEC);
    hub
}

/// The names `agenthub__find_tools` gives for `query`, best first, and how long it took.
fn find(c: &McpSession, query: &str) -> (Vec<String>, Duration) {
    let started = Instant::now();
    let r = c.call(
        json!(1),
        "tools/call",
        json!({"name": "agenthub__find_tools", "arguments": {"query": query}}),
    );
    let took = started.elapsed();
    let tools = r["result"]["structuredContent"]["tools"].as_array().unwrap_or_else(|| panic!("{r}")).clone();
    (tools.iter().map(|t| t["name"].as_str().unwrap_or("").to_string()).collect(), took)
}

#[test]
fn an_embedding_model_reranks_and_embeds_each_tool_once() {
    let ollama = FakeOllama::start(&[EMBED_MODEL]);
    let hub = searching_hub(&[("OLLAMA_URL", &ollama.url), ("AGENTHUB_EMBED_MODEL", EMBED_MODEL)]);
    let c = McpSession::connect(&hub, "/mcp");

    // Reranked: the tool the embeddings prefer comes first.
    let (found, _) = find(&c, WAIT);
    assert_eq!(found.first().map(String::as_str), Some(EMBEDDING_FIRST), "{found:?}");
    let asked = ollama.received("/api/embed");
    assert_eq!(asked.len(), 1, "the query and the tools in one request");
    assert_eq!(
        (asked[0].body["model"].clone(), asked[0].body["truncate"].clone()),
        (json!(EMBED_MODEL), json!(true))
    );
    let first = &ollama.embedded()[0];
    assert_eq!(first[0], WAIT, "the query first: {first:?}");
    assert!(first.len() > 2 && first.iter().any(|t| t.starts_with("files__sleep: ")), "{first:?}");

    // Again, another request over the same tools, and after a restart (a new catalog): only
    // the query is embedded.
    assert_eq!(find(&c, WAIT).0.first().map(String::as_str), Some(EMBEDDING_FIRST));
    find(&c, "answer");
    assert_eq!(hub.post("/servers/files/restart").status, 200);
    hub.wait_status("files", "RUNNING", 10 * SEC);
    assert_eq!(find(&c, WAIT).0.first().map(String::as_str), Some(EMBEDDING_FIRST));
    let inputs = ollama.embedded();
    assert_eq!(
        inputs[1..],
        [vec![WAIT.to_string()], vec!["answer".to_string()], vec![WAIT.to_string()]],
        "{inputs:?}"
    );

    // A request that matches the whole large catalog reorders (so embeds) its first 30.
    let (found, _) = find(&c, "look for something in a large catalog");
    assert_eq!(found.len(), 5, "{found:?}");
    assert_eq!(ollama.embedded().last().map(Vec::len), Some(1 + 30));
}

#[test]
fn with_ollama_away_the_lexical_order_comes_at_once() {
    // Nothing at Ollama's address: the probe or the first refusal says so, and every search
    // answers in the lexical order at once; the log says it once.
    let hub = searching_hub(&[("AGENTHUB_EMBED_MODEL", EMBED_MODEL)]);
    let c = McpSession::connect(&hub, "/mcp");
    for _ in 0..3 {
        let (found, took) = find(&c, WAIT);
        assert_eq!(found.first().map(String::as_str), Some(LEXICAL_FIRST), "{found:?}");
        assert!(took < SEC, "{took:?}");
    }
    assert_eq!(hub.log().matches("no reranking with embed-test").count(), 1, "{}", hub.log());

    // An Ollama that takes the request and never answers costs one deadline (at most
    // OLLAMA_TIMEOUT_S), then it is left alone.
    let ollama = FakeOllama::start(&[EMBED_MODEL]);
    let hub = searching_hub(&[
        ("OLLAMA_URL", &ollama.url),
        ("AGENTHUB_EMBED_MODEL", EMBED_MODEL),
        ("OLLAMA_TIMEOUT_S", "1"),
    ]);
    let c = McpSession::connect(&hub, "/mcp");
    ollama.hold();
    let (found, took) = find(&c, WAIT);
    assert_eq!(found.first().map(String::as_str), Some(LEXICAL_FIRST), "{found:?}");
    assert!(took < 3 * SEC, "{took:?}");
    let (found, took) = find(&c, WAIT);
    assert_eq!(found.first().map(String::as_str), Some(LEXICAL_FIRST), "{found:?}");
    assert!(took < SEC / 2, "{took:?}");
    assert_eq!(ollama.received("/api/embed").len(), 1, "asked once");
    ollama.release();
}

#[test]
fn without_an_embedding_model_nothing_is_embedded() {
    let ollama = FakeOllama::start(&[EMBED_MODEL]);
    let hub = searching_hub(&[("OLLAMA_URL", &ollama.url)]);
    let c = McpSession::connect(&hub, "/mcp");
    for _ in 0..2 {
        let (found, _) = find(&c, WAIT);
        assert_eq!(found.first().map(String::as_str), Some(LEXICAL_FIRST), "{found:?}");
    }
    assert!(ollama.received("/").len() + ollama.received("/api/tags").len() > 0, "the hub knows this Ollama");
    assert_eq!(ollama.received("/api/embed").len(), 0);
}
