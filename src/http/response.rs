//! The request as handlers see it (`Req`: owned, body already read and capped) and what they
//! return (`Reply`), and how a reply goes on the wire (whole, or as a chunked stream). The one
//! place where an `Error` becomes an HTTP status and an error code.

use std::io::Write;

use serde::Serialize;
use serde_json::{Value, json};

use std::net::TcpStream;

use super::conn::Chunked;
use crate::error::Error;
use crate::later::Later;

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
    /// The request's id (`X-Request-Id`, sane or made by the hub): on its answer, its log line,
    /// the activity it causes and its calls to remote servers.
    pub id: String,
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

/// An answer: a complete body, a stream, or one to be computed later.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub stream: Option<StreamBody>,
    /// Computed later, off the worker (a call that may take long).
    pub later: Option<Later<Reply>>,
    /// The client's name when the handler knows it better than the headers do (an MCP
    /// session's `clientInfo.name`), for the request's log line.
    pub client: Option<String>,
    /// The route template that answered (set by the route table), for the metrics.
    pub route: Option<&'static str>,
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
                client: None,
                route: None,
            },
            Err(e) => Reply::error(500, "internal", &format!("cannot encode the answer: {e}")),
        }
    }

    pub fn ok(value: &Value) -> Reply {
        Reply::json(200, value)
    }

    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            content_type: "",
            headers: Vec::new(),
            body: Vec::new(),
            stream: None,
            later: None,
            client: None,
            route: None,
        }
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
            client: None,
            route: None,
        }
    }

    /// A reply computed by `f` on a thread of its own.
    pub fn later(f: impl FnOnce() -> Reply + Send + 'static) -> Reply {
        Reply::waiting(Later::new(f))
    }

    /// A reply computed later: when what it waits for comes, or on a thread of its own.
    pub fn waiting(later: Later<Reply>) -> Reply {
        Reply {
            status: 202,
            content_type: "",
            headers: Vec::new(),
            body: Vec::new(),
            stream: None,
            later: Some(later),
            client: None,
            route: None,
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
        Error::ReadOnly(_) => (409, "read_only"),
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

/// Seconds with three decimals, for uptimes.
pub(super) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------------------------
// On the wire

/// The status line and headers of a reply, appended to `head` (written in place: no string
/// per header). `length`: `Content-Length`, unless `chunked`.
fn head_into(
    head: &mut String,
    reply: &Reply,
    length: usize,
    origin: Option<&str>,
    chunked: bool,
    http10_keep: bool,
    close: bool,
) {
    use std::fmt::Write as _;
    // Writing to a String cannot fail.
    let _ = write!(head, "HTTP/1.1 {} {}\r\n", reply.status, super::conn::reason(reply.status));
    if !reply.content_type.is_empty() {
        let _ = write!(head, "Content-Type: {}\r\n", reply.content_type);
    }
    if chunked {
        head.push_str("Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n");
    } else if reply.status != 204 && reply.status >= 200 {
        let _ = write!(head, "Content-Length: {length}\r\n");
    }
    for (name, value) in &reply.headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    if let Some(o) = origin {
        let _ = write!(
            head,
            "Access-Control-Allow-Origin: {o}\r\nAccess-Control-Expose-Headers: {}\r\nVary: Origin\r\n",
            super::guard::CORS_EXPOSE
        );
    }
    if close {
        head.push_str("Connection: close\r\n");
    } else if http10_keep {
        head.push_str("Connection: keep-alive\r\n");
    }
    head.push_str("\r\n");
}

/// A whole reply as the bytes of one write (a HEAD request gets the head alone).
pub(super) fn whole(reply: Reply, origin: Option<&str>, method: &str, keep: bool, http10: bool) -> Vec<u8> {
    let mut head = String::with_capacity(256 + reply.body.len());
    head_into(&mut head, &reply, reply.body.len(), origin, false, http10 && keep, !keep);
    let mut bytes = head.into_bytes();
    if method != "HEAD" {
        bytes.extend_from_slice(&reply.body);
    }
    bytes
}

/// A streamed reply: the head, then each write of the body as a chunk sent at once, then the
/// last chunk. The body's writer sees an error once the client is gone (or stops reading for
/// longer than the write timeout), and the stream ends.
pub(super) fn write_stream(
    stream: &TcpStream,
    mut reply: Reply,
    origin: Option<&str>,
    keep: bool,
) -> std::io::Result<()> {
    let Some(body) = reply.stream.take() else { return Ok(()) };
    let mut out = stream;
    let mut head = String::with_capacity(256);
    head_into(&mut head, &reply, 0, origin, true, false, !keep);
    out.write_all(head.as_bytes())?;
    let mut w = Chunked(stream);
    let mut broken = false;
    let mut guard = WriteWatch { inner: &mut w, broken: &mut broken };
    body(&mut guard);
    if broken {
        return Err(std::io::ErrorKind::BrokenPipe.into());
    }
    out.write_all(b"0\r\n\r\n")
}

/// Remembers whether a stream's writes failed, so a broken connection is not reused.
struct WriteWatch<'a, W: Write> {
    inner: &'a mut W,
    broken: &'a mut bool,
}

impl<W: Write> Write for WriteWatch<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = self.inner.write(buf);
        *self.broken |= r.is_err();
        r
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.inner.flush();
        *self.broken |= r.is_err();
        r
    }
}

/// The line of a request that was answered: on the MCP endpoints it names the JSON-RPC method
/// and the client (`X-Client-Name`, else its `clientInfo.name`).
pub fn log_request(req: &Req, reply: &Reply, started: std::time::Instant) {
    if !log::log_enabled!(log::Level::Debug) {
        return;
    }
    let body: Option<serde_json::Value> =
        match req.method == "POST" && req.path.starts_with("/mcp") && req.path.matches('/').count() <= 2 {
            true => serde_json::from_slice(&req.body).ok(),
            false => None,
        };
    let rpc = match &body {
        Some(serde_json::Value::Array(_)) => "batch".to_string(),
        Some(b) => crate::jsonrpc::method(b).to_string(),
        None => String::new(),
    };
    let from_body = body.as_ref().and_then(|b| b.pointer("/params/clientInfo/name")).and_then(|n| n.as_str());
    let client = req.client_name().or(reply.client.as_deref()).or(from_body).unwrap_or("-");
    let rpc = if rpc.is_empty() { String::new() } else { format!(" rpc={rpc}") };
    log::debug!(
        "{} {} {} {:.3}ms client={client}{rpc} id={}",
        req.method,
        req.path,
        reply.status,
        started.elapsed().as_secs_f64() * 1000.0,
        req.id,
    );
}
