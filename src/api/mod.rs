//! The hub's HTTP API: the route table and its handlers, one file per area (`servers`, `calls`
//! for the REST relay and prompt enhancement, `mcp` for the MCP endpoints, `dashboard`,
//! `pipelines`, `metrics`, `elicitations`), the guards every request passes (`guard`), and `Api`, which serves
//! them through the front (`front::Service`). Only this layer knows URLs and status codes;
//! `status_of` is the one mapping from `Error` to status and error code.

mod auth;
mod calls;
mod dashboard;
mod elicitations;
mod guard;
mod mcp;
mod metrics;
mod pipelines;
mod routes;
mod servers;

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use crate::app::App;
use crate::error::{Error, Result};
use crate::front::{self, Admission, Reply, Req, Responder};
use crate::text::for_log;
use guard::Policy;

/// What cross-origin scripts may read of an answer.
const CORS_EXPOSE: &str = "Mcp-Session-Id, MCP-Protocol-Version, X-Request-Id, Retry-After";

/// `Retry-After` of a 429: seconds before a refused pipeline run or generation is worth trying
/// again (a generation takes seconds, a run longer; the cap frees up as either ends).
const RETRY_AFTER_S: &str = "5";

/// The hub's API as the front serves it.
pub struct Api {
    app: Arc<App>,
    policy: Policy,
}

impl Api {
    pub fn new(app: Arc<App>) -> Arc<Api> {
        let s = &app.settings;
        let gateway = app.gateway.clone();
        let policy = Policy {
            allowed: s.allowed_origins.clone(),
            token: s.token.clone(),
            client_token: Box::new(move |bearer| gateway.token_id(bearer).is_some()),
        };
        Arc::new(Api { app, policy })
    }

    /// How the front listens for the API, from the settings.
    pub fn limits(&self) -> front::Limits {
        let s = &self.app.settings;
        front::Limits {
            host: s.host.clone(),
            port: s.port,
            workers: s.workers,
            read_timeout: s.read_timeout,
            max_body_bytes: s.max_body_bytes,
            max_bodies_bytes: s.max_bodies_bytes,
            max_connections: s.max_connections,
            cors_expose: CORS_EXPOSE,
        }
    }
}

impl front::Service for Api {
    /// Host, then Origin (which cross-origin requests may reach which routes), a CORS
    /// preflight's answer, then the token.
    fn admit(&self, req: &Req) -> Admission {
        let cors_origin = guard::check(&self.policy, req).cors_origin();
        let refusal = guard::refusal(&self.policy, req);
        Admission { refusal, cors_origin }
    }

    fn call(&self, res: Responder) {
        routes::dispatch(&self.app, res)
    }

    fn answered(&self, req: &Req, reply: &Reply, started: Instant) {
        log_request(req, reply, started);
        metrics::record(req, reply, started);
    }

    fn refused(&self, req: &Req, status: u16, started: Instant) {
        crate::metrics::global().http_request(routes::template(&req.path), status);
        log::debug!(
            "{} {} {status} {:.3}ms client={} id={}",
            req.method,
            for_log(&req.path, MAX_LOGGED_PATH),
            started.elapsed().as_secs_f64() * 1000.0,
            for_log(req.client_name().unwrap_or("-"), MAX_LOGGED_NAME),
            req.id
        );
    }
}

/// Status and snake_case code of each error kind.
pub fn status_of(e: &Error) -> (u16, &'static str) {
    match e {
        Error::Config(_) | Error::BadRequest(_) => (400, "bad_request"),
        Error::InvalidJson(_) => (400, "invalid_json"),
        Error::NotFound(_) => (404, "not_found"),
        Error::Conflict(_) => (409, "conflict"),
        Error::ReadOnly(_) => (409, "read_only"),
        Error::PayloadTooLarge(_) => (413, "payload_too_large"),
        Error::Unavailable(_) => (503, "server_unavailable"),
        Error::CircuitOpen(_) => (503, "circuit_open"),
        Error::TooManyRequests(_) => (429, "too_many_requests"),
        Error::Upstream(_) => (502, "upstream_error"),
        Error::Timeout(_) => (504, "timeout"),
        Error::Io { .. } | Error::Internal(_) => (500, "internal"),
    }
}

impl From<Error> for Reply {
    fn from(e: Error) -> Reply {
        let (status, code) = status_of(&e);
        if status >= 500 {
            log::warn!("{e}");
        }
        let reply = Reply::error(status, code, &e.to_string());
        match status {
            429 => reply.with_header("Retry-After", RETRY_AFTER_S),
            _ => reply,
        }
    }
}

/// A request's body as JSON (`null` when empty).
fn json_of(req: &Req) -> Result<Value> {
    req.json().map_err(Error::InvalidJson)
}

/// Seconds with three decimals, for uptimes.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then_some(v)
    })
}

/// How much of a request's path, and of a name it gives (client, JSON-RPC method), its log line
/// keeps; what the client wrote is escaped there (`text::for_log`), so it cannot forge a line.
const MAX_LOGGED_PATH: usize = 512;
const MAX_LOGGED_NAME: usize = 128;

/// The line of a request that was answered: on the MCP endpoints it names the JSON-RPC method
/// and the client (`X-Client-Name`, else its `clientInfo.name`).
pub fn log_request(req: &Req, reply: &Reply, started: std::time::Instant) {
    if !log::log_enabled!(log::Level::Debug) {
        return;
    }
    let body: Option<serde_json::Value> =
        match req.method == "POST" && req.path.starts_with("/mcp") && req.path.matches('/').count() <= 2 {
            true => serde_json::from_slice(&req.body).ok(),
            false => None,
        };
    let rpc = match &body {
        Some(serde_json::Value::Array(_)) => "batch".to_string(),
        Some(b) => crate::jsonrpc::method(b).to_string(),
        None => String::new(),
    };
    let from_body = body.as_ref().and_then(|b| b.pointer("/params/clientInfo/name")).and_then(|n| n.as_str());
    let client = req.client_name().or(reply.client.as_deref()).or(from_body).unwrap_or("-");
    let rpc = match rpc.is_empty() {
        true => String::new(),
        false => format!(" rpc={}", for_log(&rpc, MAX_LOGGED_NAME)),
    };
    log::debug!(
        "{} {} {} {:.3}ms client={}{rpc} id={}",
        req.method,
        for_log(&req.path, MAX_LOGGED_PATH),
        reply.status,
        started.elapsed().as_secs_f64() * 1000.0,
        for_log(client, MAX_LOGGED_NAME),
        req.id,
    );
}
