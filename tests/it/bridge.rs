//! The stdio bridge on its own, through the library: concurrent clients reusing the same ids.

use std::sync::Arc;
use std::time::Duration;

use agenthub::{Bridge, Peer, Process, RpcError, ServerConfig, StderrRing};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::harness::{FIXTURE, initialize_params};

struct Quiet;

impl Peer for Quiet {
    fn request(&self, _: &str, _: &Value) -> Result<Value, RpcError> {
        Ok(json!({}))
    }
    fn notification(&self, _: &str, _: &Value) {}
}

#[test]
fn sixty_four_callers_with_identical_ids_each_get_their_own_answer() {
    let cfg = ServerConfig { command: Some(FIXTURE.into()), ..Default::default() };
    let (mut process, pipes) = Process::spawn("fx", &cfg, std::path::Path::new("/nonexistent")).unwrap();
    let ring = Arc::new(Mutex::new(StderrRing::default()));
    let bridge = Arc::new(
        Bridge::start("fx", pipes.stdin, pipes.stdout, pipes.stderr, ring, Arc::new(Quiet)).unwrap(),
    );
    let init = initialize_params("2025-11-25", json!({}));
    bridge.call("initialize", Some(init), Duration::from_secs(5)).unwrap();
    bridge.notify("notifications/initialized", None);
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let bridge = bridge.clone();
            std::thread::spawn(move || {
                let mut mine = 0;
                for round in 0..20 {
                    // Every caller uses id 1 (and sometimes "1"): the child must never see a clash.
                    let id = if round % 2 == 0 { json!(1) } else { json!("1") };
                    let text = format!("caller {i} round {round}");
                    let req = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                        "params": {"name": "sleep", "arguments": {"ms": (i * 7 + round) % 5}}});
                    let echo = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                        "params": {"name": "echo", "arguments": {"text": text}}});
                    let r = bridge.relay(&echo, Duration::from_secs(10)).unwrap();
                    assert_eq!(r["id"], id);
                    assert_eq!(r["result"]["content"][0]["text"], text.as_str());
                    let r = bridge.relay(&req, Duration::from_secs(10)).unwrap();
                    assert_eq!(r["id"], id);
                    mine += 1;
                }
                mine
            })
        })
        .collect();
    let total: i32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(total, 64 * 20);
    bridge.close_stdin();
    process.stop(Duration::from_secs(2));
    bridge.join(Duration::from_secs(1));
}
