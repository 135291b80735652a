//! MCP extensions and the handshake on the aggregated endpoint: task ids as `server__id`
//! wherever they appear and one session's tasks merged across servers; resource URIs (MCP
//! Apps' `ui://` ones too) as `scheme://server+rest` (so they stay valid, two servers' same URI
//! are told apart, and they route back with no list); skills merged across servers,
//! `skills/get` and `resources/directory/read` routed to the skill's server (the latter only
//! to servers that declared `directoryRead`); the handshake's instructions and capabilities
//! combined from the running servers.

use serde_json::{Value, json};

use super::aggregate::{Place, SEPARATOR};
use super::{Gateway, Session};
use crate::jsonrpc;
use crate::servers::Status;

/// The skills extension's key in capabilities.
const SKILLS: &str = "io.modelcontextprotocol/skills";
use crate::exchange::RELATED_TASK;

impl Gateway {
    /// Every running skills server's skills (each page), their URIs and their files' URIs
    /// remembered as that server's.
    pub(super) fn skills(&self) -> Vec<Value> {
        let offering = self.offering(&format!("extensions/{}", SKILLS.replace('/', "~1")));
        let mut out = Vec::new();
        for (server, got) in self.fan_out(offering, |s| self.collect(s, "skills/list", "skills")) {
            let skills = match got {
                Ok(skills) => skills,
                Err(e) => {
                    let why = self.servers.redact(&server, &e.message);
                    log::warn!("aggregated skills/list: leaving out {server}: {why}");
                    continue;
                }
            };
            let mut c = self.catalog.lock();
            for skill in &skills {
                if let Some(uri) = skill.get("uri").and_then(Value::as_str) {
                    c.skills.insert(uri.to_string(), server.clone());
                }
                for file in skill.get("resources").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(uri) = file.get("uri").and_then(Value::as_str) {
                        c.resources.insert(uri.to_string(), server.clone());
                    }
                }
            }
            drop(c);
            out.extend(skills);
        }
        out
    }

    /// The server a skill's `skills/get` or `resources/directory/read` goes to (its URI, or the
    /// longest skill URI it starts with), else the error to answer; `None` when finding out
    /// needs the servers and `at` is the worker.
    pub(super) fn skill_owner(
        &self,
        uri: &str,
        method: &str,
        at: Place,
    ) -> Option<Result<String, (i64, String)>> {
        // A skill is named by its `SKILL.md`; its files and directories are under the folder
        // that holds it.
        let folder = |k: &str| k.strip_suffix("SKILL.md").unwrap_or(k).to_string();
        let find = |m: &std::collections::HashMap<String, String>| {
            m.get(uri).cloned().or_else(|| {
                let prefixes = m
                    .iter()
                    .map(|(k, s)| (folder(k), s))
                    .filter(|(k, _)| uri.starts_with(k.as_str()) || k.strip_suffix('/') == Some(uri));
                prefixes.max_by_key(|(k, _)| k.len()).map(|(_, s)| s.clone())
            })
        };
        let mut owner = find(&self.catalog.lock().skills);
        if owner.is_none() {
            if at == Place::Worker {
                return None;
            }
            self.skills();
            owner = find(&self.catalog.lock().skills);
        }
        let Some(server) = owner else {
            return Some(Err((-32002, format!("skill not found: {uri}"))));
        };
        if method == "resources/directory/read" && !self.reads_directories(&server) {
            let why = format!(
                "{server} does not offer resources/directory/read (no directoryRead in its skills extension)"
            );
            return Some(Err((jsonrpc::METHOD_NOT_FOUND, why)));
        }
        Some(Ok(server))
    }

    /// Whether a running server declared the skills extension's `directoryRead`.
    fn reads_directories(&self, server: &str) -> bool {
        let pointer = format!("/capabilities/extensions/{}/directoryRead", SKILLS.replace('/', "~1"));
        let init = self.servers.get(server).and_then(|s| s.initialize);
        init.is_some_and(|i| i.pointer(&pointer) == Some(&json!(true)))
    }

    /// The tasks a session created, on every server, under their public ids.
    pub(super) fn tasks_of(&self, session: &Session) -> Vec<Value> {
        let mut out = Vec::new();
        for (server, got) in self.fan_out(self.offering("tasks"), |s| self.collect(s, "tasks/list", "tasks"))
        {
            let items = match got {
                Ok(items) => items,
                Err(e) => {
                    let why = self.servers.redact(&server, &e.message);
                    log::warn!("aggregated tasks/list: leaving out {server}: {why}");
                    continue;
                }
            };
            let o = self.owners.lock();
            let mine = |t: &Value| {
                t.get("taskId").and_then(Value::as_str).is_some_and(|t| o.owns_task(&server, t, &session.id))
            };
            out.extend(items.into_iter().filter(mine).map(|t| public_task_ids(&server, t)));
        }
        out
    }

    /// What the aggregated endpoint offers: the hub's own lists, and what any running server
    /// offers of resource subscriptions and tasks.
    pub(super) fn capabilities(&self) -> Value {
        let mut caps = json!({"tools": {"listChanged": true}, "prompts": {"listChanged": true},
                              "resources": {"listChanged": true}, "logging": {}, "completions": {}});
        let running = self.servers.list().into_iter().filter(|s| s.info.status == Status::Running);
        let inits: Vec<Value> = running.filter_map(|s| s.initialize).collect();
        if inits.iter().any(|i| i.pointer("/capabilities/resources/subscribe") == Some(&json!(true))) {
            caps["resources"]["subscribe"] = json!(true);
        }
        let mut tasks = None;
        for t in inits.iter().filter_map(|i| i.pointer("/capabilities/tasks")) {
            merge(tasks.get_or_insert_with(|| json!({})), t);
        }
        if let Some(t) = tasks {
            caps["tasks"] = t;
        }
        let skills = format!("/capabilities/extensions/{}", SKILLS.replace('/', "~1"));
        let offered: Vec<&Value> = inits.iter().filter_map(|i| i.pointer(&skills)).collect();
        if !offered.is_empty() {
            let mut ext = json!({});
            if offered.iter().any(|s| s.get("directoryRead") == Some(&json!(true))) {
                ext["directoryRead"] = json!(true);
            }
            caps["extensions"] = json!({ SKILLS: ext });
        }
        caps
    }

    /// The hub's instructions, then each running server's the client's profile shows, under
    /// its name.
    pub(super) fn instructions(&self, view: &super::View) -> String {
        let mut text = String::from(
            "AgentHub: the tools, prompts and resources of every running MCP server behind this hub. Names are <server>__<name>.",
        );
        let running = self.servers.list().into_iter().filter(|s| s.info.status == Status::Running);
        for s in running.filter(|s| view.shows_server(&s.name)) {
            let own = s.initialize.as_ref().and_then(|i| i.get("instructions")).and_then(Value::as_str);
            if let Some(i) = own.filter(|i| !i.trim().is_empty()) {
                text.push_str(&format!("\n\n## {}\n\n{i}", s.name));
            }
        }
        text
    }

    /// The server and the server's own URI behind a public resource URI.
    pub(super) fn private_uri(&self, uri: &str) -> Option<(String, String)> {
        let (scheme, rest) = uri.split_once(':')?;
        let (slashes, rest) = rest.strip_prefix("//").map_or(("", rest), |r| ("//", r));
        let (server, tail) = rest.split_once('+')?;
        self.servers.contains(server).then(|| (server.to_string(), format!("{scheme}:{slashes}{tail}")))
    }
}

