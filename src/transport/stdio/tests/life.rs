//! The bridge's life: lines that are not JSON-RPC, the child's end, a broken or stuck stdin,
//! output past its caps, a modern child, and callers parked for the reader to run.

use super::*;

#[test]
fn the_peer_answers_pings_and_lines_that_are_not_json_rpc_are_skipped() {
    let child = Child::start();
    let ping = json!({"jsonrpc": "2.0", "id": "p-1", "method": "ping"});
    child.say(ping.clone());
    assert_eq!(
        child.heard(),
        json!({"jsonrpc": "2.0", "id": "p-1", "result": {"from": "peer", "method": "ping"}})
    );
    assert_eq!(child.peer.asked("ping"), [ping]);
    child.say(json!({"jsonrpc": "2.0", "id": 3, "method": "x/fail"}));
    let failed = json!({"code": jsonrpc::METHOD_NOT_FOUND, "message": "no such method"});
    assert_eq!(child.heard(), json!({"jsonrpc": "2.0", "id": 3, "error": failed}));

    let p = child.bridge.begin("tools/list", None).unwrap();
    child.heard();
    let check = |line: &str| {
        child.say_line(line);
        child.sync();
    };
    check("not json");
    check(r#"{"jsonrpc": "2.0", "id": "#);
    check("[1, 2]");
    check(r#""text""#);
    check("   ");
    check("");
    check(r#"{"jsonrpc": "2.0", "id": 1.5, "method": "x"}"#);
    check(r#"{"jsonrpc": "2.0", "id": 999, "result": {}}"#);
    check(r#"{"jsonrpc": "2.0", "id": "1", "result": {}}"#);
    child.nothing_for(&p);
    child.say(json!({"jsonrpc": "2.0", "id": p.id(), "result": {}}));
    child.response(&p);
}

#[test]
fn log_lines_go_to_the_peer_whoever_is_in_flight() {
    // The gateway sends them on, to the sessions that set a level: never guessed onto a stream.
    let child = Child::start();
    let p = child.bridge.begin_relay(&tools_call(json!(1), json!({}))).unwrap();
    child.heard();
    let log = json!({"jsonrpc": "2.0", "method": "notifications/message",
        "params": {"level": "info", "data": "working"}});
    child.say(log.clone());
    let other = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
    child.say(other.clone());
    child.sync();
    child.nothing_for(&p);
    assert_eq!(*child.peer.notifications.lock(), [log, other]);
}

#[test]
fn when_stdout_closes_every_waiter_hears_at_once_and_new_requests_fail() {
    let child = Child::start();
    // The child's request comes while the relayed request is alone in flight.
    let relayed = child.bridge.begin_relay(&tools_call(json!(1), json!({}))).unwrap();
    child.heard();
    child.say(json!({"jsonrpc": "2.0", "id": 5, "method": "sampling/createMessage", "params": {}}));
    let relay_id = child.message(&relayed)["id"].as_str().unwrap().to_string();
    let own = child.bridge.begin("tools/list", None).unwrap();
    let waited = child.bridge.begin("tools/call", None).unwrap();
    for _ in 0..2 {
        child.heard();
    }

    let bridge = &child.bridge;
    // Had the waiters to wait for their deadline, they would end `TimedOut` and -32001.
    let far = Instant::now() + WAIT;
    let (a, b, c) = std::thread::scope(|s| {
        let a = s.spawn(|| bridge.next(&own, far));
        let b = s.spawn(|| bridge.next(&relayed, far));
        let c = s.spawn(|| bridge.wait(waited, WAIT));
        child.close_stdout();
        (a.join().unwrap(), b.join().unwrap(), c.join().unwrap())
    });
    assert!(matches!((&a, &b), (Next::Gone(_), Next::Gone(_))), "{a:?} {b:?}");
    let exited =
        RpcError::new(jsonrpc::SERVER_UNAVAILABLE, "server fx exited while the request was in flight");
    assert_eq!(c, Err(exited.clone()));
    assert!(bridge.is_closed());
    assert!(matches!(bridge.next(&own, far), Next::Gone(_)), "and again, at once");
    assert!(matches!(bridge.next(&own, far), Next::Gone(e) if e == exited));
    assert_eq!(bridge.begin("tools/list", None).err(), Some(exited.clone()));
    assert_eq!(bridge.begin_relay(&tools_call(json!(1), json!({}))).err(), Some(exited));
    assert!(!bridge.answer_child(&relay_id, &json!({"result": {}})), "the child's requests went with it");
}

#[test]
fn stderr_lines_land_in_the_ring() {
    let child = Child::start();
    let mut stderr = child.stderr.lock().take().unwrap();
    stderr.write_all(b"starting\n\xffbad byte\nno newline at the end").unwrap();
    drop(stderr);
    let deadline = Instant::now() + WAIT;
    while child.ring.lock().tail(10).len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(child.ring.lock().tail(10), ["starting", "\u{fffd}bad byte", "no newline at the end"]);
}

#[test]
fn a_stdout_line_that_is_not_utf8_is_skipped() {
    let child = Child::start();
    let p = child.bridge.begin("tools/list", None).unwrap();
    child.heard();
    child.say_bytes(b"{\"jsonrpc\": \"2.0\", \"method\": \"x\xff\xfe\"}\n");
    child.sync();
    child.say(json!({"jsonrpc": "2.0", "id": p.id(), "result": {"ok": true}}));
    assert_eq!(child.response(&p)["result"], json!({"ok": true}), "the bridge kept reading");
}

#[test]
fn progress_reaches_only_a_caller_that_asked_for_it() {
    let child = Child::start();
    let p = child.bridge.begin_relay(&tools_call(json!(1), json!({"name": "t"}))).unwrap();
    child.heard();
    child.say(json!({"jsonrpc": "2.0", "method": "notifications/progress",
        "params": {"progressToken": p.id(), "progress": 1}}));
    child.sync();
    child.nothing_for(&p);
}

#[test]
fn once_the_childs_stdin_is_broken_requests_fail_at_once() {
    let (stdin_r, stdin_w) = pipe();
    let (stdout_r, stdout_w) = pipe();
    let (stderr_r, stderr_w) = pipe();
    drop(stdin_r);
    let ring = Arc::new(Mutex::new(StderrRing::default()));
    let bridge =
        Bridge::start("fx", stdin_w, stdout_r, stderr_r, ring, Arc::new(Recorder::default())).unwrap();
    let deadline = Instant::now() + WAIT;
    let e = loop {
        match bridge.begin("tools/list", None) {
            Err(e) => break e,
            Ok(_) => assert!(Instant::now() < deadline, "requests kept being queued for a broken pipe"),
        }
        std::thread::yield_now();
    };
    assert_eq!(e.code, jsonrpc::SERVER_UNAVAILABLE);
    drop((stdout_w, stderr_w));
    bridge.join(WAIT);
}

#[test]
fn lines_are_read_within_a_cap() {
    fn check(input: &[u8], cap: usize, want: &[(&[u8], bool)]) {
        let mut r = std::io::BufReader::with_capacity(4, input);
        for (line, cut) in want {
            let mut out = Vec::new();
            let (n, was_cut) = read_line_capped(&mut r, &mut out, cap).unwrap();
            assert!(n > 0);
            assert_eq!((out.as_slice(), was_cut), (*line, *cut), "{input:?}");
        }
        assert_eq!(read_line_capped(&mut r, &mut Vec::new(), cap).unwrap().0, 0, "then the end");
    }
    check(b"ab\ncd\n", 10, &[(b"ab\n", false), (b"cd\n", false)]);
    check(b"abcdefgh\nx", 3, &[(b"abc", true), (b"def", true), (b"gh\n", false), (b"x", false)]);
    check(b"\n\n", 1, &[(b"\n", false), (b"\n", false)]);
}

#[test]
fn a_huge_stderr_line_is_kept_cut() {
    let child = Child::start();
    let mut stderr = child.stderr.lock().take().unwrap();
    stderr.write_all(&vec![b'x'; 100_000]).unwrap();
    stderr.write_all(b"\nnext\n").unwrap();
    drop(stderr);
    let deadline = Instant::now() + WAIT;
    while child.ring.lock().tail(10).len() < 2 && Instant::now() < deadline {
        std::thread::yield_now();
    }
    let tail = child.ring.lock().tail(10);
    assert_eq!(tail[0].len(), STDERR_LINE_BYTES + " [...]".len());
    assert_eq!(tail[1], "next");
}

/// A peer that takes one secret out of the child's text.
struct Redacting(&'static str);

impl Peer for Redacting {
    fn request(&self, _: &str, _: &Value) -> Result<Value, RpcError> {
        Ok(json!({}))
    }

    fn notification(&self, _: &str, _: &Value) {}

    fn redact<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        match text.contains(self.0) {
            true => text.replace(self.0, "***").into(),
            false => text.into(),
        }
    }
}

#[test]
fn a_stderr_line_is_redacted_before_it_is_cut() {
    const SECRET: &str = "sk-live-0123456789abcdef";
    let (_stdin_r, stdin_w) = pipe();
    let (stdout_r, stdout_w) = pipe();
    let (stderr_r, mut stderr_w) = pipe();
    let ring = Arc::new(Mutex::new(StderrRing::default()));
    let bridge =
        Bridge::start("fx", stdin_w, stdout_r, stderr_r, ring.clone(), Arc::new(Redacting(SECRET))).unwrap();
    // The secret straddles the cut.
    let line = format!("{}{SECRET} and more\n", "x".repeat(STDERR_LINE_BYTES - 10));
    stderr_w.write_all(line.as_bytes()).unwrap();
    drop(stderr_w);
    let deadline = Instant::now() + WAIT;
    while ring.lock().tail(1).is_empty() {
        assert!(Instant::now() < deadline, "the line never reached the ring");
        std::thread::yield_now();
    }
    let kept = ring.lock().tail(1).remove(0);
    assert!(!kept.contains("sk-live"), "the secret's head leaked: {}", &kept[kept.len() - 40..]);
    assert!(kept.contains("***"), "the secret's mask is kept");
    assert!(kept.len() <= STDERR_LINE_BYTES + " [...]".len());
    drop(stdout_w);
    bridge.join(WAIT);
}

#[test]
fn a_stdout_message_past_the_cap_closes_the_bridge() {
    let child = Child::start();
    let p = child.bridge.begin("tools/list", None).unwrap();
    child.heard();
    child.say_bytes(&vec![b' '; STDOUT_LINE_BYTES + 1]);
    assert!(matches!(child.next(&p), Next::Gone(_)), "the waiter hears at once");
    assert!(child.bridge.is_closed());
}

/// A child's stdin that takes nothing: every write blocks until the test ends.
struct Stuck(Mutex<std::sync::mpsc::Receiver<()>>);

impl ChildInput for Stuck {}

impl Write for Stuck {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.lock().recv();
        Err(std::io::ErrorKind::BrokenPipe.into())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_child_that_does_not_read_cannot_grow_its_backlog_without_bound() {
    let (release, stuck) = std::sync::mpsc::channel();
    let (stdout_r, stdout_w) = pipe();
    let (stderr_r, stderr_w) = pipe();
    let ring = Arc::new(Mutex::new(StderrRing::default()));
    let bridge = Bridge::start(
        "fx",
        Stuck(Mutex::new(stuck)),
        stdout_r,
        stderr_r,
        ring,
        Arc::new(Recorder::default()),
    )
    .unwrap();
    let big = json!({"text": "x".repeat(1 << 20)});
    let mut sent = 0;
    let e = loop {
        match bridge.begin("tools/call", Some(big.clone())) {
            Ok(_) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 1000, "the backlog grew past its bound");
    };
    assert!((60..=70).contains(&sent), "about 64 MiB were taken: {sent}");
    assert_eq!(e.code, jsonrpc::SERVER_UNAVAILABLE);
    assert!(e.message.contains("not reading its input"), "{}", e.message);
    drop(release);
    drop((stdout_w, stderr_w));
    bridge.join(WAIT);
}

#[test]
fn a_child_that_asks_and_never_reads_the_answers_is_treated_as_hung() {
    use super::super::stdin::STDIN_LINES;
    let (release, stuck) = std::sync::mpsc::channel();
    let (stdout_r, mut stdout_w) = pipe();
    let (stderr_r, stderr_w) = pipe();
    let ring = Arc::new(Mutex::new(StderrRing::default()));
    let peer = Arc::new(Recorder::default());
    let bridge = Bridge::start("fx", Stuck(Mutex::new(stuck)), stdout_r, stderr_r, ring, peer).unwrap();
    let mut flood = String::new();
    for i in 0..STDIN_LINES + 10 {
        flood.push_str(&format!("{{\"jsonrpc\":\"2.0\",\"id\":{i},\"method\":\"ping\"}}\n"));
    }
    stdout_w.write_all(flood.as_bytes()).unwrap();
    let deadline = Instant::now() + WAIT;
    let hung = loop {
        if let Some(why) = bridge.hung() {
            break why;
        }
        assert!(Instant::now() < deadline, "the child was never treated as hung");
        std::thread::yield_now();
    };
    assert!(hung.starts_with(&format!("did not read its stdin ({STDIN_LINES} lines")), "{hung}");
    assert!(hung.ends_with("treated as hung"), "{hung}");
    let e = bridge.begin("tools/list", None).map(|_| ()).unwrap_err();
    assert_eq!(e.code, jsonrpc::SERVER_UNAVAILABLE);
    assert!(e.message.contains("did not read its stdin"), "{}", e.message);
    drop(release);
    drop((stdout_w, stderr_w));
    bridge.join(WAIT);
}

#[test]
fn a_modern_child_gets_the_envelope_and_its_input_requests_go_to_their_caller() {
    let c = Child::start();
    c.bridge.set_modern();
    let meta = |m: &Value, key: &str| m["params"]["_meta"][format!("io.modelcontextprotocol/{key}")].clone();
    let _own = c.bridge.begin("tools/list", None).unwrap();
    let sent = c.heard();
    assert_eq!(meta(&sent, "protocolVersion"), "2026-07-28");
    assert_eq!(meta(&sent, "clientInfo")["name"], "agenthub");
    assert_eq!(meta(&sent, "clientCapabilities"), json!({}), "the hub's own request");
    // logging/setLevel is the hub's to answer: nothing reaches the child, nor roots/list_changed.
    let level = c.bridge.begin("logging/setLevel", Some(json!({"level": "error"}))).unwrap();
    assert_eq!(c.response(&level)["result"], json!({}));
    c.bridge.notify("notifications/roots/list_changed", None);

    let caller = Caller { session: "s".into(), can: Can { form: true, ..Can::default() } };
    let call = json!({"jsonrpc": "2.0", "id": "c1", "method": "tools/call",
        "params": {"name": "ask", "_meta": {"progressToken": "mine"}}});
    let p = c.bridge.begin_relay_for(&call, caller).unwrap();
    let sent = c.heard();
    assert_eq!(sent["method"], "tools/call", "{sent}");
    assert_eq!(meta(&sent, "clientCapabilities"), json!({"elicitation": {"form": {}}}));
    assert_eq!(meta(&sent, "logLevel"), "error");
    assert_eq!(sent["params"]["_meta"]["progressToken"], json!(p.id()));
    c.say(json!({"jsonrpc": "2.0", "id": p.id(), "result": {"resultType": "input_required"}}));
    c.response(&p);

    let requests = json!({"color": {"method": "elicitation/create", "params": {"message": "color?"}},
        "roots": {"method": "roots/list"}});
    c.bridge.ask_inputs(&p, requests.as_object().unwrap());
    // The caller's client can answer the elicitation: it gets it under a relay id.
    let asked = c.message(&p);
    assert_eq!(asked["method"], "elicitation/create");
    assert!(asked["id"].as_str().is_some_and(|id| id.starts_with("s:fx:")), "{asked}");
    // Not roots: the hub answers at once.
    match c.next(&p) {
        Next::Event(Event::Input(key, Ok(v))) => {
            assert_eq!((key.as_str(), &v["method"]), ("roots", &json!("roots/list")))
        }
        other => panic!("expected the hub's answer for roots, got {other:?}"),
    }
    let id = asked["id"].as_str().unwrap();
    assert!(c.bridge.answer_child(id, &json!({"result": {"action": "accept"}})));
    assert!(!c.bridge.answer_child(id, &json!({"result": {}})), "answered once");
    match c.next(&p) {
        Next::Event(Event::Input(key, Ok(v))) => {
            assert_eq!((key.as_str(), v), ("color", json!({"action": "accept"})))
        }
        other => panic!("expected the client's answer, got {other:?}"),
    }
    // Sent again under the same hub id, the caller's slot still waiting.
    let again = c
        .bridge
        .resend(&p, "tools/call", json!({"name": "ask", "_meta": {"progressToken": "mine"}}))
        .unwrap();
    assert_eq!(again.id(), p.id());
    let sent = c.heard();
    assert_eq!((&sent["id"], &sent["params"]["_meta"]["progressToken"]), (&json!(p.id()), &json!(p.id())));
    c.say(json!({"jsonrpc": "2.0", "id": p.id(), "result": {"content": []}}));
    assert_eq!(c.response(&again)["result"], json!({"content": []}));
}

/// What a parked caller was run with, and on which thread.
fn parked(p: &Pending, until: Instant) -> mpsc::Receiver<(Woken, String)> {
    let (tx, rx) = mpsc::channel();
    Wake::new(p.slot.inbox.clone(), until).park(Box::new(move |woken| {
        let thread = std::thread::current().name().unwrap_or("").to_string();
        let _ = tx.send((woken, thread));
    }));
    rx
}

#[test]
fn a_parked_caller_is_run_by_the_reader_that_brings_its_answer() {
    let child = Child::start();
    let p = child.bridge.begin_relay(&tools_call(json!(1), json!({}))).unwrap();
    let sent = child.heard();
    let woken = parked(&p, Instant::now() + WAIT);
    child.sync();
    assert!(woken.try_recv().is_err(), "run before anything came");
    child.say(json!({"jsonrpc": "2.0", "id": sent["id"], "result": {"n": 1}}));
    assert_eq!(woken.recv_timeout(WAIT).unwrap(), (Woken::Ready, "stdout-fx".to_string()));
    // The answer waits in the slot for the continuation to take.
    assert_eq!(child.response(&p)["result"], json!({"n": 1}));

    // Answered before it parks: run at once, where it parks.
    let p = child.bridge.begin_relay(&tools_call(json!(2), json!({}))).unwrap();
    let sent = child.heard();
    child.say(json!({"jsonrpc": "2.0", "id": sent["id"], "result": {}}));
    child.sync();
    let here = std::thread::current().name().unwrap_or("").to_string();
    assert_eq!(parked(&p, Instant::now() + WAIT).try_recv().unwrap(), (Woken::Ready, here));
}

#[test]
fn a_parked_caller_goes_on_elsewhere_when_anything_but_its_answer_comes() {
    let child = Child::start();
    // Nothing by its time: the timer runs it, to wait on a thread of its own.
    let p = child.bridge.begin_relay(&tools_call(json!(1), json!({}))).unwrap();
    child.heard();
    let started = Instant::now();
    let woken = parked(&p, started + Duration::from_millis(30));
    assert_eq!(woken.recv_timeout(WAIT).unwrap(), (Woken::Wait, "call-timer".to_string()));
    assert!(started.elapsed() >= Duration::from_millis(30));

    // Progress first.
    let params = json!({"name": "slow", "_meta": {"progressToken": "mine"}});
    let p = child.bridge.begin_relay(&tools_call(json!(2), params)).unwrap();
    let sent = child.heard();
    let woken = parked(&p, Instant::now() + WAIT);
    child.say(json!({"jsonrpc": "2.0", "method": "notifications/progress",
        "params": {"progressToken": sent["params"]["_meta"]["progressToken"], "progress": 1}}));
    assert_eq!(woken.recv_timeout(WAIT).unwrap(), (Woken::Wait, "stdout-fx".to_string()));
    assert_eq!(child.message(&p)["params"]["progressToken"], "mine");

    // The child's end is an outcome: the wait returns at once.
    let p = child.bridge.begin_relay(&tools_call(json!(3), json!({}))).unwrap();
    child.heard();
    let woken = parked(&p, Instant::now() + WAIT);
    child.close_stdout();
    assert_eq!(woken.recv_timeout(WAIT).unwrap(), (Woken::Ready, "stdout-fx".to_string()));
    assert!(matches!(child.bridge.next(&p, Instant::now()), Next::Gone(_)));
}
