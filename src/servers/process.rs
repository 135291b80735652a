//! Child processes: the only module that touches `std::process` for MCP servers. Each child is
//! spawned without a shell as the leader of a new process group, so signals reach the whole
//! tree (`npx` wrappers have grandchildren). Stopping escalates: stdin closed, SIGTERM to the
//! group, SIGKILL to the group, reaped. Every signal the hub sends to a group goes through here
//! (`kill_group` for the groups it does not hold a `Process` for), and from here to `sys`.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::config::ServerConfig;
use crate::error::{Error, Result};
use crate::sys::{self, Signal};

/// How long a child gets to exit on its own after its stdin closes.
pub const STDIN_GRACE: Duration = Duration::from_secs(1);
/// How long the group gets between SIGTERM and SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(5);

pub struct Process {
    child: Child,
    /// The group id: the leader's pid.
    pgid: i32,
    exit: Option<ExitStatus>,
}

pub struct Pipes {
    pub stdin: ChildStdin,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
}

/// The program and arguments a stdio server runs as: its `command`, else its npm `package`'s
/// installed bin under `npm_prefix`, else `npx -y <package>`.
pub fn command_line(cfg: &ServerConfig, npm_prefix: &Path) -> Result<(String, Vec<String>)> {
    if let Some(cmd) = cfg.command.as_deref().filter(|c| !c.trim().is_empty()) {
        return Ok((cmd.to_string(), cfg.args.clone()));
    }
    let Some(package) = cfg.package.as_deref() else {
        return Err(Error::BadRequest("a stdio server needs \"command\" or \"package\"".into()));
    };
    if let Some(bin) = installed_bin(npm_prefix, package) {
        return Ok((bin.display().to_string(), cfg.args.clone()));
    }
    let mut args = vec!["-y".to_string(), package.to_string()];
    args.extend(cfg.args.iter().cloned());
    Ok(("npx".to_string(), args))
}

/// `name` of `name@version` / `@scope/name@version`.
pub fn package_name(spec: &str) -> &str {
    let body_start = usize::from(spec.starts_with('@'));
    match spec[body_start..].find('@') {
        Some(i) => &spec[..body_start + i],
        None => spec,
    }
}

/// The executable an installed package provides: its `bin` entry named like the package (or its
/// only one), resolved inside `node_modules`.
pub fn installed_bin(prefix: &Path, package: &str) -> Option<PathBuf> {
    let name = package_name(package);
    let dir = prefix.join("node_modules").join(name);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("package.json")).ok()?).ok()?;
    let rel = match manifest.get("bin")? {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(bins) => {
            let last = name.rsplit('/').next().unwrap_or(name);
            let pick = bins.get(last).or_else(|| if bins.len() == 1 { bins.values().next() } else { None });
            pick.or_else(|| bins.values().next())?.as_str()?.to_string()
        }
        _ => return None,
    };
    let path = dir.join(rel);
    path.is_file().then_some(path)
}

impl Process {
    /// Starts `cfg` (already expanded) with its env over the hub's, minus the hub's token.
    pub fn spawn(name: &str, cfg: &ServerConfig, npm_prefix: &Path) -> Result<(Process, Pipes)> {
        let (program, args) = command_line(cfg, npm_prefix)?;
        let mut cmd = Command::new(&program);
        cmd.args(&args)
            .envs(&cfg.env)
            .env_remove("AGENTHUB_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(cwd) = &cfg.cwd {
            cmd.current_dir(cwd);
        }
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().map_err(|e| {
            let what = if e.kind() == std::io::ErrorKind::NotFound {
                format!("command '{program}' not found")
            } else {
                e.to_string()
            };
            Error::Upstream(format!("cannot start server {name}: {what}"))
        })?;
        let pipes = match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
            (Some(stdin), Some(stdout), Some(stderr)) => Pipes { stdin, stdout, stderr },
            _ => return Err(Error::Internal(format!("server {name}: pipes missing after spawn"))),
        };
        let pgid = child.id() as i32;
        Ok((Process { child, pgid, exit: None }, pipes))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The leader's exit status, once it has exited (non-blocking).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Waits for the leader until `deadline`.
    fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// After the stdin was closed: wait, SIGTERM the group, wait, SIGKILL the group, reap.
    /// Always ends with the group empty, grandchildren included.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.wait_until(Instant::now() + STDIN_GRACE);
        if self.group_alive() {
            self.signal_group(Signal::Term);
            let deadline = Instant::now() + grace;
            while self.group_alive() && Instant::now() < deadline {
                self.try_wait();
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.kill()
    }

    /// SIGKILL to the group at once, then reap the leader.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        self.signal_group(Signal::Kill);
        if self.exit.is_none() {
            self.exit = self.child.wait().ok();
        }
        self.exit
    }

