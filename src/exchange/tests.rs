//! Unit tests of `Call` over the in-memory transport: no process, no socket. The outcome and
//! the breaker, cancellation and cleanup, the deadline, `then`, the caller's watch, and the
//! input rounds of a modern server.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::memory::Memory;
use super::*;
use crate::resilience::{BreakerConfig, Breakers, CircuitState};

/// Long enough never to pass on a loaded machine: waits end on conditions.
const WAIT: Duration = Duration::from_secs(10);

fn breakers() -> Arc<Breakers> {
    Arc::new(Breakers::new(BreakerConfig::default()))
}

/// A call to the memory server `mem` with this deadline; progress may move it to three times
/// as far.
fn open(memory: &Arc<Memory>, breakers: &Arc<Breakers>, timeout: Duration, request: Request) -> Call {
    let now = Instant::now();
    let places = Arc::new(AtomicUsize::new(0));
    let place = || InFlight::take(&places, 2).expect("a place");
    let lease = Lease {
        server: "mem".into(),
        breakers: breakers.clone(),
        deadline: now + timeout,
        latest: now + timeout * 3,
        timeout,
        in_flight: [place(), place()],
        labels: (String::new(), String::new()),
    };
    Call::open(lease, memory.clone(), request)
}

fn relayed(name: &str) -> Request {
    let msg = json!({"jsonrpc": "2.0", "id": "c1", "method": "tools/call", "params": {"name": name}});
    Request::Relay(msg, Caller { session: "s".into(), can: Can::ALL })
}

fn id_of(msg: &Value) -> u64 {
    msg["id"].as_u64().expect("a hub id")
}

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

fn state(breakers: &Breakers) -> CircuitState {
    breakers.state("mem", Instant::now())
}

#[test]
fn only_the_hubs_failures_count_against_a_server_never_its_own_errors() {
    /// What the server does with each of three calls: the code each caller gets, and the
    /// breaker's state after.
    fn check(server: fn(&Memory, u64), code: Option<i64>, expected: CircuitState) {
        let breakers = breakers();
        for _ in 0..3 {
            let memory = Memory::new();
            let call = open(&memory, &breakers, Duration::from_millis(30), Request::own("tools/call", None));
            server(&memory, id_of(&memory.heard()));
            assert_eq!(call.wait().err().map(|e| e.code), code);
        }
        assert_eq!(state(&breakers), expected);
    }
    check(|m, id| m.answer(id, json!({"content": []})), None, CircuitState::Closed);
    check(|m, id| m.answer(id, json!({"isError": true})), None, CircuitState::Closed);
    // The generic server-error code, and the timeout code, as the server's own answers.
    check(|m, id| m.error(id, -32000, "the tool failed"), Some(-32000), CircuitState::Closed);
    check(|m, id| m.error(id, -32001, "its upstream timed out"), Some(-32001), CircuitState::Closed);
    check(|_, _| {}, Some(jsonrpc::REQUEST_TIMEOUT), CircuitState::Open);
    check(|m, _| m.die(), Some(jsonrpc::SERVER_UNAVAILABLE), CircuitState::Open);
}

#[test]
fn a_call_to_a_server_already_gone_fails_at_once() {
    let (memory, breakers) = (Memory::new(), breakers());
    memory.die();
    let started = Instant::now();
    let e = open(&memory, &breakers, WAIT, Request::own("tools/list", None)).wait().unwrap_err();
    assert_eq!(e.code, jsonrpc::SERVER_UNAVAILABLE);
    assert!(started.elapsed() < WAIT / 2, "not at its deadline");
}

#[test]
fn a_clients_cancellation_ends_the_call_at_once_and_costs_its_server_nothing() {
    let (memory, breakers) = (Memory::new(), breakers());
    for _ in 0..4 {
        let call = open(&memory, &breakers, WAIT, relayed("slow"));
        let id = id_of(&memory.heard());
        let hub_id = call.hub_id();
        let started = Instant::now();
        let waiter = std::thread::spawn(move || call.wait());
        memory.clone().cancel_for_client(&hub_id, &json!("changed my mind"));
        let e = waiter.join().unwrap().unwrap_err();
        assert_eq!(e.code, jsonrpc::REQUEST_CANCELLED);
        assert!(started.elapsed() < WAIT / 2, "not at its deadline");
        assert_eq!(memory.cancelled().last(), Some(&(id, "changed my mind".to_string())));
    }
    assert_eq!(state(&breakers), CircuitState::Closed);
}

