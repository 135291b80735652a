//! How requests and tools phrase things, as tables of general English (nothing in them names one
//! tool or one catalog), stemmed once with the tokenizer so they meet the index's words as they
//! are:
//! - related words: groups of verbs and nouns that stand in for each other ("folder" and
//!   "directory", "erase" and "delete", "picture" and "image"); a request's word is matched
//!   through its related words too, at a lower weight, so a request in other words than the
//!   tool's still finds it. A word in several groups is related to all their words.
//! - what a tool's name does: reads (get, list, search...) or writes (create, send, delete...);
//! - whether a request only asks to see something: a question ("what's on my calendar?") or a
//!   reading verb, and no writing one.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::tokens;

/// Groups of words used for one another in requests and tool descriptions. General English for
/// what tools do and what they act on; nothing in it names one tool or one catalog.
#[rustfmt::skip]
const GROUPS: &[&[&str]] = &[
    // What is done.
    &["get", "fetch", "retrieve", "read", "obtain", "view", "display", "show", "see", "load", "access"],
    &[
        "create", "make", "add", "new", "generate", "insert", "register", "compose", "produce", "setup",
        "spawn",
    ],
    &["delete", "remove", "erase", "trash", "drop", "destroy", "purge", "wipe", "discard", "cancel", "clear"],
    &["search", "find", "look", "lookup", "query", "locate", "seek", "discover"],
    &["list", "enumerate", "browse"],
    &["update", "edit", "modify", "change", "alter", "amend", "adjust", "set", "patch", "revise"],
    &[
        "send", "post", "notify", "deliver", "dispatch", "publish", "broadcast", "forward", "submit",
        "transmit",
    ],
    &["run", "execute", "exec", "invoke", "launch", "trigger", "perform"],
    &["start", "begin", "launch", "resume", "initiate"],
    &["stop", "halt", "terminate", "kill", "end", "abort", "quit", "shutdown"],
    &["restart", "reboot", "reload", "relaunch"],
    &["add", "append", "insert", "attach", "include"],
    &["set", "put", "assign", "configure", "place"],
    &["save", "store", "write", "persist", "keep", "put"],
    &["upload", "attach", "put"],
    &["download", "save", "export"],
    &["toggle", "switch", "enable", "disable", "turn"],
    &["select", "choose", "pick"],
    &["mute", "silence", "snooze", "quiet"],
    &["draw", "paint", "sketch", "render"],
    &["draft", "compose"],
    &["describe", "explain", "detail"],
    &["build", "compile"],
    &["scale", "resize"],
    &["purge", "clear", "flush", "invalidate"],
    &["log", "record"],
    &["remember", "memorize", "memory"],
    &["move", "relocate", "transfer", "transition", "migrate"],
    &["rename", "move"],
    &["copy", "duplicate", "clone"],
    &["compare", "diff", "difference"],
    &["merge", "combine", "join", "concatenate", "concat", "consolidate"],
    &["convert", "transform", "translate"],
    &["translate", "translation", "language"],
    &["calculate", "compute", "evaluate", "calc", "math", "arithmetic"],
    &["schedule", "book", "reserve", "arrange"],
    &["approve", "accept", "confirm"],
    &["decline", "reject", "deny", "refuse"],
    &["assign", "allocate", "delegate"],
    &["reply", "respond", "answer"],
    &["comment", "remark", "feedback"],
    &["play", "listen", "stream"],
    &["pause", "suspend"],
    &["skip", "next"],
    &["summarize", "summary", "digest"],
    &["extract", "parse", "scrape"],
    &["fetch", "download", "scrape", "crawl"],
    &["navigate", "visit", "goto", "open"],
    &["click", "press", "tap"],
    &["fill", "type", "enter", "input"],
    &["screenshot", "capture", "snapshot", "screen"],
    &["install", "setup"],
    &["deploy", "deployment", "release", "ship", "rollout"],
    &["monitor", "watch", "track", "observe"],
    &["check", "verify", "validate", "test", "inspect"],
    &["close", "complete", "finish", "done", "resolve", "finalize"],
    &["fix", "resolve", "repair", "solve"],
    &["share", "grant", "invite", "permission"],
    &["sign", "signature", "esign"],
    &["login", "signin", "authenticate", "auth", "logon"],
    &["subscribe", "follow"],
    &["buy", "purchase", "order"],
    &["pay", "payment", "charge", "bill", "billing", "invoice"],
    &["cost", "spend", "spending", "expense", "bill", "billing"],
    &["refund", "reimburse", "chargeback"],
    // What it is done to, and how.
    &["file", "document"],
    &["document", "doc"],
    &["object", "file", "blob"],
    &["incident", "outage"],
    &["workflow", "pipeline", "ci"],
    &["pollution", "pollutant", "polluted"],
    &["revenue", "income", "earnings", "profit"],
    &["folder", "directory", "dir"],
    &["image", "picture", "photo", "pic", "img", "photograph", "illustration", "drawing"],
    &["video", "clip", "footage"],
    &["movie", "film", "cinema"],
    &["song", "track", "tune", "music"],
    &["audio", "sound", "voice", "speech"],
    &["recording", "record", "recorder"],
    &["weather", "forecast", "rain", "snow", "precipitation", "temperature"],
    &["temperature", "heat", "heating", "thermostat", "warm", "cold"],
    &["price", "cost", "quote", "pricing", "worth", "rate"],
    &["money", "cash", "fund", "balance"],
    &["customer", "client"],
    &["contact", "person", "people"],
    &["user", "member", "people", "person", "account"],
    &["company", "organization", "org", "business", "firm"],
    &["message", "msg", "chat", "dm", "conversation"],
    &["email", "mail", "inbox", "mailbox"],
    &["sms", "text"],
    &["call", "phone", "ring", "dial", "telephone"],
    &["phone", "mobile", "cell"],
    &["car", "ride", "taxi", "cab", "lift"],
    &["flight", "plane", "airline", "fly", "airfare"],
    &["hotel", "lodging", "accommodation", "stay", "motel"],
    &["restaurant", "food", "eat", "dining", "meal", "cafe"],
    &["place", "location", "spot", "venue", "address"],
    &["near", "nearby", "around", "nearest", "closest"],
    &["route", "direction", "itinerary"],
    &["distance", "far"],
    &["coordinate", "latitude", "longitude", "lat", "lon", "lng", "gps"],
    &["elevation", "altitude"],
    &["time", "clock"],
    &["meeting", "event", "appointment", "meet", "call"],
    &["calendar", "agenda", "schedule"],
    &["task", "todo", "reminder", "chore"],
    &["remind", "reminder"],
    &["note", "memo"],
    &["issue", "ticket", "bug", "defect"],
    &["error", "exception", "crash", "failure", "fault"],
    &["alert", "warning", "alarm", "notification"],
    &["repository", "repo"],
    &["pr", "pull", "request"],
    &["commit", "revision", "changeset"],
    &["server", "host", "machine", "instance", "vm"],
    &["database", "db", "datastore"],
    &["spreadsheet", "sheet", "excel", "workbook"],
    &["row", "record", "entry"],
    &["column", "field", "attribute", "property"],
    &["secret", "password", "credential", "passphrase"],
    &["url", "link", "website", "site", "webpage"],
    &["web", "internet", "online"],
    &["news", "headline", "article", "story"],
    &["paper", "publication", "research", "study"],
    &["stock", "share", "equity", "ticker"],
    &["stock", "inventory"],
    &["currency", "dollar", "euro", "yen", "usd", "eur", "forex", "exchange"],
    &["crypto", "cryptocurrency", "bitcoin", "btc", "ethereum", "eth", "coin"],
    &["count", "number", "total", "amount", "quantity"],
    &["size", "big", "large", "bytes"],
    &["permission", "access", "role", "allow"],
    &["config", "configuration", "setting", "preference", "option"],
    &["status", "state", "health", "condition"],
    &["statistic", "stats", "stat", "metric", "analytics", "usage"],
    &["history", "past", "previous", "recent"],
    &["recent", "latest", "newest", "last"],
    &["current", "now", "live", "present", "realtime"],
    &["top", "popular", "trending", "hot", "best"],
    &["campaign", "newsletter", "mailing"],
    &["discount", "coupon", "promo", "voucher"],
    &["subscription", "plan", "membership", "tier"],
    &["product", "item", "goods", "merchandise"],
    &["delivery", "shipping", "deliver"],
    &["chart", "graph", "plot", "visualize", "diagram"],
    &["transcript", "caption", "subtitle", "transcription"],
    &["transcribe", "transcription", "dictation"],
    &["archive", "zip", "compress", "compression", "gzip", "tar", "unzip", "decompress"],
    &["define", "definition", "meaning", "dictionary"],
    &["recipe", "cook", "cooking", "dish", "ingredient"],
    &["trip", "travel", "vacation", "holiday"],
    &["walk", "fitness", "exercise", "workout"],
    &["scan", "ocr", "recognize"],
    &["relation", "relationship", "connection"],
    &["code", "source", "snippet"],
    &["terminal", "shell", "console", "cli", "bash", "cmd"],
    &["process", "program", "app", "application"],
    &["environment", "env", "variable", "var"],
    &["log", "logging"],
    &["backup", "snapshot"],
    &["domain", "dns", "hostname"],
];

