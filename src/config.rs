//! Configuration in two stages, raw then validated: `Settings` from the environment overridden by
//! flags, and the two JSON files (servers, enhancement rules). Servers files are read in the hub's
//! own shape and, unchanged, in Claude Desktop's / Cursor's (`mcpServers`) and VS Code's (`servers`
//! with `type`, `inputs`). Errors name the file, the JSON path and, for syntax errors, line and
//! column. Nothing here spawns, listens or reads the clock.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The example servers file shipped in `configs/`, used when no file is found.
pub const DEFAULT_SERVERS_JSON: &str = include_str!("../configs/mcp-servers.json");
/// The example rules file shipped in `configs/`, used when no file is found.
pub const DEFAULT_RULES_JSON: &str = include_str!("../configs/enhancement-rules.json");

pub const SERVERS_FILE_NAME: &str = "mcp-servers.json";
pub const RULES_FILE_NAME: &str = "enhancement-rules.json";

/// One setting: its environment variable, the flag overriding it, its default and help line.
pub struct SettingSpec {
    pub env: &'static str,
    pub flag: Option<&'static str>,
    pub default: &'static str,
    pub help: &'static str,
}

/// Every setting, in the order `--help` lists them.
pub const SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        env: "AGENTHUB_HOST",
        flag: Some("--host"),
        default: "127.0.0.1",
        help: "address to bind (a non-loopback address requires AGENTHUB_TOKEN)",
    },
    SettingSpec {
        env: "AGENTHUB_PORT",
        flag: Some("--port"),
        default: "9090",
        help: "port to listen on (0 = any free port)",
    },
    SettingSpec {
        env: "AGENTHUB_CONFIG_DIR",
        flag: Some("--config-dir"),
        default: "$XDG_CONFIG_HOME/agenthub, else embedded defaults",
        help: "directory holding mcp-servers.json and enhancement-rules.json",
    },
    SettingSpec {
        env: "AGENTHUB_SERVERS_FILE",
        flag: Some("--servers-file"),
        default: "(none)",
        help: "extra servers file to import read-only (Claude Desktop, Cursor or VS Code format)",
    },
    SettingSpec {
        env: "AGENTHUB_DATA_DIR",
        flag: Some("--data-dir"),
        default: "$XDG_DATA_HOME/agenthub",
        help: "directory for installed packages and state",
    },
    SettingSpec {
        env: "AGENTHUB_LOG_LEVEL",
        flag: Some("--log-level"),
        default: "info",
        help: "off, error, warn, info, debug or trace",
    },
    SettingSpec {
        env: "AGENTHUB_WORKERS",
        flag: Some("--workers"),
        default: "max(4, 2 x cores)",
        help: "HTTP worker threads",
    },
    SettingSpec {
        env: "AGENTHUB_TOKEN",
        flag: None,
        default: "(none)",
        help: "bearer token required on every request when set",
    },
    SettingSpec {
        env: "AGENTHUB_ALLOWED_ORIGINS",
        flag: None,
        default: "(none)",
        help: "comma-separated extra allowed origins or hosts",
    },
    SettingSpec {
        env: "AGENTHUB_CACHE_SIZE",
        flag: None,
        default: "1000",
        help: "prompt cache entries (0 disables the cache)",
    },
    SettingSpec {
        env: "AGENTHUB_MAX_BODY_BYTES",
        flag: None,
        default: "4194304",
        help: "largest accepted request body",
    },
    SettingSpec {
        env: "AGENTHUB_REQUEST_TIMEOUT_S",
        flag: None,
        default: "60",
        help: "default deadline of an MCP request, seconds",
    },
    SettingSpec {
        env: "AGENTHUB_BREAKER_THRESHOLD",
        flag: None,
        default: "3",
        help: "consecutive failures that open a circuit breaker",
    },
    SettingSpec {
        env: "AGENTHUB_BREAKER_RECOVERY_S",
        flag: None,
        default: "30",
        help: "seconds an open breaker waits before one trial call",
    },
    SettingSpec {
        env: "OLLAMA_URL",
        flag: None,
        default: "(from OLLAMA_HOST)",
        help: "Ollama base URL; wins over OLLAMA_HOST and OLLAMA_PORT",
    },
    SettingSpec {
        env: "OLLAMA_HOST",
        flag: None,
        default: "127.0.0.1:11434",
        help: "Ollama as host, host:port or URL",
    },
    SettingSpec {
        env: "OLLAMA_PORT",
        flag: None,
        default: "11434",
        help: "Ollama port when OLLAMA_HOST names none",
    },
    SettingSpec {
        env: "OLLAMA_TIMEOUT_S",
        flag: None,
        default: "30",
        help: "deadline of one Ollama generation, seconds",
    },
];