    /// Whether any process of the group is left (the leader counts until reaped). Zombies do
    /// not count: orphans are reaped by init, which in a container may never happen.
    fn group_alive(&mut self) -> bool {
        self.try_wait();
        if !sys::group_exists(self.pgid) {
            return false;
        }
        let Ok(procs) = std::fs::read_dir("/proc") else { return true };
        procs.flatten().any(|e| {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { return false };
            matches!(proc_state(pid), Some((state, pgrp)) if pgrp == self.pgid && state != 'Z')
        })
    }

    fn signal_group(&self, signal: Signal) {
        // ESRCH (the group is already gone) is the usual outcome, not a failure.
        let _ = sys::signal_group(self.pgid, signal);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Never leave a process behind, whatever path dropped this one.
        if self.exit.is_none() || self.group_alive() {
            self.kill();
        }
    }
}

/// SIGKILL to every process of group `pgid`, one this hub created (a launching child's, npm's);
/// a group already gone is fine.
pub fn kill_group(pgid: i32) {
    let _ = sys::signal_group(pgid, Signal::Kill);
}

/// A process's state letter and group from `/proc/PID/stat`; None when it is gone.
pub fn proc_state(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: read after the last ')'.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let pgrp = fields.nth(1)?.parse().ok()?;
    Some((state, pgrp))
}

/// "exit status 3", "killed by signal 9".
pub fn describe(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return format!("killed by signal {sig}");
        }
    }
    match status.code() {
        Some(c) => format!("exit status {c}"),
        None => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names() {
        fn check(spec: &str, expected: &str) {
            assert_eq!(package_name(spec), expected, "{spec}");
        }
        check("left-pad", "left-pad");
        check("left-pad@1.3.0", "left-pad");
        check("@scope/server-x", "@scope/server-x");
        check("@scope/server-x@1.2", "@scope/server-x");
    }

    #[test]
    fn command_lines() {
        let mut cfg =
            ServerConfig { command: Some("node".into()), args: vec!["s.js".into()], ..Default::default() };
        let none = Path::new("/nonexistent");
        assert_eq!(command_line(&cfg, none).unwrap(), ("node".to_string(), vec!["s.js".to_string()]));
        cfg.command = None;
        cfg.package = Some("@scope/x@1".into());
        assert_eq!(command_line(&cfg, none).unwrap().0, "npx");
        assert_eq!(command_line(&cfg, none).unwrap().1, ["-y", "@scope/x@1", "s.js"]);
    }

    #[test]
    fn stop_kills_the_whole_group() {
        // sh starts a grandchild that ignores stdin; stopping must take it too.
        let cfg = ServerConfig {
            command: Some("sh".into()),
            args: vec!["-c".into(), "sleep 1000 & echo $! >&2; wait".into()],
            ..Default::default()
        };
        let (mut p, pipes) = Process::spawn("t", &cfg, Path::new("/nonexistent")).unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(pipes.stderr), &mut line).unwrap();
        let grandchild: i32 = line.trim().parse().unwrap();
        drop(pipes.stdin);
        let status = p.stop(Duration::from_secs(2));
        assert!(status.is_some());
        let alive = proc_state(grandchild).is_some_and(|(state, _)| state != 'Z');
        assert!(!alive, "grandchild {grandchild} survived");
    }
}
