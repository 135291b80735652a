//! `agenthub service install|uninstall|status`: the hub as the user's own service, started at
//! login and restarted when it fails: a systemd user unit on Linux, a launchd agent on macOS.
//! Both files are rendered here on every system (the plist is tested on Linux); which one a
//! command writes is chosen at run time. The file names the binary by its absolute path and
//! carries only settings that are not secret: the token stays in an environment file of the
//! user's own. `systemctl` and `launchctl` run directly, never through a shell; when they cannot
//! (no user bus, not installed), the command to run is printed instead. Also here: the binary's
//! own path (`own_binary`, what `connect` writes for stdio entries) and the `/health` probe that
//! `healthcheck` and `status` share.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use crate::config::SETTINGS;
use crate::error::{Error, Result};

const UNIT: &str = "agenthub.service";
const LABEL: &str = "dev.agenthub";
/// In every file written here: what tells ours from a file someone else wrote.
const MARK: &str = "Written by `agenthub service install`";
/// Settings whose values are paths: made absolute, as the service starts in another folder.
const PATHS: &[&str] = &[
    "AGENTHUB_CONFIG_DIR",
    "AGENTHUB_SERVERS_FILE",
    "AGENTHUB_WORKSPACE",
    "AGENTHUB_DATA_DIR",
    "AGENTHUB_VAULT_ROOT",
];
/// Never written into a service file.
const SECRET: &str = "AGENTHUB_TOKEN";
const USAGE: &str =
    "usage: agenthub service install [--force] [-- SERVE-FLAGS...] | uninstall [--force] | status";

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// What the service runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The binary, by its absolute path.
    pub program: PathBuf,
    /// `serve` and its flags.
    pub args: Vec<String>,
    /// Settings that are not secret (`Environment=`, `EnvironmentVariables`).
    pub env: Vec<(String, String)>,
}

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

/// GET `url/health`: its status code and `status` field, or why nothing answered.
pub fn probe_health(url: &str, token: Option<&str>) -> std::result::Result<(u16, String), String> {
    let agent = crate::http_agent(Duration::from_secs(2), Some(Duration::from_secs(5)));
    let mut req = agent.get(format!("{}/health", url.trim_end_matches('/')));
    if let Some(t) = token.map(str::trim).filter(|t| !t.is_empty()) {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let mut resp = req.call().map_err(|e| e.to_string())?;
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    Ok((resp.status().as_u16(), body["status"].as_str().unwrap_or("?").to_string()))
}

/// `agenthub service ARGS`: the exit status.
pub fn command(args: &[String], env: Env) -> ExitCode {
    let (ours, serve) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    let force = ours.iter().skip(1).any(|a| a == "--force");
    let unknown = ours.iter().skip(1).find(|a| *a != "--force");
    let done = match (ours.first().map(String::as_str), unknown) {
        (_, Some(a)) => Err(Error::Config(format!("unexpected argument '{a}'\n{USAGE}"))),
        (Some("install"), None) => install(serve, force, env),
        (Some("uninstall"), None) if serve.is_empty() => uninstall(force, env),
        (Some("status"), None) if serve.is_empty() => status(env),
        _ => Err(Error::Config(USAGE.to_string())),
    };
    match done {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("agenthub service: {e}");
            ExitCode::FAILURE
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

impl Spec {
    /// `program serve FLAGS`: every flag a setting's, path values made absolute; with the
    /// settings in the environment beside them, the token excepted.
    pub fn serve(program: PathBuf, flags: &[String], env: Env) -> Result<Spec> {
        let cwd = std::env::current_dir().map_err(|e| Error::io("reading the current folder", e))?;
        let absolute = |var: &str, v: String| match PATHS.contains(&var) && Path::new(&v).is_relative() {
            true => cwd.join(v).display().to_string(),
            false => v,
        };
        let mut args = vec!["serve".to_string()];
        let mut given = Vec::new();
        let mut i = 0;
        while i < flags.len() {
            let (name, inline) = match flags[i].split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flags[i].as_str(), None),
            };
            let setting = SETTINGS.iter().find(|s| s.flag == Some(name));
            let Some(s) = setting.filter(|_| name.starts_with("--")) else {
                return Err(Error::Config(format!("'{name}' is not a flag of serve (see agenthub --help)")));
            };
            let value = match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    flags.get(i).cloned().ok_or_else(|| Error::Config(format!("{name} needs a value")))?
                }
            };
            i += 1;
            given.push(s.env);
            args.extend([name.to_string(), absolute(s.env, value)]);
        }
        let mut vars = Vec::new();
        for s in SETTINGS.iter().filter(|s| s.env != SECRET && !given.contains(&s.env)) {
            if let Some(v) = env(s.env).filter(|v| !v.trim().is_empty()) {
                vars.push((s.env.to_string(), absolute(s.env, v)));
            }
        }
        for v in args.iter().chain(vars.iter().map(|(_, v)| v)) {
            if v.chars().any(char::is_control) {
                return Err(Error::Config(format!("a value with a control character: {v:?}")));
            }
        }
        Ok(Spec { program, args, env: vars })
    }
}

