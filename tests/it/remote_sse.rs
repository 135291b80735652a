//! Remote servers over the legacy HTTP+SSE transport (`"type": "sse"`, MCP 2024-11-05): against
//! server-everything in its `sse` mode (started, relayed over REST and MCP with progress, taken
//! down when its stream drops and brought back by the restart policy, stopped cleanly), and
//! against a hand-written one for what everything does not do (its own pings, cancellations
//! it records, an endpoint on another origin).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};

use crate::harness::*;

/// server-everything in its legacy SSE mode (`GET /sse`, `POST /message`) on a port of its own.
fn sse_everything(port: u16) -> ServerProcess {
    let mut cmd = Command::new(npm_bin("mcp-server-everything"));
    cmd.arg("sse").env("PORT", port.to_string());
    ServerProcess::start(&mut cmd, port, 20 * SEC)
}

/// The names of the hub's threads.
fn threads(hub: &Hub) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", hub.pid())).unwrap();
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .collect()
}

fn echo(text: &str) -> Value {
    json!({"name": "echo", "arguments": {"message": text}})
}

#[test]
fn legacy_sse_servers_run_relay_fail_fast_and_come_back() {
    let port = free_port();
    let remote = sse_everything(port);
    let servers = json!({"servers": {"legacy": {"type": "sse", "url": format!("http://127.0.0.1:{port}/sse"),
        "request_timeout": 3, "restart_backoff": 0.2, "restart_backoff_max": 0.5, "max_restarts": 1000}}});
    let hub = Hub::builder().servers(&servers.to_string()).start();
    let s = hub.post("/servers/legacy/start");
    assert_eq!(s.status, 200, "{}", s.text());
    assert_eq!((s.json()["status"].clone(), s.json()["pid"].clone()), (json!("RUNNING"), Value::Null));
    assert!(threads(&hub).contains(&"sse-legacy".to_string()), "{:?}", threads(&hub));

    let r = hub.call("legacy", "tools/list", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    let tools = r.json();
    let names: Vec<&str> =
        tools["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"echo") && names.contains(&"trigger-long-running-operation"), "{names:?}");
    assert!(tool_text(&hub.call("legacy", "tools/call", &echo("over sse"))).contains("over sse"));

    // Answers come back on one stream: each caller gets its own.
    std::thread::scope(|s| {
        for i in 0..8 {
            let hub = &hub;
            s.spawn(move || {
                let text = format!("caller {i}");
                assert!(tool_text(&hub.call("legacy", "tools/call", &echo(&text))).contains(&text));
            });
        }
    });

    let c = McpSession::connect(&hub, "/mcp/legacy");
    let r = c.call(json!("e1"), "tools/call", echo("through mcp"));
    assert_eq!(r["id"], "e1");
    assert!(r["result"]["content"][0]["text"].as_str().unwrap().contains("through mcp"), "{r}");

    // What the server sends on its own (a log message) reaches the hub as a stdio child's does.
    assert!(tool_text(&hub.tool("legacy", "toggle-simulated-logging", json!({}))).contains("Started"));
    let logged = wait_for("the server's log message in the activity feed", 10 * SEC, || {
        let feed = hub.get("/activity").json();
        let events = feed["events"].as_array()?.clone();
        events.into_iter().find(|e| e["kind"] == "log" && e["server"] == "legacy")
    });
    assert!(logged["message"].as_str().unwrap().contains("message"), "{logged}");

    // Progress from the stream reaches the caller, under its own token, as it comes.
    let r = c.send(&json!({"jsonrpc": "2.0", "id": "lr", "method": "tools/call", "params": {
        "name": "trigger-long-running-operation", "arguments": {"duration": 1, "steps": 3}, "_meta": {"progressToken": "tok"}}}));
    assert_eq!(r.header("content-type"), Some("text/event-stream"), "{}", r.text());
    let ev = events(&r.text());
    let progress = ev
        .iter()
        .filter(|e| e["method"] == "notifications/progress" && e["params"]["progressToken"] == "tok")
        .count();
    assert_eq!(progress, 3, "{ev:?}");
    assert_eq!(ev.last().unwrap()["id"], "lr");
    assert!(ev.last().unwrap()["result"]["content"][0]["text"].as_str().unwrap().contains("completed"));

    // A call in flight when the server dies fails at once with the reason, not at its deadline.
    let mut reader = c.post_streaming(&json!({"jsonrpc": "2.0", "id": "dying", "method": "tools/call", "params": {
        "name": "trigger-long-running-operation", "arguments": {"duration": 15, "steps": 15}, "_meta": {"progressToken": 1}}}));
    assert_eq!(next_event(&mut reader, "the first progress")["method"], "notifications/progress");
    let t = Instant::now();
    drop(remote);
    let last = loop {
        let v = next_event(&mut reader, "the failed call's answer");
        if v["id"] == "dying" {
            break v;
        }
    };
    assert!(t.elapsed() < 5 * SEC, "the call failed when the stream dropped: {:?}", t.elapsed());
    let msg = last["error"]["message"].as_str().unwrap_or_default().to_string();
    assert_eq!(last["error"]["code"], -32000, "{last}");
    assert!(msg.contains("server legacy is down"), "{msg}");

    // The server leaves RUNNING and is restarted by its policy; a call meanwhile waits for the
    // restart no longer than its own deadline, as for any server that is starting.
    let s = wait_for("legacy to leave RUNNING", 5 * SEC, || {
        let s = hub.server("legacy");
        (s["status"] != "RUNNING").then_some(s)
    });
    assert!(s["last_error"].as_str().unwrap_or_default().contains("event stream"), "{s}");
    let t = Instant::now();
    let msg = hub.call("legacy", "tools/call", &echo("while down")).expect_error(504, "timeout");
    assert!(msg.contains("server legacy is still starting"), "{msg}");
    assert!(t.elapsed() < 5 * SEC, "a call to a server that is down does not hang: {:?}", t.elapsed());
    wait_for("a failed relaunch", 10 * SEC, || {
        (hub.server("legacy")["restart_count"].as_u64() >= Some(2)).then_some(())
    });

    let _back = sse_everything(port);
    hub.wait_status("legacy", "RUNNING", 15 * SEC);
    assert!(tool_text(&hub.call("legacy", "tools/call", &echo("back again"))).contains("back again"));
    // The reader of the stream that dropped was joined: one reader, the new stream's.
    wait_for("one sse-legacy thread", 2 * SEC, || {
        (threads(&hub).iter().filter(|t| *t == "sse-legacy").count() == 1).then_some(())
    });

    // A stop closes the stream and joins its reader.
    assert_eq!(hub.post("/servers/legacy/stop").json()["status"], "STOPPED");
    wait_for("the reader to be joined", 2 * SEC, || {
        (!threads(&hub).iter().any(|t| t.starts_with("sse-"))).then_some(())
    });
}

/// A legacy HTTP+SSE server written out by hand: `GET /sse` names the endpoint `/message?sessionId=s1`
/// (`GET /foreign-sse` one on another origin); every POST is recorded and answered 202, and
/// what it asks for is answered on the stream: `initialize`, `tools/call` (an echo), and
/// `tools/call` of `hang`, which the server answers only with a `ping` of its own.
struct FakeLegacy {
    port: u16,
    posts: Arc<Mutex<Vec<(String, Value)>>>,
}

impl FakeLegacy {
    fn start() -> FakeLegacy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let posts = Arc::new(Mutex::new(Vec::new()));
        let events: Arc<Mutex<Option<TcpStream>>> = Arc::default();
        let recorded = posts.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (posts, events) = (recorded.clone(), events.clone());
                std::thread::spawn(move || FakeLegacy::serve(conn, &posts, &events));
            }
        });
        FakeLegacy { port, posts }
    }

    fn serve(conn: TcpStream, posts: &Mutex<Vec<(String, Value)>>, events: &Mutex<Option<TcpStream>>) {
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut out = conn;
        if head.starts_with("GET") {
            let endpoint =
                if path == "/foreign-sse" { "http://evil.example/message" } else { "/message?sessionId=s1" };
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n: hello\n\nevent: endpoint\ndata: {endpoint}\n\n"
            );
            *events.lock().unwrap() = Some(out);
            return;
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let msg: Value = serde_json::from_slice(&body).unwrap();
        posts.lock().unwrap().push((path, msg.clone()));
        // One request per connection, said so: a client that pooled a connection this fake
        // closes without a word would send its next POST (the answer to the server's ping) into
        // a closed socket, and lose it.
        let _ =
            out.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 8\r\nConnection: close\r\n\r\nAccepted");
        let answer = match msg["method"].as_str() {
            Some("initialize") => {
                json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"protocolVersion": "2024-11-05",
                "capabilities": {"tools": {}}, "serverInfo": {"name": "fake-legacy", "version": "0"}}})
            }
            Some("tools/call") if msg["params"]["name"] == "hang" => {
                json!({"jsonrpc": "2.0", "id": "srv-ping", "method": "ping"})
            }
            Some("tools/call") => json!({"jsonrpc": "2.0", "id": msg["id"], "result": {
                "content": [{"type": "text", "text": msg["params"]["arguments"]["text"]}]}}),
            _ => return,
        };
        // Split over two data lines, as a server may.
        let text = answer.to_string().replacen(',', ",\ndata: ", 1);
        if let Some(stream) = events.lock().unwrap().as_mut() {
            let _ = write!(stream, "event: message\ndata: {text}\n\n");
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits for a POST whose message `f` picks.
    fn wait_post(&self, what: &str, f: impl Fn(&str, &Value) -> bool) -> Value {
        wait_for(what, 10 * SEC, || {
            self.posts.lock().unwrap().iter().find(|(path, m)| f(path, m)).map(|(_, m)| m.clone())
        })
    }
}

