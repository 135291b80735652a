//! Words for ranking: identifiers split at `_ - .` and camelCase, text split at anything not a
//! letter or digit, lowercased; stop words (function words and the boilerplate requests wrap
//! themselves in), lone letters and numbers dropped; and a light suffix stripper so "files",
//! "listing" and "listed" meet "file" and "list". The same function serves tool text, the query
//! and the tables of `vocabulary.rs`, so whatever the stemmer does to a word it does everywhere.

/// Words that carry no meaning for finding a tool: function words, and the boilerplate requests
/// wrap themselves in ("hey, can you just tell me...", "thanks"). Contractions arrive cut at the
/// apostrophe ("don't" → "don"). Verbs a tool may be named for ("like", "help") stay.
#[rustfmt::skip]
const STOP_WORDS: &[&str] = &[
    "a", "able", "about", "actually", "again", "all", "also", "am", "an", "and", "any", "anything", "are",
    "aren", "as", "at", "be", "been", "being", "by", "can", "could", "did", "didn", "do", "does", "doesn",
    "don", "for", "from", "give", "gonna", "got", "has", "have", "here", "hey", "hi", "how", "i", "if",
    "im", "in", "into", "is", "isn", "it", "its", "just", "kindly", "know", "let", "ll", "lot",
    "many", "may", "maybe", "me", "might", "much", "must", "my", "myself", "need", "of", "okay", "on",
    "or", "our", "please", "really", "should", "so", "some", "something", "tell", "thank", "thanks",
    "that", "the", "their", "them", "then", "there", "these", "thing", "things", "this", "those", "to",
    "up", "us", "ve", "very", "wanna", "want", "was", "wasn", "we", "were", "what", "when", "where",
    "whether", "which", "who", "why", "will", "with", "won", "would", "you", "your",
];

/// The words of `text`, in order: split, lowercased, stop words dropped, stemmed.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for piece in text.split(|c: char| !c.is_alphanumeric()) {
        for part in camel_parts(piece) {
            let lower = part.to_lowercase();
            // A lone letter ("e-mail", "what's") says nothing, nor a number: in a request it is an
            // argument ("issue 42", "at 3"), not what the tool does. Mixed ones stay ("s3", "v2").
            let lone = lower.chars().count() == 1 || lower.chars().all(|c| c.is_numeric());
            if !lower.is_empty() && !lone && !STOP_WORDS.contains(&lower.as_str()) {
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
/// then one of `ing`, `ed`, `ly` when a stem with a vowel is left ("string" stays), then a
/// doubled final consonant undone (`stopp` → `stop`) and a final `e` dropped (`create` and
/// `creating` both become `creat`). Short words stay whole.
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
        let rest = w.len().saturating_sub(suffix.len());
        // What is left must hold a vowel: "string" and "thing" are no verb plus "-ing".
        let vowel = w.as_bytes()[..rest].iter().any(|c| b"aeiouy".contains(c));
        if w.ends_with(suffix) && rest >= keep && !w.ends_with("eed") && vowel {
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
        check("utf8Text v2.0 in 42 days", &["utf8", "text", "v2", "day"]);
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
            ("string", "string"),
            ("strings", "string"),
            ("bring", "bring"),
            ("pull", "pull"),
            ("calls", "call"),
            ("get", "get"),
        ] {
            assert_eq!(stem(word), expected, "stem({word:?})");
        }
    }
}
