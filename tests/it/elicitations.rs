//! A server's elicitation that no client can take waits for a person: listed by
//! `GET /elicitations`, answered by `POST /elicitations/{id}` (the form's content checked, the
//! answer the server's result), declined at its deadline, gone when its server withdraws it
//! or stops. The fixture's `ask` tool, called through the REST relay (a caller that cannot
//! answer), is the server asking.

use serde_json::{Value, json};

use crate::harness::*;

fn form() -> Value {
    json!({
        "message": "Pick a branch",
        "requestedSchema": {"type": "object", "properties": {
            "name": {"type": "string", "minLength": 1},
            "depth": {"type": "integer", "minimum": 1},
            "force": {"type": "boolean"},
            "color": {"type": "string", "enum": ["red", "green"]}
        }, "required": ["name"]}
    })
}

/// The fixture's `ask` of `elicitation/create` (with `extra` arguments for the tool).
fn ask(hub: &Hub, params: Value, extra: Value) -> Resp {
    let mut args = json!({"method": "elicitation/create", "params": params});
    if let Some(extra) = extra.as_object() {
        args.as_object_mut().unwrap().extend(extra.clone());
    }
    hub.tool("fx", "ask", args)
}

/// What the server heard back, from `ask`'s result.
fn heard(r: &Resp) -> Value {
    serde_json::from_str(&tool_text(r)).unwrap()
}

fn held(hub: &Hub) -> Vec<Value> {
    hub.get("/elicitations").json()["elicitations"].as_array().unwrap().clone()
}

fn wait_held(hub: &Hub, n: usize) -> Vec<Value> {
    wait_for(&format!("{n} elicitation(s) held"), 10 * SEC, || {
        let h = held(hub);
        (h.len() == n).then_some(h)
    })
}

/// The feed's elicitation events' messages.
fn said(hub: &Hub) -> Vec<String> {
    let feed = hub.get("/activity").json();
    let events = feed["events"].as_array().unwrap().iter();
    events
        .filter(|e| e["kind"] == "elicitation" && e["server"] == "fx")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

fn wait_said(hub: &Hub, needle: &str) {
    wait_for(&format!("an elicitation event saying {needle:?}"), 10 * SEC, || {
        said(hub).iter().any(|m| m.contains(needle)).then_some(())
    });
}

#[test]
fn a_person_answers_an_elicitation_no_client_could_take() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    std::thread::scope(|s| {
        let asking = s.spawn(|| ask(&hub, form(), json!({"wait_ms": 30_000})));
        let one = wait_held(&hub, 1).remove(0);
        assert_eq!(
            (one["server"].clone(), one["message"].clone(), one["mode"].clone()),
            (json!("fx"), json!("Pick a branch"), json!("form"))
        );
        assert_eq!(one["requestedSchema"], form()["requestedSchema"]);
        // The one call in flight is the request's: its deadline (60 s) is the elicitation's.
        assert_eq!(one["deadline_of"], "request", "{one}");
        let left = one["expires_in_s"].as_f64().unwrap();
        assert!(left > 50.0 && left <= 60.0, "{one}");
        wait_said(&hub, "waiting for a person: \"Pick a branch\"");
        let id = one["id"].as_str().unwrap().to_string();
        let answer = |body: Value| hub.post_json(&format!("/elicitations/{id}"), &body);

        // Bad answers name what is wrong, and leave the question waiting.
        let bad = answer(json!({"action": "accept", "content": {"name": "main", "depth": "deep"}}));
        assert!(bad.expect_error(400, "bad_request").contains("content.depth: expected a whole number"));
        assert!(
            answer(json!({"action": "accept", "content": {}}))
                .expect_error(400, "bad_request")
                .contains("content.name: required")
        );
        assert!(
            answer(json!({"action": "accept", "content": {"name": "main", "color": "blue"}}))
                .expect_error(400, "bad_request")
                .contains("content.color")
        );
        assert!(answer(json!({"action": "maybe"})).expect_error(400, "bad_request").contains("action"));
        hub.post_json("/elicitations/e999", &json!({"action": "decline"})).expect_error(404, "not_found");
        assert_eq!(held(&hub).len(), 1);

        let content = json!({"name": "main", "depth": 2, "force": true, "color": "green"});
        let ok = answer(json!({"action": "accept", "content": content}));
        assert_eq!(ok.status, 200, "{}", ok.text());
        assert_eq!(ok.json(), json!({"id": id, "server": "fx", "action": "accept"}));
        // The answer is the server's result: the tool's own answer carries it.
        let r = asking.join().unwrap();
        assert_eq!(heard(&r)["result"], json!({"action": "accept", "content": content}));
        assert!(held(&hub).is_empty());
        answer(json!({"action": "decline"})).expect_error(404, "not_found");
        wait_said(&hub, "answered by a person (accept): \"Pick a branch\"");
    });
}

