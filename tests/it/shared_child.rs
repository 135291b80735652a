//! One child shared by many clients: each child request answered by the client it belongs to
//! (or as a client without the capability would), each session's tasks, logs and resource
//! updates its own, progress moving the deadline, and the small rules of issue 11.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

/// A session on `path` whose client declared `capabilities`, handshake done.
fn client(hub: &Hub, path: &str, capabilities: Value) -> McpSession {
    let (c, _) = McpSession::initialize(&hub.addr, path, &initialize_with(MCP_VERSION, capabilities));
    c.initialized();
    c
}

fn ask_args(method: &str, params: Value) -> Value {
    json!({"name": "ask", "arguments": {"method": method, "params": params}})
}

/// What the fixture's `ask` tool heard back from the client (or the hub) for its request.
fn asked(c: &McpSession, id: i64, method: &str, params: Value) -> Value {
    let r = c.call(json!(id), "tools/call", ask_args(method, params));
    let text = r["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("{r}")).to_string();
    serde_json::from_str(&text).unwrap()
}

fn sampled(text: &str) -> Value {
    json!({"role": "assistant", "content": {"type": "text", "text": text}, "model": "test", "stopReason": "endTurn"})
}

#[test]
fn a_client_without_the_capability_gets_the_fallback_answer() {
    // No elicitation waits for a person here (tests/it/elicitations.rs has those): declined at once.
    let hub = Hub::builder()
        .fixtures(&[
            ("fx", json!({"auto_start": true})),
            ("rooted", json!({"auto_start": true, "roots": ["file:///tmp/project"]})),
        ])
        .env("AGENTHUB_ELICITATION_WAIT_S", "0")
        .start();
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    hub.wait_status("rooted", "RUNNING", 10 * SEC);
    let c = client(&hub, "/mcp/fx", json!({}));
    // No client can sample, and the local model (tried by default) is away: an error saying both.
    let s = asked(&c, 1, "sampling/createMessage", json!({"messages": [], "maxTokens": 5}));
    assert_eq!(s["error"]["code"], -32000, "{s}");
    let why = s["error"]["message"].as_str().unwrap();
    assert!(why.contains("no client with a request in flight on fx declared sampling"), "{why}");
    assert!(why.contains("ollama_unreachable"), "{why}");
    assert_eq!(
        asked(&c, 2, "elicitation/create", json!({"message": "Pick a branch", "requestedSchema": {}}))["result"],
        json!({"action": "decline"})
    );
    // Declined on the user's behalf, and said so: in the log and in the activity feed.
    let feed = hub.get("/activity").json();
    let declined = feed["events"].as_array().unwrap().iter().find(|e| e["kind"] == "elicitation").cloned();
    let declined = declined.unwrap_or_else(|| panic!("no elicitation event: {feed}"));
    assert_eq!(declined["server"], "fx", "{declined}");
    let said = declined["message"].as_str().unwrap();
    assert!(said.contains("declined for you: \"Pick a branch\"") && said.contains("declared"), "{said}");
    assert!(
        hub.log().contains("server fx: elicitation declined for you: \"Pick a branch\""),
        "{}",
        hub.log()
    );
    assert_eq!(asked(&c, 3, "roots/list", json!({}))["result"], json!({"roots": []}));
    let r = client(&hub, "/mcp/rooted", json!({"sampling": {}}));
    assert_eq!(
        asked(&r, 1, "roots/list", json!({}))["result"]["roots"],
        json!([{"uri": "file:///tmp/project"}])
    );
    // Form elicitation declared, url elicitation asked: declined.
    let f = client(&hub, "/mcp/fx", json!({"elicitation": {}}));
    let url = json!({"mode": "url", "url": "https://example.com/", "message": "go", "elicitationId": "e1"});
    assert_eq!(asked(&f, 1, "elicitation/create", url)["result"], json!({"action": "decline"}));
}

#[test]
fn two_clients_sampling_at_once_each_get_their_own() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let (a, b) =
        (client(&hub, "/mcp/fx", json!({"sampling": {}})), client(&hub, "/mcp/fx", json!({"sampling": {}})));
    let body = |who: &str| {
        let params = json!({"messages": [{"role": "user", "content": {"type": "text", "text": format!("a question from {who}")}}], "maxTokens": 5});
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": ask_args("sampling/createMessage", params)})
    };
    // Both calls are in flight before either request is answered.
    let mut sa = a.post_streaming(&body("alice"));
    let ra = next_matching(&mut sa, "alice's sampling request", |v| v["method"] == "sampling/createMessage");
    let mut sb = b.post_streaming(&body("bob"));
    let rb = next_matching(&mut sb, "bob's sampling request", |v| v["method"] == "sampling/createMessage");
    assert!(ra.to_string().contains("from alice"), "{ra}");
    assert!(rb.to_string().contains("from bob"), "{rb}");
    assert_eq!(
        b.send(&json!({"jsonrpc": "2.0", "id": rb["id"], "result": sampled("bob's answer")})).status,
        202
    );
    assert_eq!(
        a.send(&json!({"jsonrpc": "2.0", "id": ra["id"], "result": sampled("alice's answer")})).status,
        202
    );
    for (stream, mine, theirs) in
        [(&mut sa, "alice's answer", "bob's answer"), (&mut sb, "bob's answer", "alice's answer")]
    {
        let done = next_matching(stream, "the tool's result", |v| v["id"] == 1);
        let text = done["result"]["content"][0]["text"].as_str().unwrap().to_string();
        assert!(text.contains(mine) && !text.contains(theirs), "{text}");
    }
}

