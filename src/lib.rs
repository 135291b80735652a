//! AgentHub's building blocks as a library: the `agenthub` binary (`main.rs`) is a thin command
//! line over them, and the tests and benchmarks reach them directly.
#![deny(unsafe_code)]

pub mod cache;
pub mod config;
pub mod dashboard;
pub mod enhance;
pub mod error;
pub mod http;
pub mod jsonrpc;
pub mod mcp;
pub mod queue;
pub mod resilience;
pub mod servers;
pub mod shim;
mod sys;

pub use sys::raise_fd_limit;

/// The version every surface reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The hub's outgoing HTTP client settings (Ollama, remote MCP servers, the stdio shim):
/// explicit deadlines (ureq has none by default), error statuses returned as answers so their
/// bodies can be read, and no proxy from the environment, which would capture calls to
/// 127.0.0.1.
pub fn http_agent(connect: std::time::Duration, global: Option<std::time::Duration>) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(connect))
        .timeout_global(global)
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into()
}
