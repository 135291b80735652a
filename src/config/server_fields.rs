//! The fields a server object may have, and what an unknown one most likely meant.

/// Every field a server object may have; anything else is a warning.
pub(super) const KNOWN_FIELDS: &[&str] = &[
    "transport",
    "type",
    "command",
    "args",
    "env",
    "envFile",
    "cwd",
    "package",
    "ignore_scripts",
    "url",
    "serverUrl",
    "headers",
    "oauth",
    "auto_start",
    "on_demand",
    "idle_timeout",
    "restart_on_failure",
    "max_restarts",
    "restart_backoff",
    "restart_backoff_max",
    "handshake_timeout",
    "health_check_interval",
    "request_timeout",
    "max_request_timeout",
    "sampling",
    "sampling_model",
    "elicitation",
    "roots",
    "description",
    "enabled",
    "disabled",
];

/// A field name that is not known, with the known one it most likely meant.
pub(super) fn unknown_field(key: &str) -> String {
    let squash = |s: &str| s.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_lowercase();
    let k = squash(key);
    let near = |f: &&&str| squash(f) == k || (k.len() > 4 && edits(&squash(f), &k) <= 2);
    match KNOWN_FIELDS.iter().find(near) {
        Some(f) => format!("unknown field (did you mean \"{f}\"?); ignored"),
        None => "unknown field; ignored".to_string(),
    }
}

/// The edit distance between two short words.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
