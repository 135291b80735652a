use super::discovery::{Challenge, Found, Server};
use super::*;

fn found(resource_scopes: &[&str], as_scopes: &[&str]) -> Found {
    Found {
        resource: "http://rs/mcp".into(),
        server: Server {
            scopes_supported: as_scopes.iter().map(|s| s.to_string()).collect(),
            ..Server::fallback("http://as")
        },
        scopes_supported: resource_scopes.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn scope_choice() {
    fn check(
        f: &Found,
        pre: &[&str],
        challenge: Option<&str>,
        step_up: Option<&str>,
        expected: Option<&str>,
    ) {
        let pre =
            OAuthClient { scopes: pre.iter().map(|s| s.to_string()).collect(), ..OAuthClient::default() };
        let c = Challenge { scope: challenge.map(str::to_string), ..Challenge::default() };
        assert_eq!(scope_for(f, Some(&pre), &c, step_up).as_deref(), expected);
    }
    let plain = found(&["read", "write"], &[]);
    check(&plain, &[], Some("mcp:tools"), None, Some("mcp:tools"));
    check(&plain, &[], None, None, Some("read write"));
    check(&found(&[], &[]), &[], None, None, None);
    check(&plain, &["mine"], Some("mcp:tools"), None, Some("mine"));
    check(&plain, &[], Some("read"), Some("read admin"), Some("read admin"));
    check(&found(&["read"], &["read", "offline_access"]), &[], None, None, Some("read offline_access"));
}

/// A hub with one flow begun for server `s` at issuer `http://as` (`iss_supported` as given).
fn with_flow(iss_supported: bool, begun: Instant) -> OAuth {
    let oauth = OAuth::new(std::env::temp_dir().join(format!("agenthub-oauth-unit-{}", std::process::id())));
    let mut f = found(&[], &[]);
    f.server.iss_supported = iss_supported;
    f.server.token_endpoint = "http://127.0.0.1:9/token".into();
    let client = Client { client_id: "c".into(), client_secret: None, method: "none".into() };
    let flow = Flow {
        server: "s".into(),
        verifier: "v".into(),
        redirect_uri: "http://127.0.0.1:1/oauth/callback".into(),
        found: f,
        client,
        begun,
    };
    oauth.flows.lock().insert("st".into(), flow);
    oauth
}

#[test]
fn the_callback_checks_state_then_iss_before_the_code_is_redeemed() {
    fn check(iss_supported: bool, query: &str, expected: &str) {
        let err = with_flow(iss_supported, Instant::now()).finish(query).unwrap_err().to_string();
        assert!(err.contains(expected), "{query}: {err}");
    }
    check(true, "code=x", "no state");
    check(true, "code=x&state=other", "unknown or expired");
    check(true, "code=x&state=st&iss=http%3A%2F%2Fevil", "is not the issuer");
    check(true, "code=x&state=st&iss=http%3A%2F%2Fas%2F", "is not the issuer");
    check(true, "code=x&state=st", "lacks the iss");
    check(false, "code=x&state=st&iss=http%3A%2F%2Fevil", "is not the issuer");
    check(true, "state=st&error=access_denied", "refused the sign-in");
    // Past the checks, the code goes to the token endpoint (here nothing listens).
    check(true, "code=x&state=st&iss=http%3A%2F%2Fas", "unreachable");
    check(false, "code=x&state=st", "unreachable");
}

#[test]
fn a_flow_is_used_once_and_expires() {
    let oauth = with_flow(false, Instant::now());
    let _ = oauth.finish("code=x&state=st");
    assert!(oauth.finish("code=x&state=st").unwrap_err().to_string().contains("unknown or expired"));
    if let Some(old) = Instant::now().checked_sub(FLOW_TTL + Duration::from_secs(1)) {
        let oauth = with_flow(false, old);
        assert!(oauth.finish("code=x&state=st").unwrap_err().to_string().contains("unknown or expired"));
    }
}
