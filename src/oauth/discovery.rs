//! Finding a remote server's authorization server: RFC 9728 protected-resource metadata (from
//! the 401's `WWW-Authenticate` `resource_metadata`, else the well-known paths), then RFC 8414
//! or OpenID Connect discovery of the authorization server, with the 2025-03-26 fallbacks (no
//! resource metadata: the server's origin is the authorization server; no metadata there
//! either: `/authorize`, `/token`, `/register` at that origin). The URL building is pure.

use serde_json::Value;

/// What a `WWW-Authenticate: Bearer ...` challenge says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Challenge {
    pub resource_metadata: Option<String>,
    pub scope: Option<String>,
    pub error: Option<String>,
}

/// Parses the `Bearer` challenge's parameters (quoted or not); other schemes are ignored.
pub fn parse_challenge(header: &str) -> Challenge {
    let mut c = Challenge::default();
    let Some(at) = header.to_ascii_lowercase().find("bearer") else { return c };
    let mut rest = &header[at + 6..];
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        let Some((key, after)) = rest.split_once('=') else { break };
        let key = key.trim().to_ascii_lowercase();
        if key.contains(' ') {
            break; // the next scheme
        }
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (&q[..end], q.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim(), &after[end..])
        };
        let value = Some(value.to_string());
        match key.as_str() {
            "resource_metadata" => c.resource_metadata = value,
            "scope" => c.scope = value,
            "error" => c.error = value,
            _ => {}
        }
        rest = next;
    }
    c
}

/// `scheme://authority` and the path (no query, no trailing `/`) of a URL.
pub fn split_url(url: &str) -> (String, String) {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let Some((scheme, rest)) = url.split_once("://") else { return (url.to_string(), String::new()) };
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    (format!("{scheme}://{authority}"), path.trim_end_matches('/').to_string())
}

/// Where to look for a server's protected-resource metadata, in order.
pub fn resource_metadata_urls(server_url: &str, challenge: &Challenge) -> Vec<String> {
    let (origin, path) = split_url(server_url);
    let mut out: Vec<String> = challenge.resource_metadata.iter().cloned().collect();
    if !path.is_empty() {
        out.push(format!("{origin}/.well-known/oauth-protected-resource{path}"));
    }
    out.push(format!("{origin}/.well-known/oauth-protected-resource"));
    out
}

/// Where to look for an authorization server's metadata, in order (RFC 8414 §3.1 and OpenID
/// Connect Discovery, path-aware).
pub fn authorization_metadata_urls(issuer: &str) -> Vec<String> {
    let (origin, path) = split_url(issuer);
    if path.is_empty() {
        return vec![
            format!("{origin}/.well-known/oauth-authorization-server"),
            format!("{origin}/.well-known/openid-configuration"),
        ];
    }
    vec![
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}/.well-known/openid-configuration{path}"),
        format!("{origin}{path}/.well-known/openid-configuration"),
    ]
}

/// An authorization server as the hub uses it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Server {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub registration_endpoint: Option<String>,
    pub scopes_supported: Vec<String>,
    pub auth_methods: Vec<String>,
    /// RFC 9207: its redirects carry `iss`.
    pub iss_supported: bool,
    pub client_id_documents: bool,
}

impl Server {
    /// From RFC 8414 metadata fetched for `issuer` (`Err` when it names another issuer).
    pub fn from_metadata(issuer: &str, m: &Value) -> Result<Server, String> {
        let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        let list = |k: &str| -> Vec<String> {
            m.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default()
        };
        let said = text("issuer").unwrap_or_default();
        if said != issuer {
            return Err(format!(
                "the authorization server's metadata names issuer \"{said}\", not \"{issuer}\""
            ));
        }
        let need = |k: &str| text(k).ok_or_else(|| format!("the authorization server's metadata has no {k}"));
        Ok(Server {
            issuer: said,
            authorization_endpoint: need("authorization_endpoint")?,
            token_endpoint: need("token_endpoint")?,
            registration_endpoint: text("registration_endpoint"),
            scopes_supported: list("scopes_supported"),
            auth_methods: list("token_endpoint_auth_methods_supported"),
            iss_supported: m.get("authorization_response_iss_parameter_supported").and_then(Value::as_bool)
                == Some(true),
            client_id_documents: m.get("client_id_metadata_document_supported").and_then(Value::as_bool)
                == Some(true),
        })
    }

    /// The 2025-03-26 defaults at an origin with no metadata.
    pub fn fallback(origin: &str) -> Server {
        Server {
            issuer: origin.to_string(),
            authorization_endpoint: format!("{origin}/authorize"),
            token_endpoint: format!("{origin}/token"),
            registration_endpoint: Some(format!("{origin}/register")),
            ..Server::default()
        }
    }
}

