//! `agenthub kube export`: Kubernetes manifests for this configuration, ready for `kubectl
//! apply -f -`. The servers (the hub's own file and the imported one, as `check-config` reads
//! them) go into the ConfigMap in the hub's shape; every value that is a secret there (each
//! `env` and `headers` value, a secret-looking argument, a URL with credentials, an OAuth
//! client's secret) becomes a
//! `${AGENTHUB_S_...}` reference that the Deployment fills from the Secret `agenthub-servers`,
//! and the comment on top says how to create it — never a value. The rest is
//! `deploy/kubernetes/agenthub.yaml` as shipped.

use std::collections::HashMap;
use std::process::ExitCode;

use serde_json::{Map, Value, json};

use crate::config::{self, Document, Settings, mask_args, mask_url};

/// The manifest every export starts from.
const MANIFEST: &str = include_str!("../deploy/kubernetes/agenthub.yaml");
/// The Secret the servers' secrets are read from.
const SECRET: &str = "agenthub-servers";

/// One secret the manifests refer to: the variable the ConfigMap names, the Secret's key.
struct Ref {
    var: String,
    key: String,
}

/// `agenthub kube export [--image IMAGE]`.
pub fn command(
    args: &[String],
    flags: &HashMap<&'static str, String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> ExitCode {
    let mut image = None;
    let mut flags = flags.clone();
    let mut rest = args.iter().skip(1);
    let exporting = args.first().map(String::as_str) == Some("export");
    while let Some(a) = rest.next() {
        // The hub's own flags (`--config-dir`, `--servers-file`, ...) say which configuration.
        let setting = config::SETTINGS.iter().find(|s| s.flag == Some(a.as_str()));
        match (a.as_str(), rest.next(), setting) {
            ("--image", Some(v), _) => image = Some(v.clone()),
            (_, Some(v), Some(s)) => {
                flags.insert(s.env, v.clone());
            }
            _ => return usage(),
        }
    }
    if !exporting {
        return usage();
    }
    let settings = match Settings::resolve(&flags, env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("agenthub: {e}");
            return ExitCode::from(2);
        }
    };
    let loaded = match config::load(&settings, env) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("invalid: {e}");
            return ExitCode::FAILURE;
        }
    };
    let servers: Vec<(String, config::ServerConfig)> =
        loaded.servers.iter().map(|s| (s.display_name.clone(), s.config.clone())).collect();
    let file = Document::empty(loaded.document.scope.clone()).render(&servers);
    print!("{}", export(&file, image.as_deref()));
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: agenthub kube export [--image IMAGE]   (the manifests for this configuration, on stdout)"
    );
    ExitCode::from(2)
}

/// The manifests for a servers file in the hub's shape.
pub fn export(file: &Value, image: Option<&str>) -> String {
    let mut refs = Vec::new();
    let mut servers = Map::new();
    for (name, server) in file.get("servers").and_then(Value::as_object).into_iter().flatten() {
        servers.insert(name.clone(), referenced(name, server.clone(), &mut refs));
    }
    let data = serde_json::to_string_pretty(&json!({"servers": servers})).unwrap_or_default();
    let data: String = data.lines().map(|l| format!("    {l}\n")).collect();
    let mut yaml = MANIFEST.replace("    {\"servers\": {}}\n", &data);
    if let Some(image) = image {
        yaml = yaml.replace("image: localhost/agenthub:slim", &format!("image: {image}"));
    }
    let env: String = refs
        .iter()
        .map(|r| {
            format!(
                "            - name: {}\n              valueFrom:\n                secretKeyRef: {{name: {SECRET}, key: {}}}\n",
                r.var, r.key
            )
        })
        .collect();
    yaml = yaml.replace("          ports:\n", &format!("{env}          ports:\n"));
    let mut head = String::from("# Exported by `agenthub kube export` from this hub's configuration.\n");
    if !refs.is_empty() {
        head.push_str(
            "# The servers' secrets are read from the Secret \"agenthub-servers\"; create it first:\n",
        );
        head.push_str(&format!("#   kubectl create secret generic {SECRET} \\\n"));
        for (i, r) in refs.iter().enumerate() {
            let end = if i + 1 == refs.len() { "" } else { " \\" };
            head.push_str(&format!("#     --from-literal={}=...{end}\n", r.key));
        }
    }
    head + &yaml
}