/// Validated settings of one hub process.
#[derive(Debug, Clone)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    /// Named explicitly (flag or environment): must exist.
    pub config_dir: Option<PathBuf>,
    pub servers_file: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub log_level: log::LevelFilter,
    pub workers: usize,
    pub token: Option<String>,
    pub allowed_origins: Vec<String>,
    pub cache_size: usize,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub breaker_threshold: u32,
    pub breaker_recovery: Duration,
    pub ollama_url: String,
    pub ollama_timeout: Duration,
}

/// Where a raw setting came from, so an error can name the flag or the variable.
struct Source<'a> {
    flags: &'a HashMap<&'static str, String>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Source<'_> {
    /// The value and the name to blame for it: the flag when given, else the variable.
    fn get(&self, env: &'static str) -> Option<(String, String)> {
        if let Some(v) = self.flags.get(env) {
            let flag = SETTINGS.iter().find(|s| s.env == env).and_then(|s| s.flag).unwrap_or(env);
            return Some((v.clone(), flag.to_string()));
        }
        (self.env)(env).filter(|v| !v.is_empty()).map(|v| (v, env.to_string()))
    }

    fn parse<T: std::str::FromStr>(&self, env: &'static str, default: T, what: &str) -> Result<T> {
        match self.get(env) {
            None => Ok(default),
            Some((v, name)) => {
                v.trim().parse().map_err(|_| Error::Config(format!("{name}: expected {what}, got '{v}'")))
            }
        }
    }

    fn seconds(&self, env: &'static str, default: f64) -> Result<Duration> {
        let s: f64 = self.parse(env, default, "a number of seconds")?;
        if !(s > 0.0 && s.is_finite()) {
            let name = self.get(env).map(|(_, n)| n).unwrap_or_else(|| env.into());
            return Err(Error::Config(format!("{name}: expected a positive number of seconds, got {s}")));
        }
        Ok(Duration::from_secs_f64(s))
    }
}

