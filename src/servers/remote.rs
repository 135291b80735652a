//! A remote server's connection at launch: Streamable HTTP (`server/discover`, else
//! `initialize`), legacy HTTP+SSE, or, for a bare `url` (Cursor's and Windsurf's shape), the
//! first then the second, as clients try them. When neither answers, one line says what each
//! said: its status and the first line of its body.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::peer::ChildPeer;
use crate::config::Transport;
use crate::exchange::modern::Era;
use crate::transport::http::Upstream;

/// A remote server connected: its upstream, its handshake's result, its era.
pub(super) struct Connected {
    pub upstream: Upstream,
    pub init: Value,
    pub era: Era,
}

/// Connects to the server at `url` by `transport` (not `Stdio`) by `deadline`.
pub(super) fn connect(
    name: &str,
    transport: Transport,
    url: &str,
    headers: &BTreeMap<String, String>,
    peer: &dyn Fn() -> Arc<ChildPeer>,
    credentials: &dyn Fn(&Upstream),
    deadline: Instant,
) -> Result<Connected, String> {
    match transport {
        Transport::Sse => legacy(name, url, headers, peer, deadline),
        Transport::Url => {
            // Half the time for Streamable HTTP: the legacy transport gets the rest.
            let half = Instant::now() + deadline.saturating_duration_since(Instant::now()) / 2;
            let streamable = match streamable(name, url, headers, peer, credentials, half) {
                Ok(c) => return Ok(c),
                Err(e) => e,
            };
            legacy(name, url, headers, peer, deadline).map_err(|sse| {
                format!("neither Streamable HTTP nor legacy SSE answered at {url}: {streamable}; {sse}")
            })
        }
        _ => streamable(name, url, headers, peer, credentials, deadline),
    }
}

fn legacy(
    name: &str,
    url: &str,
    headers: &BTreeMap<String, String>,
    peer: &dyn Fn() -> Arc<ChildPeer>,
    deadline: Instant,
) -> Result<Connected, String> {
    let upstream = Upstream::legacy(name, url, headers.clone(), peer(), deadline).map_err(|e| e.message)?;
    let left = deadline.saturating_duration_since(Instant::now());
    // Dropped on failure, a legacy stream is closed and its reader joined.
    let init = upstream.initialize(left).map_err(|e| e.message)?;
    Ok(Connected { upstream, init, era: Era::Legacy })
}

fn streamable(
    name: &str,
    url: &str,
    headers: &BTreeMap<String, String>,
    peer: &dyn Fn() -> Arc<ChildPeer>,
    credentials: &dyn Fn(&Upstream),
    deadline: Instant,
) -> Result<Connected, String> {
    let upstream = Upstream::new(name, url, headers.clone(), Some(peer()));
    // A server behind OAuth: its bearer token, and a sign-in when it asks for one.
    credentials(&upstream);
    let left = deadline.saturating_duration_since(Instant::now());
    // Asked `server/discover` first (a modern server has no `initialize`; a legacy one answers
    // it with an error, which changes nothing). Half the time at most: a legacy server that
    // sits on it leaves the rest to `initialize`.
    if let Some(init) = upstream.discover(left / 2) {
        return Ok(Connected { upstream, init, era: Era::Modern });
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let init = upstream.initialize(left).map_err(|e| e.message)?;
    Ok(Connected { upstream, init, era: Era::Legacy })
}
