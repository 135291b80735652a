//! Server names. A name the hub uses in URLs (`/servers/<name>`, `/mcp/<name>`) and in the
//! aggregated endpoint's `server__tool` is 1-64 of `[A-Za-z0-9_-]`, without `__`, and not
//! `agenthub`. Files written for other clients hold names such as `Brave Search` or
//! `github.com`: those are kept for display, and a safe name is derived from them (`derive`).

/// Longest server name.
pub const MAX_NAME: usize = 64;

/// Server names: 1-64 of `[A-Za-z0-9_-]`, no `__` (the aggregated endpoint's separator), and not
/// `agenthub` (the hub's own tools).
pub fn validate_server_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("server name \"{name}\" must be 1 to {MAX_NAME} characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(format!("server name \"{name}\" may hold only letters, digits, '_' and '-'"));
    }
    if name.contains("__") {
        return Err(format!("server name \"{name}\" must not contain \"__\""));
    }
    if is_reserved(name) {
        return Err("server name \"agenthub\" is reserved".into());
    }
    Ok(())
}

pub fn is_reserved(name: &str) -> bool {
    name.eq_ignore_ascii_case("agenthub")
}

/// The safe name of a name as written in a file. A valid name is kept as it is. Any other is
/// derived: ASCII letters lowercased, digits, `-` and `_` kept, whitespace becomes `-` and
/// every other character `_`; a run of `-`/`_` keeps its first, none is left at either end,
/// and the result is cut to 64 characters (`Brave Search` → `brave-search`, `github.com` →
/// `github_com`). A name with nothing left is `server`. `agenthub` stays reserved: the caller
/// treats it as taken.
pub fn derive(written: &str) -> String {
    if validate_server_name(written).is_ok() {
        return written.to_string();
    }
    let mut out = String::with_capacity(written.len());
    for c in written.chars() {
        let c = match c {
            c if c.is_ascii_alphanumeric() => c.to_ascii_lowercase(),
            '-' | '_' => c,
            c if c.is_whitespace() => '-',
            _ => '_',
        };
        let separator = c == '-' || c == '_';
        if separator && (out.is_empty() || out.ends_with(['-', '_'])) {
            continue;
        }
        out.push(c);
    }
    out.truncate(MAX_NAME);
    while out.ends_with(['-', '_']) {
        out.pop();
    }
    if out.is_empty() { "server".to_string() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        for (n, ok) in [
            ("a", true),
            ("my-server_2", true),
            ("", false),
            ("a b", false),
            ("a.b", false),
            ("a__b", false),
            ("AgentHub", false),
        ] {
            assert_eq!(validate_server_name(n).is_ok(), ok, "{n}");
        }
        assert!(validate_server_name(&"x".repeat(64)).is_ok());
        assert!(validate_server_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn safe_names_are_derived() {
        fn check(written: &str, safe: &str) {
            assert_eq!(derive(written), safe, "{written:?}");
            assert!(validate_server_name(safe).is_ok() || is_reserved(safe), "{safe}");
        }
        check("memory", "memory");
        check("GitHub", "GitHub");
        check("Brave Search", "brave-search");
        check("github.com", "github_com");
        check("My  Server (beta)!", "my-server-beta");
        check("a__b", "a_b");
        check(" -x- ", "x");
        check("Café", "caf");
        check("日本", "server");
        check("...", "server");
        check(&format!("{} y", "x".repeat(70)), &"x".repeat(64));
        check(&format!("{}. y", "x".repeat(63)), &"x".repeat(63));
        check("agenthub", "agenthub");
    }
}
