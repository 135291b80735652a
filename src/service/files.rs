//! What a service file says: the `Spec` of what the service runs (`serve`, its flags, the
//! settings that are not secret), rendered as a systemd user unit or a launchd plist (both on
//! every system), and read back from either for `status` (the command line and the address).

use std::path::{Path, PathBuf};

use super::{Env, LABEL, SECRET};
use crate::config::SETTINGS;
use crate::error::{Error, Result};

/// In every file written here: what tells ours from a file someone else wrote.
pub(super) const MARK: &str = "Written by `agenthub service install`";
/// Settings whose values are paths: made absolute, as the service starts in another folder.
const PATHS: &[&str] = &[
    "AGENTHUB_CONFIG_DIR",
    "AGENTHUB_SERVERS_FILE",
    "AGENTHUB_WORKSPACE",
    "AGENTHUB_DATA_DIR",
    "AGENTHUB_VAULT_ROOT",
];

/// What the service runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The binary, by its absolute path.
    pub program: PathBuf,
    /// `serve` and its flags.
    pub args: Vec<String>,
    /// Settings that are not secret (`Environment=`, `EnvironmentVariables`).
    pub env: Vec<(String, String)>,
}

impl Spec {
    /// `program serve FLAGS`: every flag a setting's, path values made absolute; with the
    /// settings in the environment beside them, the token excepted.
    pub fn serve(program: PathBuf, flags: &[String], env: Env) -> Result<Spec> {
        let cwd = std::env::current_dir().map_err(|e| Error::io("reading the current folder", e))?;
        let absolute = |var: &str, v: String| match PATHS.contains(&var) && Path::new(&v).is_relative() {
            true => cwd.join(v).display().to_string(),
            false => v,
        };
        let mut args = vec!["serve".to_string()];
        let mut given = Vec::new();
        let mut i = 0;
        while i < flags.len() {
            let (name, inline) = match flags[i].split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flags[i].as_str(), None),
            };
            let setting = SETTINGS.iter().find(|s| s.flag == Some(name));
            let Some(s) = setting.filter(|_| name.starts_with("--")) else {
                return Err(Error::Config(format!("'{name}' is not a flag of serve (see agenthub --help)")));
            };
            let value = match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    flags.get(i).cloned().ok_or_else(|| Error::Config(format!("{name} needs a value")))?
                }
            };
            i += 1;
            given.push(s.env);
            args.extend([name.to_string(), absolute(s.env, value)]);
        }
        let mut vars = Vec::new();
        for s in SETTINGS.iter().filter(|s| s.env != SECRET && !given.contains(&s.env)) {
            if let Some(v) = env(s.env).filter(|v| !v.trim().is_empty()) {
                vars.push((s.env.to_string(), absolute(s.env, v)));
            }
        }
        for v in args.iter().chain(vars.iter().map(|(_, v)| v)) {
            if v.chars().any(char::is_control) {
                return Err(Error::Config(format!("a value with a control character: {v:?}")));
            }
        }
        Ok(Spec { program, args, env: vars })
    }
}

/// A word of `ExecStart=`: `%` and `$` doubled (specifiers, variables), quoted when needed.
fn exec_word(w: &str) -> String {
    quoted(&w.replace('%', "%%").replace('$', "$$"))
}

fn quoted(w: &str) -> String {
    if !w.is_empty() && !w.chars().any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';')) {
        return w.to_string();
    }
    format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The words of a systemd line as `quoted` wrote them (specifiers still escaped).
fn unquote_words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut in_quotes, mut any) = (Vec::new(), String::new(), false, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => (in_quotes, any) = (!in_quotes, true),
            '\\' if in_quotes => word.extend(chars.next()),
            c if c.is_whitespace() && !in_quotes => {
                if any || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            c => word.push(c),
        }
    }
    if any || !word.is_empty() {
        words.push(word);
    }
    words
}

/// The systemd user unit for `spec`, reading secrets from `env_file` (specifiers allowed:
/// `%h`) when it exists.
pub fn systemd_unit(spec: &Spec, env_file: &str) -> String {
    let exec: Vec<String> =
        std::iter::once(spec.program.display().to_string()).chain(spec.args.iter().cloned()).collect();
    let mut out = format!(
        "# {MARK}; `agenthub service uninstall` removes it.\n[Unit]\nDescription=AgentHub, a local hub for MCP servers\n\n\
         [Service]\nType=exec\nExecStart={}\nRestart=on-failure\nRestartSec=2\n",
        exec.iter().map(|w| exec_word(w)).collect::<Vec<_>>().join(" ")
    );
    for (k, v) in &spec.env {
        out.push_str(&format!("Environment={}\n", quoted(&format!("{k}={v}").replace('%', "%%"))));
    }
    out.push_str(&format!(
        "# Secrets (AGENTHUB_TOKEN=...) go in this file, mode 0600; `-`: it may be absent.\n\
         EnvironmentFile=-{env_file}\n\n[Install]\nWantedBy=default.target\n"
    ));
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The launchd agent for `spec`, logging to `log`.
pub fn launchd_plist(spec: &Spec, log: &Path) -> String {
    let string = |s: &str| format!("<string>{}</string>", xml(s));
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
         \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<!-- {MARK}; `agenthub service uninstall` removes it. -->\n\
         <plist version=\"1.0\">\n<dict>\n  <key>Label</key>\n  {}\n  <key>ProgramArguments</key>\n  <array>\n",
        string(LABEL)
    );
    for a in std::iter::once(spec.program.display().to_string()).chain(spec.args.iter().cloned()) {
        out.push_str(&format!("    {}\n", string(&a)));
    }
    out.push_str("  </array>\n");
    if !spec.env.is_empty() {
        out.push_str("  <key>EnvironmentVariables</key>\n  <dict>\n");
        for (k, v) in &spec.env {
            out.push_str(&format!("    <key>{}</key>\n    {}\n", xml(k), string(v)));
        }
        out.push_str("  </dict>\n");
    }
    let log = string(&log.display().to_string());
    out.push_str(&format!(
        "  <key>RunAtLoad</key>\n  <true/>\n  <key>KeepAlive</key>\n  <true/>\n  <key>StandardOutPath</key>\n  {log}\n  \
         <key>StandardErrorPath</key>\n  {log}\n</dict>\n</plist>\n"
    ));
    out
}

