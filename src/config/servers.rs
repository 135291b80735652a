//! One MCP server's definition: `ServerConfig` parsed from a server object in any of the three
//! file shapes (the hub's own fields, and those Claude Desktop, Cursor and VS Code write:
//! `type`, `disabled`, `envFile`), with a warning for every field it does not know; `${...}`
//! references and `envFile` resolved when it starts; and the JSON it is saved or shown as.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::Fields;
use super::secrets::{MASK, mask_args, mask_url};
use super::vars::{self, Scope};
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Stdio,
    Http,
    /// The legacy HTTP+SSE transport (`"type": "sse"`, MCP 2024-11-05): `servers::legacy_sse`.
    Sse,
    /// A bare `url`/`serverUrl` (Cursor, Windsurf): Streamable HTTP, else legacy SSE.
    Url,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Stdio => "stdio",
            Transport::Http => "http",
            Transport::Sse => "sse",
            Transport::Url => "url",
        }
    }
}

/// Who answers a server's `sampling/createMessage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Relayed to the client the request belongs to; without one, an error.
    Client,
    /// Always the local model.
    Local,
    /// The client when it declared sampling, else the local model (the default).
    ClientThenLocal,
    /// Refused.
    Deny,
}

impl Sampling {
    pub fn parse(s: &str) -> Option<Sampling> {
        Some(match s {
            "client" => Sampling::Client,
            "local" => Sampling::Local,
            "client_then_local" => Sampling::ClientThenLocal,
            "deny" => Sampling::Deny,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Sampling::Client => "client",
            Sampling::Local => "local",
            Sampling::ClientThenLocal => "client_then_local",
            Sampling::Deny => "deny",
        }
    }
}

/// Who answers a server's `elicitation/create`: a hub cannot fill a form for a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elicitation {
    Client,
    Decline,
}

/// One MCP server as configured. Text fields keep `${VAR}` unexpanded; see `expanded`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub transport: Transport,
    pub command: Option<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// A dotenv file read at start; `env` wins over it. Relative to the file it was read from.
    pub env_file: Option<String>,
    pub cwd: Option<String>,
    pub package: Option<String>,
    /// Install an npm entry's package with its install scripts off (the default).
    pub ignore_scripts: bool,
    pub url: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub oauth: Option<super::OAuthClient>,
    pub auto_start: bool,
    /// Started at its first use (a call, a session, a pipeline step), not before.
    pub on_demand: bool,
    /// Stopped (SLEEPING) after this long without a call; zero: never.
    pub idle_timeout: Duration,
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
    /// Who answers the server's `sampling/createMessage`.
    pub sampling: Sampling,
    /// The local model for its sampling when its request's hints name none Ollama has.
    pub sampling_model: Option<String>,
    /// Who answers the server's `elicitation/create`.
    pub elicitation: Elicitation,
    pub roots: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    /// What its references resolve against (never saved).
    pub scope: Scope,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            transport: Transport::Stdio,
            command: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            env_file: None,
            cwd: None,
            package: None,
            ignore_scripts: true,
            url: None,
            headers: BTreeMap::new(),
            oauth: None,
            auto_start: false,
            on_demand: false,
            idle_timeout: Duration::ZERO,
            restart_on_failure: true,
            max_restarts: 5,
            restart_backoff: Duration::from_secs(1),
            restart_backoff_max: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(30),
            health_check_interval: Duration::from_secs(30),
            request_timeout: None,
            max_request_timeout: Duration::from_secs(600),
            sampling: Sampling::ClientThenLocal,
            sampling_model: None,
            elicitation: Elicitation::Client,
            roots: Vec::new(),
            description: None,
            enabled: true,
            scope: Scope::default(),
        }
    }
}

/// A server as loaded, with where it came from and, if it cannot run, why.
#[derive(Debug, Clone)]
pub struct ServerEntry {
    /// The safe name: paths, `server__tool`, the table's key.
    pub name: String,
    /// The name as written in its file (the same as `name` unless that had to be derived).
    pub display_name: String,
    pub config: ServerConfig,
    /// The file it was read from, or "embedded defaults".
    pub origin: String,
    /// Set when the server cannot start as configured (a missing variable, say); it loads FAILED.
    pub problem: Option<String>,
}

