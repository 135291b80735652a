//! A servers file, in any of the three shapes: the hub's own (`servers`), Claude Desktop's and
//! Cursor's (`mcpServers`), VS Code's (`servers` with `type`, and `inputs`), JSONC allowed.
//! `read` turns it into entries, one per server, a bad one loaded with its problem so it never
//! stops the others; names are derived where needed (`names`). `Document` keeps the file as it
//! was read, so that a save writes back its shape, every key the hub does not know, and the
//! key order, changing only what was changed.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::servers::{ServerConfig, ServerEntry};
use super::vars::Scope;
use super::{jsonc, names, parse_json};
use crate::error::{Error, Result};

/// One server object as read, and the configuration it was read as.
#[derive(Debug, Clone)]
struct Read {
    /// The name as written (the key in the file).
    written: String,
    raw: Value,
    /// None: it did not parse (the entry loaded FAILED with a placeholder configuration).
    config: Option<ServerConfig>,
}

/// A servers file as read (or as last saved): what a save starts from.
#[derive(Debug, Clone)]
pub struct Document {
    root: Map<String, Value>,
    /// `servers` or `mcpServers`: kept on save.
    key: &'static str,
    read: Vec<Read>,
    /// Comments cannot be written back: a save drops them.
    pub had_comments: bool,
    /// What servers added to this file resolve against.
    pub scope: Scope,
    /// The SHA-256 of the file as read or last saved; None when there was no file (the
    /// embedded defaults, a file not written yet). A save refuses to overwrite anything else.
    pub on_disk: Option<[u8; 32]>,
}

/// A file's servers, its document, and what is worth a warning.
#[derive(Debug, Clone)]
pub struct FileServers {
    pub document: Document,
    pub entries: Vec<ServerEntry>,
    pub warnings: Vec<String>,
}

impl Document {
    /// A file that does not exist yet: the hub's own shape.
    pub fn empty(scope: Scope) -> Document {
        let mut root = Map::new();
        root.insert("servers".into(), Value::Object(Map::new()));
        Document { root, key: "servers", read: Vec::new(), had_comments: false, scope, on_disk: None }
    }

    /// The names as written of the servers in this document.
    pub fn server_names(&self) -> Vec<String> {
        self.read.iter().map(|r| r.written.clone()).collect()
    }

    /// The file with `servers` ((name as written, configuration), in order) in it: servers
    /// that did not change are written as they were read, changed ones have only their
    /// changed fields rewritten, new ones have only the fields that differ from the defaults.
    pub fn render(&self, servers: &[(String, ServerConfig)]) -> Value {
        let client = self.key == "mcpServers";
        let fresh = ServerConfig { scope: self.scope.clone(), ..ServerConfig::default() };
        let map: Map<String, Value> = servers
            .iter()
            .map(|(written, now)| {
                let value = match self.read.iter().find(|r| &r.written == written) {
                    Some(Read { raw: Value::Object(raw), config: Some(before), .. }) => {
                        merged(raw, before, now, client)
                    }
                    Some(Read { raw, config: None, .. }) if *now == fresh => raw.clone(),
                    _ => merged(&Map::new(), &ServerConfig::default(), now, client),
                };
                (written.clone(), value)
            })
            .collect();
        let mut root = self.root.clone();
        root.insert(self.key.to_string(), Value::Object(map));
        Value::Object(root)
    }

    /// After a save of `root` (from `render`) holding `servers`, written as bytes hashing to
    /// `on_disk`: later saves start from it.
    pub fn saved(&mut self, root: Value, servers: Vec<(String, ServerConfig)>, on_disk: [u8; 32]) {
        self.on_disk = Some(on_disk);
        let raws = root.get(self.key).and_then(Value::as_object).cloned().unwrap_or_default();
        self.read = servers
            .into_iter()
            .map(|(written, config)| Read {
                raw: raws.get(&written).cloned().unwrap_or(Value::Null),
                written,
                config: Some(config),
            })
            .collect();
        if let Value::Object(root) = root {
            self.root = root;
        }
        self.had_comments = false;
    }
}

