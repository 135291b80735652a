//! One child, many sessions: what keeps each session's part of it its own. Tasks belong to the
//! session that created them (others are told "unknown task", `tasks/list` shows a session its
//! own, status notifications reach the owner only); resource updates go to the sessions
//! subscribed to that URI (the child is unsubscribed when the last one leaves); log messages go
//! to sessions that set a level, each filtered by its own, with the child at the lowest level
//! asked. A child's request no call in flight can take may still have a client: a task's
//! owner, or the session whose roots just changed, over its GET stream.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::owners::rank;
use super::{Gateway, Session, Target};
use crate::exchange::{Can, RELATED_TASK};
use crate::jsonrpc;

/// What becomes of a client's request to a shared child.
pub(super) enum Share {
    /// The hub answers it (this response).
    Answer(Value),
    /// It goes to the child.
    Relay(Relaying),
}

pub(super) type ResultHook = Box<dyn FnOnce(Value) -> Value + Send>;

/// How a request to a shared child is relayed.
#[derive(Default)]
pub(super) struct Relaying {
    /// The result, when there is one, passes through this.
    pub hook: Option<ResultHook>,
    /// The hook asks a server itself (a bridged `tasks/get`): it blocks, so it must run where
    /// waiting is allowed (`Call::on_result_blocking`).
    pub hook_blocks: bool,
    /// Waiting on a task (`tasks/result`): the call lasts as long as the task may, until this
    /// (`None`: the server gave no ttl, so the server's `max_request_timeout`).
    pub task_life: Option<Option<Instant>>,
    /// Who calls, for the audit trail (a `tools/call`).
    pub who: Option<std::sync::Arc<crate::audit::Who>>,
}

impl Relaying {
    fn hook(f: impl FnOnce(Value) -> Value + Send + 'static) -> Share {
        Share::Relay(Relaying { hook: Some(Box::new(f)), ..Relaying::default() })
    }

    /// `f` after the hook there is.
    pub(super) fn then(mut self, f: impl FnOnce(Value) -> Value + Send + 'static) -> Relaying {
        self.hook = Some(match self.hook.take() {
            Some(first) => Box::new(move |v| f(first(v))),
            None => Box::new(f),
        });
        self
    }
}

impl Gateway {
    /// Looks at a session's request before it goes to `server`; may change it (`logging/setLevel`
    /// asks for the lowest level of all sessions).
    pub(super) fn share(&self, server: &str, session: &Session, msg: &mut Value) -> Share {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let str_param =
            |k: &str| msg.pointer(&format!("/params/{k}")).and_then(Value::as_str).map(str::to_string);
        let (srv, sid) = (server.to_string(), session.id.clone());
        match jsonrpc::method(msg) {
            method @ ("tasks/get" | "tasks/result" | "tasks/cancel" | "tasks/update") => {
                let task = str_param("taskId").unwrap_or_default();
                let o = self.owners.lock();
                if !o.owns_task(server, &task, &session.id) {
                    let why = format!("unknown task: {task}");
                    return Share::Answer(jsonrpc::error(id, jsonrpc::INVALID_PARAMS, &why));
                }
                // `tasks/result` blocks until the task ends: its life, not the request deadline.
                let task_life = (method == "tasks/result").then(|| o.task_expiry(server, &task));
                drop(o);
                let hook = (method == "tasks/get" && self.bridges_tasks(server, session))
                    .then(|| super::task_bridge::bridged_get(self.servers.clone(), srv.clone()));
                Share::Relay(Relaying { hook_blocks: hook.is_some(), hook, task_life, who: None })
            }
            "tools/call" if self.bridges_tasks(server, session) => Share::Relay(Relaying {
                hook: self.bridged_call(server, session, msg),
                ..Relaying::default()
            }),
            "tasks/list" => {
                let owners = self.owners.clone();
                Relaying::hook(move |mut result: Value| {
                    if let Some(Value::Array(tasks)) = result.get_mut("tasks") {
                        let o = owners.lock();
                        tasks.retain(|t| {
                            t.get("taskId")
                                .and_then(Value::as_str)
                                .is_some_and(|t| o.owns_task(&srv, t, &sid))
                        });
                    }
                    result
                })
            }
            "tools/call" if msg.pointer("/params/task").is_some() || session.client.tasks_v2 => {
                // A call may become a task: asked for with `task` (V1: `task.taskId`, `ttl`), or
                // made one by the server (V2: `resultType: "task"`, `taskId`, `ttlMs`).
                let owners = self.owners.clone();
                Relaying::hook(move |result: Value| {
                    let v2 = result.get("resultType").and_then(Value::as_str) == Some("task");
                    let (id, ttl) = match v2 {
                        true => ("/taskId", "/ttlMs"),
                        false => ("/task/taskId", "/task/ttl"),
                    };
                    if let Some(task) = result.pointer(id).and_then(Value::as_str) {
                        let ttl = result.pointer(ttl).and_then(Value::as_u64);
                        let expires = ttl.map(|ms| Instant::now() + Duration::from_millis(ms));
                        owners.lock().task_created(&srv, task, &sid, expires);
                    }
                    result
                })
            }
            "resources/subscribe" => {
                let uri = str_param("uri").unwrap_or_default();
                self.owners.lock().subscribe(server, &uri, &session.id);
                Share::Relay(Relaying::default())
            }
            "resources/unsubscribe" => {
                let uri = str_param("uri").unwrap_or_default();
                match self.owners.lock().unsubscribe(server, &uri, &session.id) {
                    true => Share::Relay(Relaying::default()),
                    // Others still want it: the child keeps sending, the hub stops delivering.
                    false => Share::Answer(jsonrpc::result(id, json!({}))),
                }
            }
            "logging/setLevel" => match self.set_level(session, server, str_param("level").as_deref()) {
                Ok(level) => {
                    msg["params"]["level"] = json!(level);
                    Share::Relay(Relaying::default())
                }
                Err(why) => Share::Answer(jsonrpc::error(id, jsonrpc::INVALID_PARAMS, &why)),
            },
            _ => Share::Relay(Relaying::default()),
        }
    }

