//! Profiles applied: who a client is (its name, `X-Client-Name` else `clientInfo.name` through
//! the rules' `client_names`, and the token it presented), which profile that gives it, and
//! what the profile shows of the catalog (`View`). The aggregated lists a profile sees are
//! built once per catalog change and profile, and shared like the whole one; a call looks its
//! tool up in its profile's list, so a hidden tool is an unknown one, at no extra cost. A
//! refusal is logged and recorded. When the profiles change, the sessions whose view changed
//! are told their lists changed.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::aggregate::{List, Place};
use super::catalog::{Entry, Index};
use super::session::{Client, Session, Target};
use super::{Answer, Gateway, STATUS_LISTS, hidden_server, reply, rpc_error};
use crate::config::ToolSearch;
use crate::config::profiles::{HUB, Profile, Profiles};

/// Shows nothing: the profile of a name no profile has any more (never everything by mistake).
static NOTHING: Profile = Profile { servers: Some(BTreeMap::new()), tool_search: None, description: None };

/// What one client sees: its profile as the profiles are now.
#[derive(Clone)]
pub struct View {
    profiles: Arc<Profiles>,
    pub name: String,
    /// The client's name (for its tool cap and the log).
    pub client: Option<String>,
}

impl View {
    pub fn profile(&self) -> &Profile {
        self.profiles.profiles.get(&self.name).unwrap_or(&NOTHING)
    }

    pub fn shows_server(&self, server: &str) -> bool {
        self.profile().shows_server(server)
    }

    pub fn shows_tool(&self, server: &str, tool: &str) -> bool {
        self.profile().shows_tool(server, tool)
    }

    /// Whether this client is offered the two search tools for `tools` tools (`default`:
    /// `AGENTHUB_TOOL_SEARCH`, for a profile that says nothing).
    pub(super) fn searching(&self, default: ToolSearch, tools: usize) -> bool {
        let cap = crate::clients::tool_cap(self.client.as_deref().unwrap_or(""));
        self.profile().tool_search.unwrap_or(default).searching(tools, cap)
    }

    /// A server's tool list (items with the server's own names) as this profile shows it.
    pub fn tools_seen(&self, server: &str, mut tools: Vec<Value>) -> Vec<Value> {
        let profile = self.profile();
        if profile.shows_all() {
            return tools;
        }
        tools.retain(|t| profile.shows_tool(server, t.get("name").and_then(Value::as_str).unwrap_or("")));
        for t in &mut tools {
            let name = t.get("name").and_then(Value::as_str).unwrap_or("").to_string();
            overridden(profile, server, &name, t);
        }
        tools
    }
}

/// A call of the hub's own tool (the enhancer's, a pipeline) that the view hides.
pub(super) fn own_hidden(msg: &Value, view: &View) -> bool {
    msg.pointer("/params/name").and_then(Value::as_str).is_some_and(|n| {
        (n == super::aggregate::ENHANCE_TOOL || n.starts_with(super::aggregate::PIPELINE_TOOL_PREFIX))
            && !view.shows_tool(HUB, n.strip_prefix("agenthub__").unwrap_or(n))
    })
}

/// A tool's definition with the profile's description and title for it.
fn overridden(profile: &Profile, server: &str, tool: &str, item: &mut Value) {
    if let Some(o) = profile.override_of(server, tool) {
        if let Some(d) = &o.description {
            item["description"] = json!(d);
        }
        if let Some(t) = &o.title {
            item["title"] = json!(t);
        }
    }
}

impl Gateway {
    /// The profiles and tokens to apply from now on; the names of the profiles whose meaning
    /// changed. Every session whose view changed is told its lists changed.
    pub fn set_profiles(&self, profiles: Profiles) -> Vec<String> {
        let new = Arc::new(profiles);
        let old = std::mem::replace(&mut *self.profiles.write(), new.clone());
        let mut changed: Vec<String> = new
            .profiles
            .iter()
            .filter(|(name, p)| old.profiles.get(*name) != Some(p))
            .map(|(name, _)| name.clone())
            .chain(old.profiles.keys().filter(|n| !new.profiles.contains_key(*n)).cloned())
            .collect();
        if old.clients != new.clients || old.default != new.default || old.tokens != new.tokens {
            changed.push("(clients, default or tokens)".into());
        }
        if changed.is_empty() {
            return changed;
        }
        self.catalog.lock().views.clear();
        let old_view = |s: &Session| View { profiles: old.clone(), ..self.view(&s.client) };
        for s in self.sessions.of(&Target::Aggregate) {
            let (before, now) = (old_view(&s), self.view(&s.client));
            if before.name != now.name || before.profile() != now.profile() {
                for m in STATUS_LISTS {
                    s.deliver(crate::jsonrpc::notification(&format!("notifications/{m}/list_changed"), None));
                }
            }
        }
        for server in self.servers.list() {
            for s in self.sessions.of(&Target::Server(server.name.clone())) {
                let (before, now) = (old_view(&s), self.view(&s.client));
                let part = |v: &View| v.profile().servers.as_ref().map(|m| m.get(&server.name).cloned());
                if before.shows_server(&server.name) != now.shows_server(&server.name)
                    || part(&before) != part(&now)
                {
                    s.deliver(crate::jsonrpc::notification("notifications/tools/list_changed", None));
                }
            }
        }
        changed
    }