#[test]
fn a_call_dropped_before_its_answer_tells_the_server_and_gives_its_places_back() {
    let (memory, breakers) = (Memory::new(), breakers());
    let ended = Arc::new(AtomicBool::new(false));
    let mut call = open(&memory, &breakers, WAIT, relayed("slow"));
    let e = ended.clone();
    call.on_end(move || e.store(true, Ordering::SeqCst));
    let id = id_of(&memory.heard());
    drop(call);
    assert_eq!(memory.cancelled(), [(id, "the caller gave up".to_string())]);
    assert!(ended.load(Ordering::SeqCst), "on_end ran");

    // Answered, nothing is left to cancel; on_result saw the result first.
    let mut call = open(&memory, &breakers, WAIT, relayed("quick"));
    call.on_result(|mut v| {
        v["seen"] = json!(true);
        v
    });
    memory.answer(id_of(&memory.heard()), json!({"content": []}));
    assert_eq!(call.wait(), Ok(json!({"content": [], "seen": true})));
    assert_eq!(memory.cancelled().len(), 1);
}

#[test]
fn a_request_of_the_server_that_the_caller_cannot_take_is_refused() {
    let (memory, breakers) = (Memory::new(), breakers());
    let call = open(&memory, &breakers, WAIT, relayed("asks"));
    let id = id_of(&memory.heard());
    let ask = json!({"jsonrpc": "2.0", "id": "s:mem:1", "method": "elicitation/create", "params": {}});
    memory.say(id, ask.clone());
    memory.answer(id, json!({}));
    assert_eq!(call.wait(), Ok(json!({})));
    assert_eq!(memory.refused(), [ask]);
}

#[test]
fn progress_moves_the_deadline_never_past_the_latest() {
    // The call's own deadline is 60 ms, its latest 180 ms. Progress is said by this thread
    // right before each look, so however late this thread runs, the call sees the progress
    // before it could look at its deadline: the test does not race the scheduler.
    let progress = |n: u32| json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "t", "progress": n}});
    let tick = Duration::from_millis(20);
    // Progress keeps a call alive past its own deadline, and the deadline only moves later.
    let (memory, breakers) = (Memory::new(), breakers());
    let mut call = open(&memory, &breakers, Duration::from_millis(60), relayed("slow"));
    let id = id_of(&memory.heard());
    let first = call.deadline();
    let mut latest = first;
    let mut n = 0;
    while Instant::now() <= first + tick {
        std::thread::sleep(tick);
        memory.say(id, progress(n));
        n += 1;
        assert!(matches!(call.next(Instant::now() + WAIT), Some(Step::Message(_))));
        assert!(call.deadline() >= latest, "progress never brings the deadline nearer");
        latest = call.deadline();
    }
    memory.answer(id, json!({"done": true}));
    let outcome = call.next(Instant::now() + WAIT);
    assert!(matches!(outcome, Some(Step::Done(Ok(_)))), "{outcome:?}");
    assert!(latest > first, "progress moved the deadline");
    assert!(latest <= first + Duration::from_millis(120), "never past the latest");
    // However much progress comes, the call ends at its latest.
    let mut call = open(&memory, &breakers, Duration::from_millis(60), relayed("slower"));
    let id = id_of(&memory.heard());
    let first = call.deadline();
    while Instant::now() <= first + Duration::from_millis(120) + tick {
        std::thread::sleep(tick);
        memory.say(id, progress(n));
        n += 1;
        assert!(matches!(call.next(Instant::now() + WAIT), Some(Step::Message(_))));
        assert!(call.deadline() <= first + Duration::from_millis(120), "never past the latest");
    }
    let outcome = loop {
        if let Some(Step::Done(r)) = call.next(Instant::now() + WAIT) {
            break r;
        }
    };
    let e = outcome.expect_err("past its latest, the call times out");
    assert_eq!(e.code, crate::jsonrpc::REQUEST_TIMEOUT, "{e:?}");
}