#[test]
fn a_clients_roots_change_reaches_the_child_and_its_next_roots_request() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let c = client(&hub, "/mcp/fx", json!({"roots": {"listChanged": true}}));
    let mut stream = c.open_stream();
    assert_eq!(c.send(&json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"})).status, 202);
    hub.wait_stderr("fx", "fixture: notification notifications/roots/list_changed");
    // The child asks for the roots again, outside any call of this client: over its GET stream.
    std::thread::scope(|s| {
        let rest = s.spawn(|| hub.tool("fx", "ask", json!({"method": "roots/list"})));
        let req = next_matching(&mut stream, "roots/list on the GET stream", |v| v["method"] == "roots/list");
        let roots = json!({"roots": [{"uri": "file:///home/me/work", "name": "work"}]});
        assert_eq!(c.send(&json!({"jsonrpc": "2.0", "id": req["id"], "result": roots})).status, 202);
        let heard: Value = serde_json::from_str(&tool_text(&rest.join().unwrap())).unwrap();
        assert_eq!(heard["result"], roots);
    });
}

#[test]
fn tasks_belong_to_the_session_that_created_them() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let (a, b) = (client(&hub, "/mcp/fx", json!({})), client(&hub, "/mcp/fx", json!({})));
    let made =
        a.call(json!(1), "tools/call", json!({"name": "sleep", "arguments": {}, "task": {"ttl": 60000}}));
    let task = made["result"]["task"]["taskId"].as_str().unwrap_or_else(|| panic!("{made}")).to_string();
    let other = b.call(json!(1), "tools/call", json!({"name": "sleep", "arguments": {}, "task": {}}));
    let theirs = other["result"]["task"]["taskId"].as_str().unwrap().to_string();
    assert_eq!(a.call(json!(2), "tasks/get", json!({"taskId": task}))["result"]["taskId"], task.as_str());
    let refused = b.call(json!(2), "tasks/get", json!({"taskId": task}));
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert_eq!(refused["error"]["message"], format!("unknown task: {task}"));
    assert_eq!(b.call(json!(3), "tasks/cancel", json!({"taskId": task}))["error"]["code"], -32602);
    let ids = |r: Value| {
        r["result"]["tasks"].as_array().unwrap().iter().map(|t| t["taskId"].clone()).collect::<Vec<_>>()
    };
    assert_eq!(ids(a.call(json!(4), "tasks/list", json!({}))), [json!(task)]);
    assert_eq!(ids(b.call(json!(4), "tasks/list", json!({}))), [json!(theirs)]);
    // A task's status goes to its owner alone.
    let (mut sa, mut sb) = (a.open_stream(), b.open_stream());
    hub.tool("fx", "notify", json!({"task": task}));
    hub.tool("fx", "notify", json!({"task": theirs}));
    let status = |v: &Value| v["method"] == "notifications/tasks/status";
    assert_eq!(next_matching(&mut sa, "a's task status", status)["params"]["taskId"], task.as_str());
    assert_eq!(next_matching(&mut sb, "b's task status", status)["params"]["taskId"], theirs.as_str());
}

