//! A request's head as text: looked at as it arrives (`Scan`: where it ends, whether it is
//! already too large, each byte seen once), parsed (`parse_head`), and how its body is framed
//! (`framing`, `chunk_size`), strictly, since a front that frames a body otherwise than a proxy
//! before it is how requests are smuggled. Pure functions.

/// The longest request line (method, target, version).
pub const MAX_REQUEST_LINE: usize = 8 << 10;
/// The longest header line.
pub const MAX_HEADER_LINE: usize = 8 << 10;
/// All header lines together.
pub const MAX_HEAD: usize = 64 << 10;
/// Most header lines in one request (and trailer lines after a chunked body).
pub const MAX_HEADERS: usize = 100;
/// Bytes of blank lines (CR, LF) taken before a request line: RFC 9112 §2.2 asks for at least
/// one; eight CRLFs, as nginx and Go take a few, then 400.
pub const MAX_BLANK: usize = 16;

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

/// A head as it arrives, each byte looked at once however the head is split into reads (a head
/// trickling in byte by byte costs no more than one sent whole). Offsets are from the head's
/// first byte.
#[derive(Default)]
pub struct Scan {
    /// Bytes looked at so far.
    seen: usize,
    /// Where the line being read starts.
    line: usize,
    /// Header lines so far.
    headers: usize,
}

impl Scan {
    /// Looks at what of `head` is new: `Some(end)` once the head ended (past its blank line),
    /// a refusal as soon as it is too large.
    pub fn feed(&mut self, head: &[u8]) -> Result<Option<usize>, ReadError> {
        while let Some(i) = head[self.seen..].iter().position(|b| *b == b'\n') {
            let at = self.seen + i;
            let line = &head[self.line..at];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.seen = at + 1;
            if self.line == 0 {
                if line.len() > MAX_REQUEST_LINE {
                    return Err(ReadError::Refuse(414, "the request line is too long"));
                }
            } else if line.is_empty() {
                return Ok(Some(at + 1));
            } else {
                self.headers += 1;
                if line.len() > MAX_HEADER_LINE {
                    return Err(ReadError::Refuse(431, "a request header is too large"));
                }
                if self.headers > MAX_HEADERS {
                    return Err(ReadError::Refuse(431, "too many request headers"));
                }
            }
            if at > MAX_REQUEST_LINE + MAX_HEAD {
                return Err(ReadError::Refuse(431, "the request headers are too large"));
            }
            self.line = at + 1;
        }
        self.seen = head.len();
        // The line still arriving.
        let partial = head.len() - self.line;
        if self.line == 0 && partial > MAX_REQUEST_LINE {
            return Err(ReadError::Refuse(414, "the request line is too long"));
        }
        if self.line > 0 && partial > MAX_HEADER_LINE {
            return Err(ReadError::Refuse(431, "a request header is too large"));
        }
        if head.len() > MAX_REQUEST_LINE + MAX_HEAD {
            return Err(ReadError::Refuse(431, "the request headers are too large"));
        }
        Ok(None)
    }
}

/// A whole head (as `Scan` found it) parsed. The target and the header values are refused with
/// control characters in them (RFC 9112 §3.2, RFC 9110 §5.5): nothing past here sees a CR, an
/// escape or a NUL from a client's head.
pub fn parse_head(raw: &[u8]) -> Result<Head, ReadError> {
    let bad = || ReadError::Refuse(400, "malformed request head");
    let text = std::str::from_utf8(raw).map_err(|_| bad())?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
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
    if method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_alphabetic())
        || !target.starts_with('/')
        || target.chars().any(char::is_control)
    {
        return Err(bad());
    }
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or_else(bad)?;
        if name.is_empty() || !name.bytes().all(is_token) {
            return Err(bad());
        }
        // Tabs are allowed inside a value; no other control character is.
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ReadError::Refuse(400, "a control character in a header value"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Head { method: method.to_ascii_uppercase(), target: target.to_string(), http10, headers })
}

