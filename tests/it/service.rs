//! Installing the hub: `make install` (the binary and its mode), and `agenthub service
//! install|status|uninstall` with HOME and XDG_CONFIG_HOME in a temp folder and PATH holding
//! either nothing (no systemctl: the command to run is printed) or a fake `systemctl` that
//! records what it is asked. The launchd plist, rendered here on Linux, is read by Python's
//! plistlib as launchd would read it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::*;

const TOKEN: &str = "service-test-token-0123456789";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `agenthub service ARGS` with HOME at `home` and PATH at `home/bin` only: status, stdout+stderr.
fn service(home: &Path, args: &[&str]) -> (i32, String) {
    let bin = home.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let mut cmd = hub_command(home);
    let out = cmd.arg("service").args(args).env("PATH", &bin).env("AGENTHUB_TOKEN", TOKEN).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn unit_path(home: &Path) -> PathBuf {
    home.join("xdg-config/systemd/user/agenthub.service")
}

/// A `systemctl` on PATH that appends its arguments to `systemctl.log` and says `active`.
fn fake_systemctl(home: &Path) -> PathBuf {
    let bin = home.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = home.join("systemctl.log");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> '{}'\ncase \"$*\" in *is-active*) echo active;; esac\nexit 0\n",
        log.display()
    );
    let path = bin.join("systemctl");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    log
}

