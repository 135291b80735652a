//! The one route table, and the handlers. A handler is a plain `fn(&App, &Req, &Params) ->
//! Result<Reply>`; only this layer knows URLs and status codes.

use std::time::Instant;

use serde_json::{Map, Value, json};

use super::App;
use super::dashboard;
use super::pipelines;
use super::response::{Reply, Req, rfc3339, round3};
use crate::config::ServerConfig;
use crate::enhance::Prepared;
use crate::error::{Error, Result};
use crate::exchange::Request;
use crate::jsonrpc::{self, RpcError};
use crate::mcp::{self, Answer, Relayed, Target, relay};
use crate::servers::{Acquired, Servers, Snapshot, Status, installer};

/// Path segments captured by `{name}` (and `{*rest}`, the remaining path), borrowed from the
/// path. No route captures more than two.
pub struct Params<'p> {
    found: [(&'static str, &'p str); MAX_CAPTURES],
    len: usize,
}

const MAX_CAPTURES: usize = 2;

impl<'p> Params<'p> {
    pub fn get(&self, name: &str) -> &'p str {
        self.found[..self.len].iter().find(|(n, _)| *n == name).map_or("", |(_, v)| *v)
    }

    fn push(&mut self, name: &'static str, value: &'p str) {
        // The route table is checked by a test: a third capture cannot happen.
        if self.len < MAX_CAPTURES {
            self.found[self.len] = (name, value);
            self.len += 1;
        }
    }
}

type Handler = fn(&App, &Req, &Params<'_>) -> Result<Reply>;

struct Route {
    method: &'static str,
    pattern: &'static str,
    handler: Handler,
}

const fn route(method: &'static str, pattern: &'static str, handler: Handler) -> Route {
    Route { method, pattern, handler }
}

const ROUTES: &[Route] = &[
    route("GET", "/health", health),
    route("GET", "/health/{name}", server_health),
    route("GET", "/servers", list_servers),
    route("POST", "/servers", add_server),
    route("POST", "/servers/install", install_server),
    route("GET", "/servers/{name}", get_server),
    route("PUT", "/servers/{name}", replace_server),
    route("DELETE", "/servers/{name}", remove_server),
    route("POST", "/servers/{name}/start", start_server),
    route("POST", "/servers/{name}/stop", stop_server),
    route("POST", "/servers/{name}/restart", restart_server),
    route("GET", "/servers/{name}/logs", server_logs),
    route("POST", "/mcp", mcp_post),
    route("GET", "/mcp", mcp_get),
    route("DELETE", "/mcp", mcp_delete),
    route("POST", "/mcp/{server}", mcp_post),
    route("GET", "/mcp/{server}", mcp_get),
    route("DELETE", "/mcp/{server}", mcp_delete),
    route("POST", "/mcp/{server}/{*method}", rest_call),
    route("GET", "/activity", activity),
    route("POST", "/ollama/enhance", enhance_prompt),
    route("GET", "/ollama/models", ollama_models),
    route("POST", "/cache/clear", clear_cache),
    route("GET", "/pipelines", pipelines::list),
    route("GET", "/pipelines/runs", pipelines::runs),
    route("GET", "/pipelines/runs/{id}", pipelines::run),
    route("POST", "/pipelines/{name}", pipelines::start),
    route("GET", "/", dashboard::root),
    route("GET", "/dashboard", dashboard::page),
    route("GET", "/dashboard/state", dashboard::state),
    route("GET", "/clients", dashboard::clients),
    route("GET", "/metrics", metrics),
];

/// The route template a path matches (`/servers/{name}`), the label of its metrics; `other`
/// for a path no route has. Never the raw path, so the label's values stay few.
pub fn template(path: &str) -> &'static str {
    ROUTES.iter().find(|r| match_path(r.pattern, path).is_some()).map_or(crate::metrics::OTHER, |r| r.pattern)
}

