//! Text from outside (a child's lines, a client's name, a server's log message) made safe to keep
//! and to log: cut to a bound on a character boundary with its memory given back, and with control
//! characters escaped so that nobody can forge a log line. Pure functions.

/// `s` cut to at most `max` bytes on a character boundary, in an allocation of its own size (a
/// cut `String` would keep the whole original buffer alive).
pub fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end);
    out.push_str(&s[..end]);
    out
}

/// `s` owned and cut to `max` bytes, giving back the memory past the cut.
pub fn cut_owned(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s.shrink_to_fit();
    s
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let owned = cut_owned(big, 10);
        assert_eq!(owned.len(), 10);
        assert!(owned.capacity() < 64, "capacity {}", owned.capacity());
        assert_eq!(cut("ééé", 3), "é");
    }
}
