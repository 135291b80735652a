//! `agenthub check-config`: what the configuration will run, said before anything runs. Per
//! server the command line as it will be spawned (the installed bin of a `package`, not
//! `npx -y ...`), secrets masked (and every value a server would be started with, wherever a
//! line quotes it); a command that is not on PATH, a missing variable or a bad entry is an
//! error; every warning is named.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use crate::config::{Loaded, Secrets, ServerEntry, Settings, Transport, mask_args, mask_url};
use crate::servers::process;

/// The report's lines, and how many servers cannot start as configured (or pipelines of the
/// user's own use servers that are not there).
pub fn report(
    settings: &Settings,
    loaded: &Loaded,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Vec<String>, usize) {
    let mut out: Vec<String> = loaded.sources.clone();
    out.extend(loaded.warnings.iter().map(|w| format!("warning: {w}")));
    out.push(format!("{} server(s):", loaded.servers.len()));
    let mut problems = 0;
    for s in &loaded.servers {
        let (target, error) = target(settings, s, env);
        let c = &s.config;
        // An on-demand server waits for its first use, whatever `auto_start` says.
        let mut flags = [
            (c.auto_start && !c.on_demand, " auto_start"),
            (c.on_demand, " on_demand"),
            (!c.enabled, " disabled"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, f)| *f)
        .collect::<String>();
        if !c.idle_timeout.is_zero() {
            flags.push_str(&format!(" idle_timeout={}s", c.idle_timeout.as_secs_f64()));
        }
        let shown = if s.display_name == s.name {
            s.name.clone()
        } else {
            format!("{} (\"{}\")", s.name, s.display_name)
        };
        out.push(format!("  {shown:<24} {:<5} {target}{flags}", s.config.transport.as_str()));
        if let Some(p) = s.problem.as_ref().or(error.as_ref()) {
            problems += 1;
            out.push(format!("    error: {p}"));
        }
    }
    out.push(format!("{} pipeline(s):", loaded.pipelines.len()));
    for p in &loaded.pipelines {
        let steps: Vec<&str> = p.steps.iter().map(|s| s.id.as_str()).collect();
        out.push(format!("  {:<24} {}", p.name, steps.join(" → ")));
        for server in crate::config::pipelines::servers_used(p) {
            if loaded.servers.iter().any(|s| s.name == server) {
                continue;
            }
            let what = format!("uses server \"{server}\", which is not configured");
            // The shipped pipelines are examples: only a file of the user's is held to them.
            if loaded.pipelines_embedded {
                out.push(format!("    note: {what}; it fails until the server is added"));
            } else {
                problems += 1;
                out.push(format!("    error: {what}"));
            }
        }
    }
    // A line may quote what expansion made (a command from `${VAR}` not found, a problem): the
    // values a server would be started with read `***` here, as in the API and the log.
    let secrets: Vec<Secrets> = loaded.servers.iter().map(|s| s.config.secrets(env)).collect();
    let out = out.into_iter().map(|l| secrets.iter().fold(l, |l, s| s.redact(&l).into_owned())).collect();
    (out, problems)
}

/// What a server runs or reaches, masked, and why it could not (a command not on PATH).
fn target(
    settings: &Settings,
    s: &ServerEntry,
    env: &dyn Fn(&str) -> Option<String>,
) -> (String, Option<String>) {
    let cfg = &s.config;
    if cfg.transport != Transport::Stdio {
        return (cfg.url.as_deref().map(mask_url).unwrap_or_default(), None);
    }
    let prefix = settings.data_dir.join("npm").join(&s.name);
    let Ok((program, args)) = process::command_line(cfg, &prefix) else {
        return (String::new(), None);
    };
    let mut line = program.clone();
    for a in mask_args(&args) {
        line.push(' ');
        line.push_str(&a);
    }
    // The expanded command is what must exist (a missing variable is reported already).
    let expanded = cfg.expanded(env).ok().and_then(|c| process::command_line(&c, &prefix).ok());
    let error = expanded.and_then(|(program, _)| {
        (!on_path(&program, env)).then(|| format!("command \"{program}\" not found on PATH"))
    });
    (line, error)
}

/// Whether `program` names an executable file, itself (with a `/`) or in a PATH directory.
fn on_path(program: &str, env: &dyn Fn(&str) -> Option<String>) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable =
        |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        return executable(Path::new(program));
    }
    env("PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| !d.is_empty())
        .any(|d| executable(&Path::new(d).join(program)))
}

/// `agenthub check-config`: what was loaded, each problem, and the exit status.
pub fn command(flags: &HashMap<&'static str, String>, env: &dyn Fn(&str) -> Option<String>) -> ExitCode {
    let settings = match Settings::resolve(flags, env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("agenthub: {e}");
            return ExitCode::from(2);
        }
    };
    let loaded = match crate::config::load(&settings, env) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("invalid: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (lines, problems) = report(&settings, &loaded, env);
    for line in lines {
        println!("{line}");
    }
    let rules = &loaded.rules;
    println!(
        "enhancement: default model {}; client rules: {}",
        rules.default.model,
        if rules.clients.is_empty() {
            "(none)".to_string()
        } else {
            rules.clients.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    );
    if problems > 0 {
        eprintln!(
            "invalid: {problems} problem(s): servers that cannot start as configured, pipelines without their servers"
        );
        return ExitCode::FAILURE;
    }
    println!("valid");
    ExitCode::SUCCESS
}
