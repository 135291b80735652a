//! The request as a service sees it (`Req`: owned, body already read and capped) and what it
//! answers (`Reply`), and how a reply goes on the wire (whole, or as a chunked stream).

use std::io::Write;

use serde::Serialize;
use serde_json::{Value, json};

use std::net::TcpStream;

use super::Responder;
use super::conn::Chunked;

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
    pub fn json(&self) -> Result<Value, String> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| format!("request body is not valid JSON: {e}"))
    }
}

/// Writes a streamed body (an SSE stream) on a thread of its own; each write is sent as a chunk
/// and a flush pushes it out at once.
pub type StreamBody = Box<dyn FnOnce(&mut dyn Write) + Send>;

/// What a service does with a request it answers later: it is handed the request's
/// `Responder` on the worker, and must not block there.
pub type Respond = Box<dyn FnOnce(Responder) + Send>;

/// An answer: a complete body, a stream, or one given later through the `Responder`.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub stream: Option<StreamBody>,
    /// The answer comes later, through the `Responder` this is given.
    pub respond: Option<Respond>,
    /// The service's notes for its own accounting (the front only carries them): the client's
    /// name when the service knows it better than the headers do, and the route that answered.
    pub client: Option<String>,
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
                respond: None,
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
            respond: None,
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
            respond: None,
            client: None,
            route: None,
        }
    }

    /// A reply given later: `f` is handed the request's `Responder` on the worker, where it
    /// must not block (it parks the answer with what it waits for, or `Responder::spawn`s).
    pub fn respond(f: impl FnOnce(Responder) + Send + 'static) -> Reply {
        Reply { respond: Some(Box::new(f)), ..Reply::empty(202) }
    }

    /// A reply worked out by `f` on a thread of its own (it may block).
    pub fn spawn(f: impl FnOnce() -> Reply + Send + 'static) -> Reply {
        Reply::respond(move |res| res.spawn(f))
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

// ---------------------------------------------------------------------------------------------
// On the wire

/// The CORS headers an answer carries for an admitted cross-origin request: the origin, and the
/// response headers its script may read.
#[derive(Clone, Copy)]
pub struct Cors<'a> {
    pub origin: &'a str,
    pub expose: &'static str,
}

/// The status line and headers of a reply, appended to `head` (written in place: no string
/// per header). `length`: `Content-Length`, unless `chunked`.
fn head_into(
    head: &mut String,
    reply: &Reply,
    length: usize,
    cors: Option<Cors>,
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
    if let Some(Cors { origin, expose }) = cors {
        let _ = write!(
            head,
            "Access-Control-Allow-Origin: {origin}\r\nAccess-Control-Expose-Headers: {expose}\r\nVary: Origin\r\n"
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
pub(super) fn whole(reply: Reply, cors: Option<Cors>, method: &str, keep: bool, http10: bool) -> Vec<u8> {
    let mut head = String::with_capacity(256 + reply.body.len());
    head_into(&mut head, &reply, reply.body.len(), cors, false, http10 && keep, !keep);
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
    cors: Option<Cors>,
    keep: bool,
) -> std::io::Result<()> {
    let Some(body) = reply.stream.take() else { return Ok(()) };
    let mut out = stream;
    let mut head = String::with_capacity(256);
    head_into(&mut head, &reply, 0, cors, true, false, !keep);
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
