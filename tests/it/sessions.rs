//! What one client may do to the others' sessions on the MCP endpoints: handshakes that cannot
//! push out a session in use, and a batch whose client left that stops costing its server.

use std::io::Write;
use std::net::TcpStream;

use serde_json::json;

use crate::harness::*;

#[test]
fn a_batch_whose_client_left_stops_and_cancels_its_call() {
    let hub = Hub::with_fixtures(&[("fx", json!({"request_timeout": 30}))]);
    let c = McpSession::connect(&hub, "/mcp/fx");
    let call = |id: &str, tool: &str, ms: u64| json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {"ms": ms}}});
    let batch = json!([call("a", "hang", 0), call("b", "sleep", 1), call("c", "sleep", 2)]).to_string();
    let mut stream = TcpStream::connect(&hub.addr).unwrap();
    let head = format!(
        "POST /mcp/fx HTTP/1.1\r\nHost: {}\r\nAccept: application/json, text/event-stream\r\n\
         Content-Type: application/json\r\nMcp-Session-Id: {}\r\nMCP-Protocol-Version: {MCP_VERSION}\r\n\
         Content-Length: {}\r\n\r\n",
        hub.addr,
        c.session,
        batch.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(batch.as_bytes()).unwrap();
    hub.wait_stderr("fx", "fixture: call hang");
    // The client leaves while its batch's first call is at the child.
    stream.shutdown(std::net::Shutdown::Both).unwrap();
    drop(stream);
    // The call in flight is cancelled at the child now, not at its 30 s deadline.
    hub.wait_stderr("fx", "notification notifications/cancelled");
    // The batch is over (its answer found nobody) and sent nothing more.
    wait_for("the batch's end", 5 * SEC, || {
        hub.log().contains("POST /mcp/fx: the client went away before its answer").then_some(())
    });
    assert_eq!(hub.in_flight("fx"), 0, "{}", hub.log());
    // The session and the server go on.
    let r = c.call(json!(1), "tools/call", json!({"name": "echo", "arguments": {"text": "still here"}}));
    assert_eq!(r["result"]["content"][0]["text"], "still here", "{r}");
}

#[test]
fn handshakes_cannot_push_out_a_session_in_use() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let mine = McpSession::connect(&hub, "/mcp/fx");
    let r = mine.call(json!(1), "tools/call", json!({"name": "echo", "arguments": {"text": "mine"}}));
    assert_eq!(r["result"]["content"][0]["text"], "mine", "{r}");
    // More handshakes than the hub keeps sessions, one after another on one connection.
    let mut conn = Conn::new(&hub.addr);
    let (init, note) = (initialize_body(MCP_VERSION).to_string(), initialized_note().to_string());
    for n in 0..1100 {
        let r = conn.request("POST", "/mcp/fx", &[MCP_ACCEPT, JSON], init.as_bytes());
        assert_eq!(r.status, 200, "handshake {n}: {}", r.text());
        let id = r.header("mcp-session-id").expect("a session id").to_string();
        let headers =
            [MCP_ACCEPT, JSON, ("Mcp-Session-Id", id.as_str()), ("MCP-Protocol-Version", MCP_VERSION)];
        assert_eq!(conn.request("POST", "/mcp/fx", &headers, note.as_bytes()).status, 202, "handshake {n}");
    }
    let r = mine.call(json!(2), "tools/call", json!({"name": "echo", "arguments": {"text": "still mine"}}));
    assert_eq!(r["result"]["content"][0]["text"], "still mine", "{r}");
}
