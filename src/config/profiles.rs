//! Profiles: what each client sees on the MCP endpoints. `profiles.json` in the config dir names
//! profiles (per server the tools allowed, by name or `*` glob, or all; description and title
//! overrides; how tools are offered, `tool_search`), which client names get which profile, and
//! the default. The tokens file (`AGENTHUB_TOKENS_FILE`) holds inbound tokens for a small team,
//! each naming a profile; only their SHA-256 is kept, so no token is ever printed. Pure: parsed
//! and checked here, applied by `mcp`.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Fields, ToolSearch, parse_json};
use crate::error::{Error, Result};

pub const PROFILES_FILE_NAME: &str = "profiles.json";
/// The profile that shows everything: every client's with no profiles file, and the default
/// unless the file names another. A file may define its own `all`.
pub const ALL: &str = "all";
/// The server name under which a profile allows the hub's own tools (`agenthub__enhance_prompt`,
/// `agenthub__pipeline_<name>`).
pub const HUB: &str = "agenthub";

/// The profiles file and the tokens file, as loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Profiles {
    pub profiles: BTreeMap<String, Profile>,
    /// Client name (lower case, as `client_names` maps it) → profile.
    pub clients: BTreeMap<String, String>,
    pub default: String,
    pub tokens: Vec<Token>,
    /// Where they were read from (`None`: no such file).
    pub file: Option<String>,
    pub tokens_file: Option<String>,
}

impl Default for Profiles {
    fn default() -> Profiles {
        Profiles {
            profiles: BTreeMap::from([(ALL.to_string(), Profile::default())]),
            clients: BTreeMap::new(),
            default: ALL.into(),
            tokens: Vec::new(),
            file: None,
            tokens_file: None,
        }
    }
}

/// One profile.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Profile {
    /// `None`: every server, every tool.
    pub servers: Option<BTreeMap<String, ServerView>>,
    /// `None`: as `AGENTHUB_TOOL_SEARCH` says.
    pub tool_search: Option<ToolSearch>,
    pub description: Option<String>,
}

/// What a profile shows of one server.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerView {
    /// Tool names and `*` / `?` globs; `None`: all its tools.
    pub tools: Option<Vec<String>>,
    pub overrides: BTreeMap<String, Override>,
}

/// A tool's description or title as a profile shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Override {
    pub description: Option<String>,
    pub title: Option<String>,
}

/// An inbound token of the tokens file: its name (safe to show and log), its SHA-256, its profile.
#[derive(Clone, PartialEq)]
pub struct Token {
    pub id: String,
    pub digest: [u8; 32],
    pub profile: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token {{ id: {:?}, profile: {:?} }}", self.id, self.profile)
    }
}

impl Profile {
    /// Whether the profile shows this server at all (its prompts, resources, some tools).
    pub fn shows_server(&self, server: &str) -> bool {
        self.servers.as_ref().is_none_or(|s| s.contains_key(server))
    }

    /// Whether the profile shows this tool of this server.
    pub fn shows_tool(&self, server: &str, tool: &str) -> bool {
        let Some(servers) = &self.servers else { return true };
        match servers.get(server).map(|v| &v.tools) {
            None => false,
            Some(None) => true,
            Some(Some(patterns)) => patterns.iter().any(|p| glob(p, tool)),
        }
    }

    /// The profile's override of this tool, if any.
    pub fn override_of(&self, server: &str, tool: &str) -> Option<&Override> {
        self.servers.as_ref()?.get(server)?.overrides.get(tool)
    }

    /// Whether every server and tool is shown as it is.
    pub fn shows_all(&self) -> bool {
        self.servers.is_none()
    }
}

impl Profiles {
    /// The profile name a client goes by: its token's, else its name's (`clients`), else the
    /// default. A token decides alone: a name is the client's own claim.
    pub fn profile_name(&self, client: Option<&str>, token: Option<&str>) -> &str {
        if let Some(t) = token.and_then(|id| self.tokens.iter().find(|t| t.id == id)) {
            return &t.profile;
        }
        client
            .and_then(|c| self.clients.get(&c.trim().to_ascii_lowercase()))
            .map_or(self.default.as_str(), String::as_str)
    }

    /// Whether every profile shows every server and tool as it is (no profiles file, or one
    /// that only chooses tool search): nothing to cut or check on a call.
    pub fn show_everything(&self) -> bool {
        self.profiles.values().all(Profile::shows_all)
    }

    /// The token of this bearer value, if the tokens file has it.
    pub fn token(&self, bearer: &str) -> Option<&Token> {
        // Without a tokens file (most hubs) a request's bearer is not hashed at all.
        if self.tokens.is_empty() {
            return None;
        }
        let digest: [u8; 32] = Sha256::digest(bearer.trim().as_bytes()).into();
        self.tokens.iter().find(|t| t.digest == digest)
    }