#[test]
fn at_its_deadline_an_unanswered_elicitation_is_declined() {
    // The deadline is the request's own: the one call in flight has the server's
    // `request_timeout` (3 s here). The setting (1 s here; 120 s by default) applies only when
    // the hub cannot tell which call the elicitation belongs to.
    let hub = Hub::builder()
        .fixtures(&[("fx", json!({"auto_start": true, "request_timeout": 3}))])
        .env("AGENTHUB_ELICITATION_WAIT_S", "1")
        .start();
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    std::thread::scope(|s| {
        let asking = s.spawn(|| ask(&hub, form(), json!({})));
        let one = wait_held(&hub, 1).remove(0);
        assert_eq!(one["deadline_of"], "request", "{one}");
        assert!(one["expires_in_s"].as_f64().unwrap() <= 3.0, "{one}");
        // Unanswered: declined at the request's deadline, when the call itself times out.
        assert_eq!(asking.join().unwrap().status, 504);
        wait_held(&hub, 0);
        wait_said(&hub, "declined: \"Pick a branch\" expired unanswered");
        hub.wait_stderr("fx", r#""result":{"action":"decline"}"#);
        assert!(hub.log().contains("expired unanswered"), "{}", hub.log());
    });
    // With two calls in flight the hub cannot tell whose it is: the setting's second.
    std::thread::scope(|s| {
        let sleeping = s.spawn(|| hub.tool("fx", "sleep", json!({"ms": 2500})));
        wait_for("the sleep to begin", 5 * SEC, || (hub.in_flight("fx") > 0).then_some(()));
        let asking =
            s.spawn(|| ask(&hub, json!({"message": "Second question", "requestedSchema": {}}), json!({})));
        let one = wait_held(&hub, 1).remove(0);
        assert_eq!(one["deadline_of"], "setting", "{one}");
        assert_eq!(heard(&asking.join().unwrap())["result"], json!({"action": "decline"}));
        wait_said(&hub, "declined: \"Second question\" expired unanswered");
        sleeping.join().unwrap();
    });
}

#[test]
fn a_withdrawn_elicitation_or_one_whose_server_stops_goes() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    std::thread::scope(|s| {
        // The server gives up and says so (`notifications/cancelled`): nobody is asked any more.
        let asking = s.spawn(|| ask(&hub, form(), json!({"withdraw_ms": 1500})));
        wait_held(&hub, 1);
        assert_eq!(heard(&asking.join().unwrap()), json!({"withdrawn": true}));
        wait_held(&hub, 0);
        wait_said(&hub, "withdrawn by the server, unanswered: \"Pick a branch\"");
        // The server stops while a question waits: it goes with it.
        let asking = s.spawn(|| {
            ask(&hub, json!({"message": "Last one", "requestedSchema": {}}), json!({"wait_ms": 30_000}))
        });
        let id = wait_held(&hub, 1)[0]["id"].as_str().unwrap().to_string();
        assert_eq!(hub.post("/servers/fx/stop").status, 200);
        assert!(held(&hub).is_empty());
        wait_said(&hub, "gone with the server, unanswered: \"Last one\"");
        hub.post_json(&format!("/elicitations/{id}"), &json!({"action": "decline"}))
            .expect_error(404, "not_found");
        asking.join().unwrap();
    });
}

#[test]
fn elicitations_sit_behind_the_token_and_the_hubs_own_origin() {
    let token = "elicitation-test-token-0123456789";
    let hub = Hub::builder().servers(NO_SERVERS).env("AGENTHUB_TOKEN", token).start();
    assert_eq!(hub.get("/elicitations").status, 401);
    assert_eq!(hub.post_json("/elicitations/e1", &json!({"action": "decline"})).status, 401);
    let bearer = format!("Bearer {token}");
    let ok = hub.request("GET", "/elicitations", &[("Authorization", &bearer)], b"");
    assert_eq!((ok.status, ok.json()), (200, json!({"elicitations": []})));
    // A page of another local origin may not answer for the person.
    let other = [("Authorization", bearer.as_str()), ("Origin", "http://localhost:5173"), JSON];
    let refused = hub.request("POST", "/elicitations/e1", &other, br#"{"action": "accept"}"#);
    assert_eq!(refused.status, 403);
}