/// Routes a request: the handler's reply, 404 for an unknown path, 405 (with `Allow`) for a
/// known path and the wrong method.
pub fn dispatch(app: &App, req: &Req) -> Reply {
    let mut allowed: Vec<&str> = Vec::new();
    for route in ROUTES {
        let Some(params) = match_path(route.pattern, &req.path) else {
            continue;
        };
        if route.method == req.method || (req.method == "HEAD" && route.method == "GET") {
            let mut reply = (route.handler)(app, req, &params).unwrap_or_else(Reply::from);
            reply.route = Some(route.pattern);
            return reply;
        }
        if !allowed.contains(&route.method) {
            allowed.push(route.method);
        }
    }
    if allowed.is_empty() {
        return Reply::error(404, "not_found", &format!("no route for {}", req.path));
    }
    allowed.push("OPTIONS");
    Reply::error(
        405,
        "method_not_allowed",
        &format!("{} is not allowed on {}; use {}", req.method, req.path, allowed.join(", ")),
    )
    .with_header("Allow", allowed.join(", "))
}

/// The captures of `path` if it matches `pattern`; nothing is allocated either way.
fn match_path<'p>(pattern: &'static str, path: &'p str) -> Option<Params<'p>> {
    let tail = path.strip_prefix('/')?;
    // Most routes differ from the path in their first segment: a literal one is checked first.
    let lead = pattern.trim_start_matches('/');
    if !lead.starts_with('{') {
        let first = lead.split_once('/').map_or(lead, |(f, _)| f);
        if !tail.starts_with(first) || !matches!(tail.as_bytes().get(first.len()), None | Some(b'/')) {
            return None;
        }
    }
    let mut params = Params { found: [("", ""); MAX_CAPTURES], len: 0 };
    // Where the next segment of `tail` starts, while segments are left.
    let mut next = Some(0);
    for pat in pattern.trim_start_matches('/').split('/') {
        if let Some(name) = pat.strip_prefix("{*").and_then(|p| p.strip_suffix('}')) {
            let rest = next.map_or("", |at| &tail[at..]);
            if rest.is_empty() || rest.split('/').any(str::is_empty) {
                return None;
            }
            params.push(name, rest);
            return Some(params);
        }
        let at = next?;
        let seg = match tail[at..].find('/') {
            Some(i) => {
                next = Some(at + i + 1);
                &tail[at..at + i]
            }
            None => {
                next = None;
                &tail[at..]
            }
        };
        match pat.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if !seg.is_empty() => params.push(name, seg),
            Some(_) => return None,
            None if pat == seg => {}
            None => return None,
        }
    }
    next.is_none().then_some(params)
}

// ---------------------------------------------------------------------------------------------
// Metrics and health

/// `GET /metrics`: the Prometheus text format.
fn metrics(app: &App, _: &Req, _: &Params) -> Result<Reply> {
    let mut reply = Reply::empty(200);
    reply.content_type = "text/plain; version=0.0.4; charset=utf-8";
    reply.body = crate::metrics::render(app).into_bytes();
    Ok(reply)
}

fn health(app: &App, _: &Req, _: &Params) -> Result<Reply> {
    let now = Instant::now();
    let servers = app.servers.list();
    let degraded = servers.iter().any(|s| s.info.status == Status::Failed);
    let ollama = app.enhancer.probe.current(now);
    let mut by_name = Map::new();
    for s in &servers {
        by_name.insert(s.name.clone(), server_health_json(app, s, now));
    }
    Ok(Reply::ok(&json!({
        "status": if degraded { "degraded" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": round3(now.duration_since(app.started).as_secs_f64()),
        "ollama": {
            "status": if ollama.up { "up" } else { "down" },
            "circuit": app.breakers.state("ollama", now).as_str(),
            "url": app.enhancer.client.base_url(),
            "models": ollama.models,
            "stats": app.enhancer.stats(),
        },
        "cache": app.enhancer.cache_stats(),
        "servers": by_name,
    })))
}

fn server_health(app: &App, _: &Req, p: &Params) -> Result<Reply> {
    let s = find(app, p.get("name"))?;
    let mut body = server_health_json(app, &s, Instant::now());
    body["name"] = s.name.clone().into();
    body["last_error"] = s.info.last_error.clone().into();
    let status = if s.info.status == Status::Running { 200 } else { 503 };
    Ok(Reply::json(status, &body))
}

fn server_health_json(app: &App, s: &Snapshot, now: Instant) -> Value {
    json!({
        "status": s.info.status,
        "transport": s.transport().as_str(),
        "circuit": app.breakers.state(&s.name, now).as_str(),
        "pid": s.info.pid,
        "restart_count": s.info.restart_count,
        "uptime_s": s.info.uptime_s(now).map(round3),
    })
}

// ---------------------------------------------------------------------------------------------
// Servers

fn list_servers(app: &App, _: &Req, _: &Params) -> Result<Reply> {
    let now = Instant::now();
    let list: Vec<Value> = app.servers.list().iter().map(|s| server_json(s, now)).collect();
    Ok(Reply::ok(&json!({ "servers": list })))
}

fn get_server(app: &App, _: &Req, p: &Params) -> Result<Reply> {
    Ok(Reply::ok(&server_json(&find(app, p.get("name"))?, Instant::now())))
}

/// `POST /servers {name, ...config}`.
fn add_server(app: &App, req: &Req, _: &Params) -> Result<Reply> {
    let body = req.json()?;
    let Some(obj) = body.as_object() else {
        return Err(Error::BadRequest("expected a JSON object {\"name\", ...server config}".into()));
    };
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::BadRequest("\"name\" (a string) is required".into()))?
        .to_string();
    let mut config = obj.clone();
    config.remove("name");
    let (config, warnings) = ServerConfig::from_json(&Value::Object(config), "request body", "$")?;
    let snap = app.servers.add(&name, config)?;
    let mut body = server_json(&snap, Instant::now());
    body["warnings"] = json!(warnings);
    Ok(Reply::json(201, &body))
}

