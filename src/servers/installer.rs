//! Installing MCP servers from npm: package names validated before anything runs, npm run
//! without a shell, one install at a time, bounded by a timeout. Each installed server has an
//! npm prefix of its own, `<data dir>/npm/<server>`, so two servers pinned to two versions of
//! one package keep them; it is removed with the server (`Servers::remove`). An install goes
//! into a staging prefix first (`Staged`), which a failure removes, so nothing is left behind.
//!
//! npm is code the hub did not write, and so are a package's install scripts: npm runs with an
//! environment of its own (`npm_env`: what npm needs, never the hub's token or other secrets of
//! the hub's environment), with install scripts off unless the request asks for them, as the
//! leader of a process group recorded in `<data dir>/pids` like a server's. A hub that stops
//! kills the group (`stop`); a hub killed outright leaves the record, and the next one kills
//! what is left of the group and removes the staging prefixes left behind (`clean_stale`).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::process::Process;
use crate::error::{Error, Result};

pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
/// npm's output kept per stream, for its error message; the rest is read and dropped.
const OUTPUT_KEPT: usize = 64 * 1024;
/// Where a staging prefix's name begins (`.staging-<server>-<hub pid>-<n>`).
const STAGING: &str = ".staging-";

/// The variables of the hub's environment npm is given; none else. npm's own configuration
/// (`npm_config_*`, any case) passes too: the registry, the cache, its credentials.
const NPM_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "TMPDIR",
    "TMP",
    "TEMP",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// npm's environment, out of the hub's `vars`: the names of `NPM_ENV` and `npm_config_*`.
fn npm_env(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    vars.filter(|(k, _)| {
        NPM_ENV.contains(&k.as_str()) || k.get(..11).is_some_and(|p| p.eq_ignore_ascii_case("npm_config_"))
    })
    .collect()
}

/// Checks an npm package spec: `name`, `@scope/name`, optionally `@version` (a version, range
/// or tag). URLs, paths, git specs and anything a shell would read are refused.
pub fn validate_package(spec: &str) -> std::result::Result<(), String> {
    let bad = |why: &str| Err(format!("invalid npm package \"{spec}\": {why}"));
    if spec.is_empty() || spec.len() > 214 {
        return bad("must be 1 to 214 characters");
    }
    let name = super::process::package_name(spec);
    let version = &spec[name.len()..];
    let name_ok = |part: &str| {
        !part.is_empty()
            && !part.starts_with('.')
            && !part.starts_with('_')
            && !part.starts_with('-')
            && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._~".contains(&b))
    };
    let parts: Vec<&str> = name.split('/').collect();
    let shape_ok = match parts.as_slice() {
        [one] => !one.starts_with('@') && name_ok(one),
        [scope, one] => scope.len() > 1 && scope.starts_with('@') && name_ok(&scope[1..]) && name_ok(one),
        _ => false,
    };
    if !shape_ok {
        return bad("expected name, @scope/name, optionally followed by @version");
    }
    if let Some(v) = version.strip_prefix('@') {
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+^~".contains(&b)) {
            return bad("the version may hold only letters, digits and . _ - + ^ ~");
        }
    } else if !version.is_empty() {
        return bad("unexpected text after the name");
    }
    Ok(())
}

/// The server name an install gets by default: the package's last path segment.
pub fn default_name(spec: &str) -> String {
    let name = super::process::package_name(spec);
    name.rsplit('/').next().unwrap_or(name).to_string()
}

pub struct Installer {
    /// `<data dir>/npm`: one prefix per server under it.
    root: PathBuf,
    /// `<data dir>/pids`, where npm's group is recorded while it runs.
    pids: PathBuf,
    /// npm runs one at a time: concurrent installs share npm's cache and the network.
    queue: Mutex<()>,
    timeout: Duration,
    running: Mutex<Running>,
}

/// npm while it runs, where `stop` finds it.
#[derive(Default)]
struct Running {
    npm: Option<Process>,
    /// The hub is stopping: no install starts, and the one under way was killed.
    stopped: bool,
}

/// How npm's run ended.
enum Ended {
    Exited(std::process::ExitStatus),
    TimedOut,
    Stopped,
}

/// A finished install in its staging prefix, not yet the server's: dropped uncommitted, it is
/// removed.
pub struct Staged {
    dir: PathBuf,
    target: PathBuf,
    spec: String,
    committed: bool,
}

