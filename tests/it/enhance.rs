//! Prompt enhancement against a fake Ollama that speaks the real API and records what it got.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fake_ollama::FakeOllama;
use crate::harness::*;

const MODELS: &[&str] = &["llama3.2:3b", "qwen2.5-coder:7b"];
const RULES: &str = r#"{
  "default": {"model": "llama3.2:3b", "system_prompt": "DEFAULT SYS", "options": {"temperature": 0.3}},
  "clients": {
    "vscode": {"model": "qwen2.5-coder:7b", "system_prompt": "VSCODE SYS", "options": {"temperature": 0.1}},
    "raycast": {"system_prompt": "RAYCAST SYS"},
    "off": {"enabled": false},
    "ghost": {"model": "missing:1b"}
  }
}"#;

fn hub_for(url: &str, env: &[(&str, &str)]) -> Hub {
    let mut b =
        Hub::builder().servers(NO_SERVERS).file("enhancement-rules.json", RULES).env("OLLAMA_URL", url);
    for (k, v) in env {
        b = b.env(k, v);
    }
    b.start()
}

fn enhance(hub: &Hub, body: Value, client_header: Option<&str>) -> Value {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(c) = client_header {
        headers.push(("X-Client-Name", c));
    }
    let r = hub.request("POST", "/ollama/enhance", &headers, body.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[test]
fn enhances_then_serves_the_same_prompt_from_cache() {
    let ollama = FakeOllama::start(MODELS);
    let hub = hub_for(&ollama.url, &[]);
    let a = enhance(&hub, json!({"prompt": "explain docker"}), None);
    assert_eq!(
        a,
        json!({"prompt": "[llama3.2:3b] explain docker", "original": "explain docker", "enhanced": true,
        "model": "llama3.2:3b", "cached": false, "client": "default"})
    );
    let got = ollama.received("/api/generate");
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].body,
        json!({"model": "llama3.2:3b", "prompt": "explain docker", "system": "DEFAULT SYS",
        "stream": false, "options": {"temperature": 0.3}})
    );
    let b = enhance(&hub, json!({"prompt": "explain docker"}), None);
    assert_eq!((b["cached"].clone(), b["prompt"].clone()), (json!(true), a["prompt"].clone()));
    assert_eq!(ollama.received("/api/generate").len(), 1, "the second call came from the cache");
    let h = hub.get("/health").json();
    assert_eq!(
        (h["cache"]["size"].clone(), h["cache"]["hits"].clone(), h["cache"]["misses"].clone()),
        (json!(1), json!(1), json!(1))
    );
    assert_eq!(h["ollama"]["stats"]["llama3.2:3b"]["calls"], 1);
    let r = hub.post("/cache/clear");
    assert_eq!(r.json()["cache"]["size"], 0);
    enhance(&hub, json!({"prompt": "explain docker"}), None);
    assert_eq!(ollama.received("/api/generate").len(), 2);
}

#[test]
fn rules_follow_the_client_and_the_header_wins() {
    let ollama = FakeOllama::start(MODELS);
    let hub = hub_for(&ollama.url, &[]);
    let a = enhance(&hub, json!({"prompt": "fix the bug", "client": "raycast"}), Some("VSCode"));
    assert_eq!((a["client"].clone(), a["model"].clone()), (json!("vscode"), json!("qwen2.5-coder:7b")));
    let last = ollama.received("/api/generate").pop().unwrap();
    assert_eq!(
        (last.body["model"].clone(), last.body["system"].clone()),
        (json!("qwen2.5-coder:7b"), json!("VSCODE SYS"))
    );
    assert_eq!(last.body["options"], json!({"temperature": 0.1}));
    let b = enhance(&hub, json!({"prompt": "weather lisbon", "client": "raycast"}), None);
    assert_eq!(b["client"], "raycast");
    let last = ollama.received("/api/generate").pop().unwrap();
    assert_eq!(
        (last.body["model"].clone(), last.body["system"].clone()),
        (json!("llama3.2:3b"), json!("RAYCAST SYS")),
        "inherits the default model"
    );
    let c = enhance(&hub, json!({"prompt": "x", "client": "unknown-app"}), None);
    assert_eq!(c["client"], "default");
    let d = enhance(&hub, json!({"prompt": "y", "model": "qwen2.5-coder:7b"}), None);
    assert_eq!(d["model"], "qwen2.5-coder:7b");
}

