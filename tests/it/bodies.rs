//! What request bodies cost the hub's memory: every connection's body counts against one budget
//! (`AGENTHUB_MAX_BODIES_BYTES`), so slow large bodies cannot add up to gigabytes, and the
//! memory a burst of large bodies took is given back once it has passed.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::*;

const MIB: usize = 1 << 20;

/// The status of the answer on `s` once it came (within `within`), without reading it.
fn status_within(s: &TcpStream, within: Duration) -> Option<u16> {
    s.set_read_timeout(Some(within)).unwrap();
    let mut first = [0u8; 12];
    let n = s.peek(&mut first).ok()?;
    String::from_utf8_lossy(&first[..n]).split_whitespace().nth(1).and_then(|c| c.parse().ok())
}

#[test]
fn bodies_past_the_budget_get_503_and_small_requests_go_on() {
    let hub = Hub::builder().env("AGENTHUB_MAX_BODIES_BYTES", &(8 * MIB).to_string()).start();
    assert_eq!(hub.get("/health").status, 200);
    let before = rss(hub.pid());
    // Twelve clients send all of a 3 MiB body but its last byte: two fit the budget.
    let body = vec![b' '; 3 * MIB];
    let head =
        format!("POST /health HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n", hub.addr, body.len());
    let conns: Vec<TcpStream> = std::thread::scope(|scope| {
        let senders: Vec<_> = (0..12)
            .map(|_| {
                scope.spawn(|| {
                    let mut s = TcpStream::connect(&hub.addr).unwrap();
                    s.set_write_timeout(Some(10 * SEC)).unwrap();
                    // A refused client may find its connection closed while it still writes.
                    let _ = s.write_all(head.as_bytes()).and_then(|_| s.write_all(&body[1..]));
                    s
                })
            })
            .collect();
        senders.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let statuses: Vec<Option<u16>> = conns.iter().map(|s| status_within(s, 3 * SEC)).collect();
    let refused = statuses.iter().filter(|s| **s == Some(503)).count();
    let waiting = statuses.iter().filter(|s| s.is_none()).count();
    assert_eq!((refused, waiting), (10, 2), "{statuses:?}");
    let grown = rss(hub.pid()).saturating_sub(before);
    assert!(grown < 24 * MIB, "the hub's memory grew by {} MiB", grown / MIB);
    let refusal = read_response(&mut BufReader::new(
        conns.iter().zip(&statuses).find(|(_, s)| **s == Some(503)).unwrap().0,
    ));
    assert_eq!(refusal.header("Retry-After"), Some("1"));
    assert_eq!(refusal.json()["error"]["code"], "server_unavailable");
    // Small requests go on meanwhile, bodies included.
    assert_eq!(hub.get("/health").status, 200);
    assert_eq!(hub.post_json("/health", &serde_json::json!({"small": true})).status, 405);
    // The two held bodies end, are answered, and make room again.
    for (mut s, _) in conns.into_iter().zip(&statuses).filter(|(_, s)| s.is_none()) {
        s.write_all(b" ").unwrap();
        assert_eq!(read_response(&mut s).status, 405);
    }
    let r = raw_request(&hub.addr, "POST", "/health", &[], &body);
    assert_eq!(r.status, 405, "{}", r.text());
}

#[test]
fn memory_comes_back_after_a_burst_of_large_bodies() {
    let hub = Hub::empty();
    assert_eq!(hub.get("/health").status, 200);
    let before = rss(hub.pid());
    // Eight clients at once, four bodies of 1 to 4 MiB each (80 MiB in all), on keep-alive
    // connections; then they leave.
    std::thread::scope(|scope| {
        for i in 0..8 {
            let hub = &hub;
            scope.spawn(move || {
                let mut c = Conn::new(&hub.addr);
                for j in 0..4 {
                    let body = vec![b' '; (1 + (i + j) % 4) * MIB];
                    assert_eq!(c.request("POST", "/health", &[], &body).status, 405);
                }
            });
        }
    });
    // Within a few MiB of where it was: not the burst's peak kept by the allocator.
    let limit = before + 8 * MIB;
    wait_for("the hub's memory to come back", 10 * SEC, || (rss(hub.pid()) < limit).then_some(()));
}
