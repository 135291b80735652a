//! `agenthub stdio [server]`: a stdio MCP server that forwards to a running hub's Streamable
//! HTTP endpoint, so clients that only launch stdio servers (Claude Desktop's config file) can
//! use the hub. Each line read is POSTed through the hub's one Streamable HTTP client
//! (`servers::upstream::Endpoint`); JSON answers and SSE events are written back as lines.
//! Requests run on threads of their own so a long call never blocks the next line; a GET
//! stream carries the hub's own notifications. Stdin EOF ends the session.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::jsonrpc::{self, Kind};
use crate::servers::upstream::Endpoint;

pub struct Shim {
    hub: Endpoint,
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
        let mut headers = BTreeMap::new();
        if let Some(t) = token {
            headers.insert("Authorization".to_string(), format!("Bearer {t}"));
        }
        let name = format!("the hub at {endpoint}");
        Shim {
            hub: Endpoint::new(&name, &endpoint, headers, Duration::from_secs(5)),
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
            let initialize = jsonrpc::method(&msg) == "initialize";
            if initialize || !self.hub.has_session() {
                // The handshake runs in order: later requests need its session.
                self.forward(&msg);
                if initialize && self.hub.has_session() {
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
        self.hub.close();
        Ok(())
    }

    fn emit(&self, msg: &Value) {
        let mut out = self.out.lock();
        let _ = writeln!(out, "{msg}");
        let _ = out.flush();
    }

    /// POSTs one message and writes back what comes.
    fn forward(&self, msg: &Value) {
        let id = msg.get("id").cloned().filter(|_| jsonrpc::kind(msg) == Kind::Request);
        let fail = |m: &str| {
            if let Some(id) = &id {
                self.emit(&jsonrpc::error(id.clone(), jsonrpc::SERVER_UNAVAILABLE, m));
            }
            log::warn!("{m}");
        };
        let mut answer = match self.hub.post(msg, None) {
            Ok(a) => a,
            Err(e) => return fail(&e.message),
        };
        while let Some(next) = answer.body.next_message() {
            let mut v = match next {
                Ok(v) => v,
                Err(e) => return fail(&format!("reading the hub's answer: {e}")),
            };
            match v {
                Value::Array(items) => items.iter().for_each(|m| self.emit(m)),
                _ => {
                    if jsonrpc::method(msg) == "initialize" {
                        if let Some(pv) = v.pointer("/result/protocolVersion").and_then(Value::as_str) {
                            self.hub.set_version(pv);
                        }
                    }
                    // Transport faults carry `id: null`: give the client its own id back.
                    if let (Some(id), true) = (&id, v.get("id").is_some_and(Value::is_null)) {
                        v["id"] = id.clone();
                    }
                    self.emit(&v);
                }
            }
        }
    }

    /// The session's GET stream: notifications and requests the hub sends on its own.
    fn listen(&self) {
        let Some(mut body) = self.hub.listen() else { return };
        while let Some(Ok(v)) = body.next_message() {
            self.emit(&v);
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
