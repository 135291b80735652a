//! The aggregated catalog at scale: a stable order, a call that costs the same with 2,000 tools
//! as with a few, resource URIs told apart by server, and `GET /catalog`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

fn names(list: &Value) -> Vec<String> {
    let tools = list["result"]["tools"].as_array().cloned().unwrap_or_default();
    tools.iter().filter_map(|t| t["name"].as_str().map(str::to_string)).collect()
}

#[test]
fn tools_on_mcp_are_sorted_by_server_then_name_and_stay_so() {
    let hub =
        Hub::with_fixtures(&[("one", json!({"auto_start": true})), ("two", json!({"auto_start": true}))]);
    hub.wait_status("one", "RUNNING", 10 * SEC);
    hub.wait_status("two", "RUNNING", 10 * SEC);
    let c = McpSession::connect(&hub, "/mcp");
    let first = names(&c.call(json!(1), "tools/list", json!({})));
    let tools = ["ask", "crash", "echo", "hang", "notify", "pid", "progress", "sleep", "spawn", "stderr"];
    let expected: Vec<String> =
        ["one", "two"].iter().flat_map(|s| tools.iter().map(move |t| format!("{s}__{t}"))).collect();
    let listed: Vec<String> = first.iter().filter(|n| !n.starts_with("agenthub__")).cloned().collect();
    assert_eq!(listed, expected);
    // The same list again, and in another session after a server's list changed.
    assert_eq!(names(&c.call(json!(2), "tools/list", json!({}))), first);
    assert_eq!(hub.post("/servers/two/restart").status, 200);
    hub.wait_status("two", "RUNNING", 10 * SEC);
    let other = McpSession::connect(&hub, "/mcp");
    assert_eq!(names(&other.call(json!(1), "tools/list", json!({}))), first);
}

