//! The aggregated endpoint `/mcp`: every running server's tools and prompts as
//! `{server}__{name}`, resources routed by the server that listed them, tasks and apps' URIs
//! named by their server (`extensions`), and the hub's own tools (`own_tools`). The merged lists are cached until a server's list changes; a
//! request that needs the servers asked (a cold list, a name not in the cache, the fan-out of
//! `logging/setLevel`) leaves the worker, and the servers are asked in parallel, each within
//! `FANOUT_DEADLINE`. A server that fails or is slow is left out, never fatal.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::catalog::{Entry, Found, Index};
use super::extensions::{public_contents, public_links, public_task_ids, public_ui_meta, public_uri_of};
use super::own_tools::enhance_tool;
use super::shelf::Kind;
use super::tool_search::{CALL_TOOL, FIND_TOOLS, find_tools, unwrap_call};
use super::views::own_hidden;
use super::{Answer, Gateway, Session, View, reply};
use crate::exchange::Request;
use crate::jsonrpc::{self, RpcError};
use crate::servers::Status;

/// The aggregated endpoint joins server and tool names with this.
pub const SEPARATOR: &str = "__";
/// The hub's own tool on the aggregated endpoint.
pub const ENHANCE_TOOL: &str = "agenthub__enhance_prompt";
/// The hub's pipelines on the aggregated endpoint: `agenthub__pipeline_<name>`.
pub const PIPELINE_TOOL_PREFIX: &str = "agenthub__pipeline_";
/// Longest the aggregated endpoint waits for any one server's lists.
pub const FANOUT_DEADLINE: Duration = Duration::from_secs(10);

/// Where an aggregated request is being worked out.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// On an HTTP worker: only what the cache knows; anything else moves off.
    Worker,
    /// On a thread of its own: servers may be asked.
    Own,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum List {
    Tools,
    Prompts,
}

impl Gateway {
    /// Tools per server as the aggregated view last listed them; `None` while that list is cold
    /// (finding out would ask the servers).
    pub fn tool_counts(&self) -> Option<HashMap<String, usize>> {
        let c = self.catalog.lock();
        let tools = c.tools.as_ref()?;
        let mut counts = HashMap::new();
        for e in tools.entries() {
            *counts.entry(e.server.clone()).or_insert(0) += 1;
        }
        Some(counts)
    }

    /// The hub's own tools, first on the aggregated list: the enhancer's, the pipelines.
    pub(super) fn own_tools(&self) -> Vec<Value> {
        let mut own: Vec<Value> = self.enhancer.iter().map(|_| enhance_tool()).collect();
        own.extend(self.pipelines.iter().flat_map(|p| p.list()).map(|p| {
            json!({"name": format!("{PIPELINE_TOOL_PREFIX}{}", p.name), "description": p.description,
                   "inputSchema": p.schema})
        }));
        own
    }

    pub(super) fn aggregate(
        self: &Arc<Self>,
        session: &Arc<Session>,
        msg: Value,
        sse: bool,
        at: Place,
    ) -> Answer {
        match self.route(session, msg, sse, at) {
            Ok(answer) => answer,
            Err(msg) => {
                let (gw, session) = (self.clone(), session.clone());
                super::blocking(move || gw.aggregate(&session, msg, sse, Place::Own))
            }
        }
    }

