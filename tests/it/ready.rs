//! `/health/ready`: what an orchestrator's readiness probe asks. 503 while an auto-start server
//! has not been tried once, 200 once each is RUNNING or failed and the catalog is built, with
//! no token and saying no more than that; `/health` (liveness) answers 200 all along.

use serde_json::json;

use crate::harness::*;

#[test]
fn ready_once_every_auto_start_server_was_tried_and_the_catalog_is_built() {
    let hub = Hub::with_fixtures(&[
        ("slow", json!({"auto_start": true, "args": ["--slow-start", "1500"]})),
        (
            "broken",
            json!({"auto_start": true, "args": ["--exit-at-start", "1"], "restart_on_failure": false}),
        ),
        ("later", json!({"auto_start": false})),
    ]);
    // While `slow` shakes hands: alive, not ready, and which server it waits for is said.
    let r = hub.get("/health/ready");
    assert_eq!((r.status, r.json()), (503, json!({"status": "starting"})), "{}", r.text());
    assert_eq!(hub.get("/health").status, 200);
    // Ready once `slow` runs, though `broken` failed and `later` never starts.
    let ready = wait_for("ready", 10 * SEC, || {
        let r = hub.get("/health/ready");
        (r.status == 200).then(|| r.json())
    });
    assert_eq!(hub.server("slow")["status"], "RUNNING");
    assert_eq!(hub.server("broken")["status"], "FAILED");
    assert_eq!(ready, json!({"status": "ready"}));
    // The catalog was built for it: the dashboard's state (which never lists) knows the tools.
    let state = hub.get("/dashboard/state").json();
    let slow = state["servers"].as_array().unwrap().iter().find(|s| s["name"] == "slow").cloned();
    assert_eq!(slow.unwrap()["tools"], 10, "{state}");
}

#[test]
fn with_a_token_only_readiness_answers_without_it() {
    let hub = Hub::builder().servers(NO_SERVERS).env("AGENTHUB_TOKEN", "a-token-of-sixteen+").start();
    let r = wait_for("ready", 10 * SEC, || Some(hub.get("/health/ready")).filter(|r| r.status == 200));
    assert_eq!(r.json(), json!({"status": "ready"}), "it says no more");
    assert_eq!(hub.get("/health").status, 401, "liveness takes the token");
}
