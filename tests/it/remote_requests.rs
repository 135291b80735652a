//! A remote Streamable HTTP server's own requests, sent on a POST's event stream while it
//! works on a call: relayed to the calling client when it can answer, else answered by the hub
//! (sampling by the local model), as a stdio child's are.

use std::process::Command;

use serde_json::{Value, json};

use crate::fake_ollama::FakeOllama;
use crate::harness::*;

#[test]
fn a_remote_servers_sampling_goes_to_its_client_else_the_local_model() {
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

    // A client with sampling answers it itself: relayed on its stream, not local.
    let capable = McpSession::connect(&hub, "/mcp/remote");
    let asked = ollama.received("/api/chat").len();
    let mut reader = capable.post_streaming(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "trigger-sampling-request", "arguments": {"prompt": "hi", "maxTokens": 5}}}));
    let request = wait_line(&mut reader, "the relayed sampling request", 10 * SEC, |l| {
        sse_data(l)
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .filter(|v| v["method"] == "sampling/createMessage")
    });
    let answer = json!({"role": "assistant", "content": {"type": "text", "text": "from the client"},
        "model": "c", "stopReason": "endTurn"});
    assert_eq!(capable.send(&json!({"jsonrpc": "2.0", "id": request["id"], "result": answer})).status, 202);
    let done = wait_line(&mut reader, "the tool's result", 10 * SEC, |l| {
        sse_data(l).map(|d| serde_json::from_str::<Value>(d).unwrap()).filter(|v| v["id"] == 2)
    });
    assert!(done.to_string().contains("from the client"), "{done}");
    assert_eq!(ollama.received("/api/chat").len(), asked, "the model was asked although the client answered");
}