    /// The answer, or the message back when working it out needs the servers and `at` is the
    /// worker.
    fn route(
        self: &Arc<Self>,
        session: &Arc<Session>,
        mut msg: Value,
        sse: bool,
        at: Place,
    ) -> Result<Answer, Value> {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let method = jsonrpc::method(&msg).to_string();
        let not_found = |what: &str| reply(jsonrpc::error(id.clone(), jsonrpc::INVALID_PARAMS, what));
        let own = at == Place::Own;
        if Kind::of_method(&method).is_some() && !self.cold_ready(session, at) {
            return Err(msg);
        }
        let view = self.view(&session.client);
        let hidden = |server: &str| !view.shows_server(server);
        if method == "tools/call" && msg.pointer("/params/name") == Some(&json!(CALL_TOOL)) {
            if let Err(why) = unwrap_call(&mut msg) {
                return Ok(not_found(&why));
            }
        }
        Ok(match method.as_str() {
            "tools/list" => {
                let Some(entries) = self.view_entries(&view, List::Tools, at) else { return Err(msg) };
                let mut tools = self.own_tools_seen(&view);
                match view.searching(self.cold.search, entries.entries().len()) {
                    true => tools.extend(self.search_tools(&entries)),
                    false => tools.extend(entries.entries().iter().map(|e| e.item.clone())),
                }
                reply(jsonrpc::result(id, json!({ "tools": tools })))
            }
            "tools/call" if msg.pointer("/params/name") == Some(&json!(FIND_TOOLS)) => {
                let Some(entries) = self.view_entries(&view, List::Tools, at) else { return Err(msg) };
                let rerank = self.enhancer.as_ref().and_then(|e| e.reranker());
                // Reranking asks Ollama: never on the worker.
                if rerank.is_some() && !own {
                    return Err(msg);
                }
                match find_tools(&entries, msg.pointer("/params/arguments"), rerank.as_ref()) {
                    Ok(result) => reply(jsonrpc::result(id, result)),
                    Err(why) => not_found(&why),
                }
            }
            "tools/call" if own_hidden(&msg, &view) => {
                let name = msg.pointer("/params/name").and_then(Value::as_str).unwrap_or("");
                self.refused(&view, None, &format!("tool {name}"));
                not_found(&format!("unknown tool \"{name}\""))
            }
            "tools/call" if msg.pointer("/params/name") == Some(&json!(ENHANCE_TOOL)) => {
                // The local model takes seconds.
                if !own {
                    return Err(msg);
                }
                reply(jsonrpc::result(id, self.enhance_call(session, msg.pointer("/params/arguments"))))
            }
            "tools/call"
                if msg
                    .pointer("/params/name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.starts_with(PIPELINE_TOOL_PREFIX)) =>
            {
                // A run takes as long as its steps: never on the worker.
                if !own {
                    return Err(msg);
                }
                self.pipeline_call(&msg, sse)
            }
            "prompts/list" => {
                let Some(entries) = self.view_entries(&view, List::Prompts, at) else { return Err(msg) };
                let prompts: Vec<Value> = entries.entries().iter().map(|e| e.item.clone()).collect();
                reply(jsonrpc::result(id, json!({ "prompts": prompts })))
            }
            "tools/call" | "prompts/get" => {
                let list = if method == "tools/call" { List::Tools } else { List::Prompts };
                let name = msg.pointer("/params/name").and_then(Value::as_str).unwrap_or("").to_string();
                let Some(found) = self.lookup(&view, list, &name, at) else { return Err(msg) };
                let Some(entry) = found else {
                    let what = if list == List::Tools { "tool" } else { "prompt" };
                    if self.hides(&view, list, &name) {
                        self.refused(&view, None, &format!("{what} {name}"));
                    }
                    return Ok(not_found(&format!("unknown {what} \"{name}\"")));
                };
                if let Some(stop) = self.start_first(&entry.server, at, &id) {
                    return stop.ok_or(msg);
                }
                msg["params"]["name"] = json!(entry.original.as_str());
                if list == List::Prompts {
                    return Ok(self.relay(&entry.server, session, msg, sse));
                }
                // A call made a task: its id names the server from now on; so do its app's URIs.
                let server = entry.server.clone();
                self.relay_then(&entry.server, session, msg, sse, move |how| {
                    how.then(move |r| {
                        public_links(&server, public_ui_meta(&server, public_task_ids(&server, r)))
                    })
                })
            }
            "tasks/get" | "tasks/result" | "tasks/cancel" | "tasks/update" => {
                let public = msg.pointer("/params/taskId").and_then(Value::as_str).unwrap_or("").to_string();
                let owned = public
                    .split_once(SEPARATOR)
                    .filter(|(server, task)| self.owners.lock().owns_task(server, task, &session.id));
                let Some((server, task)) = owned else {
                    return Ok(not_found(&format!("unknown task: {public}")));
                };
                msg["params"]["taskId"] = json!(task);
                let server = server.to_string();
                self.relay_then(&server.clone(), session, msg, sse, move |how| {
                    how.then(move |r| public_task_ids(&server, r))
                })
            }
            "tasks/list" => {
                if !own {
                    return Err(msg);
                }
                reply(jsonrpc::result(id, json!({ "tasks": self.tasks_of(session) })))
            }
            "resources/list" | "resources/templates/list" => {
                if !own {
                    return Err(msg);
                }
                let kind = if method == "resources/list" { Kind::Resources } else { Kind::Templates };
                reply(jsonrpc::result(
                    id,
                    json!({ kind.key(): self.resources(kind, |s| view.shows_server(s)) }),
                ))
            }
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                let uri = msg.pointer("/params/uri").and_then(Value::as_str).unwrap_or("").to_string();
                if let Some((server, original)) = self.private_uri(&uri).filter(|(s, _)| !hidden(s)) {
                    // A listed URI names its server: no list needed to route it.
                    if let Some(stop) = self.start_first(&server, at, &id) {
                        return stop.ok_or(msg);
                    }
                    msg["params"]["uri"] = json!(original);
                    return Ok(self.relay_then(&server.clone(), session, msg, sse, move |how| {
                        how.then(move |r| public_contents(&server, r))
                    }));
                }
                // A URI not from `/mcp`'s lists (a skill's file, a link in a tool's result).
                match self.resource_owner(&uri, at) {
                    None => return Err(msg),
                    Some(Some(server)) if !hidden(&server) => match self.start_first(&server, at, &id) {
                        Some(stop) => return stop.ok_or(msg),
                        None => self.relay(&server, session, msg, sse),
                    },
                    Some(_) => reply(jsonrpc::error(id, -32002, &format!("resource not found: {uri}"))),
                }
            }
            "skills/list" => {
                if !own {
                    return Err(msg);
                }
                let mut skills = self.skills();
                let c = self.catalog.lock();
                skills.retain(|s| {
                    let uri = s.get("uri").and_then(Value::as_str).unwrap_or("");
                    c.skills.get(uri).is_none_or(|server| !hidden(server))
                });
                drop(c);
                reply(jsonrpc::result(id, json!({ "skills": skills })))
            }
            "skills/get" | "resources/directory/read" => {
                let uri = msg.pointer("/params/uri").and_then(Value::as_str).unwrap_or("").to_string();
                let Some(found) = self.skill_owner(&uri, &method, at) else { return Err(msg) };
                match found {
                    Ok(server) if hidden(&server) => {
                        reply(jsonrpc::error(id, -32002, &format!("resource not found: {uri}")))
                    }
                    Ok(server) => self.relay(&server, session, msg, sse),
                    Err((code, why)) => reply(jsonrpc::error(id, code, &why)),
                }
            }
            "completion/complete" => {
                let r = msg.pointer("/params/ref").cloned().unwrap_or(Value::Null);
                let owner = match r.get("type").and_then(Value::as_str) {
                    Some("ref/prompt") => {
                        let name = r.get("name").and_then(Value::as_str).unwrap_or("");
                        let Some(found) = self.lookup(&view, List::Prompts, name, at) else {
                            return Err(msg);
                        };
                        found.map(|e| {
                            msg["params"]["ref"]["name"] = json!(e.original.as_str());
                            e.server.clone()
                        })
                    }
                    Some("ref/resource") => {
                        let uri = r.get("uri").and_then(Value::as_str).unwrap_or("");
                        if let Some((server, original)) = self.private_uri(uri) {
                            msg["params"]["ref"]["uri"] = json!(original);
                            Some(server)
                        } else {
                            let Some(found) = self.resource_owner(uri, at) else { return Err(msg) };
                            found
                        }
                        .filter(|s| !hidden(s))
                    }
                    _ => None,
                };
                match owner {
                    Some(server) => self.relay(&server, session, msg, sse),
                    None => {
                        reply(jsonrpc::result(id, json!({"completion": {"values": [], "hasMore": false}})))
                    }
                }
            }
            "logging/setLevel" => {
                if !own {
                    return Err(msg);
                }
                let asked = msg.pointer("/params/level").and_then(Value::as_str);
                let mut running = self.running();
                running.retain(|s| !hidden(s));
                let mut levels = Vec::new();
                for s in &running {
                    match self.set_level(session, s, asked) {
                        Ok(l) => levels.push((s.clone(), l)),
                        Err(why) => return Ok(reply(jsonrpc::error(id, jsonrpc::INVALID_PARAMS, &why))),
                    }
                }
                let level_of = |s: &str| levels.iter().find(|(n, _)| n == s).map(|(_, l)| *l);
                self.fan_out(running, |s| {
                    let params = Some(json!({"level": level_of(s).unwrap_or("info")}));
                    if let Err(e) = self.ask(s, "logging/setLevel", params) {
                        log::debug!("logging/setLevel on {s}: {}", self.servers.redact(s, &e.message));
                    }
                });
                reply(jsonrpc::result(id, json!({})))
            }
            m => reply(jsonrpc::error(id, jsonrpc::METHOD_NOT_FOUND, &format!("method not found: {m}"))),
        })
    }

