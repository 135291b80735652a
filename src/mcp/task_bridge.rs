//! Tasks between eras: a client of the 2026-07-28 revision that opted in to the tasks
//! extension speaks its second version (the server makes a call a task: `resultType: "task"`,
//! `tasks/get` carries the result once the task is done), while most servers behind speak the
//! first (the client asks with `params.task`; `tasks/result` fetches the outcome). For such a
//! client and such a server the hub translates: a call of a tool that requires a task is sent
//! as a task and its answer given in the second version's shape; `tasks/get` is answered in
//! that shape, with the result (or the error) of a finished task fetched from the server.
//! A first-version task waiting for input shows as `working`: its server's request reaches the
//! client only if it can take requests, which such a client cannot, and the hub answers as a
//! client without the capability would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::Gateway;
use super::modern::MODERN_VERSION;
use super::session::Session;
use super::share::ResultHook;
use crate::jsonrpc;
use crate::servers::Servers;

impl Gateway {
    /// Whether the hub translates tasks between `session`'s client and `server`: the client
    /// speaks the second version, the server declared the first (`tasks.requests.tools.call`).
    pub(super) fn bridges_tasks(&self, server: &str, session: &Session) -> bool {
        session.version == MODERN_VERSION
            && session.client.tasks_v2
            && self.servers.handshake_part(server, "/capabilities/tasks/requests/tools/call").is_some()
    }

    /// For a bridged `tools/call`: when the tool requires a task, the call becomes one (`task`
    /// added) and the hook that answers in the second version's shape (and records the task
    /// as `session`'s). `None`: the call goes as it is.
    pub(super) fn bridged_call(
        &self,
        server: &str,
        session: &Session,
        msg: &mut Value,
    ) -> Option<ResultHook> {
        let tool = msg.pointer("/params/name").and_then(Value::as_str)?.to_string();
        if self.task_support(server, &tool).as_deref() != Some("required") {
            return None;
        }
        msg["params"]["task"] = json!({});
        let (owners, server, sid) = (self.owners.clone(), server.to_string(), session.id.clone());
        Some(Box::new(move |result: Value| {
            let Some(task) = result.get("task") else { return result };
            let mut created = second_version(task);
            created.insert("resultType".into(), json!("task"));
            if let Some(meta) = result.get("_meta") {
                created.insert("_meta".into(), meta.clone());
            }
            if let Some(id) = task.get("taskId").and_then(Value::as_str) {
                let ttl = task.get("ttl").and_then(Value::as_u64);
                let expires = ttl.map(|ms| Instant::now() + Duration::from_millis(ms));
                owners.lock().task_created(&server, id, &sid, expires);
            }
            Value::Object(created)
        }))
    }
}

/// For a bridged `tasks/get`: the task in the second version's shape, with the result or the
/// error of a finished one fetched from the server (a blocking request: relayed off the worker).
pub(super) fn bridged_get(servers: Arc<Servers>, server: String) -> ResultHook {
    Box::new(move |task: Value| {
        let mut v2 = second_version(&task);
        let id = task.get("taskId").cloned().unwrap_or(Value::Null);
        let outcome = || servers.call(&server, "tasks/result", Some(json!({"taskId": id})));
        match task.get("status").and_then(Value::as_str) {
            Some("completed") => match outcome() {
                Ok(mut result) => {
                    // The call's own result, as that revision gives results.
                    if let Some(r) = result.as_object_mut() {
                        r.entry("resultType").or_insert_with(|| json!("complete"));
                    }
                    v2.insert("result".into(), result);
                }
                Err(e) => {
                    v2.insert("status".into(), json!("failed"));
                    v2.insert("error".into(), e.to_value());
                }
            },
            Some("failed") => {
                let error = match outcome() {
                    Err(e) => e.to_value(),
                    Ok(_) => {
                        let why =
                            task.get("statusMessage").and_then(Value::as_str).unwrap_or("the task failed");
                        json!({"code": jsonrpc::INTERNAL_ERROR, "message": why})
                    }
                };
                v2.insert("error".into(), error);
            }
            Some("input_required") => {
                v2.insert("status".into(), json!("working"));
            }
            _ => {}
        }
        Value::Object(v2)
    })
}

/// A first-version task (`ttl`, `pollInterval`) as the second version names its fields.
fn second_version(task: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in task.as_object().into_iter().flatten() {
        match k.as_str() {
            "ttl" => out.insert("ttlMs".into(), v.clone()),
            "pollInterval" => out.insert("pollIntervalMs".into(), v.clone()),
            _ => out.insert(k.clone(), v.clone()),
        };
    }
    out.entry("ttlMs").or_insert(Value::Null);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_version_fields_take_the_second_versions_names() {
        let t = json!({"taskId": "t1", "status": "working", "createdAt": "c", "lastUpdatedAt": "u",
            "ttl": 60000, "pollInterval": 500, "statusMessage": "busy"});
        let v2 = Value::Object(second_version(&t));
        assert_eq!(
            v2,
            json!({"taskId": "t1", "status": "working", "createdAt": "c", "lastUpdatedAt": "u",
            "ttlMs": 60000, "pollIntervalMs": 500, "statusMessage": "busy"})
        );
        let no_ttl = Value::Object(second_version(&json!({"taskId": "t"})));
        assert_eq!(no_ttl["ttlMs"], Value::Null, "ttlMs is required, null when unlimited");
    }
}