#[test]
fn legacy_servers_get_pings_answered_cancellations_and_no_foreign_endpoint() {
    let fake = FakeLegacy::start();
    let servers = json!({"servers": {
        "fake": {"type": "sse", "url": fake.url("/sse"), "request_timeout": 3},
        "foreign": {"type": "sse", "url": fake.url("/foreign-sse"), "max_restarts": 0},
    }});
    let hub = Hub::builder().servers(&servers.to_string()).start();
    let msg = hub.post("/servers/foreign/start").expect_error(502, "upstream_error");
    assert!(msg.contains("not on the origin") && msg.contains("evil.example"), "{msg}");

    let s = hub.post("/servers/fake/start");
    assert_eq!(s.status, 200, "{}", s.text());
    let init = fake
        .wait_post("initialize", |path, m| path == "/message?sessionId=s1" && m["method"] == "initialize");
    assert_eq!(init["params"]["clientInfo"]["name"], "agenthub");
    fake.wait_post("notifications/initialized", |_, m| m["method"] == "notifications/initialized");
    let r = hub.call("fake", "tools/call", &json!({"name": "echo", "arguments": {"text": "split data"}}));
    assert_eq!(tool_text(&r), "split data");

    // The server's own ping is answered; the client that leaves has its request cancelled.
    let c = McpSession::connect(&hub, "/mcp/fake");
    let reader = c.post_streaming(&json!({"jsonrpc": "2.0", "id": "h", "method": "tools/call",
        "params": {"name": "hang", "arguments": {}}}));
    let pong = fake.wait_post("the answer to the server's ping", |_, m| m["id"] == "srv-ping");
    assert_eq!(pong["result"], json!({}), "{pong}");
    let hang = fake.wait_post("the hang call", |_, m| m["params"]["name"] == "hang");
    assert_ne!(hang["id"], "h", "the server sees the hub's id");
    drop(reader);
    let cancel = fake.wait_post("the cancellation", |_, m| {
        m["method"] == "notifications/cancelled" && m["params"]["requestId"] == hang["id"]
    });
    assert_eq!(cancel["params"]["reason"], "the client went away", "{cancel}");

    // A call the server never answers times out, and is cancelled at the server.
    let t = Instant::now();
    hub.call("fake", "tools/call", &json!({"name": "hang", "arguments": {}})).expect_error(504, "timeout");
    assert!(t.elapsed() < 6 * SEC, "{:?}", t.elapsed());
    fake.wait_post("the timed-out call's cancellation", |_, m| {
        m["method"] == "notifications/cancelled"
            && m["params"]["reason"].as_str().is_some_and(|r| r.contains("timed out"))
    });
}
