//! `Endpoint`, the hub's one client of Streamable HTTP: a URL with its session and protocol
//! version, POSTs whose answers are read message by message (plain JSON or SSE), the GET
//! stream, DELETE. Two users share it: `Upstream`, a remote MCP server the hub initializes
//! itself, and the stdio shim (`agenthub stdio`), which passes a client's messages to a hub as
//! they are.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::sync::atomic::Ordering;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;

use super::sse::Events;
use crate::jsonrpc::{self, RpcError};

/// Where a remote server's `Authorization` comes from when it asks for OAuth (the `oauth`
/// module's): the header for each request, and what the server said when it refused one.
pub trait Credentials: Send + Sync {
    /// `Bearer ...`, when there is a token.
    fn authorization(&self) -> Option<String>;
    /// A 401 or 403 with its `WWW-Authenticate`; true when sending again may pass (a refresh).
    fn refused(&self, status: u16, challenge: Option<&str>) -> bool;
    /// Why the server no longer takes the hub's requests (a refresh refused, more scope
    /// asked): a running server is then lost, and its relaunch waits for a person.
    fn lapsed(&self) -> Option<String>;
}

/// One Streamable HTTP endpoint and the session the hub holds with it.
pub struct Endpoint {
    /// Who is at the other end, for messages.
    name: String,
    url: String,
    /// Sent with every request (`Authorization` among them).
    headers: Mutex<BTreeMap<String, String>>,
    agent: ureq::Agent,
    session: Mutex<Option<String>>,
    version: Mutex<Option<String>>,
    /// Each POST names its method (`Mcp-Method`) and, where the revision asks, its target
    /// (`Mcp-Name`): 2026-07-28.
    named: std::sync::atomic::AtomicBool,
    credentials: Mutex<Option<std::sync::Arc<dyn Credentials>>>,
}

/// What came back for one POST.
pub struct Answer {
    /// The server no longer knows the session it was sent (404; some servers say 400).
    pub session_lost: bool,
    pub body: Body,
}

/// An answer's messages, read as they arrive.
pub enum Body {
    /// 202: nothing.
    Empty,
    /// One JSON body (an object, or a batch's array).
    One(Option<Value>),
    /// An SSE stream: one message per event.
    Events(Events<Box<dyn BufRead + Send>>),
}

impl Body {
    /// The next message; `Err` when the stream broke.
    pub fn next_message(&mut self) -> Option<std::io::Result<Value>> {
        match self {
            Body::Empty => None,
            Body::One(v) => v.take().map(Ok),
            Body::Events(events) => loop {
                match events.next_event()? {
                    Ok(event) => match serde_json::from_str(&event.data) {
                        Ok(v) => return Some(Ok(v)),
                        Err(_) => log::trace!("skipped an event that is not JSON: {:.200}", event.data),
                    },
                    Err(e) => return Some(Err(e)),
                }
            },
        }
    }
}

/// How one exchange failed.
pub(crate) fn unreachable(name: &str, e: impl std::fmt::Display) -> RpcError {
    RpcError::new(jsonrpc::SERVER_UNAVAILABLE, format!("{name} is unreachable: {e}"))
}

/// An HTTP error status from `name`, with the gist of what it said (`gist`).
pub(crate) fn refused(name: &str, status: u16, text: &str) -> RpcError {
    RpcError::new(jsonrpc::SERVER_UNAVAILABLE, format!("{name} answered HTTP {status}: {}", gist(text)))
}

/// One line of an error body, for a log line: an HTML page's `<title>`, else its first
/// non-blank line, at most 200 characters.
pub(crate) fn gist(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let title = lower.find("<title>").and_then(|start| {
        let end = lower[start..].find("</title>")?;
        text.get(start + 7..start + end)
    });
    let line = title.or_else(|| text.lines().map(str::trim).find(|l| !l.is_empty())).unwrap_or("");
    line.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect()
}

/// A request to `name` that got no answer: timed out (after `timeout`), or unreachable.
pub(crate) fn failed(name: &str, timeout: Option<Duration>, e: ureq::Error) -> RpcError {
    match e {
        ureq::Error::Timeout(_) => RpcError::new(
            jsonrpc::REQUEST_TIMEOUT,
            format!("request to {name} timed out after {}s", timeout.unwrap_or_default().as_secs_f64()),
        ),
        e => unreachable(name, e),
    }
}

