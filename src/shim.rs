//! `agenthub stdio [server]`: a stdio MCP server that forwards to a running hub's Streamable
//! HTTP endpoint, so clients that only launch stdio servers (Claude Desktop's config file) can
//! use the hub. Each line read is POSTed; JSON answers and SSE events are written back as lines.
//! Requests run on threads of their own so a long call never blocks the next line; a GET
//! stream carries the hub's own notifications. Stdin EOF ends the session.

use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::jsonrpc::{self, Kind};

pub struct Shim {
    endpoint: String,
    token: Option<String>,
    agent: ureq::Agent,
    session: Mutex<Option<String>>,
    version: Mutex<Option<String>>,
    out: Mutex<std::io::Stdout>,
}

/// The endpoint for `server` (all servers when None) on the hub at `base`.
pub fn endpoint(base: &str, server: Option<&str>) -> String {
    let base = base.trim_end_matches('/');
    match server {
        Some(s) => format!("{base}/mcp/{s}"),
        None => format!("{base}/mcp"),
    }
}

impl Shim {
    pub fn new(endpoint: String, token: Option<String>) -> Shim {
        // No overall deadline: answers may stream for as long as a tool runs.
        let agent = crate::http_agent(Duration::from_secs(5), None);
        Shim {
            endpoint,
            token,
            agent,
            session: Mutex::new(None),
            version: Mutex::new(None),
            out: Mutex::new(std::io::stdout()),
        }
    }

    /// The main loop: stdin lines until EOF.
    pub fn run(self: Arc<Self>) -> Result<()> {
        let stdin = std::io::stdin();
        let mut threads = Vec::new();
        for line in BufReader::new(stdin.lock()).lines() {
            let line = line.map_err(|e| Error::io("reading stdin", e))?;
            if line.trim().is_empty() {
                continue;
            }
            let msg: Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(e) => {
                    self.emit(&jsonrpc::error(
                        Value::Null,
                        jsonrpc::PARSE_ERROR,
                        &format!("Parse error: {e}"),
                    ));
                    continue;
                }
            };
            let first = self.session.lock().is_none();
            if jsonrpc::method(&msg) == "initialize" || first {
                // The handshake runs in order: later requests need its session.
                self.forward(&msg);
                if self.session.lock().is_some() && jsonrpc::method(&msg) == "initialize" {
                    let me = self.clone();
                    threads
                        .push(std::thread::Builder::new().name("shim-get".into()).spawn(move || me.listen()));
                }
                continue;
            }
            let me = self.clone();
            threads
                .push(std::thread::Builder::new().name("shim-post".into()).spawn(move || me.forward(&msg)));
            threads.retain(|t| t.as_ref().is_ok_and(|t| !t.is_finished()));
        }
        if let Some(id) = self.session.lock().clone() {
            let mut req = self.agent.delete(&self.endpoint).header("Mcp-Session-Id", &id);
            if let Some(t) = &self.token {
                req = req.header("Authorization", &format!("Bearer {t}"));
            }
            let _ = req.call();
        }
        Ok(())
    }

    fn emit(&self, msg: &Value) {
        let mut out = self.out.lock();
        let _ = writeln!(out, "{msg}");
        let _ = out.flush();
    }

    /// POSTs one message and writes back what comes.
    fn forward(&self, msg: &Value) {
        let id = msg.get("id").cloned();
        let mut req = self
            .agent
            .post(&self.endpoint)
            .header("Accept", "application/json, text/event-stream")
            .header("Content-Type", "application/json");
        if let Some(s) = self.session.lock().clone() {
            req = req.header("Mcp-Session-Id", &s);
        }
        if let Some(v) = self.version.lock().clone() {
            req = req.header("MCP-Protocol-Version", &v);
        }
        if let Some(t) = &self.token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let fail = |m: String| {
            if let Some(id) = &id {
                if jsonrpc::kind(msg) == Kind::Request {
                    self.emit(&jsonrpc::error(id.clone(), jsonrpc::SERVER_UNAVAILABLE, &m));
                }
            }
            log::warn!("{m}");
        };
        let mut resp = match req.send(msg.to_string()) {
            Ok(r) => r,
            Err(e) => return fail(format!("cannot reach the hub at {}: {e}", self.endpoint)),
        };
        if let Some(s) = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
            *self.session.lock() = Some(s.to_string());
        }
        let status = resp.status().as_u16();
        if status == 202 {
            return;
        }
        let is_sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        if is_sse {
            let reader = BufReader::new(resp.into_body().into_reader());
            self.relay_events(reader);
            return;
        }
        let body = match resp.body_mut().read_to_string() {
            Ok(b) => b,
            Err(e) => return fail(format!("reading the hub's answer: {e}")),
        };
        match serde_json::from_str::<Value>(&body) {
            Ok(Value::Array(items)) => items.iter().for_each(|m| self.emit(m)),
            Ok(mut v) => {
                if jsonrpc::method(msg) == "initialize" {
                    if let Some(pv) = v.pointer("/result/protocolVersion").and_then(Value::as_str) {
                        *self.version.lock() = Some(pv.to_string());
                    }
                }
                // Transport faults carry `id: null`: give the client its own id back.
                if v.get("id").is_some_and(Value::is_null) {
                    if let Some(id) = &id {
                        v["id"] = id.clone();
                    }
                }
                self.emit(&v);
            }
            Err(_) => fail(format!("the hub answered {status}: {body:.200}")),
        }
    }

    fn relay_events(&self, reader: impl BufRead) {
        for line in reader.lines().map_while(std::result::Result::ok) {
            if let Some(v) = jsonrpc::sse_data(&line) {
                self.emit(&v);
            }
        }
    }

    /// The session's GET stream: notifications and requests the hub sends on its own.
    fn listen(&self) {
        let Some(session) = self.session.lock().clone() else { return };
        let mut req = self
            .agent
            .get(&self.endpoint)
            .header("Accept", "text/event-stream")
            .header("Mcp-Session-Id", &session);
        if let Some(t) = &self.token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        match req.call() {
            Ok(resp) if resp.status().as_u16() == 200 => {
                self.relay_events(BufReader::new(resp.into_body().into_reader()));
            }
            Ok(resp) => log::debug!("no GET stream: {}", resp.status()),
            Err(e) => log::debug!("no GET stream: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(endpoint("http://127.0.0.1:9090/", None), "http://127.0.0.1:9090/mcp");
        assert_eq!(endpoint("http://h:1", Some("mem")), "http://h:1/mcp/mem");
    }
}
