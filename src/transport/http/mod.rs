//! A remote MCP server over HTTP. `endpoint`: the one client of Streamable HTTP (the shim's
//! too); `upstream`: a remote server as the hub uses it, over Streamable HTTP or legacy SSE
//! (`legacy_sse`); `answers`: one request's answer as the hub reads it; `remote_modern`: a
//! 2026-07-28 remote; `sse`: event streams; `carrier`: the upstream as an
//! `exchange::Transport`; `param_headers`: SEP-2243 `Mcp-Param-*` headers, and the tools
//! refused for invalid declarations; `own_requests`: a server's requests on a POST's stream.
//!
//! Files depend on each other one way: sse ← endpoint ← answers ← legacy_sse ← upstream ←
//! remote_modern ← carrier.

mod answers;
mod carrier;
mod endpoint;
mod legacy_sse;
mod own_requests;
mod param_headers;
mod remote_modern;
mod sse;
mod upstream;

pub use endpoint::{Answer, Credentials, Endpoint};
pub use upstream::Upstream;
