//! `agenthub service install|uninstall|status`: the hub as the user's own service, started at
//! login and restarted when it fails: a systemd user unit on Linux, a launchd agent on macOS.
//! Both files are rendered on every system (`files`; the plist is tested on Linux); which one a
//! command writes is chosen at run time. The file names the binary by its absolute path and
//! carries only settings that are not secret: the token stays in an environment file of the
//! user's own. `systemctl` and `launchctl` run directly, never through a shell; when they cannot
//! (no user bus, not installed), the command to run is printed instead. Also here: the binary's
//! own path (`own_binary`, what `connect` writes for stdio entries) and the `/health` probe that
//! `healthcheck` and `status` share.

mod files;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use crate::error::{Error, Result};
use files::{MARK, address, read_back};

pub use files::{Spec, launchd_plist, systemd_unit};

const UNIT: &str = "agenthub.service";
const LABEL: &str = "dev.agenthub";
/// Never written into a service file.
const SECRET: &str = "AGENTHUB_TOKEN";
const USAGE: &str =
    "usage: agenthub service install [--force] [-- SERVE-FLAGS...] | uninstall [--force] | status";

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The running binary's absolute path, symlinks resolved.
pub fn own_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| Error::io("finding the running binary", e))?;
    exe.canonicalize().map_err(|e| Error::io(format!("resolving {}", exe.display()), e))
}

/// `path` lies in a cargo build folder (`<crate>/target/...`) rather than where it is installed.
pub fn in_build_dir(path: &Path) -> bool {
    path.ancestors().any(|a| {
        a.file_name().is_some_and(|n| n == "target")
            && a.parent().is_some_and(|p| p.join("Cargo.toml").is_file())
    })
}