/// A word of `ExecStart=`: `%` and `$` doubled (specifiers, variables), quoted when needed.
fn exec_word(w: &str) -> String {
    quoted(&w.replace('%', "%%").replace('$', "$$"))
}

fn quoted(w: &str) -> String {
    if !w.is_empty() && !w.chars().any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';')) {
        return w.to_string();
    }
    format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The words of a systemd line as `quoted` wrote them (specifiers still escaped).
fn unquote_words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut in_quotes, mut any) = (Vec::new(), String::new(), false, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => (in_quotes, any) = (!in_quotes, true),
            '\\' if in_quotes => word.extend(chars.next()),
            c if c.is_whitespace() && !in_quotes => {
                if any || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            c => word.push(c),
        }
    }
    if any || !word.is_empty() {
        words.push(word);
    }
    words
}

/// The systemd user unit for `spec`, reading secrets from `env_file` (specifiers allowed:
/// `%h`) when it exists.
pub fn systemd_unit(spec: &Spec, env_file: &str) -> String {
    let exec: Vec<String> =
        std::iter::once(spec.program.display().to_string()).chain(spec.args.iter().cloned()).collect();
    let mut out = format!(
        "# {MARK}; `agenthub service uninstall` removes it.\n[Unit]\nDescription=AgentHub, a local hub for MCP servers\n\n\
         [Service]\nType=exec\nExecStart={}\nRestart=on-failure\nRestartSec=2\n",
        exec.iter().map(|w| exec_word(w)).collect::<Vec<_>>().join(" ")
    );
    for (k, v) in &spec.env {
        out.push_str(&format!("Environment={}\n", quoted(&format!("{k}={v}").replace('%', "%%"))));
    }
    out.push_str(&format!(
        "# Secrets (AGENTHUB_TOKEN=...) go in this file, mode 0600; `-`: it may be absent.\n\
         EnvironmentFile=-{env_file}\n\n[Install]\nWantedBy=default.target\n"
    ));
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The launchd agent for `spec`, logging to `log`.
pub fn launchd_plist(spec: &Spec, log: &Path) -> String {
    let string = |s: &str| format!("<string>{}</string>", xml(s));
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
         \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<!-- {MARK}; `agenthub service uninstall` removes it. -->\n\
         <plist version=\"1.0\">\n<dict>\n  <key>Label</key>\n  {}\n  <key>ProgramArguments</key>\n  <array>\n",
        string(LABEL)
    );
    for a in std::iter::once(spec.program.display().to_string()).chain(spec.args.iter().cloned()) {
        out.push_str(&format!("    {}\n", string(&a)));
    }
    out.push_str("  </array>\n");
    if !spec.env.is_empty() {
        out.push_str("  <key>EnvironmentVariables</key>\n  <dict>\n");
        for (k, v) in &spec.env {
            out.push_str(&format!("    <key>{}</key>\n    {}\n", xml(k), string(v)));
        }
        out.push_str("  </dict>\n");
    }
    let log = string(&log.display().to_string());
    out.push_str(&format!(
        "  <key>RunAtLoad</key>\n  <true/>\n  <key>KeepAlive</key>\n  <true/>\n  <key>StandardOutPath</key>\n  {log}\n  \
         <key>StandardErrorPath</key>\n  {log}\n</dict>\n</plist>\n"
    ));
    out
}

