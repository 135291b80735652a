//! Configuration in two stages, raw then validated: `Settings` from the environment overridden by
//! flags, and the two JSON files (servers, enhancement rules). Servers files are read in the hub's
//! own shape and, unchanged, in Claude Desktop's / Cursor's (`mcpServers`) and VS Code's (`servers`
//! with `type`, `inputs`, JSONC). Errors name the file, the JSON path and, for syntax errors, line
//! and column. Nothing here spawns, listens or reads the clock.
//!
//! This module loads both files at start-up (`load`) and holds the JSON reading they share;
//! `settings`, `rules`, `file` (a servers file and its saves), `servers` (one server), `names`,
//! `vars` (`${...}`, `envFile`), `secrets` and `jsonc` each own one part.

mod file;
pub(crate) mod jsonc;
mod names;
mod oauth;
pub mod pipelines;
pub mod profiles;
pub mod refs;
mod rules;
mod secrets;
mod server_fields;
mod servers;
mod setting_specs;
mod settings;
mod tool_search;
mod vars;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};
use sha2::Digest;

use crate::error::{Error, Result};

pub use file::Document;
pub use names::validate_server_name;
pub use oauth::OAuthClient;
pub use profiles::{PROFILES_FILE_NAME, Profiles};
pub use rules::{Rules, parse_rules};
pub use secrets::{Secrets, mask_args, mask_url};
pub use servers::{Elicitation, Sampling, ServerConfig, ServerEntry, Transport};
pub use settings::{SETTINGS, Settings, is_loopback_host};
pub use tool_search::ToolSearch;
pub use vars::Scope;

/// The example servers file shipped in `configs/`, used when nothing is configured.
pub const DEFAULT_SERVERS_JSON: &str = include_str!("../../configs/mcp-servers.json");
/// The example rules file shipped in `configs/`, used when no file is found.
pub const DEFAULT_RULES_JSON: &str = include_str!("../../configs/enhancement-rules.json");
/// The pipelines shipped in `configs/`, used when the config dir has none.
pub const DEFAULT_PIPELINES_JSON: &str = include_str!("../../configs/pipelines.json");

pub const SERVERS_FILE_NAME: &str = "mcp-servers.json";
pub const RULES_FILE_NAME: &str = "enhancement-rules.json";
pub const PIPELINES_FILE_NAME: &str = "pipelines.json";
/// The origin of the embedded example servers.
pub const EMBEDDED: &str = "embedded defaults";

/// Everything read at start-up.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub servers: Vec<ServerEntry>,
    pub rules: Rules,
    pub pipelines: Vec<pipelines::Pipeline>,
    /// `profiles.json` and the tokens file (`Profiles::default()`: neither).
    pub profiles: Profiles,
    /// The pipelines are the embedded ones (no `pipelines.json` of the user's).
    pub pipelines_embedded: bool,
    /// The hub's own servers file: where API changes are saved.
    pub servers_path: PathBuf,
    /// That file as read (or the embedded defaults, or nothing yet): what saves start from.
    pub document: Document,
    /// One line per file read (or "embedded defaults").
    pub sources: Vec<String>,
    /// Non-fatal findings: unknown fields, name clashes between files, comments a save drops.
    pub warnings: Vec<String>,
}

