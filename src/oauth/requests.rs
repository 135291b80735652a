//! The hub's requests to an authorization server: dynamic client registration (RFC 7591, with
//! `application_type`), and the token endpoint (a code redeemed, a refresh), authenticated by
//! the client's method: `client_secret_basic`, `client_secret_post` or `none`. Answers and
//! errors never carry a token or a secret into a message.

use serde_json::{Value, json};

use super::discovery::Server;
use super::encoding::{base64, form, percent};
use super::store::{Client, Tokens};

/// How the token endpoint refused.
#[derive(Debug)]
pub struct Refusal {
    /// OAuth's `error` (`invalid_grant`, ...), or empty when it was not an OAuth answer.
    pub error: String,
    pub message: String,
}

/// The method a client with (or without) a secret uses at this server: basic when offered (or
/// when the server says nothing), else post.
pub fn auth_method(server: &Server, has_secret: bool) -> String {
    let offered = |m: &str| server.auth_methods.iter().any(|x| x == m);
    let method = match has_secret {
        false => "none",
        true if server.auth_methods.is_empty() || offered("client_secret_basic") => "client_secret_basic",
        true if offered("client_secret_post") => "client_secret_post",
        true => "client_secret_basic",
    };
    method.to_string()
}

/// Registers the hub as a native client redirecting to `redirect_uri`.
pub fn register(
    agent: &ureq::Agent,
    server: &Server,
    redirect_uri: &str,
    scope: Option<&str>,
) -> Result<Client, String> {
    let Some(endpoint) = &server.registration_endpoint else {
        return Err(format!(
            "{} offers no dynamic registration: give the server's entry \"oauth\": {{\"client_id\": ...}}",
            server.issuer
        ));
    };
    let mut body = json!({
        "client_name": "AgentHub",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "application_type": "native",
    });
    if let Some(s) = scope {
        body["scope"] = s.into();
    }
    if let Some(m) = server.auth_methods.first().filter(|_| server.auth_methods.iter().all(|m| m != "none")) {
        body["token_endpoint_auth_method"] = m.clone().into();
    } else {
        body["token_endpoint_auth_method"] = "none".into();
    }
    let mut resp = agent
        .post(endpoint)
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .map_err(|e| format!("registration at {endpoint} failed: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let id = v.get("client_id").and_then(Value::as_str);
    match (status, id) {
        (200..=299, Some(id)) => {
            let secret = v.get("client_secret").and_then(Value::as_str).map(str::to_string);
            let method = v
                .get("token_endpoint_auth_method")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| auth_method(server, secret.is_some()));
            Ok(Client { client_id: id.to_string(), client_secret: secret, method })
        }
        _ => Err(format!("registration at {endpoint} answered HTTP {status}{}", oauth_error(&v))),
    }
}

fn oauth_error(v: &Value) -> String {
    match v.get("error").and_then(Value::as_str) {
        Some(e) => format!(" ({e})"),
        None => String::new(),
    }
}

/// A token request (`grant` is `authorization_code` with `code`, `code_verifier`,
/// `redirect_uri`, or `refresh_token` with `refresh_token`); `resource` and the client's
/// authentication are added. `now` in unix seconds.
pub fn token(
    agent: &ureq::Agent,
    server: &Server,
    client: &Client,
    resource: &str,
    grant: &[(&str, &str)],
    now: u64,
) -> Result<Tokens, Refusal> {
    let mut pairs: Vec<(&str, &str)> = grant.to_vec();
    pairs.push(("resource", resource));
    let secret = client.client_secret.as_deref().unwrap_or("");
    match client.method.as_str() {
        "client_secret_post" => {
            pairs.push(("client_id", &client.client_id));
            pairs.push(("client_secret", secret));
        }
        "client_secret_basic" => {}
        _ => pairs.push(("client_id", &client.client_id)),
    }
    let mut req = agent
        .post(&server.token_endpoint)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json");
    if client.method == "client_secret_basic" {
        let basic = base64(format!("{}:{}", percent(&client.client_id), percent(secret)).as_bytes());
        req = req.header("Authorization", format!("Basic {basic}"));
    }
    let refusal = |error: &str, message: String| Refusal { error: error.to_string(), message };
    let mut resp = req.send(form(&pairs)).map_err(|e| {
        refusal("", format!("the token endpoint {} is unreachable: {e}", server.token_endpoint))
    })?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let access = v.get("access_token").and_then(Value::as_str);
    match (status, access) {
        (200..=299, Some(access)) => Ok(Tokens {
            issuer: server.issuer.clone(),
            resource: resource.to_string(),
            access_token: access.to_string(),
            refresh_token: v.get("refresh_token").and_then(Value::as_str).map(str::to_string),
            expires_at: v.get("expires_in").and_then(Value::as_u64).map(|s| now + s),
            scope: v.get("scope").and_then(Value::as_str).map(str::to_string),
            lifetime: v.get("expires_in").and_then(Value::as_u64),
        }),
        _ => {
            let error = v.get("error").and_then(Value::as_str).unwrap_or("");
            Err(refusal(error, format!("the token endpoint answered HTTP {status}{}", oauth_error(&v))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_endpoint_auth_methods() {
        fn check(offered: &[&str], secret: bool, expected: &str) {
            let s =
                Server { auth_methods: offered.iter().map(|s| s.to_string()).collect(), ..Server::default() };
            assert_eq!(auth_method(&s, secret), expected, "{offered:?} {secret}");
        }
        check(&[], false, "none");
        check(&[], true, "client_secret_basic");
        check(&["client_secret_post"], true, "client_secret_post");
        check(&["client_secret_post", "client_secret_basic"], true, "client_secret_basic");
        check(&["none"], false, "none");
    }
}
