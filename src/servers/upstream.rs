//! Remote MCP servers (`transport: "http"`): the hub as a Streamable HTTP client through ureq.
//! One upstream session shared by every caller, like a stdio child: the hub initializes it,
//! rewrites ids, reads JSON or SSE answers, and initializes again when the upstream forgets
//! the session (404).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::jsonrpc::{self, RpcError};

pub struct Upstream {
    name: String,
    url: String,
    headers: BTreeMap<String, String>,
    agent: ureq::Agent,
    session: Mutex<Option<String>>,
    version: Mutex<String>,
    next_id: AtomicU64,
}

/// How one exchange failed.
fn unreachable(name: &str, e: impl std::fmt::Display) -> RpcError {
    RpcError::new(jsonrpc::SERVER_UNAVAILABLE, format!("server {name} is unreachable: {e}"))
}

impl Upstream {
    pub fn new(name: &str, url: &str, headers: BTreeMap<String, String>) -> Upstream {
        let agent = crate::http_agent(Duration::from_secs(5), None);
        Upstream {
            name: name.to_string(),
            url: url.to_string(),
            headers,
            agent,
            session: Mutex::new(None),
            version: Mutex::new(super::PROTOCOL_VERSION.to_string()),
            next_id: AtomicU64::new(1),
        }
    }