/// A server's task ids in a result or a message's params (`taskId`, `task.taskId`, the
/// related-task `_meta`) as the aggregated endpoint shows them: `server__id`.
pub(super) fn public_task_ids(server: &str, mut v: Value) -> Value {
    let meta = format!("/_meta/{}/taskId", RELATED_TASK.replace('/', "~1"));
    for pointer in ["/taskId", "/task/taskId", meta.as_str()] {
        if let Some(id) = v.pointer_mut(pointer) {
            if let Some(original) = id.as_str() {
                *id = json!(format!("{server}{SEPARATOR}{original}"));
            }
        }
    }
    v
}

/// A server's resource URI as the aggregated endpoint shows it: `scheme://{server}+{rest}`
/// (`scheme:{server}+{rest}` without an authority), so it stays a valid URI and routes back.
pub(super) fn public_uri(server: &str, uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    let valid = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !valid {
        return None;
    }
    Some(match rest.strip_prefix("//") {
        Some(rest) => format!("{scheme}://{server}+{rest}"),
        None => format!("{scheme}:{server}+{rest}"),
    })
}

/// A tool's (or a call result's) app URIs, `_meta.ui.resourceUri` and the older flat
/// `_meta["ui/resourceUri"]`, made public.
pub(super) fn public_ui_meta(server: &str, mut v: Value) -> Value {
    for pointer in ["/_meta/ui/resourceUri", "/_meta/ui~1resourceUri"] {
        if let Some(uri) = v.pointer_mut(pointer) {
            if let Some(public) =
                uri.as_str().filter(|u| u.starts_with("ui://")).and_then(|u| public_uri(server, u))
            {
                *uri = json!(public);
            }
        }
    }
    v
}

