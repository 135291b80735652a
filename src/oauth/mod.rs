//! OAuth 2.1 as the MCP authorization spec asks of a client, for remote servers that answer
//! 401: the hub signs in once per server, for every client. `OAuth` holds each server's
//! sign-in (`Link`, the transport's `Credentials`: the bearer token for each request, a
//! refresh ahead of expiry and on 401, rotation kept) and the flows a person has begun (state
//! and PKCE verifier, 10 minutes). The network steps are in `discovery` and `requests`, what
//! is kept on disk in `store`. Tokens and secrets never reach a log line, an answer or an error
//! message: only this module and `<data dir>/oauth/` hold them.

mod discovery;
mod encoding;
mod requests;
mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::Value;

use crate::config::OAuthClient;
use crate::error::{Error, Result};
use crate::transport::http::Credentials;
use discovery::{Challenge, Found};
use store::{Client, Record, Store, Tokens};

use encoding::s256;

/// How long a begun sign-in waits for its callback.
pub const FLOW_TTL: Duration = Duration::from_secs(600);
/// How many times in a row a server may ask for more scope before the hub stops asking.
pub const MAX_STEP_UPS: u32 = 3;
/// Where the authorization server sends the person back, on the hub itself.
pub const CALLBACK_PATH: &str = "/oauth/callback";

/// Unix seconds now (a parameter, so tests move time).
pub type Clock = fn() -> u64;

fn system_clock() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What every sign-in shares.
struct Shared {
    store: Store,
    agent: ureq::Agent,
    clock: Clock,
    /// `http://127.0.0.1:<port>`, once the hub listens.
    base: Mutex<Option<String>>,
    /// The hub's own Client ID Metadata Document (`AGENTHUB_OAUTH_CLIENT_ID_URL`).
    document: Mutex<Option<String>>,
}

/// The hub's sign-ins, one per remote server that asked for one.
pub struct OAuth {
    shared: Arc<Shared>,
    links: Mutex<HashMap<String, Arc<Link>>>,
    flows: Mutex<HashMap<String, Flow>>,
}

/// A sign-in a person began: what the callback needs.
struct Flow {
    server: String,
    verifier: String,
    redirect_uri: String,
    found: Found,
    client: Client,
    begun: Instant,
}

/// One server's sign-in, handed to its transport.
pub struct Link {
    name: String,
    shared: Arc<Shared>,
    state: Mutex<Sign>,
    /// One refresh at a time (held across the token request, guarding no state): a rotated
    /// refresh token is good once, so concurrent calls must not each spend it.
    refreshing: Mutex<()>,
}

#[derive(Default)]
struct Sign {
    url: String,
    pre: Option<OAuthClient>,
    /// The last refusal's challenge (401 or 403), when no token could answer it.
    refused: Option<Challenge>,
    found: Option<Found>,
    client: Option<Client>,
    tokens: Option<Tokens>,
    /// Scope the server asked for beyond what was granted (`insufficient_scope`), with what
    /// was asked before (SEP-2350: the union).
    step_up: Option<String>,
    /// The scope of the last flow begun.
    asked: Option<String>,
    step_ups: u32,
}

impl OAuth {
    /// Sign-ins kept under `dir` (`<data dir>/oauth`).
    pub fn new(dir: PathBuf) -> OAuth {
        OAuth::with_clock(dir, system_clock)
    }

    pub fn with_clock(dir: PathBuf, clock: Clock) -> OAuth {
        let agent = crate::http_agent(Duration::from_secs(5), Some(Duration::from_secs(30)));
        OAuth {
            shared: Arc::new(Shared {
                store: Store::new(dir),
                agent,
                clock,
                base: Mutex::new(None),
                document: Mutex::new(None),
            }),
            links: Mutex::default(),
            flows: Mutex::default(),
        }
    }

    /// The hub's own Client ID Metadata Document, used as its `client_id` where an
    /// authorization server takes such documents (before dynamic registration).
    pub fn set_client_document(&self, url: Option<String>) {
        *self.shared.document.lock() = url;
    }

