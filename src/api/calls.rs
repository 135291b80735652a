//! The REST relay (`POST /mcp/{server}/{method...}`: a call for curl, not MCP: it goes straight
//! to the exchange) and prompt enhancement (`/ollama/...`, `/cache/clear`).

use serde_json::{Value, json};

use super::json_of;
use super::routes::Params;
use crate::app::App;
use crate::enhance::Prepared;
use crate::error::{Error, Result};
use crate::exchange::{Call, Request};
use crate::exchange::{Relay, Relayed, relay};
use crate::front::{Reply, Req, Responder};
use crate::jsonrpc::{self, RpcError};
use crate::servers::Acquired;

/// `POST /mcp/{server}/{method...}`: body = params, answer = result. JSON-RPC errors map to
/// 400 (invalid request, method, params), 504 (timeout) or 502, with the error under `rpc`.
pub fn rest_call(app: &App, req: &Req, p: &Params, res: Responder) {
    let view = match app.gateway.shows_everything() {
        true => None,
        false => Some(app.gateway.rest_view(req.client_name(), super::mcp::token_of(app, req).as_deref())),
    };
    // A tool list is cut to what the caller's profile shows.
    let cut = view.clone().filter(|v| p.get("method") == "tools/list" && !v.profile().shows_all());
    let server = p.get("server").to_string();
    let who = (p.get("method") == "tools/call").then(|| {
        let token = super::mcp::token_of(app, req);
        let client = crate::mcp::Client {
            header: req.client_name().map(str::to_string),
            token,
            ..crate::mcp::Client::none()
        };
        app.gateway.who(&client)
    });
    let seen = move |mut call: Call| {
        if let Some(who) = who {
            call.attribute(who);
        }
        if let Some(view) = cut {
            call.on_result(move |mut r| {
                if let Some(Value::Array(tools)) = r.get_mut("tools").map(Value::take) {
                    r["tools"] = Value::Array(view.tools_seen(&server, tools));
                }
                r
            });
        }
        call
    };
    match start_call(app, req, p, view.as_ref()) {
        Ok(Acquired::Ready(call)) => rest_relay(seen(call), res),
        Ok(Acquired::Starting(request)) => {
            // Waiting for the server to come up may take its whole handshake: off the worker.
            let (servers, server, gone) = (app.servers.clone(), p.get("server").to_string(), res.gone());
            res.spawn(move || match servers.acquire(&server, request) {
                Ok(mut call) => {
                    call.watch(gone);
                    let call = seen(call);
                    Reply::respond(move |res| rest_relay(call, res))
                }
                Err(e) => Reply::from(e),
            })
        }
        Err(e) => res.send(Reply::from(e)),
    }
}

/// Methods whose effect or answer belongs to the MCP session that sent them (`mcp::share`):
/// refused on the REST relay, which has no session.
const SESSION_OWNED: &[&str] = &[
    "tasks/get",
    "tasks/result",
    "tasks/cancel",
    "tasks/update",
    "tasks/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "logging/setLevel",
];

/// The request checked and sent (or given back while its server starts).
fn start_call(app: &App, req: &Req, p: &Params, view: Option<&crate::mcp::View>) -> Result<Acquired> {
    if p.get("method") == "initialize" {
        // The child is shared and initialized once, by the hub: a second handshake would reset it.
        return Err(Error::BadRequest(format!(
            "the hub owns the handshake with {}: open an MCP session at /mcp/{} instead",
            p.get("server"),
            p.get("server")
        )));
    }
    if let Some(method) = SESSION_OWNED.iter().find(|m| **m == p.get("method")) {
        // What these touch belongs to one MCP session (`mcp::share`); a call with no session
        // would reach every session's tasks, subscriptions or log level on the shared child.
        return Err(Error::BadRequest(format!(
            "{method} belongs to an MCP session (tasks, subscriptions and log levels are kept per \
             session): send it on an MCP session at /mcp/{} instead",
            p.get("server")
        )));
    }
    let params = match json_of(req)? {
        Value::Null => None,
        v @ Value::Object(_) => Some(v),
        _ => {
            return Err(Error::BadRequest(
                "the body must be a JSON object (the request's params) or empty".into(),
            ));
        }
    };
    // What the caller's profile hides is unknown to it, as on the MCP endpoints.
    let (server, method) = (p.get("server"), p.get("method"));
    let Some(view) = view else { return app.servers.try_acquire(server, Request::own(method, params)) };
    if !view.shows_server(server) {
        app.gateway.refused(view, Some(server), &format!("{method} on /mcp/{server}"));
        return Err(Error::NotFound(format!("no server named \"{server}\"")));
    }
    if method == "tools/call" {
        let name = params.as_ref().and_then(|p| p.get("name")).and_then(Value::as_str).unwrap_or("");
        if !view.shows_tool(server, name) {
            app.gateway.refused(view, Some(server), &format!("tool {name} on /mcp/{server}"));
            return Err(Error::BadRequest(format!("unknown tool \"{name}\"")));
        }
    }
    app.servers.try_acquire(server, Request::own(method, params))
}

