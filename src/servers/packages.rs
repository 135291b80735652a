//! npm servers without npm at run time. An entry that runs an npm package — `"package"`, or
//! `npx -y <package> args...` — has the package installed once into the server's own prefix
//! (`<data dir>/npm/<server>`, through the installer's queue) and is launched as
//! `node <bin> args...`: no `npm exec`, no `sh -c`, no install on a cold start and none on a
//! restart. The spec installed is recorded in the prefix (`SPEC_FILE`), so a changed version in
//! the entry installs the new one.
//!
//! Installs run in the background when the configuration loads (`install_packages`: at start
//! and on each reload) and, for a server asked to start first, on its launch (`package_ready`),
//! which waits for one under way. A failed install is kept with npm's last lines and the likely
//! fix; a restart by the supervisor gets that failure back without running npm again until
//! `Installs`' backoff passes (1 min doubling to 1 h); a fresh start (a person's, an auto start)
//! or a changed configuration tries again at once.
//!
//! Left as configured (run through npx): `npx` with other options (`-p`/`--package`, `-c`), and
//! a package token that is not a plain registry name (paths, URLs, git). The embedded examples
//! are installed in the background like any entry: they are what a first run offers, and a cold
//! `/mcp` should find them ready.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::installer::{INSTALL_TIMEOUT, Installer, validate_package};
use super::phase::Ticket;
use super::{Server, Servers, process, short};
use crate::config::{ServerConfig, Transport};

/// Where a prefix records the spec installed in it.
pub const SPEC_FILE: &str = ".agenthub-spec";
/// A failed install is not run again before this, doubling with each failure up to `RETRY_MAX`.
const RETRY_FIRST: Duration = Duration::from_secs(60);
const RETRY_MAX: Duration = Duration::from_secs(3600);
/// npm's last output lines kept in the server's logs after a failed install.
const OUTPUT_LINES: usize = 20;
/// How often a launch waiting for another's install looks whether it was stopped.
const WAIT_SLICE: Duration = Duration::from_millis(250);

/// An entry that runs an npm package: the spec to install and what its bin is given.
#[derive(Debug, Clone, PartialEq)]
pub struct Npm {
    pub spec: String,
    pub args: Vec<String>,
    pub ignore_scripts: bool,
}

impl Npm {
    /// The npm package `cfg` runs, if it runs one the hub installs.
    pub fn of(cfg: &ServerConfig) -> Option<Npm> {
        if cfg.transport != Transport::Stdio {
            return None;
        }
        let (spec, args) = match cfg.command.as_deref().filter(|c| !c.trim().is_empty()) {
            Some(command) => npx_package(command, &cfg.args)?,
            None => (cfg.package.clone()?, cfg.args.clone()),
        };
        validate_package(&spec).ok()?;
        Some(Npm { spec, args, ignore_scripts: cfg.ignore_scripts })
    }

    /// The package's bin, when `prefix` holds this spec's install (with its install scripts run,
    /// if the entry wants them). A prefix without a record (installed before records were kept)
    /// counts when the version installed is the one named, or none is.
    pub fn installed(&self, prefix: &Path) -> Option<PathBuf> {
        let bin = process::installed_bin(prefix, &self.spec)?;
        let current = match std::fs::read_to_string(prefix.join(SPEC_FILE)) {
            Ok(recorded) => {
                let mut lines = recorded.lines().map(str::trim);
                lines.next() == Some(self.spec.as_str())
                    && (self.ignore_scripts || lines.any(|l| l == "scripts"))
            }
            Err(_) => {
                let name = process::package_name(&self.spec);
                let wanted = self.spec[name.len()..].strip_prefix('@');
                let manifest = prefix.join("node_modules").join(name).join("package.json");
                let version = std::fs::read_to_string(manifest)
                    .ok()
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                    .and_then(|m| m["version"].as_str().map(str::to_string));
                wanted.is_none_or(|w| version.as_deref() == Some(w))
            }
        };
        current.then_some(bin)
    }
}