    /// A server's tool's `execution.taskSupport`, from the aggregated tool list (listed when
    /// cold, so off the worker).
    pub(super) fn task_support(&self, server: &str, tool: &str) -> Option<String> {
        let tools = self.entries(List::Tools, Place::Own)?;
        let entry = tools.get(&public_name(server, tool))?;
        entry.item.pointer("/execution/taskSupport").and_then(Value::as_str).map(str::to_string)
    }

    pub(super) fn running(&self) -> Vec<String> {
        self.servers.list().into_iter().filter(|s| s.info.status == Status::Running).map(|s| s.name).collect()
    }

    /// The running servers whose handshake declared `capability`.
    pub(super) fn offering(&self, capability: &str) -> Vec<String> {
        let pointer = format!("/capabilities/{capability}");
        self.servers
            .list()
            .into_iter()
            .filter(|s| s.info.status == Status::Running)
            .filter(|s| s.initialize.as_ref().and_then(|i| i.pointer(&pointer)).is_some())
            .map(|s| s.name)
            .collect()
    }

    /// `f` for every server at once, one thread each; the results in the servers' order.
    pub(super) fn fan_out<T: Send>(
        &self,
        servers: Vec<String>,
        f: impl Fn(&str) -> T + Sync,
    ) -> Vec<(String, T)> {
        if servers.len() <= 1 {
            return servers
                .into_iter()
                .map(|s| {
                    let t = f(&s);
                    (s, t)
                })
                .collect();
        }
        let f = &f;
        std::thread::scope(|scope| {
            let handles: Vec<_> = servers
                .iter()
                .map(|s| {
                    let name = format!("fanout-{}", s.chars().take(8).collect::<String>());
                    std::thread::Builder::new().name(name).spawn_scoped(scope, move || f(s))
                })
                .collect();
            servers
                .iter()
                .zip(handles)
                .filter_map(|(s, h)| match h {
                    Ok(h) => h.join().ok().map(|t| (s.clone(), t)),
                    // No thread to be had: ask this one here.
                    Err(_) => Some((s.clone(), f(s))),
                })
                .collect()
        })
    }