    /// The view of a session's client.
    pub fn view(&self, client: &Client) -> View {
        let profiles = self.profiles.read().clone();
        let name = self.client_name(client);
        let profile = profiles.profile_name(name.as_deref(), client.token.as_deref()).to_string();
        View { profiles, name: profile, client: name }
    }

    /// Whether every client sees everything (nothing to check on a call).
    pub fn shows_everything(&self) -> bool {
        self.profiles.read().show_everything()
    }

    /// Who a client is in the audit trail: its name, its profile, its token's name.
    pub fn who(&self, client: &Client) -> Arc<crate::audit::Who> {
        let view = self.view(client);
        Arc::new(crate::audit::Who {
            client: view.client,
            profile: Some(view.name),
            token: client.token.clone(),
        })
    }

    /// The view of a REST caller: its `X-Client-Name` and the token it presented.
    pub fn rest_view(&self, header: Option<&str>, token: Option<&str>) -> View {
        let client =
            Client { header: header.map(str::to_string), token: token.map(str::to_string), ..Client::none() };
        self.view(&client)
    }

    /// The name of the tokens-file token this bearer value is, if it is one.
    pub fn token_id(&self, bearer: &str) -> Option<String> {
        self.profiles.read().token(bearer).map(|t| t.id.clone())
    }

    /// The rule name a session's client goes by: `X-Client-Name`, else its `clientInfo.name`,
    /// mapped through the rules' `client_names` (the client table's names without rules).
    pub(super) fn client_name(&self, client: &Client) -> Option<String> {
        let (header, info) = (client.header.as_deref(), client.name.as_deref());
        match &self.enhancer {
            Some(e) => e.rules().client_name(header, info),
            None => {
                let name = header.or(info).map(str::trim).filter(|n| !n.is_empty())?;
                Some(
                    crate::clients::id_of_client_info(name)
                        .map_or_else(|| name.to_ascii_lowercase(), str::to_string),
                )
            }
        }
    }

    /// A client's session in the activity feed, under the name its rules go by, with its profile.
    pub(super) fn record_client(&self, target: &Target, client: &Client) {
        let view = self.view(client);
        let name = view.client.clone().unwrap_or_else(|| "unnamed".into());
        let info = client.name.as_deref().map(|n| format!(" (clientInfo {n:?})")).unwrap_or_default();
        let (server, at) = match target {
            Target::Server(s) => (Some(s.as_str()), format!("/mcp/{s}")),
            Target::Aggregate => (None, "/mcp".to_string()),
        };
        let line = format!("{name} connected to {at}{info}, profile {}", view.name);
        self.servers.activity().record("client", server, line);
    }

    /// A request for something the client's profile hides: answered as unknown, and said here.
    pub fn refused(&self, view: &View, server: Option<&str>, what: &str) {
        let client = view.client.as_deref().unwrap_or("unnamed");
        let line = format!(
            "{} refused to {client} (profile {}): not in its profile",
            crate::text::for_log(what, 200),
            view.name
        );
        log::info!("{line}");
        self.servers.activity().record("profile", server, line);
    }

    /// The merged list as `view` sees it: the whole one for a profile showing everything, else
    /// the profile's part with its overrides, built once per catalog change.
    pub(super) fn view_entries(&self, view: &View, list: List, at: Place) -> Option<Arc<Index>> {
        let all = self.entries(list, at)?;
        let profile = view.profile();
        if profile.shows_all() {
            return Some(all);
        }
        let key = (list == List::Tools, view.name.clone());
        if let Some(seen) = self.catalog.lock().views.get(&key) {
            if Arc::ptr_eq(&seen.0, &all) {
                return Some(seen.1.clone());
            }
        }
        let entries: Vec<Entry> = all
            .entries()
            .iter()
            .filter(|e| match list {
                List::Tools => profile.shows_tool(&e.server, &e.original),
                List::Prompts => profile.shows_server(&e.server),
            })
            .map(|e| {
                let mut item = e.item.clone();
                if list == List::Tools {
                    overridden(profile, &e.server, &e.original, &mut item);
                }
                Entry {
                    public: e.public.clone(),
                    server: e.server.clone(),
                    original: e.original.clone(),
                    item,
                }
            })
            .collect();
        let seen = Arc::new(Index::from_sorted(entries));
        self.catalog.lock().views.insert(key, (all, seen.clone()));
        Some(seen)
    }

