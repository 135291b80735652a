//! Configuration in two stages, raw then validated: `Settings` from the environment overridden by
//! flags, and the two JSON files (servers, enhancement rules). Servers files are read in the hub's
//! own shape and, unchanged, in Claude Desktop's / Cursor's (`mcpServers`) and VS Code's (`servers`
//! with `type`, `inputs`). Errors name the file, the JSON path and, for syntax errors, line and
//! column. Nothing here spawns, listens or reads the clock.
//!
//! This module loads both files at start-up (`load`) and holds the JSON reading they share;
//! `settings`, `servers` and `rules` each own one kind of configuration.

mod rules;
mod secrets;
mod servers;
mod settings;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

pub use rules::{Rules, parse_rules};
pub use secrets::Secrets;
pub use servers::{
    ServerConfig, ServerEntry, Transport, parse_servers, servers_to_json, validate_server_name,
};
pub use settings::{SETTINGS, Settings, is_loopback_host};

/// The example servers file shipped in `configs/`, used when no file is found.
pub const DEFAULT_SERVERS_JSON: &str = include_str!("../../configs/mcp-servers.json");
/// The example rules file shipped in `configs/`, used when no file is found.
pub const DEFAULT_RULES_JSON: &str = include_str!("../../configs/enhancement-rules.json");

pub const SERVERS_FILE_NAME: &str = "mcp-servers.json";
pub const RULES_FILE_NAME: &str = "enhancement-rules.json";

/// Everything read at start-up.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub servers: Vec<ServerEntry>,
    pub rules: Rules,
    /// The hub's own servers file: where API changes are saved.
    pub servers_path: PathBuf,
    /// One line per file read (or "embedded defaults").
    pub sources: Vec<String>,
    /// Non-fatal findings (name clashes between files).
    pub warnings: Vec<String>,
}

/// Reads the config dir (or embedded defaults) and the imported servers file.
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
    let (text, label) = read_or_default(&servers_path, DEFAULT_SERVERS_JSON)?;
    sources.push(format!("servers: {label}"));
    let mut servers: Vec<ServerEntry> = parse_servers(&text, &label)?
        .into_iter()
        .map(|(name, config)| ServerEntry { name, config, origin: label.clone(), problem: None })
        .collect();

    if let Some(import) = &settings.servers_file {
        let label = import.display().to_string();
        let text = std::fs::read_to_string(import)
            .map_err(|e| Error::Config(format!("{label}: cannot read servers file: {e}")))?;
        sources.push(format!("servers (imported, read-only): {label}"));
        for (name, config) in parse_servers(&text, &label)? {
            if let Some(own) = servers.iter().find(|s| s.name == name) {
                warnings.push(format!(
                    "server \"{name}\" is defined in {} and in {label}; using the one in {}",
                    own.origin, own.origin
                ));
                continue;
            }
            servers.push(ServerEntry { name, config, origin: label.clone(), problem: None });
        }
    }
    for s in &mut servers {
        let missing = s.config.missing_vars(env);
        if !missing.is_empty() {
            s.problem = Some(format!("missing environment variable {}", missing.join(", ")));
        }
    }

    let (text, label) = read_or_default(&dir.join(RULES_FILE_NAME), DEFAULT_RULES_JSON)?;
    sources.push(format!("rules: {label}"));
    let rules = parse_rules(&text, &label)?;
    Ok(Loaded { servers, rules, servers_path, sources, warnings })
}

/// A file's text and its label, or the embedded text when the file does not exist.
fn read_or_default(path: &Path, default: &str) -> Result<(String, String)> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((text, path.display().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok((default.to_string(), "embedded defaults".to_string()))
        }
        Err(e) => Err(Error::Config(format!("{}: cannot read: {e}", path.display()))),
    }
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
        assert!(!parse_servers(DEFAULT_SERVERS_JSON, "embedded").unwrap().is_empty());
        let rules = parse_rules(DEFAULT_RULES_JSON, "embedded").unwrap();
        for client in ["vscode", "claude-desktop", "cursor", "raycast"] {
            assert_eq!(rules.for_client(Some(client)).0, client);
        }
    }
}
