//! The servers API: health, the server table (list, add, replace, remove), lifecycle changes,
//! installs, logs and the activity feed, and the API's view of a server (`server_json`).

use std::time::Instant;

use serde_json::{Map, Value, json};

use super::routes::Params;
use super::{json_of, query_param, round3};
use crate::app::App;
use crate::config::ServerConfig;
use crate::error::{Error, Result};
use crate::front::{Reply, Req};
use crate::servers::{Servers, Snapshot, Status, installer};
use crate::time::rfc3339;

pub fn health(app: &App, _: &Req, _: &Params) -> Result<Reply> {
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

/// `GET /health/ready`, for an orchestrator's readiness probe (answered without the token, so it
/// says no more than that): 503 until every auto-start server has been tried once (RUNNING or
/// its launch failed) and the aggregated catalog is built, then 200. `/health` stays the
/// liveness answer.
pub fn ready(app: &App, _: &Req, _: &Params) -> Result<Reply> {
    if !app.servers.first_starts_over() {
        return Ok(Reply::json(503, &json!({"status": "starting"})));
    }
    // The catalog is built (listing the running servers) off the worker, once.
    let gateway = app.gateway.clone();
    Ok(Reply::spawn(move || {
        gateway.warm_catalog();
        Reply::ok(&json!({"status": "ready"}))
    }))
}

pub fn server_health(app: &App, _: &Req, p: &Params) -> Result<Reply> {
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
        "held": s.info.held,
    })
}

pub fn list(app: &App, _: &Req, _: &Params) -> Result<Reply> {
    let now = Instant::now();
    let list: Vec<Value> = app.servers.list().iter().map(|s| server_json(s, now)).collect();
    Ok(Reply::ok(&json!({ "servers": list })))
}

pub fn get(app: &App, _: &Req, p: &Params) -> Result<Reply> {
    Ok(Reply::ok(&server_json(&find(app, p.get("name"))?, Instant::now())))
}

/// `POST /servers {name, ...config}`.
pub fn add(app: &App, req: &Req, _: &Params) -> Result<Reply> {
    let body = json_of(req)?;
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

pub fn replace(app: &App, req: &Req, p: &Params) -> Result<Reply> {
    let mut body = json_of(req)?;
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
    Ok(Reply::spawn(move || match servers.replace(&name, config) {
        Ok(snap) => {
            let mut body = server_json(&snap, Instant::now());
            body["warnings"] = json!(warnings);
            Reply::ok(&body)
        }
        Err(e) => Reply::from(e),
    }))
}

pub fn remove(app: &App, _: &Req, p: &Params) -> Result<Reply> {
    let (servers, name) = (app.servers.clone(), p.get("name").to_string());
    Ok(Reply::spawn(move || match servers.remove(&name) {
        Ok(()) => Reply::ok(&json!({"removed": name})),
        Err(e) => Reply::from(e),
    }))
}

pub fn start(app: &App, _: &Req, p: &Params) -> Result<Reply> {
    let name = p.get("name").to_string();
    Ok(lifecycle(app, move |servers| servers.start(&name)))
}

pub fn stop(app: &App, _: &Req, p: &Params) -> Result<Reply> {
    let name = p.get("name").to_string();
    Ok(lifecycle(app, move |servers| servers.stop(&name)))
}

pub fn restart(app: &App, _: &Req, p: &Params) -> Result<Reply> {
    let name = p.get("name").to_string();
    Ok(lifecycle(app, move |servers| servers.restart(&name)))
}

/// A lifecycle change (it waits on a child: up to the handshake or stop grace) answered from
/// a thread of its own with the server as it then is.
fn lifecycle(app: &App, f: impl FnOnce(&Servers) -> Result<Snapshot> + Send + 'static) -> Reply {
    let servers = app.servers.clone();
    Reply::spawn(move || match f(&servers) {
        Ok(snap) => Reply::ok(&server_json(&snap, Instant::now())),
        Err(e) => Reply::from(e),
    })
}

pub fn logs(app: &App, req: &Req, p: &Params) -> Result<Reply> {
    let lines = query_param(&req.query, "lines").and_then(|v| v.parse().ok()).unwrap_or(100usize);
    let tail = app.servers.logs(p.get("name"), lines)?;
    Ok(Reply::ok(&json!({"name": p.get("name"), "lines": tail})))
}

/// `POST /servers/install {package, name?, args?, env?, auto_start?, start?, ignore_scripts?}`.
pub fn install(app: &App, req: &Req, _: &Params) -> Result<Reply> {
    let body = json_of(req)?;
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
    for key in ["args", "env", "auto_start", "description", "ignore_scripts", "on_demand", "idle_timeout"] {
        if let Some(v) = body.get(key) {
            config_json[key] = v.clone();
        }
    }
    let (config, _) = ServerConfig::from_json(&config_json, "request body", "$")?;
    if app.servers.contains(&name) {
        return Err(Error::Conflict(format!("a server named \"{name}\" already exists")));
    }
    // A package's install scripts are code run at install time: off unless asked for.
    let ignore_scripts = body.get("ignore_scripts").and_then(Value::as_bool).unwrap_or(true);
    let start = body.get("start").and_then(Value::as_bool).unwrap_or(false);
    let (servers, installer, activity) = (app.servers.clone(), app.installer.clone(), app.activity.clone());
    let package = package.to_string();
    // npm takes seconds to minutes: the install runs on a thread of its own.
    Ok(Reply::spawn(move || {
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
    }))
}

pub fn activity(app: &App, req: &Req, _: &Params) -> Result<Reply> {
    let since = query_param(&req.query, "since").and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(Reply::ok(&json!({"events": app.activity.since(since, 200)})))
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

/// What a server is doing now: names, transport, status, pid, uptime, restarts, last error,
/// and `held`: a person stopped it, and only a person's start runs it again.
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
        "held": s.info.held,
    })
}
