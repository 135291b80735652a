//! Request guards that run before routing: DNS-rebinding protection (Origin and Host), CORS for
//! local origins, and the optional bearer token. Pure functions over header values.

use crate::config::is_loopback_host;

/// Which origins and hosts the hub answers.
pub struct Policy {
    /// Extra origins (`https://app.example`) or hosts (`hub.lan:9090`, `hub.lan`), lower case.
    pub allowed: Vec<String>,
    pub token: Option<String>,
}

/// The host part of `host[:port]` / `[v6]:port`, lower case.
fn host_of(authority: &str) -> String {
    let a = authority.trim().to_ascii_lowercase();
    if let Some(rest) = a.strip_prefix('[') {
        return match rest.find(']') {
            Some(i) => format!("[{}]", &rest[..i]),
            None => a,
        };
    }
    match a.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h.to_string(),
        _ => a,
    }
}

fn is_local_name(host: &str) -> bool {
    is_loopback_host(host) || host.ends_with(".localhost")
}

impl Policy {
    /// A `Host` header is acceptable when it names this machine or an allowed host.
    pub fn host_ok(&self, host: Option<&str>) -> bool {
        let Some(authority) = host else {
            return true; // HTTP/1.0 clients send none; Origin still guards browsers
        };
        let h = host_of(authority);
        is_local_name(&h)
            || self
                .allowed
                .iter()
                .any(|a| *a == authority.trim().to_ascii_lowercase() || host_of(strip_scheme(a)) == h)
    }

    /// An `Origin` header is acceptable when absent (not a browser), local, or allowed.
    pub fn origin_ok(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        let o = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        let Some((scheme, authority)) = o.split_once("://") else {
            return false; // "null" and other opaque origins
        };
        if scheme != "http" && scheme != "https" {
            return false;
        }
        is_local_name(&host_of(authority)) || self.allowed.iter().any(|a| *a == o || *a == authority)
    }

    /// Whether the `Authorization` header carries the token (always true without one).
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let Some(given) = authorization.and_then(|a| {
            let (scheme, rest) = a.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        }) else {
            return false;
        };
        constant_time_eq(given.as_bytes(), token.as_bytes())
    }
}

fn strip_scheme(s: &str) -> &str {
    s.split_once("://").map_or(s, |(_, rest)| rest)
}

/// Compares without an early exit, so timing does not reveal a matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Methods and headers a browser may use cross-origin (for preflight answers).
pub const CORS_METHODS: &str = "GET, POST, PUT, DELETE, OPTIONS";
pub const CORS_HEADERS: &str =
    "Content-Type, Authorization, Accept, X-Client-Name, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID";
pub const CORS_EXPOSE: &str = "Mcp-Session-Id, MCP-Protocol-Version";

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str], token: Option<&str>) -> Policy {
        Policy { allowed: allowed.iter().map(|s| s.to_string()).collect(), token: token.map(Into::into) }
    }

    #[test]
    fn hosts() {
        let p = policy(&["hub.lan"], None);
        for (host, ok) in [
            (None, true),
            (Some("localhost:9090"), true),
            (Some("127.0.0.1:9090"), true),
            (Some("127.0.0.1"), true),
            (Some("[::1]:9090"), true),
            (Some("app.localhost:3000"), true),
            (Some("LOCALHOST"), true),
            (Some("hub.lan:9090"), true),
            (Some("evil.example"), false),
            (Some("evil.example:9090"), false),
            (Some("192.168.1.5:9090"), false),
            (Some("localhost.evil.example"), false),
        ] {
            assert_eq!(p.host_ok(host), ok, "{host:?}");
        }
    }

    #[test]
    fn origins() {
        let p = policy(&["https://app.example"], None);
        for (origin, ok) in [
            (None, true),
            (Some("http://localhost:3000"), true),
            (Some("http://127.0.0.1:9090"), true),
            (Some("https://[::1]"), true),
            (Some("https://app.example"), true),
            (Some("https://app.example/"), true),
            (Some("http://evil.example"), false),
            (Some("http://localhost.evil.example"), false),
            (Some("null"), false),
            (Some("file://"), false),
            (Some("chrome-extension://abc"), false),
        ] {
            assert_eq!(p.origin_ok(origin), ok, "{origin:?}");
        }
    }

    #[test]
    fn bearer_token() {
        let open = policy(&[], None);
        assert!(open.authorized(None));
        let p = policy(&[], Some("s3cret"));
        for (auth, ok) in [
            (None, false),
            (Some("Bearer s3cret"), true),
            (Some("bearer   s3cret "), true),
            (Some("Bearer s3cre"), false),
            (Some("Bearer s3cretx"), false),
            (Some("Basic s3cret"), false),
            (Some("s3cret"), false),
        ] {
            assert_eq!(p.authorized(auth), ok, "{auth:?}");
        }
    }
}