/// Verbs that only look: a tool named with one of them (and none of `WRITES`) changes nothing.
#[rustfmt::skip]
const READS: &[&str] = &[
    "get", "list", "search", "find", "read", "show", "view", "fetch", "retrieve", "describe", "query",
    "lookup", "look", "check", "see", "display", "explain", "download", "export", "extract",
];

/// Verbs that change something. Words that are nouns as often ("log", "record", "order" in
/// `list_orders`) stay out, or a reading tool would pass for a writing one.
#[rustfmt::skip]
const WRITES: &[&str] = &[
    "create", "add", "insert", "send", "post", "delete", "remove", "update", "set", "write", "make",
    "put", "edit", "modify", "cancel", "append", "upload", "move", "merge", "reply", "assign", "publish",
    "drop", "clear", "purge", "stop", "kill", "start", "run", "execute", "trigger", "apply", "push",
    "generate", "draft", "fork", "share", "schedule", "book", "pay", "refund", "close", "resolve",
    "complete", "finalize", "mute", "toggle", "turn", "scale", "restart", "rollout", "invoke",
    "transition", "save", "store",
];

/// First words that make a request a question.
#[rustfmt::skip]
const QUESTIONS: &[&str] = &[
    "what", "whats", "which", "who", "whos", "whose", "where", "wheres", "when", "how", "hows", "is",
    "are", "was", "were", "did", "does", "do", "any", "has", "have",
];