    /// One request to one server, within the fan-out's deadline.
    pub(super) fn ask(&self, server: &str, method: &str, params: Option<Value>) -> Result<Value, RpcError> {
        self.ask_until(server, method, params, Instant::now() + FANOUT_DEADLINE)
    }

    fn ask_until(
        &self,
        server: &str,
        method: &str,
        params: Option<Value>,
        until: Instant,
    ) -> Result<Value, RpcError> {
        match self.servers.acquire(server, Request::own(method, params)) {
            Ok(call) => call.wait_until(until),
            Err(e) => Err(RpcError::new(jsonrpc::SERVER_UNAVAILABLE, e.to_string())),
        }
    }

    /// Every page of `method` from one server, the items under `key`, within the fan-out's
    /// deadline.
    pub(super) fn collect(&self, server: &str, method: &str, key: &str) -> Result<Vec<Value>, RpcError> {
        self.collect_until(server, method, key, Instant::now() + FANOUT_DEADLINE)
    }

    pub(super) fn collect_until(
        &self,
        server: &str,
        method: &str,
        key: &str,
        until: Instant,
    ) -> Result<Vec<Value>, RpcError> {
        let mut items = Vec::new();
        let mut cursor: Option<Value> = None;
        for _ in 0..100 {
            let params = cursor.take().map(|c| json!({"cursor": c}));
            let mut page = self.ask_until(server, method, params, until)?;
            if let Some(Value::Array(list)) = page.get_mut(key).map(Value::take) {
                items.extend(list);
            }
            match page.get("nextCursor") {
                Some(c) if !c.is_null() => cursor = Some(c.clone()),
                _ => break,
            }
        }
        Ok(items)
    }