impl Endpoint {
    /// `connect`: the longest wait for a connection; there is no overall deadline unless a
    /// POST gives one (answers may stream for as long as a tool runs).
    pub fn new(name: &str, url: &str, headers: BTreeMap<String, String>, connect: Duration) -> Endpoint {
        Endpoint {
            name: name.to_string(),
            url: url.to_string(),
            headers: Mutex::new(headers),
            agent: crate::http_agent(connect, None),
            session: Mutex::new(None),
            version: Mutex::new(None),
            named: std::sync::atomic::AtomicBool::new(false),
            credentials: Mutex::new(None),
        }
    }

    /// Supplies `Authorization` to every later request (a configured one is dropped).
    pub fn set_credentials(&self, credentials: std::sync::Arc<dyn Credentials>) {
        self.headers.lock().retain(|k, _| !k.eq_ignore_ascii_case("authorization"));
        *self.credentials.lock() = Some(credentials);
    }

    /// Why the server stopped taking the hub's credentials, if it did.
    pub fn lapsed(&self) -> Option<String> {
        self.credentials.lock().clone().and_then(|c| c.lapsed())
    }

    /// Adds a header to every later request, unless it is set already.
    pub fn default_header(&self, name: &str, value: &str) {
        self.headers.lock().entry(name.to_string()).or_insert_with(|| value.to_string());
    }

