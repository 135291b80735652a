//! How a request reaches a server and its answer comes back: `stdio` (the bridge to a child's
//! pipes) and `http` (a remote server over Streamable HTTP or legacy SSE).

pub mod http;
pub mod stdio;

/// Thread names are capped at 15 bytes by Linux; keep the server name's start.
pub(crate) fn short(name: &str) -> &str {
    let end = name.char_indices().nth(8).map_or(name.len(), |(i, _)| i);
    &name[..end]
}
