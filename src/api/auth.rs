//! Where a person signs in to a remote server: `GET /servers/{name}/auth` (a new flow's
//! authorization URL), `DELETE /servers/{name}/auth` (sign out: the tokens forgotten, the
//! server restarted, so it waits for a sign-in again), and `GET /oauth/callback`, the redirect
//! URI on the hub itself: no bearer token there (a browser cannot send one), the flow's `state`
//! is the check. No answer here carries a token.

use serde_json::json;

use super::routes::Params;
use crate::app::App;
use crate::error::{Error, Result};
use crate::front::{Reply, Req};

pub fn begin(app: &App, _: &Req, p: &Params) -> Result<Reply> {
    let name = p.get("name").to_string();
    app.servers.get(&name).ok_or_else(|| Error::NotFound(format!("no server named \"{name}\"")))?;
    let oauth = app.oauth.clone();
    Ok(Reply::spawn(move || match oauth.begin(&name) {
        Ok(url) => Reply::ok(&json!({"authorization_url": url})),
        Err(e) => Reply::from(e),
    }))
}

pub fn sign_out(app: &App, _: &Req, p: &Params) -> Result<Reply> {
    let name = p.get("name").to_string();
    app.servers.get(&name).ok_or_else(|| Error::NotFound(format!("no server named \"{name}\"")))?;
    app.oauth.sign_out(&name)?;
    let servers = app.servers.clone();
    Ok(Reply::spawn(move || {
        // The running server holds no token any more: it starts again into AUTH_REQUIRED.
        let _ = servers.restart(&name);
        Reply::ok(&json!({"name": name, "signed_in": false}))
    }))
}

pub fn callback(app: &App, req: &Req, _: &Params) -> Result<Reply> {
    let oauth = app.oauth.clone();
    let servers = app.servers.clone();
    let query = req.query.clone();
    Ok(Reply::spawn(move || match oauth.finish(&query) {
        Ok(name) => {
            let status = match servers.start(&name) {
                Ok(s) => s.info.status.as_str().to_string(),
                Err(e) => e.to_string(),
            };
            page(200, &format!("Signed in to {name} ({status}). You can close this page."))
        }
        Err(e) => {
            log::warn!("sign-in callback refused: {e}");
            page(400, &format!("Sign-in failed: {e}"))
        }
    }))
}

fn page(status: u16, message: &str) -> Reply {
    let escaped = message.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let mut r = Reply::empty(status);
    r.content_type = "text/html; charset=utf-8";
    r.body = format!("<!doctype html><meta charset=utf-8><title>AgentHub sign-in</title><p>{escaped}</p>")
        .into_bytes();
    r.with_header("Content-Security-Policy", "default-src 'none'".to_string())
        .with_header("Referrer-Policy", "no-referrer")
        .with_header("Cache-Control", "no-store")
}
