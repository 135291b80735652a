//! What counts as a secret in a server's configuration, and the three things done with it:
//! masking it for the API (values of `env` and `headers`, the value of a secret-looking `args`
//! flag, URL userinfo and secret-looking query values become `***`), restoring what a client
//! sends back masked (`ServerConfig::unmasked`: a GET, edit, PUT round trip keeps the real
//! values), and redacting the values a server was started with from text the hub writes about
//! it (`Secrets`: `last_error`, the activity feed, the log).

use std::borrow::Cow;
use std::ops::Range;

use super::servers::ServerConfig;
use super::vars;

/// What a masked value reads as.
pub const MASK: &str = "***";

/// Shortest value redacted from text: shorter ones ("1", "on") would blot out ordinary words.
const MIN_REDACTED: usize = 4;

/// Flag and query names whose values are secret: `--api-key`, `--token`, `?access_token=`.
fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["token", "key", "secret", "passw", "credential"].iter().any(|w| n.contains(w))
}

/// Flags whose value is an HTTP header (`mcp-remote --header "Authorization: Bearer ..."`).
fn is_header_flag(flag: &str) -> bool {
    flag == "--header" || flag == "-H"
}

/// Where the value of a header (`Name: value`) is.
fn header_value(h: &str) -> Option<Range<usize>> {
    let colon = h.find(':')?;
    let start = colon + 1 + (h[colon + 1..].len() - h[colon + 1..].trim_start().len());
    (start < h.len()).then_some(start..h.len())
}

/// The secret parts of one flag's value, `value` starting at byte `at` of its arg.
fn secret_value(flag: &str, value: &str, at: usize) -> Vec<Range<usize>> {
    let shift = |r: Range<usize>| r.start + at..r.end + at;
    if value.is_empty() {
        Vec::new()
    } else if flag.starts_with("--") && looks_secret(flag) {
        std::iter::once(at..at + value.len()).collect()
    } else if is_header_flag(flag) {
        header_value(value).map(shift).into_iter().collect()
    } else {
        secret_url_parts(value).into_iter().map(shift).collect()
    }
}

/// Where the secret parts of `args` are: (index, byte range in that arg). The value after a
/// secret-looking `--flag` (or after the `=` of `--flag=value`), the value of a `--header`,
/// and the secret parts of any URL (userinfo, secret-looking query values).
fn secret_args(args: &[String]) -> Vec<(usize, Range<usize>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let takes_next = (arg.starts_with("--") && looks_secret(arg)) || is_header_flag(arg);
        if let Some((flag, value)) = arg.split_once('=').filter(|(f, _)| f.starts_with("--")) {
            out.extend(secret_value(flag, value, flag.len() + 1).into_iter().map(|r| (i, r)));
        } else if takes_next && args.get(i + 1).is_some_and(|n| !n.starts_with("--") && !n.is_empty()) {
            out.extend(secret_value(arg, &args[i + 1], 0).into_iter().map(|r| (i + 1, r)));
            i += 1;
        } else if !takes_next {
            out.extend(secret_url_parts(arg).into_iter().map(|r| (i, r)));
        }
        i += 1;
    }
    out
}

/// Where the secrets of a URL are: its userinfo and the values of secret-looking query keys.
fn secret_url_parts(url: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let Some(scheme_end) = url.find("://") else { return out };
    let start = scheme_end + 3;
    let end = url[start..].find(['/', '?', '#']).map_or(url.len(), |i| start + i);
    if let Some(at) = url[start..end].rfind('@') {
        out.push(start..start + at);
    }
    if let Some(q) = url[end..].find('?').map(|i| end + i + 1) {
        let q_end = url[q..].find('#').map_or(url.len(), |i| q + i);
        let mut pos = q;
        for pair in url[q..q_end].split('&') {
            if let Some((k, v)) = pair.split_once('=') {
                if looks_secret(k) && !v.is_empty() {
                    let v_start = pos + k.len() + 1;
                    out.push(v_start..v_start + v.len());
                }
            }
            pos += pair.len() + 1;
        }
    }
    out
}

/// `args` as the API shows them.
pub fn mask_args(args: &[String]) -> Vec<String> {
    let mut out = args.to_vec();
    // From the end, so the earlier ranges of one arg stay where they were.
    for (i, r) in secret_args(args).into_iter().rev() {
        out[i].replace_range(r, MASK);
    }
    out
}