impl Staged {
    /// Moves the install to the server's prefix (replacing what a stale one left there) and
    /// returns the package's executable there.
    pub fn commit(mut self) -> Result<PathBuf> {
        if self.target.exists() {
            std::fs::remove_dir_all(&self.target)
                .map_err(|e| Error::io(format!("cannot replace {}", self.target.display()), e))?;
        }
        std::fs::rename(&self.dir, &self.target)
            .map_err(|e| Error::io(format!("cannot move the install to {}", self.target.display()), e))?;
        self.committed = true;
        super::process::installed_bin(&self.target, &self.spec).ok_or_else(|| {
            Error::Internal(format!("the executable of {} is gone from {}", self.spec, self.target.display()))
        })
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Installer {
    pub fn new(root: PathBuf, pids: PathBuf) -> Installer {
        Installer { root, pids, queue: Mutex::new(()), timeout: INSTALL_TIMEOUT, running: Mutex::default() }
    }

    /// Kills npm and everything it started, if an install is under way, and refuses installs
    /// from now on (the hub is stopping). The install's caller gets an error.
    pub fn stop(&self) {
        let npm = {
            let mut running = self.running.lock();
            running.stopped = true;
            running.npm.take()
        };
        if let Some(mut npm) = npm {
            log::info!("stopping the npm install under way");
            npm.kill();
        }
    }

    /// Removes the staging prefixes an earlier hub left (killed mid-install): those whose hub
    /// is no longer running. Run at start, once `reap_stale` has killed what was left of npm.
    pub fn clean_stale(&self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return };
        for path in entries.flatten().map(|e| e.path()) {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            let Some(rest) = name.strip_prefix(STAGING) else { continue };
            // `<server>-<hub pid>-<n>`: a hub still running may be installing there.
            let hub = rest.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok());
            if hub.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists()) {
                continue;
            }
            let removed = match path.is_dir() {
                true => std::fs::remove_dir_all(&path),
                false => std::fs::remove_file(&path),
            };
            match removed {
                Ok(()) => log::warn!("removed {}, left by an install that never ended", path.display()),
                Err(e) => log::warn!("cannot remove {}: {e}", path.display()),
            }
        }
    }

    /// Runs `npm install` for `spec` into a staging prefix for `server`. Any failure removes
    /// that prefix and is logged.
    pub fn install(&self, spec: &str, server: &str, ignore_scripts: bool) -> Result<Staged> {
        self.install_with(spec, server, ignore_scripts, &[], &mut String::new())
    }

    /// `install`, with the server's own configured `env` over npm's, and npm's output
    /// (stderr, then stdout, as kept) left in `output`.
    pub fn install_with(
        &self,
        spec: &str,
        server: &str,
        ignore_scripts: bool,
        env: &[(String, String)],
        output: &mut String,
    ) -> Result<Staged> {
        validate_package(spec).map_err(Error::BadRequest)?;
        let result = self.try_install(spec, server, ignore_scripts, env, output);
        if let Err(e) = &result {
            log::error!("install of {spec} for server {server} failed: {e}");
        }
        result
    }

    fn try_install(
        &self,
        spec: &str,
        server: &str,
        ignore_scripts: bool,
        env: &[(String, String)],
        output: &mut String,
    ) -> Result<Staged> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let _turn = self.queue.lock();
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let staged = Staged {
            dir: self.root.join(format!(".staging-{server}-{}-{n}", std::process::id())),
            target: self.root.join(server),
            spec: spec.to_string(),
            committed: false,
        };
        let prefix = &staged.dir;
        std::fs::create_dir_all(prefix)
            .map_err(|e| Error::io(format!("cannot create {}", prefix.display()), e))?;
        let mut cmd = Command::new("npm");
        cmd.arg("install").arg("--prefix").arg(prefix).args(["--no-audit", "--no-fund", "--loglevel=error"]);
        if ignore_scripts {
            cmd.arg("--ignore-scripts");
        }
        cmd.arg(spec)
            .env_clear()
            .envs(npm_env(std::env::vars()))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let scripts = if ignore_scripts { "" } else { " (install scripts allowed)" };
        log::info!(
            "installing {spec} with npm for server {server} into {}{scripts}",
            staged.target.display()
        );
        let started = Instant::now();
        if self.running.lock().stopped {
            return Err(Error::Unavailable("the hub is stopping".into()));
        }
        // Its own group (killed whole at the timeout or the hub's stop), and it dies with the hub.
        let mut npm = Process::start_command(cmd).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::Unavailable("npm is not installed (not found on PATH)".into())
            }
            _ => Error::io("cannot run npm", e),
        })?;
        if let Err(e) = npm.record_npm(&self.pids) {
            log::warn!("cannot record npm's process group in {}: {e}", self.pids.display());
        }
        // Drain both pipes at once, or a full one stalls npm.
        let (mut out, mut err) = npm.take_output();
        {
            let mut running = self.running.lock();
            if running.stopped {
                drop(running);
                npm.kill();
                return Err(Error::Unavailable("the hub is stopping".into()));
            }
            running.npm = Some(npm);
        }
        let readers = std::thread::Builder::new()
            .name("npm-stdout".into())
            .spawn(move || read_all(out.as_mut()))
            .and_then(|out_t| {
                let err_t = std::thread::Builder::new()
                    .name("npm-stderr".into())
                    .spawn(move || read_all(err.as_mut()))?;
                Ok((out_t, err_t))
            });
        let ended = match readers {
            Ok(_) => self.wait_npm(started),
            Err(_) => self.stop_npm(),
        };
        let (out_t, err_t) = readers.map_err(|e| Error::io("cannot spawn a thread", e))?;
        let (stdout, stderr) = (out_t.join().unwrap_or_default(), err_t.join().unwrap_or_default());
        *output = format!("{stderr}{stdout}");
        let status = match ended {
            Ended::Exited(status) => status,
            Ended::TimedOut => {
                return Err(Error::Timeout(format!(
                    "npm install {spec} did not finish within {}s",
                    self.timeout.as_secs()
                )));
            }
            Ended::Stopped => return Err(Error::Unavailable("the hub is stopping".into())),
        };
        if !status.success() {
            let msg = npm_error(&stderr, &stdout);
            if stderr.contains("E404")
                || stderr.contains("404 Not Found")
                || stderr.contains("is not in this registry")
            {
                return Err(Error::NotFound(format!("npm package {spec} not found: {msg}")));
            }
            return Err(Error::Upstream(format!("npm install {spec} failed: {msg}")));
        }
        if super::process::installed_bin(prefix, spec).is_none() {
            return Err(Error::BadRequest(format!(
                "package {spec} installed but provides no executable (\"bin\")"
            )));
        }
        // What the prefix holds, so a changed version in the entry is installed anew.
        let scripts = if ignore_scripts { "" } else { "scripts\n" };
        std::fs::write(prefix.join(super::packages::SPEC_FILE), format!("{spec}\n{scripts}"))
            .map_err(|e| Error::io(format!("cannot write {}", prefix.display()), e))?;
        log::info!("installed {spec} in {:.1}s", started.elapsed().as_secs_f64());
        Ok(staged)
    }
}

