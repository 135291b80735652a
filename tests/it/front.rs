//! The HTTP front under hostile or careless clients: bodies that never come, bursts of
//! connections, oversized heads, slow heads, idle keep-alive, refusals, the connection and
//! descriptor limits. Each would freeze, starve or bloat a front without these guards.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;

/// A connection with `head` sent (and maybe part of a body), left open.
fn send_partial(hub: &Hub, head: &str) -> TcpStream {
    let mut s = TcpStream::connect(&hub.addr).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s
}

/// The answer on `s` (status and all), within `within`; then whether the hub closed it.
fn answer_then_closed(s: TcpStream, within: Duration) -> (Resp, bool) {
    s.set_read_timeout(Some(within)).unwrap();
    let mut reader = BufReader::new(s);
    let r = read_buffered_response(&mut reader);
    let mut rest = Vec::new();
    let closed = reader.read_to_end(&mut rest).is_ok();
    (r, closed)
}

#[test]
fn bodies_that_never_come_do_not_freeze_the_front() {
    let hub = Hub::builder().env("AGENTHUB_WORKERS", "1").start();
    let idle: Vec<TcpStream> = (0..8)
        .map(|_| {
            send_partial(
                &hub,
                &format!(
                    "POST /servers HTTP/1.1\r\nHost: {}\r\nContent-Length: 4000000\r\n\r\n{{\"na",
                    hub.addr
                ),
            )
        })
        .collect();
    let mut c = Conn::new(&hub.addr);
    let started = Instant::now();
    assert_eq!(c.get("/health").status, 200);
    assert!(started.elapsed() < 5 * SEC, "/health waited for the bodies");
    drop(idle);
}

