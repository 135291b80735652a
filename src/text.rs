//! Text from outside (a child's lines, a client's name, a server's log message) made safe to keep
//! and to log: cut to a bound on a character boundary with its memory given back, and with control
//! characters escaped so that nobody can forge a log line. Pure functions, and `LogBudget`, how
//! many such lines one source may log (the time passed in).

use std::time::Instant;

/// `s` cut to at most `max` bytes on a character boundary, in an allocation of its own size (a
/// cut `String` would keep the whole original buffer alive).
pub fn cut(s: &str, max: usize) -> String {
    cut_with(s, max, "")
}

/// What marks a text that was cut.
pub const CUT_MARK: &str = " [...]";

/// `cut`, and `CUT_MARK` after it when something was cut off.
pub fn cut_marked(s: &str, max: usize) -> String {
    cut_with(s, max, CUT_MARK)
}

fn cut_with(s: &str, max: usize, mark: &str) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mark = if end < s.len() { mark } else { "" };
    let mut out = String::with_capacity(end + mark.len());
    out.push_str(&s[..end]);
    out.push_str(mark);
    out
}

/// `s` for one log line: control characters (CR, LF, ESC, ... and DEL) written as `\n`, `\r`,
/// `\t` or `\u{..}`, cut to `max` bytes of the original with a note of how much was left out.
pub fn for_log(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max) + 16);
    let mut taken = 0;
    for c in s.chars() {
        if taken + c.len_utf8() > max {
            break;
        }
        taken += c.len_utf8();
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    if taken < s.len() {
        out.push_str(&format!("… ({} more bytes)", s.len() - taken));
    }
    out
}

/// Each of a child's sources (its log messages, its stderr, its bad stdout lines) may log
/// `CHILD_LOG_BURST` lines at once, then `CHILD_LOG_PER_SEC` a second.
pub const CHILD_LOG_PER_SEC: u32 = 50;
pub const CHILD_LOG_BURST: u32 = 200;

/// A token bucket for the log lines of one source (a child's log messages, its stderr): `burst`
/// lines at once, then `per_sec` a second. What it refuses is counted and told with the next
/// line it lets through.
#[derive(Debug)]
pub struct LogBudget {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    at: Option<Instant>,
    suppressed: u64,
}

impl LogBudget {
    pub fn new(per_sec: u32, burst: u32) -> LogBudget {
        LogBudget {
            per_sec: per_sec.into(),
            burst: burst.into(),
            tokens: burst.into(),
            at: None,
            suppressed: 0,
        }
    }

    /// The budget of one of a child's sources.
    pub fn for_child() -> LogBudget {
        LogBudget::new(CHILD_LOG_PER_SEC, CHILD_LOG_BURST)
    }

    /// Whether a line may be logged at `now`: `Some(n)`, with the lines suppressed since the
    /// last one logged (to say so first), or `None` (suppressed, and counted).
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if let Some(at) = self.at {
            let refill = now.saturating_duration_since(at).as_secs_f64() * self.per_sec;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.at = Some(now);
        if self.tokens < 1.0 {
            self.suppressed += 1;
            return None;
        }
        self.tokens -= 1.0;
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_budget_lets_a_burst_through_then_a_rate_and_counts_the_rest() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + std::time::Duration::from_millis(n);
        let mut b = LogBudget::new(10, 3);
        let at_once: Vec<_> = (0..5).map(|_| b.allow(t0)).collect();
        assert_eq!(at_once, [Some(0), Some(0), Some(0), None, None]);
        assert_eq!(b.allow(ms(50)), None, "half a line's time");
        assert_eq!(b.allow(ms(100)), Some(3), "a line's time: the three suppressed told");
        assert_eq!(b.allow(ms(100)), None);
        // Idle for long: back to the burst, no more.
        let later: Vec<_> = (0..4).map(|_| b.allow(ms(60_000))).collect();
        assert_eq!(later, [Some(1), Some(0), Some(0), None]);
    }

    fn check(input: &str, max: usize, expected: &str) {
        assert_eq!(for_log(input, max), expected, "for_log({input:?}, {max})");
    }

    #[test]
    fn control_characters_cannot_start_a_line() {
        check("plain", 100, "plain");
        check("a\nINFO forged", 100, "a\\nINFO forged");
        check("a\r\x1b[31mred", 100, "a\\r\\u{1b}[31mred");
        check("tab\there\u{7f}", 100, "tab\\there\\u{7f}");
        check("héllo wörld", 3, "hé… (10 more bytes)");
        check("héllo", 2, "h… (5 more bytes)");
    }

    #[test]
    fn a_cut_gives_its_memory_back() {
        let big = "x".repeat(1 << 20);
        let c = cut(&big, 10);
        assert_eq!((c.len(), c.capacity()), (10, 10));
        assert_eq!(cut("ééé", 3), "é");
    }
}