impl Settings {
    /// Resolves settings from flags (keyed by the variable they override) over the environment.
    pub fn resolve(
        flags: &HashMap<&'static str, String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings> {
        let src = Source { flags, env };
        let host =
            src.get("AGENTHUB_HOST").map(|(v, _)| v.trim().to_string()).unwrap_or_else(|| "127.0.0.1".into());
        let port = src.parse("AGENTHUB_PORT", 9090u16, "a port number (0-65535)")?;
        let log_level = match src.get("AGENTHUB_LOG_LEVEL") {
            None => log::LevelFilter::Info,
            Some((v, name)) => v.trim().parse().map_err(|_| {
                Error::Config(format!("{name}: expected off, error, warn, info, debug or trace, got '{v}'"))
            })?,
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = src.parse("AGENTHUB_WORKERS", (2 * cores).max(4), "a number of threads")?;
        if !(1..=1024).contains(&workers) {
            return Err(Error::Config(format!(
                "AGENTHUB_WORKERS: expected 1 to 1024 threads, got {workers}"
            )));
        }
        let max_body_bytes = src.parse("AGENTHUB_MAX_BODY_BYTES", 4usize << 20, "a number of bytes")?;
        if max_body_bytes == 0 {
            return Err(Error::Config("AGENTHUB_MAX_BODY_BYTES: must be at least 1".into()));
        }
        let breaker_threshold = src.parse("AGENTHUB_BREAKER_THRESHOLD", 3u32, "a whole number")?;
        if breaker_threshold == 0 {
            return Err(Error::Config("AGENTHUB_BREAKER_THRESHOLD: must be at least 1".into()));
        }
        let token = src.get("AGENTHUB_TOKEN").map(|(v, _)| v);
        let allowed_origins = src
            .get("AGENTHUB_ALLOWED_ORIGINS")
            .map(|(v, _)| {
                v.split(',')
                    .map(|s| s.trim().trim_end_matches('/').to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let settings = Settings {
            port,
            config_dir: src.get("AGENTHUB_CONFIG_DIR").map(|(v, _)| PathBuf::from(v)),
            servers_file: src.get("AGENTHUB_SERVERS_FILE").map(|(v, _)| PathBuf::from(v)),
            data_dir: src
                .get("AGENTHUB_DATA_DIR")
                .map(|(v, _)| PathBuf::from(v))
                .unwrap_or_else(|| user_dir(env, "XDG_DATA_HOME", ".local/share")),
            log_level,
            workers,
            token,
            allowed_origins,
            cache_size: src.parse("AGENTHUB_CACHE_SIZE", 1000usize, "a number of entries")?,
            max_body_bytes,
            request_timeout: src.seconds("AGENTHUB_REQUEST_TIMEOUT_S", 60.0)?,
            breaker_threshold,
            breaker_recovery: src.seconds("AGENTHUB_BREAKER_RECOVERY_S", 30.0)?,
            ollama_url: ollama_url(&src)?,
            ollama_timeout: src.seconds("OLLAMA_TIMEOUT_S", 30.0)?,
            host,
        };
        if settings.host.is_empty() {
            return Err(Error::Config("AGENTHUB_HOST: must not be empty".into()));
        }
        if !is_loopback_host(&settings.host) && settings.token.is_none() {
            return Err(Error::Config(format!(
                "refusing to bind {} without AGENTHUB_TOKEN: set a token to listen beyond loopback",
                settings.host
            )));
        }
        Ok(settings)
    }

    /// The directory saves go to: the named one, else the user's config dir.
    pub fn own_config_dir(&self, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
        self.config_dir.clone().unwrap_or_else(|| user_dir(env, "XDG_CONFIG_HOME", ".config"))
    }
}

/// `$XDG_x/agenthub`, else `$HOME/<fallback>/agenthub`, else `./.agenthub`.
fn user_dir(env: &dyn Fn(&str) -> Option<String>, xdg: &str, fallback: &str) -> PathBuf {
    if let Some(dir) = env(xdg).filter(|v| !v.is_empty()) {
        return Path::new(&dir).join("agenthub");
    }
    match env("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Path::new(&home).join(fallback).join("agenthub"),
        None => PathBuf::from(".agenthub"),
    }
}

/// Whether a bind address or Host name stays on this machine.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Ollama's own address forms: `OLLAMA_URL`, else `OLLAMA_HOST` as `host`, `host:port` or a URL,
/// with `OLLAMA_PORT` filling a missing port. `0.0.0.0` (a bind address) means this machine.
fn ollama_url(src: &Source) -> Result<String> {
    if let Some((url, name)) = src.get("OLLAMA_URL") {
        let url = url.trim().trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::Config(format!("{name}: expected an http:// URL, got '{url}'")));
        }
        return Ok(url);
    }
    let port: u16 = src.parse("OLLAMA_PORT", 11434, "a port number")?;
    let Some((raw, name)) = src.get("OLLAMA_HOST") else {
        return Ok(format!("http://127.0.0.1:{port}"));
    };
    let raw = raw.trim().trim_end_matches('/');
    let (scheme, rest) = match raw.split_once("://") {
        Some((s @ ("http" | "https"), rest)) => (s, rest),
        Some((s, _)) => return Err(Error::Config(format!("{name}: unsupported scheme '{s}' in '{raw}'"))),
        None => ("http", raw),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let has_port = match authority.rfind(':') {
        Some(i) => !authority[i..].contains(']'),
        None => false,
    };
    let authority = if authority.is_empty() {
        "127.0.0.1".to_string()
    } else if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{port}")
    };
    let authority = authority.replacen("0.0.0.0", "127.0.0.1", 1).replacen("[::]", "[::1]", 1);
    if let Some(p) = authority.rsplit(':').next() {
        if p.parse::<u16>().is_err() {
            return Err(Error::Config(format!("{name}: bad port in '{raw}'")));
        }
    }
    Ok(format!("{scheme}://{authority}{path}"))
}

// ---------------------------------------------------------------------------------------------
// Servers

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
                ))
            }
            Some(other) => {
                return Err(f.err("transport", &format!("expected \"stdio\" or \"http\", got \"{other}\"")))
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
                    return Err(f.err("url", &format!("expected an http:// or https:// URL, got \"{u}\"")))
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
        ] {
            if dur.is_zero() {
                return Err(f.err(key, "must be more than 0 seconds"));
            }
        }
        Ok(cfg)
    }

    /// The JSON saved in the hub's file (unexpanded), or shown by the API with `masked`.
    pub fn to_json(&self, masked: bool) -> Value {
        let mut m = Map::new();
        let mask = |map: &BTreeMap<String, String>| -> Value {
            map.iter()
                .map(|(k, v)| {
                    let v = if masked { "***".to_string() } else { v.clone() };
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
            m.insert("args".into(), self.args.clone().into());
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
            m.insert("url".into(), u.clone().into());
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
    if s.fract() == 0.0 {
        Value::from(d.as_secs())
    } else {
        Value::from(s)
    }
}

/// `env:NAME` and `NAME` read the environment; `input:ID` cannot be answered.
fn lookup_var(name: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if name.starts_with("input:") {
        return None;
    }
    env(name.strip_prefix("env:").unwrap_or(name))
}

/// Replaces `${NAME}` using `lookup`; an unknown name expands to "" (the caller records it).
/// Text without a closing brace is kept as it is.
fn expand(text: &str, lookup: &mut dyn FnMut(&str) -> Option<String>) -> String {
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
            return Err(Error::Config(format!(
                "{file}: has both \"servers\" and \"mcpServers\"; keep one"
            )))
        }
        (None, None) => {
            return Err(Error::Config(format!(
                "{file}: expected an object with \"servers\" (AgentHub, VS Code) or \"mcpServers\" (Claude Desktop, Cursor)"
            )))
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

// ---------------------------------------------------------------------------------------------
// Enhancement rules

/// How prompts from one client are rewritten.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub model: String,
    pub system_prompt: String,
    pub enabled: bool,
    pub options: Map<String, Value>,
}

/// The default rule and per-client rules; a client rule inherits what it leaves out.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub default: Rule,
    /// Keys are lower case: client names match case-insensitively.
    pub clients: BTreeMap<String, Rule>,
}

impl Rules {
    /// The rule for a client name and the name it matched under (`default` when none did).
    pub fn for_client(&self, client: Option<&str>) -> (&str, &Rule) {
        if let Some(c) = client {
            if let Some((name, rule)) = self.clients.get_key_value(&c.trim().to_ascii_lowercase()) {
                return (name, rule);
            }
        }
        ("default", &self.default)
    }
}

pub fn parse_rules(text: &str, file: &str) -> Result<Rules> {
    let root = parse_json(text, file)?;
    let top = Fields::new(&root, file, "$")?;
    let Some(default) = top.get("default") else {
        return Err(Error::Config(format!(
            "{file}: default: missing (the rule used for every client without one)"
        )));
    };
    let base =
        Rule { model: String::new(), system_prompt: String::new(), enabled: true, options: Map::new() };
    let default = parse_rule(default, &base, file, "default")?;
    if default.model.trim().is_empty() {
        return Err(Error::Config(format!("{file}: default.model: missing")));
    }
    let mut clients = BTreeMap::new();
    match top.get("clients") {
        None => {}
        Some(Value::Object(m)) => {
            for (name, v) in m {
                let rule = parse_rule(v, &default, file, &format!("clients.{name}"))?;
                clients.insert(name.to_ascii_lowercase(), rule);
            }
        }
        Some(_) => return Err(top.err("clients", "expected an object of rules by client name")),
    }
    Ok(Rules { default, clients })
}

fn parse_rule(value: &Value, base: &Rule, file: &str, at: &str) -> Result<Rule> {
    let f = Fields::new(value, file, at)?;
    let options = match f.get("options") {
        None => base.options.clone(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(f.err("options", "expected an object (temperature, ...)")),
    };
    Ok(Rule {
        model: f.str("model")?.unwrap_or_else(|| base.model.clone()),
        system_prompt: f.str("system_prompt")?.unwrap_or_else(|| base.system_prompt.clone()),
        enabled: f.bool("enabled")?.unwrap_or(base.enabled),
        options,
    })
}

// ---------------------------------------------------------------------------------------------
// Loading

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

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    fn settings(pairs: &'static [(&'static str, &'static str)]) -> Result<Settings> {
        Settings::resolve(&HashMap::new(), &env_of(pairs))
    }

    #[test]
    fn settings_defaults() {
        let s = settings(&[("HOME", "/home/u")]).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 9090));
        assert_eq!(s.max_body_bytes, 4 << 20);
        assert_eq!(s.cache_size, 1000);
        assert_eq!(s.request_timeout, Duration::from_secs(60));
        assert_eq!(s.breaker_threshold, 3);
        assert_eq!(s.ollama_url, "http://127.0.0.1:11434");
        assert_eq!(s.data_dir, PathBuf::from("/home/u/.local/share/agenthub"));
        assert!(s.workers >= 4);
    }

    #[test]
    fn flags_override_environment() {
        let flags = HashMap::from([("AGENTHUB_PORT", "7000".to_string())]);
        let s = Settings::resolve(&flags, &env_of(&[("AGENTHUB_PORT", "8000")])).unwrap();
        assert_eq!(s.port, 7000);
        let flags = HashMap::from([("AGENTHUB_PORT", "x".to_string())]);
        let e = Settings::resolve(&flags, &env_of(&[])).unwrap_err().to_string();
        assert!(e.starts_with("--port:"), "{e}");
    }

    #[test]
    fn bad_settings_name_the_variable() {
        fn check(pairs: &'static [(&'static str, &'static str)], needle: &str) {
            let e = settings(pairs).unwrap_err().to_string();
            assert!(e.contains(needle), "{e:?} lacks {needle:?}");
        }
        check(&[("AGENTHUB_PORT", "99999")], "AGENTHUB_PORT");
        check(&[("AGENTHUB_LOG_LEVEL", "loud")], "AGENTHUB_LOG_LEVEL");
        check(&[("AGENTHUB_WORKERS", "0")], "AGENTHUB_WORKERS");
        check(&[("AGENTHUB_REQUEST_TIMEOUT_S", "-1")], "AGENTHUB_REQUEST_TIMEOUT_S");
        check(&[("AGENTHUB_BREAKER_THRESHOLD", "0")], "AGENTHUB_BREAKER_THRESHOLD");
        check(&[("OLLAMA_URL", "ftp://x")], "OLLAMA_URL");
        check(&[("AGENTHUB_HOST", "0.0.0.0")], "AGENTHUB_TOKEN");
    }

    #[test]
    fn non_loopback_bind_with_token_is_allowed() {
        let s = settings(&[("AGENTHUB_HOST", "0.0.0.0"), ("AGENTHUB_TOKEN", "t")]).unwrap();
        assert_eq!(s.token.as_deref(), Some("t"));
    }

    #[test]
    fn ollama_address_forms() {
        fn check(pairs: &'static [(&'static str, &'static str)], expected: &str) {
            assert_eq!(settings(pairs).unwrap().ollama_url, expected, "{pairs:?}");
        }
        check(&[], "http://127.0.0.1:11434");
        check(&[("OLLAMA_HOST", "gpu-box")], "http://gpu-box:11434");
        check(&[("OLLAMA_HOST", "gpu-box:8000")], "http://gpu-box:8000");
        check(&[("OLLAMA_HOST", "0.0.0.0")], "http://127.0.0.1:11434");
        check(&[("OLLAMA_HOST", "https://o.example/")], "https://o.example:11434");
        check(&[("OLLAMA_HOST", "localhost"), ("OLLAMA_PORT", "1234")], "http://localhost:1234");
        check(&[("OLLAMA_HOST", "[::1]:5000")], "http://[::1]:5000");
        check(&[("OLLAMA_URL", "http://x:1/"), ("OLLAMA_HOST", "y")], "http://x:1");
    }

    #[test]
    fn loopback_hosts() {
        for (h, expected) in [
            ("127.0.0.1", true),
            ("localhost", true),
            ("::1", true),
            ("[::1]", true),
            ("127.1.2.3", true),
            ("0.0.0.0", false),
            ("example.com", false),
            ("10.0.0.1", false),
        ] {
            assert_eq!(is_loopback_host(h), expected, "{h}");
        }
    }

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
    fn rules_inherit_from_default_and_match_case_insensitively() {
        let r = parse_rules(r#"{"default": {"model": "m1", "system_prompt": "s", "options": {"temperature": 0.2}}, "clients": {"VSCode": {"system_prompt": "code"}, "off": {"enabled": false}}}"#, "r.json").unwrap();
        let (name, rule) = r.for_client(Some("vscode"));
        assert_eq!((name, rule.model.as_str(), rule.system_prompt.as_str()), ("vscode", "m1", "code"));
        assert_eq!(rule.options["temperature"], 0.2);
        assert!(!r.for_client(Some("OFF")).1.enabled);
        assert_eq!(r.for_client(Some("unknown")).0, "default");
        assert_eq!(r.for_client(None).0, "default");
        let e = parse_rules(r#"{"clients": {}}"#, "r.json").unwrap_err().to_string();
        assert!(e.contains("r.json: default"), "{e}");
        let e = parse_rules(r#"{"default": {"model": "m", "enabled": "yes"}}"#, "r.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("default.enabled"), "{e}");
    }

    #[test]
    fn embedded_defaults_are_valid() {
        assert!(!parse_servers(DEFAULT_SERVERS_JSON, "embedded").unwrap().is_empty());
        let rules = parse_rules(DEFAULT_RULES_JSON, "embedded").unwrap();
        for client in ["vscode", "claude-desktop", "cursor", "raycast"] {
            assert_eq!(rules.for_client(Some(client)).0, client);
        }
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
