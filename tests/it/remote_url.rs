//! A remote server given as a bare `url` (Cursor's shape) or `serverUrl` (Windsurf's): tried as
//! Streamable HTTP, then as legacy HTTP+SSE, as clients do; when neither answers, one line
//! with what each said (its status and one line of its body, never a whole HTML page).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;

use serde_json::json;

use crate::harness::*;

#[test]
fn a_bare_url_falls_back_to_legacy_sse() {
    let port = free_port();
    let mut cmd = Command::new(npm_bin("mcp-server-everything"));
    cmd.arg("sse").env("PORT", port.to_string());
    let _remote = ServerProcess::start(&mut cmd, port, 20 * SEC);
    let servers = json!({"servers": {"cursor": {"url": format!("http://127.0.0.1:{port}/sse")},
        "windsurf": {"serverUrl": format!("http://127.0.0.1:{port}/sse")}}});
    let hub = Hub::builder().servers(&servers.to_string()).start();
    for name in ["cursor", "windsurf"] {
        let s = hub.post(&format!("/servers/{name}/start"));
        assert_eq!((s.status, s.json()["status"].clone()), (200, json!("RUNNING")), "{}", s.text());
        let r = hub.call(name, "tools/call", &json!({"name": "echo", "arguments": {"message": "hi"}}));
        assert!(tool_text(&r).contains("hi"), "{}", r.text());
    }
    // The file keeps the user's shape: no transport written in.
    let shown = hub.get("/servers/cursor");
    assert_eq!(shown.json()["transport"], json!("url"), "{}", shown.text());
}

#[test]
fn a_bare_url_that_answers_neither_says_so_in_one_line() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::Builder::new()
        .name("html-404".into())
        .spawn(move || {
            for mut s in listener.incoming().flatten() {
                let mut buf = [0u8; 8192];
                let _ = s.read(&mut buf);
                let page = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
                    <title>Error</title>\n</head>\n<body>\n<pre>Cannot GET /sse</pre>\n</body>\n</html>\n";
                let head = format!(
                    "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    page.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(page.as_bytes());
            }
        })
        .unwrap();
    let servers = json!({"servers": {"gone": {"url": format!("http://127.0.0.1:{port}/sse"),
        "restart_on_failure": false}}});
    let hub = Hub::builder().servers(&servers.to_string()).start();
    let _ = hub.post("/servers/gone/start");
    let s = hub.wait_status("gone", "FAILED", 10 * SEC);
    let why = s["last_error"].as_str().unwrap_or_default().to_string();
    assert!(why.contains("neither Streamable HTTP nor legacy SSE"), "{why}");
    assert!(why.contains("HTTP 404") && why.contains("Error") && !why.contains('\n'), "{why}");
    assert!(!why.contains("<html") && !why.contains("DOCTYPE"), "{why}");
    let log = hub.log();
    let lines: Vec<_> = log.lines().filter(|l| l.contains("neither Streamable HTTP")).collect();
    assert!(!lines.is_empty() && !log.contains("<pre>"), "{log}");
}
