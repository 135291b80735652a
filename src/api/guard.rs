//! Request guards that run before routing: DNS-rebinding protection (Origin and Host), which
//! cross-origin requests may reach which routes (`check`), CORS for local origins, and the
//! optional bearer token (`refusal`, all of them in order). Pure functions over header values.

use crate::config::is_loopback_host;
use crate::front::{Reply, Req};

/// Which origins and hosts the hub answers.
pub struct Policy {
    /// Extra origins (`https://app.example`) or hosts (`hub.lan:9090`, `hub.lan`), lower case.
    pub allowed: Vec<String>,
    pub token: Option<String>,
    /// Whether a bearer value is a client's token of the tokens file (`AGENTHUB_TOKENS_FILE`):
    /// it reaches the MCP endpoints (its profile applies) and `/health`, not the rest.
    pub client_token: Box<dyn Fn(&str) -> bool + Send + Sync>,
}

/// Who a request's bearer token says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The hub's token (or no token is needed).
    Hub,
    /// A client's token from the tokens file.
    Client,
    /// Neither.
    Denied,
}

/// The bearer value of an `Authorization` header.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, rest) = authorization?.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// What a client's token reaches: the MCP endpoints (the REST relay too) and `/health`.
fn client_surface(path: &str) -> bool {
    let under = |p: &str| path.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    under("/mcp") || under("/health")
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
        is_local_name(&host_of(authority)) || self.listed(origin)
    }

    /// Whether `AGENTHUB_ALLOWED_ORIGINS` names this origin (or its authority).
    fn listed(&self, origin: &str) -> bool {
        let o = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        let authority = strip_scheme(&o);
        self.allowed.iter().any(|a| *a == o || a == authority)
    }

    /// Whether the `Authorization` header carries the token (always true without one).
    #[cfg(test)]
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        self.access(authorization) == Access::Hub
    }

    /// Whose token the `Authorization` header carries: the hub's (or none is needed), a
    /// client's of the tokens file, or neither.
    pub fn access(&self, authorization: Option<&str>) -> Access {
        let given = bearer(authorization);
        if let (Some(token), Some(given)) = (&self.token, given) {
            if constant_time_eq(given.as_bytes(), token.as_bytes()) {
                return Access::Hub;
            }
        }
        match given {
            // Only its SHA-256 is compared: timing tells nothing of a token.
            Some(given) if (self.client_token)(given) => Access::Client,
            _ if self.token.is_none() => Access::Hub,
            _ => Access::Denied,
        }
    }
}

/// What the Origin check decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No Origin (not a browser), or the hub's own page: no CORS headers.
    Allow,
    /// Cross-origin and allowed: the answer carries CORS headers for this origin.
    AllowCors(String),
    /// 403, and why.
    Refuse(&'static str),
}

impl Verdict {
    /// The origin to name in `Access-Control-Allow-Origin`, if any.
    pub fn cors_origin(self) -> Option<String> {
        match self {
            Verdict::AllowCors(o) => Some(o),
            Verdict::Allow | Verdict::Refuse(_) => None,
        }
    }
}

/// Which origins may send this request. A foreign Origin is refused everywhere (DNS
/// rebinding). A local page of another origin (any `localhost` port) keeps CORS only where
/// browser-based MCP clients such as the Inspector need it (`open_to_local_pages`): the MCP
/// endpoints, `/health` and the dashboard's page. Everything else takes the hub's own origin or
/// an entry of `AGENTHUB_ALLOWED_ORIGINS`: a page on some other local port must neither manage
/// the hub (add a server: a command the hub runs) nor read what it holds of other clients
/// (configurations, logs, the activity feed, pipeline runs and their results, metrics, the
/// dashboard's state). A preflight is judged as the request it announces.
pub fn check(policy: &Policy, req: &Req) -> Verdict {
    let Some(origin) = req.header("origin") else {
        return Verdict::Allow;
    };
    let host = req.header("host");
    if same_origin(origin, host) && policy.host_ok(host) {
        return Verdict::Allow;
    }
    if !policy.origin_ok(Some(origin)) {
        return Verdict::Refuse("requests from this Origin are not allowed");
    }
    let method = match req.method.as_str() {
        "OPTIONS" => req.header("access-control-request-method").unwrap_or("OPTIONS").trim(),
        m => m,
    };
    if !open_to_local_pages(method, &req.path) && !policy.listed(origin) {
        return Verdict::Refuse(CROSS_ORIGIN_REFUSED);
    }
    Verdict::AllowCors(origin.to_string())
}

/// Whether the Origin is the request's own: `Host` under http, or under https (a TLS proxy in
/// front of the hub), default ports aside.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let o = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let Some((scheme, authority)) = o.split_once("://") else { return false };
    let default_port = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let h = host.trim().to_ascii_lowercase();
    authority.strip_suffix(default_port).unwrap_or(authority) == h.strip_suffix(default_port).unwrap_or(&h)
}

