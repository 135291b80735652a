//! How a request reaches a server and its answer comes back: `stdio` (the bridge to a child's
//! pipes) and `http` (a remote server over Streamable HTTP or legacy SSE), each an
//! `exchange::Transport`. What both ask of the hub about what a server starts itself (its
//! requests, its notifications) is the `Peer`; a modern server's input requests go through
//! `inputs` on either.
//!
//! Layering: transport imports exchange (to implement its traits) and nothing above it
//! (servers, mcp, http, app).

pub mod http;
mod inputs;
mod peer;
pub mod stdio;

pub use peer::{Later, Peer};

/// Thread names are capped at 15 bytes by Linux; keep the server name's start.
pub(crate) fn short(name: &str) -> &str {
    let end = name.char_indices().nth(8).map_or(name.len(), |(i, _)| i);
    &name[..end]
}