#[test]
fn then_runs_at_once_when_the_answer_is_there() {
    let (memory, breakers) = (Memory::new(), breakers());
    let call = open(&memory, &breakers, WAIT, relayed("quick"));
    memory.answer(id_of(&memory.heard()), json!({"n": 1}));
    let (tx, rx) = mpsc::channel();
    call.then(move |_, step| tx.send((thread_name(), format!("{step:?}"))).unwrap());
    let (thread, step) = rx.try_recv().expect("run before then returned");
    assert_eq!((thread, step), (thread_name(), format!("{:?}", Step::Done(Ok(json!({"n": 1}))))));
}

/// Runs `then` on a call, and returns where its continuation ran and with what.
fn then(call: Call) -> mpsc::Receiver<(String, Step)> {
    let (tx, rx) = mpsc::channel();
    call.then(move |_, step| tx.send((thread_name(), step)).unwrap());
    rx
}

#[test]
fn then_is_run_by_the_thread_that_brings_the_first_event() {
    /// What the server's thread (`server-reader`) brings first: the continuation runs there.
    fn check(bring: fn(&Memory, u64), expected: fn(&Step) -> bool) {
        let (memory, breakers) = (Memory::new(), breakers());
        let call = open(&memory, &breakers, WAIT, relayed("quick"));
        let id = id_of(&memory.heard());
        let ran = then(call);
        assert!(ran.try_recv().is_err(), "not run before anything came");
        let m = memory.clone();
        let reader = std::thread::Builder::new().name("server-reader".into());
        reader.spawn(move || bring(&m, id)).unwrap().join().unwrap();
        let (thread, step) = ran.recv_timeout(WAIT).unwrap();
        assert_eq!(thread, "server-reader");
        assert!(expected(&step), "{step:?}");
    }
    check(|m, id| m.answer(id, json!({})), |s| matches!(s, Step::Done(Ok(_))));
    let progress = |m: &Memory, id| m.say(id, json!({"method": "notifications/progress"}));
    check(progress, |s| matches!(s, Step::Message(_)));
    check(|m, _| m.die(), |s| matches!(s, Step::Done(Err(e)) if e.code == jsonrpc::SERVER_UNAVAILABLE));
}

#[test]
fn then_waits_on_a_thread_of_its_own_when_nothing_comes_quickly() {
    // Nothing within `QUICK_ANSWER`: the timer hands the call to a thread, which waits for it
    // (here to its deadline, long after the quick time).
    let (memory, breakers) = (Memory::new(), breakers());
    let started = Instant::now();
    let ran = then(open(&memory, &breakers, Duration::from_millis(300), relayed("slow")));
    let (thread, step) = ran.recv_timeout(WAIT).unwrap();
    assert_eq!(thread, "call-wait");
    assert!(matches!(step, Step::Done(Err(e)) if e.code == jsonrpc::REQUEST_TIMEOUT));
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A deadline sooner than the quick time: the timer itself finds it passed.
    let ran = then(open(&memory, &breakers, Duration::from_millis(2), relayed("slow")));
    let (thread, step) = ran.recv_timeout(WAIT).unwrap();
    assert_eq!(thread, "call-timer");
    assert!(matches!(step, Step::Done(Err(e)) if e.code == jsonrpc::REQUEST_TIMEOUT));

    // A carrier that cannot hold a continuation: a thread at once.
    let memory = Memory::unparked();
    let call = open(&memory, &breakers, WAIT, relayed("quick"));
    let id = id_of(&memory.heard());
    let ran = then(call);
    memory.answer(id, json!({"n": 2}));
    let (thread, step) = ran.recv_timeout(WAIT).unwrap();
    assert_eq!(thread, "call-wait");
    assert!(matches!(step, Step::Done(Ok(v)) if v == json!({"n": 2})));
}