/// A server's entry with each secret value replaced by a reference to a variable, noted in
/// `refs`.
fn referenced(server: &str, mut entry: Value, refs: &mut Vec<Ref>) -> Value {
    let mut refer = |what: &str| -> String {
        let key: String = format!("{server}.{what}")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || "-._".contains(c) { c } else { '_' })
            .collect();
        let var: String = format!("AGENTHUB_S_{key}")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
            .collect();
        refs.push(Ref { var: var.clone(), key });
        format!("${{{var}}}")
    };
    for field in ["env", "headers"] {
        if let Some(map) = entry.get_mut(field).and_then(Value::as_object_mut) {
            for (k, v) in map.iter_mut() {
                *v = json!(refer(&format!("{field}.{k}")));
            }
        }
    }
    if let Some(args) = entry.get("args").and_then(Value::as_array).cloned() {
        let plain: Vec<String> = args.iter().map(|a| a.as_str().unwrap_or("").to_string()).collect();
        let masked = mask_args(&plain);
        let args: Vec<Value> = plain
            .iter()
            .zip(&masked)
            .enumerate()
            .map(|(i, (a, m))| if a == m { json!(a) } else { json!(refer(&format!("args.{i}"))) })
            .collect();
        entry["args"] = json!(args);
    }
    // A pre-registered OAuth client's secret (its id is no secret).
    if let Some(secret) = entry.pointer_mut("/oauth/client_secret") {
        *secret = json!(refer("oauth.client_secret"));
    }
    if let Some(url) = entry.get("url").and_then(Value::as_str).map(str::to_string) {
        if mask_url(&url) != url {
            entry["url"] = json!(refer("url"));
        }
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_become_references_to_a_secret_and_never_appear() {
        let file = json!({"servers": {
            "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github", "--token", "ghp_s3kr1t1"],
                       "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_s3kr1t2"}},
            "remote": {"type": "http", "url": "https://user:pw-s3kr1t3@example.com/mcp", "headers": {"Authorization": "Bearer s3kr1t4"}},
            "signed": {"type": "http", "url": "https://example.com/mcp", "oauth": {"client_id": "hub", "client_secret": "s3kr1t5"}},
            "plain": {"command": "mcp-server-memory"}}});
        let yaml = export(&file, Some("registry.example/agenthub:1"));
        assert!(!yaml.contains("s3kr1t"), "{yaml}");
        for needle in [
            "${AGENTHUB_S_GITHUB_ENV_GITHUB_PERSONAL_ACCESS_TOKEN}",
            "${AGENTHUB_S_GITHUB_ARGS_3}",
            "${AGENTHUB_S_REMOTE_URL}",
            "${AGENTHUB_S_REMOTE_HEADERS_AUTHORIZATION}",
            "${AGENTHUB_S_SIGNED_OAUTH_CLIENT_SECRET}",
            "secretKeyRef: {name: agenthub-servers, key: github.env.GITHUB_PERSONAL_ACCESS_TOKEN}",
            "--from-literal=remote.headers.Authorization=...",
            "image: registry.example/agenthub:1",
            "\"mcp-server-memory\"",
            "kind: Deployment",
            "secretKeyRef: {name: agenthub, key: token}",
        ] {
            assert!(yaml.contains(needle), "lacks {needle}:\n{yaml}");
        }
        assert!(yaml.contains("\"--token\""), "a flag stays, its value goes: {yaml}");
    }
}