/// A URL as the API shows it.
pub fn mask_url(url: &str) -> String {
    let mut out = url.to_string();
    // From the end, so the earlier ranges stay where they were.
    for r in secret_url_parts(url).into_iter().rev() {
        out.replace_range(r, MASK);
    }
    out
}

impl ServerConfig {
    /// This configuration, sent by a client to replace `current`, with every value the client
    /// got masked and sent back unchanged put back to the real one: an `env` or `headers` value
    /// of exactly `***` under a key `current` has, an arg equal to `current`'s masked arg at the
    /// same position, a URL equal to `current`'s masked URL.
    pub fn unmasked(mut self, current: &ServerConfig) -> ServerConfig {
        let keep = |new: &mut std::collections::BTreeMap<String, String>,
                    old: &std::collections::BTreeMap<String, String>| {
            for (k, v) in new.iter_mut() {
                if let (true, Some(real)) = (v == MASK, old.get(k)) {
                    v.clone_from(real);
                }
            }
        };
        keep(&mut self.env, &current.env);
        keep(&mut self.headers, &current.headers);
        let shown = mask_args(&current.args);
        for (i, arg) in self.args.iter_mut().enumerate() {
            if let (Some(s), Some(real)) = (shown.get(i), current.args.get(i)) {
                if arg == s && s != real {
                    arg.clone_from(real);
                }
            }
        }
        if let (Some(url), Some(real)) = (&mut self.url, &current.url) {
            if *url == mask_url(real) && url != real {
                url.clone_from(real);
            }
        }
        if let (Some(new), Some(old)) = (&mut self.oauth, &current.oauth) {
            if new.client_secret.as_deref() == Some(MASK) {
                new.client_secret.clone_from(&old.client_secret);
            }
        }
        self
    }

    /// The values this configuration would be started with that must not leak: every `env`
    /// and `headers` value and every masked part of `args` and `url`, as expanded, and the
    /// value of every `${VAR}` it uses.
    pub fn secrets(&self, env: &dyn Fn(&str) -> Option<String>) -> Secrets {
        let mut found = Vec::new();
        let mut x = |s: &str| {
            vars::expand(s, &mut |name: &str| {
                let v = vars::lookup(name, env, &self.scope).ok();
                found.extend(v.clone());
                v
            })
        };
        let mut values: Vec<String> = self.env.values().chain(self.headers.values()).map(|v| x(v)).collect();
        let args: Vec<String> = self.args.iter().map(|a| x(a)).collect();
        values.extend(secret_args(&args).into_iter().map(|(i, r)| args[i][r].to_string()));
        if let Some(url) = self.url.as_deref().map(&mut x) {
            values.extend(secret_url_parts(&url).into_iter().map(|r| url[r].to_string()));
        }
        for text in self.command.iter().chain(self.cwd.iter()) {
            x(text);
        }
        values.extend(found);
        values.extend(self.env_file_values(env).unwrap_or_default().into_iter().map(|(_, v)| v));
        Secrets::new(values)
    }
}

/// Known secret values, redacted as `***` wherever they appear in a text.
#[derive(Debug, Default)]
pub struct Secrets(Vec<String>);

