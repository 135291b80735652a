//! One HTTP/1.1 connection: reading a request's head within limits and a deadline, its body
//! (`Content-Length` or chunked) up to the cap, and writing answers — whole, or as a chunked
//! stream flushed write by write. Nothing here waits without a deadline: every read has the
//! socket's read timeout set to what is left of its budget, every write the write timeout.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest request line (method, target, version).
pub const MAX_REQUEST_LINE: usize = 8 << 10;
/// The longest header line.
pub const MAX_HEADER_LINE: usize = 8 << 10;
/// All header lines together.
pub const MAX_HEAD: usize = 64 << 10;
/// Most header lines in one request.
pub const MAX_HEADERS: usize = 100;
/// After a refusal, how much of an unread body is discarded (and for how long) before the
/// connection closes, so the client reads the answer instead of a reset.
const LINGER_BYTES: usize = 256 << 10;
const LINGER: Duration = Duration::from_secs(1);

/// A request's head as read.
#[derive(Debug)]
pub struct Head {
    pub method: String,
    pub target: String,
    /// HTTP/1.0 rather than 1.1.
    pub http10: bool,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Whether the client wants the connection kept after this request.
    pub fn keep_alive(&self) -> bool {
        let connection = self.header("connection").map(str::to_ascii_lowercase);
        let says = |word: &str| connection.as_deref().is_some_and(|c| c.split(',').any(|t| t.trim() == word));
        if self.http10 { says("keep-alive") } else { !says("close") }
    }
}

/// How a request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(usize),
    Chunked,
}

/// Why no request could be read.
#[derive(Debug)]
pub enum ReadError {
    /// The client closed between requests: close quietly.
    Closed,
    /// No request began within the idle time.
    Idle,
    /// A malformed or oversized request: answer with this status and close.
    Refuse(u16, &'static str),
}

/// One client connection. The stream is shared so that shutdown can end it from outside.
pub struct Conn {
    stream: Arc<TcpStream>,
    /// Bytes read past the last request's end.
    buf: Vec<u8>,
    /// The read timeout the socket has now (set again only when a deadline needs less).
    armed: Option<Duration>,
}

impl Conn {
    pub fn new(stream: Arc<TcpStream>, write_timeout: Duration) -> Conn {
        let _ = stream.set_write_timeout(Some(write_timeout));
        Conn { stream, buf: Vec::with_capacity(1024), armed: None }
    }

    pub fn stream(&self) -> &Arc<TcpStream> {
        &self.stream
    }

    /// Reads into `buf`, waiting at most until `deadline`; Ok(0) at end of stream.
    fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        // One setsockopt per change of budget, not per read: a read may overrun its deadline by
        // at most the slack, and the loop checks the deadline between reads.
        let slack = Duration::from_millis(500);
        if self.armed.is_none_or(|a| left + slack < a || left > a + slack) {
            self.stream.set_read_timeout(Some(left))?;
            self.armed = Some(left);
        }
        let mut chunk = [0u8; 8192];
        let n = (&*self.stream).read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// The next request's head. Waits up to `idle` for its first byte (keep-alive), then up
    /// to `budget` for the rest of it.
    pub fn read_head(&mut self, idle: Duration, budget: Duration) -> Result<Head, ReadError> {
        // Blank lines before a request are allowed (RFC 9112 §2.2).
        let mut deadline = Instant::now() + idle;
        let mut started = false;
        loop {
            while self.buf.first().is_some_and(|b| *b == b'\r' || *b == b'\n') {
                self.buf.remove(0);
            }
            if !self.buf.is_empty() && !started {
                started = true;
                deadline = Instant::now() + budget;
            }
            if let Some(end) = head_end(&self.buf) {
                let head: Vec<u8> = self.buf.drain(..end).collect();
                return parse_head(&head);
            }
            check_sizes(&self.buf)?;
            match self.fill(deadline) {
                Ok(0) if !started => return Err(ReadError::Closed),
                Ok(0) => return Err(ReadError::Refuse(400, "the request ended before its head did")),
                Ok(_) => {}
                Err(_) if !started => return Err(ReadError::Idle),
                Err(_) => return Err(ReadError::Refuse(408, "the request head did not arrive in time")),
            }
        }
    }

