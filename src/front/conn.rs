//! One HTTP/1.1 connection: reading a request's head within limits and a deadline, its body
//! (`Content-Length` or chunked) up to the cap and within the bodies' budget, and writing
//! answers — whole, or as a chunked stream flushed write by write. Nothing here waits without a
//! deadline: every read has the socket's read timeout set to what is left of its budget, every
//! write the write timeout. No byte is moved more than a bounded number of times: what is read
//! is taken from a cursor, and a body is read into its own buffer.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::budget::{self, Bodies, Hold};
use super::head::{self, Framing, Head, MAX_BLANK, MAX_HEADER_LINE, MAX_HEADERS, ReadError, Scan};

/// After a refusal, how much of an unread body is discarded (and for how long) before the
/// connection closes, so the client reads the answer instead of a reset.
const LINGER_BYTES: usize = 256 << 10;
const LINGER: Duration = Duration::from_secs(1);
/// The longest chunk-size line (size and extensions).
const MAX_CHUNK_LINE: usize = 1024;
/// A connection's buffer to begin with (it doubles while a head needs more, within the head's
/// limits).
const READ: usize = 8 << 10;
/// One read of a body from the socket, at most.
const BODY_READ: usize = 64 << 10;

/// One client connection. The stream is shared so that shutdown can end it from outside.
pub struct Conn {
    stream: Arc<TcpStream>,
    /// Space for what is read (zeroed once, never per read): `buf[at..end]` is read and not
    /// used yet (the rest of a head, the next request's bytes read ahead).
    buf: Vec<u8>,
    at: usize,
    end: usize,
    /// The read timeout the socket has now (set again only when a deadline needs less).
    armed: Option<Duration>,
}

impl Conn {
    pub fn new(stream: Arc<TcpStream>, write_timeout: Duration) -> Conn {
        let _ = stream.set_write_timeout(Some(write_timeout));
        Conn { stream, buf: vec![0; READ], at: 0, end: 0, armed: None }
    }

    pub fn stream(&self) -> &Arc<TcpStream> {
        &self.stream
    }

    fn unread(&self) -> &[u8] {
        &self.buf[self.at..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.at += n;
        if self.at >= self.end {
            (self.at, self.end) = (0, 0);
        }
    }

    /// Reads what the socket has into `out`, waiting at most until `deadline`; Ok(0) at end of
    /// stream.
    fn read_some(
        stream: &TcpStream,
        armed: &mut Option<Duration>,
        out: &mut [u8],
        deadline: Instant,
    ) -> io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        // One setsockopt per change of budget, not per read: a read may overrun its deadline by
        // at most the slack, and the loop checks the deadline between reads.
        let slack = Duration::from_millis(500);
        if armed.is_none_or(|a| left + slack < a || left > a + slack) {
            stream.set_read_timeout(Some(left))?;
            *armed = Some(left);
        }
        let mut reader = stream;
        reader.read(out)
    }

