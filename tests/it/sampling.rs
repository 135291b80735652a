//! Sampling by the local model: a server's `sampling/createMessage` answered by (the fake)
//! Ollama when no client can, or when the server's policy says so; the model chosen by hint,
//! by `sampling_model`, by priorities, else the default rule's; the request mapped onto
//! `/api/chat`; `deny` and `client` refusing; Ollama away an error, never a hang.

use serde_json::{Value, json};

use crate::fake_ollama::FakeOllama;
use crate::harness::*;

const MODELS: [&str; 3] = ["llama3.2:3b", "qwen2.5-coder:7b", "phi3:1b"];

/// What the fixture's `ask` tool heard back for a sampling request with these params.
fn sample(hub: &Hub, server: &str, params: Value) -> Value {
    let r = hub.tool(server, "ask", json!({"method": "sampling/createMessage", "params": params}));
    serde_json::from_str(&tool_text(&r)).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

fn said(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": {"type": "text", "text": text}}], "maxTokens": 40})
}

#[test]
fn the_local_model_answers_sampling_no_client_can() {
    let ollama = FakeOllama::start(&MODELS);
    let hub = Hub::builder()
        .fixtures(&[
            ("fx", json!({"auto_start": true})),
            ("pinned", json!({"auto_start": true, "sampling_model": "phi3:1b"})),
            ("denied", json!({"auto_start": true, "sampling": "deny"})),
            ("relayed", json!({"auto_start": true, "sampling": "client"})),
        ])
        .env("OLLAMA_URL", &ollama.url)
        .start();
    for s in ["fx", "pinned", "denied", "relayed"] {
        hub.wait_status(s, "RUNNING", 10 * SEC);
    }
    let chats = || ollama.received("/api/chat");

    // The first hint Ollama has, in hint order; the request mapped onto /api/chat.
    let mut params = said("hello there");
    params["systemPrompt"] = json!("be brief");
    params["temperature"] = json!(0.3);
    params["stopSequences"] = json!(["END"]);
    params["modelPreferences"] =
        json!({"hints": [{"name": "claude-sonnet"}, {"name": "Qwen"}, {"name": "llama"}]});
    let r = sample(&hub, "fx", params);
    assert_eq!(
        r["result"],
        json!({"role": "assistant", "content": {"type": "text", "text": "[qwen2.5-coder:7b] hello there"},
               "model": "qwen2.5-coder:7b", "stopReason": "endTurn"}),
        "{r}"
    );
    let sent = chats().last().unwrap().body.clone();
    assert_eq!(sent["model"], "qwen2.5-coder:7b");
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}])
    );
    assert_eq!(sent["options"], json!({"num_predict": 40, "temperature": 0.3, "stop": ["END"]}));
    assert_eq!(sent["stream"], false);

    // No hint matches: the server's sampling_model; without one, by the priorities; else the
    // default rule's model.
    let unmatched = json!({"hints": [{"name": "gpt-5"}]});
    let mut p = said("pinned");
    p["modelPreferences"] = unmatched.clone();
    assert_eq!(sample(&hub, "pinned", p)["result"]["model"], "phi3:1b");
    let mut p = said("quick");
    p["modelPreferences"] =
        json!({"hints": [{"name": "gpt-5"}], "speedPriority": 0.9, "intelligencePriority": 0.2});
    assert_eq!(sample(&hub, "fx", p)["result"]["model"], "phi3:1b", "the smallest");
    let mut p = said("smart");
    p["modelPreferences"] = json!({"intelligencePriority": 0.9, "costPriority": 0.1});
    assert_eq!(sample(&hub, "fx", p)["result"]["model"], "qwen2.5-coder:7b", "the largest");
    assert_eq!(sample(&hub, "fx", said("plain"))["result"]["model"], "llama3.2:3b", "the default rule's");

    // The choice and why are in the feed; the model's stats count sampling apart.
    let events = hub.get("/activity").json();
    let sampling: Vec<String> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "sampling")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    assert!(
        sampling.iter().any(|m| m.contains("qwen2.5-coder:7b (the hint \"Qwen\" matches it)")),
        "{sampling:?}"
    );
    assert!(sampling.iter().any(|m| m.contains("phi3:1b (the server's sampling_model)")), "{sampling:?}");
    let stats = hub.get("/dashboard/state").json()["ollama"]["stats"].clone();
    assert_eq!(stats["llama3.2:3b"]["sampling"], 1, "{stats}");

    // deny refuses; client without a capable client refuses; neither asks the model.
    let before = chats().len();
    let r = sample(&hub, "denied", said("no"));
    assert!(r["error"]["message"].as_str().unwrap_or_default().contains("\"sampling\": \"deny\""), "{r}");
    let r = sample(&hub, "relayed", said("no"));
    let why = r["error"]["message"].as_str().unwrap_or_default();
    assert!(
        why.contains("only a REST or hub request is in flight") && why.contains("\"sampling\": \"client\""),
        "{r}"
    );
    assert_eq!(chats().len(), before, "the model was asked");

    // Tools: a model that takes them answers with a tool use; one that does not is refused.
    let mut p = said("use a tool");
    p["tools"] = json!([{"name": "lookup", "description": "Looks up", "inputSchema": {"type": "object"}}]);
    p["modelPreferences"] = json!({"hints": [{"name": "qwen"}]});
    let r = sample(&hub, "fx", p.clone());
    assert_eq!(r["result"]["stopReason"], "toolUse", "{r}");
    assert_eq!(
        r["result"]["content"],
        json!([{"type": "tool_use", "id": "call_0", "name": "lookup", "input": {"x": 1}}])
    );
    let sent = chats().last().unwrap().body.clone();
    assert_eq!(sent["tools"][0]["function"]["name"], "lookup");
    p["modelPreferences"] = json!({});
    let r = sample(&hub, "fx", p);
    let why = r["error"]["message"].as_str().unwrap_or_default();
    assert!(why.contains("llama3.2:3b does not take them"), "{r}");
}