/// `raw` with the fields that differ between `before` and `now` rewritten, in the spelling
/// the file uses (`type` for `transport`, `disabled` for `enabled` in a client's file).
fn merged(raw: &Map<String, Value>, before: &ServerConfig, now: &ServerConfig, client: bool) -> Value {
    let (Value::Object(old), Value::Object(new)) = (before.to_json(false), now.to_json(false)) else {
        return Value::Object(raw.clone());
    };
    let mut out = raw.clone();
    let keys: Vec<&String> = new.keys().chain(old.keys().filter(|k| !new.contains_key(*k))).collect();
    for key in keys {
        if old.get(key) == new.get(key) {
            continue;
        }
        match (key.as_str(), new.get(key)) {
            ("transport", Some(v)) => {
                let spelled = if raw.contains_key("transport") || !(client || raw.contains_key("type")) {
                    "transport"
                } else {
                    "type"
                };
                out.insert(spelled.into(), v.clone());
            }
            ("enabled", Some(v))
                if !raw.contains_key("enabled") && (client || raw.contains_key("disabled")) =>
            {
                out.insert("disabled".into(), Value::Bool(v == &Value::Bool(false)));
            }
            (_, Some(v)) => {
                out.insert(key.clone(), v.clone());
            }
            (_, None) => {
                out.shift_remove(key.as_str());
            }
        }
    }
    Value::Object(out)
}

/// Reads a servers file; `label` names it in messages, `scope` is where it lives.
pub fn read(text: &str, label: &str, mut scope: Scope) -> Result<FileServers> {
    let (json, had_comments) = jsonc::to_json(text);
    let root = parse_json(&json, label)?;
    let Value::Object(obj) = root else {
        return Err(Error::Config(format!("{label}: expected a JSON object at the top")));
    };
    let key = match (obj.get("servers"), obj.get("mcpServers")) {
        (Some(_), None) => "servers",
        (None, Some(_)) => "mcpServers",
        (Some(_), Some(_)) => {
            return Err(Error::Config(format!("{label}: has both \"servers\" and \"mcpServers\"; keep one")));
        }
        (None, None) => {
            return Err(Error::Config(format!(
                "{label}: expected an object with \"servers\" (AgentHub, VS Code) or \"mcpServers\" (Claude Desktop, Cursor)"
            )));
        }
    };
    let Some(servers) = obj.get(key).and_then(Value::as_object) else {
        return Err(Error::Config(format!("{label}: {key}: expected an object of servers by name")));
    };
    let mut warnings = Vec::new();
    scope.inputs = inputs(obj.get("inputs"), label, &mut warnings);
    let mut taken: HashSet<String> = HashSet::new();
    let mut entries = Vec::with_capacity(servers.len());
    let mut read = Vec::with_capacity(servers.len());
    for (written, value) in servers {
        let at = format!("{key}.{written}");
        let (config, mut problem) = match ServerConfig::from_json(value, label, &at) {
            Ok((mut config, w)) => {
                warnings.extend(w);
                config.scope = scope.clone();
                (Some(config), None)
            }
            Err(e) => (None, Some(e.to_string())),
        };
        let derived = names::derive(written);
        let mut name = derived.clone();
        if names::is_reserved(&name) || taken.contains(&name.to_ascii_lowercase()) {
            let mut n = 2;
            while taken.contains(&format!("{derived}-{n}").to_ascii_lowercase()) {
                n += 1;
            }
            name = format!("{derived}-{n}");
            problem.get_or_insert_with(|| {
                if names::is_reserved(&derived) {
                    format!("{label}: {at}: the name \"{written}\" is reserved for the hub's own tools; rename it")
                } else {
                    format!("{label}: {at}: \"{written}\" gives the same name \"{derived}\" as a server before it; rename one of them")
                }
            });
        }
        taken.insert(name.to_ascii_lowercase());
        let placeholder = || ServerConfig { scope: scope.clone(), ..ServerConfig::default() };
        entries.push(ServerEntry {
            name,
            display_name: written.clone(),
            config: config.clone().unwrap_or_else(placeholder),
            origin: label.to_string(),
            problem,
        });
        read.push(Read { written: written.clone(), raw: value.clone(), config });
    }
    let document = Document { root: obj, key, read, had_comments, scope, on_disk: None };
    Ok(FileServers { document, entries, warnings })
}