fn replace_server(app: &App, req: &Req, p: &Params) -> Result<Reply> {
    let mut body = req.json()?;
    if let Some(obj) = body.as_object_mut() {
        if let Some(n) = obj.remove("name") {
            if n.as_str() != Some(p.get("name")) {
                return Err(Error::BadRequest(format!(
                    "body names server {n}, path names \"{}\"",
                    p.get("name")
                )));
            }
        }
    }
    let (config, warnings) = ServerConfig::from_json(&body, "request body", "$")?;
    let (servers, name) = (app.servers.clone(), p.get("name").to_string());
    // A running server restarts with the new configuration: that may take a while.
    Ok(Reply::later(Box::new(move || match servers.replace(&name, config) {
        Ok(snap) => {
            let mut body = server_json(&snap, Instant::now());
            body["warnings"] = json!(warnings);
            Reply::ok(&body)
        }
        Err(e) => Reply::from(e),
    })))
}

fn remove_server(app: &App, _: &Req, p: &Params) -> Result<Reply> {
    let (servers, name) = (app.servers.clone(), p.get("name").to_string());
    Ok(Reply::later(Box::new(move || match servers.remove(&name) {
        Ok(()) => Reply::ok(&json!({"removed": name})),
        Err(e) => Reply::from(e),
    })))
}

fn start_server(app: &App, _: &Req, p: &Params) -> Result<Reply> {
    let name = p.get("name").to_string();
    Ok(lifecycle(app, move |servers| servers.start(&name)))
}

fn stop_server(app: &App, _: &Req, p: &Params) -> Result<Reply> {
    let name = p.get("name").to_string();
    Ok(lifecycle(app, move |servers| servers.stop(&name)))
}

fn restart_server(app: &App, _: &Req, p: &Params) -> Result<Reply> {
    let name = p.get("name").to_string();
    Ok(lifecycle(app, move |servers| servers.restart(&name)))
}

/// A lifecycle change (it waits on a child: up to the handshake or stop grace) answered from
/// a thread of its own with the server as it then is.
fn lifecycle(app: &App, f: impl FnOnce(&Servers) -> Result<Snapshot> + Send + 'static) -> Reply {
    let servers = app.servers.clone();
    Reply::later(Box::new(move || match f(&servers) {
        Ok(snap) => Reply::ok(&server_json(&snap, Instant::now())),
        Err(e) => Reply::from(e),
    }))
}

fn server_logs(app: &App, req: &Req, p: &Params) -> Result<Reply> {
    let lines = query_param(&req.query, "lines").and_then(|v| v.parse().ok()).unwrap_or(100usize);
    let tail = app.servers.logs(p.get("name"), lines)?;
    Ok(Reply::ok(&json!({"name": p.get("name"), "lines": tail})))
}