#[test]
fn refusals_answer_at_once_without_the_body_and_close() {
    let hub = Hub::builder().env("AGENTHUB_TOKEN", "a-token-of-sixteen-chars").start();
    let check = |head: String, status: u16| {
        let s = send_partial(&hub, &head);
        let (r, closed) = answer_then_closed(s, 5 * SEC);
        assert_eq!(r.status, status, "{head:?}: {}", r.text());
        assert!(closed, "{head:?}: the connection is closed after a refusal");
    };
    let addr = &hub.addr;
    check(format!("POST /servers HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 1000000\r\n\r\n"), 401);
    check(
        format!(
            "POST /servers HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://evil.example\r\nContent-Length: 1000000\r\n\r\n"
        ),
        403,
    );
    check(
        format!(
            "POST /servers HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer a-token-of-sixteen-chars\r\nContent-Length: 99999999\r\n\r\n"
        ),
        413,
    );
    check(
        format!(
            "POST /servers HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        400,
    );
}

#[test]
fn every_connection_of_a_burst_is_served() {
    let hub = Hub::empty();
    // Like wrk: 16 keep-alive connections opened at once, then each asks as fast as it is
    // answered for two seconds. Every one of them must be answered, again and again.
    let conns: Vec<TcpStream> = (0..16).map(|_| TcpStream::connect(&hub.addr).unwrap()).collect();
    let until = Instant::now() + 2 * SEC;
    let served: Vec<usize> = std::thread::scope(|scope| {
        let clients: Vec<_> = conns
            .into_iter()
            .map(|s| {
                let addr = hub.addr.clone();
                scope.spawn(move || {
                    s.set_read_timeout(Some(3 * SEC)).unwrap();
                    let mut reader = BufReader::new(s);
                    let mut answered = 0;
                    while Instant::now() < until {
                        let req = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n");
                        if reader.get_mut().write_all(req.as_bytes()).is_err() {
                            break;
                        }
                        let mut line = String::new();
                        if reader.read_line(&mut line).is_err() || !line.contains(" 200 ") {
                            break;
                        }
                        // The rest of the answer: headers, then the body by its length.
                        let mut length = 0;
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
                                break;
                            }
                            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).is_err() {
                            break;
                        }
                        answered += 1;
                    }
                    answered
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert!(served.iter().all(|n| *n > 10), "every connection was answered throughout: {served:?}");
}

#[test]
fn oversized_heads_are_refused_and_closed() {
    let hub = Hub::empty();
    let addr = &hub.addr;
    let check = |head: String, status: u16| {
        let mut s = TcpStream::connect(addr).unwrap();
        // The hub may answer and close before it has all of a huge head: a failed write is fine.
        let _ = s.write_all(head.as_bytes());
        let (r, closed) = answer_then_closed(s, 5 * SEC);
        assert_eq!(r.status, status, "{}", r.text());
        assert!(closed);
    };
    check(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nX-Big: {}\r\n\r\n", "a".repeat(200_000)), 431);
    check(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n{}\r\n", "X-Many: 1\r\n".repeat(2000)), 431);
    check(format!("GET /{} HTTP/1.1\r\nHost: {addr}\r\n\r\n", "a".repeat(20_000)), 414);
    assert_eq!(Conn::new(addr).get("/health").status, 200, "the hub serves on");
}

#[test]
fn slow_heads_and_idle_connections_are_closed() {
    let hub = Hub::builder().env("AGENTHUB_READ_TIMEOUT_S", "1").start();
    // A head trickling in: 408 once its budget is spent.
    let s = send_partial(&hub, &format!("GET /health HTTP/1.1\r\nHost: {}\r\nX-Slow", hub.addr));
    let (r, closed) = answer_then_closed(s, 5 * SEC);
    assert_eq!((r.status, closed), (408, true), "{}", r.text());
    // A body that stops: 408 too.
    let s = send_partial(
        &hub,
        &format!("POST /servers HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\r\n{{", hub.addr),
    );
    let (r, closed) = answer_then_closed(s, 5 * SEC);
    assert_eq!((r.status, closed), (408, true), "{}", r.text());
    // An idle keep-alive connection: closed quietly after twice the budget.
    let mut c = TcpStream::connect(&hub.addr).unwrap();
    write!(c, "GET /health HTTP/1.1\r\nHost: {}\r\n\r\n", hub.addr).unwrap();
    c.set_read_timeout(Some(10 * SEC)).unwrap();
    let mut reader = BufReader::new(c);
    assert_eq!(read_buffered_response(&mut reader).status, 200);
    let idle = Instant::now();
    let mut rest = Vec::new();
    assert!(reader.read_to_end(&mut rest).is_ok(), "the hub closed the idle connection");
    assert!(idle.elapsed() >= SEC, "not before the idle limit");
}

#[test]
fn past_the_connection_limit_a_503_and_the_hub_serves_on() {
    let hub = Hub::builder().env("AGENTHUB_MAX_CONNECTIONS", "4").start();
    let mut open: Vec<Conn> = (0..4).map(|_| Conn::new(&hub.addr)).collect();
    for c in &mut open {
        assert_eq!(c.get("/health").status, 200);
    }
    let extra = TcpStream::connect(&hub.addr).unwrap();
    let (r, closed) = answer_then_closed(extra, 5 * SEC);
    assert_eq!((r.status, closed), (503, true), "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "server_unavailable");
    drop(open.pop());
    let mut again = wait_for("a place to free up", 5 * SEC, || {
        let mut c = Conn::new(&hub.addr);
        (c.get("/health").status == 200).then_some(c)
    });
    assert_eq!(again.get("/health").status, 200);
}

#[test]
fn at_the_descriptor_limit_clients_get_503_and_the_hub_lives_on() {
    let hub = Hub::builder().fd_limit(96).start();
    let conns: Vec<TcpStream> = (0..150).filter_map(|_| TcpStream::connect(&hub.addr).ok()).collect();
    let busy = conns
        .into_iter()
        .filter_map(|s| {
            s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line).ok().filter(|_| line.contains(" 503 "))
        })
        .count();
    assert!(busy > 0, "connections past the limit are told 503");
    // Once they are closed, the hub takes connections again.
    let mut c = wait_for("the hub to accept again", 10 * SEC, || {
        let mut c = Conn::new(&hub.addr);
        (c.get("/health").status == 200).then_some(c)
    });
    assert_eq!(c.get("/health").status, 200);
}

/// Whether the hub has answered on `s` by now: the status of what it sent, if it sent anything.
fn answered_now(s: &TcpStream) -> Option<u16> {
    s.set_nonblocking(true).unwrap();
    let mut first = [0u8; 12];
    let n = s.peek(&mut first).ok();
    s.set_nonblocking(false).unwrap();
    let line = String::from_utf8_lossy(&first[..n?]).into_owned();
    line.split_whitespace().nth(1).and_then(|c| c.parse().ok())
}

#[test]
fn out_of_descriptors_the_hub_answers_503_and_serves_again() {
    // Connections allowed past the descriptor limit: accept itself fails (EMFILE). The hub
    // tells the clients that wait 503 and goes on; once connections close, it serves again.
    let mut hub =
        Hub::builder().servers(NO_SERVERS).fd_limit(64).env("AGENTHUB_MAX_CONNECTIONS", "1000").start();
    let conns: Vec<TcpStream> = (0..150).filter_map(|_| TcpStream::connect(&hub.addr).ok()).collect();
    let told = wait_for("clients past the descriptor limit told 503", 10 * SEC, || {
        let told = conns.iter().filter(|s| answered_now(s) == Some(503)).count();
        (told > 0).then_some(told)
    });
    assert!(told > 0);
    assert!(hub.child.try_wait().unwrap().is_none(), "the hub lives on: {}", hub.log());
    // The warning is written before the 503; the log is read from the hub's stderr meanwhile.
    let log = wait_for("the warning in the log", 5 * SEC, || {
        let log = hub.log();
        log.contains("cannot accept connections").then_some(log)
    });
    assert_eq!(log.matches("cannot accept connections").count(), 1, "said once: {log}");
    drop(conns);
    let mut c = wait_for("the hub to serve again", 10 * SEC, || {
        let mut c = Conn::new(&hub.addr);
        (c.get("/health").status == 200).then_some(c)
    });
    assert_eq!(c.get("/health").status, 200);
    assert!(hub.child.try_wait().unwrap().is_none(), "{}", hub.log());
}

#[test]
fn blank_lines_before_a_request_are_few_and_cheap() {
    let hub = Hub::empty();
    let addr = &hub.addr;
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "\r\n\r\nGET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    s.set_read_timeout(Some(5 * SEC)).unwrap();
    assert_eq!(read_response(&mut s).status, 200, "a couple of blank lines are allowed");
    // A megabyte of them: refused at once, not read (and shifted) one by one.
    let s = TcpStream::connect(addr).unwrap();
    let mut w = s.try_clone().unwrap();
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&b"\r\n".repeat(1 << 19));
    });
    let (r, closed) = answer_then_closed(s, 5 * SEC);
    assert_eq!((r.status, closed), (400, true), "{}", r.text());
    assert!(started.elapsed() < 5 * SEC);
    writer.join().unwrap();
    assert_eq!(Conn::new(addr).get("/health").status, 200, "the hub serves on");
}

#[test]
fn body_framing_is_strict() {
    let hub = Hub::empty();
    // `POST /health` is framed and routed (405) when its body is framed right.
    let check = |rest: &str, status: u16| {
        let raw = format!("POST /health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{rest}", hub.addr);
        let mut s = TcpStream::connect(&hub.addr).unwrap();
        let _ = s.write_all(raw.as_bytes());
        let (r, closed) = answer_then_closed(s, 5 * SEC);
        assert_eq!(r.status, status, "{rest:?}: {}", r.text());
        assert!(closed, "{rest:?}");
    };
    let chunked = "Transfer-Encoding: chunked\r\n";
    check("Content-Length: 2\r\n\r\n{}", 405);
    check("Content-Length: +2\r\n\r\n{}", 400);
    check("Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400);
    check("Content-Length: 2, 2\r\n\r\n{}", 400);
    check(&format!("{chunked}\r\n2\r\n{{}}\r\n0\r\n\r\n"), 405);
    check(&format!("{chunked}\r\n2;name=value\r\n{{}}\r\n0\r\n\r\n"), 405);
    check(&format!("{chunked}\r\n+2\r\n{{}}\r\n0\r\n\r\n"), 400);
    check(&format!("{chunked}\r\n0x2\r\n{{}}\r\n0\r\n\r\n"), 400);
    // The data's CRLF is missing: what follows is not read as the next chunk.
    check(&format!("{chunked}\r\n2\r\n{{}}XX0\r\n\r\n"), 400);
    check(&format!("{chunked}\r\n2\n{{}}\r\n0\r\n\r\n"), 400);
    check(&format!("{chunked}\r\n2\r\n{{}}\n0\r\n\r\n"), 400);
    // Several Transfer-Encoding headers are one list, which must end in chunked.
    check(&format!("{chunked}Transfer-Encoding: gzip\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n"), 400);
    check(&format!("Transfer-Encoding: gzip\r\n{chunked}\r\n2\r\n{{}}\r\n0\r\n\r\n"), 501);
    check(&format!("{chunked}{chunked}\r\n2\r\n{{}}\r\n0\r\n\r\n"), 400);
    check("Transfer-Encoding: identity\r\nContent-Length: 2\r\n\r\n{}", 400);
    check("Transfer-Encoding: identity\r\n\r\n{}", 400);
    check(&format!("{chunked}Content-Length: 2\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n"), 400);
    let mut s = TcpStream::connect(&hub.addr).unwrap();
    write!(s, "POST /health HTTP/1.0\r\nHost: {}\r\n{chunked}\r\n2\r\n{{}}\r\n0\r\n\r\n", hub.addr).unwrap();
    let (r, _) = answer_then_closed(s, 5 * SEC);
    assert_eq!(r.status, 400, "chunked in HTTP/1.0: {}", r.text());
    assert_eq!(hub.get("/health").status, 200);
}

#[test]
fn forged_lengths_leave_no_thread_or_descriptor_behind() {
    let hub = Hub::empty();
    assert_eq!(Conn::new(&hub.addr).get("/health").status, 200);
    let before = wait_for("the hub to settle", 5 * SEC, || Some(threads_and_fds(hub.pid())));
    for _ in 0..20 {
        let s = send_partial(
            &hub,
            &format!(
                "POST /servers HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000000000000000000\r\n\r\n",
                hub.addr
            ),
        );
        let (r, _) = answer_then_closed(s, 5 * SEC);
        assert_eq!(r.status, 413);
    }
    wait_for("threads and descriptors back to where they were", 10 * SEC, || {
        let now = threads_and_fds(hub.pid());
        (now.0 <= before.0 && now.1 <= before.1).then_some(())
    });
}

#[test]
fn expect_continue_and_chunked_bodies_are_understood() {
    let hub = Hub::empty();
    let body = json!({"name": "late", "command": FIXTURE}).to_string();
    // curl's way with larger bodies: the head first, the body once the hub says 100 Continue.
    let mut s = TcpStream::connect(&hub.addr).unwrap();
    write!(
        s,
        "POST /servers HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        hub.addr,
        body.len()
    )
    .unwrap();
    s.set_read_timeout(Some(5 * SEC)).unwrap();
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 100"), "{line}");
    reader.read_line(&mut line).unwrap();
    reader.get_mut().write_all(body.as_bytes()).unwrap();
    assert_eq!(read_buffered_response(&mut reader).status, 201);
    // A chunked body.
    let chunked = json!({"name": "chunky", "command": FIXTURE}).to_string();
    let (a, b) = chunked.split_at(10);
    let mut s = TcpStream::connect(&hub.addr).unwrap();
    write!(
        s,
        "POST /servers HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        hub.addr,
        a.len(),
        b.len()
    )
    .unwrap();
    assert_eq!(read_response(&mut s).status, 201);
    assert_eq!(hub.server("chunky")["name"], "chunky");
}

#[test]
fn a_forged_chunk_size_is_refused_not_a_dead_connection() {
    let hub = Hub::empty();
    // The largest size a chunk line can name: adding it to the body read so far overflows.
    for size in ["ffffffffffffffff", "fffffffffffffffe"] {
        let mut s = TcpStream::connect(&hub.addr).unwrap();
        write!(
            s,
            "POST /servers HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n{size}\r\n",
            hub.addr
        )
        .unwrap();
        let (r, closed) = answer_then_closed(s, 5 * SEC);
        assert_eq!(r.status, 413, "chunk size {size}: {}", r.text());
        assert!(closed, "the connection closes after a refusal");
    }
    assert_eq!(hub.get("/health").status, 200);
}

/// A POST of `body` to `path`, as raw HTTP/1.1.
fn post_text(hub: &Hub, path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        hub.addr,
        body.len()
    )
}

#[test]
fn pipelined_requests_are_answered_in_order_and_a_long_answer_keeps_its_connection() {
    let hub = Hub::builder()
        .fixtures(&[("fx", json!({"auto_start": true}))])
        .env("AGENTHUB_READ_TIMEOUT_S", "1")
        .start();
    hub.wait_status("fx", "RUNNING", 30 * SEC);
    let slow = json!({"name": "sleep", "arguments": {"ms": 1500}}).to_string();
    let quick = json!({"name": "echo", "arguments": {"text": "second"}}).to_string();
    // Three requests in one write: a slow call, a quick one, a plain GET.
    let mut s = TcpStream::connect(&hub.addr).unwrap();
    let burst = format!(
        "{}{}GET /health HTTP/1.1\r\nHost: {}\r\n\r\n",
        post_text(&hub, "/mcp/fx/tools/call", &slow),
        post_text(&hub, "/mcp/fx/tools/call", &quick),
        hub.addr
    );
    s.write_all(burst.as_bytes()).unwrap();
    s.set_read_timeout(Some(20 * SEC)).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let answers: Vec<Resp> = (0..3).map(|_| read_buffered_response(&mut reader)).collect();
    assert_eq!(answers.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 200, 200]);
    assert!(answers[0].text().contains("slept 1500"), "{}", answers[0].text());
    assert!(answers[1].text().contains("second"), "{}", answers[1].text());
    assert!(answers[2].json()["status"].is_string(), "{}", answers[2].text());
    // A call outlasting the idle limit (twice the 1 s budget) keeps its connection: the answer
    // comes, and the connection serves on.
    let longer = json!({"name": "sleep", "arguments": {"ms": 2600}}).to_string();
    s.write_all(post_text(&hub, "/mcp/fx/tools/call", &longer).as_bytes()).unwrap();
    let r = read_buffered_response(&mut reader);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("slept 2600"), "{}", r.text());
    write!(s, "GET /health HTTP/1.1\r\nHost: {}\r\n\r\n", hub.addr).unwrap();
    assert_eq!(read_buffered_response(&mut reader).status, 200);
}

#[test]
fn a_client_that_does_not_read_its_answers_holds_no_worker() {
    let hub = Hub::builder().env("AGENTHUB_WORKERS", "1").start();
    // 600 pipelined requests for the 37 KB page, none read: far more than the socket buffers
    // hold, so an answer is left waiting for a client that does not read.
    let page = format!("GET /dashboard HTTP/1.1\r\nHost: {}\r\n\r\n", hub.addr);
    let mut stuck = TcpStream::connect(&hub.addr).unwrap();
    stuck.write_all(page.repeat(600).as_bytes()).unwrap();
    wait_for("the stuck client's answers to fill its socket", 10 * SEC, || {
        (hub.log().matches("GET /dashboard 200").count() > 50).then_some(())
    });
    // The one worker serves on.
    let mut c = Conn::new(&hub.addr);
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(c.get("/health").status, 200);
        assert!(started.elapsed() < 2 * SEC, "/health waited behind a client that does not read");
    }
    // And the stuck client, reading at last, gets every answer, in order and whole.
    stuck.set_read_timeout(Some(20 * SEC)).unwrap();
    let mut reader = BufReader::new(stuck);
    let first = read_buffered_response(&mut reader);
    assert!(first.status == 200 && first.text().contains("<html"), "{}", first.status);
    for i in 1..600 {
        let r = read_buffered_response(&mut reader);
        assert_eq!((r.status, r.body.len()), (200, first.body.len()), "answer {i} is whole");
    }
}