/// VS Code's `inputs`: id → default. A malformed one is a warning (its `${input:...}` then
/// says it is not declared).
fn inputs(
    value: Option<&Value>,
    label: &str,
    warnings: &mut Vec<String>,
) -> std::collections::BTreeMap<String, Option<String>> {
    let mut out = std::collections::BTreeMap::new();
    let Some(value) = value else { return out };
    let Some(items) = value.as_array() else {
        warnings.push(format!("{label}: inputs: expected an array; ignored"));
        return out;
    };
    for (i, item) in items.iter().enumerate() {
        match item.get("id").and_then(Value::as_str) {
            Some(id) => {
                out.insert(id.to_string(), item.get("default").and_then(Value::as_str).map(str::to_string));
            }
            None => {
                warnings.push(format!("{label}: inputs[{i}]: expected an object with an \"id\"; ignored"))
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Transport;

    fn names_of(f: &FileServers) -> Vec<(&str, &str, Option<&str>)> {
        f.entries.iter().map(|e| (e.name.as_str(), e.display_name.as_str(), e.problem.as_deref())).collect()
    }

    #[test]
    fn reads_all_three_shapes() {
        let claude = r#"{"mcpServers": {"fs": {"command": "npx", "args": ["-y", "x"], "env": {"K": "v"}}, "remote": {"url": "https://r.example/mcp", "headers": {"Authorization": "Bearer t"}}}}"#;
        let f = read(claude, "c.json", Scope::default()).unwrap();
        assert_eq!(f.entries[0].name, "fs");
        assert_eq!(f.entries[0].config.args, ["-y", "x"]);
        assert_eq!(f.entries[1].config.transport, Transport::Url);
        let vscode = "{\"inputs\": [{\"id\": \"key\", \"type\": \"promptString\", \"default\": \"d\"}],\n // c\n \"servers\": {\"gh\": {\"type\": \"http\", \"url\": \"https://api/mcp\",}, \"local\": {\"type\": \"stdio\", \"command\": \"node\", \"args\": [\"s.js\"]}}}";
        let f = read(vscode, "v.json", Scope::default()).unwrap();
        assert_eq!(
            f.entries.iter().map(|e| e.config.transport).collect::<Vec<_>>(),
            [Transport::Http, Transport::Stdio]
        );
        assert_eq!(f.entries[0].config.scope.inputs["key"].as_deref(), Some("d"));
        assert!(f.document.had_comments);
    }

    #[test]
    fn a_bad_server_loads_with_its_problem_and_names_are_derived() {
        let text = r#"{"mcpServers": {
            "Brave Search": {"command": "b"}, "github.com": {"url": "https://g/mcp"},
            "brave-search": {"command": "c"}, "bad": {"command": 5}, "agenthub": {"command": "x"},
            "ok": {"command": "x", "autostart": true}}}"#;
        let f = read(text, "f.json", Scope::default()).unwrap();
        let got = names_of(&f);
        assert_eq!(&got[..2], &[("brave-search", "Brave Search", None), ("github_com", "github.com", None)]);
        assert_eq!((got[2].0, got[2].1), ("brave-search-2", "brave-search"));
        assert!(got[2].2.unwrap().contains("same name \"brave-search\""), "{got:?}");
        assert_eq!(got[3].2, Some("f.json: mcpServers.bad.command: expected a string"));
        assert_eq!(got[4].0, "agenthub-2");
        assert!(got[4].2.unwrap().contains("reserved"), "{got:?}");
        assert_eq!(got[5], ("ok", "ok", None));
        assert_eq!(f.warnings.len(), 1, "{:?}", f.warnings);
        assert!(f.warnings[0].contains("mcpServers.ok.autostart"));
    }

    #[test]
    fn file_level_errors_name_file_and_position() {
        fn check(text: &str, needle: &str) {
            let e = read(text, "f.json", Scope::default()).unwrap_err().to_string();
            assert!(e.contains(needle), "{e:?} lacks {needle:?}");
        }
        check("{\n  \"servers\": {\n    \"a\": {\"command\" \"x\"}\n  }\n}", "f.json:3:");
        check(r#"{"tools": {}}"#, "\"mcpServers\"");
        check(r#"[]"#, "top");
        check(r#"{"servers": [], "x": 1}"#, "servers: expected an object");
        assert!(read("\u{feff}{\"servers\": {}}", "f.json", Scope::default()).is_ok(), "a BOM is fine");
    }

    #[test]
    fn a_save_keeps_shape_unknown_keys_order_and_unchanged_text() {
        let text = r#"{"globalShortcut": "Ctrl+Space", "mcpServers": {
            "z": {"command": "npx", "args": ["-y", "z"], "x-note": {"keep": 1}, "disabled": true},
            "a": {"url": "https://a/mcp", "type": "http", "auto_start": false}}, "after": [1]}"#;
        let f = read(text, "f.json", Scope::default()).unwrap();
        let mut servers: Vec<(String, ServerConfig)> =
            f.entries.iter().map(|e| (e.display_name.clone(), e.config.clone())).collect();
        let unchanged = f.document.render(&servers);
        let original: Value = serde_json::from_str(text).unwrap();
        assert_eq!(unchanged.to_string(), original.to_string(), "unchanged servers are written as read");
        servers[0].1.enabled = true;
        servers[0].1.args.push("--v2".into());
        servers.push(("new one".into(), ServerConfig { command: Some("n".into()), ..Default::default() }));
        let changed = f.document.render(&servers).to_string();
        assert_eq!(
            changed,
            r#"{"globalShortcut":"Ctrl+Space","mcpServers":{"z":{"command":"npx","args":["-y","z","--v2"],"x-note":{"keep":1},"disabled":false},"a":{"url":"https://a/mcp","type":"http","auto_start":false},"new one":{"command":"n"}},"after":[1]}"#
        );
    }
}