/// Why a local page of another origin is refused.
const CROSS_ORIGIN_REFUSED: &str = "cross-origin requests to the management API and to the hub's data are refused; \
     other local pages reach only /mcp and /health (AGENTHUB_ALLOWED_ORIGINS lists the origins allowed)";

/// What a local page of another origin may reach: the MCP endpoints (any method: the REST relay
/// too), and reads of `/health` (status only) and of the dashboard's page (no data). An
/// allow-list, so a route added later is closed to other pages until it is named here.
fn open_to_local_pages(method: &str, path: &str) -> bool {
    let under =
        |prefix: &str| path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if under("/mcp") {
        return true;
    }
    let read = matches!(method, "GET" | "HEAD" | "OPTIONS");
    let health = path == "/health" || path.strip_prefix("/health/").is_some_and(|n| !n.contains('/'));
    read && (health || matches!(path, "/" | "/dashboard"))
}

fn strip_scheme(s: &str) -> &str {
    s.split_once("://").map_or(s, |(_, rest)| rest)
}

/// What answers without the token: the dashboard's page (it holds no data and asks for the
/// token itself), the redirect to it, and a sign-in's callback (its `state` is the check): a
/// browser cannot send a bearer header on navigation; and `/health/ready`, which says only
/// "starting" or "ready" (an orchestrator's HTTP probe carries no token).
pub fn is_public(method: &str, path: &str) -> bool {
    matches!(method, "GET" | "HEAD")
        && matches!(path, "/" | "/dashboard" | "/oauth/callback" | "/health/ready")
}

/// Compares without an early exit, so timing does not reveal a matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Methods and headers a browser may use cross-origin (for preflight answers).
/// The refusal a request gets before its body is read, if any: Host, Origin, a CORS
/// preflight's answer, the token.
pub fn refusal(policy: &Policy, req: &Req) -> Option<Reply> {
    if !policy.host_ok(req.header("host")) {
        return Some(Reply::error(403, "forbidden_origin", "Host header does not name this machine"));
    }
    if let Verdict::Refuse(why) = check(policy, req) {
        return Some(Reply::error(403, "forbidden_origin", why));
    }
    if req.method == "OPTIONS" {
        return Some(
            Reply::empty(204)
                .with_header("Access-Control-Allow-Methods", CORS_METHODS)
                .with_header("Access-Control-Allow-Headers", CORS_HEADERS)
                .with_header("Access-Control-Max-Age", "600"),
        );
    }
    match policy.access(req.header("authorization")) {
        Access::Hub => None,
        Access::Client if client_surface(&req.path) || is_public(&req.method, &req.path) => None,
        Access::Client => Some(Reply::error(
            403,
            "forbidden",
            "this token is a client's (AGENTHUB_TOKENS_FILE): it reaches /mcp and /health; the rest of the API takes AGENTHUB_TOKEN",
        )),
        Access::Denied if is_public(&req.method, &req.path) => None,
        Access::Denied => Some(
            Reply::error(401, "unauthorized", "missing or wrong bearer token")
                .with_header("WWW-Authenticate", "Bearer"),
        ),
    }
}

