//! The one route table, and the handlers. A handler is a plain `fn(&App, &Req, &Params) ->
//! Result<Reply>`; only this layer knows URLs and status codes.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::response::{Reply, Req};
use super::App;
use crate::error::{Error, Result};
use crate::servers::{Snapshot, Status};

/// Path segments captured by `{name}` (and `{*rest}`, the remaining path).
pub struct Params(Vec<(&'static str, String)>);

impl Params {
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

type Handler = fn(&App, &Req, &Params) -> Result<Reply>;

struct Route {
    method: &'static str,
    pattern: &'static str,
    handler: Handler,
}

const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        pattern: "/health",
        handler: health,
    },
    Route {
        method: "GET",
        pattern: "/health/{name}",
        handler: server_health,
    },
    Route {
        method: "GET",
        pattern: "/servers",
        handler: list_servers,
    },
    Route {
        method: "GET",
        pattern: "/servers/{name}",
        handler: get_server,
    },
];

/// Routes a request: the handler's reply, 404 for an unknown path, 405 (with `Allow`) for a
/// known path and the wrong method.
pub fn dispatch(app: &App, req: &Req) -> Reply {
    let mut allowed: Vec<&str> = Vec::new();
    for route in ROUTES {
        let Some(params) = match_path(route.pattern, &req.path) else {
            continue;
        };
        if route.method == req.method || (req.method == "HEAD" && route.method == "GET") {
            return (route.handler)(app, req, &params).unwrap_or_else(Reply::from);
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
        &format!(
            "{} is not allowed on {}; use {}",
            req.method,
            req.path,
            allowed.join(", ")
        ),
    )
    .with_header("Allow", allowed.join(", "))
}

fn match_path(pattern: &'static str, path: &str) -> Option<Params> {
    let mut params = Vec::new();
    let mut segs = path.strip_prefix('/')?.split('/');
    for pat in pattern.trim_start_matches('/').split('/') {
        if let Some(name) = pat.strip_prefix("{*").and_then(|p| p.strip_suffix('}')) {
            let rest: Vec<&str> = segs.by_ref().collect();
            if rest.is_empty() || rest.iter().any(|s| s.is_empty()) {
                return None;
            }
            params.push((name, rest.join("/")));
            return Some(Params(params));
        }
        let seg = segs.next()?;
        match pat.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if !seg.is_empty() => params.push((name, seg.to_string())),
            Some(_) => return None,
            None if pat == seg => {}
            None => return None,
        }
    }
    segs.next().is_none().then_some(Params(params))
}

// ---------------------------------------------------------------------------------------------
// Health

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
        },
        "cache": app.enhancer.cache.lock().stats(),
        "servers": by_name,
    })))
}

fn server_health(app: &App, _: &Req, p: &Params) -> Result<Reply> {
    let s = find(app, p.get("name"))?;
    let mut body = server_health_json(app, &s, Instant::now());
    body["name"] = s.name.clone().into();
    body["last_error"] = s.info.last_error.clone().into();
    let status = if s.info.status == Status::Running {
        200
    } else {
        503
    };
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
    let list: Vec<Value> = app
        .servers
        .list()
        .iter()
        .map(|s| server_json(s, now))
        .collect();
    Ok(Reply::ok(&json!({ "servers": list })))
}

fn get_server(app: &App, _: &Req, p: &Params) -> Result<Reply> {
    Ok(Reply::ok(&server_json(
        &find(app, p.get("name"))?,
        Instant::now(),
    )))
}

fn find(app: &App, name: &str) -> Result<Snapshot> {
    app.servers
        .get(name)
        .ok_or_else(|| Error::NotFound(format!("no server named \"{name}\"")))
}

/// The API's view of a server: secrets in `env` and `headers` masked.
pub fn server_json(s: &Snapshot, now: Instant) -> Value {
    json!({
        "name": s.name,
        "transport": s.transport().as_str(),
        "status": s.info.status,
        "pid": s.info.pid,
        "started_at": s.info.started_at.map(|(wall, _)| rfc3339(wall)),
        "uptime_s": s.info.uptime_s(now).map(round3),
        "restart_count": s.info.restart_count,
        "last_error": s.info.last_error,
        "origin": s.origin,
        "config": s.config.to_json(true),
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// RFC 3339 UTC with seconds, from the Unix time (civil-from-days, no time crate).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn path_matching() {
        fn check(pattern: &'static str, path: &str, expected: Option<&[(&str, &str)]>) {
            let got = match_path(pattern, path).map(|p| {
                p.0.iter()
                    .map(|(n, v)| (n.to_string(), v.clone()))
                    .collect::<Vec<_>>()
            });
            let want = expected.map(|e| {
                e.iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect::<Vec<_>>()
            });
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
    }

    #[test]
    fn rfc3339_dates() {
        fn check(secs: u64, expected: &str) {
            assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(secs)), expected);
        }
        check(0, "1970-01-01T00:00:00Z");
        check(951_782_400, "2000-02-29T00:00:00Z");
        check(1_790_000_000, "2026-09-21T14:13:20Z");
        check(4_107_542_399, "2100-02-28T23:59:59Z");
    }
}
