//! `deploy/kubernetes/agenthub.yaml` run with `podman kube play` (podman 4.3: the kinds it
//! supports; what this sandbox needs is in `containers.conf` and said below): the slim image,
//! its servers from the ConfigMap (read-only: the API says so), its token from a secret, a
//! non-root user on a read-only root; `/health` with the token, `/health/ready`, and a tool
//! call through it to a remote server.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::container::{build_slim, root, run, static_binary};
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
        let _ = podman(&self.conf).args(["volume", "rm", "-f", &format!("{}-servers", self.secret)]).output();
        let _ = podman(&self.conf).args(["rmi", "-f", &self.image]).output();
    }
}

/// The manifest as podman 4.3 on a host network runs it: this image, the secret's name, the
/// servers and the port given, on loopback; the container's named port left out (a host
/// network maps none) and the readiness probe's port given as a number.
fn for_podman(manifest: &str, image: &str, secret: &str, servers: &Value, port: u16) -> String {
    let servers = serde_json::to_string(servers).unwrap();
    manifest
        // The ConfigMap becomes a podman volume of its name: one of this test's own.
        .replace("name: agenthub-servers", &format!("name: {secret}-servers"))
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
    build_slim(&mut podman(&conf), &played.image);
    // podman 4.3 takes no Secret kind: the secret is made as podman keeps one (its keys'
    // values in base64), under the name the manifest refers to.
    let secret = dir.write("secret.json", &json!({"token": base64(TOKEN)}).to_string());
    let (ok, out) = run(podman(&conf).args(["secret", "create", &played.secret]).arg(&secret));
    assert!(ok, "podman secret create: {out}");

    // The remote server the ConfigMap names, on this machine's loopback.
    let remote_port = unshared_port();
    let _remote = ServerProcess::start(
        Command::new(npm_bin("mcp-server-everything"))
            .arg("streamableHttp")
            .env("PORT", remote_port.to_string()),
        remote_port,
        20 * SEC,
    );
    let servers = json!({"servers": {"everything": {"type": "http", "url": format!("http://127.0.0.1:{remote_port}/mcp"), "auto_start": true}}});
    let port = unshared_port();
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

#[test]
fn kube_export_gives_the_manifests_with_secrets_as_references_only() {
    let dir = TempDir::new("kube-export");
    let servers = json!({"servers": {
        "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
                   "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_exported_secret_1"}},
        "remote": {"type": "http", "url": "https://example.com/mcp", "headers": {"Authorization": "Bearer exported_secret_2"}}}});
    dir.write("mcp-servers.json", &servers.to_string());
    let out = hub_command(dir.path())
        .args(["kube", "export", "--image", "registry.example/agenthub:1", "--config-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let yaml = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{yaml}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!yaml.contains("exported_secret"), "never a value:\n{yaml}");
    // Valid YAML, four documents; the ConfigMap's servers file is valid JSON that names the
    // variables the Deployment takes from the Secret.
    let script = "import sys, yaml, json\n\
        docs = [d for d in yaml.safe_load_all(sys.stdin) if d]\n\
        kinds = [d['kind'] for d in docs]\n\
        cm = next(d for d in docs if d['kind'] == 'ConfigMap')\n\
        servers = json.loads(cm['data']['mcp-servers.json'])\n\
        dep = next(d for d in docs if d['kind'] == 'Deployment')\n\
        env = dep['spec']['template']['spec']['containers'][0]['env']\n\
        refs = {e['name']: e['valueFrom']['secretKeyRef'] for e in env if 'valueFrom' in e}\n\
        print(json.dumps({'kinds': kinds, 'servers': servers, 'refs': refs, 'image': dep['spec']['template']['spec']['containers'][0]['image']}))";
    let mut py = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    py.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
    let parsed = py.wait_with_output().unwrap();
    let seen: Value = serde_json::from_slice(&parsed.stdout).unwrap_or_else(|e| panic!("{e}: {yaml}"));
    assert_eq!(seen["kinds"], json!(["ConfigMap", "Deployment", "Service"]), "{seen}");
    assert_eq!(seen["image"], "registry.example/agenthub:1");
    let var = "AGENTHUB_S_GITHUB_ENV_GITHUB_PERSONAL_ACCESS_TOKEN";
    assert_eq!(
        seen["servers"]["servers"]["github"]["env"]["GITHUB_PERSONAL_ACCESS_TOKEN"],
        format!("${{{var}}}"),
        "{seen}"
    );
    assert_eq!(
        seen["refs"][var],
        json!({"name": "agenthub-servers", "key": "github.env.GITHUB_PERSONAL_ACCESS_TOKEN"}),
        "{seen}"
    );
    assert_eq!(seen["refs"]["AGENTHUB_TOKEN"], json!({"name": "agenthub", "key": "token"}), "{seen}");
    assert!(seen["refs"]["AGENTHUB_S_REMOTE_HEADERS_AUTHORIZATION"].is_object(), "{seen}");
    assert!(
        yaml.contains("--from-literal=github.env.GITHUB_PERSONAL_ACCESS_TOKEN=..."),
        "how to make the Secret: {yaml}"
    );
}
