//! Child processes: the only module that touches `std::process` for MCP servers. Each child is
//! spawned without a shell as the leader of a new process group, so signals reach the whole
//! tree (`npx` wrappers have grandchildren). Stopping escalates: stdin closed, SIGTERM, SIGKILL,
//! reaped. Every signal the hub sends goes through here (`kill_group` for the groups it does not
//! hold a `Process` for), and from here to `sys`.
//!
//! Nothing is left behind. A stop takes down the child's whole tree: its group, the leader's
//! descendants (walked by parent in /proc), and the orphans that left the group and whose parent
//! exited, which the kernel re-parents to the hub (a child subreaper, set in `main`): they are
//! told apart from other servers' by `RUN_TAG`, which every process of a run inherits. Children
//! get SIGKILL when the hub dies (`PR_SET_PDEATHSIG`); a hub killed outright leaves a record of
//! each child's group in `<data dir>/pids`, and the next hub kills what is left (`reap_stale`).
//! The installer's npm runs the same way (`start_command`, `record_npm`); its record holds only
//! while the leader's command line still names npm.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::Mutex;
use serde_json::json;

use crate::config::ServerConfig;
use crate::error::{Error, Result};
use crate::sys::{self, Reaped, Signal};

/// How long a child gets to exit on its own after its stdin closes.
pub const STDIN_GRACE: Duration = Duration::from_secs(1);
/// How long the group gets between SIGTERM and SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(5);
/// How long a kill goes on finding and killing what the tree forked meanwhile, and reaping.
const KILL_DEADLINE: Duration = Duration::from_secs(1);
/// The name npm's records go by in the pids directory (`Process::record_npm`).
const NPM_RECORD: &str = "npm-install";
/// Marks every process of one run, `<hub pid>.<n>`: inherited through the environment, it is
/// how an orphan that left the group is known to belong to this run.
pub const RUN_TAG: &str = "AGENTHUB_RUN";

pub struct Process {
    child: Child,
    /// The group id: the leader's pid.
    pgid: i32,
    tag: String,
    exit: Option<ExitStatus>,
    /// The record of this run's group in the data dir, removed once the tree is down.
    record: Option<PathBuf>,
    /// The tree has been killed and reaped.
    done: bool,
}

pub struct Pipes {
    pub stdin: ChildStdin,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
}