#[test]
fn with_ollama_away_the_server_gets_an_error_at_once() {
    // Nothing listens where Ollama should be.
    let hub = Hub::builder()
        .fixtures(&[("fx", json!({"auto_start": true}))])
        .env("OLLAMA_URL", &format!("http://127.0.0.1:{}", free_port()))
        .start();
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let started = std::time::Instant::now();
    let r = sample(&hub, "fx", said("anyone?"));
    let why = r["error"]["message"].as_str().unwrap_or_default();
    assert!(why.contains("ollama_unreachable"), "{r}");
    assert!(started.elapsed() < 5 * SEC, "took {:?}", started.elapsed());
}

#[test]
fn server_everything_samples_through_the_hub_by_policy() {
    let ollama = FakeOllama::start(&MODELS);
    let servers = json!({"servers": {
        "everything": {"command": npm_bin("mcp-server-everything"), "auto_start": true},
        "local": {"command": npm_bin("mcp-server-everything"), "auto_start": true, "sampling": "local"},
    }});
    let hub = Hub::builder().servers(&servers.to_string()).env("OLLAMA_URL", &ollama.url).start();
    hub.wait_status("everything", "RUNNING", 30 * SEC);
    hub.wait_status("local", "RUNNING", 30 * SEC);
    let args = json!({"prompt": "what is MCP", "maxTokens": 12});
    let text = |r: &Value| r["result"]["content"][0]["text"].as_str().unwrap_or_default().to_string();

    // REST: no client can answer; the local model does.
    let r = tool_text(&hub.tool("everything", "trigger-sampling-request", args.clone()));
    assert!(r.contains("[llama3.2:3b] Resource trigger-sampling-request context: what is MCP"), "{r}");
    let sent = ollama.received("/api/chat").last().unwrap().body.clone();
    assert_eq!(sent["messages"][0], json!({"role": "system", "content": "You are a helpful test server."}));
    assert_eq!(sent["options"]["num_predict"], 12);

    // A client without sampling: the local model too.
    let plain =
        McpSession::initialize(&hub.addr, "/mcp/everything", &initialize_with(MCP_VERSION, json!({}))).0;
    plain.initialized();
    let r =
        plain.call(json!(1), "tools/call", json!({"name": "trigger-sampling-request", "arguments": args}));
    assert!(text(&r).contains("[llama3.2:3b]"), "{r}");

    // A client with sampling answers it itself: relayed, not local.
    let capable = McpSession::connect(&hub, "/mcp/everything");
    let asked = ollama.received("/api/chat").len();
    let mut reader = capable.post_streaming(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "trigger-sampling-request", "arguments": args}}));
    let request = wait_line(&mut reader, "the relayed sampling request", 10 * SEC, |l| {
        sse_data(l)
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .filter(|v| v["method"] == "sampling/createMessage")
    });
    let answer = json!({"role": "assistant", "content": {"type": "text", "text": "from the client"}, "model": "c", "stopReason": "endTurn"});
    assert_eq!(capable.send(&json!({"jsonrpc": "2.0", "id": request["id"], "result": answer})).status, 202);
    let done = wait_line(&mut reader, "the tool's result", 10 * SEC, |l| {
        sse_data(l).map(|d| serde_json::from_str::<Value>(d).unwrap()).filter(|v| v["id"] == 2)
    });
    assert!(text(&done).contains("from the client"), "{done}");
    assert_eq!(ollama.received("/api/chat").len(), asked, "the model was asked although the client answered");

    // sampling: "local" answers with the model even for a client that could.
    let capable = McpSession::connect(&hub, "/mcp/local");
    let r =
        capable.call(json!(3), "tools/call", json!({"name": "trigger-sampling-request", "arguments": args}));
    assert!(text(&r).contains("[llama3.2:3b]"), "{r}");
}
