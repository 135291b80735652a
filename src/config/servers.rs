//! MCP server definitions: `ServerConfig` and `ServerEntry`, read from the hub's own servers file
//! or, unchanged, from Claude Desktop's / Cursor's (`mcpServers`) and VS Code's (`servers` with
//! `type`, `inputs`); name validation, `${VAR}` expansion, and the JSON written back (masked when
//! shown by the API).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::secrets::{MASK, mask_args, mask_url};
use super::{Fields, parse_json};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Stdio,
    Http,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Stdio => "stdio",
            Transport::Http => "http",
        }
    }
}

/// One MCP server as configured. Text fields keep `${VAR}` unexpanded; see `expanded`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub transport: Transport,
    pub command: Option<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub package: Option<String>,
    pub url: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub auto_start: bool,
    pub restart_on_failure: bool,
    pub max_restarts: u32,
    pub restart_backoff: Duration,
    pub restart_backoff_max: Duration,
    pub handshake_timeout: Duration,
    /// Zero turns health checks off.
    pub health_check_interval: Duration,
    /// None: the hub-wide `AGENTHUB_REQUEST_TIMEOUT_S`.
    pub request_timeout: Option<Duration>,
    /// How far progress may push a request's deadline out, from its start.
    pub max_request_timeout: Duration,
    pub roots: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            transport: Transport::Stdio,
            command: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            package: None,
            url: None,
            headers: BTreeMap::new(),
            auto_start: false,
            restart_on_failure: true,
            max_restarts: 5,
            restart_backoff: Duration::from_secs(1),
            restart_backoff_max: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(30),
            health_check_interval: Duration::from_secs(30),
            request_timeout: None,
            max_request_timeout: Duration::from_secs(600),
            roots: Vec::new(),
            description: None,
            enabled: true,
        }
    }
}

/// A server as loaded, with where it came from and, if it cannot run, why.
#[derive(Debug, Clone)]
pub struct ServerEntry {
    pub name: String,
    pub config: ServerConfig,
    /// The file it was read from, or "embedded defaults".
    pub origin: String,
    /// Set when the server cannot start as configured (a missing variable, say); it loads FAILED.
    pub problem: Option<String>,
}

impl ServerConfig {
    /// Parses one server object; `at` is its JSON path for error messages.
    pub fn from_json(value: &Value, file: &str, at: &str) -> Result<ServerConfig> {
        let f = Fields::new(value, file, at)?;
        let d = ServerConfig::default();
        let transport = match f.str("transport")?.or(f.str("type")?).as_deref() {
            None => {
                if f.map.contains_key("url") && !f.map.contains_key("command") {
                    Transport::Http
                } else {
                    Transport::Stdio
                }
            }
            Some("stdio") => Transport::Stdio,
            Some("http" | "streamable-http" | "streamableHttp") => Transport::Http,
            Some("sse") => {
                return Err(f.err(
                    "type",
                    "the legacy HTTP+SSE transport is not supported; use \"http\" (Streamable HTTP)",
                ));
            }
            Some(other) => {
                return Err(f.err("transport", &format!("expected \"stdio\" or \"http\", got \"{other}\"")));
            }
        };
        let cfg = ServerConfig {
            transport,
            command: f.str("command")?,
            args: f.str_list("args")?.unwrap_or_default(),
            env: f.str_map("env")?.unwrap_or_default(),
            cwd: f.str("cwd")?,
            package: f.str("package")?,
            url: f.str("url")?,
            headers: f.str_map("headers")?.unwrap_or_default(),
            auto_start: f.bool("auto_start")?.unwrap_or(d.auto_start),
            restart_on_failure: f.bool("restart_on_failure")?.unwrap_or(d.restart_on_failure),
            max_restarts: f.u32("max_restarts")?.unwrap_or(d.max_restarts),
            restart_backoff: f.secs("restart_backoff")?.unwrap_or(d.restart_backoff),
            restart_backoff_max: f.secs("restart_backoff_max")?.unwrap_or(d.restart_backoff_max),
            handshake_timeout: f.secs("handshake_timeout")?.unwrap_or(d.handshake_timeout),
            health_check_interval: f.secs("health_check_interval")?.unwrap_or(d.health_check_interval),
            request_timeout: f.secs("request_timeout")?,
            max_request_timeout: f.secs("max_request_timeout")?.unwrap_or(d.max_request_timeout),
            roots: f.str_list("roots")?.unwrap_or_default(),
            description: f.str("description")?,
            enabled: f.bool("enabled")?.unwrap_or(d.enabled),
        };
        match cfg.transport {
            Transport::Stdio => {
                if cfg.command.as_deref().is_none_or(|c| c.trim().is_empty()) && cfg.package.is_none() {
                    return Err(f.err("command", "a stdio server needs \"command\" or \"package\""));
                }
            }
            Transport::Http => match cfg.url.as_deref() {
                None => return Err(f.err("url", "an http server needs \"url\"")),
                Some(u)
                    if !(u.starts_with("http://") || u.starts_with("https://") || u.starts_with("${")) =>
                {
                    return Err(f.err("url", &format!("expected an http:// or https:// URL, got \"{u}\"")));
                }
                Some(_) => {}
            },
        }
        for (i, root) in cfg.roots.iter().enumerate() {
            if !root.starts_with("file://") {
                return Err(f.err(&format!("roots[{i}]"), "expected a file:// URI"));
            }
        }
        for (key, dur) in [
            ("handshake_timeout", cfg.handshake_timeout),
            ("request_timeout", cfg.request_timeout.unwrap_or(Duration::from_secs(1))),
            ("max_request_timeout", cfg.max_request_timeout),
        ] {
            if dur.is_zero() {
                return Err(f.err(key, "must be more than 0 seconds"));
            }
        }
        Ok(cfg)
    }

