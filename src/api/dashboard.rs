//! The dashboard: one embedded page (`assets/dashboard.html`), served with a strict
//! Content-Security-Policy that pins its inline script and style by sha256, and
//! `GET /dashboard/state`, everything the page polls gathered in one answer. The page acts
//! through the ordinary API, behind the same guards as any other client.

use std::sync::OnceLock;
use std::time::Instant;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::routes::Params;
use super::{query_param, round3};
use crate::app::App;
use crate::error::Result;
use crate::front::{Reply, Req};

/// The page, built into the binary.
pub const PAGE: &str = include_str!("../../assets/dashboard.html");
/// Events one poll carries at most (the page keeps the last 50).
const EVENTS_PER_POLL: usize = 50;
/// A session that sent nothing for this long, with no stream open, counts as idle.
const IDLE_SESSION: std::time::Duration = std::time::Duration::from_secs(300);

/// The page's policy: nothing but its own pinned script and style, requests to the hub only.
pub fn csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        format!(
            "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; connect-src 'self'; \
             img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            sha256_base64(inline(PAGE, "script")),
            sha256_base64(inline(PAGE, "style")),
        )
    })
}

/// The text between the page's first `<tag>` and `</tag>` (the one inline block of each).
fn inline<'a>(page: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let Some(start) = page.find(&open).map(|i| i + open.len()) else { return "" };
    let end = page[start..].find(&format!("</{tag}>")).map_or(page.len(), |i| start + i);
    &page[start..end]
}

fn sha256_base64(text: &str) -> String {
    base64(&Sha256::digest(text.as_bytes()))
}

/// Standard base64 with padding (CSP hash sources).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `GET /dashboard`.
pub fn page(_: &App, _: &Req, _: &Params) -> Result<Reply> {
    let mut r = Reply::empty(200);
    r.content_type = "text/html; charset=utf-8";
    r.body = PAGE.as_bytes().to_vec();
    Ok(r.with_header("Content-Security-Policy", csp())
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Referrer-Policy", "no-referrer")
        .with_header("Cache-Control", "no-cache"))
}

/// `GET /` goes to the dashboard.
pub fn root(_: &App, _: &Req, _: &Params) -> Result<Reply> {
    Ok(Reply::empty(302).with_header("Location", "/dashboard"))
}

/// `GET /dashboard/state?since=SEQ`: hub, servers (breaker, tool count), cache, Ollama with
/// per-model stats, MCP sessions (and how many are idle), the elicitations waiting for a
/// person, and the activity after `since`. Only in-memory reads.
pub fn state(app: &App, req: &Req, _: &Params) -> Result<Reply> {
    let since = query_param(&req.query, "since").and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(Reply::ok(&state_json(app, since, Instant::now())))
}

/// `GET /clients`: the client recipes (`clients::RECIPES`) with their entries for this hub as
/// the request reached it, for the page's "connect a client" panel.
pub fn clients(app: &App, req: &Req, _: &Params) -> Result<Reply> {
    let host = req.header("host").unwrap_or("127.0.0.1:9090");
    let hub = crate::clients::Hub::new(&format!("http://{host}"), app.settings.token.is_some());
    Ok(Reply::ok(&crate::clients::table_json(&hub)))
}

fn state_json(app: &App, since: u64, now: Instant) -> Value {
    let tools = app.gateway.tool_counts();
    let servers: Vec<Value> = app
        .servers
        .list()
        .iter()
        .map(|s| {
            let mut v = super::servers::server_status_json(s, now);
            v["circuit"] = json!(app.breakers.state(&s.name, now).as_str());
            v["tools"] = json!(tools.as_ref().and_then(|t| t.get(&s.name)));
            v["signed_in"] = json!(app.oauth.signed_in(&s.name));
            v
        })
        .collect();
    let ollama = app.enhancer.probe.current(now);
    let mut models = Map::new();
    for (model, s) in app.enhancer.stats() {
        let mean = if s.calls == 0 { 0.0 } else { s.total_ms / s.calls as f64 };
        models.insert(
            model,
            json!({"calls": s.calls, "sampling": s.sampling, "errors": s.errors, "mean_ms": round3(mean), "last_ms": round3(s.last_ms)}),
        );
    }
    let rules = app.enhancer.rules();
    let rules: Vec<&str> = rules.clients.keys().map(String::as_str).collect();
    json!({
        "hub": {
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": round3(now.duration_since(app.started).as_secs_f64()),
            "token": app.settings.token.is_some(),
        },
        "servers": servers,
        "cache": app.enhancer.cache_stats(),
        "ollama": {
            "status": if ollama.up { "up" } else { "down" },
            "circuit": app.breakers.state(crate::enhance::BREAKER, now).as_str(),
            "url": app.enhancer.client.base_url(),
            "models": ollama.models,
            "stats": models,
            "rules": rules,
        },
        "sessions": app.gateway.sessions.len(),
        "sessions_idle": app.gateway.sessions.idle(now, IDLE_SESSION),
        "session_idle_after_s": IDLE_SESSION.as_secs(),
        "elicitations": app.servers.elicitations(now),
        "events": app.activity.since(since, EVENTS_PER_POLL),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_encodes() {
        fn check(input: &str, expected: &str) {
            assert_eq!(base64(input.as_bytes()), expected, "{input}");
        }
        check("", "");
        check("f", "Zg==");
        check("fo", "Zm8=");
        check("foo", "Zm9v");
        check("foobar", "Zm9vYmFy");
    }

    #[test]
    fn csp_pins_the_embedded_script_and_style() {
        // Each hash is the sha256 of exactly what the browser sees between the tags.
        let script = PAGE.split("<script>").nth(1).and_then(|s| s.split("</script>").next()).unwrap();
        let style = PAGE.split("<style>").nth(1).and_then(|s| s.split("</style>").next()).unwrap();
        assert!(script.len() > 1000 && style.len() > 500);
        assert_eq!(PAGE.matches("<script").count(), 1, "one inline script, no external one");
        assert_eq!(PAGE.matches("<style").count(), 1);
        let policy = csp();
        assert!(policy.contains(&format!("script-src 'sha256-{}'", sha256_base64(script))), "{policy}");
        assert!(policy.contains(&format!("style-src 'sha256-{}'", sha256_base64(style))), "{policy}");
        assert!(policy.contains("connect-src 'self'") && policy.contains("frame-ancestors 'none'"));
        assert!(PAGE.len() < 50 * 1024, "the page is {} bytes", PAGE.len());
        for external in ["http://", "https://", "//fonts", "@import", "src=\""] {
            assert!(!PAGE.contains(external), "the page refers to {external}");
        }
    }
}