    /// The merged tools (or prompts) of every running server, cached until a list changes;
    /// `None` when the cache is cold and `at` is the worker.
    pub(super) fn entries(&self, list: List, at: Place) -> Option<Arc<Index>> {
        let cached = {
            let c = self.catalog.lock();
            if list == List::Tools { c.tools.clone() } else { c.prompts.clone() }
        };
        if cached.is_some() || at == Place::Worker {
            return cached;
        }
        let kind = if list == List::Tools { Kind::Tools } else { Kind::Prompts };
        let method = kind.method();
        let mut out = Vec::new();
        let live = self.fan_out(self.offering(kind.key()), |s| self.listed(s, kind));
        for (server, got) in self.with_kept(live, kind) {
            match got {
                Ok(items) => {
                    for mut item in items {
                        let original = item.get("name").and_then(Value::as_str).unwrap_or("").to_string();
                        let public = public_name(&server, &original);
                        item["name"] = json!(public);
                        if list == List::Tools && item.get("description").is_none_or(Value::is_null) {
                            item["description"] = json!("");
                        }
                        if list == List::Tools {
                            item = public_ui_meta(&server, item);
                        }
                        out.push(Entry { public, server: server.clone(), original, item });
                    }
                }
                Err(e) => log::warn!(
                    "aggregated {method}: leaving out {server}: {}",
                    self.servers.redact(&server, &e.message)
                ),
            }
        }
        let servers = self.servers.list();
        let rank = |name: &str| servers.iter().position(|s| s.name == name).unwrap_or(usize::MAX);
        let index = Arc::new(Index::new(out, rank));
        let mut c = self.catalog.lock();
        if list == List::Tools {
            c.tools = Some(index.clone());
        } else {
            c.prompts = Some(index.clone());
        }
        Some(index)
    }

    /// The entry with this public name (`Some(None)`: there is none); `None` when finding out
    /// needs the servers and `at` is the worker.
    fn lookup(&self, view: &View, list: List, public: &str, at: Place) -> Option<Option<Found>> {
        // A public name, else (tools only: an MCP app calls its tools by their own names) the
        // one server's tool of that name when exactly one server has it; in the view's list.
        let bare = list == List::Tools;
        if let Some(e) =
            self.view_entries(view, list, Place::Worker).and_then(|i| Found::find(&i, public, bare))
        {
            return Some(Some(e));
        }
        if at == Place::Worker {
            return None;
        }
        // A stale cache may miss a new name: refresh once.
        self.catalog.lock().invalidate(Some(if list == List::Tools {
            "notifications/tools/list_changed"
        } else {
            "notifications/prompts/list_changed"
        }));
        Some(self.view_entries(view, list, Place::Own).and_then(|i| Found::find(&i, public, bare)))
    }

