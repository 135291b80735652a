//! Hub-wide settings: the `SETTINGS` table `--help` prints, and `Settings` resolved from the
//! environment with flags winning, each value checked and its error naming the flag or variable
//! that supplied it. Also the loopback test the bind check and the HTTP guard share.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

mod ollama;

/// Non-whitespace characters a token needs when the hub listens beyond loopback.
const MIN_REMOTE_TOKEN: usize = 16;

pub use super::setting_specs::SETTINGS;

/// Validated settings of one hub process.
#[derive(Debug, Clone)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    /// Named explicitly (flag or environment): must exist.
    pub config_dir: Option<PathBuf>,
    pub servers_file: Option<PathBuf>,
    /// `${workspaceFolder}` (else the folder above a file's `.vscode/`).
    pub workspace: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub log_level: log::LevelFilter,
    pub workers: usize,
    pub token: Option<String>,
    /// Where the audit trail goes (`AGENTHUB_AUDIT`): `file`, `stdout` or `off`.
    pub audit: String,
    /// `AGENTHUB_TOKENS_FILE`: inbound tokens naming profiles.
    pub tokens_file: Option<PathBuf>,
    /// The hub's own Client ID Metadata Document (an https URL), for sign-ins.
    pub oauth_client_id_url: Option<String>,
    pub allowed_origins: Vec<String>,
    pub cache_size: usize,
    pub max_body_bytes: usize,
    /// Request bodies held at once (those over 64 KiB), all connections together.
    pub max_bodies_bytes: usize,
    /// None: derived from the open-file limit.
    pub max_connections: Option<usize>,
    pub max_calls: usize,
    pub max_calls_total: usize,
    pub max_pipeline_runs: usize,
    pub max_generations: usize,
    /// Where pipeline inputs marked `"under": "vault_root"` must point (`$HOME` unless set; the
    /// data dir when there is no home).
    pub vault_root: PathBuf,
    /// The budget of a request's head or body, and of one write.
    pub read_timeout: Duration,
    pub request_timeout: Duration,
    /// How long a new `/mcp` session's first list may wait for servers it has no catalog of.
    pub cold_list_wait: Duration,
    /// How long an elicitation waits for a person when its request's deadline is unknown.
    pub elicitation_wait: Duration,
    pub tool_search: super::ToolSearch,
    pub breaker_threshold: u32,
    pub breaker_recovery: Duration,
    pub ollama_url: String,
    pub ollama_timeout: Duration,
    /// The Ollama model whose embeddings rerank the tool search; None: the lexical order only.
    pub embed_model: Option<String>,
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

    /// As `seconds`, zero allowed.
    fn seconds_or_none(&self, env: &'static str, default: f64) -> Result<Duration> {
        let s: f64 = self.parse(env, default, "a number of seconds")?;
        Duration::try_from_secs_f64(s).map_err(|_| {
            let name = self.get(env).map(|(_, n)| n).unwrap_or_else(|| env.into());
            Error::Config(format!("{name}: expected 0 or more seconds, got {s}"))
        })
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
        let max_bodies_bytes =
            src.parse("AGENTHUB_MAX_BODIES_BYTES", max_body_bytes.max(64 << 20), "a number of bytes")?;
        if max_bodies_bytes < max_body_bytes {
            return Err(Error::Config(format!(
                "AGENTHUB_MAX_BODIES_BYTES: must be at least AGENTHUB_MAX_BODY_BYTES ({max_body_bytes}), got {max_bodies_bytes}"
            )));
        }
        let max_connections = match src.get("AGENTHUB_MAX_CONNECTIONS") {
            None => None,
            Some(_) => Some(src.parse("AGENTHUB_MAX_CONNECTIONS", 0usize, "a number of connections")?),
        };
        if max_connections == Some(0) {
            return Err(Error::Config("AGENTHUB_MAX_CONNECTIONS: must be at least 1".into()));
        }
        let max_calls = src.parse("AGENTHUB_MAX_CALLS", 256usize, "a number of calls")?;
        if max_calls == 0 {
            return Err(Error::Config("AGENTHUB_MAX_CALLS: must be at least 1".into()));
        }
        let max_calls_total = src.parse("AGENTHUB_MAX_CALLS_TOTAL", 1024usize, "a number of calls")?;
        if max_calls_total == 0 {
            return Err(Error::Config("AGENTHUB_MAX_CALLS_TOTAL: must be at least 1".into()));
        }
        let max_pipeline_runs = src.parse("AGENTHUB_MAX_PIPELINE_RUNS", 16usize, "a number of runs")?;
        if max_pipeline_runs == 0 {
            return Err(Error::Config("AGENTHUB_MAX_PIPELINE_RUNS: must be at least 1".into()));
        }
        let max_generations = src.parse("AGENTHUB_MAX_GENERATIONS", 4usize, "a number of generations")?;
        if max_generations == 0 {
            return Err(Error::Config("AGENTHUB_MAX_GENERATIONS: must be at least 1".into()));
        }
        let breaker_threshold = src.parse("AGENTHUB_BREAKER_THRESHOLD", 3u32, "a whole number")?;
        if breaker_threshold == 0 {
            return Err(Error::Config("AGENTHUB_BREAKER_THRESHOLD: must be at least 1".into()));
        }
        let token = match src.get("AGENTHUB_TOKEN") {
            None => None,
            // Bearer values are compared trimmed, so a token's own surrounding blanks could never match.
            Some((v, name)) if v.trim().is_empty() => {
                return Err(Error::Config(format!("{name}: must not be blank (unset it for no token)")));
            }
            Some((v, _)) => Some(v.trim().to_string()),
        };
        let allowed_origins = src
            .get("AGENTHUB_ALLOWED_ORIGINS")
            .map(|(v, _)| {
                v.split(',')
                    .map(|s| s.trim().trim_end_matches('/').to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let data_dir = src
            .get("AGENTHUB_DATA_DIR")
            .map(|(v, _)| PathBuf::from(v))
            .unwrap_or_else(|| user_dir(env, "XDG_DATA_HOME", ".local/share"));
        let vault_root = match src.get("AGENTHUB_VAULT_ROOT") {
            Some((v, name)) if !Path::new(v.trim()).is_absolute() => {
                return Err(Error::Config(format!("{name}: expected an absolute path, got '{v}'")));
            }
            Some((v, _)) => PathBuf::from(v.trim()),
            None => env("HOME").filter(|h| !h.is_empty()).map_or_else(|| data_dir.clone(), PathBuf::from),
        };
        let settings = Settings {
            port,
            config_dir: src.get("AGENTHUB_CONFIG_DIR").map(|(v, _)| PathBuf::from(v)),
            servers_file: src.get("AGENTHUB_SERVERS_FILE").map(|(v, _)| PathBuf::from(v)),
            workspace: src.get("AGENTHUB_WORKSPACE").map(|(v, _)| PathBuf::from(v)),
            data_dir,
            vault_root,
            log_level,
            workers,
            token,
            tokens_file: src.get("AGENTHUB_TOKENS_FILE").map(|(v, _)| PathBuf::from(v)),
            audit: match src.get("AGENTHUB_AUDIT") {
                None => "file".into(),
                Some((v, _)) if ["file", "stdout", "off"].contains(&v.trim()) => v.trim().to_string(),
                Some((v, name)) => {
                    return Err(Error::Config(format!("{name}: expected file, stdout or off, got '{v}'")));
                }
            },
            oauth_client_id_url: src
                .get("AGENTHUB_OAUTH_CLIENT_ID_URL")
                .map(|(v, _)| v.to_string())
                .filter(|v| v.starts_with("https://")),
            allowed_origins,
            cache_size: src.parse("AGENTHUB_CACHE_SIZE", 1000usize, "a number of entries")?,
            max_body_bytes,
            max_bodies_bytes,
            max_connections,
            max_calls,
            max_calls_total,
            max_pipeline_runs,
            max_generations,
            read_timeout: src.seconds("AGENTHUB_READ_TIMEOUT_S", 30.0)?,
            request_timeout: src.seconds("AGENTHUB_REQUEST_TIMEOUT_S", 60.0)?,
            cold_list_wait: src.seconds_or_none("AGENTHUB_COLD_LIST_WAIT_S", 15.0)?,
            elicitation_wait: src.seconds_or_none("AGENTHUB_ELICITATION_WAIT_S", 120.0)?,
            tool_search: src.parse("AGENTHUB_TOOL_SEARCH", Default::default(), "off, on, auto or auto:N")?,
            breaker_threshold,
            breaker_recovery: src.seconds("AGENTHUB_BREAKER_RECOVERY_S", 30.0)?,
            ollama_url: ollama::url(&src)?,
            embed_model: ollama::embed_model(&src),
            ollama_timeout: src.seconds("OLLAMA_TIMEOUT_S", 30.0)?,
            host,
        };
        if settings.host.is_empty() {
            return Err(Error::Config("AGENTHUB_HOST: must not be empty".into()));
        }
        if !is_loopback_host(&settings.host) {
            match &settings.token {
                None => {
                    return Err(Error::Config(format!(
                        "refusing to bind {} without AGENTHUB_TOKEN: set a token to listen beyond loopback",
                        settings.host
                    )));
                }
                // Beyond loopback the token is all that stands between the network and a command runner.
                Some(t) if t.chars().filter(|c| !c.is_whitespace()).count() < MIN_REMOTE_TOKEN => {
                    return Err(Error::Config(format!(
                        "AGENTHUB_TOKEN: to bind {} the token needs at least {MIN_REMOTE_TOKEN} non-whitespace characters",
                        settings.host
                    )));
                }
                Some(_) => {}
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env_of;

    fn settings(pairs: &'static [(&'static str, &'static str)]) -> Result<Settings> {
        Settings::resolve(&HashMap::new(), &env_of(pairs))
    }

    #[test]
    fn settings_defaults() {
        let s = settings(&[("HOME", "/home/u")]).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 9090));
        assert_eq!(s.max_body_bytes, 4 << 20);
        assert_eq!(s.max_bodies_bytes, 64 << 20);
        assert_eq!(s.cache_size, 1000);
        assert_eq!(s.request_timeout, Duration::from_secs(60));
        assert_eq!(s.cold_list_wait, Duration::from_secs(15));
        assert_eq!(s.breaker_threshold, 3);
        assert_eq!(s.ollama_url, "http://127.0.0.1:11434");
        assert_eq!(s.data_dir, PathBuf::from("/home/u/.local/share/agenthub"));
        assert!(s.workers >= 4);
        assert_eq!((s.max_pipeline_runs, s.max_generations), (16, 4));
        assert_eq!(s.vault_root, PathBuf::from("/home/u"));
        assert_eq!(s.embed_model, None, "no reranking unless asked");
    }

    #[test]
    fn the_embedding_model_is_trimmed_and_blank_is_none() {
        let s = settings(&[("AGENTHUB_EMBED_MODEL", " nomic-embed-text ")]).unwrap();
        assert_eq!(s.embed_model.as_deref(), Some("nomic-embed-text"));
        assert_eq!(settings(&[("AGENTHUB_EMBED_MODEL", "   ")]).unwrap().embed_model, None);
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
        check(&[("AGENTHUB_COLD_LIST_WAIT_S", "-1")], "AGENTHUB_COLD_LIST_WAIT_S");
        check(&[("AGENTHUB_MAX_PIPELINE_RUNS", "0")], "AGENTHUB_MAX_PIPELINE_RUNS");
        check(&[("AGENTHUB_MAX_GENERATIONS", "0")], "AGENTHUB_MAX_GENERATIONS");
        check(&[("AGENTHUB_VAULT_ROOT", "notes")], "AGENTHUB_VAULT_ROOT: expected an absolute path");
        check(&[("AGENTHUB_MAX_BODIES_BYTES", "1000")], "AGENTHUB_MAX_BODIES_BYTES");
        check(&[("OLLAMA_URL", "ftp://x")], "OLLAMA_URL");
        check(&[("AGENTHUB_HOST", "0.0.0.0")], "AGENTHUB_TOKEN");
        check(&[("AGENTHUB_TOKEN", "   ")], "AGENTHUB_TOKEN");
        check(&[("AGENTHUB_HOST", "0.0.0.0"), ("AGENTHUB_TOKEN", "short-token")], "AGENTHUB_TOKEN");
        check(&[("AGENTHUB_HOST", "0.0.0.0"), ("AGENTHUB_TOKEN", "a b c d e f g h i j k l m n o")], "16");
    }

    #[test]
    fn non_loopback_bind_with_token_is_allowed() {
        let s = settings(&[("AGENTHUB_HOST", "0.0.0.0"), ("AGENTHUB_TOKEN", " sixteen-chars-ok ")]).unwrap();
        assert_eq!(s.token.as_deref(), Some("sixteen-chars-ok"));
        let s = settings(&[("AGENTHUB_TOKEN", "t")]).unwrap();
        assert_eq!(s.token.as_deref(), Some("t"), "on loopback any non-blank token will do");
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
}
