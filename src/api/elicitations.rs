//! `/elicitations`: the servers' questions no client could take, waiting for a person
//! (`servers::Elicitations`): the list, and a person's answer to one. Behind the same guards
//! as the rest of the management API (the token, the hub's own origin).

use std::time::Instant;

use serde_json::json;

use super::json_of;
use super::routes::Params;
use crate::app::App;
use crate::error::Result;
use crate::front::{Reply, Req};

/// `GET /elicitations`: `{"elicitations": [...]}`, oldest first.
pub fn list(app: &App, _: &Req, _: &Params) -> Result<Reply> {
    Ok(Reply::ok(&json!({"elicitations": app.servers.elicitations(Instant::now())})))
}

/// `POST /elicitations/{id}` `{"action": "accept"|"decline"|"cancel", "content"?}`: the answer
/// goes to the server as its request's result. 400 naming the field at fault; 404 for an id
/// that is unknown, answered, expired or withdrawn.
pub fn answer(app: &App, req: &Req, p: &Params) -> Result<Reply> {
    let body = json_of(req)?;
    Ok(Reply::ok(&app.servers.answer_elicitation(p.get("id"), &body, Instant::now())?))
}