#[test]
fn tasks_on_the_aggregated_endpoint_name_their_server() {
    // fx answers within 1 s, but a task's result may take as long as the task lives.
    let hub = Hub::with_fixtures(&[
        ("fx", json!({"auto_start": true, "request_timeout": 1})),
        ("fx2", json!({"auto_start": true})),
    ]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    hub.wait_status("fx2", "RUNNING", 10 * SEC);
    let (a, init) = McpSession::initialize(&hub.addr, "/mcp", &initialize_with(MCP_VERSION, json!({})));
    a.initialized();
    let init = init.json()["result"].clone();
    assert!(init["capabilities"]["tasks"]["requests"]["tools"]["call"].is_object(), "{init}");
    let instructions = init["instructions"].as_str().unwrap_or_default();
    assert!(instructions.contains("## fx\n\na fixture for tests"), "{instructions}");
    assert!(instructions.contains("## fx2\n\na fixture for tests"), "{instructions}");
    let b = client(&hub, "/mcp", json!({}));

    let task =
        |r: &Value| r["result"]["task"]["taskId"].as_str().unwrap_or_else(|| panic!("{r}")).to_string();
    let call = json!({"name": "fx__sleep", "arguments": {"ms": 2500}, "task": {"ttl": 60000}});
    let mine = task(&a.call(json!(1), "tools/call", call));
    assert_eq!(mine, "fx__task-1");
    let theirs =
        task(&b.call(json!(1), "tools/call", json!({"name": "fx2__sleep", "arguments": {}, "task": {}})));
    assert_eq!(theirs, "fx2__task-1");

    assert_eq!(a.call(json!(2), "tasks/get", json!({"taskId": mine}))["result"]["taskId"], mine.as_str());
    let refused = b.call(json!(2), "tasks/get", json!({"taskId": mine}));
    assert_eq!(refused["error"]["message"], format!("unknown task: {mine}"), "{refused}");
    let nonsense = a.call(json!(3), "tasks/get", json!({"taskId": "no-such"}));
    assert_eq!(nonsense["error"]["code"], -32602, "{nonsense}");
    let ids = |r: Value| {
        r["result"]["tasks"]
            .as_array()
            .unwrap_or_else(|| panic!("{r}"))
            .iter()
            .map(|t| t["taskId"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(a.call(json!(4), "tasks/list", json!({}))), [json!(mine)]);
    assert_eq!(ids(b.call(json!(4), "tasks/list", json!({}))), [json!(theirs)]);

    // Status notifications reach the owner under the public id.
    let mut stream = a.open_stream();
    hub.tool("fx", "notify", json!({"task": "task-1"}));
    let status =
        next_matching(&mut stream, "the task's status", |v| v["method"] == "notifications/tasks/status");
    assert_eq!(status["params"]["taskId"], mine.as_str());

    // The result comes after 2.5 s, past fx's 1 s request timeout: the task's life bounds it.
    let started = Instant::now();
    let done = a.call(json!(5), "tasks/result", json!({"taskId": mine}));
    assert_eq!(done["result"]["content"][0]["text"], "task-1 done", "{done}");
    assert_eq!(done["result"]["_meta"]["io.modelcontextprotocol/related-task"]["taskId"], mine.as_str());
    assert!(started.elapsed() >= Duration::from_secs(2), "answered before the task was done");

    let cancelled = b.call(json!(5), "tasks/cancel", json!({"taskId": theirs}));
    assert_eq!(cancelled["result"]["status"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["result"]["taskId"], theirs.as_str());
}

#[test]
fn v2_tasks_belong_to_their_session_and_name_their_server_on_mcp() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    // Clients opted in to tasks the server makes (2026-07-28's extension).
    let v2 = json!({"extensions": {"io.modelcontextprotocol/tasks": {}}});
    let (mine, other) = (client(&hub, "/mcp", v2.clone()), client(&hub, "/mcp", v2.clone()));
    let made =
        mine.call(json!(1), "tools/call", json!({"name": "fx__sleep", "arguments": {"v2_task": true}}));
    assert_eq!(made["result"]["resultType"], "task", "{made}");
    let task = made["result"]["taskId"].as_str().unwrap_or_default().to_string();
    assert_eq!(task, "fx__task-1");
    // tasks/update goes to the server under its own id, for the owner only.
    let updated = mine.call(json!(2), "tasks/update", json!({"taskId": task, "inputResponses": {}}));
    assert_eq!(updated["result"]["taskId"], task.as_str(), "{updated}");
    hub.wait_stderr("fx", "fixture: tasks/update task-1");
    let refused = other.call(json!(2), "tasks/update", json!({"taskId": task, "inputResponses": {}}));
    assert_eq!(refused["error"]["message"], format!("unknown task: {task}"), "{refused}");
    // The V2 notification reaches the owner under the public id.
    let mut stream = mine.open_stream();
    hub.tool("fx", "notify", json!({"task": "task-1", "v2": true}));
    let note = next_matching(&mut stream, "the task notification", |v| v["method"] == "notifications/tasks");
    assert_eq!(note["params"]["taskId"], task.as_str());
    // On /mcp/fx the same task is the session's too.
    let direct = client(&hub, "/mcp/fx", v2);
    let made = direct.call(json!(1), "tools/call", json!({"name": "sleep", "arguments": {"v2_task": true}}));
    let own = made["result"]["taskId"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        direct.call(json!(2), "tasks/update", json!({"taskId": own, "inputResponses": {}}))["result"]["taskId"],
        own.as_str()
    );
    assert_eq!(
        mine.call(json!(3), "tasks/update", json!({"taskId": format!("fx__{own}")}))["error"]["code"],
        -32602
    );
}

#[test]
fn log_messages_reach_only_sessions_that_asked_at_their_level() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let (info, quiet, errors) = (
        client(&hub, "/mcp/fx", json!({})),
        client(&hub, "/mcp/fx", json!({})),
        client(&hub, "/mcp/fx", json!({})),
    );
    assert_eq!(errors.call(json!(1), "logging/setLevel", json!({"level": "error"}))["result"], json!({}));
    hub.wait_stderr("fx", "fixture: log level error");
    assert_eq!(info.call(json!(1), "logging/setLevel", json!({"level": "info"}))["result"], json!({}));
    // The child runs at the lowest level asked.
    hub.wait_stderr("fx", "fixture: log level info");
    let bad = info.call(json!(2), "logging/setLevel", json!({"level": "loud"}));
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    let streams: Vec<_> = [&info, &quiet, &errors].iter().map(|c| c.open_stream()).collect();
    let [mut si, mut sq, mut se]: [_; 3] = streams.try_into().ok().unwrap();
    hub.tool("fx", "notify", json!({"level": "info", "data": "one"}));
    hub.tool("fx", "notify", json!({"level": "error", "data": "two"}));
    let log = |v: &Value| v["method"] == "notifications/message";
    assert_eq!(next_matching(&mut si, "one", log)["params"]["data"], "one");
    assert_eq!(next_matching(&mut si, "two", log)["params"]["data"], "two");
    assert_eq!(next_matching(&mut se, "two", log)["params"]["data"], "two", "info filtered out by its level");
    // The quiet session never asked: it hears the first message after it does.
    assert_eq!(quiet.call(json!(1), "logging/setLevel", json!({"level": "warning"}))["result"], json!({}));
    hub.tool("fx", "notify", json!({"level": "warning", "data": "three"}));
    assert_eq!(next_matching(&mut sq, "three", log)["params"]["data"], "three");
    // The info session leaves: the child goes up to the lowest level still asked.
    assert_eq!(info.delete().status, 200);
    hub.wait_stderr("fx", "fixture: log level warning");
}

#[test]
fn resource_updates_reach_only_their_subscribers() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let (a, b) = (client(&hub, "/mcp/fx", json!({})), client(&hub, "/mcp/fx", json!({})));
    let both = client(&hub, "/mcp/fx", json!({}));
    for (c, uri) in [(&a, "fx://one"), (&b, "fx://two"), (&both, "fx://one")] {
        assert_eq!(c.call(json!(1), "resources/subscribe", json!({"uri": uri}))["result"], json!({}));
    }
    let (mut sa, mut sb) = (a.open_stream(), b.open_stream());
    hub.tool("fx", "notify", json!({"uri": "fx://one"}));
    hub.tool("fx", "notify", json!({"uri": "fx://two"}));
    let updated = |v: &Value| v["method"] == "notifications/resources/updated";
    assert_eq!(next_matching(&mut sa, "a's update", updated)["params"]["uri"], "fx://one");
    assert_eq!(next_matching(&mut sb, "b's update", updated)["params"]["uri"], "fx://two");
    // Another subscriber remains: the child stays subscribed until the last one leaves.
    assert_eq!(a.call(json!(2), "resources/unsubscribe", json!({"uri": "fx://one"}))["result"], json!({}));
    assert_eq!(hub.stderr_lines("fx", "fixture: resources/unsubscribe fx://one"), 0);
    assert_eq!(both.delete().status, 200);
    hub.wait_stderr("fx", "fixture: resources/unsubscribe fx://one");
}

#[test]
fn progress_moves_the_deadline_up_to_max_request_timeout() {
    let hub = Hub::with_fixtures(&[
        ("fx", json!({"auto_start": true, "request_timeout": 1})),
        ("capped", json!({"auto_start": true, "request_timeout": 1, "max_request_timeout": 2})),
    ]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    hub.wait_status("capped", "RUNNING", 10 * SEC);
    // Ten progress notifications 300 ms apart: 3 s in all, three times the request timeout.
    let call =
        json!({"name": "progress", "arguments": {"count": 10, "ms": 300}, "_meta": {"progressToken": "p"}});
    let c = client(&hub, "/mcp/fx", json!({}));
    let done = c.call(json!(1), "tools/call", call.clone());
    assert_eq!(done["result"]["content"][0]["text"], "sent 10", "{done}");
    let capped = client(&hub, "/mcp/capped", json!({}));
    let started = Instant::now();
    let cut = capped.call(json!(1), "tools/call", call);
    assert_eq!(cut["error"]["code"], -32001, "{cut}");
    assert!(started.elapsed() < Duration::from_millis(2900), "cut at max_request_timeout");
}

#[test]
fn rest_initialize_is_refused_and_request_lines_name_method_and_client() {
    let hub = Hub::with_fixtures(&[("fx", json!({"auto_start": true}))]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    let why = hub.call("fx", "initialize", &json!({})).expect_error(400, "bad_request");
    assert!(why.contains("the hub owns the handshake"), "{why}");
    let init = initialize_body(MCP_VERSION);
    let (c, _) = McpSession::initialize(&hub.addr, "/mcp/fx", &init);
    c.initialized();
    c.call(json!(1), "tools/list", json!({}));
    let name = init["params"]["clientInfo"]["name"].as_str().unwrap().to_string();
    let line = format!("client={name} rpc=tools/list");
    wait_for("the request line", 5 * SEC, || hub.log().contains(&line).then_some(()));
    // A child's log message is logged at its own level.
    hub.tool("fx", "notify", json!({"level": "error", "data": "disk on fire"}));
    wait_for("the error line", 5 * SEC, || {
        hub.log().lines().any(|l| l.contains("ERROR") && l.contains("[fx] error: disk on fire")).then_some(())
    });
}

#[test]
fn children_are_offered_every_capability() {
    let everything = npm_bin("mcp-server-everything");
    let hub = Hub::builder()
        .servers(&json!({"servers": {"everything": {"command": everything, "auto_start": true}}}).to_string())
        .start();
    hub.wait_status("everything", "RUNNING", 30 * SEC);
    let tools = hub.call("everything", "tools/list", &json!({})).json();
    let names: Vec<&str> =
        tools["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    for tool in [
        "get-roots-list",
        "trigger-sampling-request",
        "trigger-elicitation-request",
        "trigger-url-elicitation",
    ] {
        assert!(names.contains(&tool), "{tool} missing from {names:?}");
    }
}

#[test]
fn a_remote_server_is_unsubscribed_when_its_last_subscriber_goes() {
    // The remote server is another hub's fixture: its stderr shows what reaches the child.
    let inner = Hub::builder().fixtures(&[("fx", json!({"auto_start": true}))]).start();
    inner.wait_status("fx", "RUNNING", 10 * SEC);
    let url = format!("http://{}/mcp/fx", inner.addr);
    let servers = json!({"servers": {"remote": {"transport": "http", "url": url}}});
    let hub = Hub::builder().servers(&servers.to_string()).start();
    assert_eq!(hub.post("/servers/remote/start").status, 200);
    let c = client(&hub, "/mcp/remote", json!({}));
    assert_eq!(c.call(json!(1), "resources/subscribe", json!({"uri": "fx://one"}))["result"], json!({}));
    inner.wait_stderr("fx", "fixture: resources/subscribe fx://one");
    // The last subscriber leaves: the remote server is unsubscribed.
    assert_eq!(c.delete().status, 200);
    inner.wait_stderr("fx", "fixture: resources/unsubscribe fx://one");
}
