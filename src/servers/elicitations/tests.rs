//! The held elicitations as a value, with the clock passed in: deadlines of the request's
//! call (moved by it, ended with it) or of the setting, the bound, and what the API shows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Elicitations, Gone, MAX_HELD};
use crate::exchange::Inbox;
use crate::transport::Later;

const WAIT: Duration = Duration::from_secs(120);

fn ask(n: u64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": format!("s:fx:{n}"), "method": "elicitation/create",
           "params": {"message": message, "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}}}})
}

fn hold(e: &Elicitations, n: u64, call: Option<&Arc<Inbox>>, now: Instant) -> Result<super::Kept, String> {
    let forward = ask(n, &format!("question {n}"));
    e.hold("fx", &Later { forward: &forward, why: "no client", call }, now)
}

fn due(e: &Elicitations, now: Instant) -> Vec<(String, Gone)> {
    e.book.lock().take_due(now).into_iter().map(|(h, why)| (h.id, why)).collect()
}

#[test]
fn without_a_known_call_the_setting_is_the_deadline() {
    let e = Elicitations::new(WAIT);
    let t0 = Instant::now();
    let kept = hold(&e, 1, None, t0).unwrap();
    assert_eq!((kept.id.as_str(), kept.waits, kept.of_request), ("e1", WAIT, false));
    let shown = e.list(t0 + Duration::from_secs(20));
    assert_eq!(shown.len(), 1);
    let one = &shown[0];
    assert_eq!(
        (one["id"].clone(), one["server"].clone(), one["message"].clone()),
        (json!("e1"), json!("fx"), json!("question 1"))
    );
    assert_eq!(
        (one["mode"].clone(), one["expires_in_s"].clone(), one["deadline_of"].clone()),
        (json!("form"), json!(100.0), json!("setting"))
    );
    assert_eq!(one["requestedSchema"]["properties"]["name"]["type"], "string");
    // Minutes pass without a sleep: due at two minutes, not a moment before.
    assert!(due(&e, t0 + WAIT - Duration::from_millis(1)).is_empty());
    assert_eq!(due(&e, t0 + WAIT), [("e1".to_string(), Gone::Expired)]);
    assert!(e.list(t0 + WAIT).is_empty());
}

#[test]
fn the_calls_deadline_is_the_requests_and_moves_with_it() {
    let e = Elicitations::new(WAIT);
    let t0 = Instant::now();
    let call = Arc::new(Inbox::default());
    call.set_deadline(t0 + Duration::from_secs(60));
    let kept = hold(&e, 1, Some(&call), t0).unwrap();
    assert_eq!((kept.waits, kept.of_request), (Duration::from_secs(60), true));
    assert_eq!(e.list(t0)[0]["deadline_of"], "request");
    // Progress moved the call's deadline: the elicitation waits as long.
    call.set_deadline(t0 + Duration::from_secs(300));
    assert!(due(&e, t0 + Duration::from_secs(200)).is_empty());
    assert_eq!(e.list(t0 + Duration::from_secs(200))[0]["expires_in_s"], json!(100.0));
    assert_eq!(due(&e, t0 + Duration::from_secs(300)), [("e1".to_string(), Gone::Expired)]);
}

#[test]
fn a_call_that_ends_takes_its_elicitation_along() {
    let e = Elicitations::new(WAIT);
    let t0 = Instant::now();
    let (early, late) = (Arc::new(Inbox::default()), Arc::new(Inbox::default()));
    early.set_deadline(t0 + Duration::from_secs(60));
    late.set_deadline(t0 + Duration::from_secs(60));
    hold(&e, 1, Some(&early), t0).unwrap();
    hold(&e, 2, Some(&late), t0).unwrap();
    // Cancelled before its deadline: declined as ended; timed out at it: expired.
    early.call_ended();
    assert_eq!(due(&e, t0 + Duration::from_secs(1)), [("e1".to_string(), Gone::CallEnded)]);
    late.call_ended();
    assert_eq!(due(&e, t0 + Duration::from_secs(60)), [("e2".to_string(), Gone::Expired)]);
    // A call that has set no deadline (a modern server's resent request): the setting.
    let unset = Arc::new(Inbox::default());
    let kept = hold(&e, 3, Some(&unset), t0).unwrap();
    assert_eq!((kept.waits, kept.of_request), (WAIT, false));
}

#[test]
fn at_most_max_held_wait_and_zero_holds_none() {
    let e = Elicitations::new(WAIT);
    let t0 = Instant::now();
    for n in 0..MAX_HELD as u64 {
        hold(&e, n, None, t0).unwrap();
    }
    let why = hold(&e, 99, None, t0).err().unwrap();
    assert_eq!(why, format!("{MAX_HELD} elicitations already wait for a person"));
    // Ids are never reused (a refusal takes none).
    e.book.lock().take("e1");
    assert_eq!(hold(&e, 100, None, t0).unwrap().id, format!("e{}", MAX_HELD + 1));
    let none = Elicitations::new(Duration::ZERO);
    assert!(hold(&none, 1, None, t0).err().unwrap().contains("AGENTHUB_ELICITATION_WAIT_S is 0"));
}

#[test]
fn a_withdrawn_request_goes_and_a_url_one_shows_its_url() {
    let e = Elicitations::new(WAIT);
    let t0 = Instant::now();
    hold(&e, 1, None, t0).unwrap();
    let url = json!({"jsonrpc": "2.0", "id": "s:fx:2", "method": "elicitation/create",
        "params": {"mode": "url", "message": "Sign in", "url": "https://example.com/auth", "elicitationId": "x1"}});
    e.hold("fx", &Later { forward: &url, why: "no client", call: None }, t0).unwrap();
    let shown = e.list(t0);
    assert_eq!(
        (shown[1]["mode"].clone(), shown[1]["url"].clone()),
        (json!("url"), json!("https://example.com/auth"))
    );
    assert!(shown[1].get("requestedSchema").is_none());
    assert_eq!(e.withdrawn("other", "s:fx:1"), None);
    assert_eq!(e.withdrawn("fx", "s:fx:1").as_deref(), Some("question 1"));
    assert_eq!(e.list(t0).len(), 1);
}
