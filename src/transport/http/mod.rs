//! A remote MCP server over HTTP: `upstream` (Streamable HTTP, and the one `Upstream` type),
//! `legacy_sse` (the 2024-11-05 HTTP+SSE transport), `answers` (one request's answer as the
//! hub reads it), `remote_modern` (a 2026-07-28 remote), `sse` (event streams).

mod answers;
mod legacy_sse;
mod remote_modern;
mod sse;
pub mod upstream;