#[test]
fn make_install_puts_the_binary_under_prefix_with_mode_0755() {
    let dir = TempDir::new("make-install");
    let prefix = dir.path().join("prefix");
    let make = |target: &str| {
        let out = Command::new("make")
            .current_dir(root())
            .args(["-s", target, &format!("PREFIX={}", prefix.display()), &format!("BIN={BIN}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "make {target}: {}", String::from_utf8_lossy(&out.stderr));
    };
    make("install");
    let installed = prefix.join("bin/agenthub");
    let mode = std::fs::metadata(&installed).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755, "{}", installed.display());
    assert_eq!(std::fs::read(&installed).unwrap(), std::fs::read(BIN).unwrap());
    let out = Command::new(&installed).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("agenthub "));
    make("uninstall");
    assert!(!installed.exists());
}

#[test]
fn without_systemctl_install_writes_the_unit_and_prints_the_command() {
    let home = TempDir::new("service-plain");
    let port = free_port().to_string();
    let (code, out) = service(home.path(), &["install", "--", "--port", &port, "--config-dir", "conf"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("systemctl --user daemon-reload && systemctl --user enable --now agenthub"),
        "the command to run: {out}"
    );
    assert!(out.contains("AGENTHUB_TOKEN is not written into the unit"), "{out}");
    assert!(out.contains("build folder") && out.contains("make install"), "{out}");
    let path = unit_path(home.path());
    let unit = std::fs::read_to_string(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart");
    let words: Vec<&str> = exec.split(' ').collect();
    let program = Path::new(words[0]);
    assert!(program.is_absolute() && program.is_file(), "{exec}");
    assert_eq!(program, Path::new(BIN).canonicalize().unwrap());
    let conf = std::env::current_dir().unwrap().join("conf");
    assert_eq!(words[1..], ["serve", "--port", &port, "--config-dir", &conf.display().to_string()]);
    for line in
        ["Restart=on-failure", "WantedBy=default.target", "EnvironmentFile=-%h/xdg-config/agenthub/env"]
    {
        assert!(unit.lines().any(|l| l == line), "{line}:\n{unit}");
    }
    // hub_command sets these: non-secret settings of the environment go along.
    assert!(unit.contains("Environment=AGENTHUB_LOG_LEVEL=debug"), "{unit}");
    assert!(!unit.contains(TOKEN), "the token in the unit:\n{unit}");

    // The same again: unchanged; the secrets file, when there is one, is checked for its mode.
    let secrets = home.path().join("xdg-config/agenthub/env");
    std::fs::create_dir_all(secrets.parent().unwrap()).unwrap();
    std::fs::write(&secrets, format!("AGENTHUB_TOKEN={TOKEN}\n")).unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out) = service(home.path(), &["install", "--", "--port", &port, "--config-dir", "conf"]);
    assert!(code == 0 && out.contains("unchanged"), "{out}");
    assert!(out.contains("is readable by others (mode 644): chmod 600"), "{out}");
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (_, out) = service(home.path(), &["install", "--", "--port", &port, "--config-dir", "conf"]);
    assert!(out.contains(&format!("secrets: read from {} (mode 0600)", secrets.display())), "{out}");
    // Other flags: refused, the file kept, the difference shown.
    let (code, out) = service(home.path(), &["install", "--", "--port", "1"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("--force") && out.contains("  + ExecStart=") && out.contains("  - ExecStart="),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), unit);
    let (code, out) = service(home.path(), &["install", "--force", "--", "--port", "1"]);
    assert_eq!(code, 0, "{out}");
    assert!(std::fs::read_to_string(&path).unwrap().contains(" serve --port 1\n"));
    let (code, out) = service(home.path(), &["frobnicate"]);
    assert!(code == 2 && out.contains("usage: agenthub service install"), "{out}");
    let (code, out) = service(home.path(), &["install", "--", "--token", "x"]);
    assert!(code == 1 && out.contains("'--token' is not a flag of serve"), "{out}");

    // Status without systemctl, nothing listening; then uninstall.
    let (code, out) = service(home.path(), &["status"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("exists") && out.contains("service: unknown") && out.contains("no answer"), "{out}");
    let (code, out) = service(home.path(), &["uninstall"]);
    assert!(code == 0 && out.contains("removed"), "{out}");
    assert!(!path.exists());
    let (code, out) = service(home.path(), &["status"]);
    assert!(code == 1 && out.contains("not installed"), "{out}");
}

#[test]
fn with_systemctl_install_enables_it_status_sees_the_hub_and_uninstall_disables() {
    let hub = Hub::builder().servers(NO_SERVERS).start();
    let port = hub.addr.rsplit(':').next().unwrap().to_string();
    let home = TempDir::new("service-systemctl");
    let log = fake_systemctl(home.path());
    let (code, out) = service(home.path(), &["install", "--", "--port", &port]);
    assert!(code == 0 && out.contains("enabled and started"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "--user daemon-reload\n--user enable --now agenthub\n",
        "{out}"
    );
    let (code, out) = service(home.path(), &["status"]);
    assert_eq!(code, 0, "{out}");
    for needle in [
        "installed: ".to_string(),
        format!("binary: {} exists", Path::new(BIN).canonicalize().unwrap().display()),
        "service: active".to_string(),
        format!("hub: http://127.0.0.1:{port}/health answered 200 (ok)"),
    ] {
        assert!(out.contains(&needle), "{needle}: {out}");
    }
    // A changed unit replaces the running one: restarted if it runs, then enabled.
    std::fs::write(&log, "").unwrap();
    let (code, out) = service(home.path(), &["install", "--force"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "--user daemon-reload\n--user try-restart agenthub\n--user enable --now agenthub\n"
    );
    std::fs::write(&log, "").unwrap();
    let (code, out) = service(home.path(), &["uninstall"]);
    assert!(code == 0 && out.contains("disabled and stopped"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "--user disable --now agenthub\n--user daemon-reload\n"
    );
    assert!(!unit_path(home.path()).exists());
}

#[test]
fn a_unit_someone_else_wrote_is_neither_replaced_nor_removed_without_force() {
    let home = TempDir::new("service-theirs");
    let path = unit_path(home.path());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "[Service]\nExecStart=/usr/bin/theirs\n").unwrap();
    let (code, out) = service(home.path(), &["install"]);
    assert!(code == 1 && out.contains("  - ExecStart=/usr/bin/theirs"), "{out}");
    let (code, out) = service(home.path(), &["uninstall"]);
    assert!(code == 1 && out.contains("--force"), "{out}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "[Service]\nExecStart=/usr/bin/theirs\n");
}

#[test]
fn the_launchd_plist_is_a_valid_plist_running_this_binary_with_no_secrets() {
    let program = Path::new(BIN).canonicalize().unwrap();
    let env = |k: &str| match k {
        "AGENTHUB_TOKEN" => Some(TOKEN.to_string()),
        "AGENTHUB_LOG_LEVEL" => Some("debug".to_string()),
        "OLLAMA_URL" => Some("http://127.0.0.1:11434/?a=<&>".to_string()),
        _ => None,
    };
    let flags: Vec<String> = ["--port", "9191"].iter().map(|s| s.to_string()).collect();
    let spec = agenthub::ServiceSpec::serve(program.clone(), &flags, &env).unwrap();
    let plist = agenthub::launchd_plist(&spec, Path::new("/Users/u/Library/Logs/agenthub.log"));
    assert!(!plist.contains(TOKEN), "{plist}");
    let dir = TempDir::new("plist");
    let file = dir.write("dev.agenthub.plist", &plist);
    let out = Command::new("/usr/bin/python3")
        .args(["-c", "import json, plistlib, sys; print(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "plistlib: {}\n{plist}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["Label"], "dev.agenthub");
    let args = doc["ProgramArguments"].as_array().unwrap();
    assert_eq!(args[0], program.display().to_string());
    assert!(Path::new(args[0].as_str().unwrap()).is_absolute());
    assert_eq!(args[1..], ["serve", "--port", "9191"]);
    assert_eq!(doc["RunAtLoad"], true);
    assert_eq!(doc["KeepAlive"], true);
    assert_eq!(doc["StandardOutPath"], "/Users/u/Library/Logs/agenthub.log");
    assert_eq!(doc["StandardErrorPath"], "/Users/u/Library/Logs/agenthub.log");
    assert_eq!(doc["EnvironmentVariables"]["AGENTHUB_LOG_LEVEL"], "debug");
    assert_eq!(doc["EnvironmentVariables"]["OLLAMA_URL"], "http://127.0.0.1:11434/?a=<&>");
    assert!(doc["EnvironmentVariables"].get("AGENTHUB_TOKEN").is_none());
}