    /// Reads more into the buffer, waiting at most until `deadline`; Ok(0) at end of stream.
    fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        // What is used is dropped once it is at least as large as what is left, so each byte
        // moves at most once more.
        if self.at > 0 && self.at >= self.end - self.at {
            self.buf.copy_within(self.at..self.end, 0);
            (self.at, self.end) = (0, self.end - self.at);
        }
        if self.end == self.buf.len() {
            // Only a head (within its limits) or a chunk line (within its own) fills it.
            self.buf.resize(2 * self.buf.len(), 0);
        }
        let n = Conn::read_some(&self.stream, &mut self.armed, &mut self.buf[self.end..], deadline)?;
        self.end += n;
        Ok(n)
    }

    /// Reads what the socket has (at most `max` bytes, at most `BODY_READ`) onto the end of `body`,
    /// waiting at most until `deadline`; Ok(0) at end of stream.
    fn read_into(&mut self, body: &mut Vec<u8>, max: usize, deadline: Instant) -> io::Result<usize> {
        let len = body.len();
        body.resize(len + max.min(BODY_READ), 0);
        let n = Conn::read_some(&self.stream, &mut self.armed, &mut body[len..], deadline);
        body.truncate(len + *n.as_ref().unwrap_or(&0));
        n
    }

    /// The next request's head. Waits up to `idle` for its first byte (keep-alive), then up
    /// to `budget` for the rest of it.
    pub fn read_head(&mut self, idle: Duration, budget: Duration) -> Result<Head, ReadError> {
        let mut deadline = Instant::now() + idle;
        let mut started = false;
        let mut blank = 0;
        let mut scan = Scan::default();
        loop {
            if !started {
                // Blank lines before a request are allowed (RFC 9112 §2.2), a few.
                let skip = self.unread().iter().take_while(|b| **b == b'\r' || **b == b'\n').count();
                blank += skip;
                self.consume(skip);
                if blank > MAX_BLANK {
                    return Err(ReadError::Refuse(400, "too many blank lines before the request"));
                }
                if !self.unread().is_empty() {
                    started = true;
                    deadline = Instant::now() + budget;
                }
            }
            if started {
                if let Some(end) = scan.feed(self.unread())? {
                    let head = head::parse_head(&self.unread()[..end]);
                    self.consume(end);
                    return head;
                }
            }
            match self.fill(deadline) {
                Ok(0) if !started => return Err(ReadError::Closed),
                Ok(0) => return Err(ReadError::Refuse(400, "the request ended before its head did")),
                Ok(_) => {}
                Err(_) if !started => return Err(ReadError::Idle),
                Err(_) => return Err(ReadError::Refuse(408, "the request head did not arrive in time")),
            }
        }
    }

    /// Reads a body of at most `cap` bytes by `deadline`, reserving it in `bodies` as it goes
    /// (`hold`). `Err(413)` past the cap (a chunked body has no declared size), `Err(503)` past
    /// the budget, `Err(408)` when it does not arrive in time.
    pub fn read_body(
        &mut self,
        framing: Framing,
        cap: usize,
        deadline: Instant,
        bodies: &Arc<Bodies>,
        hold: &mut Hold,
    ) -> Result<Vec<u8>, ReadError> {
        let no_room = || ReadError::Refuse(503, "the hub holds too many request bodies now");
        let room_until = || deadline.min(Instant::now() + budget::WAIT);
        match framing {
            Framing::Length(n) => {
                if !bodies.reserve(hold, n, room_until()) {
                    return Err(no_room());
                }
                let mut body = Vec::with_capacity(n);
                self.read_exact_into(&mut body, n, deadline)?;
                Ok(body)
            }
            Framing::Chunked => {
                let mut body = Vec::new();
                loop {
                    let size = head::chunk_size(&self.line(deadline, MAX_CHUNK_LINE)?)?;
                    if size == 0 {
                        // Trailers, up to the blank line.
                        let mut trailers = 0;
                        while !self.line(deadline, MAX_HEADER_LINE)?.is_empty() {
                            trailers += 1;
                            if trailers > MAX_HEADERS {
                                return Err(ReadError::Refuse(431, "too many trailer lines"));
                            }
                        }
                        return Ok(body);
                    }
                    // Subtracted, not added: a forged size near usize::MAX must not overflow.
                    if size > cap.saturating_sub(body.len()) {
                        return Err(ReadError::Refuse(413, "the request body is too large"));
                    }
                    let needed = body.len() + size;
                    if needed > body.capacity() {
                        // Doubling, within the cap, and reserved before it is allocated.
                        let grown = needed.max(2 * body.capacity()).min(cap);
                        if !bodies.reserve(hold, grown, room_until()) {
                            return Err(no_room());
                        }
                        body.reserve_exact(grown - body.len());
                    }
                    self.read_exact_into(&mut body, size, deadline)?;
                    // The data ends with CRLF, nothing else (no bare LF: RFC 9112 §7.1).
                    while self.unread().len() < 2 {
                        self.fill_or(deadline)?;
                    }
                    if &self.unread()[..2] != b"\r\n" {
                        return Err(ReadError::Refuse(400, "a chunk's data does not end with CRLF"));
                    }
                    self.consume(2);
                }
            }
        }
    }

    /// Appends the next `n` bytes of the body to `body`: what was read ahead first, then
    /// straight from the socket (never through the connection's buffer).
    fn read_exact_into(&mut self, body: &mut Vec<u8>, n: usize, deadline: Instant) -> Result<(), ReadError> {
        let ahead = n.min(self.unread().len());
        body.extend_from_slice(&self.unread()[..ahead]);
        self.consume(ahead);
        let end = body.len() + (n - ahead);
        while body.len() < end {
            match self.read_into(body, end - body.len(), deadline) {
                Ok(0) => return Err(ReadError::Refuse(400, "the request body ended early")),
                Ok(_) => {}
                Err(_) => return Err(ReadError::Refuse(408, "the request body did not arrive in time")),
            }
        }
        Ok(())
    }

    /// `fill`, its end and errors as a body's refusals.
    fn fill_or(&mut self, deadline: Instant) -> Result<(), ReadError> {
        match self.fill(deadline) {
            Ok(0) => Err(ReadError::Refuse(400, "the request body ended early")),
            Ok(_) => Ok(()),
            Err(_) => Err(ReadError::Refuse(408, "the request body did not arrive in time")),
        }
    }

    /// One line of a chunked body, without its CRLF (a bare LF is refused), at most `max` bytes.
    fn line(&mut self, deadline: Instant, max: usize) -> Result<Vec<u8>, ReadError> {
        let mut seen = 0;
        loop {
            if let Some(i) = self.unread()[seen..].iter().position(|b| *b == b'\n') {
                let end = seen + i;
                let line = &self.unread()[..end];
                let Some(line) = line.strip_suffix(b"\r") else {
                    return Err(ReadError::Refuse(400, "a chunk line does not end with CRLF"));
                };
                let line = line.to_vec();
                self.consume(end + 1);
                return Ok(line);
            }
            seen = self.unread().len();
            if seen > max {
                return Err(ReadError::Refuse(400, "a chunk line is too long"));
            }
            self.fill_or(deadline)?;
        }
    }

    /// Reads what the client sends and drops it, waiting at most until `deadline`: the bytes
    /// read, 0 at end of stream.
    pub fn discard(&mut self, deadline: Instant) -> io::Result<usize> {
        (self.at, self.end) = (0, 0);
        let n = self.fill(deadline)?;
        (self.at, self.end) = (0, 0);
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
