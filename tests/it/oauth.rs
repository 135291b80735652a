//! Remote servers that ask for OAuth: a fake authorization server and MCP server in one stub
//! (protected-resource metadata, RFC 8414 metadata, registration, an authorization endpoint that
//! redirects at once, a token endpoint that rotates refresh tokens), and the hub signing in
//! through its API as a person would. The tokens it issues must never show anywhere but
//! `<data dir>/oauth/`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Hub, Stub, dep, wait_for};

#[derive(Default)]
struct Issued {
    base: String,
    /// The access token the server takes now (only the latest).
    access: Option<String>,
    refresh: Option<String>,
    serial: u32,
    refreshes: u32,
    expires_in: u64,
    revoked: bool,
    challenge: String,
    resources: Vec<String>,
    every_token: Vec<String>,
    /// Every `Authorization` the MCP endpoint received.
    authorizations: Vec<String>,
}

struct Fake {
    state: Arc<Mutex<Issued>>,
    _stub: Stub,
    url: String,
}

fn query(url: &str, key: &str) -> String {
    let q = url.split_once('?').map_or("", |(_, q)| q);
    let v = q.split('&').find_map(|kv| kv.strip_prefix(&format!("{key}="))).unwrap_or("");
    percent_decode(v)
}

fn percent_decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

impl Fake {
    fn start(expires_in: u64) -> Fake {
        let state = Arc::new(Mutex::new(Issued { expires_in, ..Issued::default() }));
        let s = state.clone();
        let stub = Stub::start(0, move |mut rq| {
            let mut body = String::new();
            let _ = rq.as_reader().read_to_string(&mut body);
            let url = rq.url().to_string();
            let path = url.split('?').next().unwrap_or("").to_string();
            let auth =
                rq.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.to_string());
            let (status, headers, text) = answer(&s, rq.method().as_str(), &path, &url, auth, &body);
            let mut resp = tiny_http::Response::from_string(text).with_status_code(status);
            for (k, v) in headers {
                resp = resp.with_header(tiny_http::Header::from_bytes(k, v.as_bytes()).unwrap());
            }
            let _ = rq.respond(resp);
        });
        state.lock().unwrap().base = stub.url.clone();
        Fake { url: format!("{}/mcp", stub.url), state, _stub: stub }
    }
}