    /// Where it is, as `host:port`, for a plain check that something listens there.
    pub fn authority(&self) -> String {
        let rest = self.url.split_once("://").map_or(self.url.as_str(), |(_, r)| r);
        let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        let has_port = host.rsplit_once(':').is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit()));
        match (has_port, self.url.starts_with("https://")) {
            (true, _) => host.to_string(),
            (false, true) => format!("{host}:443"),
            (false, false) => format!("{host}:80"),
        }
    }

    pub fn has_session(&self) -> bool {
        self.session.lock().is_some()
    }

    /// Forgets the session and its version (before a new `initialize`).
    pub fn forget_session(&self) {
        *self.session.lock() = None;
        *self.version.lock() = None;
    }

    /// Whether every POST carries `Mcp-Method` and, for the requests that name a target,
    /// `Mcp-Name` (revision 2026-07-28).
    pub fn name_methods(&self, on: bool) {
        self.named.store(on, Ordering::SeqCst);
    }

    /// The protocol version agreed at initialize, sent with every later request.
    pub fn set_version(&self, version: &str) {
        *self.version.lock() = Some(version.to_string());
    }

    /// POSTs one message. An error status with a JSON-RPC body is an answer (the body says
    /// what went wrong); a transport failure or any other body is an error.
    pub fn post(&self, msg: &Value, timeout: Option<Duration>) -> Result<Answer, RpcError> {
        self.post_with(msg, timeout, &[])
    }

    /// As `post`, with headers of this message's own.
    pub fn post_with(
        &self,
        msg: &Value,
        timeout: Option<Duration>,
        extra: &[(&str, String)],
    ) -> Result<Answer, RpcError> {
        let session = self.session.lock().clone();
        let version = self.version.lock().clone();
        self.send(msg, timeout, extra, session, version)
    }

    /// POSTs an `initialize` for a new session without forgetting the current one: requests
    /// sent meanwhile still name the old session (and learn that it is lost), never none at
    /// all. The answer's session replaces the old one; a failed handshake leaves it in place.
    pub fn post_initialize(&self, msg: &Value) -> Result<Answer, RpcError> {
        self.send(msg, None, &[], None, None)
    }

    /// One POST naming `session` and `version` (each when there is one).
    fn send(
        &self,
        msg: &Value,
        timeout: Option<Duration>,
        extra: &[(&str, String)],
        session: Option<String>,
        version: Option<String>,
    ) -> Result<Answer, RpcError> {
        let credentials = self.credentials.lock().clone();
        let mut tries = 0;
        loop {
            let mut resp = self.send_once(msg, timeout, extra, &session, &version, credentials.as_deref())?;
            let status = resp.status().as_u16();
            if let (401 | 403, Some(c)) = (status, &credentials) {
                let challenge = resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok());
                tries += 1;
                if c.refused(status, challenge) && tries < 3 {
                    continue;
                }
                let _ = resp.body_mut().read_to_string();
                return Err(refused(&self.name, status, "authorization required"));
            }
            return self.answer(resp, session.is_some());
        }
    }

    fn send_once(
        &self,
        msg: &Value,
        timeout: Option<Duration>,
        extra: &[(&str, String)],
        session: &Option<String>,
        version: &Option<String>,
        credentials: Option<&dyn Credentials>,
    ) -> Result<ureq::http::Response<ureq::Body>, RpcError> {
        let mut req = self
            .agent
            .post(&self.url)
            .config()
            .timeout_global(timeout)
            .build()
            .header("Accept", "application/json, text/event-stream")
            .header("Content-Type", "application/json");
        if let Some(s) = session {
            req = req.header("Mcp-Session-Id", s);
        }
        if let Some(a) = credentials.and_then(|c| c.authorization()) {
            req = req.header("Authorization", a);
        }
        if let Some(v) = version {
            req = req.header("MCP-Protocol-Version", v);
        }
        for (k, v) in self.headers.lock().iter() {
            req = req.header(k, v);
        }
        if self.named.load(Ordering::SeqCst) {
            for (k, v) in crate::exchange::modern::method_headers(msg) {
                req = req.header(k, v);
            }
        }
        for (k, v) in extra {
            req = req.header(*k, v);
        }
        if let Some(id) = crate::request_id::current() {
            req = req.header("X-Request-Id", id);
        }
        req.send(msg.to_string()).map_err(|e| failed(&self.name, timeout, e))
    }

    /// What one POST's answer says.
    fn answer(
        &self,
        mut resp: ureq::http::Response<ureq::Body>,
        had_session: bool,
    ) -> Result<Answer, RpcError> {
        if let Some(s) = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
            *self.session.lock() = Some(s.to_string());
        }
        let status = resp.status().as_u16();
        let session_lost = (status == 404 || status == 400) && had_session;
        let answer = |body| Ok(Answer { session_lost, body });
        if status == 202 {
            return answer(Body::Empty);
        }
        let sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        if sse {
            return answer(Body::Events(Events::new(Box::new(BufReader::new(
                resp.into_body().into_reader(),
            )))));
        }
        let text = resp.body_mut().read_to_string().map_err(|e| unreachable(&self.name, e))?;
        match serde_json::from_str::<Value>(&text) {
            Ok(v) if v.get("jsonrpc").is_some() || v.is_array() => answer(Body::One(Some(v))),
            _ if session_lost => answer(Body::Empty),
            _ if status >= 400 => Err(refused(&self.name, status, &text)),
            _ => Err(unreachable(&self.name, format!("unexpected answer (HTTP {status})"))),
        }
    }

    /// The session's GET stream (messages the server sends on its own), if it offers one.
    pub fn listen(&self) -> Option<Body> {
        let session = self.session.lock().clone()?;
        let mut req = self
            .agent
            .get(&self.url)
            .header("Accept", "text/event-stream")
            .header("Mcp-Session-Id", &session);
        for (k, v) in self.headers.lock().iter() {
            req = req.header(k, v);
        }
        if let Some(a) = self.credentials.lock().clone().and_then(|c| c.authorization()) {
            req = req.header("Authorization", a);
        }
        match req.call() {
            Ok(resp) if resp.status().as_u16() == 200 => {
                Some(Body::Events(Events::new(Box::new(BufReader::new(resp.into_body().into_reader())))))
            }
            Ok(resp) => {
                log::debug!("{}: no GET stream ({})", self.name, resp.status());
                None
            }
            Err(e) => {
                log::debug!("{}: no GET stream: {e}", self.name);
                None
            }
        }
    }

    /// Resumes a POST's event stream that ended before its response (SEP-1699): a GET naming
    /// the last event id it gave; `None` when the server offers no stream.
    pub fn resume(&self, last_id: &str, timeout: Duration) -> Option<Body> {
        let mut req = self
            .agent
            .get(&self.url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("Accept", "text/event-stream")
            .header("Last-Event-ID", last_id);
        if let Some(s) = self.session.lock().clone() {
            req = req.header("Mcp-Session-Id", s);
        }
        if let Some(v) = self.version.lock().clone() {
            req = req.header("MCP-Protocol-Version", v);
        }
        for (k, v) in self.headers.lock().iter() {
            req = req.header(k, v);
        }
        match req.call() {
            Ok(resp) if resp.status().as_u16() == 200 => {
                Some(Body::Events(Events::new(Box::new(BufReader::new(resp.into_body().into_reader())))))
            }
            Ok(resp) => {
                log::debug!("{}: the stream cannot be resumed ({})", self.name, resp.status());
                None
            }
            Err(e) => {
                log::debug!("{}: the stream cannot be resumed: {e}", self.name);
                None
            }
        }
    }

    /// Ends the session (DELETE), if there is one.
    pub fn close(&self) {
        // The session is taken out first: no lock is held across the DELETE.
        let session = self.session.lock().take();
        if let Some(s) = session {
            let mut req = self.agent.delete(&self.url).header("Mcp-Session-Id", &s);
            for (k, v) in self.headers.lock().iter() {
                req = req.header(k, v);
            }
            let _ = req.config().timeout_global(Some(Duration::from_secs(2))).build().call();
        }
    }
}
