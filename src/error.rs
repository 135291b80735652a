//! The crate's one error type. Every fallible path returns `Result<T>`; the HTTP layer alone maps
//! a variant to a status code and a snake_case error code (`http::response`).

use std::fmt;
use std::io;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug)]
pub enum Error {
    /// A configuration file, flag or environment variable is invalid; the message names which.
    Config(String),
    /// The caller sent something the hub cannot act on.
    BadRequest(String),
    /// A request body is not valid JSON (or not the JSON shape expected).
    InvalidJson(String),
    /// The named thing does not exist.
    NotFound(String),
    /// The request clashes with the current state (a name already taken).
    Conflict(String),
    /// The thing addressed comes from a file the hub never rewrites (an imported server).
    ReadOnly(String),
    /// A request body or prompt exceeds its cap.
    PayloadTooLarge(String),
    /// The server addressed is not running (the message names its status).
    Unavailable(String),
    /// A circuit breaker is open; calls fail fast until it recovers.
    CircuitOpen(String),
    /// A cap on work at once is reached (pipeline runs, generations); the message names the cap.
    /// The caller may try again once some of that work has ended.
    TooManyRequests(String),
    /// A backend (MCP server, Ollama, npm) answered with an error.
    Upstream(String),
    /// A backend did not answer within its deadline.
    Timeout(String),
    /// An I/O operation failed; `context` says what the hub was doing.
    Io { context: String, source: io::Error },
    /// A broken invariant inside the hub.
    Internal(String),
}

impl Error {
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m)
            | Error::BadRequest(m)
            | Error::InvalidJson(m)
            | Error::NotFound(m)
            | Error::Conflict(m)
            | Error::ReadOnly(m)
            | Error::PayloadTooLarge(m)
            | Error::Unavailable(m)
            | Error::CircuitOpen(m)
            | Error::TooManyRequests(m)
            | Error::Upstream(m)
            | Error::Timeout(m)
            | Error::Internal(m) => f.write_str(m),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