impl Secrets {
    pub fn new(values: impl IntoIterator<Item = String>) -> Secrets {
        let mut v: Vec<String> = values.into_iter().filter(|s| s.chars().count() >= MIN_REDACTED).collect();
        // Longest first: a secret that contains a shorter one is replaced whole.
        v.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        v.dedup();
        Secrets(v)
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for s in &self.0 {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), MASK));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env_of;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn secret_looking_args_are_masked() {
        fn check(args: &[&str], shown: &[&str]) {
            assert_eq!(mask_args(&strings(args)), strings(shown), "{args:?}");
        }
        check(&["-y", "@scope/server"], &["-y", "@scope/server"]);
        check(&["--api-key", "abc", "--verbose"], &["--api-key", "***", "--verbose"]);
        check(&["--token=abc", "x"], &["--token=***", "x"]);
        check(&["--client-secret", "s", "--password", "p"], &["--client-secret", "***", "--password", "***"]);
        check(&["--api-key", "--verbose"], &["--api-key", "--verbose"]);
        check(&["--token="], &["--token="]);
        check(&["--port=80", "--name", "n"], &["--port=80", "--name", "n"]);
        check(&["--access-token"], &["--access-token"]);
        check(&["--access-token", "sbp_123"], &["--access-token", "***"]);
        check(&["--password=p", "--secret-file", "f"], &["--password=***", "--secret-file", "***"]);
        check(
            &["mcp-remote", "https://u:p@h/sse?api_key=k"],
            &["mcp-remote", "https://***@h/sse?api_key=***"],
        );
        check(&["--url=https://h/mcp?token=t&x=1"], &["--url=https://h/mcp?token=***&x=1"]);
        check(&["--header", "Authorization: Bearer abc"], &["--header", "Authorization: ***"]);
        check(&["-H", "X-Key:${KEY}", "--header=A: b"], &["-H", "X-Key:***", "--header=A: ***"]);
        check(&["--url", "https://h/mcp"], &["--url", "https://h/mcp"]);
    }

    #[test]
    fn url_userinfo_and_secret_query_values_are_masked() {
        fn check(url: &str, shown: &str) {
            assert_eq!(mask_url(url), shown, "{url}");
        }
        check("https://h.example/mcp", "https://h.example/mcp");
        check("https://u:p@h.example/mcp", "https://***@h.example/mcp");
        check("https://h.example/mcp?api_key=k1&x=2#f", "https://h.example/mcp?api_key=***&x=2#f");
        check("https://h.example/mcp?x=1&token=t", "https://h.example/mcp?x=1&token=***");
        check("https://h.example/a@b", "https://h.example/a@b");
    }

    #[test]
    fn masked_values_sent_back_keep_the_real_ones() {
        let current = ServerConfig {
            command: Some("srv".into()),
            args: strings(&["--api-key", "real-key", "--token=real-token", "plain"]),
            env: [("A".to_string(), "real-a".to_string()), ("B".to_string(), "real-b".to_string())].into(),
            url: Some("https://u:p@h.example/mcp?key=k".into()),
            headers: [("Authorization".to_string(), "Bearer t".to_string())].into(),
            ..Default::default()
        };
        let shown = ServerConfig {
            args: mask_args(&current.args),
            env: [("A", "***"), ("B", "new-b"), ("C", "***")].map(|(k, v)| (k.into(), v.into())).into(),
            url: Some(mask_url(current.url.as_deref().unwrap())),
            headers: [("Authorization".to_string(), "***".to_string())].into(),
            ..current.clone()
        };
        let back = shown.unmasked(&current);
        assert_eq!(back.args, current.args);
        assert_eq!(back.env["A"], "real-a");
        assert_eq!(back.env["B"], "new-b", "a changed value is the new one");
        assert_eq!(back.env["C"], "***", "a key the server did not have is taken as sent");
        assert_eq!(back.url, current.url);
        assert_eq!(back.headers["Authorization"], "Bearer t");
        // A new value at a masked position is the new one.
        let changed =
            ServerConfig { args: strings(&["--api-key", "other", "--token=***"]), ..current.clone() };
        assert_eq!(changed.unmasked(&current).args, strings(&["--api-key", "other", "--token=real-token"]));
    }

    #[test]
    fn secrets_are_redacted_from_text() {
        let cfg = ServerConfig {
            command: Some("${BIN}".into()),
            args: strings(&["--api-key", "${KEY}", "--name", "visible"]),
            env: [("T".to_string(), "pre-${TOKEN}".to_string()), ("D".to_string(), "1".to_string())].into(),
            ..Default::default()
        };
        let env = env_of(&[("BIN", "/usr/bin/srv"), ("KEY", "key-value"), ("TOKEN", "tok-value")]);
        let s = cfg.secrets(&env);
        fn check(s: &Secrets, text: &str, expected: &str) {
            assert_eq!(s.redact(text), expected, "{text}");
        }
        check(&s, "nothing here", "nothing here");
        check(&s, "TOKEN=tok-value; env pre-tok-value", "TOKEN=***; env ***");
        check(&s, "key key-value twice key-value", "key *** twice ***");
        check(&s, "ran /usr/bin/srv with D=1 --name visible", "ran *** with D=1 --name visible");
        assert!(matches!(s.redact("clean"), Cow::Borrowed(_)));
    }
}
