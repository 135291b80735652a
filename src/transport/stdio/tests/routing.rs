//! The bridge's routing: ids, progress tokens, cancellations and timeouts, the child's
//! requests to the caller they belong to, and the client's answers back to the child.

use super::*;

#[test]
fn callers_with_the_same_id_reach_the_child_under_distinct_ids_and_get_their_own_answers() {
    fn check(client_ids: &[Value]) {
        let child = Child::start();
        let requests: Vec<Value> = client_ids
            .iter()
            .enumerate()
            .map(|(n, id)| tools_call(id.clone(), json!({"name": "echo", "arguments": {"n": n}})))
            .collect();
        let pending: Vec<Pending> = requests.iter().map(|r| child.bridge.begin_relay(r).unwrap()).collect();
        let heard: Vec<Value> = requests.iter().map(|_| child.heard()).collect();
        for ((p, request), h) in pending.iter().zip(&requests).zip(&heard) {
            let mut expected = request.clone();
            expected["id"] = json!(p.id());
            assert_eq!(h, &expected, "the request whole, under the hub's id");
        }
        let distinct: HashSet<String> = heard.iter().map(|h| h["id"].to_string()).collect();
        assert_eq!(distinct.len(), client_ids.len(), "{heard:?}");
        // Answered last first: an answer routed by arrival or by the client's id would land
        // on the wrong caller.
        for h in heard.iter().rev() {
            child.say(json!({"jsonrpc": "2.0", "id": h["id"], "result": h["params"]["arguments"]}));
        }
        for (n, p) in pending.iter().enumerate() {
            assert_eq!(child.response(p), json!({"jsonrpc": "2.0", "id": p.id(), "result": {"n": n}}));
        }
        child.sync();
        for p in &pending {
            child.nothing_for(p);
        }
    }
    check(&[json!(1), json!(1)]);
    check(&[json!(0), json!(0), json!(0)]);
    check(&[json!("a"), json!("a")]);
    check(&[json!(1), json!("1"), json!(1)]);
}

#[test]
fn relay_puts_the_clients_id_back() {
    let child = Child::start();
    let bridge = &child.bridge;
    let request = json!({"jsonrpc": "2.0", "id": "client-7", "method": "tools/list"});
    let answer = std::thread::scope(|s| {
        let caller = s.spawn(|| bridge.relay(&request, WAIT));
        let heard = child.heard();
        assert_ne!(heard["id"], request["id"]);
        child.say(json!({"jsonrpc": "2.0", "id": heard["id"], "result": {"tools": []}}));
        caller.join().unwrap()
    });
    assert_eq!(answer, Ok(json!({"jsonrpc": "2.0", "id": "client-7", "result": {"tools": []}})));
}

#[test]
fn progress_tokens_are_swapped_for_the_hub_id_and_put_back_for_their_caller_alone() {
    /// `token`: the client's; `named`: the token on the child's progress, given the hub id;
    /// `delivered`: the token the caller sees, or None when the progress reaches nobody.
    fn check(token: Value, named: fn(u64) -> Value, delivered: Option<Value>) {
        let child = Child::start();
        let params = json!({"name": "slow", "_meta": {"progressToken": token, "other": "kept"}});
        let p = child.bridge.begin_relay(&tools_call(json!(1), params.clone())).unwrap();
        // Same client id, same token: only the hub id tells them apart.
        let bystander = child.bridge.begin_relay(&tools_call(json!(1), params)).unwrap();
        let heard = child.heard();
        assert_eq!(
            heard["params"],
            json!({"name": "slow", "_meta": {"progressToken": p.id(), "other": "kept"}})
        );
        assert_eq!(child.heard()["params"]["_meta"]["progressToken"], json!(bystander.id()));

        let progress = |token: Value| {
            json!({"jsonrpc": "2.0", "method": "notifications/progress",
                "params": {"progressToken": token, "progress": 1, "total": 2}})
        };
        child.say(progress(named(p.id())));
        if let Some(t) = delivered {
            assert_eq!(child.message(&p), progress(t));
        }
        child.say(json!({"jsonrpc": "2.0", "id": p.id(), "result": {}}));
        assert_eq!(child.response(&p)["id"], json!(p.id()), "no progress came before the answer");
        child.sync();
        child.nothing_for(&bystander);
    }
    check(json!("tok"), |id| json!(id), Some(json!("tok")));
    check(json!(7), |id| json!(id), Some(json!(7)));
    check(json!("tok"), |id| json!(id + 1000), None);
    check(json!("tok"), |id| json!(id.to_string()), None);
    check(json!("tok"), |_| json!("tok"), None);

    // Without a token nothing is added.
    let child = Child::start();
    let params = json!({"name": "quick", "_meta": {"other": 1}});
    let _p = child.bridge.begin_relay(&tools_call(json!(1), params.clone())).unwrap();
    assert_eq!(child.heard()["params"], params);
}