#[test]
fn a_watched_call_ends_soon_after_its_caller_goes() {
    let (memory, breakers) = (Memory::new(), breakers());
    let gone = Arc::new(AtomicBool::new(false));
    let mut call = open(&memory, &breakers, WAIT, relayed("slow"));
    call.watch(gone.clone());
    let id = id_of(&memory.heard());
    let started = Instant::now();
    let waiter = std::thread::spawn(move || call.wait());
    gone.store(true, Ordering::Release);
    let e = waiter.join().unwrap().unwrap_err();
    assert!(e.message.contains("went away"), "{e:?}");
    assert!(started.elapsed() < WAIT / 2, "not at its deadline");
    assert_eq!(memory.cancelled(), [(id, "the client went away".to_string())]);
    assert_eq!(state(&breakers), CircuitState::Closed);

    // The call's own flag over the thread's: a caller still there is answered, though the
    // server takes several of the watch's slices.
    let mut call = open(&memory, &breakers, WAIT, relayed("slow"));
    call.watch(Arc::new(AtomicBool::new(false)));
    let id = id_of(&memory.heard());
    let m = memory.clone();
    let server = std::thread::spawn(move || {
        std::thread::sleep(then::WATCH_SLICE * 3);
        m.answer(id, json!({}));
    });
    let thread_gone = Arc::new(AtomicBool::new(true));
    assert_eq!(while_caller_watched(thread_gone.clone(), || call.wait()), Ok(json!({})));
    server.join().unwrap();
    // Without one, the thread's flag is the one looked at.
    let call = open(&memory, &breakers, WAIT, relayed("slow"));
    let e = while_caller_watched(thread_gone, || call.wait()).unwrap_err();
    assert!(e.message.contains("went away"), "{e:?}");
}

#[test]
fn a_modern_servers_input_rounds_ask_the_caller_and_the_hub_then_send_the_request_again() {
    let (memory, breakers) = (Memory::modern(), breakers());
    let mut call = open(&memory, &breakers, WAIT, relayed("ask"));
    let id = id_of(&memory.heard());
    memory.answer(
        id,
        json!({"resultType": "input_required", "requestState": "s1", "inputRequests": {
        "color": {"method": "elicitation/create", "params": {"message": "color?"}},
        "roots": {"method": "roots/list"}}}),
    );
    // The caller's client can answer the elicitation: it is asked; the hub answers the rest.
    let Some(Step::Message(asked)) = call.next(Instant::now() + WAIT) else { panic!("the caller is asked") };
    assert_eq!(
        (&asked["id"], &asked["method"]),
        (&json!(format!("in:{id}:color")), &json!("elicitation/create"))
    );
    assert!(memory.heard_nothing(), "nothing is sent again before every answer is in");
    memory.answer_child(&format!("in:{id}:color"), &json!({"result": {"action": "accept"}}));
    assert!(call.next(Instant::now() + Duration::from_millis(50)).is_none());
    let again = memory.heard();
    assert_eq!(id_of(&again), id, "under the same hub id");
    assert_eq!(again["params"]["name"], "ask");
    assert_eq!(again["params"]["requestState"], "s1");
    assert_eq!(
        again["params"]["inputResponses"],
        json!({"color": {"action": "accept"}, "roots": {"answered": "by the hub"}})
    );
    memory.answer(id, json!({"resultType": "complete", "content": []}));
    assert_eq!(call.wait(), Ok(json!({"content": []})), "made legacy");
    assert!(memory.cancelled().is_empty());
}

#[test]
fn a_modern_servers_input_rounds_are_bounded_and_a_declined_input_ends_the_call() {
    let (memory, breakers) = (Memory::modern(), breakers());
    let call = open(&memory, &breakers, WAIT, relayed("ask"));
    let waiter = std::thread::spawn(move || call.wait());
    let asking = json!({"resultType": "input_required", "inputRequests": {"r": {"method": "roots/list"}}});
    for _ in 0..=modern::MAX_INPUT_ROUNDS {
        memory.answer(id_of(&memory.heard()), asking.clone());
    }
    let e = waiter.join().unwrap().unwrap_err();
    assert!(e.message.contains("after 8 rounds"), "{e:?}");
    assert!(memory.heard_nothing(), "one request and {} rounds", modern::MAX_INPUT_ROUNDS);

    let mut call = open(&memory, &breakers, WAIT, relayed("ask"));
    let id = id_of(&memory.heard());
    let asking = json!({"resultType": "input_required", "inputRequests": {
        "color": {"method": "elicitation/create", "params": {"message": "color?"}}}});
    memory.answer(id, asking);
    assert!(matches!(call.next(Instant::now() + WAIT), Some(Step::Message(_))));
    memory.answer_child(&format!("in:{id}:color"), &json!({"error": {"code": -1, "message": "no"}}));
    let e = call.wait().unwrap_err();
    assert!(e.message.contains("asked for input \"color\", which was not given"), "{e:?}");
    // Both are the server's answers, not its failures.
    assert_eq!(state(&breakers), CircuitState::Closed);
}
