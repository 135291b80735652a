//! JSON with comments, as VS Code reads its `mcp.json`: `//` and `/* */` comments and trailing
//! commas are blanked out before the JSON parser sees the text, and a leading byte-order mark is
//! dropped. Blanking keeps every other character where it was, so a syntax error still names
//! the right line and column.

/// The text as plain JSON, and whether it had comments (a save cannot keep them).
pub fn to_json(text: &str) -> (String, bool) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut comments = false;
    // Where the last comma outside a string was written, until something other than blanks follows.
    let mut comma: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'"' => {
                comma = None;
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(bytes.len());
                out.extend_from_slice(&bytes[start..i]);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                comments = true;
                while i < bytes.len() && bytes[i] != b'\n' {
                    out.push(b' ');
                    i += 1;
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                comments = true;
                let end = text[i + 2..].find("*/").map_or(bytes.len(), |e| i + 2 + e + 2);
                for &c in &bytes[i..end] {
                    out.push(if c == b'\n' { b'\n' } else { b' ' });
                }
                i = end;
                continue;
            }
            b',' => comma = Some(out.len()),
            b'}' | b']' => {
                if let Some(at) = comma.take() {
                    out[at] = b' ';
                }
            }
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => comma = None,
        }
        out.push(b);
        i += 1;
    }
    // Only ASCII was replaced by ASCII, whole: the text is still UTF-8.
    (String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()), comments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_trailing_commas_are_blanked() {
        fn check(input: &str, expected: &str, had_comments: bool) {
            assert_eq!(to_json(input), (expected.to_string(), had_comments), "{input:?}");
        }
        check(r#"{"a": 1}"#, r#"{"a": 1}"#, false);
        check("{\"a\": 1, // one\n\"b\": 2}", "{\"a\": 1,       \n\"b\": 2}", true);
        check("{/* x\ny */\"a\": 1}", "{    \n    \"a\": 1}", true);
        check(r#"{"a": [1, 2,], "b": {"c": 3,},}"#, r#"{"a": [1, 2 ], "b": {"c": 3 } }"#, false);
        check("{\"a\": 1, /* c */ }", "{\"a\": 1          }", true);
        check(
            r#"{"url": "http://x//y", "s": "a,}", "q": "\"//\""}"#,
            r#"{"url": "http://x//y", "s": "a,}", "q": "\"//\""}"#,
            false,
        );
        check("\u{feff}{\"a\": 1}", "{\"a\": 1}", false);
        check(r#"{"é": "ü", }"#, r#"{"é": "ü"  }"#, false);
    }
}