    /// Reads a body of at most `cap` bytes by `deadline`. `Err(413)` past the cap (a chunked
    /// body has no declared size), `Err(408)` when it does not arrive in time.
    pub fn read_body(
        &mut self,
        framing: Framing,
        cap: usize,
        deadline: Instant,
    ) -> Result<Vec<u8>, ReadError> {
        let late = || ReadError::Refuse(408, "the request body did not arrive in time");
        let cut = || ReadError::Refuse(400, "the request body ended early");
        match framing {
            Framing::Length(n) => {
                while self.buf.len() < n {
                    match self.fill(deadline) {
                        Ok(0) => return Err(cut()),
                        Ok(_) => {}
                        Err(_) => return Err(late()),
                    }
                }
                Ok(self.buf.drain(..n).collect())
            }
            Framing::Chunked => {
                let mut body = Vec::new();
                loop {
                    let line = self.line(deadline, 1024)?;
                    let size = line.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(size, 16)
                        .map_err(|_| ReadError::Refuse(400, "a chunk size is not hexadecimal"))?;
                    if size == 0 {
                        // Trailers, up to the blank line.
                        while !self.line(deadline, MAX_HEADER_LINE)?.is_empty() {}
                        return Ok(body);
                    }
                    // Subtracted, not added: a forged size near usize::MAX must not overflow.
                    if size > cap.saturating_sub(body.len()) {
                        return Err(ReadError::Refuse(413, "the request body is too large"));
                    }
                    while self.buf.len() < size + 2 {
                        match self.fill(deadline) {
                            Ok(0) => return Err(cut()),
                            Ok(_) => {}
                            Err(_) => return Err(late()),
                        }
                    }
                    body.extend(self.buf.drain(..size));
                    self.buf.drain(..2);
                }
            }
        }
    }

    /// One CRLF-terminated line (without it), at most `max` bytes.
    fn line(&mut self, deadline: Instant, max: usize) -> Result<String, ReadError> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let raw: Vec<u8> = self.buf.drain(..=i).collect();
                let text = String::from_utf8_lossy(&raw);
                return Ok(text.trim_end_matches(['\r', '\n']).to_string());
            }
            if self.buf.len() > max {
                return Err(ReadError::Refuse(400, "a chunk line is too long"));
            }
            match self.fill(deadline) {
                Ok(0) => return Err(ReadError::Refuse(400, "the request body ended early")),
                Ok(_) => {}
                Err(_) => return Err(ReadError::Refuse(408, "the request body did not arrive in time")),
            }
        }
    }

    /// Reads what the client sends and drops it, waiting at most until `deadline`: the bytes
    /// read, 0 at end of stream.
    pub fn discard(&mut self, deadline: Instant) -> io::Result<usize> {
        let n = self.fill(deadline)?;
        self.buf.clear();
        Ok(n)
    }

    /// Writes bytes whole, within the write timeout.
    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        (&*self.stream).write_all(bytes)
    }

    /// Ends the connection after a refusal: no more writes, a short and bounded discard of
    /// what the client is still sending (so it reads the answer rather than a reset), close.
    pub fn linger_close(self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        let deadline = Instant::now() + LINGER;
        let mut discarded = 0;
        let mut chunk = [0u8; 8192];
        while discarded < LINGER_BYTES {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match (&*self.stream).read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    }
}

/// HTTP/1.1 chunked framing over the socket: every write is one chunk, sent at once.
pub struct Chunked<'a>(pub &'a TcpStream);

impl Write for Chunked<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut framed = Vec::with_capacity(buf.len() + 12);
        framed.extend_from_slice(format!("{:x}\r\n", buf.len()).as_bytes());
        framed.extend_from_slice(buf);
        framed.extend_from_slice(b"\r\n");
        (&*self.0).write_all(&framed)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where the head ends (past its blank line), if it has.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(j) = buf[i..].iter().position(|b| *b == b'\n') {
        let at = i + j;
        // "\n\n" or "\n\r\n" ends the head.
        if buf.get(at + 1) == Some(&b'\n') {
            return Some(at + 2);
        }
        if buf.get(at + 1) == Some(&b'\r') && buf.get(at + 2) == Some(&b'\n') {
            return Some(at + 3);
        }
        i = at + 1;
    }
    None
}

/// Refuses a head that is already too large while it is still arriving.
fn check_sizes(buf: &[u8]) -> Result<(), ReadError> {
    let mut lines = buf.split(|b| *b == b'\n');
    let first = lines.next().unwrap_or_default();
    if first.len() > MAX_REQUEST_LINE {
        return Err(ReadError::Refuse(414, "the request line is too long"));
    }
    let mut count = 0;
    for line in lines.filter(|l| !l.is_empty() && *l != b"\r") {
        count += 1;
        if line.len() > MAX_HEADER_LINE {
            return Err(ReadError::Refuse(431, "a request header is too large"));
        }
    }
    if count > MAX_HEADERS {
        return Err(ReadError::Refuse(431, "too many request headers"));
    }
    if buf.len() > MAX_REQUEST_LINE + MAX_HEAD {
        return Err(ReadError::Refuse(431, "the request headers are too large"));
    }
    Ok(())
}

