//! The MCP endpoints (`POST/GET/DELETE /mcp` and `/mcp/{server}`): the request's parts handed to
//! the gateway, its `Answer` made a reply, and the gateway's `Sink` for answers that come later
//! (the front's `Responder`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde_json::{Value, json};

use super::routes::Params;
use crate::app::App;
use crate::error::{Error, Result};
use crate::front::{Reply, Req, Responder};
use crate::jsonrpc;
use crate::mcp::{self, Answer, Target};

/// `GET /catalog`: what the tools on `/mcp` cost a client's context, per tool, per server and
/// in all (bytes of each definition as listed, tokens estimated as bytes / 4).
pub fn catalog(app: &App, _: &Req, _: &Params) -> Result<Reply> {
    let gateway = app.gateway.clone();
    Ok(Reply::spawn(move || Reply::ok(&gateway.catalog_size())))
}

/// `GET /profiles`: each profile with its servers, tools and size, and who gets it.
pub fn profiles(app: &App, _: &Req, _: &Params) -> Result<Reply> {
    let gateway = app.gateway.clone();
    Ok(Reply::spawn(move || Reply::ok(&gateway.profiles_info())))
}

fn mcp_target(app: &App, req: &Req, p: &Params) -> Result<Target> {
    match p.get("server") {
        "" => Ok(Target::Aggregate),
        name if app.servers.contains(name) => Ok(Target::Server(name.to_string())),
        name => Err(Error::NotFound(unknown_server(app, req, name))),
    }
}

/// What a client pointed at a server that does not exist is told: the names that do, of those
/// its profile shows.
fn unknown_server(app: &App, req: &Req, name: &str) -> String {
    let view = app.gateway.rest_view(req.client_name(), token_of(app, req).as_deref());
    let known: Vec<String> =
        app.servers.list().into_iter().map(|s| s.name).filter(|s| view.shows_server(s)).collect();
    let known = if known.is_empty() { "none is configured".to_string() } else { known.join(", ") };
    format!("no server named \"{name}\" (known servers: {known}; /mcp serves them all)")
}

/// The name of the tokens-file token a request presents, if it does (its profile applies).
pub fn token_of(app: &App, req: &Req) -> Option<String> {
    super::guard::bearer(req.header("authorization")).and_then(|b| app.gateway.token_id(b))
}

fn mcp_request<'a>(req: &'a Req, token: Option<&'a str>) -> mcp::Request<'a> {
    mcp::Request {
        token,
        body: &req.body,
        session: req.header("mcp-session-id"),
        protocol_version: req.header("mcp-protocol-version"),
        accept: req.header("accept"),
        client: req.client_name(),
        method_header: req.header("mcp-method"),
        name_header: req.header("mcp-name"),
    }
}

/// A client's message: the gateway answers through the responder, at once or when the
/// server's answer comes.
pub fn post(app: &App, req: &Req, p: &Params, res: Responder) {
    // An MCP client shows a JSON-RPC error's message; a bare 404 reads as "session terminated".
    let target = match mcp_target(app, req, p) {
        Ok(t) => t,
        Err(Error::NotFound(message)) => {
            let id = serde_json::from_slice::<Value>(&req.body).ok().and_then(|v| v.get("id").cloned());
            let body = jsonrpc::error(id.unwrap_or(Value::Null), jsonrpc::SERVER_UNAVAILABLE, &message);
            return res.send(Reply::json(404, &body));
        }
        Err(e) => return res.send(Reply::from(e)),
    };
    let client = app.gateway.client_of(req.header("mcp-session-id"));
    let token = token_of(app, req);
    app.gateway.post(&target, &mcp_request(req, token.as_deref()), Box::new(Out { res, client }));
}

pub fn get(app: &App, req: &Req, p: &Params, res: Responder) {
    match mcp_target(app, req, p) {
        Ok(target) => {
            let token = token_of(app, req);
            res.send(mcp_reply(app.gateway.get(&target, &mcp_request(req, token.as_deref())), None))
        }
        Err(e) => res.send(Reply::from(e)),
    }
}

pub fn delete(app: &App, req: &Req, p: &Params, res: Responder) {
    match mcp_target(app, req, p) {
        Ok(target) => {
            let token = token_of(app, req);
            res.send(mcp_reply(app.gateway.delete(&target, &mcp_request(req, token.as_deref())), None))
        }
        Err(e) => res.send(Reply::from(e)),
    }
}

/// The reply for an answer; `client`: the session's client name, for the request's log line.
fn mcp_reply(answer: Answer, client: Option<String>) -> Reply {
    let mut reply = match answer {
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
        Answer::Then(f) => {
            let client = client.clone();
            Reply::respond(move |res| f(Box::new(Out { res, client })))
        }
    };
    reply.client = client;
    reply
}

/// The gateway's way to answer later: the front's responder.
struct Out {
    res: Responder,
    client: Option<String>,
}

impl mcp::Sink for Out {
    fn send(self: Box<Self>, answer: Answer) {
        let Out { res, client } = *self;
        res.send(mcp_reply(answer, client));
    }

    fn spawn(self: Box<Self>, f: Box<dyn FnOnce() -> Answer + Send>) {
        let Out { res, client } = *self;
        // The calls it makes are cancelled if the client leaves meanwhile.
        let gone = res.gone();
        res.spawn(move || crate::exchange::while_caller_watched(gone, || mcp_reply(f(), client)));
    }

    fn gone(&self) -> Arc<AtomicBool> {
        self.res.gone()
    }
}