/// What discovery found for one server.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// What `resource` says on authorization and token requests.
    pub resource: String,
    pub server: Server,
    /// The protected resource's own `scopes_supported`.
    pub scopes_supported: Vec<String>,
}

/// Whether `resource` (from the metadata) may stand for `server_url`: the same origin, and a
/// path the server's lies under.
pub fn resource_covers(resource: &str, server_url: &str) -> bool {
    let (ro, rp) = split_url(resource);
    let (so, sp) = split_url(server_url);
    ro.eq_ignore_ascii_case(&so) && (sp == rp || sp.starts_with(&format!("{rp}/")) || rp.is_empty())
}

/// Discovery over the network (`get` fetches JSON, `None` for anything else).
pub fn discover(
    server_url: &str,
    challenge: &Challenge,
    get: &dyn Fn(&str) -> Option<Value>,
) -> Result<Found, String> {
    let prm = resource_metadata_urls(server_url, challenge).into_iter().find_map(|u| get(&u));
    let Some(prm) = prm else {
        // 2025-03-26: the server's origin is its own authorization server.
        let (origin, _) = split_url(server_url);
        let server = match get(&format!("{origin}/.well-known/oauth-authorization-server")) {
            Some(m) => Server::from_metadata(m.get("issuer").and_then(Value::as_str).unwrap_or(&origin), &m)?,
            None => Server::fallback(&origin),
        };
        return Ok(Found { resource: server_url.to_string(), server, scopes_supported: Vec::new() });
    };
    let resource = prm.get("resource").and_then(Value::as_str).unwrap_or(server_url).to_string();
    if !resource_covers(&resource, server_url) {
        return Err(format!("the protected resource metadata is for \"{resource}\", not this server"));
    }
    let issuer = prm
        .get("authorization_servers")
        .and_then(|a| a.get(0))
        .and_then(Value::as_str)
        .ok_or("the protected resource metadata names no authorization server")?
        .to_string();
    let metadata = authorization_metadata_urls(&issuer)
        .into_iter()
        .find_map(|u| get(&u))
        .ok_or_else(|| format!("no metadata found for the authorization server {issuer}"))?;
    let server = Server::from_metadata(&issuer, &metadata)?;
    let scopes_supported = prm
        .get("scopes_supported")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    Ok(Found { resource, server, scopes_supported })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        fn check(header: &str, rm: Option<&str>, scope: Option<&str>, error: Option<&str>) {
            let c = parse_challenge(header);
            assert_eq!(c.resource_metadata.as_deref(), rm, "{header}");
            assert_eq!(c.scope.as_deref(), scope, "{header}");
            assert_eq!(c.error.as_deref(), error, "{header}");
        }
        check(r#"Bearer resource_metadata="http://h/.w/x""#, Some("http://h/.w/x"), None, None);
        check(
            r#"Bearer error="insufficient_scope", scope="a b", resource_metadata="u""#,
            Some("u"),
            Some("a b"),
            Some("insufficient_scope"),
        );
        check("Bearer error=invalid_token, scope=files", None, Some("files"), Some("invalid_token"));
        check("Basic realm=\"x\"", None, None, None);
    }

    #[test]
    fn well_known_urls() {
        let none = Challenge::default();
        assert_eq!(
            resource_metadata_urls("http://h:1/mcp", &none),
            [
                "http://h:1/.well-known/oauth-protected-resource/mcp",
                "http://h:1/.well-known/oauth-protected-resource"
            ]
        );
        assert_eq!(
            resource_metadata_urls("http://h:1/", &none),
            ["http://h:1/.well-known/oauth-protected-resource"]
        );
        assert_eq!(
            authorization_metadata_urls("http://a/tenant1"),
            [
                "http://a/.well-known/oauth-authorization-server/tenant1",
                "http://a/.well-known/openid-configuration/tenant1",
                "http://a/tenant1/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            authorization_metadata_urls("https://a"),
            [
                "https://a/.well-known/oauth-authorization-server",
                "https://a/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn resources_must_cover_the_server() {
        assert!(resource_covers("http://h/mcp", "http://h/mcp"));
        assert!(resource_covers("http://h", "http://h/mcp"));
        assert!(!resource_covers("http://h/other", "http://h/mcp"));
        assert!(!resource_covers("http://evil/mcp", "http://h/mcp"));
    }

    #[test]
    fn metadata_must_name_its_issuer() {
        let m =
            serde_json::json!({"issuer": "http://x", "authorization_endpoint": "a", "token_endpoint": "t"});
        assert!(Server::from_metadata("http://x", &m).is_ok());
        assert!(Server::from_metadata("http://y", &m).unwrap_err().contains("issuer"));
    }
}
