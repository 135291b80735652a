//! The hub in a container: `agenthub healthcheck` (the images' `HEALTHCHECK`), the hub as PID 1
//! of a PID namespace reaping the orphans re-parented to it, the compose files as
//! `docker-compose config` reads them, and the `slim` image built from the static binary
//! (`make release`) and run with podman: health with and without the token, no npx server in
//! it, the healthcheck inside, a non-root PID 1, and its size.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::harness::*;

const TOKEN: &str = "container-test-token-0123456789";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `agenthub healthcheck ARGS`, its exit status and output.
fn healthcheck(args: &[&str], token: Option<&str>) -> (bool, String) {
    let dir = TempDir::new("healthcheck");
    let mut cmd = hub_command(dir.path());
    cmd.arg("healthcheck").args(args);
    if let Some(t) = token {
        cmd.env("AGENTHUB_TOKEN", t);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn healthcheck_exits_0_on_200_and_strict_fails_on_degraded() {
    let hub = Hub::builder()
        .fixtures(&[("broken", json!({"command": "/nonexistent/server", "auto_start": true}))])
        .env("AGENTHUB_TOKEN", TOKEN)
        .start();
    let url = format!("http://{}", hub.addr);
    let bearer = format!("Bearer {TOKEN}");
    wait_for("the broken server to fail", 10 * SEC, || {
        let r = hub.request("GET", "/health", &[("Authorization", &bearer)], b"");
        (r.json()["status"] == "degraded").then_some(())
    });
    let (ok, out) = healthcheck(&["--url", &url], Some(TOKEN));
    assert!(ok && out.contains("degraded"), "{out}");
    let (ok, out) = healthcheck(&["--url", &url], None);
    assert!(!ok && out.contains("401"), "without the token: {out}");
    let (ok, out) = healthcheck(&["--url", &url, "--strict"], Some(TOKEN));
    assert!(!ok && out.contains("degraded"), "--strict: {out}");
    let port = free_port().to_string();
    let (ok, out) = healthcheck(&["--url", &format!("http://127.0.0.1:{port}")], Some(TOKEN));
    assert!(!ok && out.contains("unhealthy"), "nothing listening: {out}");
    // AGENTHUB_PORT alone names the address, as inside the images.
    let dir = TempDir::new("healthcheck-port");
    let mut cmd = hub_command(dir.path());
    let port = hub.addr.rsplit(':').next().unwrap();
    let st = cmd.arg("healthcheck").env("AGENTHUB_PORT", port).env("AGENTHUB_TOKEN", TOKEN).status().unwrap();
    assert!(st.success());
}

/// Processes by outer pid: (pid, ppid, state, command line).
fn processes() -> Vec<(i32, i32, char, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else { continue };
        let fields: Vec<&str> = after.split_whitespace().collect();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        out.push((pid, fields[1].parse().unwrap_or(0), fields[0].chars().next().unwrap_or('?'), cmdline));
    }
    out
}

/// Kills a process by pid on drop.
struct KillOnDrop(Vec<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // SAFETY: signalling processes this test started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

#[test]
fn as_pid_1_the_hub_reaps_the_orphans_it_inherits() {
    let dir = TempDir::new("pid1");
    // The child's own child leaves it at once and lives on: an orphan, re-parented to PID 1.
    let launcher = format!("sh -c 'sleep 1.7 &'; exec {FIXTURE}");
    dir.write("mcp-servers.json", &json!({"servers": {"orphans": {"command": "/bin/sh", "args": ["-c", launcher], "auto_start": true}}}).to_string());
    let port = free_port().to_string();
    let mut cmd = Command::new("unshare");
    for (k, v) in hub_command(dir.path()).get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(BIN)
        .args(["serve", "--port", &port, "--config-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut unshare = cmd.spawn().expect("unshare (util-linux)");
    let unshare_pid = unshare.id() as i32;
    let stderr = unshare.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let hub = wait_for("the hub inside the namespace", 10 * SEC, || {
        processes().into_iter().find(|p| p.1 == unshare_pid).map(|p| p.0)
    });
    let _guard = KillOnDrop(vec![hub, unshare_pid]);
    let status = std::fs::read_to_string(format!("/proc/{hub}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap_or("");
    assert!(nspid.split_whitespace().last() == Some("1"), "the hub is PID 1 in its namespace: {nspid}");
    // The orphan comes to the hub, then exits: it must not stay a zombie.
    let orphan = wait_for("the orphaned sleep to be re-parented to the hub", 20 * SEC, || {
        processes().into_iter().find(|p| p.1 == hub && p.3.starts_with("sleep 1.7")).map(|p| p.0)
    });
    wait_for("the exited orphan to be reaped", 10 * SEC, || {
        (!processes().iter().any(|p| p.0 == orphan)).then_some(())
    });
    let zombies: Vec<_> = processes().into_iter().filter(|p| p.1 == hub && p.2 == 'Z').collect();
    assert!(zombies.is_empty(), "zombies left under the hub: {zombies:?}\n{}", log.lock().unwrap());
    // SIGTERM to PID 1 stops it (it handles the signal; a PID 1 without a handler ignores it).
    // SAFETY: signalling the hub this test started.
    unsafe {
        libc::kill(hub, libc::SIGTERM);
    }
    let deadline = std::time::Instant::now() + 10 * SEC;
    while unshare.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "the hub as PID 1 did not stop on SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(log.lock().unwrap().contains("stopped"), "{}", log.lock().unwrap());
}

pub fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn compose_files_validate_with_docker_compose() {
    let compose = |files: &[&str], token: Option<&str>| {
        let mut cmd = Command::new("docker-compose");
        cmd.current_dir(root()).env_remove("AGENTHUB_TOKEN").env_remove("AGENTHUB_PORT");
        for f in files {
            cmd.args(["-f", f]);
        }
        cmd.arg("config");
        if let Some(t) = token {
            cmd.env("AGENTHUB_TOKEN", t);
        }
        run(&mut cmd)
    };
    let (ok, out) = compose(&["compose.yaml"], Some(TOKEN));
    assert!(ok, "compose.yaml: {out}");
    for needle in [
        "127.0.0.1:9090:9090",
        "read_only: true",
        "init: true",
        "service_completed_successfully",
        "- ollama\n      - list",
        "/root/.ollama",
        "host.docker.internal:host-gateway",
        "OLLAMA_HOST: http://ollama:11434",
    ] {
        assert!(out.contains(needle), "compose.yaml lacks {needle:?}:\n{out}");
    }
    let (ok, out) = compose(&["compose.yaml", "compose.gpu.yaml"], Some(TOKEN));
    assert!(ok && out.contains("driver: nvidia") && out.contains("- gpu"), "the GPU overlay: {out}");
    let (ok, out) = compose(&["compose.yaml"], None);
    assert!(!ok && out.contains("AGENTHUB_TOKEN"), "the token is required: {out}");
}

/// Removes the container and the image this test made, by name, however it ends.
struct Podman {
    container: String,
    image: String,
}

impl Drop for Podman {
    fn drop(&mut self) {
        // -v: the anonymous volume of /data goes with it.
        let _ = Command::new("podman").args(["rm", "-f", "-v", "-t", "0", &self.container]).output();
        let _ = Command::new("podman").args(["rmi", "-f", &self.image]).output();
    }
}

/// The static binary, built by `make release` (once: a no-op when it is up to date).
pub fn static_binary() -> PathBuf {
    let mut make = Command::new("make");
    // Without what cargo sets for a test, or the release build's fingerprint changes and the
    // next `make release` outside builds it all again.
    for (k, _) in std::env::vars() {
        if (k.starts_with("CARGO") && k != "CARGO_HOME") || k == "OUT_DIR" || k == "LD_LIBRARY_PATH" {
            make.env_remove(k);
        }
    }
    let (ok, out) = run(make.arg("-s").arg("release").current_dir(root()));
    assert!(ok, "make release: {out}");
    let bin = root().join("target/x86_64-unknown-linux-gnu/release/agenthub");
    assert!(bin.exists(), "make release built no {}", bin.display());
    bin
}

/// Builds the slim image from the static binary under `tag` (`podman`: the command, with any
/// environment it needs).
pub fn build_slim(podman: &mut Command, tag: &str) {
    let (ok, out) = run(podman.current_dir(root()).args([
        "build",
        // The Docker image format: OCI images have no HEALTHCHECK.
        "--format",
        "docker",
        "-f",
        "Dockerfile",
        "--target",
        "slim",
        "--build-arg",
        "BINARY=prebuilt",
        "-t",
        tag,
        ".",
    ]));
    assert!(ok, "podman build --target slim: {out}");
}

#[test]
fn the_slim_image_runs_under_podman_healthy_small_and_not_root() {
    let bin = static_binary();
    let tag = std::process::id();
    let p = Podman {
        container: format!("agenthub-it-slim-{tag}"),
        image: format!("localhost/agenthub-it-slim:{tag}"),
    };
    build_slim(&mut Command::new("podman"), &p.image);
    let (ok, size) =
        run(Command::new("podman").args(["image", "inspect", "--format", "{{.Size}}", &p.image]));
    let size: u64 = size.trim().parse().unwrap_or_else(|_| panic!("image size: {size}"));
    assert!(ok && size <= 6_000_000, "the slim image is {size} bytes (at most 6 MB)");
    eprintln!("slim image: {size} bytes (binary {} bytes)", std::fs::metadata(&bin).unwrap().len());

    let port = free_port().to_string();
    let (ok, out) = run(Command::new("podman").args([
        "run",
        "-d",
        "--name",
        &p.container,
        "--read-only",
        "--runtime",
        "runc",
        "--network",
        "host",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1000:1000",
        "-e",
        &format!("AGENTHUB_TOKEN={TOKEN}"),
        "-e",
        &format!("AGENTHUB_PORT={port}"),
        &p.image,
    ]));
    assert!(ok, "podman run: {out}");
    let addr = format!("127.0.0.1:{port}");
    let logs = || run(Command::new("podman").args(["logs", &p.container])).1;
    let bearer = format!("Bearer {TOKEN}");
    let health = wait_for("the hub in the container to answer", 30 * SEC, || {
        std::net::TcpStream::connect(&addr).ok()?;
        let r = raw_request(&addr, "GET", "/health", &[("Authorization", &bearer)], b"");
        (r.status == 200).then_some(r)
    });
    assert_eq!(health.json()["status"], "ok", "{}\n{}", health.text(), logs());
    let r = raw_request(&addr, "GET", "/health", &[], b"");
    assert_eq!(r.status, 401, "without the token: {}", r.text());

    // No node, no npx: the image runs none of the embedded npx defaults, and says nothing of
    // commands it cannot find.
    let r = raw_request(&addr, "GET", "/servers", &[("Authorization", &bearer)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["servers"], json!([]), "the slim image's servers: {}", r.text());
    let log = logs();
    assert!(log.contains("servers: /data/config/agenthub/mcp-servers.json"), "{log}");
    assert!(!log.contains("not found") && !log.contains("npx"), "{log}");

    // A read-only root, and /data (a volume, owned by 65532 in the image) takes a save.
    let add = json!({"name": "remote", "transport": "http", "url": "http://127.0.0.1:9/mcp"});
    let r = raw_request(
        &addr,
        "POST",
        "/servers",
        &[("Authorization", &bearer), JSON],
        add.to_string().as_bytes(),
    );
    assert_eq!(r.status, 201, "{}\n{}", r.text(), logs());
    assert!(logs().contains("/data/config/agenthub/mcp-servers.json"), "{}", logs());

    let (ok, out) = run(Command::new("podman").args(["exec", &p.container, "/agenthub", "healthcheck"]));
    assert!(ok && out.contains("ok"), "agenthub healthcheck inside the container: {out}\n{}", logs());
    let (_, hc) = run(Command::new("podman").args([
        "image",
        "inspect",
        "--format",
        "{{json .Config.Healthcheck}}",
        &p.image,
    ]));
    assert!(hc.contains("/agenthub") && hc.contains("healthcheck"), "the image's HEALTHCHECK: {hc}");
    let (ok, out) = run(Command::new("podman").args(["healthcheck", "run", &p.container]));
    assert!(ok, "podman healthcheck run (the image's HEALTHCHECK): {out}");

    // The hub is the container's PID 1, as user 65532.
    let (ok, pid) = run(Command::new("podman").args(["inspect", "--format", "{{.State.Pid}}", &p.container]));
    assert!(ok, "{pid}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let field = |name: &str| status.lines().find(|l| l.starts_with(name)).unwrap_or("").to_string();
    assert!(field("Uid:").split_whitespace().nth(1) == Some("65532"), "{}", field("Uid:"));
    assert!(field("NSpid:").split_whitespace().last() == Some("1"), "{}", field("NSpid:"));
}