/// The package and the bin's arguments of `npx [-y|--yes|-q|--quiet]... <package> args...`
/// with `-y` or `--yes` given; None for any other npx option before the package (`-p`, `-c`,
/// ...: npx then does more than run one package's bin), for no `-y` (npx would run a bin of the
/// project in the working directory first), and for a package that is not a registry name.
pub fn npx_package(command: &str, args: &[String]) -> Option<(String, Vec<String>)> {
    if command.rsplit('/').next() != Some("npx") {
        return None;
    }
    let mut yes = false;
    for (i, arg) in args.iter().enumerate() {
        let at = match arg.as_str() {
            "-y" | "--yes" => {
                yes = true;
                continue;
            }
            "-q" | "--quiet" => continue,
            "--" => i + 1,
            a if a.starts_with('-') => return None,
            _ => i,
        };
        let spec = args.get(at)?;
        return (yes && validate_package(spec).is_ok()).then(|| (spec.clone(), args[at + 1..].to_vec()));
    }
    None
}

/// `node <bin> args...` for an npm entry whose package is installed in `prefix`.
pub fn installed_line(cfg: &ServerConfig, prefix: &Path) -> Option<(String, Vec<String>)> {
    let npm = Npm::of(cfg)?;
    let bin = npm.installed(prefix)?;
    let mut args = vec![bin.display().to_string()];
    args.extend(npm.args);
    Some(("node".to_string(), args))
}

/// How much longer than its handshake a start may wait: an npm entry's install may come first.
pub(super) fn install_allowance(cfg: &ServerConfig) -> Duration {
    if Npm::of(cfg).is_some() { INSTALL_TIMEOUT } else { Duration::ZERO }
}

/// The likely fix for a failed install, read from npm's output.
pub fn hint(output: &str) -> Option<&'static str> {
    let has = |words: &[&str]| words.iter().any(|w| output.contains(w));
    if output.to_ascii_lowercase().contains("puppeteer")
        && has(&["Failed to set up", "PUPPETEER_SKIP_DOWNLOAD", "command failed", "install.mjs"])
    {
        return Some(
            "puppeteer could not download its browser: set PUPPETEER_SKIP_DOWNLOAD=1 in the server's env",
        );
    }
    if has(&["ENOTFOUND", "ETIMEDOUT", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ENETUNREACH"]) {
        return Some(
            "no network to the registry: check the connection, or npm's proxy and registry settings",
        );
    }
    if has(&["ENOTCACHED"]) {
        return Some("npm is offline and the package is not in its cache");
    }
    if has(&["E404", "ETARGET", "notarget", "is not in this registry"]) {
        return Some("no such package/version: check the package's name and version in the entry");
    }
    if has(&["npm is not installed"]) {
        return Some("install Node.js with npm, on the hub's PATH");
    }
    None
}

/// How a want of an install is met.
pub(super) enum Begin {
    /// Run it (the turn ends the job whatever happens).
    Run(Turn),
    /// One is under way for this server: wait for it.
    Wait,
    /// The last one failed, and it is not time to try again.
    Failed(String),
}

/// The installs under way and the failures remembered, per server, as a value (no lock
/// inside; `now` passed in).
#[derive(Default)]
pub(super) struct Installs {
    jobs: HashMap<String, Job>,
}

struct Job {
    spec: String,
    running: bool,
    failed: Option<Failed>,
}

struct Failed {
    why: String,
    retry_at: Instant,
    failures: u32,
}

/// What `Installs::begin` decided.
#[derive(Debug, PartialEq)]
pub(super) enum Decision {
    Run,
    Wait,
    Failed(String),
}

impl Installs {
    /// `server` wants `spec` installed: run it, wait for the one under way (of any spec: one
    /// install per prefix at a time), or the failure within its backoff (unless `retry_now`).
    pub fn begin(&mut self, server: &str, spec: &str, now: Instant, retry_now: bool) -> Decision {
        let job = self.jobs.entry(server.to_string()).or_insert_with(|| Job {
            spec: spec.to_string(),
            running: false,
            failed: None,
        });
        if job.running {
            return Decision::Wait;
        }
        if job.spec != spec {
            *job = Job { spec: spec.to_string(), running: false, failed: None };
        }
        match &job.failed {
            Some(f) if !retry_now && now < f.retry_at => Decision::Failed(f.why.clone()),
            _ => {
                job.running = true;
                Decision::Run
            }
        }
    }