    /// The JSON saved in the hub's file (unexpanded), or shown by the API with `masked`
    /// (see `secrets` for what is masked).
    pub fn to_json(&self, masked: bool) -> Value {
        let mut m = Map::new();
        let mask = |map: &BTreeMap<String, String>| -> Value {
            map.iter()
                .map(|(k, v)| {
                    let v = if masked { MASK.to_string() } else { v.clone() };
                    (k.clone(), Value::String(v))
                })
                .collect::<Map<_, _>>()
                .into()
        };
        m.insert("transport".into(), self.transport.as_str().into());
        if let Some(c) = &self.command {
            m.insert("command".into(), c.clone().into());
        }
        if !self.args.is_empty() {
            let args = if masked { mask_args(&self.args) } else { self.args.clone() };
            m.insert("args".into(), args.into());
        }
        if !self.env.is_empty() {
            m.insert("env".into(), mask(&self.env));
        }
        if let Some(c) = &self.cwd {
            m.insert("cwd".into(), c.clone().into());
        }
        if let Some(p) = &self.package {
            m.insert("package".into(), p.clone().into());
        }
        if let Some(u) = &self.url {
            let url = if masked { mask_url(u) } else { u.clone() };
            m.insert("url".into(), url.into());
        }
        if !self.headers.is_empty() {
            m.insert("headers".into(), mask(&self.headers));
        }
        m.insert("auto_start".into(), self.auto_start.into());
        m.insert("restart_on_failure".into(), self.restart_on_failure.into());
        m.insert("max_restarts".into(), self.max_restarts.into());
        m.insert("restart_backoff".into(), secs(self.restart_backoff));
        m.insert("restart_backoff_max".into(), secs(self.restart_backoff_max));
        m.insert("handshake_timeout".into(), secs(self.handshake_timeout));
        m.insert("health_check_interval".into(), secs(self.health_check_interval));
        if let Some(t) = self.request_timeout {
            m.insert("request_timeout".into(), secs(t));
        }
        if self.max_request_timeout != ServerConfig::default().max_request_timeout {
            m.insert("max_request_timeout".into(), secs(self.max_request_timeout));
        }
        if !self.roots.is_empty() {
            m.insert("roots".into(), self.roots.clone().into());
        }
        if let Some(d) = &self.description {
            m.insert("description".into(), d.clone().into());
        }
        m.insert("enabled".into(), self.enabled.into());
        Value::Object(m)
    }

    /// Names of the variables referenced by `${VAR}` / `${env:VAR}` that `env` does not define,
    /// and of VS Code `${input:ID}` prompts, which the hub cannot ask.
    pub fn missing_vars(&self, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
        let mut missing = Vec::new();
        for text in self.texts() {
            let _ = expand(text, &mut |name: &str| {
                let found = lookup_var(name, env);
                if found.is_none() && !missing.iter().any(|m| m == name) {
                    missing.push(name.to_string());
                }
                found
            });
        }
        missing
    }