    /// The servers some profile names that `known` does not have (a warning, not an error: a
    /// server may come later).
    pub fn unknown_servers(&self, known: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for (name, p) in &self.profiles {
            for server in p.servers.iter().flat_map(|s| s.keys()) {
                if server != HUB && !known.iter().any(|k| k == server) {
                    out.push(format!(
                        "{}: profile \"{name}\" names server \"{server}\", which is not configured",
                        self.file.as_deref().unwrap_or(PROFILES_FILE_NAME)
                    ));
                }
            }
        }
        out
    }
}

/// What to warn of a tokens file others may read: tokens are secrets (0600).
pub fn loose_mode(file: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(file).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!("{}: others may read it (mode {mode:o}); it holds tokens: chmod 600 it", file.display())
    })
}

/// `*` any run of characters, `?` one; anything else itself.
fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// `profiles.json`: `{"profiles": {name: {"servers": {server: {"tools": [...], "overrides":
/// {tool: {"description", "title"}}}}, "tool_search": "on" | "off" | "auto", "description"}},
/// "clients": {client name: profile}, "default": profile}`.
pub fn parse_profiles(text: &str, file: &str) -> Result<Profiles> {
    let root = parse_json(text, file)?;
    let top = Fields::new(&root, file, "$")?;
    let mut profiles = BTreeMap::from([(ALL.to_string(), Profile::default())]);
    match top.get("profiles") {
        None => {}
        Some(Value::Object(m)) => {
            for (name, v) in m {
                if name.trim().is_empty() {
                    return Err(top.err("profiles", "a profile's name must not be empty"));
                }
                profiles.insert(name.clone(), parse_profile(v, file, &format!("profiles.{name}"))?);
            }
        }
        Some(_) => return Err(top.err("profiles", "expected an object of profiles by name")),
    }
    let known = |at: &str, name: &str| -> Result<()> {
        match profiles.contains_key(name) {
            true => Ok(()),
            false => Err(Error::Config(format!(
                "{file}: {at}: no profile named \"{name}\" (profiles: {})",
                profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
        }
    };
    let default = top.str("default")?.unwrap_or_else(|| ALL.into());
    known("$.default", &default)?;
    let mut clients = BTreeMap::new();
    for (client, profile) in top.str_map("clients")?.unwrap_or_default() {
        known(&format!("$.clients.{client}"), &profile)?;
        clients.insert(client.trim().to_ascii_lowercase(), profile);
    }
    for key in top.map.keys() {
        if !["profiles", "clients", "default"].contains(&key.as_str()) {
            return Err(top.err(key, "unknown field (profiles, clients and default are)"));
        }
    }
    Ok(Profiles {
        profiles,
        clients,
        default,
        tokens: Vec::new(),
        file: Some(file.into()),
        tokens_file: None,
    })
}

fn parse_profile(v: &Value, file: &str, at: &str) -> Result<Profile> {
    let f = Fields::new(v, file, at)?;
    let tool_search = match f.str("tool_search")? {
        None => None,
        Some(s) => {
            Some(s.parse().map_err(|()| f.err("tool_search", "expected \"on\", \"off\" or \"auto\""))?)
        }
    };
    let servers = match f.get("servers") {
        None => None,
        Some(Value::Object(m)) => {
            let mut servers = BTreeMap::new();
            for (name, v) in m {
                servers.insert(name.clone(), parse_server(v, file, &format!("{at}.servers.{name}"))?);
            }
            Some(servers)
        }
        Some(_) => return Err(f.err("servers", "expected an object of servers by name")),
    };
    for key in f.map.keys() {
        if !["servers", "tool_search", "description"].contains(&key.as_str()) {
            return Err(f.err(key, "unknown field (servers, tool_search and description are)"));
        }
    }
    Ok(Profile { servers, tool_search, description: f.str("description")? })
}

fn parse_server(v: &Value, file: &str, at: &str) -> Result<ServerView> {
    let f = Fields::new(v, file, at)?;
    let tools = match f.get("tools") {
        Some(Value::String(s)) if s == "*" => None,
        _ => f.str_list("tools")?,
    };
    let mut overrides = BTreeMap::new();
    match f.get("overrides") {
        None => {}
        Some(Value::Object(m)) => {
            for (tool, v) in m {
                let o = Fields::new(v, file, at)?;
                let o = Override { description: o.str("description")?, title: o.str("title")? };
                overrides.insert(tool.clone(), o);
            }
        }
        Some(_) => return Err(f.err("overrides", "expected an object of overrides by tool name")),
    }
    for key in f.map.keys() {
        if !["tools", "overrides"].contains(&key.as_str()) {
            return Err(f.err(key, "unknown field (tools and overrides are)"));
        }
    }
    Ok(ServerView { tools, overrides })
}

/// The tokens file: `{"tokens": {name: {"token": "...", "profile": "..."}}}`. Names are what
/// logs and `GET /profiles` show; each token must be unique and name a profile of `profiles`.
pub fn parse_tokens(text: &str, file: &str, profiles: &Profiles) -> Result<Vec<Token>> {
    let root = parse_json(text, file)?;
    let top = Fields::new(&root, file, "$")?;
    let Some(Value::Object(m)) = top.get("tokens") else {
        return Err(top.err("tokens", "expected an object of {\"token\", \"profile\"} by name"));
    };
    let mut tokens: Vec<Token> = Vec::new();
    for (id, v) in m {
        let at = format!("tokens.{id}");
        let f = Fields::new(v, file, &at)?;
        let Some(token) = f.str("token")?.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()) else {
            return Err(f.err("token", "missing (the bearer value this client sends)"));
        };
        let Some(profile) = f.str("profile")? else {
            return Err(f.err("profile", "missing (the profile this token's client gets)"));
        };
        if !profiles.profiles.contains_key(&profile) {
            return Err(f.err("profile", &format!("no profile named \"{profile}\"")));
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(other) = tokens.iter().find(|t| t.digest == digest) {
            return Err(f.err("token", &format!("the same token as tokens.{}", other.id)));
        }
        tokens.push(Token { id: id.clone(), digest, profile });
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{"profiles": {"coding": {"servers": {"everything": {"tools": ["echo", "get-*"],
        "overrides": {"echo": {"description": "Say it back"}}}, "memory": {}}, "tool_search": "auto"},
        "none": {"servers": {}}}, "clients": {"Cursor": "coding"}, "default": "none"}"#;

    #[test]
    fn a_profile_shows_its_servers_and_the_tools_it_names() {
        let p = parse_profiles(FILE, "profiles.json").unwrap();
        let coding = &p.profiles["coding"];
        assert!(coding.shows_tool("everything", "echo") && coding.shows_tool("everything", "get-sum"));
        assert!(!coding.shows_tool("everything", "add") && !coding.shows_tool("filesystem", "read"));
        assert!(coding.shows_tool("memory", "anything"), "a server given as {{}}: all its tools");
        assert!(coding.shows_server("everything") && !coding.shows_server("filesystem"));
        assert_eq!(coding.tool_search, Some(ToolSearch::Auto(None)));
        assert_eq!(
            coding.override_of("everything", "echo").unwrap().description.as_deref(),
            Some("Say it back")
        );
        assert!(p.profiles["all"].shows_all(), "`all` is always there");
        assert_eq!(p.profile_name(Some("cursor"), None), "coding");
        assert_eq!(p.profile_name(Some("vscode"), None), "none", "the default");
        assert_eq!(p.profile_name(None, None), "none");
    }

    #[test]
    fn a_token_decides_over_a_name_and_is_kept_as_a_digest_only() {
        let mut p = parse_profiles(FILE, "profiles.json").unwrap();
        let text = r#"{"tokens": {"alice": {"token": "alice-secret-0001", "profile": "coding"}}}"#;
        p.tokens = parse_tokens(text, "tokens.json", &p).unwrap();
        let t = p.token("alice-secret-0001").unwrap();
        assert_eq!((t.id.as_str(), t.profile.as_str()), ("alice", "coding"));
        assert!(p.token("alice-secret-0002").is_none());
        assert_eq!(p.profile_name(Some("vscode"), Some("alice")), "coding");
        assert!(!format!("{p:?}").contains("alice-secret"), "never printed");
        let e = parse_tokens(r#"{"tokens": {"bob": {"token": "x", "profile": "nope"}}}"#, "t.json", &p);
        assert!(e.unwrap_err().to_string().contains("tokens.bob.profile"));
        let twice =
            r#"{"tokens": {"a": {"token": "x", "profile": "all"}, "b": {"token": "x", "profile": "all"}}}"#;
        assert!(parse_tokens(twice, "t.json", &p).unwrap_err().to_string().contains("same token"));
    }

    #[test]
    fn mistakes_name_the_field() {
        let check = |text: &str, expected: &str| {
            let e = parse_profiles(text, "p.json").unwrap_err().to_string();
            assert!(e.contains(expected), "{e}");
        };
        check(r#"{"default": "nope"}"#, "$.default: no profile named \"nope\"");
        check(r#"{"clients": {"cursor": "nope"}}"#, "$.clients.cursor");
        check(r#"{"profiles": {"a": {"tool_search": "maybe"}}}"#, "profiles.a.tool_search");
        check(r#"{"profiles": {"a": {"servers": {"s": {"tool": ["x"]}}}}}"#, "profiles.a.servers.s.tool");
        check(r#"{"profile": {}}"#, "$.profile: unknown field");
    }

    #[test]
    fn a_tokens_file_others_may_read_is_warned_of() {
        use std::os::unix::fs::PermissionsExt;
        let file = std::env::temp_dir().join(format!("agenthub-tokens-{}.json", std::process::id()));
        std::fs::write(&file, "{}").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(loose_mode(&file).is_some_and(|w| w.contains("mode 644") && w.contains("chmod 600")));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(loose_mode(&file), None);
        let _ = std::fs::remove_file(&file);
    }

    #[test]
    fn globs() {
        for (p, n, ok) in [
            ("get-*", "get-sum", true),
            ("get-*", "get", false),
            ("*", "x", true),
            ("*_file", "read_file", true),
            ("read_?", "read_a", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("echo", "echo2", false),
        ] {
            assert_eq!(glob(p, n), ok, "{p} {n}");
        }
    }
}