    /// The hub's own tools (`agenthub__...`) this view shows.
    pub(super) fn own_tools_seen(&self, view: &View) -> Vec<Value> {
        let mut own = self.own_tools();
        own.retain(|t| {
            let name = t.get("name").and_then(Value::as_str).unwrap_or("");
            view.shows_tool(HUB, name.strip_prefix("agenthub__").unwrap_or(name))
        });
        own
    }

    /// `GET /profiles`: each profile with its servers, its tools and their size, the clients
    /// and tokens (by name) that get it. Lists the servers when the catalog is cold (never on a
    /// worker).
    pub fn profiles_info(&self) -> Value {
        let profiles = self.profiles.read().clone();
        let list: Vec<Value> = profiles
            .profiles
            .iter()
            .map(|(name, profile)| {
                let view = View { profiles: profiles.clone(), name: name.clone(), client: None };
                let tools = self.view_entries(&view, List::Tools, Place::Own);
                let mut servers: Vec<(String, usize, usize)> = Vec::new();
                for e in tools.iter().flat_map(|i| i.entries()) {
                    let bytes = serde_json::to_vec(&e.item).map_or(0, |b| b.len());
                    match servers.last_mut() {
                        Some((s, n, b)) if *s == e.server => (*n, *b) = (*n + 1, *b + bytes),
                        _ => servers.push((e.server.clone(), 1, bytes)),
                    }
                }
                let own = self.own_tools_seen(&view);
                let own_bytes: usize = own.iter().map(|t| serde_json::to_vec(t).map_or(0, |b| b.len())).sum();
                let (count, bytes) = servers.iter().fold((own.len(), own_bytes), |(n, b), s| (n + s.1, b + s.2));
                let clients: Vec<&String> =
                    profiles.clients.iter().filter(|(_, p)| *p == name).map(|(c, _)| c).collect();
                let tokens: Vec<&String> =
                    profiles.tokens.iter().filter(|t| t.profile == *name).map(|t| &t.id).collect();
                json!({
                    "name": name,
                    "description": profile.description,
                    "default": profiles.default == *name,
                    "tool_search": profile.tool_search.unwrap_or(self.cold.search).as_string(),
                    "servers": servers.iter().map(|(s, n, b)| json!({"name": s, "tool_count": n, "bytes": b,
                        "tokens": b.div_ceil(4)})).collect::<Vec<_>>(),
                    "shows": match &profile.servers {
                        None => json!("everything"),
                        Some(m) => json!(m.iter().map(|(s, v)| (s.clone(), json!(v.tools.clone().unwrap_or_else(|| vec!["*".into()])))).collect::<serde_json::Map<_, _>>()),
                    },
                    "tool_count": count, "bytes": bytes, "tokens": bytes.div_ceil(4),
                    "clients": clients, "token_names": tokens,
                })
            })
            .collect();
        json!({
            "file": profiles.file, "tokens_file": profiles.tokens_file, "default": profiles.default,
            "clients": profiles.clients, "token_estimate": "bytes / 4", "profiles": list,
        })
    }
}

impl Gateway {
    /// A request on `/mcp/{server}` as the client's profile allows it: nothing of a server it
    /// hides, its tool list cut to the profile's tools (with their overrides), a call of
    /// another tool an unknown tool.
    pub(super) fn server_request(
        self: &Arc<Self>,
        server: &str,
        session: &Arc<Session>,
        msg: Value,
        sse: bool,
    ) -> Answer {
        if self.profiles.read().show_everything() {
            return self.relay(server, session, msg, sse);
        }
        let view = self.view(&session.client);
        if view.profile().shows_all() {
            return self.relay(server, session, msg, sse);
        }
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let method = crate::jsonrpc::method(&msg).to_string();
        if !view.shows_server(server) {
            self.refused(&view, Some(server), &format!("{method} on /mcp/{server}"));
            return reply(rpc_error(id, &hidden_server(server)));
        }
        match method.as_str() {
            "tools/list" => {
                let server_name = server.to_string();
                self.relay_then(server, session, msg, sse, move |how| {
                    how.then(move |mut r| {
                        if let Some(Value::Array(tools)) = r.get_mut("tools").map(Value::take) {
                            r["tools"] = Value::Array(view.tools_seen(&server_name, tools));
                        }
                        r
                    })
                })
            }
            "tools/call" => {
                let name = msg.pointer("/params/name").and_then(Value::as_str).unwrap_or("").to_string();
                if !view.shows_tool(server, &name) {
                    self.refused(&view, Some(server), &format!("tool {name} on /mcp/{server}"));
                    let why = format!("unknown tool \"{name}\"");
                    return reply(crate::jsonrpc::error(id, crate::jsonrpc::INVALID_PARAMS, &why));
                }
                self.relay(server, session, msg, sse)
            }
            _ => self.relay(server, session, msg, sse),
        }
    }
}