/// `POST /servers/install {package, name?, args?, env?, auto_start?, start?, ignore_scripts?}`.
fn install_server(app: &App, req: &Req, _: &Params) -> Result<Reply> {
    let body = req.json()?;
    let package = body
        .get("package")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::BadRequest("\"package\" (an npm package name) is required".into()))?;
    installer::validate_package(package).map_err(Error::BadRequest)?;
    let name = match body.get("name") {
        None | Some(Value::Null) => installer::default_name(package),
        Some(Value::String(n)) => n.clone(),
        Some(_) => return Err(Error::BadRequest("\"name\" must be a string".into())),
    };
    crate::config::validate_server_name(&name).map_err(Error::BadRequest)?;
    let mut config_json = json!({"transport": "stdio", "package": package});
    for key in ["args", "env", "auto_start", "description"] {
        if let Some(v) = body.get(key) {
            config_json[key] = v.clone();
        }
    }
    let (config, _) = ServerConfig::from_json(&config_json, "request body", "$")?;
    if app.servers.contains(&name) {
        return Err(Error::Conflict(format!("a server named \"{name}\" already exists")));
    }
    let ignore_scripts = body.get("ignore_scripts").and_then(Value::as_bool).unwrap_or(false);
    let start = body.get("start").and_then(Value::as_bool).unwrap_or(false);
    let (servers, installer, activity) = (app.servers.clone(), app.installer.clone(), app.activity.clone());
    let package = package.to_string();
    // npm takes seconds to minutes: the install runs on a thread of its own.
    Ok(Reply::later(Box::new(move || {
        let run = || -> Result<Reply> {
            let staged = installer.install(&package, &name, ignore_scripts)?;
            // Added first, so a name taken meanwhile never has its install replaced.
            let mut snap = servers.add(&name, config)?;
            let bin = match staged.commit() {
                Ok(bin) => bin,
                Err(e) => {
                    log::error!("install of {package} for server {name} failed: {e}");
                    let _ = servers.remove(&name);
                    return Err(e);
                }
            };
            activity.record("install", Some(&name), format!("installed {package}"));
            if start {
                snap = servers.start(&name)?;
            }
            let mut out = server_json(&snap, Instant::now());
            out["installed"] = json!({"package": package, "bin": bin.display().to_string()});
            Ok(Reply::json(201, &out))
        };
        run().unwrap_or_else(Reply::from)
    })))
}

/// `POST /mcp/{server}/{method...}`: body = params, answer = result. JSON-RPC errors map to
/// 400 (invalid request, method, params), 504 (timeout) or 502, with the error under `rpc`.
fn rest_call(app: &App, req: &Req, p: &Params) -> Result<Reply> {
    if p.get("method") == "initialize" {
        // The child is shared and initialized once, by the hub: a second handshake would reset it.
        return Err(Error::BadRequest(format!(
            "the hub owns the handshake with {}: open an MCP session at /mcp/{} instead",
            p.get("server"),
            p.get("server")
        )));
    }
    let params = match req.json()? {
        Value::Null => None,
        v @ Value::Object(_) => Some(v),
        _ => {
            return Err(Error::BadRequest(
                "the body must be a JSON object (the request's params) or empty".into(),
            ));
        }
    };
    let (server, request) = (p.get("server").to_string(), Request::own(p.get("method"), params));
    Ok(match app.servers.try_acquire(&server, request)? {
        Acquired::Ready(call) => rest_reply(relay(call, None)),
        Acquired::Starting(request) => {
            // Waiting for the server to come up may take its whole handshake: off the worker.
            let servers = app.servers.clone();
            Reply::later(Box::new(move || match servers.acquire(&server, request) {
                Ok(call) => rest_reply(relay(call, None)),
                Err(e) => Reply::from(e),
            }))
        }
    })
}

fn rest_reply(relayed: Relayed) -> Reply {
    match relayed {
        Relayed::Done(Ok(v)) => Reply::ok(&v),
        Relayed::Done(Err(e)) => rpc_error_reply(&e),
        Relayed::Stream(body) => Reply::event_stream(body),
        Relayed::Later(later) => Reply::waiting(later.map(rest_reply)),
    }
}

// ---------------------------------------------------------------------------------------------
// Prompt enhancement

