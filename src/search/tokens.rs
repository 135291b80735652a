//! Words for ranking: identifiers split at `_ - .` and camelCase, text split at anything not a
//! letter or digit, lowercased, a short list of stop words dropped, and a light suffix stripper so
//! "files", "listing" and "listed" meet "file" and "list". The same function serves tool text and
//! the query, so whatever the stemmer does to a word it does on both sides.

/// Words that carry no meaning for finding a tool (requests are full of them).
const STOP_WORDS: &[&str] = &[
    "a", "about", "all", "am", "an", "and", "any", "are", "as", "at", "be", "by", "can", "could", "do",
    "does", "for", "from", "give", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "let",
    "me", "my", "need", "of", "on", "or", "our", "please", "should", "so", "some", "that", "the", "their",
    "them", "then", "there", "these", "this", "those", "to", "us", "want", "was", "we", "what", "when",
    "where", "which", "who", "will", "with", "would", "you", "your",
];

/// The words of `text`, in order: split, lowercased, stop words dropped, stemmed.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for piece in text.split(|c: char| !c.is_alphanumeric()) {
        for part in camel_parts(piece) {
            let lower = part.to_lowercase();
            // A lone letter ("e-mail", "what's") says nothing; a lone digit may ("v2", "0").
            let lone_letter = lower.chars().count() == 1 && !lower.chars().all(|c| c.is_numeric());
            if !lower.is_empty() && !lone_letter && !STOP_WORDS.contains(&lower.as_str()) {
                out.push(stem(&lower));
            }
        }
    }
    out
}

/// `readTextFile` → `read`, `Text`, `File`; `HTTPServer` → `HTTP`, `Server`; `utf8Text` →
/// `utf8`, `Text`. A lowercase run or a digit run never splits.
fn camel_parts(piece: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = piece.char_indices().collect();
    let mut parts = Vec::new();
    let mut start = 0;
    for i in 1..chars.len() {
        let (at, c) = chars[i];
        let prev = chars[i - 1].1;
        let next_lower = chars.get(i + 1).is_some_and(|(_, n)| n.is_lowercase());
        let boundary = c.is_uppercase()
            && (prev.is_lowercase() || prev.is_numeric() || (prev.is_uppercase() && next_lower));
        if boundary {
            parts.push(&piece[start..at]);
            start = at;
        }
    }
    parts.push(&piece[start..]);
    parts
}

/// A small suffix stripper for lowercase English: plurals (`ies`, `es` after a sibilant, `s`),
/// then one of `ing`, `ed`, `ly`, then a doubled final consonant undone (`stopp` → `stop`) and a
/// final `e` dropped (`create` and `creating` both become `creat`). Short words stay whole.
pub fn stem(word: &str) -> String {
    if !word.is_ascii() || word.len() <= 3 && !word.ends_with('s') {
        return word.to_string();
    }
    let mut w = word.to_string();
    // Plurals.
    if w.len() > 4 && w.ends_with("ies") {
        w.truncate(w.len() - 3);
        w.push('y');
    } else if w.len() > 4 && ["sses", "xes", "zes", "ches", "shes"].iter().any(|s| w.ends_with(s)) {
        w.truncate(w.len() - 2);
    } else if w.len() >= 3 && w.ends_with('s') && !["ss", "us", "is"].iter().any(|s| w.ends_with(s)) {
        w.pop();
    }
    // One derivational or inflectional ending, when enough of a stem is left.
    let mut stripped = false;
    for suffix in ["ing", "ed", "ly"] {
        let keep = if suffix == "ly" { 4 } else { 3 };
        if w.ends_with(suffix) && w.len() - suffix.len() >= keep && !w.ends_with("eed") {
            w.truncate(w.len() - suffix.len());
            stripped = true;
            break;
        }
    }
    if stripped {
        let b = w.as_bytes();
        let n = b.len();
        if n >= 2 && b[n - 1] == b[n - 2] && !b"aeioulsz".contains(&b[n - 1]) {
            w.pop();
        }
    }
    if w.len() > 3 && w.ends_with('e') {
        w.pop();
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &[&str]) {
        assert_eq!(words(input), expected, "words({input:?})");
    }

    #[test]
    fn splits_names_and_text() {
        check("filesystem__read_text_file", &["filesystem", "read", "text", "fil"]);
        check("everything__get-tiny-image", &["everyth", "get", "tiny", "imag"]);
        check("createPullRequest", &["creat", "pull", "request"]);
        check("parseHTTPResponse", &["pars", "http", "respons"]);
        check("utf8Text v2.0", &["utf8", "text", "v2", "0"]);
        check("slack.post_message", &["slack", "post", "messag"]);
        check("Send an e-mail to my boss!", &["send", "mail", "boss"]);
        check("What's the weather in Paris?", &["weather", "paris"]);
        check("", &[]);
        check("__--..", &[]);
        check("Ünïcode Straße", &["ünïcode", "straße"]);
    }

    #[test]
    fn stems_light_suffixes() {
        for (word, expected) in [
            ("files", "fil"),
            ("file", "fil"),
            ("entries", "entry"),
            ("queries", "query"),
            ("boxes", "box"),
            ("matches", "match"),
            ("processes", "process"),
            ("process", "process"),
            ("status", "status"),
            ("analysis", "analysis"),
            ("issues", "issu"),
            ("issue", "issu"),
            ("ids", "id"),
            ("listing", "list"),
            ("listed", "list"),
            ("running", "run"),
            ("stopped", "stop"),
            ("creating", "creat"),
            ("created", "creat"),
            ("create", "creat"),
            ("settings", "set"),
            ("weekly", "week"),
            ("recently", "recent"),
            ("daily", "daily"),
            ("reply", "reply"),
            ("need", "need"),
            ("speed", "speed"),
            ("thing", "thing"),
            ("string", "str"),
            ("strings", "str"),
            ("pull", "pull"),
            ("calls", "call"),
            ("get", "get"),
        ] {
            assert_eq!(stem(word), expected, "stem({word:?})");
        }
    }
}
