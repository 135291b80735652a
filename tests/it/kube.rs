//! `deploy/kubernetes/agenthub.yaml` run with `podman kube play` (podman 4.3: the kinds it
//! supports; what this sandbox needs is in `containers.conf` and said below): the slim image,
//! its servers from the ConfigMap (read-only: the API says so), its token from a secret, a
//! non-root user on a read-only root; `/health` with the token, `/health/ready`, and a tool
//! call through it to a remote server.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::container::{root, run, static_binary};
use crate::harness::*;

const TOKEN: &str = "kube-test-token-0123456789";

/// What this sandbox needs of podman: no systemd, so default ulimits within the hard limits
/// and runc; `catatonit` for the pod's infra container is installed by `make test-deps`.
const CONTAINERS_CONF: &str = "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1000:1000\"]\n\
    [engine]\nruntime = \"runc\"\n";

fn podman(conf: &Path) -> Command {
    let mut c = Command::new("podman");
    c.env("CONTAINERS_CONF", conf);
    c
}

/// Takes down what the test made, by name, however it ends.
struct Played {
    conf: std::path::PathBuf,
    manifest: std::path::PathBuf,
    image: String,
    secret: String,
}

impl Drop for Played {
    fn drop(&mut self) {
        let _ = podman(&self.conf).args(["kube", "down"]).arg(&self.manifest).output();
        let _ = podman(&self.conf).args(["secret", "rm", &self.secret]).output();
        let _ = podman(&self.conf).args(["rmi", "-f", &self.image]).output();
    }
}

/// The manifest as podman 4.3 on a host network runs it: this image, the secret's name, the
/// servers and the port given, on loopback; the container's named port left out (a host
/// network maps none) and the readiness probe's port given as a number.
fn for_podman(manifest: &str, image: &str, secret: &str, servers: &Value, port: u16) -> String {
    let servers = serde_json::to_string(servers).unwrap();
    manifest
        .replace("image: localhost/agenthub:slim", &format!("image: {image}"))
        .replace(
            "secretKeyRef: {name: agenthub, key: token}",
            &format!("secretKeyRef: {{name: {secret}, key: token}}"),
        )
        .replace(r#"{"servers": {}}"#, &servers)
        .replace(r#"{name: AGENTHUB_HOST, value: "0.0.0.0"}"#, r#"{name: AGENTHUB_HOST, value: "127.0.0.1"}"#)
        .replace(
            r#"{name: AGENTHUB_PORT, value: "9090"}"#,
            &format!(r#"{{name: AGENTHUB_PORT, value: "{port}"}}"#),
        )
        .replace("          ports:\n            - {name: http, containerPort: 9090}\n", "")
        .replace(
            "httpGet: {path: /health/ready, port: http}",
            &format!("httpGet: {{path: /health/ready, port: {port}}}"),
        )
}

#[test]
fn the_kubernetes_manifest_runs_under_podman_kube_play() {
    let manifest = std::fs::read_to_string(root().join("deploy/kubernetes/agenthub.yaml")).unwrap();
    for needle in [
        "replicas: 1",
        "type: Recreate",
        "startupProbe",
        "livenessProbe",
        "path: /health/ready",
        "kind: ConfigMap",
        "kind: Service",
        "secretKeyRef",
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "emptyDir",
        "requests:",
        "AGENTHUB_SERVERS_FILE",
    ] {
        assert!(manifest.contains(needle), "the manifest lacks {needle:?}");
    }
    let bin = static_binary();
    assert!(bin.exists());
    let dir = TempDir::new("kube");
    let conf = dir.write("containers.conf", CONTAINERS_CONF);
    let tag = std::process::id();
    let played = Played {
        manifest: dir.path().join("agenthub.yaml"),
        image: format!("localhost/agenthub-it-kube:{tag}"),
        secret: format!("agenthub-it-{tag}"),
        conf: conf.clone(),
    };
    let (ok, out) = run(podman(&conf).current_dir(root()).args([
        "build",
        "--format",
        "docker",
        "-f",
        "Dockerfile",
        "--target",
        "slim",
        "--build-arg",
        "BINARY=prebuilt",
        "-t",
        &played.image,
        ".",
    ]));
    assert!(ok, "podman build: {out}");
    // podman 4.3 takes no Secret kind: the secret is made as podman keeps one (its keys'
    // values in base64), under the name the manifest refers to.
    let secret = dir.write("secret.json", &json!({"token": base64(TOKEN)}).to_string());
    let (ok, out) = run(podman(&conf).args(["secret", "create", &played.secret]).arg(&secret));
    assert!(ok, "podman secret create: {out}");

    // The remote server the ConfigMap names, on this machine's loopback.
    let remote_port = free_port();
    let _remote = ServerProcess::start(
        Command::new(npm_bin("mcp-server-everything"))
            .arg("streamableHttp")
            .env("PORT", remote_port.to_string()),
        remote_port,
        20 * SEC,
    );
    let servers = json!({"servers": {"everything": {"type": "http", "url": format!("http://127.0.0.1:{remote_port}/mcp"), "auto_start": true}}});
    let port = free_port();
    std::fs::write(&played.manifest, for_podman(&manifest, &played.image, &played.secret, &servers, port))
        .unwrap();
    let (ok, out) = run(podman(&conf).args(["kube", "play", "--network", "host"]).arg(&played.manifest));
    assert!(ok, "podman kube play: {out}");

    let addr = format!("127.0.0.1:{port}");
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    let logs = || run(podman(&conf).args(["pod", "logs", "agenthub-pod-0"])).1;
    wait_for("the pod to be ready", 30 * SEC, || {
        std::net::TcpStream::connect(&addr).ok()?;
        (raw_request(&addr, "GET", "/health/ready", &[], b"").status == 200).then_some(())
    });
    let health = raw_request(&addr, "GET", "/health", &auth, b"");
    assert_eq!(health.status, 200, "{}\n{}", health.text(), logs());
    assert_eq!(raw_request(&addr, "GET", "/health", &[], b"").status, 401, "the token is the secret's");
    assert_eq!(health.json()["servers"]["everything"]["status"], "RUNNING", "{}\n{}", health.text(), logs());

    // A tool call through the hub in the pod, to the server its ConfigMap names.
    let body = json!({"name": "echo", "arguments": {"message": "through the pod"}}).to_string();
    let r = raw_request(
        &addr,
        "POST",
        "/mcp/everything/tools/call",
        &[&auth[..], &[JSON]].concat(),
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("through the pod"), "{}", r.text());

    // The ConfigMap's servers are read-only to the API; the hub runs as 65532 on a read-only root.
    let put = json!({"type": "http", "url": "http://127.0.0.1:1/mcp"}).to_string();
    let r = raw_request(&addr, "PUT", "/servers/everything", &[&auth[..], &[JSON]].concat(), put.as_bytes());
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "read_only", "{}", r.text());
    let (ok, user) = run(podman(&conf).args([
        "inspect",
        "--format",
        "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}",
        "agenthub-pod-0-agenthub",
    ]));
    assert!(
        ok && (user.trim() == "65532:65532 true" || user.trim() == "65532 true"),
        "user and root: {user}"
    );
}

fn base64(s: &str) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
