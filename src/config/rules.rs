//! Enhancement rules: how prompts from each client are rewritten, a default rule plus per-client
//! rules that inherit what they leave out.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{Fields, parse_json};
use crate::error::{Error, Result};

/// How prompts from one client are rewritten.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub model: String,
    pub system_prompt: String,
    pub enabled: bool,
    pub options: Map<String, Value>,
}

/// The default rule and per-client rules; a client rule inherits what it leaves out.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub default: Rule,
    /// Keys are lower case: client names match case-insensitively.
    pub clients: BTreeMap<String, Rule>,
    /// `client_names`: what clients call themselves (`clientInfo.name`, lower case) → the rule
    /// name (`Visual Studio Code` → `vscode`): the client table's, then the file's own.
    pub names: BTreeMap<String, String>,
}

impl Rules {
    /// The rule name a client goes by: `X-Client-Name` when sent, else its `clientInfo.name`,
    /// either mapped through `client_names` (so the shim's default, the client's own name,
    /// maps too).
    pub fn client_name(&self, header: Option<&str>, client_info: Option<&str>) -> Option<String> {
        let name = header.or(client_info).map(str::trim).filter(|n| !n.is_empty())?;
        let lower = name.to_ascii_lowercase();
        Some(self.names.get(&lower).cloned().unwrap_or(lower))
    }

    /// The rule for a client name and the name it matched under (`default` when none did).
    pub fn for_client(&self, client: Option<&str>) -> (&str, &Rule) {
        if let Some(c) = client {
            let lower = c.trim().to_ascii_lowercase();
            let lower = self.names.get(&lower).unwrap_or(&lower);
            if let Some((name, rule)) = self.clients.get_key_value(lower) {
                return (name, rule);
            }
        }
        ("default", &self.default)
    }
}

pub fn parse_rules(text: &str, file: &str) -> Result<Rules> {
    let root = parse_json(text, file)?;
    let top = Fields::new(&root, file, "$")?;
    let Some(default) = top.get("default") else {
        return Err(Error::Config(format!(
            "{file}: default: missing (the rule used for every client without one)"
        )));
    };
    let base =
        Rule { model: String::new(), system_prompt: String::new(), enabled: true, options: Map::new() };
    let default = parse_rule(default, &base, file, "default")?;
    if default.model.trim().is_empty() {
        return Err(Error::Config(format!("{file}: default.model: missing")));
    }
    let mut clients = BTreeMap::new();
    match top.get("clients") {
        None => {}
        Some(Value::Object(m)) => {
            for (name, v) in m {
                let rule = parse_rule(v, &default, file, &format!("clients.{name}"))?;
                clients.insert(name.to_ascii_lowercase(), rule);
            }
        }
        Some(_) => return Err(top.err("clients", "expected an object of rules by client name")),
    }
    // The names real clients send are facts the hub ships (the client table); the file's own
    // entries add to them and win.
    let mut names: BTreeMap<String, String> = crate::clients::RECIPES
        .iter()
        .flat_map(|r| r.client_info.iter().map(|n| (n.to_ascii_lowercase(), r.id.to_string())))
        .collect();
    match top.get("client_names") {
        None => {}
        Some(Value::Object(m)) => {
            for (name, v) in m {
                let Some(rule) = v.as_str() else {
                    return Err(top.err(&format!("client_names.{name}"), "expected a rule name"));
                };
                names.insert(name.to_ascii_lowercase(), rule.to_ascii_lowercase());
            }
        }
        Some(_) => {
            return Err(top.err("client_names", "expected an object of rule names by clientInfo.name"));
        }
    }
    Ok(Rules { default, clients, names })
}

fn parse_rule(value: &Value, base: &Rule, file: &str, at: &str) -> Result<Rule> {
    let f = Fields::new(value, file, at)?;
    let options = match f.get("options") {
        None => base.options.clone(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(f.err("options", "expected an object (temperature, ...)")),
    };
    Ok(Rule {
        model: f.str("model")?.unwrap_or_else(|| base.model.clone()),
        system_prompt: f.str("system_prompt")?.unwrap_or_else(|| base.system_prompt.clone()),
        enabled: f.bool("enabled")?.unwrap_or(base.enabled),
        options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_inherit_from_default_and_match_case_insensitively() {
        let r = parse_rules(r#"{"default": {"model": "m1", "system_prompt": "s", "options": {"temperature": 0.2}}, "clients": {"VSCode": {"system_prompt": "code"}, "off": {"enabled": false}}}"#, "r.json").unwrap();
        let (name, rule) = r.for_client(Some("vscode"));
        assert_eq!((name, rule.model.as_str(), rule.system_prompt.as_str()), ("vscode", "m1", "code"));
        assert_eq!(rule.options["temperature"], 0.2);
        assert!(!r.for_client(Some("OFF")).1.enabled);
        assert_eq!(r.for_client(Some("unknown")).0, "default");
        assert_eq!(r.for_client(None).0, "default");
        let r = parse_rules(
            r#"{"default": {"model": "m"}, "client_names": {"Visual Studio Code": "VSCode", "claude-ai": "claude-desktop"}}"#,
            "r.json",
        )
        .unwrap();
        let check = |header: Option<&str>, info: Option<&str>, expected: Option<&str>| {
            assert_eq!(r.client_name(header, info).as_deref(), expected, "{header:?} {info:?}");
        };
        check(None, Some("Visual Studio Code"), Some("vscode"));
        check(None, Some("CLAUDE-AI"), Some("claude-desktop"));
        check(Some("raycast"), Some("Visual Studio Code"), Some("raycast"));
        check(Some(" claude-ai "), None, Some("claude-desktop"));
        check(None, Some("unknown-client"), Some("unknown-client"));
        check(Some(" "), None, None);
        // A file without `client_names` keeps the names the hub ships; its own entries win.
        let bare = parse_rules(r#"{"default": {"model": "m"}}"#, "r.json").unwrap();
        assert_eq!(bare.client_name(None, Some("cursor-vscode")).as_deref(), Some("cursor"));
        assert_eq!(bare.client_name(None, Some("Visual Studio Code")).as_deref(), Some("vscode"));
        let own = parse_rules(
            r#"{"default": {"model": "m"}, "client_names": {"cursor-vscode": "mine"}}"#,
            "r.json",
        )
        .unwrap();
        assert_eq!(own.client_name(None, Some("cursor-vscode")).as_deref(), Some("mine"));
        assert_eq!(own.client_name(None, Some("claude-ai")).as_deref(), Some("claude-desktop"));
        let e =
            parse_rules(r#"{"default": {"model": "m"}, "client_names": {"x": 1}}"#, "r.json").unwrap_err();
        assert!(e.to_string().contains("client_names.x"), "{e}");
        let e = parse_rules(r#"{"clients": {}}"#, "r.json").unwrap_err().to_string();
        assert!(e.contains("r.json: default"), "{e}");
        let e = parse_rules(r#"{"default": {"model": "m", "enabled": "yes"}}"#, "r.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("default.enabled"), "{e}");
    }
}
