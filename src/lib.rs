//! AgentHub's building blocks as a library: the `agenthub` binary (`main.rs`) is a thin command
//! line over them. The modules are private; what the binary and the tests use is the short list
//! re-exported below, so anything else unused is dead code the compiler points out.
#![deny(unsafe_code)]

mod activity;
mod api;
mod app;
mod audit;
mod cache;
mod check;
mod clients;
mod config;
mod connect;
mod control;
mod enhance;
mod error;
mod exchange;
mod front;
mod jsonrpc;
mod kube;
mod mcp;
mod metrics;
mod oauth;
mod pipelines;
mod queue;
mod reload;
mod request_id;
mod resilience;
mod search;
mod servers;
mod service;
mod shim;
mod sys;
mod text;
mod time;
mod transport;

// What the binary uses.
pub use api::Api;
pub use app::App;
pub use check::{command as check_command, report as check_report};
pub use clients::{Hub as ClientHub, RECIPES, Recipe, find as find_client, markdown as clients_markdown};
pub use config::{SETTINGS, Settings, Transport, load as load_config};
pub use connect::{Outcome as ConnectOutcome, connected, expand as expand_path, write as connect_write};
pub use control::{command as server_command, healthcheck};
pub use error::{Error, Result};
pub use front::{Server as Front, start as start_front};
pub use kube::command as kube_command;
pub use reload::{Baseline as ConfigBaseline, Watcher as ConfigWatcher};
pub use service::{command as service_command, in_build_dir, own_binary};
pub use shim::{Options as ShimOptions, Shim, endpoint as shim_endpoint, wait as shim_wait};
pub use sys::{raise_fd_limit, set_child_subreaper};

// What the tests use besides: the bridge and a child process without the hub around them,
// and the Ollama client against the fake Ollama.
pub use config::ServerConfig;
pub use enhance::ollama::{Client as OllamaClient, Failure as OllamaFailure};
pub use jsonrpc::RpcError;
pub use servers::process::Process;
pub use service::{Spec as ServiceSpec, launchd_plist, systemd_unit};
pub use transport::Peer;
pub use transport::stdio::{Bridge, StderrRing};

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