    /// Records a session's log level; the level `server` is to run at.
    pub(super) fn set_level(
        &self,
        session: &Session,
        server: &str,
        level: Option<&str>,
    ) -> Result<&'static str, String> {
        let Some(level) = super::owners::LEVELS.iter().copied().find(|l| Some(*l) == level) else {
            return Err(format!("invalid log level {level:?}"));
        };
        let mut o = self.owners.lock();
        o.set_level(&session.id, &session.target, level);
        Ok(o.child_level(server).unwrap_or(level))
    }

    /// A child's notification to the sessions it concerns.
    pub(super) fn distribute(&self, server: &str, msg: &Value) {
        let method = jsonrpc::method(msg);
        let own = Target::Server(server.to_string());
        let param = |k: &str| msg.pointer(&format!("/params/{k}")).and_then(Value::as_str).unwrap_or("");
        match method {
            "notifications/message" => {
                let level = rank(param("level"));
                let wants = |s: &Session| self.owners.lock().level(&s.id).is_some_and(|l| level >= l);
                let aggregated = self.sessions.of(&Target::Aggregate);
                let all = self.shows_everything();
                let seeing =
                    aggregated.into_iter().filter(|s| all || self.view(&s.client).shows_server(server));
                for s in self.sessions.of(&own).into_iter().chain(seeing) {
                    if wants(&s) {
                        s.deliver(msg.clone());
                    }
                }
            }
            "notifications/resources/updated" => {
                let subscribers = self.owners.lock().subscribers(server, param("uri"));
                for s in subscribers.iter().filter_map(|id| self.sessions.peek(id)) {
                    s.deliver(as_seen_by(&s, server, msg.clone()));
                }
            }
            "notifications/tasks/status" | "notifications/tasks" => {
                let owner = self.owners.lock().task_owner(server, param("taskId")).map(str::to_string);
                if let Some(s) = owner.and_then(|id| self.sessions.peek(&id)) {
                    s.deliver(as_seen_by(&s, server, msg.clone()));
                }
            }
            _ => {
                for s in self.sessions.of(&own) {
                    s.deliver(msg.clone());
                }
                if method.ends_with("/list_changed") {
                    // Only to the clients whose profile shows the server.
                    let all = self.shows_everything();
                    for s in self.sessions.of(&Target::Aggregate) {
                        if all || self.view(&s.client).shows_server(server) {
                            s.deliver(msg.clone());
                        }
                    }
                }
            }
        }
    }

    /// A child's request that no call in flight can take, offered to the session it names (a
    /// task's owner) or whose roots change it answers; true when that session has a GET stream
    /// to take it and declared what it needs.
    pub(super) fn offer(&self, server: &str, forward: &Value) -> bool {
        let task = forward.pointer(&format!("/params/_meta/{}/taskId", RELATED_TASK.replace('/', "~1")));
        let session = match (task.and_then(Value::as_str), jsonrpc::method(forward)) {
            (Some(task), _) => self.owners.lock().task_owner(server, task).map(str::to_string),
            (None, "roots/list") => self.owners.lock().take_roots(server, Instant::now()),
            _ => None,
        };
        let Some(s) = session.and_then(|id| self.sessions.peek(&id)) else { return false };
        s.client.can.answers(forward) && s.deliver(as_seen_by(&s, server, forward.clone()))
    }

    /// A session's `notifications/roots/list_changed`: passed on to its servers, whose next
    /// `roots/list` is then this session's to answer.
    pub(super) fn roots_changed(&self, session: &Session) {
        if !session.client.can.roots {
            return;
        }
        let servers = match &session.target {
            Target::Server(s) => vec![s.clone()],
            Target::Aggregate => self.running(),
        };
        // The hub declares roots to its stdio children only: a remote server never asks.
        for server in servers.into_iter().filter(|s| !self.servers.is_remote(s)) {
            self.owners.lock().roots_changed(&server, &session.id, Instant::now());
            self.servers.notify(&server, "notifications/roots/list_changed", None);
        }
    }

    /// A session ended: its subscriptions and log level no longer count.
    pub(super) fn session_ended(&self, session: &Session) {
        let ended = self.owners.lock().session_ended(&session.id);
        for (server, uri) in ended.unsubscribe {
            self.servers.send_only(&server, "resources/unsubscribe", Some(json!({"uri": uri})));
        }
        for (server, level) in ended.levels {
            self.servers.send_only(&server, "logging/setLevel", Some(json!({"level": level})));
        }
    }
}

/// A child's message about a task as the session knows the task: on the aggregated endpoint,
/// under the id that names the server.
fn as_seen_by(session: &Session, server: &str, mut msg: Value) -> Value {
    if session.target == Target::Aggregate {
        if let Some(params) = msg.get_mut("params").map(Value::take) {
            msg["params"] = match jsonrpc::method(&msg) == "notifications/resources/updated" {
                true => super::extensions::public_uri_of(server, params),
                false => super::extensions::public_task_ids(server, params),
            };
        }
    }
    msg
}

/// What a session's client can answer, for the calls it relays.
pub(super) fn caller_of(session: &Session) -> crate::exchange::Caller {
    let can: Can = session.client.can;
    crate::exchange::Caller { session: session.id.clone(), can }
}
