//! A remote server's own OAuth client, when it is pre-registered: `"oauth": {"client_id",
//! "client_secret", "scopes"}` in the server's entry. A `client_id` that is an https URL is a
//! Client ID Metadata Document. The secret is masked wherever the configuration is shown.

use serde_json::{Map, Value};

/// `oauth` in a server's entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OAuthClient {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Asked for in place of what the server advertises.
    pub scopes: Vec<String>,
}

impl OAuthClient {
    pub(super) fn parse(v: &Value) -> Result<OAuthClient, String> {
        let Some(m) = v.as_object() else { return Err("expected an object".into()) };
        let text = |k: &str| match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{k}: expected a string")),
        };
        let scopes = match m.get("scopes") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|s| s.as_str().map(str::to_string).ok_or("scopes: expected strings"))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("scopes: expected a string or an array of strings".into()),
        };
        Ok(OAuthClient { client_id: text("client_id")?, client_secret: text("client_secret")?, scopes })
    }

    /// With `${...}` expanded in the id and the secret (`x`: `ServerConfig::expanded`'s).
    pub(super) fn expanded(&self, x: &mut impl FnMut(&str) -> String) -> OAuthClient {
        OAuthClient {
            client_id: self.client_id.as_deref().map(&mut *x),
            client_secret: self.client_secret.as_deref().map(&mut *x),
            scopes: self.scopes.clone(),
        }
    }

    /// As saved (`masked`: the secret shown as `***`).
    pub(super) fn to_json(&self, masked: bool) -> Value {
        let mut m = Map::new();
        if let Some(id) = &self.client_id {
            m.insert("client_id".into(), id.clone().into());
        }
        if let Some(s) = &self.client_secret {
            m.insert(
                "client_secret".into(),
                if masked { super::secrets::MASK.into() } else { s.clone().into() },
            );
        }
        if !self.scopes.is_empty() {
            m.insert("scopes".into(), self.scopes.clone().into());
        }
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parsed_masked_and_expanded() {
        let o =
            OAuthClient::parse(&json!({"client_id": "c", "client_secret": "${S}", "scopes": "a b"})).unwrap();
        assert_eq!(o.scopes, ["a", "b"]);
        assert_eq!(o.to_json(true), json!({"client_id": "c", "client_secret": "***", "scopes": ["a", "b"]}));
        assert_eq!(o.to_json(false)["client_secret"], "${S}");
        let x = o.expanded(&mut |s: &str| s.replace("${S}", "shh"));
        assert_eq!(x.client_secret.as_deref(), Some("shh"));
        assert!(OAuthClient::parse(&json!({"scopes": 3})).unwrap_err().contains("scopes"));
        assert!(OAuthClient::parse(&json!("x")).is_err());
    }
}
