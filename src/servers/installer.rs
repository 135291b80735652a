//! Installing MCP servers from npm: package names validated before anything runs, npm run
//! without a shell, one install at a time, bounded by a timeout. Each installed server has an
//! npm prefix of its own, `<data dir>/npm/<server>`, so two servers pinned to two versions of
//! one package keep them; it is removed with the server (`Servers::remove`). An install goes
//! into a staging prefix first (`Staged`), which a failure removes, so nothing is left behind.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, Result};

pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);

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
    /// npm runs one at a time: concurrent installs share npm's cache and the network.
    queue: Mutex<()>,
    timeout: Duration,
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
    pub fn new(root: PathBuf) -> Installer {
        Installer { root, queue: Mutex::new(()), timeout: INSTALL_TIMEOUT }
    }

    /// Runs `npm install` for `spec` into a staging prefix for `server`. Any failure removes
    /// that prefix and is logged.
    pub fn install(&self, spec: &str, server: &str, ignore_scripts: bool) -> Result<Staged> {
        validate_package(spec).map_err(Error::BadRequest)?;
        let result = self.try_install(spec, server, ignore_scripts);
        if let Err(e) = &result {
            log::error!("install of {spec} for server {server} failed: {e}");
        }
        result
    }

    fn try_install(&self, spec: &str, server: &str, ignore_scripts: bool) -> Result<Staged> {
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
        cmd.arg(spec).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        log::info!("installing {spec} with npm for server {server} into {}", staged.target.display());
        let started = Instant::now();
        // Its own group (killed whole at the timeout), and it dies with the hub.
        let mut child = super::process::start(cmd).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::Unavailable("npm is not installed (not found on PATH)".into())
            }
            _ => Error::io("cannot run npm", e),
        })?;
        // Drain both pipes at once, or a full one stalls npm.
        let mut out = child.stdout.take();
        let mut err = child.stderr.take();
        let out_t = std::thread::Builder::new()
            .name("npm-stdout".into())
            .spawn(move || read_all(out.as_mut()))
            .map_err(|e| Error::io("cannot spawn a thread", e))?;
        let err_t = std::thread::Builder::new()
            .name("npm-stderr".into())
            .spawn(move || read_all(err.as_mut()))
            .map_err(|e| Error::io("cannot spawn a thread", e))?;
        let pgid = child.id() as i32;
        let status = loop {
            if let Some(s) = child.try_wait().map_err(|e| Error::io("waiting for npm", e))? {
                break Some(s);
            }
            if started.elapsed() >= self.timeout {
                super::process::kill_group(pgid);
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stdout = out_t.join().unwrap_or_default();
        let stderr = err_t.join().unwrap_or_default();
        let Some(status) = status else {
            return Err(Error::Timeout(format!(
                "npm install {spec} did not finish within {}s",
                self.timeout.as_secs()
            )));
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
        log::info!("installed {spec} in {:.1}s", started.elapsed().as_secs_f64());
        Ok(staged)
    }
}

fn read_all(r: Option<&mut impl Read>) -> String {
    let mut s = String::new();
    if let Some(r) = r {
        let _ = r.read_to_string(&mut s);
    }
    s
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
    fn default_names() {
        assert_eq!(default_name("@scope/server-x@1.2"), "server-x");
        assert_eq!(default_name("@modelcontextprotocol/server-memory"), "server-memory");
        assert_eq!(default_name("plain"), "plain");
    }
}
