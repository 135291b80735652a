//! The request as handlers see it (`Req`: owned, body already read and capped) and what they
//! return (`Reply`). The one place where an `Error` becomes an HTTP status and an error code.

use serde::Serialize;
use serde_json::{Value, json};

use crate::error::Error;

/// An incoming request with its body read.
#[derive(Debug, Default)]
pub struct Req {
    pub method: String,
    /// Path without the query string, percent-decoding not applied.
    pub path: String,
    pub query: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The client name for rules and logs: `X-Client-Name`, if any.
    pub fn client_name(&self) -> Option<&str> {
        self.header("x-client-name").map(str::trim).filter(|s| !s.is_empty())
    }

    /// The body as JSON; an empty body is `null`. Errors say where the JSON broke.
    pub fn json(&self) -> Result<Value, Error> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::InvalidJson(format!("request body is not valid JSON: {e}")))
    }
}

/// Writes a streamed body (an SSE stream) on a thread of its own; each write is sent as a chunk
/// and a flush pushes it out at once.
pub type StreamBody = crate::mcp::StreamBody;

/// Computes the reply on a thread of its own (a call that may take long), so it never holds a
/// worker.
pub type Later = Box<dyn FnOnce() -> Reply + Send>;

/// An answer: a complete body, a stream, or one to be computed later.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub stream: Option<StreamBody>,
    pub later: Option<Later>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("streamed", &self.stream.is_some())
            .finish()
    }
}

impl Reply {
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Reply {
        match serde_json::to_vec(value) {
            Ok(body) => Reply {
                status,
                content_type: "application/json",
                headers: Vec::new(),
                body,
                stream: None,
                later: None,
            },
            Err(e) => Reply::error(500, "internal", &format!("cannot encode the answer: {e}")),
        }
    }

    pub fn ok(value: &Value) -> Reply {
        Reply::json(200, value)
    }

    pub fn empty(status: u16) -> Reply {
        Reply { status, content_type: "", headers: Vec::new(), body: Vec::new(), stream: None, later: None }
    }

    /// A `text/event-stream` answer written by `f`.
    pub fn event_stream(f: StreamBody) -> Reply {
        Reply {
            status: 200,
            content_type: "text/event-stream",
            headers: Vec::new(),
            body: Vec::new(),
            stream: Some(f),
            later: None,
        }
    }

    /// A reply computed by `f` on a thread of its own.
    pub fn later(f: Later) -> Reply {
        Reply {
            status: 202,
            content_type: "",
            headers: Vec::new(),
            body: Vec::new(),
            stream: None,
            later: Some(f),
        }
    }

    /// `{"error":{"code","message"}}`.
    pub fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply::json(status, &json!({"error": {"code": code, "message": message}}))
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

/// Status and snake_case code of each error kind.
pub fn status_of(e: &Error) -> (u16, &'static str) {
    match e {
        Error::Config(_) | Error::BadRequest(_) => (400, "bad_request"),
        Error::InvalidJson(_) => (400, "invalid_json"),
        Error::NotFound(_) => (404, "not_found"),
        Error::Conflict(_) => (409, "conflict"),
        Error::PayloadTooLarge(_) => (413, "payload_too_large"),
        Error::Unavailable(_) => (503, "server_unavailable"),
        Error::CircuitOpen(_) => (503, "circuit_open"),
        Error::Upstream(_) => (502, "upstream_error"),
        Error::Timeout(_) => (504, "timeout"),
        Error::Io { .. } | Error::Internal(_) => (500, "internal"),
    }
}

impl From<Error> for Reply {
    fn from(e: Error) -> Reply {
        let (status, code) = status_of(&e);
        if status >= 500 {
            log::warn!("{e}");
        }
        Reply::error(status, code, &e.to_string())
    }
}
