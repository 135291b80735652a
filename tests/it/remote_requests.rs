//! A remote Streamable HTTP server's own requests, sent on a POST's event stream while it
//! works on a call: answered by the hub as a stdio child's are when no client can take them
//! (sampling by the local model, elicitation declined for the user).

use std::process::Command;

use serde_json::json;

use crate::fake_ollama::FakeOllama;
use crate::harness::*;

#[test]
fn a_remote_servers_sampling_is_answered_by_the_local_model() {
    let ollama = FakeOllama::start(&["llama3.2:3b"]);
    let port = free_port();
    let mut cmd = Command::new(npm_bin("mcp-server-everything"));
    cmd.arg("streamableHttp").env("PORT", port.to_string());
    let _remote = ServerProcess::start(&mut cmd, port, 20 * SEC);
    let servers = json!({"servers": {"remote": {"type": "http", "url": format!("http://127.0.0.1:{port}/mcp"),
        "auto_start": true, "request_timeout": 10}}});
    let hub = Hub::builder().servers(&servers.to_string()).env("OLLAMA_URL", &ollama.url).start();
    hub.wait_status("remote", "RUNNING", 20 * SEC);
    let args = json!({"prompt": "what is MCP", "maxTokens": 12});
    let r = tool_text(&hub.tool("remote", "trigger-sampling-request", args));
    assert!(r.contains("[llama3.2:3b]") && r.contains("what is MCP"), "{r}");
    assert!(!ollama.received("/api/chat").is_empty());
}