    /// The install of `spec` for `server` ended.
    pub fn ended(&mut self, server: &str, spec: &str, outcome: Result<(), String>, now: Instant) {
        let Some(job) = self.jobs.get_mut(server).filter(|j| j.spec == spec) else { return };
        match outcome {
            Ok(()) => drop(self.jobs.remove(server)),
            Err(why) => {
                let failures = job.failed.as_ref().map_or(0, |f| f.failures) + 1;
                let delay = RETRY_FIRST.saturating_mul(1 << (failures - 1).min(16)).min(RETRY_MAX);
                job.running = false;
                job.failed = Some(Failed { why, retry_at: now + delay, failures });
            }
        }
    }

    /// The server's configuration changed or it is gone: a failure is forgotten (an install
    /// under way goes on).
    pub fn forget(&mut self, server: &str) {
        if self.jobs.get(server).is_some_and(|j| !j.running) {
            self.jobs.remove(server);
        }
    }
}

/// The table's installs: `Installs` behind a lock, a condvar for their ends, the installer.
pub(super) struct Packages {
    installer: Arc<Installer>,
    installs: Mutex<Installs>,
    ended: Condvar,
}

/// The right to run one install: ended once, by `end` or, dropped unused, as abandoned.
pub(super) struct Turn {
    packages: Arc<Packages>,
    server: String,
    spec: String,
    done: bool,
}

impl Turn {
    fn end(mut self, outcome: Result<(), String>) {
        self.done = true;
        self.packages.end(&self.server, &self.spec, outcome);
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if !self.done {
            self.packages.end(
                &self.server,
                &self.spec,
                Err("the install never ran (the hub is stopping)".into()),
            );
        }
    }
}

impl Packages {
    pub fn new(installer: Arc<Installer>) -> Arc<Packages> {
        Arc::new(Packages { installer, installs: Mutex::default(), ended: Condvar::new() })
    }

    fn begin(self: &Arc<Self>, server: &str, spec: &str, retry_now: bool) -> Begin {
        match self.installs.lock().begin(server, spec, Instant::now(), retry_now) {
            Decision::Run => Begin::Run(Turn {
                packages: self.clone(),
                server: server.to_string(),
                spec: spec.to_string(),
                done: false,
            }),
            Decision::Wait => Begin::Wait,
            Decision::Failed(why) => Begin::Failed(why),
        }
    }

    fn end(&self, server: &str, spec: &str, outcome: Result<(), String>) {
        self.installs.lock().ended(server, spec, outcome, Instant::now());
        self.ended.notify_all();
    }

    /// Waits for an install to end, or `until`.
    fn wait(&self, until: Instant) {
        let mut installs = self.installs.lock();
        self.ended.wait_until(&mut installs, until);
    }

    pub fn forget(&self, server: &str) {
        self.installs.lock().forget(server);
    }
}

impl Servers {
    /// Installs, in the background, the npm package of every enabled server that needs one
    /// and has no install under way or failed within its backoff (at start, after a reload).
    pub fn install_packages(self: &Arc<Self>) {
        let list = self.list.lock().clone();
        for srv in list {
            let config = {
                let st = srv.state.lock();
                if !st.config.enabled || st.problem.is_some() || st.removed {
                    continue;
                }
                st.config.clone()
            };
            let Some(npm) = Npm::of(&config) else { continue };
            if npm.installed(&self.ctx.npm_prefix.join(&srv.name)).is_some() {
                continue;
            }
            let Begin::Run(turn) = self.packages.begin(&srv.name, &npm.spec, false) else { continue };
            let me = self.clone();
            // Refused (the hub stops), the closure is dropped and the turn with it.
            self.spawn_thread(format!("npm-{}", short(&srv.name)), move || {
                let _ = me.install_package(&srv, &config, &npm, turn);
            });
        }
    }