/// What a tool's name or a request says about changing things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Reads,
    Writes,
    /// Reading and writing verbs ("get_or_create", "find the invoice and send it").
    Both,
    /// No verb of either list.
    Neither,
}

struct Tables {
    related: HashMap<String, Vec<String>>,
    actions: HashMap<String, Action>,
    reads: Vec<String>,
}

/// A table's word as `tokens::words` gives it; `None` for a word it drops or splits (the tests
/// make sure there is none).
fn stemmed(word: &str) -> Option<String> {
    match tokens::words(word).as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut related: HashMap<String, Vec<String>> = HashMap::new();
        for group in GROUPS {
            let stems: Vec<String> = group.iter().filter_map(|w| stemmed(w)).collect();
            for s in &stems {
                let entry = related.entry(s.clone()).or_default();
                for r in &stems {
                    if r != s && !entry.contains(r) {
                        entry.push(r.clone());
                    }
                }
            }
        }
        let reads: Vec<String> = READS.iter().filter_map(|w| stemmed(w)).collect();
        let mut actions: HashMap<String, Action> = HashMap::new();
        for w in &reads {
            actions.insert(w.clone(), Action::Reads);
        }
        for w in WRITES.iter().filter_map(|w| stemmed(w)) {
            actions.insert(w, Action::Writes);
        }
        Tables { related, actions, reads }
    })
}

/// The words related to `word` (a word as `tokens::words` gives it), itself left out.
pub fn related(word: &str) -> &'static [String] {
    tables().related.get(word).map_or(&[], Vec::as_slice)
}

/// The reading verbs, as `tokens::words` gives them.
pub fn reads() -> &'static [String] {
    &tables().reads
}

/// What `words` (a name's or a request's, as `tokens::words` gives them) say about changing
/// things: the verbs among them read, write, both or neither.
pub fn action(words: &[String]) -> Action {
    let (mut reads, mut writes) = (false, false);
    for w in words {
        match tables().actions.get(w) {
            Some(Action::Reads) => reads = true,
            Some(Action::Writes) => writes = true,
            _ => {}
        }
    }
    match (reads, writes) {
        (true, false) => Action::Reads,
        (false, true) => Action::Writes,
        (true, true) => Action::Both,
        (false, false) => Action::Neither,
    }
}

/// Whether `text` is a question: it opens with a question word ("what's", "which", "is there")
/// or holds a question mark ("I'm off to Oslo. Will it rain?").
pub fn asks(text: &str) -> bool {
    let first = text.split_whitespace().next().unwrap_or("");
    let first: String = first.chars().filter(|c| c.is_alphanumeric()).collect::<String>().to_lowercase();
    QUESTIONS.contains(&first.as_str()) || text.contains('?')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        tokens::words(text)
    }

    #[test]
    fn relates_the_words_of_a_group_as_the_tokenizer_gives_them() {
        let folder = related(&tokens::stem("folders"));
        assert!(folder.contains(&tokens::stem("directory")), "{folder:?}");
        assert!(!folder.contains(&tokens::stem("folder")));
        let erase = related(&tokens::stem("erasing"));
        assert!(erase.contains(&tokens::stem("delete")), "{erase:?}");
        assert!(related("zebra").is_empty());
    }

    #[test]
    fn every_word_of_the_tables_survives_the_tokenizer() {
        let lists = GROUPS.iter().copied().chain([READS, WRITES]);
        for list in lists {
            for w in list {
                assert_eq!(tokens::words(w).len(), 1, "{w:?} in {list:?}");
            }
        }
        for w in READS {
            assert!(!WRITES.contains(w), "{w} reads and writes");
        }
    }

    #[test]
    fn tells_reading_from_writing() {
        for (name, expected) in [
            ("github__list_issues", Action::Reads),
            ("kubernetes__get_pod_logs", Action::Reads),
            ("github__create_issue", Action::Writes),
            ("gmail__send_email", Action::Writes),
            ("docker__container_logs", Action::Neither),
            ("db__get_or_create", Action::Both),
        ] {
            assert_eq!(action(&words(name)), expected, "{name}");
        }
        assert_eq!(action(&words("show me the open tickets")), Action::Reads);
        assert_eq!(action(&words("find the invoice and send it to Bob")), Action::Both);
    }

    #[test]
    fn knows_a_question() {
        for q in
            ["What's on my calendar", "which pods are running", "is it raining in Oslo", "Off to Oslo. Rain?"]
        {
            assert!(asks(q), "{q}");
        }
        for q in ["show my calendar", "can you send the report", "", "   "] {
            assert!(!asks(q), "{q}");
        }
    }
}