    /// A copy with every `${VAR}` expanded; the error names the first missing variable.
    pub fn expanded(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<ServerConfig, String> {
        let mut out = self.clone();
        let mut missing: Option<String> = None;
        let mut x = |s: &str| -> String {
            expand(s, &mut |name: &str| {
                let v = lookup_var(name, env);
                if v.is_none() && missing.is_none() {
                    missing = Some(name.to_string());
                }
                v
            })
        };
        out.command = self.command.as_deref().map(&mut x);
        out.args = self.args.iter().map(|a| x(a)).collect();
        out.env = self.env.iter().map(|(k, v)| (k.clone(), x(v))).collect();
        out.cwd = self.cwd.as_deref().map(&mut x);
        out.url = self.url.as_deref().map(&mut x);
        out.headers = self.headers.iter().map(|(k, v)| (k.clone(), x(v))).collect();
        match missing {
            Some(name) => Err(name),
            None => Ok(out),
        }
    }

    fn texts(&self) -> impl Iterator<Item = &str> {
        self.command
            .iter()
            .chain(self.cwd.iter())
            .chain(self.url.iter())
            .chain(self.args.iter())
            .chain(self.env.values())
            .chain(self.headers.values())
            .map(String::as_str)
    }
}

fn secs(d: Duration) -> Value {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 { Value::from(d.as_secs()) } else { Value::from(s) }
}

/// `env:NAME` and `NAME` read the environment; `input:ID` cannot be answered.
pub(super) fn lookup_var(name: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if name.starts_with("input:") {
        return None;
    }
    env(name.strip_prefix("env:").unwrap_or(name))
}

/// Replaces `${NAME}` using `lookup`; an unknown name expands to "" (the caller records it).
/// Text without a closing brace is kept as it is.
pub(super) fn expand(text: &str, lookup: &mut dyn FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                out.push_str(&lookup(&after[..end]).unwrap_or_default());
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Server names: 1-64 of `[A-Za-z0-9_-]`, no `__` (the aggregated endpoint's separator), and not
/// `agenthub` (the hub's own tools).
pub fn validate_server_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("server name \"{name}\" must be 1 to 64 characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(format!("server name \"{name}\" may hold only letters, digits, '_' and '-'"));
    }
    if name.contains("__") {
        return Err(format!("server name \"{name}\" must not contain \"__\""));
    }
    if name.eq_ignore_ascii_case("agenthub") {
        return Err("server name \"agenthub\" is reserved".into());
    }
    Ok(())
}

/// Parses a servers file in any of the three shapes; `file` names it in errors.
pub fn parse_servers(text: &str, file: &str) -> Result<Vec<(String, ServerConfig)>> {
    let root = parse_json(text, file)?;
    let Value::Object(obj) = &root else {
        return Err(Error::Config(format!("{file}: expected a JSON object at the top")));
    };
    let (key, servers) = match (obj.get("servers"), obj.get("mcpServers")) {
        (Some(s), None) => ("servers", s),
        (None, Some(s)) => ("mcpServers", s),
        (Some(_), Some(_)) => {
            return Err(Error::Config(format!("{file}: has both \"servers\" and \"mcpServers\"; keep one")));
        }
        (None, None) => {
            return Err(Error::Config(format!(
                "{file}: expected an object with \"servers\" (AgentHub, VS Code) or \"mcpServers\" (Claude Desktop, Cursor)"
            )));
        }
    };
    let Value::Object(servers) = servers else {
        return Err(Error::Config(format!("{file}: {key}: expected an object of servers by name")));
    };
    let mut out = Vec::with_capacity(servers.len());
    for (name, value) in servers {
        let at = format!("{key}.{name}");
        validate_server_name(name).map_err(|m| Error::Config(format!("{file}: {at}: {m}")))?;
        out.push((name.clone(), ServerConfig::from_json(value, file, &at)?));
    }
    Ok(out)
}