    /// Where the hub listens (`127.0.0.1:<port>`): the redirect URI is made of it.
    pub fn set_address(&self, addr: std::net::SocketAddr) {
        *self.shared.base.lock() = Some(format!("http://127.0.0.1:{}", addr.port()));
    }

    /// The sign-in of server `name` at `url` (made, or brought up to date), for its transport.
    pub fn link(&self, name: &str, url: &str, pre: Option<&OAuthClient>) -> Arc<Link> {
        let link = self
            .links
            .lock()
            .entry(name.to_string())
            .or_insert_with(|| {
                let record = self.shared.store.load(name);
                Arc::new(Link {
                    name: name.to_string(),
                    shared: self.shared.clone(),
                    state: Mutex::new(Sign { tokens: record.tokens, ..Sign::default() }),
                    refreshing: Mutex::new(()),
                })
            })
            .clone();
        let mut st = link.state.lock();
        // A refusal stays until a sign-in (or a new configuration): a server that lets the hub
        // initialize but refuses its calls waits for a person, not a loop of restarts.
        if st.url != url || st.pre.as_ref() != pre {
            st.found = None;
            st.client = None;
            st.refused = None;
        }
        st.url = url.to_string();
        st.pre = pre.cloned();
        drop(st);
        link
    }

    fn find(&self, name: &str) -> Option<Arc<Link>> {
        self.links.lock().get(name).cloned()
    }

    /// After a failed launch: `Some(Ok(reason))` when the server wants a person to sign in
    /// (discovery and registration done, so `begin` can answer at once), `Some(Err(why))` when
    /// it asked but discovery failed, `None` when it did not ask.
    pub fn sign_in_needed(&self, name: &str) -> Option<std::result::Result<String, String>> {
        let link = self.find(name)?;
        let challenge = link.state.lock().refused.clone()?;
        Some(self.shared.prepare(&link, &challenge).map(|()| {
            format!("sign-in required: open GET /servers/{name}/auth (or run `agenthub auth {name}`)")
        }))
    }