    /// Whether the whole catalog has this name where the view's list does not (a name the
    /// profile hides, not one that does not exist).
    fn hides(&self, view: &View, list: List, public: &str) -> bool {
        !view.profile().shows_all()
            && self
                .entries(list, Place::Worker)
                .is_some_and(|i| Found::find(&i, public, list == List::Tools).is_some())
    }

    /// A resource list of the servers `shows` keeps (a client's profile, or all of them).
    fn resources(&self, kind: Kind, shows: impl Fn(&str) -> bool) -> Vec<Value> {
        let (method, mut out) = (kind.method(), Vec::new());
        let mut offering = self.offering("resources");
        offering.retain(|s| shows(s));
        let live = self.fan_out(offering, |s| self.listed(s, kind));
        for (server, got) in self.with_kept(live, kind) {
            match got {
                Ok(items) => {
                    let mut c = self.catalog.lock();
                    for item in &items {
                        let uri = item
                            .get("uri")
                            .or_else(|| item.get("uriTemplate"))
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        let uri = uri.split('{').next().unwrap_or(uri);
                        c.resources.entry(uri.to_string()).or_insert_with(|| server.clone());
                    }
                    drop(c);
                    out.extend(items.into_iter().map(|i| public_uri_of(&server, i)));
                }
                Err(e) => log::warn!(
                    "aggregated {method}: leaving out {server}: {}",
                    self.servers.redact(&server, &e.message)
                ),
            }
        }
        out
    }

    /// The server a resource URI belongs to: an exact listed URI, else the longest template
    /// prefix (`Some(None)`: none); `None` when finding out needs the servers and `at` is the
    /// worker.
    fn resource_owner(&self, uri: &str, at: Place) -> Option<Option<String>> {
        let find = |c: &super::catalog::Catalog| {
            c.resources.get(uri).cloned().or_else(|| {
                c.resources
                    .iter()
                    .filter(|(p, _)| !p.is_empty() && uri.starts_with(p.as_str()))
                    .max_by_key(|(p, _)| p.len())
                    .map(|(_, s)| s.clone())
            })
        };
        if let Some(s) = find(&self.catalog.lock()) {
            return Some(Some(s));
        }
        if at == Place::Worker {
            return None;
        }
        self.resources(Kind::Resources, |_| true);
        self.resources(Kind::Templates, |_| true);
        // A skill's files are listed by skills/list, not resources/list.
        self.skills();
        Some(find(&self.catalog.lock()))
    }
}

/// `server__name`, kept to 64 characters of `[A-Za-z0-9_.-]`: longer or odd names are cut and
/// given a short hash, so they stay unique and routable.
pub fn public_name(server: &str, name: &str) -> String {
    let full = format!("{server}{SEPARATOR}{name}");
    let clean = full.len() <= 64 && full.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if clean {
        return full;
    }
    let hash = &crate::cache::hash_prompt(&full)[..8];
    let safe: String =
        full.chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '_' }).collect();
    let keep = 64 - hash.len() - 1;
    let cut: String = safe.chars().take(keep).collect();
    format!("{cut}-{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_names_stay_valid_and_unique() {
        assert_eq!(public_name("mem", "read_graph"), "mem__read_graph");
        let long = public_name("server", &"x".repeat(80));
        assert_eq!(long.len(), 64);
        assert_ne!(long, public_name("server", &format!("{}y", "x".repeat(80))));
        let odd = public_name("s", "has space/slash");
        assert!(odd.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)), "{odd}");
    }
}