/// The program, arguments and settings a service file holds, read back.
fn read_back(text: &str) -> Option<(Vec<String>, Vec<(String, String)>)> {
    if text.starts_with("<?xml") {
        let strings = |block: &str| -> Vec<String> {
            block
                .split("<string>")
                .skip(1)
                .filter_map(|s| s.split_once("</string>"))
                .map(|(s, _)| unxml(s))
                .collect()
        };
        let words = strings(text.split_once("<array>")?.1.split_once("</array>")?.0);
        let vars =
            text.split_once("<key>EnvironmentVariables</key>").and_then(|(_, t)| t.split_once("</dict>"));
        let keys = vars.map(|(v, _)| {
            v.split("<key>").skip(1).filter_map(|s| s.split_once("</key>")).map(|(k, _)| unxml(k)).collect()
        });
        let pairs: Vec<String> = keys.unwrap_or_default();
        let values = vars.map(|(v, _)| strings(v)).unwrap_or_default();
        return Some((words, pairs.into_iter().zip(values).collect()));
    }
    let words = text.lines().find_map(|l| l.strip_prefix("ExecStart=")).map(unquote_words)?;
    let words = words.into_iter().map(|w| w.replace("%%", "%").replace("$$", "$")).collect();
    let vars = text.lines().filter_map(|l| l.strip_prefix("Environment=")).flat_map(unquote_words);
    let vars = vars.filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.replace("%%", "%"))));
    Some((words, vars.collect()))
}

fn unxml(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&")
}

/// Where the service's hub answers: its `--host`/`--port`, else its settings, else the defaults.
fn address(args: &[String], vars: &[(String, String)]) -> String {
    let setting = |flag: &str, var: &str| {
        let flagged = args.iter().enumerate().find_map(|(i, a)| match a.strip_prefix(flag) {
            Some("") => args.get(i + 1).cloned(),
            Some(v) => v.strip_prefix('=').map(String::from),
            None => None,
        });
        flagged.or_else(|| vars.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone()))
    };
    let host = match setting("--host", "AGENTHUB_HOST").unwrap_or_default().as_str() {
        "" | "0.0.0.0" | "localhost" => "127.0.0.1".to_string(),
        "::" | "[::]" => "[::1]".to_string(),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        h => h.to_string(),
    };
    format!("http://{host}:{}", setting("--port", "AGENTHUB_PORT").unwrap_or_else(|| "9090".into()))
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
    let Some((words, vars)) = read_back(&text).filter(|(w, _)| !w.is_empty()) else {
        println!("its command line cannot be read");
        return Ok(1);
    };
    let program = PathBuf::from(&words[0]);
    println!("runs: {}", words.join(" "));
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
    let url = address(&words[1..], &vars);
    match probe_health(&url, env(SECRET).as_deref()) {
        Ok((code, s)) => println!("hub: {url}/health answered {code} ({s})"),
        Err(e) => println!("hub: no answer at {url} ({e})"),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Spec {
        Spec {
            program: PathBuf::from("/opt/agent hub/agenthub"),
            args: vec!["serve".into(), "--config-dir".into(), "/home/u/100% \"mine\"".into()],
            env: vec![("AGENTHUB_LOG_LEVEL".into(), "debug".into())],
        }
    }

    #[test]
    fn the_unit_quotes_and_escapes_and_reads_back() {
        let unit = systemd_unit(&example(), "%h/.config/agenthub/env");
        assert!(unit.contains(
            "ExecStart=\"/opt/agent hub/agenthub\" serve --config-dir \"/home/u/100%% \\\"mine\\\"\"\n"
        ));
        for line in ["Restart=on-failure", "Environment=AGENTHUB_LOG_LEVEL=debug", "WantedBy=default.target"]
        {
            assert!(unit.lines().any(|l| l == line), "{line}: {unit}");
        }
        assert!(unit.contains("EnvironmentFile=-%h/.config/agenthub/env"));
        let (words, vars) = read_back(&unit).unwrap();
        assert_eq!(
            words,
            [
                &["/opt/agent hub/agenthub"][..],
                &example().args.iter().map(|s| s.as_str()).collect::<Vec<_>>()
            ]
            .concat()
        );
        assert_eq!(vars, example().env);
        assert_eq!(unquote_words("a \"\" b$$"), ["a", "", "b$$"]);
    }

    #[test]
    fn the_status_address_follows_flags_then_settings() {
        fn check(args: &[&str], vars: &[(&str, &str)], expected: &str) {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            let vars: Vec<(String, String)> =
                vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            assert_eq!(address(&args, &vars), expected);
        }
        check(&[], &[], "http://127.0.0.1:9090");
        check(&["--port", "9191"], &[("AGENTHUB_PORT", "1")], "http://127.0.0.1:9191");
        check(&["--port=9292", "--host", "0.0.0.0"], &[], "http://127.0.0.1:9292");
        check(&[], &[("AGENTHUB_HOST", "::1"), ("AGENTHUB_PORT", "7")], "http://[::1]:7");
    }

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