#[test]
fn disabled_rules_missing_models_and_timeouts_fall_back_with_a_reason() {
    let ollama = FakeOllama::start(MODELS);
    let hub = hub_for(&ollama.url, &[("OLLAMA_TIMEOUT_S", "0.5")]);
    let off = enhance(&hub, json!({"prompt": "as is"}), Some("off"));
    assert_eq!(
        (off["prompt"].clone(), off["enhanced"].clone(), off["reason"].clone()),
        (json!("as is"), json!(false), json!("disabled"))
    );
    assert!(ollama.received("/api/generate").is_empty());
    let ghost = enhance(&hub, json!({"prompt": "p"}), Some("ghost"));
    assert_eq!((ghost["prompt"].clone(), ghost["reason"].clone()), (json!("p"), json!("model_not_found")));
    *ollama.delay.lock().unwrap() = 2 * SEC;
    let t = Instant::now();
    let slow = enhance(&hub, json!({"prompt": "slow one"}), None);
    assert_eq!(
        (slow["prompt"].clone(), slow["enhanced"].clone(), slow["reason"].clone()),
        (json!("slow one"), json!(false), json!("timeout"))
    );
    assert!(t.elapsed() < 2 * SEC);
    // A missing model does not count against Ollama's breaker.
    assert_eq!(hub.get("/health").json()["ollama"]["circuit"], "closed");
}

#[test]
fn ollama_down_then_breaker_open_then_recovery() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let hub = hub_for(&url, &[("AGENTHUB_BREAKER_THRESHOLD", "2"), ("AGENTHUB_BREAKER_RECOVERY_S", "1")]);
    for _ in 0..2 {
        let a = enhance(&hub, json!({"prompt": "hello"}), None);
        assert_eq!(
            (a["prompt"].clone(), a["enhanced"].clone(), a["reason"].clone()),
            (json!("hello"), json!(false), json!("ollama_unreachable"))
        );
    }
    for _ in 0..5 {
        let t = Instant::now();
        let a = enhance(&hub, json!({"prompt": "hello"}), None);
        assert_eq!(a["reason"], "breaker_open");
        assert!(t.elapsed() < Duration::from_millis(100), "took {:?}", t.elapsed());
    }
    let h = hub.get("/health").json();
    assert_eq!(
        (h["ollama"]["status"].clone(), h["ollama"]["circuit"].clone()),
        (json!("down"), json!("open"))
    );
    let ollama = FakeOllama::start_on(port, MODELS);
    let a = wait_for("enhancement to work again", 10 * SEC, || {
        let a = enhance(&hub, json!({"prompt": "hello"}), None);
        (a["enhanced"] == true).then_some(a)
    });
    assert_eq!(a["prompt"], "[llama3.2:3b] hello");
    assert_eq!(hub.get("/health").json()["ollama"]["circuit"], "closed");
    wait_for("/health to see ollama up", 10 * SEC, || {
        (hub.get("/health").json()["ollama"]["status"] == "up").then_some(())
    });
    drop(ollama);
}

#[test]
fn bad_prompts_are_refused() {
    let ollama = FakeOllama::start(MODELS);
    let hub = hub_for(&ollama.url, &[]);
    hub.post_json("/ollama/enhance", &json!({"prompt": "  "})).expect_error(400, "bad_request");
    hub.post_json("/ollama/enhance", &json!({})).expect_error(400, "bad_request");
    hub.post_json("/ollama/enhance", &json!({"prompt": "x", "client": 5})).expect_error(400, "bad_request");
    hub.request("POST", "/ollama/enhance", &[], b"{no").expect_error(400, "invalid_json");
    let msg = hub
        .post_json("/ollama/enhance", &json!({"prompt": "x".repeat(33 * 1024)}))
        .expect_error(413, "payload_too_large");
    assert!(msg.contains("32768"), "{msg}");
    assert!(ollama.received("/api/generate").is_empty());
}

#[test]
fn models_are_listed() {
    let ollama = FakeOllama::start(MODELS);
    let hub = hub_for(&ollama.url, &[]);
    assert_eq!(hub.get("/ollama/models").json()["models"], json!(MODELS));
    let down = hub_for("http://127.0.0.1:9", &[]);
    down.get("/ollama/models").expect_error(502, "upstream_error");
}

