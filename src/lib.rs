//! AgentHub's building blocks as a library: the `agenthub` binary (`main.rs`) is a thin command
//! line over them, and the tests and benchmarks reach them directly.

pub mod cache;
pub mod config;
pub mod dashboard;
pub mod enhance;
pub mod error;
pub mod http;
pub mod jsonrpc;
pub mod mcp;
pub mod resilience;
pub mod servers;
pub mod shim;

/// The version every surface reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