    /// `GET /servers/{name}/auth`: a new flow's authorization URL.
    pub fn begin(&self, name: &str) -> Result<String> {
        let link = self
            .find(name)
            .ok_or_else(|| Error::Conflict(format!("server {name} has not asked for a sign-in")))?;
        let challenge = link.state.lock().refused.clone().unwrap_or_default();
        self.shared.prepare(&link, &challenge).map_err(Error::Upstream)?;
        let st = link.state.lock();
        let (Some(found), Some(client)) = (st.found.clone(), st.client.clone()) else {
            return Err(Error::Conflict(format!("server {name} has not asked for a sign-in")));
        };
        let scope = scope_for(&found, st.pre.as_ref(), &challenge, st.step_up.as_deref());
        drop(st);
        link.state.lock().asked = scope.clone();
        let random =
            |what| encoding::random_token().map_err(|e| Error::Internal(format!("no random {what}: {e}")));
        let (state, verifier) = (random("state")?, random("verifier")?);
        let redirect_uri = self.shared.redirect_uri()?;
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", client.client_id.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("state", state.as_str()),
            ("resource", found.resource.as_str()),
            ("code_challenge_method", "S256"),
        ];
        let challenge_value = s256(&verifier);
        pairs.push(("code_challenge", &challenge_value));
        if let Some(s) = &scope {
            pairs.push(("scope", s));
        }
        let endpoint = &found.server.authorization_endpoint;
        let sep = if endpoint.contains('?') { '&' } else { '?' };
        let url = format!("{endpoint}{sep}{}", encoding::form(&pairs));
        let now = Instant::now();
        let mut flows = self.flows.lock();
        flows.retain(|_, f| now.duration_since(f.begun) < FLOW_TTL);
        flows.insert(
            state,
            Flow { server: name.to_string(), verifier, redirect_uri, found, client, begun: now },
        );
        Ok(url)
    }

    /// `GET /oauth/callback?code&state[&iss]`: the code redeemed and the tokens kept. Returns
    /// the server's name, to be started.
    pub fn finish(&self, query: &str) -> Result<String> {
        let q = |k| encoding::query_value(query, k);
        let state = q("state").ok_or_else(|| Error::BadRequest("the callback has no state".into()))?;
        let flow = self.flows.lock().remove(&state);
        let flow = flow
            .filter(|f| f.begun.elapsed() < FLOW_TTL)
            .ok_or_else(|| Error::BadRequest("unknown or expired sign-in (state); begin again".into()))?;
        if let Some(e) = q("error") {
            return Err(Error::BadRequest(format!("the authorization server refused the sign-in: {e}")));
        }
        let issuer = &flow.found.server.issuer;
        match q("iss") {
            Some(iss) if &iss != issuer => {
                return Err(Error::BadRequest(format!(
                    "the callback's iss \"{iss}\" is not the issuer \"{issuer}\""
                )));
            }
            None if flow.found.server.iss_supported => {
                return Err(Error::BadRequest(
                    "the callback lacks the iss the authorization server promised".into(),
                ));
            }
            _ => {}
        }
        let code = q("code").ok_or_else(|| Error::BadRequest("the callback has no code".into()))?;
        let grant = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("code_verifier", flow.verifier.as_str()),
            ("redirect_uri", flow.redirect_uri.as_str()),
        ];
        let now = (self.shared.clock)();
        let tokens = requests::token(
            &self.shared.agent,
            &flow.found.server,
            &flow.client,
            &flow.found.resource,
            &grant,
            now,
        )
        .map_err(|r| Error::Upstream(format!("server {}: {}", flow.server, r.message)))?;
        let link = self.find(&flow.server);
        if let Some(link) = &link {
            let mut st = link.state.lock();
            st.refused = None;
            st.step_up = None;
            st.found = Some(flow.found.clone());
            st.client = Some(flow.client.clone());
        }
        link.map_or(Ok(()), |l| l.keep(tokens))
            .map_err(|e| Error::Internal(format!("cannot keep the tokens: {e}")))?;
        log::info!("server {}: signed in at {issuer}", flow.server);
        Ok(flow.server)
    }

    /// `DELETE /servers/{name}/auth`: the tokens forgotten, here and on disk.
    pub fn sign_out(&self, name: &str) -> Result<()> {
        if let Some(link) = self.find(name) {
            let mut st = link.state.lock();
            st.tokens = None;
            st.step_ups = 0;
        }
        self.shared
            .store
            .forget_tokens(name)
            .map_err(|e| Error::Internal(format!("cannot forget the tokens: {e}")))?;
        log::info!("server {name}: signed out");
        Ok(())
    }

    /// Whether the hub holds tokens for the server (the API's `signed_in`).
    pub fn signed_in(&self, name: &str) -> bool {
        self.find(name).is_some_and(|l| l.state.lock().tokens.is_some())
    }
}

impl Shared {
    fn redirect_uri(&self) -> Result<String> {
        let base = self.base.lock().clone();
        base.map(|b| format!("{b}{CALLBACK_PATH}"))
            .ok_or_else(|| Error::Unavailable("the hub is not listening yet".into()))
    }

    /// Discovery and the client, kept on the link.
    fn prepare(&self, link: &Link, challenge: &Challenge) -> std::result::Result<(), String> {
        let (url, pre, known) = {
            let st = link.state.lock();
            (st.url.clone(), st.pre.clone(), st.found.clone())
        };
        let found = match known {
            Some(f) => f,
            None => {
                let agent = &self.agent;
                discovery::discover(&url, challenge, &|u| fetch_json(agent, u))?
            }
        };
        let client = self.client_for(&link.name, &found, pre.as_ref(), challenge)?;
        let mut st = link.state.lock();
        st.found = Some(found);
        st.client = Some(client);
        Ok(())
    }