    /// The handshake: `initialize`, then `notifications/initialized`. Returns the result.
    pub fn initialize(&self, timeout: Duration) -> Result<Value, RpcError> {
        *self.session.lock() = None;
        let params = json!({
            "protocolVersion": super::PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "agenthub", "version": crate::VERSION},
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let msgs = self.exchange(&jsonrpc::request(id, "initialize", Some(params)), timeout, false)?;
        let response =
            msgs.into_iter().last().ok_or_else(|| unreachable(&self.name, "no answer to initialize"))?;
        let result = jsonrpc::outcome(&response)?;
        if let Some(v) = result.get("protocolVersion").and_then(Value::as_str) {
            *self.version.lock() = v.to_string();
        }
        self.exchange(&jsonrpc::notification("notifications/initialized", None), timeout, false)?;
        Ok(result)
    }

    /// A hub id for the next request: ids the upstream sees are the hub's, unique per upstream.
    pub fn fresh_id(&self) -> Value {
        json!(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Sends a request under the hub id `id` and returns its answer as it arrives.
    pub fn open(&self, id: Value, request: &Value, timeout: Duration) -> Result<Reply, RpcError> {
        let client_id = request.get("id").cloned().unwrap_or(Value::Null);
        let mut msg = request.clone();
        msg["id"] = id.clone();
        let body = match self.post(&msg, timeout, true) {
            Err(e) if e.code == NOT_FOUND_SESSION => {
                // The upstream forgot the session (it restarted): start a new one, once.
                log::info!("server {}: upstream session expired; initializing again", self.name);
                self.initialize(timeout)?;
                self.post(&msg, timeout, false)?
            }
            other => other?,
        };
        Ok(Reply { name: self.name.clone(), body, id, client_id, done: false })
    }

    /// Tells the upstream to stop working on the request with hub id `id`.
    pub fn cancel(&self, id: &Value, reason: &str) {
        let msg = jsonrpc::notification(
            "notifications/cancelled",
            Some(json!({"requestId": id, "reason": reason})),
        );
        if let Err(e) = self.exchange(&msg, Duration::from_secs(2), true) {
            log::debug!("server {}: cancellation not delivered: {}", self.name, e.message);
        }
    }

    /// A request's result.
    pub fn call(&self, method: &str, params: Option<Value>, timeout: Duration) -> Result<Value, RpcError> {
        let msgs = self.open(self.fresh_id(), &jsonrpc::request(0, method, params), timeout)?.collect()?;
        jsonrpc::outcome(msgs.last().unwrap_or(&Value::Null))
    }

    /// Ends the upstream session (DELETE), if there is one.
    pub fn close(&self) {
        // The session is taken out first: no lock is held across the DELETE.
        let session = self.session.lock().take();
        if let Some(s) = session {
            let mut req = self.agent.delete(&self.url).header("Mcp-Session-Id", &s);
            for (k, v) in &self.headers {
                req = req.header(k, v);
            }
            let _ = req.config().timeout_global(Some(Duration::from_secs(2))).build().call();
        }
    }

    /// One POST and all the messages that came back (none for a notification).
    fn exchange(&self, msg: &Value, timeout: Duration, with_session: bool) -> Result<Vec<Value>, RpcError> {
        let body = self.post(msg, timeout, with_session)?;
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        Reply { name: self.name.clone(), body, id: id.clone(), client_id: id, done: false }.collect()
    }

    /// One POST; the body is read by `Reply`.
    fn post(&self, msg: &Value, timeout: Duration, with_session: bool) -> Result<Body, RpcError> {
        let mut req = self
            .agent
            .post(&self.url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("Accept", "application/json, text/event-stream")
            .header("Content-Type", "application/json");
        let session = self.session.lock().clone();
        if let Some(s) = &session {
            req =
                req.header("Mcp-Session-Id", s).header("MCP-Protocol-Version", self.version.lock().as_str());
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let mut resp = req.send(msg.to_string()).map_err(|e| match e {
            ureq::Error::Timeout(_) => RpcError::new(
                jsonrpc::REQUEST_TIMEOUT,
                format!("request to {} timed out after {}s", self.name, timeout.as_secs_f64()),
            ),
            e => unreachable(&self.name, e),
        })?;
        if let Some(s) = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
            *self.session.lock() = Some(s.to_string());
        }
        let status = resp.status().as_u16();
        // The spec says 404 for a session the server no longer knows; some servers say 400.
        if (status == 404 || status == 400) && with_session && session.is_some() {
            return Err(RpcError::new(NOT_FOUND_SESSION, "upstream session not found"));
        }
        if status == 202 {
            return Ok(Body::Empty);
        }
        let sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        if sse {
            return Ok(Body::Events(Box::new(BufReader::new(resp.into_body().into_reader()))));
        }
        let text = resp.body_mut().read_to_string().map_err(|e| unreachable(&self.name, e))?;
        match serde_json::from_str::<Value>(&text) {
            Ok(v) if v.get("jsonrpc").is_some() => Ok(Body::One(Some(v))),
            _ if status >= 400 => Err(unreachable(
                &self.name,
                format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()),
            )),
            _ => Err(unreachable(&self.name, format!("unexpected answer (HTTP {status})"))),
        }
    }
}

enum Body {
    Empty,
    One(Option<Value>),
    Events(Box<dyn BufRead + Send>),
}

/// One request's answer from an upstream, message by message: notifications and requests the
/// upstream sends first, then the response (with the client's id put back).
pub struct Reply {
    name: String,
    body: Body,
    id: Value,
    client_id: Value,
    done: bool,
}

impl Reply {
    pub fn next_message(&mut self) -> Option<Result<Value, RpcError>> {
        if self.done {
            return None;
        }
        let msg = match &mut self.body {
            Body::Empty => None,
            Body::One(v) => v.take(),
            Body::Events(reader) => loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) => break None,
                    Ok(_) => {}
                    Err(e) => {
                        self.done = true;
                        return Some(Err(unreachable(&self.name, e)));
                    }
                }
                if let Some(v) = jsonrpc::sse_data(&line) {
                    break Some(v);
                }
            },
        };
        let Some(mut msg) = msg else {
            self.done = true;
            return match self.body {
                Body::Empty => None,
                _ => Some(Err(unreachable(&self.name, "the answer ended without a response"))),
            };
        };
        if msg.get("id") == Some(&self.id) && jsonrpc::kind(&msg) == jsonrpc::Kind::Response {
            msg["id"] = self.client_id.clone();
            self.done = true;
        }
        Some(Ok(msg))
    }

    /// Every message, the response last.
    pub fn collect(mut self) -> Result<Vec<Value>, RpcError> {
        let mut msgs = Vec::new();
        while let Some(m) = self.next_message() {
            msgs.push(m?);
        }
        Ok(msgs)
    }

    /// Whether the last message returned was the response.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// Internal: the upstream answered 404 for our session.
const NOT_FOUND_SESSION: i64 = -32099;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_upstreams_are_supported() {
        // A plain-TCP peer on the port: with TLS compiled in, the hub tries a TLS handshake and
        // fails on the peer's bytes; without it, ureq refuses the https URL outright.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let peer = std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let _ = std::io::Write::write_all(&mut s, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let u = Upstream::new("remote", &format!("https://127.0.0.1:{port}/mcp"), BTreeMap::new());
        let e = u.initialize(Duration::from_secs(2)).unwrap_err();
        let _ = peer.join();
        assert_eq!(e.code, jsonrpc::SERVER_UNAVAILABLE);
        // Without TLS support ureq answers "TLS required, but transport is unsecured".
        assert!(!e.message.contains("TLS required"), "{}", e.message);
        assert!(e.message.contains("corrupt message"), "a TLS handshake was tried: {}", e.message);
    }
}
