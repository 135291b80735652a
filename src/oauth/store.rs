//! What the hub keeps of a sign-in: `<data dir>/oauth/<server>.json`, written atomically
//! (a temp file, 0600, renamed) in a 0700 folder. Clients are kept by issuer (another issuer
//! means registering again); the tokens name the issuer and resource they are for. Nothing
//! here is ever logged.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A client of an authorization server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Client {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// `client_secret_basic`, `client_secret_post` or `none`.
    pub method: String,
}

/// Tokens for one resource.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Tokens {
    pub issuer: String,
    pub resource: String,
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `expires_in` as issued (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<u64>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("issuer", &self.issuer).field("expires_at", &self.expires_at).finish()
    }
}

/// Refreshed this long before they expire (or half their lifetime, when that is shorter: a
/// token that lives less than two minutes is not refreshed at every use).
pub const REFRESH_AHEAD_S: u64 = 60;

impl Tokens {
    /// Whether it is time to refresh (`now` in unix seconds).
    pub fn refresh_due(&self, now: u64) -> bool {
        let ahead = self.lifetime.map_or(REFRESH_AHEAD_S, |l| REFRESH_AHEAD_S.min(l / 2));
        self.refresh_token.is_some() && self.expires_at.is_some_and(|at| now + ahead >= at)
    }
}

/// One server's file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    #[serde(default)]
    pub clients: BTreeMap<String, Client>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Tokens>,
}

/// The folder of sign-ins.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: PathBuf) -> Store {
        Store { dir }
    }

    fn path(&self, server: &str) -> PathBuf {
        self.dir.join(format!("{server}.json"))
    }

    /// The server's record (empty when there is none or it does not parse).
    pub fn load(&self, server: &str) -> Record {
        let Ok(text) = std::fs::read_to_string(self.path(server)) else { return Record::default() };
        serde_json::from_str(&text).unwrap_or_else(|_| {
            log::warn!("server {server}: its sign-in file does not parse; signing in again");
            Record::default()
        })
    }

    pub fn save(&self, server: &str, record: &Record) -> std::io::Result<()> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)?;
        let path = self.path(server);
        let tmp = self.dir.join(format!(".{server}.json.{}.tmp", std::process::id()));
        let body = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        let written = write_private(&tmp, &body).and_then(|()| std::fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// Forgets the tokens (a sign-out); the client registrations stay.
    pub fn forget_tokens(&self, server: &str) -> std::io::Result<()> {
        let mut r = self.load(server);
        if r.tokens.take().is_some() { self.save(server, &r) } else { Ok(()) }
    }
}

fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(body)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn records_survive_and_are_private() {
        let dir = std::env::temp_dir().join(format!("agenthub-oauth-store-{}", std::process::id()));
        let store = Store::new(dir.join("oauth"));
        let mut r = Record::default();
        r.clients.insert(
            "http://as".into(),
            Client { client_id: "c".into(), client_secret: None, method: "none".into() },
        );
        r.tokens = Some(Tokens {
            issuer: "http://as".into(),
            resource: "http://rs/mcp".into(),
            access_token: "secret-access".into(),
            refresh_token: Some("secret-refresh".into()),
            expires_at: Some(1000),
            scope: None,
            lifetime: Some(3600),
        });
        store.save("s", &r).unwrap();
        let mode = std::fs::metadata(dir.join("oauth/s.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::metadata(dir.join("oauth")).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(store.load("s").tokens, r.tokens);
        assert!(!format!("{:?}", r.tokens).contains("secret"));
        store.forget_tokens("s").unwrap();
        let back = store.load("s");
        assert!(back.tokens.is_none());
        assert_eq!(back.clients.len(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn refresh_is_due_a_minute_ahead_or_at_half_life() {
        let t = |expires_at, refresh: bool, lifetime| Tokens {
            issuer: String::new(),
            resource: String::new(),
            access_token: String::new(),
            refresh_token: refresh.then(|| "r".into()),
            expires_at,
            scope: None,
            lifetime,
        };
        // The clock is a parameter: unix seconds.
        assert!(!t(Some(1000), true, None).refresh_due(900));
        assert!(t(Some(1000), true, None).refresh_due(940));
        assert!(t(Some(1000), true, Some(3600)).refresh_due(940));
        assert!(t(Some(1000), true, None).refresh_due(2000));
        assert!(!t(Some(1000), false, None).refresh_due(2000));
        assert!(!t(None, true, None).refresh_due(2000));
        // A 30 s token: at 15 s left, not at once.
        assert!(!t(Some(1000), true, Some(30)).refresh_due(970));
        assert!(t(Some(1000), true, Some(30)).refresh_due(985));
    }
}
