//! Server-sent events as the hub reads them, from a Streamable HTTP answer or GET stream and
//! from a legacy HTTP+SSE stream alike: `Events`, one event (its name, its data lines joined)
//! at a time, within a cap.

use std::io::BufRead;

use crate::transport::stdio::{STDOUT_LINE_BYTES, read_line_capped};

/// One server-sent event: its `event:` name (`message` when it has none) and its data lines.
#[derive(Debug, PartialEq)]
pub struct Event {
    pub name: String,
    pub data: String,
}

/// Reads events one by one. An event (all its lines) may hold `STDOUT_LINE_BYTES` at most, as
/// a child's stdout message may: past it the stream counts as broken.
pub struct Events<R> {
    reader: R,
    /// The last `id:` the stream gave (where a reconnection resumes), and its last `retry:`.
    last_id: Option<String>,
    retry: Option<std::time::Duration>,
}

impl<R: BufRead> Events<R> {
    pub fn new(reader: R) -> Events<R> {
        Events { reader, last_id: None, retry: None }
    }

    /// The last event id the stream gave, if any: a stream that ends after one may be resumed.
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// How long the server asked a client to wait before it reconnects (`retry:`).
    pub fn retry(&self) -> Option<std::time::Duration> {
        self.retry
    }

    /// The next event; `None` at the end of the stream (an unfinished event is dropped).
    pub fn next_event(&mut self) -> Option<std::io::Result<Event>> {
        let (mut name, mut data, mut line) = (String::new(), String::new(), Vec::new());
        loop {
            line.clear();
            let room = STDOUT_LINE_BYTES.saturating_sub(data.len());
            match read_line_capped(&mut self.reader, &mut line, room) {
                Ok((0, _)) => return None,
                Ok((_, true)) => {
                    let e = format!("an event over {} MiB", STDOUT_LINE_BYTES >> 20);
                    return Some(Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)));
                }
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                if data.is_empty() {
                    name.clear();
                    continue;
                }
                data.pop(); // the newline after the last data line
                let name = if name.is_empty() { "message".to_string() } else { name };
                return Some(Ok(Event { name, data }));
            }
            let (field, value) = text.split_once(':').unwrap_or((text, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => name = value.to_string(),
                "data" => {
                    data.push_str(value);
                    data.push('\n');
                }
                "id" if !value.contains('\0') => self.last_id = Some(value.to_string()),
                "retry" => {
                    if let Ok(ms) = value.trim().parse::<u64>() {
                        self.retry = Some(std::time::Duration::from_millis(ms));
                    }
                }
                // Comments (`: ping`) and unknown fields: nothing the hub uses.
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_parsed_as_server_sent_events() {
        fn check(input: &str, expected: &[(&str, &str)]) {
            let mut events = Events::new(input.as_bytes());
            let mut got = Vec::new();
            while let Some(e) = events.next_event() {
                let e = e.unwrap();
                got.push((e.name, e.data));
            }
            let expected: Vec<_> = expected.iter().map(|(n, d)| (n.to_string(), d.to_string())).collect();
            assert_eq!(got, expected, "{input:?}");
        }
        check("event: endpoint\ndata: /message?sessionId=1\n\n", &[("endpoint", "/message?sessionId=1")]);
        check("data: {\"a\":1}\n\n", &[("message", "{\"a\":1}")]);
        check("event: message\r\ndata: x\r\n\r\n", &[("message", "x")]);
        check("data: one\ndata:two\ndata:  three\n\n", &[("message", "one\ntwo\n three")]);
        check(": keep-alive\n\n:comment\nevent: message\nid: 7\nretry: 10\ndata: d\n\n", &[("message", "d")]);
        check(
            "event: a\ndata: 1\n\nevent: b\ndata: 2\n\ndata: 3\n\n",
            &[("a", "1"), ("b", "2"), ("message", "3")],
        );
        check("event: lonely\n\ndata: after\n\n", &[("message", "after")]);
        check("data\n\n", &[("message", "")]);
        check("data: unfinished", &[]);
        check("", &[]);
    }
}