/// A `tchar` of RFC 9110 §5.6.2: what a header name is made of.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// How the body of a request with this head is framed, or why it cannot be read (RFC 9112
/// §6.1-6.3): `Transfer-Encoding` headers are read together and must end in `chunked`; with a
/// `Content-Length` as well, or in an HTTP/1.0 request, they are refused; a `Content-Length` is
/// digits only, and several must agree.
pub fn framing(head: &Head) -> Result<Framing, ReadError> {
    let mut codings = Vec::new();
    let mut lengths = Vec::new();
    let mut te = false;
    for (name, value) in &head.headers {
        match name.as_str() {
            "transfer-encoding" => {
                te = true;
                codings.extend(value.split(',').map(str::trim).filter(|c| !c.is_empty()));
            }
            "content-length" => lengths.push(value.as_str()),
            _ => {}
        }
    }
    let refuse = |why| Err(ReadError::Refuse(400, why));
    if te {
        // Both at once is how requests are smuggled past proxies.
        if !lengths.is_empty() {
            return refuse("both Transfer-Encoding and Content-Length");
        }
        if head.http10 {
            return refuse("Transfer-Encoding in an HTTP/1.0 request");
        }
        return match codings.split_last() {
            Some((last, rest)) if last.eq_ignore_ascii_case("chunked") => {
                if rest.iter().any(|c| c.eq_ignore_ascii_case("chunked")) {
                    return refuse("chunked more than once");
                }
                match rest.is_empty() {
                    true => Ok(Framing::Chunked),
                    false => Err(ReadError::Refuse(501, "only chunked transfer coding is understood")),
                }
            }
            _ => refuse("the last transfer coding is not chunked"),
        };
    }
    let Some((first, rest)) = lengths.split_first() else { return Ok(Framing::Length(0)) };
    if rest.iter().any(|l| l != first) {
        return refuse("conflicting Content-Length headers");
    }
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return refuse("Content-Length is not a number");
    }
    first.parse().map(Framing::Length).or(refuse("Content-Length is not a number"))
}