/// Reads the config dir and the imported servers file. The embedded example servers apply
/// only when neither the hub's own servers file nor an import exists: never beside a file the
/// user named.
pub fn load(settings: &Settings, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded> {
    let dir = settings.own_config_dir(env);
    if let Some(named) = &settings.config_dir {
        if !named.is_dir() {
            return Err(Error::Config(format!(
                "config dir {} does not exist or is not a directory",
                named.display()
            )));
        }
    }
    let mut sources = Vec::new();
    let mut warnings = Vec::new();
    let servers_path = dir.join(SERVERS_FILE_NAME);
    let workspace = settings.workspace.as_deref();
    let scope = Scope::of_file(&servers_path, workspace);
    let own = match (read_optional(&servers_path)?, &settings.servers_file) {
        (Some(text), _) => {
            let label = servers_path.display().to_string();
            sources.push(format!("servers: {label}"));
            let mut own = file::read(&text, &label, scope)?;
            own.document.on_disk = Some(sha2::Sha256::digest(text.as_bytes()).into());
            if own.document.had_comments {
                warnings.push(format!("{label}: has comments; a save through the API will not keep them"));
            }
            own
        }
        (None, None) => {
            sources.push(format!("servers: {EMBEDDED}"));
            file::read(DEFAULT_SERVERS_JSON, EMBEDDED, scope)?
        }
        (None, Some(_)) => {
            file::FileServers { document: Document::empty(scope), entries: Vec::new(), warnings: Vec::new() }
        }
    };
    warnings.extend(own.warnings);
    let mut servers = own.entries;

    if let Some(import) = &settings.servers_file {
        let label = import.display().to_string();
        let text = std::fs::read_to_string(import)
            .map_err(|e| Error::Config(format!("{label}: cannot read servers file: {e}")))?;
        sources.push(format!("servers (imported, read-only): {label}"));
        let imported = file::read(&text, &label, Scope::of_file(import, workspace))?;
        warnings.extend(imported.warnings);
        for entry in imported.entries {
            if let Some(own) = servers.iter().find(|s| s.name.eq_ignore_ascii_case(&entry.name)) {
                warnings.push(format!(
                    "server \"{}\" is defined in {} and in {label}; using the one in {}",
                    entry.display_name, own.origin, own.origin
                ));
                continue;
            }
            servers.push(entry);
        }
    }
    for s in servers.iter_mut().filter(|s| s.problem.is_none()) {
        s.problem = s.config.problem(env);
    }

    let (text, label) = read_or_default(&dir.join(RULES_FILE_NAME), DEFAULT_RULES_JSON)?;
    sources.push(format!("rules: {label}"));
    let rules = parse_rules(&text, &label)?;

    let (text, label) = read_or_default(&dir.join(PIPELINES_FILE_NAME), DEFAULT_PIPELINES_JSON)?;
    sources.push(format!("pipelines: {label}"));
    let pipelines = pipelines::parse_pipelines(&text, &label)?;
    // The shipped pipelines are examples: `GET /pipelines` says what they miss.
    for p in pipelines.iter().filter(|_| label != EMBEDDED) {
        for server in pipelines::servers_used(p) {
            if !servers.iter().any(|s| s.name == server) {
                let step = p
                    .steps
                    .iter()
                    .find(|s| matches!(&s.kind, pipelines::Kind::Tool { server: n, .. } if *n == server));
                let step = step.map(|s| s.id.as_str()).unwrap_or_default();
                warnings.push(format!(
                    "{label}: pipeline \"{}\", step \"{step}\": no server named \"{server}\"; the step fails until one is added",
                    p.name
                ));
            }
        }
    }
    let pipelines_embedded = label == EMBEDDED;
    let profiles = load_profiles(&dir, settings)?;
    if let Some(label) = &profiles.file {
        sources.push(format!("profiles: {label}"));
    }
    if let Some(label) = &profiles.tokens_file {
        sources.push(format!("tokens: {label} ({} token(s))", profiles.tokens.len()));
    }
    let names: Vec<String> = servers.iter().map(|s| s.name.clone()).collect();
    warnings.extend(profiles.unknown_servers(&names));
    warnings.extend(settings.tokens_file.as_deref().and_then(profiles::loose_mode));
    Ok(Loaded {
        profiles,
        servers,
        rules,
        pipelines,
        pipelines_embedded,
        servers_path,
        document: own.document,
        sources,
        warnings,
    })
}

/// `profiles.json` of the config dir (none: one profile showing everything) and the tokens file
/// `AGENTHUB_TOKENS_FILE` names (which must exist when named).
fn load_profiles(dir: &Path, settings: &Settings) -> Result<Profiles> {
    let path = dir.join(PROFILES_FILE_NAME);
    let mut profiles = match read_optional(&path)? {
        Some(text) => profiles::parse_profiles(&text, &path.display().to_string())?,
        None => Profiles::default(),
    };
    if let Some(file) = &settings.tokens_file {
        let label = file.display().to_string();
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::Config(format!("{label}: cannot read the tokens file: {e}")))?;
        profiles.tokens = profiles::parse_tokens(&text, &label, &profiles)?;
        profiles.tokens_file = Some(label);
    }
    Ok(profiles)
}

/// A file's text, or None when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Config(format!("{}: cannot read: {e}", path.display()))),
    }
}

/// A file's text and its label, or the embedded text when the file does not exist.
fn read_or_default(path: &Path, default: &str) -> Result<(String, String)> {
    Ok(match read_optional(path)? {
        Some(text) => (text, path.display().to_string()),
        None => (default.to_string(), EMBEDDED.to_string()),
    })
}