    /// The client for this issuer: pre-registered, a metadata document, kept, or registered now.
    fn client_for(
        &self,
        name: &str,
        found: &Found,
        pre: Option<&OAuthClient>,
        challenge: &Challenge,
    ) -> std::result::Result<Client, String> {
        let server = &found.server;
        if let Some(id) = pre.and_then(|p| p.client_id.clone()) {
            let secret = pre.and_then(|p| p.client_secret.clone());
            let method = requests::auth_method(server, secret.is_some());
            let is_document = id.starts_with("https://");
            if !is_document || server.client_id_documents || secret.is_some() {
                return Ok(Client { client_id: id, client_secret: secret, method });
            }
        }
        let document = self.document.lock().clone();
        if let Some(url) = document.filter(|_| server.client_id_documents) {
            return Ok(Client { client_id: url, client_secret: None, method: "none".into() });
        }
        let mut record = self.store.load(name);
        if let Some(c) = record.clients.get(&server.issuer) {
            return Ok(c.clone());
        }
        let redirect = self.redirect_uri().map_err(|e| e.to_string())?;
        let scope = scope_for(found, pre, challenge, None);
        let client = requests::register(&self.agent, server, &redirect, scope.as_deref())?;
        record.clients.insert(server.issuer.clone(), client.clone());
        if let Err(e) = self.store.save(name, &record) {
            log::warn!("server {name}: cannot keep its client registration: {e}");
        }
        Ok(client)
    }
}

/// The scope asked for: the entry's own, else the challenge's, else the resource's
/// `scopes_supported`, else none; a step-up's added; `offline_access` when the authorization
/// server offers it.
fn scope_for(
    found: &Found,
    pre: Option<&OAuthClient>,
    challenge: &Challenge,
    step_up: Option<&str>,
) -> Option<String> {
    let mut scopes: Vec<String> = match pre.filter(|p| !p.scopes.is_empty()) {
        Some(p) => p.scopes.clone(),
        None => match &challenge.scope {
            Some(s) => s.split_whitespace().map(str::to_string).collect(),
            None => found.scopes_supported.clone(),
        },
    };
    for s in step_up.unwrap_or("").split_whitespace() {
        if !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_string());
        }
    }
    if !scopes.is_empty()
        && found.server.scopes_supported.iter().any(|s| s == "offline_access")
        && !scopes.iter().any(|s| s == "offline_access")
    {
        scopes.push("offline_access".into());
    }
    (!scopes.is_empty()).then(|| scopes.join(" "))
}

fn fetch_json(agent: &ureq::Agent, url: &str) -> Option<Value> {
    let mut resp = agent.get(url).header("Accept", "application/json").call().ok()?;
    if resp.status().as_u16() != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&resp.body_mut().read_to_string().ok()?).ok()?;
    v.is_object().then_some(v)
}

impl Link {
    /// Keeps new tokens, in memory and on disk.
    fn keep(&self, tokens: Tokens) -> std::io::Result<()> {
        self.state.lock().tokens = Some(tokens.clone());
        let mut record: Record = self.shared.store.load(&self.name);
        record.tokens = Some(tokens);
        self.shared.store.save(&self.name, &record)
    }