impl Installer {
    /// Waits for npm to end: its exit (then whatever it left running in its group is killed
    /// too), the timeout (the group killed), or the hub's stop (`stop` killed it).
    fn wait_npm(&self, started: Instant) -> Ended {
        loop {
            let mut running = self.running.lock();
            let Some(npm) = running.npm.as_mut() else { return Ended::Stopped };
            let ended = match npm.try_wait() {
                Some(status) => Ended::Exited(status),
                None if started.elapsed() >= self.timeout => Ended::TimedOut,
                None => {
                    drop(running);
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            let npm = running.npm.take();
            drop(running);
            if let Some(mut npm) = npm {
                // Nothing npm started outlives the install; its record goes with it.
                npm.kill();
            }
            return ended;
        }
    }

    /// Kills npm (no thread could read its output).
    fn stop_npm(&self) -> Ended {
        let npm = self.running.lock().npm.take();
        if let Some(mut npm) = npm {
            npm.kill();
        }
        Ended::Stopped
    }
}

/// What `r` gives, up to `OUTPUT_KEPT` bytes kept (the rest read and dropped, so the writer
/// never stalls).
fn read_all(r: Option<&mut impl Read>) -> String {
    let mut kept = Vec::new();
    if let Some(r) = r {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = OUTPUT_KEPT.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// npm's own error lines, short.
fn npm_error(stderr: &str, stdout: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("npm error") || l.starts_with("npm ERR!"))
        .filter(|l| !l.contains("A complete log of this run"))
        .take(6)
        .collect();
    let text = if lines.is_empty() {
        stderr.trim().lines().chain(stdout.trim().lines()).take(6).collect::<Vec<_>>().join(" ")
    } else {
        lines.join(" ")
    };
    text.chars().take(600).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_specs() {
        fn check(spec: &str, ok: bool) {
            assert_eq!(validate_package(spec).is_ok(), ok, "{spec}: {:?}", validate_package(spec));
        }
        check("left-pad", true);
        check("left-pad@1.3.0", true);
        check("@modelcontextprotocol/server-memory", true);
        check("@modelcontextprotocol/server-memory@2025.4.25", true);
        check("@scope/x@^1.2.0", true);
        check("pkg@latest", true);
        check("", false);
        check("Left-Pad", false);
        check("@scope", false);
        check("@/x", false);
        check("a/b/c", false);
        check("../evil", false);
        check(".hidden", false);
        check("pkg; rm -rf /", false);
        check("pkg@1.0 && x", false);
        check("$(whoami)", false);
        check("git+https://example.com/x.git", false);
        check("file:../x", false);
        check("https://example.com/x.tgz", false);
        check("pkg@", false);
        check("-g", false);
        check(&"a".repeat(215), false);
    }

    #[test]
    fn npm_gets_only_what_it_needs_of_the_environment() {
        let vars = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/u"),
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("npm_config_registry", "http://127.0.0.1:4873/"),
            ("NPM_CONFIG_CACHE", "/tmp/c"),
            ("AGENTHUB_TOKEN", "secret"),
            ("AGENTHUB_DATA_DIR", "/d"),
            ("GITHUB_TOKEN", "ghp_x"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("NODE_OPTIONS", "--require /tmp/evil.js"),
            ("npm_config", "x"),
        ];
        let got = npm_env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let names: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["PATH", "HOME", "HTTPS_PROXY", "npm_config_registry", "NPM_CONFIG_CACHE"]);
    }

    #[test]
    fn default_names() {
        assert_eq!(default_name("@scope/server-x@1.2"), "server-x");
        assert_eq!(default_name("@modelcontextprotocol/server-memory"), "server-memory");
        assert_eq!(default_name("plain"), "plain");
    }
}