/// `POST /ollama/enhance {prompt, client?, model?}`; `X-Client-Name` wins over `client`.
fn enhance_prompt(app: &App, req: &Req, _: &Params) -> Result<Reply> {
    let body = req.json()?;
    let Some(prompt) = body.get("prompt").and_then(Value::as_str) else {
        return Err(Error::BadRequest("\"prompt\" (a string) is required".into()));
    };
    let field = |k: &str| -> Result<Option<&str>> {
        match body.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(Error::BadRequest(format!("\"{k}\" must be a string"))),
        }
    };
    let client = req.client_name().map(Some).map_or_else(|| field("client"), Ok)?;
    let request = crate::enhance::Request { prompt, client, model: field("model")? };
    let key = match app.enhancer.prepare(&request)? {
        Prepared::Answer(e) => return Ok(enhancement_reply(&e)),
        Prepared::Generate(key) => key,
    };
    // The model takes seconds: off the worker.
    let (enhancer, prompt, client, model) = (
        app.enhancer.clone(),
        prompt.to_string(),
        client.map(str::to_string),
        request.model.map(str::to_string),
    );
    Ok(Reply::later(Box::new(move || {
        let request =
            crate::enhance::Request { prompt: &prompt, client: client.as_deref(), model: model.as_deref() };
        enhancement_reply(&enhancer.generate(&request, key))
    })))
}

fn enhancement_reply(e: &crate::enhance::Enhancement) -> Reply {
    match serde_json::to_value(e) {
        Ok(v) => Reply::ok(&v),
        Err(e) => Reply::from(Error::Internal(e.to_string())),
    }
}

/// `GET /ollama/models` asks Ollama: off the worker.
fn ollama_models(app: &App, _: &Req, _: &Params) -> Result<Reply> {
    let enhancer = app.enhancer.clone();
    Ok(Reply::later(Box::new(move || match enhancer.client.models() {
        Ok(models) => Reply::ok(&json!({"url": enhancer.client.base_url(), "models": models})),
        Err(e) => Reply::from(e),
    })))
}

fn clear_cache(app: &App, _: &Req, _: &Params) -> Result<Reply> {
    app.enhancer.clear_cache();
    Ok(Reply::ok(&json!({"cache": app.enhancer.cache_stats()})))
}

// ---------------------------------------------------------------------------------------------
// MCP Streamable HTTP

fn mcp_target(app: &App, p: &Params) -> Result<Target> {
    match p.get("server") {
        "" => Ok(Target::Aggregate),
        name if app.servers.contains(name) => Ok(Target::Server(name.to_string())),
        name => Err(Error::NotFound(unknown_server(app, name))),
    }
}

/// What a client pointed at a server that does not exist is told: the names that do.
fn unknown_server(app: &App, name: &str) -> String {
    let known: Vec<String> = app.servers.list().into_iter().map(|s| s.name).collect();
    let known = if known.is_empty() { "none is configured".to_string() } else { known.join(", ") };
    format!("no server named \"{name}\" (known servers: {known}; /mcp serves them all)")
}

fn mcp_request(req: &Req) -> mcp::Request<'_> {
    mcp::Request {
        body: &req.body,
        session: req.header("mcp-session-id"),
        protocol_version: req.header("mcp-protocol-version"),
        accept: req.header("accept"),
        client: req.client_name(),
        method_header: req.header("mcp-method"),
        name_header: req.header("mcp-name"),
    }
}

fn mcp_post(app: &App, req: &Req, p: &Params) -> Result<Reply> {
    // An MCP client shows a JSON-RPC error's message; a bare 404 reads as "session terminated".
    let target = match mcp_target(app, p) {
        Err(Error::NotFound(message)) => {
            let id = serde_json::from_slice::<Value>(&req.body).ok().and_then(|v| v.get("id").cloned());
            let body = jsonrpc::error(id.unwrap_or(Value::Null), jsonrpc::SERVER_UNAVAILABLE, &message);
            return Ok(Reply::json(404, &body));
        }
        t => t?,
    };
    let mut reply = mcp_reply(app.gateway.post(&target, &mcp_request(req)));
    reply.client = app.gateway.client_of(req.header("mcp-session-id"));
    Ok(reply)
}

fn mcp_get(app: &App, req: &Req, p: &Params) -> Result<Reply> {
    let target = mcp_target(app, p)?;
    Ok(mcp_reply(app.gateway.get(&target, &mcp_request(req))))
}

fn mcp_delete(app: &App, req: &Req, p: &Params) -> Result<Reply> {
    let target = mcp_target(app, p)?;
    Ok(mcp_reply(app.gateway.delete(&target, &mcp_request(req))))
}