/// `agenthub service ARGS`: the exit status.
pub fn command(args: &[String], env: Env) -> ExitCode {
    let (ours, serve) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    if ours.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let force = ours.iter().skip(1).any(|a| a == "--force");
    let done = match ours.first().map(String::as_str) {
        _ if ours.iter().skip(1).any(|a| a != "--force") => None,
        Some("install") => Some(install(serve, force, env)),
        Some("uninstall") if serve.is_empty() => Some(uninstall(force, env)),
        Some("status") if serve.is_empty() => Some(status(env)),
        _ => None,
    };
    match done {
        Some(Ok(code)) => ExitCode::from(code),
        Some(Err(e)) => {
            eprintln!("agenthub service: {e}");
            ExitCode::FAILURE
        }
        None => {
            eprintln!("agenthub service: unexpected arguments {ours:?}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn launchd() -> bool {
    cfg!(target_os = "macos")
}

fn home(env: Env) -> Result<PathBuf> {
    env("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| Error::Config("HOME is not set".into()))
}

fn config_home(env: Env) -> Result<PathBuf> {
    match env("XDG_CONFIG_HOME").filter(|d| Path::new(d).is_absolute()) {
        Some(d) => Ok(PathBuf::from(d)),
        None => Ok(home(env)?.join(".config")),
    }
}

/// The service's file on this system.
fn service_file(env: Env) -> Result<PathBuf> {
    if launchd() {
        return Ok(home(env)?.join("Library/LaunchAgents").join(format!("{LABEL}.plist")));
    }
    Ok(config_home(env)?.join("systemd/user").join(UNIT))
}

/// Where the service reads secrets from (`KEY=value` lines): the systemd unit's `EnvironmentFile`.
fn env_file(env: Env) -> Result<PathBuf> {
    Ok(config_home(env)?.join("agenthub/env"))
}

/// Writes `text` to `path` whole or not at all: a temp file beside it, fsync, rename.
fn save(path: &Path, text: &str) -> Result<()> {
    let dir = path.parent().ok_or_else(|| Error::Config(format!("{}: no folder", path.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let tmp = dir.join(format!(".{}.tmp-{}", UNIT, std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Runs a service manager's command (never through a shell): `Err` with why it did not succeed.
fn run(program: &str, args: &[&str]) -> std::result::Result<String, String> {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
            Err(if err.is_empty() { format!("{said} ({})", out.status) } else { err })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!("{program} is not installed")),
        Err(e) => Err(format!("{program}: {e}")),
    }
}

fn systemctl(args: &[&str]) -> std::result::Result<String, String> {
    run("systemctl", &[&["--user"], args].concat())
}

fn domain() -> String {
    format!("gui/{}", crate::sys::uid())
}

/// The lines that differ between two versions of a file, `-` the old, `+` the new.
fn diff(old: &str, new: &str) -> String {
    let gone = old.lines().filter(|l| !new.lines().any(|n| n == *l)).map(|l| format!("  - {l}\n"));
    let came = new.lines().filter(|l| !old.lines().any(|o| o == *l)).map(|l| format!("  + {l}\n"));
    gone.chain(came).collect()
}

fn install(flags: &[String], force: bool, env: Env) -> Result<u8> {
    let program = own_binary()?;
    let spec = Spec::serve(program.clone(), flags, env)?;
    let path = service_file(env)?;
    let secrets = env_file(env)?;
    let text = if launchd() {
        launchd_plist(&spec, &home(env)?.join("Library/Logs/agenthub.log"))
    } else {
        let home = home(env)?;
        let shown = match secrets.strip_prefix(&home) {
            Ok(rel) => format!("%h/{}", rel.display().to_string().replace('%', "%%")),
            Err(_) => secrets.display().to_string().replace('%', "%%"),
        };
        systemd_unit(&spec, &shown)
    };
    let old = std::fs::read_to_string(&path).ok();
    let replaced = old.as_ref().is_some_and(|o| *o != text);
    if let Some(old) = old.as_ref().filter(|o| **o != text && !force) {
        eprintln!(
            "{} exists and differs from what install would write:\n{}",
            path.display(),
            diff(old, &text)
        );
        eprintln!("nothing written; run `agenthub service install --force ...` to replace it");
        return Ok(1);
    }
    if old.as_deref() == Some(text.as_str()) {
        println!("{}: unchanged", path.display());
    } else {
        save(&path, &text)?;
        println!("wrote {}{}", path.display(), if replaced { " (replacing the one before)" } else { "" });
    }
    println!(
        "runs: {}",
        std::iter::once(program.display().to_string()).chain(spec.args).collect::<Vec<_>>().join(" ")
    );
    for (k, v) in &spec.env {
        println!("with {k}={v} (from this environment)");
    }
    if in_build_dir(&program) {
        println!(
            "note: {} is in a build folder; `make install` puts agenthub on PATH, then install again",
            program.display()
        );
    }
    explain_secrets(&secrets, env);
    if launchd() {
        let domain = domain();
        let _ = run("launchctl", &["bootout", &format!("{domain}/{LABEL}")]);
        let path = path.display().to_string();
        match run("launchctl", &["bootstrap", &domain, &path]) {
            Ok(_) => println!("launchctl bootstrap {domain}: loaded; it runs now and at every login"),
            Err(e) => {
                println!("launchctl bootstrap failed ({e}); run:\n  launchctl bootstrap {domain} {path}")
            }
        }
        return Ok(0);
    }
    let steps: Vec<&[&str]> = if replaced {
        vec![&["daemon-reload"], &["try-restart", "agenthub"], &["enable", "--now", "agenthub"]]
    } else {
        vec![&["daemon-reload"], &["enable", "--now", "agenthub"]]
    };
    for step in steps {
        if let Err(e) = systemctl(step) {
            println!(
                "systemctl --user {} did not succeed ({e}); to start it now and at every login, run:",
                step.join(" ")
            );
            println!("  systemctl --user daemon-reload && systemctl --user enable --now agenthub");
            return Ok(0);
        }
    }
    println!("enabled and started: it runs now and at every login (`agenthub service status`)");
    Ok(0)
}

/// What becomes of the token: never in the service file; the environment file when there is one.
fn explain_secrets(file: &Path, env: Env) {
    use std::os::unix::fs::PermissionsExt;
    let token = env(SECRET).is_some_and(|t| !t.trim().is_empty());
    match std::fs::metadata(file) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => println!(
            "warning: {} is readable by others (mode {:o}): chmod 600 {}",
            file.display(),
            m.permissions().mode() & 0o777,
            file.display()
        ),
        Ok(_) if launchd() => println!(
            "{} is not read by launchd: the agent runs without the token there (launchctl setenv {SECRET} ...)",
            file.display()
        ),
        Ok(_) => println!("secrets: read from {} (mode 0600)", file.display()),
        Err(_) if token && launchd() => {
            println!(
                "{SECRET} is not written into the agent: it runs without a token (launchctl setenv {SECRET} ...)"
            )
        }
        Err(_) if token => println!(
            "{SECRET} is not written into the unit: put the line {SECRET}=... in {} (chmod 600), then \
             systemctl --user restart agenthub",
            file.display()
        ),
        Err(_) => {}
    }
}

fn uninstall(force: bool, env: Env) -> Result<u8> {
    let path = service_file(env)?;
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("not installed ({} does not exist)", path.display());
        return Ok(0);
    };
    if !text.contains(MARK) && !force {
        eprintln!(
            "{} was not written by agenthub service install; --force removes it anyway",
            path.display()
        );
        return Ok(1);
    }
    let stopped = if launchd() {
        run("launchctl", &["bootout", &format!("{}/{LABEL}", domain())]).map_err(|e| (e, "launchctl bootout"))
    } else {
        systemctl(&["disable", "--now", "agenthub"]).map_err(|e| (e, "systemctl --user stop agenthub"))
    };
    std::fs::remove_file(&path).map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
    println!("removed {}", path.display());
    match stopped {
        Ok(_) if !launchd() => {
            let _ = systemctl(&["daemon-reload"]);
            println!("disabled and stopped");
        }
        Ok(_) => println!("unloaded"),
        Err((e, manual)) => {
            if !launchd() {
                // What `enable` made, which `disable` could not remove.
                let _ = std::fs::remove_file(path.with_file_name("default.target.wants").join(UNIT));
            }
            println!("could not stop it ({e}); if it still runs: {manual}");
        }
    }
    Ok(0)
}

fn status(env: Env) -> Result<u8> {
    let path = service_file(env)?;
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("not installed ({} does not exist); agenthub service install", path.display());
        return Ok(1);
    };
    println!("installed: {}", path.display());
    let Some(spec) = read_back(&text) else {
        println!("its command line cannot be read");
        return Ok(1);
    };
    let program = &spec.program;
    println!("runs: {} {}", program.display(), spec.args.join(" "));
    match program.is_file() {
        true => println!("binary: {} exists", program.display()),
        false => println!(
            "binary: {} is missing (make install, then agenthub service install --force)",
            program.display()
        ),
    }
    let state = if launchd() {
        match run("launchctl", &["print", &format!("{}/{LABEL}", domain())]) {
            Ok(out) if out.contains("state = running") => "running".to_string(),
            Ok(_) => "loaded, not running".to_string(),
            Err(e) => format!("not loaded ({e})"),
        }
    } else {
        match systemctl(&["is-active", "agenthub"]) {
            Ok(s) => s,
            Err(e) if e.starts_with("systemctl") || e.contains("bus") => format!("unknown ({e})"),
            Err(e) => e.split_whitespace().next().unwrap_or("inactive").to_string(),
        }
    };
    println!("service: {state}");
    let url = address(&spec.args, &spec.env);
    match crate::control::probe_health(&url, env(SECRET).as_deref()) {
        Ok((code, s)) => println!("hub: {url}/health answered {code} ({s})"),
        Err(e) => println!("hub: no answer at {url} ({e})"),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_folder_is_told_from_an_installed_binary() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        assert!(in_build_dir(&root.join("target/debug/agenthub")));
        assert!(!in_build_dir(Path::new("/usr/local/bin/agenthub")));
    }

    #[test]
    fn lines_that_differ_are_marked() {
        assert_eq!(diff("a\nb\n", "a\nc\n"), "  - b\n  + c\n");
    }
}