    /// Before a launch: an npm entry's package is installed in the server's prefix, by this
    /// launch or by the install under way (waited for, within the install timeout and while the
    /// launch is current). `Err` as a launch's: the reason, and true (restarts are cheap: they
    /// get a failed install back without running npm within its backoff).
    pub(super) fn package_ready(&self, srv: &Server, ticket: &Ticket) -> Result<(), (String, bool)> {
        let Some(npm) = Npm::of(&ticket.config) else { return Ok(()) };
        let prefix = self.ctx.npm_prefix.join(&srv.name);
        // A fresh streak (a person's start, an auto start) tries a failed install again at once.
        let mut retry_now = srv.state.lock().restart_count == 0;
        let deadline = Instant::now() + INSTALL_TIMEOUT;
        let stopped = || !srv.state.lock().is_current(ticket.generation);
        loop {
            if npm.installed(&prefix).is_some() {
                return Ok(());
            }
            match self.packages.begin(&srv.name, &npm.spec, retry_now) {
                Begin::Run(turn) => {
                    self.install_package(srv, &ticket.config, &npm, turn).map_err(|why| (why, true))?;
                    if stopped() {
                        return Err(("stopped while it started".into(), true));
                    }
                    return Ok(());
                }
                Begin::Failed(why) => return Err((why, true)),
                Begin::Wait => {
                    // What the install under way ends with is this launch's answer.
                    retry_now = false;
                    self.packages.wait(Instant::now() + WAIT_SLICE);
                    if stopped() {
                        return Err(("stopped while it started".into(), true));
                    }
                    if Instant::now() >= deadline {
                        let secs = INSTALL_TIMEOUT.as_secs();
                        return Err((
                            format!("the install of {} did not end within {secs}s", npm.spec),
                            true,
                        ));
                    }
                }
            }
        }
    }