    /// Refreshes the tokens (rotation kept). False when there is no refresh token or the
    /// server refused it (then the tokens are forgotten: a person signs in again).
    fn refresh(&self, stale: &str) -> bool {
        let _one = self.refreshing.lock();
        let (tokens, found, client) = {
            let st = self.state.lock();
            match (&st.tokens, &st.found, &st.client) {
                // Another call refreshed them meanwhile.
                (Some(t), _, _) if t.access_token != stale => return true,
                (Some(t), found, client) if t.refresh_token.is_some() => {
                    (t.clone(), found.clone(), client.clone())
                }
                _ => return false,
            }
        };
        let record = self.shared.store.load(&self.name);
        let client = client.or_else(|| record.clients.get(&tokens.issuer).cloned());
        let server = found.map(|f| f.server).filter(|s| s.issuer == tokens.issuer);
        let (Some(client), Some(server)) = (client, server.or_else(|| self.rediscover(&tokens))) else {
            return false;
        };
        let refresh = tokens.refresh_token.clone().unwrap_or_default();
        let grant = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
        let now = (self.shared.clock)();
        match requests::token(&self.shared.agent, &server, &client, &tokens.resource, &grant, now) {
            Ok(mut fresh) => {
                // No new refresh token: the old one stays valid (no rotation).
                if fresh.refresh_token.is_none() {
                    fresh.refresh_token = tokens.refresh_token.clone();
                }
                if let Err(e) = self.keep(fresh) {
                    log::warn!("server {}: cannot keep the refreshed tokens: {e}", self.name);
                }
                log::debug!("server {}: tokens refreshed", self.name);
                true
            }
            Err(r) => {
                log::warn!("server {}: refresh refused ({}); sign in again", self.name, r.message);
                if !r.error.is_empty() {
                    self.state.lock().tokens = None;
                    let _ = self.shared.store.forget_tokens(&self.name);
                }
                false
            }
        }
    }

    /// The authorization server of tokens kept from an earlier run.
    fn rediscover(&self, tokens: &Tokens) -> Option<discovery::Server> {
        let agent = &self.shared.agent;
        discovery::authorization_metadata_urls(&tokens.issuer)
            .into_iter()
            .find_map(|u| fetch_json(agent, &u))
            .and_then(|m| discovery::Server::from_metadata(&tokens.issuer, &m).ok())
    }
}

impl Credentials for Link {
    fn authorization(&self) -> Option<String> {
        let now = (self.shared.clock)();
        let due =
            self.state.lock().tokens.as_ref().filter(|t| t.refresh_due(now)).map(|t| t.access_token.clone());
        if let Some(stale) = due {
            self.refresh(&stale);
        }
        self.state.lock().tokens.as_ref().map(|t| format!("Bearer {}", t.access_token))
    }

    fn refused(&self, status: u16, challenge: Option<&str>) -> bool {
        let challenge = challenge.map(discovery::parse_challenge).unwrap_or_default();
        let insufficient = status == 403 && challenge.error.as_deref() == Some("insufficient_scope");
        if insufficient {
            let mut st = self.state.lock();
            st.step_ups += 1;
            if st.step_ups > MAX_STEP_UPS {
                log::warn!(
                    "server {}: asked for more scope {} times; not asking again",
                    self.name,
                    st.step_ups - 1
                );
                return false;
            }
            let mut union: Vec<&str> = st.asked.as_deref().unwrap_or("").split_whitespace().collect();
            for s in challenge.scope.as_deref().unwrap_or("").split_whitespace() {
                if !union.contains(&s) {
                    union.push(s);
                }
            }
            st.step_up = (!union.is_empty()).then(|| union.join(" "));
            st.tokens = None;
            st.refused = Some(challenge);
            return false;
        }
        if status != 401 {
            return false;
        }
        let sent = self.state.lock().tokens.as_ref().map(|t| t.access_token.clone());
        let has_token = sent.is_some();
        if sent.is_some_and(|stale| self.refresh(&stale)) {
            return true;
        }
        {
            let mut st = self.state.lock();
            st.tokens = None;
            st.refused = Some(challenge.clone());
            if has_token {
                st.found = None;
                st.client = None;
            }
        }
        if has_token {
            // The token no longer serves: the resource may name another authorization server
            // now (SEP-2352), found and registered with before a person is asked.
            if let Err(e) = self.shared.prepare(self, &challenge) {
                log::warn!("server {}: sign-in lapsed, and {e}", self.name);
            }
        }
        false
    }

    fn lapsed(&self) -> Option<String> {
        let st = self.state.lock();
        (st.refused.is_some() && st.tokens.is_none()).then(|| "the sign-in lapsed; sign in again".to_string())
    }
}

#[cfg(test)]
mod tests;