fn parse_head(raw: &[u8]) -> Result<Head, ReadError> {
    check_sizes(raw)?;
    let bad = || ReadError::Refuse(400, "malformed request head");
    let text = std::str::from_utf8(raw).map_err(|_| bad())?;
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let request_line = lines.next().ok_or_else(bad)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        v if v.starts_with("HTTP/") => {
            return Err(ReadError::Refuse(505, "only HTTP/1.1 and 1.0 are served"));
        }
        _ => return Err(bad()),
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) || !target.starts_with('/') {
        return Err(bad());
    }
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or_else(bad)?;
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(bad());
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Head { method: method.to_ascii_uppercase(), target: target.to_string(), http10, headers })
}

/// How the body of a request with this head is framed, or why it cannot be read.
pub fn framing(head: &Head) -> Result<Framing, ReadError> {
    let te = head.header("transfer-encoding");
    let lengths: Vec<&str> =
        head.headers.iter().filter(|(n, _)| n == "content-length").map(|(_, v)| v.as_str()).collect();
    match (te, lengths.as_slice()) {
        // Both at once is how requests are smuggled past proxies: refused.
        (Some(_), [_, ..]) => Err(ReadError::Refuse(400, "both Transfer-Encoding and Content-Length")),
        (Some(te), []) if te.eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked),
        (Some(_), []) => Err(ReadError::Refuse(501, "only chunked transfer coding is understood")),
        (None, []) => Ok(Framing::Length(0)),
        (None, [first, rest @ ..]) => {
            if rest.iter().any(|l| l != first) {
                return Err(ReadError::Refuse(400, "conflicting Content-Length headers"));
            }
            first
                .parse()
                .map(Framing::Length)
                .map_err(|_| ReadError::Refuse(400, "Content-Length is not a number"))
        }
    }
}

/// The reason phrase of the statuses the hub sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Head, ReadError> {
        parse_head(text.as_bytes())
    }

    fn refused(r: Result<Head, ReadError>) -> u16 {
        match r {
            Err(ReadError::Refuse(s, _)) => s,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn heads() {
        let h = head("POST /mcp/x?a=1 HTTP/1.1\r\nHost: h\r\nX-Client-Name:  vs code \r\n\r\n").unwrap();
        assert_eq!((h.method.as_str(), h.target.as_str(), h.http10), ("POST", "/mcp/x?a=1", false));
        assert_eq!(h.header("x-client-name"), Some("vs code"));
        assert!(h.keep_alive());
        assert!(!head("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive());
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap().keep_alive());
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap().keep_alive());
        assert!(head("GET / HTTP/1.1\n\n").is_ok(), "bare newlines are accepted");
        for bad in [
            "GET /\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
            "GET x HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nno colon\r\n\r\n",
        ] {
            assert_eq!(refused(head(bad)), 400, "{bad:?}");
        }
        assert_eq!(refused(head("GET / HTTP/2.0\r\n\r\n")), 505);
    }

    #[test]
    fn limits() {
        let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_REQUEST_LINE));
        assert_eq!(refused(head(&long_target)), 414);
        let long_header = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEADER_LINE));
        assert_eq!(refused(head(&long_header)), 431);
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X: 1\r\n".repeat(MAX_HEADERS + 1));
        assert_eq!(refused(head(&many)), 431);
        let fine = format!("GET / HTTP/1.1\r\n{}\r\n", "X: 1\r\n".repeat(MAX_HEADERS - 1));
        assert!(head(&fine).is_ok());
    }

    #[test]
    fn body_framing() {
        fn check(headers: &str, expected: Result<Framing, u16>) {
            let h = head(&format!("POST / HTTP/1.1\r\n{headers}\r\n")).unwrap();
            let got = framing(&h).map_err(|e| match e {
                ReadError::Refuse(s, _) => s,
                ReadError::Closed | ReadError::Idle => 0,
            });
            assert_eq!(got, expected, "{headers:?}");
        }
        check("", Ok(Framing::Length(0)));
        check("Content-Length: 12\r\n", Ok(Framing::Length(12)));
        check("Content-Length: 12\r\nContent-Length: 12\r\n", Ok(Framing::Length(12)));
        check("Content-Length: 12\r\nContent-Length: 13\r\n", Err(400));
        check("Content-Length: -1\r\n", Err(400));
        check("Content-Length: 1000000000000000000000\r\n", Err(400));
        check("Transfer-Encoding: chunked\r\n", Ok(Framing::Chunked));
        check("Transfer-Encoding: gzip\r\n", Err(501));
        check("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", Err(400));
    }

    #[test]
    fn the_head_ends_at_the_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nbody"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
    }
}