type Answer = (u16, Vec<(&'static str, String)>, String);

fn answer(
    s: &Mutex<Issued>,
    method: &str,
    path: &str,
    url: &str,
    auth: Option<String>,
    body: &str,
) -> Answer {
    let mut st = s.lock().unwrap();
    let base = st.base.clone();
    let json_ = |v: Value| (200, vec![("Content-Type", "application/json".to_string())], v.to_string());
    match (method, path) {
        ("GET", "/.well-known/oauth-protected-resource/mcp") => {
            json_(json!({"resource": format!("{base}/mcp"), "authorization_servers": [base]}))
        }
        ("GET", "/.well-known/oauth-authorization-server") => json_(json!({
            "issuer": base,
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "registration_endpoint": format!("{base}/register"),
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
            "token_endpoint_auth_methods_supported": ["none"],
        })),
        ("POST", "/register") => {
            let v: Value = serde_json::from_str(body).unwrap_or_default();
            assert_eq!(v["application_type"], "native", "{v}");
            (
                201,
                vec![("Content-Type", "application/json".into())],
                json!({"client_id": "hub-client"}).to_string(),
            )
        }
        ("GET", "/authorize") => {
            st.challenge = query(url, "code_challenge");
            st.resources.push(query(url, "resource"));
            let to = format!(
                "{}?code=the-code&state={}&iss={}",
                query(url, "redirect_uri"),
                query(url, "state"),
                base
            );
            (302, vec![("Location", to)], String::new())
        }
        ("POST", "/token") => {
            let form = |k: &str| query(&format!("?{body}"), k);
            st.resources.push(form("resource"));
            match form("grant_type").as_str() {
                "authorization_code" => {
                    use sha2::Digest;
                    let digest = sha2::Sha256::digest(form("code_verifier").as_bytes());
                    let challenge = base64url(&digest);
                    if form("code") != "the-code" || challenge != st.challenge {
                        return (400, vec![], json!({"error": "invalid_grant"}).to_string());
                    }
                }
                "refresh_token" if !st.revoked && Some(form("refresh_token")) == st.refresh => {
                    st.refreshes += 1
                }
                _ => return (400, vec![], json!({"error": "invalid_grant"}).to_string()),
            }
            st.serial += 1;
            let (access, refresh) = (format!("AT-sekrit-{}", st.serial), format!("RT-sekrit-{}", st.serial));
            st.every_token.extend([access.clone(), refresh.clone()]);
            st.access = Some(access.clone());
            st.refresh = Some(refresh.clone());
            json_(
                json!({"access_token": access, "refresh_token": refresh, "token_type": "Bearer", "expires_in": st.expires_in}),
            )
        }
        ("POST", "/mcp") => {
            st.authorizations.extend(auth.clone());
            let ok = matches!((&auth, &st.access), (Some(a), Some(t)) if *a == format!("Bearer {t}"));
            if !ok {
                let challenge =
                    format!(r#"Bearer resource_metadata="{base}/.well-known/oauth-protected-resource/mcp""#);
                return (401, vec![("WWW-Authenticate", challenge)], String::new());
            }
            let msg: Value = serde_json::from_str(body).unwrap_or_default();
            let result = match msg["method"].as_str().unwrap_or("") {
                "initialize" => json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                    "serverInfo": {"name": "fake", "version": "1"}}),
                "tools/list" => json!({"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}),
                "tools/call" => json!({"content": [{"type": "text", "text": "hi"}]}),
                m if m.starts_with("notifications/") => return (202, vec![], String::new()),
                _ => {
                    let e = json!({"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32601, "message": "no"}});
                    return json_(e);
                }
            };
            json_(json!({"jsonrpc": "2.0", "id": msg["id"], "result": result}))
        }
        _ => (404, vec![], String::new()),
    }
}

fn base64url(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    let mut bits = 0u32;
    let mut n = 0;
    for &b in bytes {
        bits = (bits << 8) | u32::from(b);
        n += 8;
        while n >= 6 {
            n -= 6;
            out.push(A[((bits >> n) & 63) as usize] as char);
        }
    }
    if n > 0 {
        out.push(A[((bits << (6 - n)) & 63) as usize] as char);
    }
    out
}

fn hub_for(fake: &Fake) -> Hub {
    let servers = json!({"servers": {"remote": {"type": "http", "url": fake.url, "auto_start": true,
        "restart_backoff": 0.1}}});
    // At trace level, so that no log line, however detailed, may carry a token.
    Hub::builder().servers(&servers.to_string()).env("AGENTHUB_LOG_LEVEL", "trace").start()
}

fn wait_status(hub: &Hub, status: &str) -> Value {
    wait_for(&format!("remote {status}"), Duration::from_secs(20), || {
        let s = hub.get("/servers/remote").json();
        (s["status"] == status).then_some(s)
    })
}

/// What a person does: asks for the URL and follows it (the fake redirects at once to the hub).
fn sign_in(hub: &Hub) -> (u16, String) {
    let r = hub.get("/servers/remote/auth");
    assert_eq!(r.status, 200, "{}", r.text());
    let url = r.json()["authorization_url"].as_str().unwrap().to_string();
    assert!(url.contains("code_challenge_method=S256") && url.contains("resource="), "{url}");
    let mut resp = ureq::get(&url).config().http_status_as_error(false).build().call().unwrap();
    (resp.status().as_u16(), resp.body_mut().read_to_string().unwrap())
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { files_under(&p, out) } else { out.push(p) }
    }
}

#[test]
fn a_person_signs_in_once_and_the_tokens_stay_out_of_sight() {
    let fake = Fake::start(3600);
    let hub = hub_for(&fake);
    let s = wait_status(&hub, "AUTH_REQUIRED");
    assert!(s["last_error"].as_str().unwrap().contains("/servers/remote/auth"), "{s}");

    // The callback takes no token, and nothing without a flow's state.
    let r = hub.get("/oauth/callback?code=x&state=forged");
    assert_eq!(r.status, 400, "{}", r.text());

    let (status, page) = sign_in(&hub);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Signed in to remote"), "{page}");
    wait_status(&hub, "RUNNING");
    let r = hub.post_json("/mcp/remote/tools/list", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["tools"][0]["name"], "echo");
    // A client's own Authorization never goes upstream: the server sees the hub's token only.
    let body = json!({"name": "echo", "arguments": {}}).to_string();
    let own = [("Authorization", "Bearer client-own-token"), ("Content-Type", "application/json")];
    let r = hub.request("POST", "/mcp/remote/tools/call", &own, body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = fake.state.lock().unwrap().authorizations.clone();
    assert!(!seen.is_empty() && seen.iter().all(|a| a.starts_with("Bearer AT-sekrit-")), "{seen:?}");
    let resources = fake.state.lock().unwrap().resources.clone();
    assert!(resources.iter().all(|r| *r == fake.url), "{resources:?}");

    // No token in any answer, the log, or the data dir but oauth/.
    let tokens = fake.state.lock().unwrap().every_token.clone();
    assert!(!tokens.is_empty());
    let mut seen = String::new();
    for path in
        ["/servers", "/servers/remote", "/health", "/activity", "/metrics", "/dashboard/state", "/catalog"]
    {
        seen.push_str(&hub.get(path).text());
    }
    let log = hub.log();
    assert!(log.contains("remote: signed in at"), "{log}");
    seen.push_str(&log);
    let data = hub.dir.path().join("data");
    let mut files = Vec::new();
    files_under(hub.dir.path(), &mut files);
    let kept = files.iter().find(|p| p.ends_with("oauth/remote.json")).expect("the sign-in is kept").clone();
    for f in files.iter().filter(|p| !p.starts_with(kept.parent().unwrap())) {
        seen.push_str(&String::from_utf8_lossy(&std::fs::read(f).unwrap_or_default()));
    }
    for t in &tokens {
        assert!(!seen.contains(t.as_str()), "token {t} shows outside oauth/ (data dir {})", data.display());
    }
    assert_eq!(std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&kept).unwrap();
    assert!(text.contains(tokens.last().unwrap()), "the latest refresh token is kept");

    // Sign out: the tokens are forgotten and the server waits for a person again.
    let r = hub.request("DELETE", "/servers/remote/auth", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    wait_status(&hub, "AUTH_REQUIRED");
    let text = std::fs::read_to_string(&kept).unwrap();
    assert!(!text.contains("access_token"), "{text}");
}

#[test]
fn tokens_refresh_ahead_of_expiry_and_a_revoked_refresh_waits_for_a_person() {
    // Tokens that expire (here within a second, so at half their life) are refreshed before
    // they are used.
    let fake = Fake::start(1);
    let hub = hub_for(&fake);
    wait_status(&hub, "AUTH_REQUIRED");
    let (status, page) = sign_in(&hub);
    assert_eq!(status, 200, "{page}");
    wait_status(&hub, "RUNNING");
    std::thread::sleep(Duration::from_millis(1100));
    let r = hub.post_json("/mcp/remote/tools/list", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(fake.state.lock().unwrap().refreshes >= 1, "a refresh ahead of expiry");

    // The refresh token revoked and the access token refused: AUTH_REQUIRED, no restart loop.
    {
        let mut st = fake.state.lock().unwrap();
        st.revoked = true;
        st.access = None;
    }
    let _ = hub.post_json("/mcp/remote/tools/list", &json!({}));
    let s = wait_status(&hub, "AUTH_REQUIRED");
    std::thread::sleep(Duration::from_millis(500));
    let again = hub.get("/servers/remote").json();
    assert_eq!(again["status"], "AUTH_REQUIRED", "{again}");
    assert_eq!(again["restart_count"], s["restart_count"], "no restarts while it waits");
}

#[test]
fn agenthub_auth_prints_the_url_and_waits_until_the_server_runs() {
    use std::io::BufRead;
    let fake = Fake::start(3600);
    let hub = hub_for(&fake);
    wait_status(&hub, "AUTH_REQUIRED");
    let mut cli = std::process::Command::new(crate::harness::BIN)
        .args(["auth", "remote", "--url", &format!("http://{}", hub.addr)])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(cli.stdout.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.trim().starts_with("http").then(|| l.trim().to_string()))
        .expect("the authorization URL");
    let resp = ureq::get(&url).call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let done = wait_for("agenthub auth to exit", Duration::from_secs(20), || cli.try_wait().unwrap());
    assert!(done.success());
    assert!(lines.map_while(Result::ok).any(|l| l.contains("remote: RUNNING")));
}

#[test]
fn a_sign_in_survives_a_restart_of_the_hub() {
    let fake = Fake::start(3600);
    let data = crate::harness::TempDir::new("oauth-data");
    let data_dir = data.path().to_str().unwrap().to_string();
    let servers =
        json!({"servers": {"remote": {"type": "http", "url": fake.url, "auto_start": true}}}).to_string();
    let hub = Hub::builder().servers(&servers).env("AGENTHUB_DATA_DIR", &data_dir).start();
    wait_status(&hub, "AUTH_REQUIRED");
    assert_eq!(sign_in(&hub).0, 200);
    wait_status(&hub, "RUNNING");
    drop(hub);

    let hub = Hub::builder().servers(&servers).env("AGENTHUB_DATA_DIR", &data_dir).start();
    wait_status(&hub, "RUNNING");
    let r = hub.post_json("/mcp/remote/tools/list", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(fake.state.lock().unwrap().serial, 1, "no second sign-in");
}

#[test]
fn a_person_signs_in_from_the_dashboard_in_a_browser() {
    let fake = Fake::start(3600);
    let hub = hub_for(&fake);
    wait_status(&hub, "AUTH_REQUIRED");
    let out = std::process::Command::new("node")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/signin.mjs"))
        .arg(format!("http://{}", hub.addr))
        .env("PLAYWRIGHT_CORE_DIR", dep("browser/node_modules").join("playwright-core"))
        .output()
        .expect("node");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("signin: ok"), "{text}\n--- hub log ---\n{}", hub.log());
    assert_eq!(hub.get("/servers/remote").json()["status"], "RUNNING");
}