/// The program, arguments and settings a service file holds, read back (`None`: no program).
pub(super) fn read_back(text: &str) -> Option<Spec> {
    if text.starts_with("<?xml") {
        let strings = |block: &str| -> Vec<String> {
            block
                .split("<string>")
                .skip(1)
                .filter_map(|s| s.split_once("</string>"))
                .map(|(s, _)| unxml(s))
                .collect()
        };
        let words = strings(text.split_once("<array>")?.1.split_once("</array>")?.0);
        let vars =
            text.split_once("<key>EnvironmentVariables</key>").and_then(|(_, t)| t.split_once("</dict>"));
        let keys = vars.map(|(v, _)| {
            v.split("<key>").skip(1).filter_map(|s| s.split_once("</key>")).map(|(k, _)| unxml(k)).collect()
        });
        let pairs: Vec<String> = keys.unwrap_or_default();
        let values = vars.map(|(v, _)| strings(v)).unwrap_or_default();
        return spec(words, pairs.into_iter().zip(values).collect());
    }
    let words = text.lines().find_map(|l| l.strip_prefix("ExecStart=")).map(unquote_words)?;
    let words = words.into_iter().map(|w| w.replace("%%", "%").replace("$$", "$")).collect();
    let vars = text.lines().filter_map(|l| l.strip_prefix("Environment=")).flat_map(unquote_words);
    let vars = vars.filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.replace("%%", "%"))));
    spec(words, vars.collect())
}

fn spec(mut words: Vec<String>, env: Vec<(String, String)>) -> Option<Spec> {
    (!words.is_empty()).then(|| Spec { program: PathBuf::from(words.remove(0)), args: words, env })
}

fn unxml(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&")
}

/// Where the service's hub answers: its `--host`/`--port`, else its settings, else the defaults.
pub(super) fn address(args: &[String], vars: &[(String, String)]) -> String {
    let setting = |flag: &str, var: &str| {
        let flagged = args.iter().enumerate().find_map(|(i, a)| match a.strip_prefix(flag) {
            Some("") => args.get(i + 1).cloned(),
            Some(v) => v.strip_prefix('=').map(String::from),
            None => None,
        });
        flagged.or_else(|| vars.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone()))
    };
    let host = match setting("--host", "AGENTHUB_HOST").unwrap_or_default().as_str() {
        "" | "0.0.0.0" | "localhost" => "127.0.0.1".to_string(),
        "::" | "[::]" => "[::1]".to_string(),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        h => h.to_string(),
    };
    format!("http://{host}:{}", setting("--port", "AGENTHUB_PORT").unwrap_or_else(|| "9090".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Spec {
        Spec {
            program: PathBuf::from("/opt/agent hub/agenthub"),
            args: vec!["serve".into(), "--config-dir".into(), "/home/u/100% \"mine\"".into()],
            env: vec![("AGENTHUB_LOG_LEVEL".into(), "debug".into())],
        }
    }

    #[test]
    fn the_unit_quotes_and_escapes_and_reads_back() {
        let unit = systemd_unit(&example(), "%h/.config/agenthub/env");
        assert!(unit.contains(
            "ExecStart=\"/opt/agent hub/agenthub\" serve --config-dir \"/home/u/100%% \\\"mine\\\"\"\n"
        ));
        for line in ["Restart=on-failure", "Environment=AGENTHUB_LOG_LEVEL=debug", "WantedBy=default.target"]
        {
            assert!(unit.lines().any(|l| l == line), "{line}: {unit}");
        }
        assert!(unit.contains("EnvironmentFile=-%h/.config/agenthub/env"));
        assert_eq!(read_back(&unit), Some(example()));
        let plist = launchd_plist(&example(), Path::new("/l"));
        assert_eq!(read_back(&plist), Some(example()));
        assert_eq!(unquote_words("a \"\" b$$"), ["a", "", "b$$"]);
    }

    #[test]
    fn the_status_address_follows_flags_then_settings() {
        fn check(args: &[&str], vars: &[(&str, &str)], expected: &str) {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            let vars: Vec<(String, String)> =
                vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            assert_eq!(address(&args, &vars), expected);
        }
        check(&[], &[], "http://127.0.0.1:9090");
        check(&["--port", "9191"], &[("AGENTHUB_PORT", "1")], "http://127.0.0.1:9191");
        check(&["--port=9292", "--host", "0.0.0.0"], &[], "http://127.0.0.1:9292");
        check(&[], &[("AGENTHUB_HOST", "::1"), ("AGENTHUB_PORT", "7")], "http://[::1]:7");
    }
}