/// The program and arguments a stdio server runs as: an npm entry installed under `npm_prefix`
/// as `node <bin>` (`packages`), else its `command`, else `npx -y <package>`.
pub fn command_line(cfg: &ServerConfig, npm_prefix: &Path) -> Result<(String, Vec<String>)> {
    if let Some(line) = super::packages::installed_line(cfg, npm_prefix) {
        return Ok(line);
    }
    if let Some(cmd) = cfg.command.as_deref().filter(|c| !c.trim().is_empty()) {
        return Ok((cmd.to_string(), cfg.args.clone()));
    }
    let Some(package) = cfg.package.as_deref() else {
        return Err(Error::BadRequest("a stdio server needs \"command\" or \"package\"".into()));
    };
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

/// A fresh `RUN_TAG` value: `<hub pid>.<n>`.
fn next_tag() -> String {
    static RUNS: AtomicU64 = AtomicU64::new(1);
    format!("{}.{}", std::process::id(), RUNS.fetch_add(1, Ordering::Relaxed))
}

impl Process {
    /// Starts a program the hub runs for itself (npm) as children are started: the leader of
    /// a group of its own that dies with the hub, every process of it tagged with the run. Its
    /// environment is the command's (`RUN_TAG` added); its stdout and stderr are what the
    /// command says (`take_output`).
    pub fn start_command(mut cmd: Command) -> io::Result<Process> {
        let tag = next_tag();
        cmd.env(RUN_TAG, &tag);
        let child = start(cmd)?;
        let pgid = child.id() as i32;
        Ok(Process { child, pgid, tag, exit: None, record: None, done: false })
    }

    /// The leader's stdout and stderr, when piped (once).
    pub fn take_output(&mut self) -> (Option<ChildStdout>, Option<ChildStderr>) {
        (self.child.stdout.take(), self.child.stderr.take())
    }

    /// Starts `cfg` (already expanded) with its env over the hub's, minus the hub's token.
    pub fn spawn(name: &str, cfg: &ServerConfig, npm_prefix: &Path) -> Result<(Process, Pipes)> {
        let (program, args) = command_line(cfg, npm_prefix)?;
        let tag = next_tag();
        let mut cmd = Command::new(&program);
        cmd.args(&args)
            .envs(&cfg.env)
            .env_remove("AGENTHUB_TOKEN")
            .env(RUN_TAG, &tag)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(cwd) = &cfg.cwd {
            cmd.current_dir(cwd);
        }
        let mut child = start(cmd).map_err(|e| {
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
        Ok((Process { child, pgid, tag, exit: None, record: None, done: false }, pipes))
    }

    /// Notes this run's group in `dir` (`<server>.<pgid>`, written whole or not at all), so a
    /// hub started after this one was killed outright can take it down (`reap_stale`). Removed
    /// once the tree is down.
    pub fn record(&mut self, dir: &Path, server: &str) -> io::Result<()> {
        self.write_record(dir, server, None)
    }

    /// As `record`, for npm run by the installer (`npm-install.<pgid>`): a later hub kills the
    /// group only while its leader still runs npm (`/proc/<pid>/cmdline`), or, the leader gone,
    /// what lingers of its group.
    pub fn record_npm(&mut self, dir: &Path) -> io::Result<()> {
        self.write_record(dir, NPM_RECORD, Some("npm"))
    }

    fn write_record(&mut self, dir: &Path, server: &str, program: Option<&str>) -> io::Result<()> {
        let leader = stat(self.pgid).ok_or_else(|| io::Error::other("the child is already gone"))?;
        let hub = stat(std::process::id() as i32).ok_or_else(|| io::Error::other("no /proc/self"))?;
        let text = json!({"server": server, "pgid": self.pgid, "start": leader.start,
            "session": leader.session, "tag": self.tag, "hub": hub.pid, "hub_start": hub.start,
            "boot": boot_id(), "program": program});
        std::fs::create_dir_all(dir)?;
        let name = format!("{server}.{}", self.pgid);
        let (tmp, path) = (dir.join(format!(".{name}.tmp")), dir.join(&name));
        std::fs::write(&tmp, format!("{text}\n"))?;
        std::fs::rename(&tmp, &path)?;
        self.record = Some(path);
        Ok(())
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

    /// After the stdin was closed: wait, SIGTERM the tree, wait, SIGKILL the tree, reap.
    /// Always ends with the tree gone, grandchildren included.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.wait_until(Instant::now() + STDIN_GRACE);
        let tree = self.tree();
        if tree.iter().any(Stat::running) {
            self.signal_tree(&tree, Signal::Term);
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline && self.tree().iter().any(Stat::running) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.kill()
    }

    /// SIGKILL to the tree at once (again, until nothing of it runs: a process may fork between
    /// the look and the kill), then reap the leader and the orphans.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let deadline = Instant::now() + KILL_DEADLINE;
        let mut seen = HashSet::new();
        loop {
            let tree = self.tree();
            seen.extend(tree.iter().map(|p| p.pid));
            self.signal_tree(&tree, Signal::Kill);
            if self.exit.is_none() {
                self.exit = self.child.wait().ok();
            }
            if !tree.iter().any(|p| p.running() && p.pid != self.pgid) || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        seen.remove(&self.pgid);
        reap_all(seen, deadline);
        if let Some(path) = self.record.take() {
            let _ = std::fs::remove_file(path);
        }
        self.done = true;
        self.exit
    }

    /// Every process of this run still in the process table (zombies too), collected before any
    /// is killed: a killed parent's children move to the hub and the walk would lose them. The
    /// roots are the leader (until reaped), its group, and the hub's children that carry the
    /// run's tag; the tree is the roots and everything below them.
    fn tree(&mut self) -> Vec<Stat> {
        self.try_wait();
        let procs = all();
        let hub = std::process::id() as i32;
        let mut inside: HashSet<i32> = procs
            .iter()
            .filter(|p| {
                let leader = p.pid == self.pgid;
                (leader && self.exit.is_none())
                    || (!leader && p.pgrp == self.pgid)
                    || (!leader && p.ppid == hub && tagged(p.pid, &self.tag))
            })
            .map(|p| p.pid)
            .collect();
        loop {
            let more: Vec<i32> = procs
                .iter()
                .filter(|p| !inside.contains(&p.pid) && inside.contains(&p.ppid))
                .map(|p| p.pid)
                .collect();
            if more.is_empty() {
                break;
            }
            inside.extend(more);
        }
        procs.into_iter().filter(|p| inside.contains(&p.pid)).collect()
    }

    fn signal_tree(&self, tree: &[Stat], signal: Signal) {
        // ESRCH (already gone) is the usual outcome, not a failure.
        let _ = sys::signal_group(self.pgid, signal);
        for p in tree.iter().filter(|p| p.pgrp != self.pgid && p.running()) {
            let _ = sys::signal_process(p.pid, signal);
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Never leave a process behind, whatever path dropped this one.
        if !self.done {
            self.kill();
        }
    }
}

/// Reaps `pids` (killed, none a `Child`'s) as each becomes the hub's exited child, until each
/// is reaped, gone, or someone else's, or until `deadline`.
fn reap_all(mut pids: HashSet<i32>, deadline: Instant) {
    let hub = std::process::id() as i32;
    loop {
        pids.retain(|&pid| match sys::reap(pid) {
            Reaped::Now => false,
            Reaped::Running => true,
            // Its parent (of the tree too) may still be exiting: then it is the hub's in a
            // moment. Init reaps what is re-parented to it.
            Reaped::NotOurs => stat(pid).is_some_and(|p| p.ppid != 1 && p.ppid != hub),
        });
        if pids.is_empty() || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reaps the hub's exited children that no `Child` owns: orphans re-parented to the hub (a
/// subreaper) after their own parent exited. Every child the hub spawns leads a process group
/// in the hub's session (and a `Child` reaps it); anything else that is the hub's child is an
/// orphan.
pub fn reap_orphans() {
    let hub = std::process::id() as i32;
    let Some(me) = stat(hub) else { return };
    for p in all() {
        let own = p.pgrp == p.pid && p.session == me.session;
        if p.ppid == hub && p.state == 'Z' && !own {
            sys::reap(p.pid);
        }
    }
}

/// Spawns `cmd` as the leader of a new process group that dies with the hub. The fork happens
/// on the `spawner` thread: the parent-death signal fires when the thread that forked the child
/// ends, not the process, and the thread asking (a request's, a `start-*`) may end any time.
pub fn start(mut cmd: Command) -> io::Result<Child> {
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    sys::die_with_parent(&mut cmd);
    let (tx, rx) = crossbeam_channel::bounded(1);
    spawner()?.send((cmd, tx)).map_err(|_| io::Error::other("the spawner thread is gone"))?;
    rx.recv().map_err(|_| io::Error::other("the spawner thread is gone"))?
}

type SpawnJob = (Command, Sender<io::Result<Child>>);

/// The one thread that forks children. It lives as long as the process (its death would kill
/// every child), so it is never joined.
fn spawner() -> io::Result<Sender<SpawnJob>> {
    static SPAWNER: Mutex<Option<Sender<SpawnJob>>> = Mutex::new(None);
    let mut slot = SPAWNER.lock();
    if let Some(tx) = &*slot {
        return Ok(tx.clone());
    }
    let (tx, rx) = crossbeam_channel::unbounded::<SpawnJob>();
    std::thread::Builder::new().name("spawner".into()).spawn(move || {
        for (mut cmd, reply) in rx {
            let _ = reply.send(cmd.spawn());
        }
    })?;
    *slot = Some(tx.clone());
    Ok(tx)
}

/// SIGKILL to every process of group `pgid`, one this hub created (a launching child's, npm's);
/// a group already gone is fine.
pub fn kill_group(pgid: i32) {
    let _ = sys::signal_group(pgid, Signal::Kill);
}

/// Takes down what a hub that ended without stopping its children left behind, as recorded in
/// `dir`: a recorded group whose leader still runs (the same process: same start time), or whose
/// leader is gone while the rest of its group (same session) lingers, is killed, and so is every
/// process carrying the run's tag. Records of a hub still running are left alone. Returns what
/// was killed, to log.
pub fn reap_stale(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut killed = Vec::new();
    for path in entries.flatten().map(|e| e.path()) {
        let record: Option<serde_json::Value> =
            std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok());
        let field = |k: &str| record.as_ref().and_then(|r| r[k].as_i64());
        // Pids and start times begin again at each boot: a record from an earlier one names
        // nothing that runs now.
        let this_boot = record.as_ref().is_some_and(|r| r["boot"].as_str() == Some(boot_id().as_str()));
        let hub_alive = match (field("hub"), field("hub_start")) {
            (Some(pid), Some(start)) => stat(pid as i32).is_some_and(|p| p.start as i64 == start),
            _ => false,
        };
        if this_boot && hub_alive {
            continue;
        }
        if !this_boot {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        if let (Some(pgid), Some(start), Some(session)) = (field("pgid"), field("start"), field("session")) {
            let (pgid, procs) = (pgid as i32, all());
            // A record that names its program (npm) holds only while the leader runs it.
            let program = record.as_ref().and_then(|r| r["program"].as_str()).unwrap_or("");
            let ours = match procs.iter().find(|p| p.pid == pgid) {
                Some(leader) => leader.start as i64 == start && runs(pgid, program),
                None => procs.iter().any(|p| p.pgrp == pgid && p.session as i64 == session && p.running()),
            };
            let tag = record.as_ref().and_then(|r| r["tag"].as_str()).unwrap_or("");
            let tagged: Vec<i32> = if tag.is_empty() {
                Vec::new()
            } else {
                procs.iter().filter(|p| p.running() && tagged(p.pid, tag)).map(|p| p.pid).collect()
            };
            if ours {
                kill_group(pgid);
            }
            for pid in &tagged {
                let _ = sys::signal_process(*pid, Signal::Kill);
            }
            if ours || !tagged.is_empty() {
                let server = record.as_ref().and_then(|r| r["server"].as_str()).unwrap_or("?");
                killed.push(format!("server {server}: group {pgid} and {} more process(es)", tagged.len()));
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    killed
}

/// The fields of `/proc/PID/stat` the hub reads.
#[derive(Clone, Copy, Debug)]
struct Stat {
    pid: i32,
    state: char,
    ppid: i32,
    pgrp: i32,
    session: i32,
    /// Clock ticks after boot: with the pid, names one process for good.
    start: u64,
}

impl Stat {
    fn running(&self) -> bool {
        self.state != 'Z' && self.state != 'X'
    }
}

fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: read after the last ')'.
    let f: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    Some(Stat {
        pid,
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        session: f.get(3)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

/// Every process in /proc.
fn all() -> Vec<Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).filter_map(stat).collect()
}

/// This boot's id (empty when unknown).
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim().to_string()
}

/// Whether process `pid`'s command line names `program` (anything, when `program` is empty).
fn runs(pid: i32, program: &str) -> bool {
    if program.is_empty() {
        return true;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    // `node /usr/bin/npm install ...`, `/bin/sh .../npm ...`, or the title npm gives itself
    // (`npm install x`, one argument).
    cmdline.split(|b| *b == 0).any(|arg| {
        let word = arg.split(|b| *b == b' ').next().unwrap_or(arg);
        let base = word.rsplit(|b| *b == b'/').next().unwrap_or(word);
        base == program.as_bytes() || base.starts_with(format!("{program}-").as_bytes())
    })
}

/// Whether process `pid` was started with `RUN_TAG=tag` (unreadable: not ours, or gone).
fn tagged(pid: i32, tag: &str) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else { return false };
    let want = format!("{RUN_TAG}={tag}");
    environ.split(|b| *b == 0).any(|v| v == want.as_bytes())
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
    fn an_npm_record_kills_its_group_only_while_the_leader_runs_npm() {
        let dir = std::env::temp_dir().join(format!("agenthub-npm-record-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A leader that runs npm (by its command line), and one that does not.
        let leader = |args: &[&str]| {
            let mut cmd = Command::new("sh");
            cmd.args(args);
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            cmd.spawn().unwrap()
        };
        let mut npm = leader(&["-c", "sleep 1000; true", "/usr/bin/npm"]);
        let mut other = leader(&["-c", "sleep 1000; true", "not-it"]);
        for child in [&npm, &other] {
            let pgid = child.id() as i32;
            // `spawn` returns once the exec is done: the command line is sh's.
            let me = stat(pgid).unwrap();
            // Written by a hub that is gone (no such pid).
            let record = json!({"server": NPM_RECORD, "pgid": pgid, "start": me.start, "session": me.session,
                "tag": "", "hub": i32::MAX, "hub_start": 0, "boot": boot_id(), "program": "npm"});
            std::fs::write(dir.join(format!("{NPM_RECORD}.{pgid}")), record.to_string()).unwrap();
        }
        let killed = reap_stale(&dir);
        assert_eq!(killed.len(), 1, "{killed:?}");
        let status = npm.wait().unwrap();
        assert!(std::os::unix::process::ExitStatusExt::signal(&status).is_some(), "{status:?}");
        assert!(other.try_wait().unwrap().is_none(), "not npm: left alone");
        let _ = sys::signal_group(other.id() as i32, Signal::Kill);
        let _ = other.wait();
        assert!(std::fs::read_dir(&dir).unwrap().next().is_none(), "records removed");
        let _ = std::fs::remove_dir_all(&dir);
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
        let alive = stat(grandchild).is_some_and(|p| p.running());
        assert!(!alive, "grandchild {grandchild} survived");
    }
}