#[test]
fn a_cancelled_request_is_named_to_the_child_and_its_late_answer_reaches_no_one() {
    let child = Child::start();
    let request = tools_call(json!(1), json!({"name": "slow"}));
    let cancelled_one = child.bridge.begin_relay(&request).unwrap();
    let other = child.bridge.begin_relay(&request).unwrap();
    let (id, other_id) = (cancelled_one.id(), other.id());
    child.heard();
    child.heard();
    child.bridge.cancel(cancelled_one, "the caller gave up");
    assert_eq!(child.heard(), cancelled(id, "the caller gave up"));

    // Forgotten at once: `other` is now the lone relayed request the child's requests go to.
    child.say(json!({"jsonrpc": "2.0", "id": 9, "method": "sampling/createMessage", "params": {}}));
    assert_eq!(child.message(&other)["method"], "sampling/createMessage");

    child.say(json!({"jsonrpc": "2.0", "id": id, "result": {"late": true}}));
    child.say(json!({"jsonrpc": "2.0", "id": other_id, "result": {}}));
    assert_eq!(child.response(&other), json!({"jsonrpc": "2.0", "id": other_id, "result": {}}));
    child.sync();
    child.nothing_for(&other);
}

#[test]
fn a_request_that_times_out_gives_32001_and_the_child_is_told() {
    let child = Child::start();
    let p = child.bridge.begin("tools/call", Some(json!({"name": "slow"}))).unwrap();
    let id = p.id();
    child.heard();
    let e = child.bridge.wait(p, Duration::from_millis(20)).unwrap_err();
    assert_eq!(e, RpcError::new(jsonrpc::REQUEST_TIMEOUT, "request to fx timed out after 0.02s"));
    assert_eq!(child.heard(), cancelled(id, "timed out after 0.02s"));
    child.say(json!({"jsonrpc": "2.0", "id": id, "result": {"late": true}}));
    child.sync();

    let p = child.bridge.begin("tools/list", None).unwrap();
    let id = p.id();
    child.heard();
    let e = child.bridge.timed_out(p, Duration::from_secs(30));
    assert_eq!(e, RpcError::new(jsonrpc::REQUEST_TIMEOUT, "request to fx timed out after 30s"));
    assert_eq!(child.heard(), cancelled(id, "timed out after 30s"));
    child.sync();
}

