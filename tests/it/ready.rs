//! `/health/ready`: what an orchestrator's readiness probe asks. 503 while an auto-start server
//! has not been tried once, 200 once each is RUNNING or failed and the catalog is built;
//! `/health` (liveness) answers 200 all along.

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
    assert_eq!(r.status, 503, "{}", r.text());
    let starting = r.json()["starting"].clone();
    assert!(starting.as_array().unwrap().contains(&json!("slow")), "{starting}");
    assert!(!starting.as_array().unwrap().contains(&json!("later")), "not an auto-start server: {starting}");
    assert_eq!(hub.get("/health").status, 200);
    // Ready once `slow` runs, though `broken` failed and `later` never starts.
    let ready = wait_for("ready", 10 * SEC, || {
        let r = hub.get("/health/ready");
        (r.status == 200).then(|| r.json())
    });
    assert_eq!(hub.server("slow")["status"], "RUNNING");
    assert_eq!(hub.server("broken")["status"], "FAILED");
    assert_eq!(ready["status"], "ready");
    assert!(ready["tools"].as_u64().unwrap() >= 10, "the catalog is built: {ready}");
}