impl ServerConfig {
    /// Parses one server object; `at` is its JSON path for errors and warnings (one per
    /// unknown field, naming its path).
    pub fn from_json(value: &Value, file: &str, at: &str) -> Result<(ServerConfig, Vec<String>)> {
        let f = Fields::new(value, file, at)?;
        let d = ServerConfig::default();
        let warnings = f
            .map
            .keys()
            .filter(|k| !super::server_fields::KNOWN_FIELDS.contains(&k.as_str()))
            .map(|k| format!("{file}: {at}.{k}: {}", super::server_fields::unknown_field(k)))
            .collect();
        let transport = match f.str("transport")?.or(f.str("type")?).as_deref() {
            None => {
                if (f.map.contains_key("url") || f.map.contains_key("serverUrl"))
                    && !f.map.contains_key("command")
                {
                    Transport::Url
                } else {
                    Transport::Stdio
                }
            }
            Some("stdio") => Transport::Stdio,
            Some("http" | "streamable-http" | "streamableHttp") => Transport::Http,
            Some("sse") => Transport::Sse,
            Some(other) => {
                let key = if f.map.contains_key("transport") { "transport" } else { "type" };
                return Err(f.err(key, &format!("expected \"stdio\", \"http\" or \"sse\", got \"{other}\"")));
            }
        };
        let disabled = f.bool("disabled")?.unwrap_or(false);
        let cfg = ServerConfig {
            transport,
            command: f.str("command")?,
            args: f.str_list("args")?.unwrap_or_default(),
            env: f.str_map("env")?.unwrap_or_default(),
            env_file: f.str("envFile")?,
            cwd: f.str("cwd")?,
            package: f.str("package")?,
            ignore_scripts: f.bool("ignore_scripts")?.unwrap_or(d.ignore_scripts),
            url: f.str("url")?.or(f.str("serverUrl")?),
            headers: f.str_map("headers")?.unwrap_or_default(),
            oauth: f
                .get("oauth")
                .map(super::OAuthClient::parse)
                .transpose()
                .map_err(|e| f.err("oauth", &e))?,
            auto_start: f.bool("auto_start")?.unwrap_or(d.auto_start),
            on_demand: f.bool("on_demand")?.unwrap_or(d.on_demand),
            idle_timeout: f.secs("idle_timeout")?.unwrap_or(d.idle_timeout),
            restart_on_failure: f.bool("restart_on_failure")?.unwrap_or(d.restart_on_failure),
            max_restarts: f.u32("max_restarts")?.unwrap_or(d.max_restarts),
            restart_backoff: f.secs("restart_backoff")?.unwrap_or(d.restart_backoff),
            restart_backoff_max: f.secs("restart_backoff_max")?.unwrap_or(d.restart_backoff_max),
            handshake_timeout: f.secs("handshake_timeout")?.unwrap_or(d.handshake_timeout),
            health_check_interval: f.secs("health_check_interval")?.unwrap_or(d.health_check_interval),
            request_timeout: f.secs("request_timeout")?,
            max_request_timeout: f.secs("max_request_timeout")?.unwrap_or(d.max_request_timeout),
            sampling: match f.str("sampling")?.as_deref() {
                None => d.sampling,
                Some(v) => Sampling::parse(v).ok_or_else(|| {
                    f.err(
                        "sampling",
                        &format!("expected client, local, client_then_local or deny, got \"{v}\""),
                    )
                })?,
            },
            sampling_model: f.str("sampling_model")?,
            elicitation: match f.str("elicitation")?.as_deref() {
                None => d.elicitation,
                Some("client") => Elicitation::Client,
                Some("decline") => Elicitation::Decline,
                Some(v) => {
                    return Err(f.err("elicitation", &format!("expected client or decline, got \"{v}\"")));
                }
            },
            roots: f.str_list("roots")?.unwrap_or_default(),
            description: f.str("description")?,
            enabled: f.bool("enabled")?.unwrap_or(d.enabled) && !disabled,
            scope: Scope::default(),
        };
        match cfg.transport {
            Transport::Stdio => {
                if cfg.command.as_deref().is_none_or(|c| c.trim().is_empty()) && cfg.package.is_none() {
                    return Err(f.err("command", "a stdio server needs \"command\" or \"package\""));
                }
            }
            Transport::Http | Transport::Sse | Transport::Url => match cfg.url.as_deref() {
                None => return Err(f.err("url", "an http server needs \"url\"")),
                Some(u)
                    if !(u.starts_with("http://") || u.starts_with("https://") || u.starts_with("${")) =>
                {
                    return Err(f.err("url", &format!("expected an http:// or https:// URL, got \"{u}\"")));
                }
                Some(_) => {}
            },
        }
        if !cfg.idle_timeout.is_zero() && cfg.idle_timeout < Duration::from_secs(1) {
            // Below a second a server would be put to sleep between two calls of one client.
            return Err(f.err("idle_timeout", "must be 0 (never) or at least 1 second"));
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
        Ok((cfg, warnings))
    }

    /// Every field in the hub's own spelling (unexpanded), or as shown by the API with
    /// `masked` (see `secrets` for what is masked).
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
        if self.transport != Transport::Url {
            m.insert("transport".into(), self.transport.as_str().into());
        }
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
        if let Some(e) = &self.env_file {
            m.insert("envFile".into(), e.clone().into());
        }
        if let Some(c) = &self.cwd {
            m.insert("cwd".into(), c.clone().into());
        }
        if let Some(p) = &self.package {
            m.insert("package".into(), p.clone().into());
        }
        if !self.ignore_scripts {
            m.insert("ignore_scripts".into(), false.into());
        }
        if let Some(u) = &self.url {
            let url = if masked { mask_url(u) } else { u.clone() };
            m.insert("url".into(), url.into());
        }
        if !self.headers.is_empty() {
            m.insert("headers".into(), mask(&self.headers));
        }
        m.extend(self.oauth.as_ref().map(|o| ("oauth".to_string(), o.to_json(masked))));
        m.insert("auto_start".into(), self.auto_start.into());
        // Shown always; saved only when set (a file that never named them keeps not naming them).
        if masked || self.on_demand {
            m.insert("on_demand".into(), self.on_demand.into());
        }
        if masked || !self.idle_timeout.is_zero() {
            m.insert("idle_timeout".into(), secs(self.idle_timeout));
        }
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
        if self.sampling != ServerConfig::default().sampling {
            m.insert("sampling".into(), self.sampling.as_str().into());
        }
        if let Some(model) = &self.sampling_model {
            m.insert("sampling_model".into(), model.clone().into());
        }
        if self.elicitation == Elicitation::Decline {
            m.insert("elicitation".into(), "decline".into());
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

    /// What keeps this configuration from starting, each said with how to fix it: missing
    /// variables and inputs, an `envFile` that cannot be read.
    pub fn problem(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        let mut missing: Vec<String> = Vec::new();
        for text in self.texts() {
            vars::expand(text, &mut |name: &str| {
                let found = vars::lookup(name, env, &self.scope);
                if let Err(what) = &found {
                    if !missing.contains(what) {
                        missing.push(what.clone());
                    }
                }
                found.ok()
            });
        }
        if !missing.is_empty() {
            return Some(format!("missing {}", missing.join(", ")));
        }
        self.env_file_values(env).err()
    }

    /// A copy with every `${...}` expanded and the `envFile` merged into `env`; the error says
    /// what is missing.
    pub fn expanded(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> std::result::Result<ServerConfig, String> {
        let mut out = self.clone();
        let mut missing: Option<String> = None;
        let mut x = |s: &str| -> String {
            vars::expand(s, &mut |name: &str| match vars::lookup(name, env, &self.scope) {
                Ok(v) => Some(v),
                Err(what) => {
                    missing.get_or_insert(what);
                    None
                }
            })
        };
        out.command = self.command.as_deref().map(&mut x);
        out.args = self.args.iter().map(|a| x(a)).collect();
        out.env = self.env.iter().map(|(k, v)| (k.clone(), x(v))).collect();
        out.cwd = self.cwd.as_deref().map(&mut x);
        out.url = self.url.as_deref().map(&mut x);
        out.oauth = self.oauth.as_ref().map(|o| o.expanded(&mut x));
        out.headers = self.headers.iter().map(|(k, v)| (k.clone(), x(v))).collect();
        if let Some(what) = missing {
            return Err(format!("missing {what}"));
        }
        for (k, v) in self.env_file_values(env)? {
            out.env.entry(k).or_insert(v);
        }
        out.env_file = None;
        Ok(out)
    }

    /// The variables of the `envFile`, if there is one.
    pub(super) fn env_file_values(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> std::result::Result<Vec<(String, String)>, String> {
        let Some(written) = &self.env_file else { return Ok(Vec::new()) };
        let mut missing = None;
        let path = vars::expand(written, &mut |name: &str| {
            vars::lookup(name, env, &self.scope).map_err(|w| missing.get_or_insert(w).clone()).ok()
        });
        if let Some(what) = missing {
            return Err(format!("envFile \"{written}\": missing {what}"));
        }
        let path = match &self.scope.base_dir {
            Some(dir) => dir.join(&path),
            None => std::path::PathBuf::from(&path),
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("envFile {}: cannot read: {e}", path.display()))?;
        vars::parse_dotenv(&text).map_err(|e| format!("envFile {}: {e}", path.display()))
    }

    pub(super) fn texts(&self) -> impl Iterator<Item = &str> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env_of;

    fn parse(json: &str) -> Result<(ServerConfig, Vec<String>)> {
        ServerConfig::from_json(&serde_json::from_str(json).unwrap(), "f.json", "servers.a")
    }

    #[test]
    fn client_fields_are_read() {
        let (c, w) = parse(r#"{"command": "x", "disabled": true, "envFile": ".env"}"#).unwrap();
        assert!(!c.enabled && w.is_empty());
        assert_eq!(c.env_file.as_deref(), Some(".env"));
        let (c, _) = parse(r#"{"type": "sse", "url": "https://h/sse"}"#).unwrap();
        assert_eq!(c.transport, Transport::Sse);
        let (c, _) = parse(r#"{"url": "https://h/mcp"}"#).unwrap();
        assert_eq!(c.transport, Transport::Url);
        let (c, _) = parse(r#"{"serverUrl": "https://h/sse"}"#).unwrap();
        assert_eq!((c.transport, c.url.as_deref()), (Transport::Url, Some("https://h/sse")));
    }

    #[test]
    fn unknown_fields_are_warnings_naming_their_path() {
        fn check(json: &str, expected: &[&str]) {
            let (_, w) = parse(json).unwrap();
            assert_eq!(w, expected, "{json}");
        }
        check(r#"{"command": "x", "auto_start": true}"#, &[]);
        check(
            r#"{"command": "x", "autostart": true, "restartOnFailure": false, "env_file": "e", "comand": "y", "colour": 1}"#,
            &[
                "f.json: servers.a.autostart: unknown field (did you mean \"auto_start\"?); ignored",
                "f.json: servers.a.restartOnFailure: unknown field (did you mean \"restart_on_failure\"?); ignored",
                "f.json: servers.a.env_file: unknown field (did you mean \"envFile\"?); ignored",
                "f.json: servers.a.comand: unknown field (did you mean \"command\"?); ignored",
                "f.json: servers.a.colour: unknown field; ignored",
            ],
        );
    }

    #[test]
    fn secrets_are_masked() {
        let (c, _) =
            parse(r#"{"command": "x", "env": {"API_KEY": "sekrit"}, "headers": {"X": "h"}}"#).unwrap();
        let shown = c.to_json(true).to_string();
        assert!(shown.contains("API_KEY") && shown.contains("***") && !shown.contains("sekrit"), "{shown}");
    }

    #[test]
    fn variables_expand_and_missing_ones_are_named() {
        let (mut c, _) = parse(r#"{"command": "${BIN}", "args": ["--key=${env:KEY}", "${input:pat}"], "env": {"X": "pre-${KEY}-post"}}"#).unwrap();
        let env = env_of(&[("BIN", "/usr/bin/srv"), ("KEY", "k1")]);
        let problem = c.problem(&env).unwrap();
        assert!(problem.starts_with("missing input \"pat\""), "{problem}");
        c.scope.inputs.insert("pat".into(), Some("dflt".into()));
        assert_eq!(c.problem(&env), None);
        let x = c.expanded(&env).unwrap();
        assert_eq!(x.command.as_deref(), Some("/usr/bin/srv"));
        assert_eq!(x.args, ["--key=k1", "dflt"]);
        assert_eq!(x.env["X"], "pre-k1-post");
        assert_eq!(c.expanded(&env_of(&[])).unwrap_err(), "missing environment variable BIN");
        assert_eq!(vars::expand("a ${unclosed", &mut |_| Some("z".into())), "a ${unclosed");
    }

    #[test]
    fn env_files_are_read_relative_to_their_file() {
        let dir = std::env::temp_dir().join(format!("agenthub-envfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(".env"), "A=from-file\nB=file-b\n").unwrap();
        let (mut c, _) = parse(r#"{"command": "x", "envFile": ".env", "env": {"B": "own"}}"#).unwrap();
        c.scope.base_dir = Some(dir.clone());
        let x = c.expanded(&env_of(&[])).unwrap();
        assert_eq!((x.env["A"].as_str(), x.env["B"].as_str()), ("from-file", "own"));
        c.env_file = Some("missing.env".into());
        assert!(c.problem(&env_of(&[])).unwrap().contains("missing.env: cannot read"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
