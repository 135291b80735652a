//! The one route table: each route a method, a template and a handler, either a plain
//! `fn(&App, &Req, &Params) -> Result<Reply>` or, for what answers later (the MCP endpoints,
//! the REST relay), one given the request's `Responder`; `dispatch` finds it (404, 405 with
//! `Allow`), and `template` names a path's route for the metrics without allocating.

use super::{auth, calls, dashboard, elicitations, mcp, metrics, pipelines, servers};
use crate::app::App;
use crate::error::Result;
use crate::front::{Reply, Req, Responder};

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

enum Handler {
    /// Answers at once (or with `Reply::spawn`, from a thread of its own).
    Reply(fn(&App, &Req, &Params<'_>) -> Result<Reply>),
    /// Answers through the responder, now or from whichever thread has the answer.
    Respond(fn(&App, &Req, &Params<'_>, Responder)),
}

struct Route {
    method: &'static str,
    pattern: &'static str,
    handler: Handler,
}

const fn route(
    method: &'static str,
    pattern: &'static str,
    h: fn(&App, &Req, &Params<'_>) -> Result<Reply>,
) -> Route {
    Route { method, pattern, handler: Handler::Reply(h) }
}

const fn respond(
    method: &'static str,
    pattern: &'static str,
    h: fn(&App, &Req, &Params<'_>, Responder),
) -> Route {
    Route { method, pattern, handler: Handler::Respond(h) }
}

const ROUTES: &[Route] = &[
    route("GET", "/health", servers::health),
    route("GET", "/health/ready", servers::ready),
    route("GET", "/health/{name}", servers::server_health),
    route("GET", "/servers", servers::list),
    route("POST", "/servers", servers::add),
    route("POST", "/servers/install", servers::install),
    route("GET", "/servers/{name}", servers::get),
    route("PUT", "/servers/{name}", servers::replace),
    route("DELETE", "/servers/{name}", servers::remove),
    route("POST", "/servers/{name}/start", servers::start),
    route("POST", "/servers/{name}/stop", servers::stop),
    route("POST", "/servers/{name}/restart", servers::restart),
    route("GET", "/servers/{name}/logs", servers::logs),
    route("GET", "/servers/{name}/auth", auth::begin),
    route("DELETE", "/servers/{name}/auth", auth::sign_out),
    route("GET", "/oauth/callback", auth::callback),
    route("GET", "/profiles", mcp::profiles),
    respond("POST", "/mcp", mcp::post),
    respond("GET", "/mcp", mcp::get),
    respond("DELETE", "/mcp", mcp::delete),
    respond("POST", "/mcp/{server}", mcp::post),
    respond("GET", "/mcp/{server}", mcp::get),
    respond("DELETE", "/mcp/{server}", mcp::delete),
    respond("POST", "/mcp/{server}/{*method}", calls::rest_call),
    route("GET", "/catalog", mcp::catalog),
    route("GET", "/activity", servers::activity),
    route("GET", "/elicitations", elicitations::list),
    route("POST", "/elicitations/{id}", elicitations::answer),
    route("POST", "/ollama/enhance", calls::enhance_prompt),
    route("GET", "/ollama/models", calls::ollama_models),
    route("POST", "/cache/clear", calls::clear_cache),
    route("GET", "/pipelines", pipelines::list),
    route("GET", "/pipelines/runs", pipelines::runs),
    route("GET", "/pipelines/runs/{id}", pipelines::run),
    route("POST", "/pipelines/{name}", pipelines::start),
    route("GET", "/", dashboard::root),
    route("GET", "/dashboard", dashboard::page),
    route("GET", "/dashboard/state", dashboard::state),
    route("GET", "/clients", dashboard::clients),
    route("GET", "/metrics", metrics::page),
];

/// The route template a path matches (`/servers/{name}`), the label of its metrics; `other`
/// for a path no route has. Never the raw path, so the label's values stay few.
pub fn template(path: &str) -> &'static str {
    ROUTES.iter().find(|r| match_path(r.pattern, path).is_some()).map_or(crate::metrics::OTHER, |r| r.pattern)
}

/// Routes a request: the handler answers; 404 for an unknown path, 405 (with `Allow`) for a
/// known path and the wrong method.
pub fn dispatch(app: &App, mut res: Responder) {
    let req = res.req().clone();
    let mut allowed: Vec<&str> = Vec::new();
    for route in ROUTES {
        let Some(params) = match_path(route.pattern, &req.path) else {
            continue;
        };
        if route.method == req.method || (req.method == "HEAD" && route.method == "GET") {
            res.label(route.pattern);
            return match route.handler {
                Handler::Reply(h) => res.send(h(app, &req, &params).unwrap_or_else(Reply::from)),
                Handler::Respond(h) => h(app, &req, &params, res),
            };
        }
        if !allowed.contains(&route.method) {
            allowed.push(route.method);
        }
    }
    res.send(refusal(&req, allowed))
}

fn refusal(req: &Req, mut allowed: Vec<&str>) -> Reply {
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