/// The size a chunk line names (RFC 9112 §7.1): hexadecimal digits only, then maybe extensions
/// after a `;`, which are ignored.
pub fn chunk_size(line: &[u8]) -> Result<usize, ReadError> {
    let size = match line.iter().position(|b| *b == b';') {
        // Blanks are allowed before a `;` (BWS), nowhere else.
        Some(semicolon) => {
            let size = &line[..semicolon];
            &size[..size.iter().rposition(|b| *b != b' ' && *b != b'\t').map_or(0, |end| end + 1)]
        }
        None => line,
    };
    if size.is_empty() || !size.iter().all(u8::is_ascii_hexdigit) {
        return Err(ReadError::Refuse(400, "a chunk size is not hexadecimal"));
    }
    let digits = size.iter().skip_while(|b| **b == b'0').count();
    if digits > 2 * std::mem::size_of::<usize>() {
        return Err(ReadError::Refuse(413, "the request body is too large"));
    }
    // Hex digits only: both the text and the number are sound.
    let text =
        std::str::from_utf8(size).map_err(|_| ReadError::Refuse(400, "a chunk size is not hexadecimal"))?;
    usize::from_str_radix(text, 16).map_err(|_| ReadError::Refuse(413, "the request body is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A head scanned and parsed, as `Conn::read_head` does.
    fn head(text: &str) -> Result<Head, ReadError> {
        match Scan::default().feed(text.as_bytes())? {
            Some(end) => parse_head(&text.as_bytes()[..end]),
            None => Err(ReadError::Refuse(0, "no end")),
        }
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
        assert!(head("GET / HTTP/1.1\r\nX: a\tb\r\n\r\n").is_ok(), "a tab in a value");
        for bad in [
            "GET /\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
            "GET x HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nno colon\r\n\r\n",
            "GET /a\rb HTTP/1.1\r\n\r\n",
            "GET /a\tb HTTP/1.1\r\n\r\n",
            "GET /a\x1b[2J HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nX-Client-Name: a\rINFO forged\r\n\r\n",
            "GET / HTTP/1.1\r\nX-Client-Name: a\x1b[2K\r\n\r\n",
            "GET / HTTP/1.1\r\nX-Client-Name: a\0\r\n\r\n",
            "GET / HTTP/1.1\r\nX\x01: a\r\n\r\n",
            "GET / HTTP/1.1\r\nX(: a\r\n\r\n",
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
        let big = format!("GET / HTTP/1.1\r\n{}\r\n", format!("X: {}\r\n", "a".repeat(8000)).repeat(10));
        assert_eq!(refused(head(&big)), 431);
    }

    #[test]
    fn a_head_fed_in_pieces_ends_where_a_whole_one_does() {
        let text = b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody";
        let mut scan = Scan::default();
        let ends: Vec<Option<usize>> = (1..=text.len()).map(|n| scan.feed(&text[..n]).unwrap()).collect();
        assert_eq!(ends.iter().flatten().next(), Some(&24));
        assert_eq!(Scan::default().feed(b"GET / HTTP/1.1\n\nbody").unwrap(), Some(16));
        assert_eq!(Scan::default().feed(b"GET / HTTP/1.1\r\nA: b\r\n").unwrap(), None);
        // A header line still arriving is refused once it is too long, before its end.
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEADER_LINE));
        assert!(matches!(Scan::default().feed(long.as_bytes()), Err(ReadError::Refuse(431, _))));
    }

    #[test]
    fn body_framing() {
        fn check(version: &str, headers: &str, expected: Result<Framing, u16>) {
            let h = head(&format!("POST / HTTP/{version}\r\n{headers}\r\n")).unwrap();
            let got = framing(&h).map_err(|e| match e {
                ReadError::Refuse(s, _) => s,
                ReadError::Closed | ReadError::Idle => 0,
            });
            assert_eq!(got, expected, "{headers:?}");
        }
        let v = "1.1";
        check(v, "", Ok(Framing::Length(0)));
        check(v, "Content-Length: 12\r\n", Ok(Framing::Length(12)));
        check(v, "Content-Length: 012\r\n", Ok(Framing::Length(12)));
        check(v, "Content-Length: 12\r\nContent-Length: 12\r\n", Ok(Framing::Length(12)));
        check(v, "Content-Length: 12\r\nContent-Length: 13\r\n", Err(400));
        check(v, "Content-Length: -1\r\n", Err(400));
        check(v, "Content-Length: +2\r\n", Err(400));
        check(v, "Content-Length: 1_0\r\n", Err(400));
        check(v, "Content-Length: 12, 12\r\n", Err(400));
        check(v, "Content-Length:\r\n", Err(400));
        check(v, "Content-Length: 1000000000000000000000\r\n", Err(400));
        check(v, "Transfer-Encoding: chunked\r\n", Ok(Framing::Chunked));
        check(v, "Transfer-Encoding: Chunked\r\n", Ok(Framing::Chunked));
        check(v, "Transfer-Encoding: gzip\r\n", Err(400));
        check(v, "Transfer-Encoding: gzip, chunked\r\n", Err(501));
        check(v, "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", Err(501));
        check(v, "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", Err(400));
        check(v, "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", Err(400));
        check(v, "Transfer-Encoding: chunked, identity\r\n", Err(400));
        check(v, "Transfer-Encoding:\r\n", Err(400));
        check(v, "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", Err(400));
        check("1.0", "Transfer-Encoding: chunked\r\n", Err(400));
        check("1.0", "Content-Length: 3\r\n", Ok(Framing::Length(3)));
    }

    #[test]
    fn chunk_sizes() {
        fn check(line: &str, expected: Result<usize, u16>) {
            let got = chunk_size(line.as_bytes()).map_err(|e| match e {
                ReadError::Refuse(s, _) => s,
                ReadError::Closed | ReadError::Idle => 0,
            });
            assert_eq!(got, expected, "{line:?}");
        }
        check("2c", Ok(0x2c));
        check("002C", Ok(0x2c));
        check("2c;name=value", Ok(0x2c));
        check("2c ; name", Ok(0x2c));
        check("0", Ok(0));
        check("ffffffffffffffff", Ok(usize::MAX));
        check("00000000000000000001", Ok(1));
        check("10000000000000000", Err(413));
        check("+2c", Err(400));
        check("-2c", Err(400));
        check("0x2c", Err(400));
        check(" 2c", Err(400));
        check("2c ", Err(400));
        check("2 c", Err(400));
        check("", Err(400));
        check(";ext", Err(400));
    }
}