pub const CORS_METHODS: &str = "GET, POST, PUT, DELETE, OPTIONS";
pub const CORS_HEADERS: &str = "Content-Type, Authorization, Accept, X-Client-Name, X-Request-Id, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID";

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str], token: Option<&str>) -> Policy {
        Policy {
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
            token: token.map(Into::into),
            client_token: Box::new(|t| t == "client-token"),
        }
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
    fn cross_origin_requests_by_route() {
        use Verdict::*;
        let p = policy(&["https://app.example"], None);
        let host = "127.0.0.1:9090";
        let refused = Refuse(CROSS_ORIGIN_REFUSED);
        let foreign = Refuse("requests from this Origin are not allowed");
        let cors = |o: &str| AllowCors(o.to_string());
        let local = "http://localhost:3000";
        // method, path, Origin, Access-Control-Request-Method, verdict
        type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, Verdict);
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("POST", "/servers", None, None, Allow),
            ("POST", "/servers", Some("http://127.0.0.1:9090"), None, Allow),
            ("POST", "/servers", Some("http://127.0.0.1:9090/"), None, Allow),
            ("PUT", "/servers/x", Some("https://127.0.0.1:9090"), None, Allow),
            ("POST", "/servers", Some(local), None, refused.clone()),
            ("POST", "/servers/install", Some(local), None, refused.clone()),
            ("PUT", "/servers/x", Some(local), None, refused.clone()),
            ("DELETE", "/servers/x", Some("http://127.0.0.1:5173"), None, refused.clone()),
            ("POST", "/servers/x/start", Some("http://localhost:9090"), None, refused.clone()),
            ("GET", "/servers", Some(local), None, refused.clone()),
            ("HEAD", "/servers/x/logs", Some(local), None, refused.clone()),
            ("POST", "/cache/clear", Some(local), None, refused.clone()),
            ("POST", "/ollama/enhance", Some(local), None, refused.clone()),
            ("PATCH", "/health", Some(local), None, refused.clone()),
            ("OPTIONS", "/servers", Some(local), Some("POST"), refused.clone()),
            ("OPTIONS", "/servers/x", Some(local), Some("GET"), refused.clone()),
            ("POST", "/servers", Some("https://app.example"), None, cors("https://app.example")),
            ("POST", "/servers", Some("http://evil.example"), None, foreign.clone()),
            ("POST", "/mcp", Some("http://evil.example"), None, foreign.clone()),
            ("POST", "/mcp", Some("null"), None, foreign.clone()),
            ("POST", "/mcp", Some(local), None, cors(local)),
            ("GET", "/mcp", Some(local), None, cors(local)),
            ("DELETE", "/mcp", Some(local), None, cors(local)),
            ("POST", "/mcp/fx", Some(local), None, cors(local)),
            ("GET", "/mcp/fx", Some(local), None, cors(local)),
            ("DELETE", "/mcp/fx", Some(local), None, cors(local)),
            ("OPTIONS", "/mcp/fx", Some(local), Some("POST"), cors(local)),
            ("OPTIONS", "/health", Some(local), None, cors(local)),
            ("GET", "/health", Some(local), None, cors(local)),
            ("GET", "/health/fx", Some(local), None, cors(local)),
            ("GET", "/health/fx/x", Some(local), None, refused.clone()),
            ("GET", "/dashboard", Some(local), None, cors(local)),
            ("POST", "/mcp/fx/tools/call", Some(local), None, cors(local)),
            ("GET", "/activity", Some(local), None, refused.clone()),
            ("GET", "/pipelines", Some(local), None, refused.clone()),
            ("GET", "/pipelines/runs", Some(local), None, refused.clone()),
            ("GET", "/pipelines/runs/1", Some(local), None, refused.clone()),
            ("OPTIONS", "/pipelines/runs", Some(local), Some("GET"), refused.clone()),
            ("GET", "/metrics", Some(local), None, refused.clone()),
            ("GET", "/dashboard/state", Some(local), None, refused.clone()),
            ("GET", "/clients", Some(local), None, refused.clone()),
            ("GET", "/ollama/models", Some(local), None, refused.clone()),
            ("GET", "/activity", Some("https://app.example"), None, cors("https://app.example")),
            ("GET", "/activity", Some("http://127.0.0.1:9090"), None, Allow),
            ("POST", "/mcpx", Some(local), None, refused.clone()),
            ("GET", "/serversx", Some(local), None, refused.clone()),
        ];
        for (method, path, origin, preflight, expected) in cases {
            let mut headers = vec![("host".to_string(), host.to_string())];
            headers.extend(origin.map(|o| ("origin".to_string(), o.to_string())));
            headers.extend(preflight.map(|m| ("access-control-request-method".to_string(), m.to_string())));
            let req =
                Req { method: method.to_string(), path: path.to_string(), headers, ..Default::default() };
            assert_eq!(&check(&p, &req), expected, "{method} {path} from {origin:?} ({preflight:?})");
        }
        // Without a Host (HTTP/1.0) nothing is same-origin.
        let req = Req {
            method: "POST".into(),
            path: "/servers".into(),
            headers: vec![("origin".into(), "http://127.0.0.1:9090".into())],
            ..Default::default()
        };
        assert_eq!(check(&p, &req), refused);
        // A listed host in the Host header makes the hub's own origin there same-origin.
        let lan = policy(&["hub.lan"], None);
        let req = Req {
            method: "POST".into(),
            path: "/servers".into(),
            headers: vec![
                ("host".into(), "hub.lan:9090".into()),
                ("origin".into(), "http://hub.lan:9090".into()),
            ],
            ..Default::default()
        };
        assert_eq!(check(&lan, &req), Allow);
    }

    #[test]
    fn only_the_dashboard_page_is_public() {
        fn check(method: &str, path: &str, expected: bool) {
            assert_eq!(is_public(method, path), expected, "{method} {path}");
        }
        check("GET", "/", true);
        check("HEAD", "/dashboard", true);
        check("GET", "/dashboard", true);
        check("GET", "/dashboard/state", false);
        check("POST", "/dashboard", false);
        check("GET", "/dashboard/", false);
        check("GET", "/health", false);
        check("GET", "/health/ready", true);
        check("POST", "/health/ready", false);
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
        assert_eq!(p.access(Some("Bearer client-token")), Access::Client);
        assert_eq!(open.access(Some("Bearer client-token")), Access::Client, "its profile applies");
        assert_eq!(open.access(Some("Bearer other")), Access::Hub, "no token needed");
        assert_eq!(p.access(Some("Bearer other")), Access::Denied);
        assert!(client_surface("/mcp") && client_surface("/mcp/fs/tools/call") && client_surface("/health"));
        assert!(!client_surface("/servers") && !client_surface("/mcpx") && !client_surface("/profiles"));
    }
}