/// Who is in flight when the child asks its client something.
#[derive(Clone, Copy)]
enum Flight {
    /// The hub's own request or a REST caller's.
    Own,
    /// A client's relayed request; its client can answer what `Can` says; its tool arguments.
    Client(Can, &'static str),
}

#[test]
fn the_childs_requests_go_to_the_caller_that_can_answer_or_else_to_the_peer() {
    enum To {
        Caller(usize),
        Peer(&'static str),
    }
    fn check(flights: &[Flight], method: &str, params: Value, to: To) {
        let child = Child::start();
        let pending: Vec<Pending> = flights
            .iter()
            .map(|f| match *f {
                Flight::Client(can, arg) => {
                    let caller = Caller { session: "s".into(), can };
                    let call = tools_call(json!(1), json!({"name": "t", "arguments": {"prompt": arg}}));
                    child.bridge.begin_relay_for(&call, caller).unwrap()
                }
                Flight::Own => child.bridge.begin("tools/list", None).unwrap(),
            })
            .collect();
        for _ in &pending {
            child.heard();
        }
        // The child's ids are its own: 1 is also a hub id in flight.
        child.say(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
        match to {
            To::Caller(i) => {
                let m = child.message(&pending[i]);
                let relay_id = m["id"].as_str().expect("a string id").to_string();
                let n = relay_id.strip_prefix("s:fx:").expect("s:<server>:<n>");
                assert!(n.parse::<u64>().is_ok(), "{relay_id}");
                assert_eq!(m, json!({"jsonrpc": "2.0", "id": relay_id, "method": method, "params": params}));
                let answer = json!({"jsonrpc": "2.0", "id": relay_id, "result": {"text": "hi"}});
                assert!(child.bridge.answer_child(&relay_id, &answer));
                assert_eq!(child.heard(), json!({"jsonrpc": "2.0", "id": 1, "result": {"text": "hi"}}));
                assert!(!child.bridge.answer_child(&relay_id, &answer), "answered once only");
                assert!(child.peer.asked(method).is_empty());
            }
            To::Peer(why) => {
                let heard = child.heard();
                assert_eq!(heard["result"]["from"], "peer", "{heard}");
                let said = heard["result"]["why"].as_str().unwrap_or("").to_string();
                assert!(said.contains(why), "{said:?} does not say {why:?}");
                assert_eq!(child.peer.asked(method).len(), 1);
            }
        }
        child.sync();
        for (i, p) in pending.iter().enumerate() {
            if !matches!(to, To::Caller(c) if c == i) {
                child.nothing_for(p);
            }
        }
    }
    let all = Can::ALL;
    let none = Can::default();
    let sampling = Can { sampling: true, ..none };
    let form = Can { form: true, ..none };
    let url = Can { url: true, ..none };
    let roots = Can { roots: true, ..none };
    let sample = json!({"messages": [], "maxTokens": 10});
    let url_mode =
        json!({"mode": "url", "url": "https://example.com", "message": "go", "elicitationId": "e"});
    check(&[Flight::Client(all, "x")], "sampling/createMessage", sample.clone(), To::Caller(0));
    check(&[Flight::Client(form, "x")], "elicitation/create", json!({}), To::Caller(0));
    check(&[Flight::Client(roots, "x")], "roots/list", json!({}), To::Caller(0));
    check(&[Flight::Client(url, "x")], "elicitation/create", url_mode.clone(), To::Caller(0));
    // With another request in flight (a REST caller's, the hub's, another client's) nothing
    // says whose the request is: the client that could answer is not shown it.
    check(
        &[Flight::Own, Flight::Client(all, "x"), Flight::Own],
        "sampling/createMessage",
        sample.clone(),
        To::Peer("3 requests are in flight on fx, and the request names none of them"),
    );
    check(
        &[Flight::Own, Flight::Client(sampling, "x")],
        "sampling/createMessage",
        sample.clone(),
        To::Peer("2 requests are in flight on fx"),
    );
    check(
        &[Flight::Client(none, "x"), Flight::Client(sampling, "y")],
        "sampling/createMessage",
        sample.clone(),
        To::Peer("2 requests are in flight on fx"),
    );
    check(
        &[Flight::Client(none, "x")],
        "sampling/createMessage",
        sample.clone(),
        To::Peer("declared sampling"),
    );
    check(&[Flight::Client(form, "x")], "elicitation/create", url_mode, To::Peer("declared url elicitation"));
    check(&[Flight::Client(sampling, "x")], "roots/list", json!({}), To::Peer("declared roots"));
    // Among several relayed requests, the one whose own arguments the request quotes.
    let quoting = |text: &str| json!({"messages": [{"role": "user", "content": {"type": "text", "text": text}}], "maxTokens": 10});
    let two = [Flight::Client(sampling, "first prompt"), Flight::Client(sampling, "second prompt")];
    check(&two, "sampling/createMessage", quoting("context: second prompt"), To::Caller(1));
    check(
        &two,
        "sampling/createMessage",
        quoting("first prompt, second prompt"),
        To::Peer("2 requests are in flight"),
    );
    // The quoted one must be able to answer; a REST or hub request among them hides whose it is.
    let unable = [Flight::Client(none, "first prompt"), Flight::Client(sampling, "second prompt")];
    check(&unable, "sampling/createMessage", quoting("first prompt"), To::Peer("declared sampling"));
    let with_rest = [Flight::Own, Flight::Client(sampling, "second prompt")];
    check(
        &with_rest,
        "sampling/createMessage",
        quoting("second prompt"),
        To::Peer("2 requests are in flight"),
    );
    check(&[], "sampling/createMessage", sample.clone(), To::Peer("no client request is in flight on fx"));
    check(&[], "elicitation/create", json!({}), To::Peer("no client request is in flight"));
    check(&[Flight::Own], "sampling/createMessage", sample, To::Peer("only a REST or hub request"));
}

#[test]
fn a_request_naming_a_task_goes_to_that_tasks_caller() {
    let child = Child::start();
    let caller = Caller { session: "s".into(), can: Can::ALL };
    let other =
        child.bridge.begin_relay_for(&tools_call(json!(1), json!({"name": "t"})), caller.clone()).unwrap();
    let result = json!({"jsonrpc": "2.0", "id": 2, "method": "tasks/result", "params": {"taskId": "task-7"}});
    let waiting = child.bridge.begin_relay_for(&result, caller).unwrap();
    child.heard();
    child.heard();
    child.say(json!({"jsonrpc": "2.0", "id": 3, "method": "elicitation/create",
        "params": {"message": "?", "requestedSchema": {}, "_meta": {"io.modelcontextprotocol/related-task": {"taskId": "task-7"}}}}));
    assert_eq!(child.message(&waiting)["method"], "elicitation/create");
    child.sync();
    child.nothing_for(&other);
}

#[test]
fn a_health_ping_in_flight_does_not_hide_the_caller() {
    let child = Child::start();
    let _ping = child.bridge.begin("ping", None).unwrap();
    let caller = child.bridge.begin_relay(&tools_call(json!(1), json!({}))).unwrap();
    child.heard();
    child.heard();
    child.say(json!({"jsonrpc": "2.0", "id": 9, "method": "sampling/createMessage", "params": {}}));
    assert_eq!(child.message(&caller)["method"], "sampling/createMessage");
}

#[test]
fn the_clients_answer_reaches_the_child_under_the_childs_id() {
    fn check(answer: Value, child_hears: Value) {
        let child = Child::start();
        let p = child.bridge.begin_relay(&tools_call(json!(1), json!({}))).unwrap();
        child.heard();
        child.say(json!({"jsonrpc": "2.0", "id": "c-7", "method": "sampling/createMessage", "params": {}}));
        let relay_id = child.message(&p)["id"].as_str().unwrap().to_string();
        assert!(child.bridge.answer_child(&relay_id, &answer));
        assert_eq!(child.heard(), child_hears);
    }
    let declined = json!({"code": -1, "message": "declined"});
    check(json!({"id": "x", "result": {"a": 1}}), json!({"jsonrpc": "2.0", "id": "c-7", "result": {"a": 1}}));
    check(json!({"error": declined}), json!({"jsonrpc": "2.0", "id": "c-7", "error": declined}));
    let empty = json!({"code": jsonrpc::INVALID_REQUEST, "message": "the client's answer had neither result nor error"});
    check(json!({}), json!({"jsonrpc": "2.0", "id": "c-7", "error": empty}));
}

#[test]
fn wait_refuses_the_childs_requests_for_its_caller() {
    let child = Child::start();
    let bridge = &child.bridge;
    let answer = std::thread::scope(|s| {
        let caller = s.spawn(|| bridge.relay(&tools_call(json!(1), json!({})), WAIT));
        let id = child.heard()["id"].clone();
        child.say(json!({"jsonrpc": "2.0", "id": 4, "method": "elicitation/create", "params": {}}));
        let refused = child.heard();
        // Answered as a client without the capability would (the peer's fallback), saying why.
        assert_eq!(refused["id"], 4);
        assert_eq!(refused["result"]["from"], "peer");
        assert!(refused["result"]["why"].as_str().unwrap().contains("does not take a stream"), "{refused}");
        child.say(json!({"jsonrpc": "2.0", "id": id, "result": {}}));
        caller.join().unwrap()
    });
    assert_eq!(answer, Ok(json!({"jsonrpc": "2.0", "id": 1, "result": {}})));
}

#[test]
fn unread_progress_keeps_only_the_latest_of_its_token() {
    let child = Child::start();
    let params = json!({"name": "t", "_meta": {"progressToken": "tok"}});
    let p = child.bridge.begin_relay(&tools_call(json!(1), params)).unwrap();
    child.heard();
    for i in 1..=5000 {
        child.say(json!({"jsonrpc": "2.0", "method": "notifications/progress",
            "params": {"progressToken": p.id(), "progress": i, "total": 5000}}));
    }
    child.say(json!({"jsonrpc": "2.0", "id": p.id(), "result": {"done": true}}));
    child.sync();
    // Nobody read while the child went on: the latest few progress notes in order, then the
    // answer.
    use crate::exchange::COALESCE_AFTER;
    let first = 5000 - COALESCE_AFTER as u64 + 1;
    for i in first..=5000 {
        assert_eq!(
            child.message(&p)["params"],
            json!({"progressToken": "tok", "progress": i, "total": 5000})
        );
    }
    assert_eq!(child.response(&p)["result"], json!({"done": true}));
}

#[test]
fn past_the_unread_bound_the_call_fails_and_the_child_is_told() {
    use crate::exchange::UNREAD_BYTES;
    let child = Child::start();
    let p = child.bridge.begin_relay(&tools_call(json!(1), json!({"name": "t"}))).unwrap();
    child.heard();
    let ask = |n: usize| {
        json!({"jsonrpc": "2.0", "id": n, "method": "elicitation/create",
            "params": {"message": "x".repeat(300_000), "requestedSchema": {}}})
    };
    let line = ask(0).to_string().len();
    let fit = UNREAD_BYTES / line;
    assert_eq!(fit, 13, "the bound as this test expects it");
    for n in 0..=fit {
        child.say(ask(n));
    }
    // The call's request is cancelled, the request past the bound refused.
    assert_eq!(child.heard(), cancelled(p.id(), "its client did not read what the server sent for it"));
    let refused = child.heard();
    assert_eq!(refused["id"], fit, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("has ended"), "{refused}");
    for _ in 0..fit {
        assert_eq!(child.message(&p)["method"], "elicitation/create");
    }
    let e = child.response(&p)["error"].clone();
    assert_eq!(e["code"], jsonrpc::SERVER_UNAVAILABLE);
    let said = e["message"].as_str().unwrap();
    assert!(said.contains("messages or 4 MiB for its client waited unread"), "{said}");
    // Its late answer reaches nobody.
    child.say(json!({"jsonrpc": "2.0", "id": p.id(), "result": {}}));
    child.sync();
    child.nothing_for(&p);
}