    /// Runs one install for `srv` (its turn taken): npm with the server's own env over npm's
    /// scrubbed one, the result in the activity feed; a failure's reason names npm's error and
    /// the likely fix, and npm's last lines go to the server's logs, both redacted.
    fn install_package(&self, srv: &Server, cfg: &ServerConfig, npm: &Npm, turn: Turn) -> Result<(), String> {
        let (name, spec) = (&srv.name, &npm.spec);
        let env = |k: &str| std::env::var(k).ok();
        let secrets = cfg.secrets(&env);
        let own_env: Vec<(String, String)> =
            cfg.expanded(&env).map(|c| c.env.into_iter().collect()).unwrap_or_default();
        let activity = &self.ctx.activity;
        activity.record("install", Some(name), format!("installing {spec} with npm"));
        let started = Instant::now();
        let mut output = String::new();
        let installed =
            self.packages.installer.install_with(spec, name, npm.ignore_scripts, &own_env, &mut output);
        let removed = || srv.state.lock().removed;
        // A server removed meanwhile gets no prefix (its staging is dropped, so removed).
        let committed = installed.and_then(|staged| match removed() {
            true => Err(crate::error::Error::Conflict(format!("server {name} was removed"))),
            false => staged.commit(),
        });
        let outcome = match committed {
            Ok(bin) => {
                let secs = started.elapsed().as_secs_f64();
                activity.record("install", Some(name), format!("installed {spec} in {secs:.1}s"));
                log::info!("server {name}: {spec} installed; it runs as node {}", bin.display());
                Ok(())
            }
            Err(e) => {
                let mut ring = srv.stderr.lock();
                let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
                for line in &lines[lines.len().saturating_sub(OUTPUT_LINES)..] {
                    ring.push(crate::text::for_log(&secrets.redact(&format!("[npm] {line}")), 1024));
                }
                drop(ring);
                let fix = hint(&format!("{e}\n{output}")).map(|h| format!(" ({h})")).unwrap_or_default();
                let why = secrets.redact(&format!("install of {spec} failed: {e}{fix}")).into_owned();
                activity.record("install", Some(name), why.clone());
                Err(why)
            }
        };
        turn.end(outcome.clone());
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npx_entries() {
        fn check(command: &str, args: &[&str], expected: Option<(&str, &[&str])>) {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            let got = npx_package(command, &args);
            let want = expected.map(|(p, a)| (p.to_string(), a.iter().map(|s| s.to_string()).collect()));
            assert_eq!(got, want, "{command} {args:?}");
        }
        let mem = "@modelcontextprotocol/server-memory@2026.8.31";
        check("npx", &["-y", mem], Some((mem, &[])));
        check("npx", &["--yes", "pkg", "--root", "/x"], Some(("pkg", &["--root", "/x"])));
        check("/usr/local/bin/npx", &["-y", "pkg@1.2"], Some(("pkg@1.2", &[])));
        check("npx", &["-q", "-y", "pkg", "-y"], Some(("pkg", &["-y"])));
        check("npx", &["-y", "--quiet", "pkg"], Some(("pkg", &[])));
        check("npx", &["-y", "--", "pkg", "a"], Some(("pkg", &["a"])));
        check("npx", &["pkg", "-y"], None);
        check("npx", &["-y"], None);
        check("npx", &[], None);
        check("npx", &["-y", "-p", "pkg", "bin"], None);
        check("npx", &["-y", "--package=pkg", "bin"], None);
        check("npx", &["-y", "-c", "pkg --x"], None);
        check("npx", &["-y", "--registry=http://r", "pkg"], None);
        check("npx", &["-y", "./local/dir"], None);
        check("npx", &["-y", "github:user/repo"], None);
        check("npx", &["-y", "${PKG}"], None);
        check("node", &["-y", "pkg"], None);
        check("npx-other", &["-y", "pkg"], None);
    }

    #[test]
    fn npm_entries_of_a_configuration() {
        let npx = ServerConfig {
            command: Some("npx".into()),
            args: vec!["-y".into(), "p@1".into(), "a".into()],
            ..Default::default()
        };
        assert_eq!(
            Npm::of(&npx),
            Some(Npm { spec: "p@1".into(), args: vec!["a".into()], ignore_scripts: true })
        );
        let package = ServerConfig {
            package: Some("@s/p".into()),
            args: vec!["b".into()],
            ignore_scripts: false,
            ..Default::default()
        };
        assert_eq!(
            Npm::of(&package),
            Some(Npm { spec: "@s/p".into(), args: vec!["b".into()], ignore_scripts: false })
        );
        let remote = ServerConfig { transport: Transport::Http, ..npx.clone() };
        assert_eq!(Npm::of(&remote), None);
        let own =
            ServerConfig { command: Some("node".into()), package: Some("p".into()), ..Default::default() };
        assert_eq!(Npm::of(&own), None, "a command wins over package");
        assert_eq!(install_allowance(&npx), INSTALL_TIMEOUT);
        assert_eq!(install_allowance(&own), Duration::ZERO);
    }

    #[test]
    fn the_spec_recorded_decides_what_is_installed() {
        let prefix = std::env::temp_dir().join(format!("agenthub-unit-spec-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&prefix);
        let dir = prefix.join("node_modules/@s/p");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("package.json"), r#"{"name": "@s/p", "version": "1.0.0", "bin": "cli.js"}"#)
            .unwrap();
        std::fs::write(dir.join("cli.js"), "").unwrap();
        let check_scripts = |spec: &str, ignore_scripts: bool, installed: bool| {
            let npm = Npm { spec: spec.into(), args: Vec::new(), ignore_scripts };
            assert_eq!(npm.installed(&prefix), installed.then(|| dir.join("cli.js")), "{spec}");
        };
        let check = |spec: &str, installed: bool| check_scripts(spec, true, installed);
        // No record (an install of an earlier hub): by the version installed.
        check("@s/p", true);
        check("@s/p@1.0.0", true);
        check("@s/p@1.1.0", false);
        check("@s/p@^1.0.0", false);
        check("@s/other", false);
        std::fs::write(prefix.join(SPEC_FILE), "@s/p@^1.0.0\n").unwrap();
        check("@s/p@^1.0.0", true);
        check("@s/p@1.0.0", false);
        check("@s/p", false);
        check_scripts("@s/p@^1.0.0", false, false);
        std::fs::write(prefix.join(SPEC_FILE), "@s/p@^1.0.0\nscripts\n").unwrap();
        check_scripts("@s/p@^1.0.0", false, true);
        check("@s/p@^1.0.0", true);
        let cfg = ServerConfig {
            command: Some("npx".into()),
            args: vec!["-y".into(), "@s/p@^1.0.0".into(), "x".into()],
            ..Default::default()
        };
        let line = installed_line(&cfg, &prefix).unwrap();
        assert_eq!(line, ("node".to_string(), vec![dir.join("cli.js").display().to_string(), "x".into()]));
        let _ = std::fs::remove_dir_all(&prefix);
    }

    #[test]
    fn a_failed_install_waits_out_its_backoff() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut installs = Installs::default();
        let failed = |why: &str| Decision::Failed(why.to_string());
        assert_eq!(installs.begin("a", "p@1", at(0), false), Decision::Run);
        assert_eq!(installs.begin("a", "p@1", at(0), true), Decision::Wait, "one at a time per server");
        assert_eq!(installs.begin("a", "p@2", at(0), false), Decision::Wait, "of any spec");
        installs.ended("a", "p@1", Err("E404".into()), at(10));
        // A restart within the minute gets the failure; a fresh start runs npm again.
        assert_eq!(installs.begin("a", "p@1", at(69), false), failed("E404"));
        assert_eq!(installs.begin("a", "p@1", at(70), false), Decision::Run);
        installs.ended("a", "p@1", Err("again".into()), at(70));
        assert_eq!(installs.begin("a", "p@1", at(70 + 119), false), failed("again"), "doubled");
        assert_eq!(installs.begin("a", "p@1", at(75), true), Decision::Run, "a person's start");
        let mut now = 75;
        for delay in [240, 480, 960, 1920, 3600, 3600] {
            installs.ended("a", "p@1", Err("x".into()), at(now));
            assert_eq!(installs.begin("a", "p@1", at(now + delay - 1), false), failed("x"));
            now += delay;
            assert_eq!(installs.begin("a", "p@1", at(now), false), Decision::Run, "after {delay}s");
        }
        installs.ended("a", "p@1", Err("x".into()), at(now));
        assert_eq!(installs.begin("a", "p@2", at(now), false), Decision::Run, "a new version runs at once");
        installs.ended("a", "p@1", Ok(()), at(now));
        assert_eq!(installs.begin("a", "p@2", at(now), false), Decision::Wait, "a stale end changes nothing");
        installs.ended("a", "p@2", Err("y".into()), at(now));
        installs.forget("a");
        assert_eq!(installs.begin("a", "p@2", at(now), false), Decision::Run, "a changed configuration");
        installs.ended("a", "p@2", Ok(()), at(now));
        assert_eq!(installs.begin("a", "p@2", at(now), false), Decision::Run, "a success is not kept");
    }

    #[test]
    fn the_likely_fix_is_read_from_npms_output() {
        fn check(output: &str, expected: Option<&str>) {
            assert_eq!(hint(output).map(|h| h.split(':').next().unwrap_or(h)), expected, "{output}");
        }
        check(
            "npm error code ETARGET\nnpm error notarget No matching version found for x@9.",
            Some("no such package/version"),
        );
        check(
            "npm error code E404\nnpm error 404 Not Found - GET https://registry.npmjs.org/nope",
            Some("no such package/version"),
        );
        check(
            "npm error code ENOTFOUND\nnpm error network request to https://registry.npmjs.org/x failed",
            Some("no network to the registry"),
        );
        check("npm error code ETIMEDOUT", Some("no network to the registry"));
        check("npm error code ENOTCACHED", Some("npm is offline and the package is not in its cache"));
        check(
            "npm error path /d/node_modules/puppeteer\nnpm error command failed\nnpm error command sh -c node install.mjs\n\
             npm error Error: ERROR: Failed to set up chrome v131! Set \"PUPPETEER_SKIP_DOWNLOAD\" env variable to skip download.\n\
             npm error getaddrinfo ENOTFOUND storage.googleapis.com",
            Some("puppeteer could not download its browser"),
        );
        check(
            "npm is not installed (not found on PATH)",
            Some("install Node.js with npm, on the hub's PATH"),
        );
        check("npm error code EACCES", None);
    }
}