fn mcp_reply(answer: Answer) -> Reply {
    match answer {
        Answer::Json { body, session } => {
            let r = Reply::json(200, &body);
            match session {
                Some(id) => r.with_header("Mcp-Session-Id", id),
                None => r,
            }
        }
        Answer::Accepted => Reply::empty(202),
        Answer::Fault { status, code, message } => Reply::json(
            status,
            &json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}}),
        ),
        Answer::Refused { status, body } => Reply::json(status, &body),
        Answer::Stream(f) => Reply::event_stream(f),
        Answer::Ended => Reply::empty(200),
        Answer::Later(later) => Reply::waiting(later.map(mcp_reply)),
    }
}

fn rpc_error_reply(e: &RpcError) -> Reply {
    let (status, code) = match e.code {
        jsonrpc::INVALID_REQUEST | jsonrpc::METHOD_NOT_FOUND | jsonrpc::INVALID_PARAMS => {
            (400, "bad_request")
        }
        jsonrpc::REQUEST_TIMEOUT => (504, "timeout"),
        _ => (502, "upstream_error"),
    };
    Reply::json(status, &json!({"error": {"code": code, "message": e.message, "rpc": e.to_value()}}))
}

fn activity(app: &App, req: &Req, _: &Params) -> Result<Reply> {
    let since = query_param(&req.query, "since").and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(Reply::ok(&json!({"events": app.activity.since(since, 200)})))
}

pub(super) fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then_some(v)
    })
}

fn find(app: &App, name: &str) -> Result<Snapshot> {
    app.servers.get(name).ok_or_else(|| Error::NotFound(format!("no server named \"{name}\"")))
}

/// The API's view of a server: its safe `name` (paths, `server__tool`) and its `display_name`
/// as written in its file; secrets masked (`config::secrets`).
pub fn server_json(s: &Snapshot, now: Instant) -> Value {
    let mut v = server_status_json(s, now);
    v["started_at"] = json!(s.info.started_at.map(|(wall, _)| rfc3339(wall)));
    v["origin"] = json!(s.origin);
    v["config"] = s.config.to_json(true);
    // The era it speaks while running: "modern" (2026-07-28, no initialize) or "legacy".
    v["era"] = json!(s.era.map(|e| e.as_str()));
    v["protocol_version"] = json!(s.initialize.as_ref().and_then(|i| i.get("protocolVersion")));
    v
}

/// What a server is doing now: names, transport, status, pid, uptime, restarts, last error.
pub fn server_status_json(s: &Snapshot, now: Instant) -> Value {
    json!({
        "name": s.name,
        "display_name": s.display_name,
        "transport": s.transport().as_str(),
        "status": s.info.status,
        "pid": s.info.pid,
        "uptime_s": s.info.uptime_s(now).map(round3),
        "restart_count": s.info.restart_count,
        "last_error": s.info.last_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_matching() {
        fn check(pattern: &'static str, path: &str, expected: Option<&[(&str, &str)]>) {
            let got = match_path(pattern, path).map(|p| {
                p.found[..p.len].iter().map(|(n, v)| (n.to_string(), v.to_string())).collect::<Vec<_>>()
            });
            let want =
                expected.map(|e| e.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect::<Vec<_>>());
            assert_eq!(got, want, "{pattern} vs {path}");
        }
        check("/health", "/health", Some(&[]));
        check("/health", "/health/", None);
        check("/health", "/healthz", None);
        check("/health/{name}", "/health/mem", Some(&[("name", "mem")]));
        check("/health/{name}", "/health/", None);
        check("/health/{name}", "/health/a/b", None);
        check(
            "/mcp/{server}/{*method}",
            "/mcp/e/tools/call",
            Some(&[("server", "e"), ("method", "tools/call")]),
        );
        check("/mcp/{server}/{*method}", "/mcp/e", None);
        check("/mcp/{server}/{*method}", "/mcp/e/", None);
        check("/mcp/{server}/{*method}", "/mcp/e/a//b", None);
        check("/mcp/{server}/{*method}", "/mcp/e/a/b/c", Some(&[("server", "e"), ("method", "a/b/c")]));
        check("/", "/", Some(&[]));
        check("/", "/x", None);
        check("/mcp", "/", None);
        check("/mcp", "mcp", None);
    }

    #[test]
    fn no_route_captures_more_than_params_hold() {
        for r in ROUTES {
            assert!(r.pattern.matches('{').count() <= MAX_CAPTURES, "{}", r.pattern);
        }
    }
}