/// The hub's own file shape, as saved.
pub fn servers_to_json<'a>(servers: impl Iterator<Item = (&'a str, &'a ServerConfig)>) -> Value {
    let map: Map<String, Value> = servers.map(|(n, c)| (n.to_string(), c.to_json(false))).collect();
    serde_json::json!({ "servers": map })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env_of;

    #[test]
    fn reads_all_three_shapes() {
        let claude = r#"{"mcpServers": {"fs": {"command": "npx", "args": ["-y", "x"], "env": {"K": "v"}}, "remote": {"url": "https://r.example/mcp", "headers": {"Authorization": "Bearer t"}}}}"#;
        let s = parse_servers(claude, "c.json").unwrap();
        assert_eq!(s[0].0, "fs");
        assert_eq!(s[0].1.transport, Transport::Stdio);
        assert_eq!(s[0].1.args, ["-y", "x"]);
        assert_eq!(s[1].1.transport, Transport::Http);
        let vscode = r#"{"inputs": [{"id": "key", "type": "promptString"}], "servers": {"gh": {"type": "http", "url": "https://api/mcp"}, "local": {"type": "stdio", "command": "node", "args": ["s.js"]}}}"#;
        let s = parse_servers(vscode, "v.json").unwrap();
        assert_eq!(
            s.iter().map(|(n, c)| (n.as_str(), c.transport)).collect::<Vec<_>>(),
            [("gh", Transport::Http), ("local", Transport::Stdio)]
        );
        let own = r#"{"servers": {"e": {"transport": "stdio", "command": "x", "auto_start": true, "max_restarts": 2, "restart_backoff": 0.5, "request_timeout": 5}}}"#;
        let (_, c) = &parse_servers(own, "o.json").unwrap()[0];
        assert!(c.auto_start);
        assert_eq!(c.max_restarts, 2);
        assert_eq!(c.restart_backoff, Duration::from_millis(500));
        assert_eq!(c.request_timeout, Some(Duration::from_secs(5)));
    }

    #[test]
    fn servers_round_trip_through_json() {
        let own = r#"{"servers": {"e": {"command": "x", "args": ["${HOME}/a"], "env": {"T": "${env:TOKEN}"}, "restart_backoff": 0.25, "roots": ["file:///tmp"], "description": "d"}}}"#;
        let parsed = parse_servers(own, "o.json").unwrap();
        let json = servers_to_json(parsed.iter().map(|(n, c)| (n.as_str(), c))).to_string();
        assert_eq!(parse_servers(&json, "saved").unwrap(), parsed);
        assert!(json.contains("${env:TOKEN}"), "saved text stays unexpanded");
    }

    #[test]
    fn secrets_are_masked() {
        let (_, c) = &parse_servers(
            r#"{"servers": {"e": {"command": "x", "env": {"API_KEY": "sekrit"}, "headers": {"X": "h"}}}}"#,
            "f",
        )
        .unwrap()[0];
        let shown = c.to_json(true).to_string();
        assert!(shown.contains("API_KEY") && shown.contains("***") && !shown.contains("sekrit"), "{shown}");
    }

    #[test]
    fn config_errors_name_file_path_and_position() {
        fn check(text: &str, needle: &str) {
            let e = parse_servers(text, "f.json").unwrap_err().to_string();
            assert!(e.contains(needle), "{e:?} lacks {needle:?}");
        }
        check("{\n  \"servers\": {\n    \"a\": {,}\n  }\n}", "f.json:3:11: invalid JSON");
        check(r#"{"servers": {"a": {"command": 5}}}"#, "f.json: servers.a.command: expected a string");
        check(
            r#"{"servers": {"a": {"command": "x", "args": ["ok", 3]}}}"#,
            "servers.a.args[1]: expected a string",
        );
        check(r#"{"servers": {"a": {"command": "x", "env": {"K": 1}}}}"#, "servers.a.env.K");
        check(r#"{"servers": {"a": {"transport": "pigeon", "command": "x"}}}"#, "servers.a.transport");
        check(r#"{"servers": {"a": {"transport": "http"}}}"#, "servers.a.url");
        check(r#"{"servers": {"a": {"args": []}}}"#, "servers.a.command");
        check(r#"{"servers": {"a__b": {"command": "x"}}}"#, "servers.a__b: server name");
        check(r#"{"servers": {"agenthub": {"command": "x"}}}"#, "reserved");
        check(r#"{"mcpServers": {"a": {"command": "x", "max_restarts": -1}}}"#, "mcpServers.a.max_restarts");
        check(r#"{"servers": {"a": {"command": "x", "roots": ["/tmp"]}}}"#, "servers.a.roots[0]");
        check(r#"{"tools": {}}"#, "\"mcpServers\"");
        check(r#"[]"#, "top");
    }

    #[test]
    fn variables_expand_and_missing_ones_are_named() {
        let (_, c) = &parse_servers(r#"{"servers": {"a": {"command": "${BIN}", "args": ["--key=${env:KEY}", "${input:pat}"], "env": {"X": "pre-${KEY}-post"}}}}"#, "f").unwrap()[0];
        let env = env_of(&[("BIN", "/usr/bin/srv"), ("KEY", "k1")]);
        assert_eq!(c.missing_vars(&env), ["input:pat"]);
        let mut ok = c.clone();
        ok.args.pop();
        let x = ok.expanded(&env).unwrap();
        assert_eq!(x.command.as_deref(), Some("/usr/bin/srv"));
        assert_eq!(x.args, ["--key=k1"]);
        assert_eq!(x.env["X"], "pre-k1-post");
        assert_eq!(ok.expanded(&env_of(&[])).unwrap_err(), "BIN");
        assert_eq!(expand("a ${unclosed", &mut |_| Some("z".into())), "a ${unclosed");
    }

    #[test]
    fn server_names() {
        for (n, ok) in [
            ("a", true),
            ("my-server_2", true),
            ("", false),
            ("a b", false),
            ("a.b", false),
            ("a__b", false),
            ("AgentHub", false),
        ] {
            assert_eq!(validate_server_name(n).is_ok(), ok, "{n}");
        }
        assert!(validate_server_name(&"x".repeat(64)).is_ok());
        assert!(validate_server_name(&"x".repeat(65)).is_err());
    }
}
