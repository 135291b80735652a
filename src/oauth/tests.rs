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