#[test]
fn the_aggregated_endpoint_offers_enhancement_as_a_tool() {
    let ollama = FakeOllama::start(MODELS);
    let hub = hub_for(&ollama.url, &[]);
    let (c, _) = McpSession::initialize(&hub.addr, "/mcp", &initialize_body(MCP_VERSION));
    let call = |msg: Value| c.send(&msg).json();
    let tools = call(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    assert!(
        tools["result"]["tools"].as_array().unwrap().iter().any(|t| t["name"] == "agenthub__enhance_prompt"),
        "{tools}"
    );
    let r = call(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "agenthub__enhance_prompt", "arguments": {"prompt": "explain docker", "client": "vscode"}}}),
    );
    assert_eq!(r["result"]["content"][0]["text"], "[qwen2.5-coder:7b] explain docker");
    assert_eq!(r["result"]["structuredContent"]["client"], "vscode");
}

#[test]
fn the_ollama_client_speaks_generate_chat_tags_and_version() {
    use agenthub::{OllamaClient as Client, OllamaFailure as Failure};
    let ollama = FakeOllama::start(MODELS);
    let c = Client::new(&ollama.url, 2 * SEC);
    assert_eq!(c.version().unwrap(), "0.12.0");
    assert_eq!(c.models().unwrap(), MODELS);
    let opts = serde_json::Map::new();
    let g = c.generate("llama3.2:3b", "hi", "", &opts).unwrap();
    assert_eq!((g.response.as_str(), g.model.as_str()), ("[llama3.2:3b] hi", "llama3.2:3b"));
    assert!(ollama.received("/api/generate")[0].body.get("system").is_none(), "no empty system prompt sent");
    let said = c.chat("qwen2.5-coder:7b", &[json!({"role": "user", "content": "yo"})], &opts).unwrap();
    assert_eq!(said, "[qwen2.5-coder:7b] yo");
    assert_eq!(ollama.received("/api/chat")[0].body["stream"], false);
    assert_eq!(
        c.generate("nope:1b", "x", "", &opts).unwrap_err(),
        Failure::ModelNotFound("model 'nope:1b' not found".into())
    );
    let down = Client::new("http://127.0.0.1:9", SEC);
    assert!(matches!(down.generate("m", "x", "", &opts), Err(Failure::Unreachable(_))));
}

#[test]
fn generations_past_the_cap_are_refused_everywhere_until_one_ends() {
    let ollama = FakeOllama::start(MODELS);
    ollama.hold();
    let think = r#"{"pipelines": {"think": {"steps": [{"id": "answer", "llm": {"prompt": "why"}}]}}}"#;
    let hub = Hub::builder()
        .fixtures(&[("fx", json!({"auto_start": true}))])
        .file("enhancement-rules.json", RULES)
        .file("pipelines.json", think)
        .env("OLLAMA_URL", &ollama.url)
        .env("AGENTHUB_MAX_GENERATIONS", "2")
        .start();
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let held: Vec<_> = ["first", "second"]
        .into_iter()
        .map(|p| {
            let (addr, body) = (hub.addr.clone(), json!({"prompt": p}).to_string());
            std::thread::spawn(move || {
                raw_request(&addr, "POST", "/ollama/enhance", &[JSON], body.as_bytes())
            })
        })
        .collect();
    wait_for("two generations to reach Ollama", 10 * SEC, || {
        (ollama.received("/api/generate").len() == 2).then_some(())
    });

    // REST enhancement: a 429 at once, naming the cap.
    let r = hub.post_json("/ollama/enhance", &json!({"prompt": "third"}));
    let message = r.expect_error(429, "too_many_requests");
    assert!(message.contains("AGENTHUB_MAX_GENERATIONS"), "{message}");
    assert_eq!(r.header("retry-after"), Some("5"));
    // A pipeline's llm step fails, saying why.
    let report = hub.post_json("/pipelines/think", &json!({})).json();
    assert_eq!(report["status"], "failed", "{report:#}");
    let error = report["steps"][0]["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("busy") && error.contains("AGENTHUB_MAX_GENERATIONS"), "{report:#}");
    // A server's sampling request gets an error that says so, not a hang.
    let r = hub.tool(
        "fx",
        "ask",
        json!({"method": "sampling/createMessage", "params":
        {"messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}], "maxTokens": 5}}),
    );
    let text = tool_text(&r);
    assert!(text.contains("busy") && text.contains("AGENTHUB_MAX_GENERATIONS"), "{text}");
    assert!(ollama.received("/api/chat").is_empty());
    assert_eq!(ollama.received("/api/generate").len(), 2, "nothing past the cap reached Ollama");

    ollama.release();
    for h in held {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["enhanced"], true, "{}", r.text());
    }
    let again = enhance(&hub, json!({"prompt": "third"}), None);
    assert_eq!(
        (again["enhanced"].clone(), again["prompt"].clone()),
        (json!(true), json!("[llama3.2:3b] third"))
    );
}