/// The call's outcome, sent to the REST caller once it comes (no stream: the server's
/// messages before it are dropped, its requests refused).
fn rest_relay(call: Call, res: Responder) {
    let how = Relay { gone: Some(res.gone()), stream_id: None, park: None };
    relay(call, how, move |relayed| {
        res.send(match relayed {
            Relayed::Done(Ok(v)) => Reply::ok(&v),
            Relayed::Done(Err(e)) => rpc_error_reply(&e),
            Relayed::Stream(body) => Reply::event_stream(body),
        })
    });
}

pub fn rpc_error_reply(e: &RpcError) -> Reply {
    let (status, code) = match e.code {
        jsonrpc::INVALID_REQUEST | jsonrpc::METHOD_NOT_FOUND | jsonrpc::INVALID_PARAMS => {
            (400, "bad_request")
        }
        jsonrpc::REQUEST_TIMEOUT => (504, "timeout"),
        _ => (502, "upstream_error"),
    };
    Reply::json(status, &json!({"error": {"code": code, "message": e.message, "rpc": e.to_value()}}))
}

/// `POST /ollama/enhance {prompt, client?, model?}`; `X-Client-Name` wins over `client`. With
/// `AGENTHUB_MAX_GENERATIONS` generations under way, a prompt that needs the model is a 429.
pub fn enhance_prompt(app: &App, req: &Req, _: &Params) -> Result<Reply> {
    let body = json_of(req)?;
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
    // A place among the generations at once is taken here, so a caller past the cap hears so
    // at once (429) and no thread starts for it.
    let slot = app.enhancer.slot().map_err(|f| Error::TooManyRequests(f.to_string()))?;
    // The model takes seconds: off the worker.
    let (enhancer, prompt, client, model) = (
        app.enhancer.clone(),
        prompt.to_string(),
        client.map(str::to_string),
        request.model.map(str::to_string),
    );
    Ok(Reply::spawn(move || {
        let request =
            crate::enhance::Request { prompt: &prompt, client: client.as_deref(), model: model.as_deref() };
        enhancement_reply(&enhancer.generate_in(&request, key, slot))
    }))
}

fn enhancement_reply(e: &crate::enhance::Enhancement) -> Reply {
    match serde_json::to_value(e) {
        Ok(v) => Reply::ok(&v),
        Err(e) => Reply::from(Error::Internal(e.to_string())),
    }
}

/// `GET /ollama/models` asks Ollama: off the worker.
pub fn ollama_models(app: &App, _: &Req, _: &Params) -> Result<Reply> {
    let enhancer = app.enhancer.clone();
    Ok(Reply::spawn(move || match enhancer.client.models() {
        Ok(models) => Reply::ok(&json!({"url": enhancer.client.base_url(), "models": models})),
        Err(e) => Reply::from(e),
    }))
}

pub fn clear_cache(app: &App, _: &Req, _: &Params) -> Result<Reply> {
    app.enhancer.clear_cache();
    Ok(Reply::ok(&json!({"cache": app.enhancer.cache_stats()})))
}
