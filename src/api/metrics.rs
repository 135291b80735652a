//! `/metrics`: the registry's series (`crate::metrics`) and what is read at scrape time
//! (servers up, breakers, cache, sessions, build), and what each answered request adds to the
//! registry (`record`).

use std::fmt::Write as _;
use std::time::Instant;

use super::routes::{self, Params};
use crate::app::App;
use crate::error::Result;
use crate::front::{Reply, Req};
use crate::metrics::{gauge, global};
use crate::resilience::CircuitState;
use crate::servers::Status;

/// `GET /metrics`: the Prometheus text format.
pub fn page(app: &App, _: &Req, _: &Params) -> Result<Reply> {
    let mut reply = Reply::empty(200);
    reply.content_type = "text/plain; version=0.0.4; charset=utf-8";
    reply.body = render(app).into_bytes();
    Ok(reply)
}

/// The whole `/metrics` page: what was recorded, then what the hub reads now.
pub fn render(app: &App) -> String {
    let now = Instant::now();
    let mut out = String::with_capacity(16 << 10);
    global().render_recorded(&mut out);
    let servers = app.servers.list();
    let up: Vec<_> = servers
        .iter()
        .map(|s| (vec![s.name.clone()], f64::from(u8::from(s.info.status == Status::Running))))
        .collect();
    gauge(&mut out, "agenthub_server_up", "1 when the server is RUNNING", &["server"], &up);
    let circuit: Vec<_> = servers
        .iter()
        .map(|s| {
            let state = match app.breakers.state(&s.name, now) {
                CircuitState::Closed => 0.0,
                CircuitState::HalfOpen => 1.0,
                CircuitState::Open => 2.0,
            };
            (vec![s.name.clone()], state)
        })
        .collect();
    gauge(
        &mut out,
        "agenthub_circuit_state",
        "The server's circuit breaker: 0 closed, 1 half-open, 2 open",
        &["server"],
        &circuit,
    );
    let cache = app.enhancer.cache_stats();
    for (name, help, v) in [
        ("agenthub_cache_hits_total", "Enhancement cache hits", cache.hits),
        ("agenthub_cache_misses_total", "Enhancement cache misses", cache.misses),
        ("agenthub_cache_evictions_total", "Enhancement cache evictions", cache.evictions),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    }
    gauge(
        &mut out,
        "agenthub_cache_entries",
        "Entries in the enhancement cache",
        &[],
        &[(vec![], cache.size as f64)],
    );
    let sessions: Vec<_> =
        app.gateway.sessions.counts().into_iter().map(|(endpoint, n)| (vec![endpoint], n as f64)).collect();
    gauge(&mut out, "agenthub_mcp_sessions", "Open MCP sessions by endpoint", &["endpoint"], &sessions);
    gauge(
        &mut out,
        "agenthub_build_info",
        "The hub's version",
        &["version"],
        &[(vec![env!("CARGO_PKG_VERSION").to_string()], 1.0)],
    );
    out
}

/// What an answered request adds to the metrics: its route and status, and for an MCP request
/// (JSON-RPC on `/mcp...`, or the REST relay) the operation's duration by method and tool.
pub fn record(req: &Req, reply: &Reply, started: Instant) {
    let metrics = global();
    let route = reply.route.unwrap_or_else(|| routes::template(&req.path));
    metrics.http_request(route, reply.status);
    if req.method != "POST" {
        return;
    }
    let mut segs = req.path.trim_start_matches('/').split('/').skip(1);
    let server = segs.next().unwrap_or("");
    let (method, tool) = match route {
        "/mcp" | "/mcp/{server}" => rpc_of(&req.body),
        "/mcp/{server}/{*method}" => (segs.collect::<Vec<_>>().join("/"), rpc_of(&req.body).1),
        _ => return,
    };
    metrics.client_operation(server, &method, &tool, &error_type(reply), started.elapsed());
}

#[derive(serde::Deserialize)]
struct RpcHead {
    #[serde(default)]
    method: String,
    params: Option<RpcParams>,
    /// A REST relay's body is the params themselves.
    name: Option<String>,
}

#[derive(serde::Deserialize)]
struct RpcParams {
    name: Option<String>,
}

/// A JSON-RPC body's method and tool name (`batch` for an array), read without building a
/// value of the whole body.
fn rpc_of(body: &[u8]) -> (String, String) {
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return ("batch".into(), String::new());
    }
    match serde_json::from_slice::<RpcHead>(body) {
        Ok(h) => {
            let tool = h.params.and_then(|p| p.name).or(h.name).unwrap_or_default();
            (h.method, tool)
        }
        Err(_) => (String::new(), String::new()),
    }
}

#[derive(serde::Deserialize)]
struct AnswerHead {
    error: Option<AnswerError>,
    result: Option<ResultHead>,
    #[serde(rename = "isError")]
    is_error: Option<bool>,
}

#[derive(serde::Deserialize)]
struct AnswerError {
    code: Option<i64>,
}

#[derive(serde::Deserialize)]
struct ResultHead {
    #[serde(rename = "isError")]
    is_error: Option<bool>,
}

/// The OpenTelemetry `error.type` of an answer: the HTTP status past 400, the JSON-RPC error
/// code (known ones; `other`), `tool_error` for an `isError` result, empty for success.
fn error_type(reply: &Reply) -> String {
    if reply.status >= 400 {
        return reply.status.to_string();
    }
    if reply.content_type != "application/json" {
        return String::new();
    }
    let Ok(a) = serde_json::from_slice::<AnswerHead>(&reply.body) else { return String::new() };
    match a.error.and_then(|e| e.code) {
        Some(code @ (-32700 | -32600 | -32601 | -32602 | -32603 | -32000 | -32001 | -32002)) => {
            code.to_string()
        }
        Some(_) => crate::metrics::OTHER.into(),
        None if a.result.and_then(|r| r.is_error).or(a.is_error) == Some(true) => "tool_error".into(),
        None => String::new(),
    }
}