/// p50 of `n` calls of `one__echo` on each hub, taken in turns so a busy machine slows both alike.
fn p50s(hubs: &[&McpSession], n: usize) -> Vec<Duration> {
    let mut took: Vec<Vec<Duration>> = vec![Vec::new(); hubs.len()];
    for i in 0..n {
        for (h, c) in hubs.iter().enumerate() {
            let t = Instant::now();
            let r = c.call(json!(i), "tools/call", json!({"name": "one__echo", "arguments": {"text": "x"}}));
            took[h].push(t.elapsed());
            assert_eq!(r["result"]["content"][0]["text"], "x", "{r}");
        }
    }
    took.into_iter()
        .map(|mut t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect()
}

#[test]
fn a_call_costs_the_same_with_two_thousand_tools_as_with_ten() {
    let small = Hub::with_fixtures(&[("one", json!({"auto_start": true}))]);
    let big = Hub::with_fixtures(&[("one", json!({"auto_start": true, "args": ["--many-tools", "2000"]}))]);
    small.wait_status("one", "RUNNING", 10 * SEC);
    big.wait_status("one", "RUNNING", 10 * SEC);
    let (s, b) = (McpSession::connect(&small, "/mcp"), McpSession::connect(&big, "/mcp"));
    let of_one = |list: Value| names(&list).iter().filter(|n| n.starts_with("one__")).count();
    assert_eq!(of_one(b.call(json!(0), "tools/list", json!({}))), 2010);
    assert_eq!(of_one(s.call(json!(0), "tools/list", json!({}))), 10);
    p50s(&[&s, &b], 20);
    let p = p50s(&[&s, &b], 200);
    // A copy or a scan of 2,000 definitions per call was ten times the cost of the call.
    assert!(p[1] <= p[0] * 3, "p50 with 2,000 tools {:?}, with 10 {:?}", p[1], p[0]);
}

#[test]
fn servers_sharing_a_resource_uri_are_told_apart() {
    let hub =
        Hub::with_fixtures(&[("one", json!({"auto_start": true})), ("two", json!({"auto_start": true}))]);
    hub.wait_status("one", "RUNNING", 10 * SEC);
    hub.wait_status("two", "RUNNING", 10 * SEC);
    let c = McpSession::connect(&hub, "/mcp");
    let listed = c.call(json!(1), "resources/list", json!({}));
    let uris: Vec<&str> = listed["result"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uri"].as_str())
        .collect();
    assert_eq!(uris, ["fixture://one+one", "fixture://two+one"], "{listed}");
    let r = c.call(json!(2), "resources/subscribe", json!({"uri": "fixture://two+one"}));
    assert_eq!(r["result"], json!({}), "{r}");
    hub.wait_stderr("two", "fixture: resources/subscribe fixture://one");
    assert_eq!(hub.stderr_lines("one", "fixture: resources/subscribe"), 0);
    let mut stream = c.open_stream();
    hub.tool("one", "notify", json!({"uri": "fixture://one"}));
    hub.tool("two", "notify", json!({"uri": "fixture://one"}));
    let updated = |v: &Value| v["method"] == "notifications/resources/updated";
    let got = next_matching(&mut stream, "the update of two's resource", updated);
    assert_eq!(got["params"]["uri"], "fixture://two+one", "only two's, under its public URI");
    let r = c.call(json!(3), "resources/unsubscribe", json!({"uri": "fixture://two+one"}));
    assert_eq!(r["result"], json!({}), "{r}");
    hub.wait_stderr("two", "fixture: resources/unsubscribe fixture://one");
}

#[test]
fn catalog_gives_each_tools_bytes_and_tokens() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let c = McpSession::connect(&hub, "/mcp");
    let listed = c.call(json!(1), "tools/list", json!({}));
    let echo = listed["result"]["tools"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "fx__echo"))
        .cloned();
    let echo_bytes = echo.map(|e| e.to_string().len()).unwrap_or(0);
    let r = hub.get("/catalog");
    assert_eq!(r.status, 200, "{}", r.text());
    let cat = r.json();
    assert_eq!(cat["token_estimate"], "bytes / 4");
    let servers = cat["servers"].as_array().cloned().unwrap_or_default();
    let fx = servers.iter().find(|s| s["name"] == "fx").cloned().unwrap_or_default();
    assert_eq!(fx["tool_count"], 10, "{cat}");
    let tool = fx["tools"].as_array().and_then(|t| t.iter().find(|t| t["name"] == "fx__echo")).cloned();
    let tool = tool.unwrap_or_default();
    assert_eq!(tool["bytes"], echo_bytes, "{cat}");
    assert_eq!(tool["tokens"], echo_bytes.div_ceil(4));
    let sum = |key: &str| servers.iter().filter_map(|s| s[key].as_u64()).sum::<u64>();
    let fx_bytes: u64 =
        fx["tools"].as_array().into_iter().flatten().filter_map(|t| t["bytes"].as_u64()).sum();
    assert_eq!(fx["bytes"], fx_bytes);
    assert_eq!(cat["total"]["bytes"], sum("bytes"));
    assert_eq!(cat["total"]["tokens"], sum("tokens"));
}

#[test]
fn a_link_in_a_tools_result_names_its_server_and_reads_from_it() {
    let app = |_: &str| json!({"auto_start": true, "args": ["--app"]});
    let hub = Hub::with_fixtures(&[("one", app("one")), ("two", app("two"))]);
    hub.wait_status("one", "RUNNING", 10 * SEC);
    hub.wait_status("two", "RUNNING", 10 * SEC);
    let c = McpSession::connect(&hub, "/mcp");
    let r = c.call(json!(1), "tools/call", json!({"name": "two__link", "arguments": {}}));
    let content = &r["result"]["content"];
    assert_eq!(content[0]["uri"], "fixture://two+one", "{r}");
    assert_eq!(content[1]["resource"]["uri"], "fixture://two+one", "{r}");
    let read = c.call(json!(2), "resources/read", json!({"uri": "fixture://two+one"}));
    assert_eq!(read["result"]["contents"][0]["uri"], "fixture://two+one", "{read}");
    hub.wait_stderr("two", "fixture: call link");
    assert_eq!(hub.stderr_lines("one", "fixture: call"), 0);
}