fn parse_json(text: &str, file: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        let msg = e.to_string();
        let msg = match msg.rfind(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        };
        Error::Config(format!("{file}:{}:{}: invalid JSON: {msg}", e.line(), e.column()))
    })
}

/// Typed field access on a JSON object, with the JSON path in every error.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    file: &'a str,
    at: &'a str,
}

impl<'a> Fields<'a> {
    fn new(value: &'a Value, file: &'a str, at: &'a str) -> Result<Fields<'a>> {
        match value {
            Value::Object(map) => Ok(Fields { map, file, at }),
            _ => Err(Error::Config(format!("{file}: {at}: expected an object"))),
        }
    }

    fn err(&self, key: &str, msg: &str) -> Error {
        Error::Config(format!("{}: {}.{key}: {msg}", self.file, self.at))
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn str(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.err(key, "expected a string")),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.err(key, "expected true or false")),
        }
    }

    fn u32(&self, key: &str) -> Result<Option<u32>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| self.err(key, "expected a whole number >= 0")),
        }
    }

    fn secs(&self, key: &str) -> Result<Option<Duration>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(s) if (0.0..1e9).contains(&s) => Ok(Some(Duration::from_secs_f64(s))),
                _ => Err(self.err(key, "expected a number of seconds >= 0")),
            },
        }
    }

    fn str_list(&self, key: &str) -> Result<Option<Vec<String>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(self.err(&format!("{key}[{i}]"), "expected a string")),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(_) => Err(self.err(key, "expected an array of strings")),
        }
    }

    fn str_map(&self, key: &str) -> Result<Option<BTreeMap<String, String>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(self.err(&format!("{key}.{k}"), "expected a string")),
                })
                .collect::<Result<BTreeMap<_, _>>>()
                .map(Some),
            Some(_) => Err(self.err(key, "expected an object of strings")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn embedded_defaults_are_valid() {
        let f = file::read(DEFAULT_SERVERS_JSON, EMBEDDED, Scope::default()).unwrap();
        assert!(!f.entries.is_empty() && f.warnings.is_empty());
        assert!(f.entries.iter().all(|e| e.problem.is_none()));
        let rules = parse_rules(DEFAULT_RULES_JSON, "embedded").unwrap();
        let pipelines = pipelines::parse_pipelines(DEFAULT_PIPELINES_JSON, "embedded").unwrap();
        let names: Vec<&str> = pipelines.iter().map(|p| p.name.as_str()).collect();
        assert!(names.contains(&"documentation"), "{names:?}");
        for p in &pipelines {
            for server in pipelines::servers_used(p) {
                assert!(
                    f.entries.iter().any(|e| e.name == server),
                    "{}: no embedded server {server}",
                    p.name
                );
            }
        }
        for client in ["vscode", "claude-desktop", "cursor", "raycast"] {
            assert_eq!(rules.for_client(Some(client)).0, client);
        }
    }

    fn parse_server(json: &str) -> Result<(ServerConfig, Vec<String>)> {
        ServerConfig::from_json(&serde_json::from_str(json).unwrap(), "f.json", "servers.a")
    }

    #[test]
    fn on_demand_and_idle_timeout_are_read_shown_and_saved_only_when_set() {
        let (c, w) = parse_server(r#"{"command": "x", "on_demand": true, "idle_timeout": 600}"#).unwrap();
        assert!(
            w.is_empty() && c.on_demand && c.idle_timeout == std::time::Duration::from_secs(600),
            "{w:?}"
        );
        let saved = c.to_json(false);
        assert_eq!((saved["on_demand"].clone(), saved["idle_timeout"].clone()), (true.into(), 600.into()));
        let (plain, _) = parse_server(r#"{"command": "x"}"#).unwrap();
        let saved = plain.to_json(false);
        assert!(saved.get("on_demand").is_none() && saved.get("idle_timeout").is_none(), "{saved}");
        let shown = plain.to_json(true);
        assert_eq!((shown["on_demand"].clone(), shown["idle_timeout"].clone()), (false.into(), 0.into()));
        for bad in [r#"{"command": "x", "idle_timeout": 0.5}"#, r#"{"command": "x", "idle_timeout": -1}"#] {
            let e = parse_server(bad).unwrap_err().to_string();
            assert!(e.contains("idle_timeout"), "{e}");
        }
        assert!(parse_server(r#"{"command": "x", "on_demand": "yes"}"#).is_err());
    }
}