/// A tool's result with the URIs of its resource links and embedded resources made public, so a
/// read of one reaches the server that gave it.
pub(super) fn public_links(server: &str, mut r: Value) -> Value {
    for item in r.get_mut("content").and_then(Value::as_array_mut).into_iter().flatten() {
        match item.get("type").and_then(Value::as_str) {
            Some("resource_link") => *item = public_uri_of(server, item.take()),
            Some("resource") => {
                if let Some(res) = item.get_mut("resource") {
                    *res = public_uri_of(server, res.take());
                }
            }
            _ => {}
        }
    }
    r
}

/// A listed resource or template (or a read's content) with its URI made public.
pub(super) fn public_uri_of(server: &str, mut item: Value) -> Value {
    for key in ["uri", "uriTemplate"] {
        if let Some(public) = item.get(key).and_then(Value::as_str).and_then(|u| public_uri(server, u)) {
            item[key] = json!(public);
        }
    }
    item
}

/// A `resources/read` result with its contents' URIs made public.
pub(super) fn public_contents(server: &str, mut r: Value) -> Value {
    if let Some(Value::Array(contents)) = r.get_mut("contents").map(Value::take) {
        r["contents"] = Value::Array(contents.into_iter().map(|c| public_uri_of(server, c)).collect());
    }
    r
}

/// Objects merged key by key (`from` wins on anything that is not an object on both sides).
fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (into, from) => *into = from.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_name_their_server() {
        fn check(v: Value, expected: Value) {
            assert_eq!(public_task_ids("e", v), expected);
        }
        check(json!({"taskId": "t1", "status": "working"}), json!({"taskId": "e__t1", "status": "working"}));
        check(json!({"task": {"taskId": "t1"}}), json!({"task": {"taskId": "e__t1"}}));
        check(
            json!({"content": [], "_meta": {RELATED_TASK: {"taskId": "t1"}}}),
            json!({"content": [], "_meta": {RELATED_TASK: {"taskId": "e__t1"}}}),
        );
        check(json!({"content": []}), json!({"content": []}));
    }

    #[test]
    fn app_uris_name_their_server() {
        let tool = json!({"name": "show", "_meta": {"ui": {"resourceUri": "ui://fixture/app.html"}, "ui/resourceUri": "ui://x"}});
        let shown = public_ui_meta("fx", tool);
        assert_eq!(shown["_meta"]["ui"]["resourceUri"], "ui://fx+fixture/app.html");
        assert_eq!(shown["_meta"]["ui/resourceUri"], "ui://fx+x");
        let read = public_contents(
            "fx",
            json!({"contents": [{"uri": "ui://a/b", "text": "t"}, {"uri": "file:///c"}]}),
        );
        assert_eq!(read["contents"], json!([{"uri": "ui://fx+a/b", "text": "t"}, {"uri": "file://fx+/c"}]));
    }

    #[test]
    fn resource_uris_name_their_server() {
        fn check(uri: &str, expected: Option<&str>) {
            assert_eq!(public_uri("fx", uri).as_deref(), expected, "{uri}");
        }
        check("fixture://one", Some("fixture://fx+one"));
        check("file:///tmp/a", Some("file://fx+/tmp/a"));
        check("urn:isbn:1", Some("urn:fx+isbn:1"));
        check("no-scheme", None);
        check("1x://a", None);
        let t = public_uri_of("fx", json!({"uriTemplate": "demo://item/{id}", "name": "item"}));
        assert_eq!(t["uriTemplate"], "demo://fx+item/{id}");
    }

    #[test]
    fn capabilities_merge_key_by_key() {
        let mut caps = json!({"list": {}});
        merge(&mut caps, &json!({"cancel": {}, "requests": {"tools": {"call": {}}}}));
        merge(&mut caps, &json!({"requests": {"sampling": {}}}));
        assert_eq!(
            caps,
            json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}, "sampling": {}}})
        );
    }
}
