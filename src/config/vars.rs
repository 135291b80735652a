//! What a server's text may refer to, resolved when it starts: `${VAR}` / `${env:VAR}` from the
//! environment, VS Code's `${workspaceFolder}`, `${userHome}`, `${pathSeparator}` and
//! `${input:id}` (which the hub cannot prompt for: `AGENTHUB_INPUT_<ID>`, else the input's
//! `default`), and `envFile` in dotenv syntax. A missing one is named with how to provide it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a server was configured: what its file-relative references resolve against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    /// The directory of the file (relative `envFile` paths).
    pub base_dir: Option<PathBuf>,
    /// `${workspaceFolder}`.
    pub workspace: Option<PathBuf>,
    /// The file's VS Code `inputs`: id → its `default`.
    pub inputs: BTreeMap<String, Option<String>>,
}

impl Scope {
    /// The scope of a servers file at `path`: its directory, and for a file in a `.vscode`
    /// folder the folder above as the workspace, unless `workspace` (the setting) names one.
    pub fn of_file(path: &Path, workspace: Option<&Path>) -> Scope {
        let base_dir = path.parent().map(Path::to_path_buf);
        let in_vscode = base_dir.as_deref().filter(|d| d.file_name().is_some_and(|n| n == ".vscode"));
        let workspace = workspace
            .map(Path::to_path_buf)
            .or_else(|| in_vscode.and_then(Path::parent).map(Path::to_path_buf));
        Scope { base_dir, workspace, inputs: BTreeMap::new() }
    }
}

/// The variable `${input:id}` is read from.
pub fn input_var(id: &str) -> String {
    let id: String = id.chars().map(|c| if c == '-' { '_' } else { c.to_ascii_uppercase() }).collect();
    format!("AGENTHUB_INPUT_{id}")
}

/// What `${name}` stands for, or what is missing and how to provide it.
pub fn lookup(name: &str, env: &dyn Fn(&str) -> Option<String>, scope: &Scope) -> Result<String, String> {
    if let Some(id) = name.strip_prefix("input:") {
        let var = input_var(id);
        if let Some(v) = env(&var) {
            return Ok(v);
        }
        return match scope.inputs.get(id) {
            Some(Some(default)) => Ok(default.clone()),
            Some(None) => Err(format!(
                "input \"{id}\" (the hub cannot prompt for it: set {var}, or give the input a \"default\")"
            )),
            None => Err(format!("input \"{id}\" (not declared in \"inputs\"; set {var})")),
        };
    }
    match name {
        "workspaceFolder" => scope.workspace.as_ref().map(|w| w.display().to_string()).ok_or_else(|| {
            "${workspaceFolder} (the file is not in a .vscode folder: set --workspace or AGENTHUB_WORKSPACE)"
                .to_string()
        }),
        "userHome" => env("HOME").ok_or_else(|| "${userHome} (HOME is not set)".to_string()),
        "pathSeparator" | "/" => Ok("/".to_string()),
        _ => {
            let var = name.strip_prefix("env:").unwrap_or(name);
            env(var).ok_or_else(|| format!("environment variable {var}"))
        }
    }
}

/// Replaces `${NAME}` using `lookup`; an unknown name expands to "" (the caller records it).
/// Text without a closing brace is kept as it is.
pub fn expand(text: &str, lookup: &mut dyn FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                out.push_str(&lookup(&after[..end]).unwrap_or_default());
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// A dotenv file: `KEY=value` lines, `export ` allowed, `#` comments, values bare (a ` #`
/// ends them), in double quotes (`\n`, `\"`, `\\` escapes) or in single quotes (as written).
pub fn parse_dotenv(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.strip_prefix('\u{feff}').unwrap_or(text).lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {}: expected KEY=value", n + 1));
        };
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.') {
            return Err(format!("line {}: \"{key}\" is not a variable name", n + 1));
        }
        let value = value.trim();
        let value = if let Some(q) = value.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.chars();
            loop {
                match chars.next() {
                    None => return Err(format!("line {}: unclosed \"", n + 1)),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('n') => v.push('\n'),
                        Some('t') => v.push('\t'),
                        Some(c) => v.push(c),
                        None => return Err(format!("line {}: unclosed \"", n + 1)),
                    },
                    Some(c) => v.push(c),
                }
            }
            v
        } else if let Some(q) = value.strip_prefix('\'') {
            match q.find('\'') {
                Some(end) => q[..end].to_string(),
                None => return Err(format!("line {}: unclosed '", n + 1)),
            }
        } else {
            value.split(" #").next().unwrap_or("").trim_end().to_string()
        };
        out.push((key.to_string(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env_of;

    #[test]
    fn dotenv_files() {
        fn check(text: &str, expected: Result<&[(&str, &str)], &str>) {
            let want = expected
                .map(|p| p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>())
                .map_err(str::to_string);
            assert_eq!(parse_dotenv(text), want, "{text:?}");
        }
        check("", Ok(&[]));
        check(
            "# c\n\nA=1\nexport B = two words \nC=x # note",
            Ok(&[("A", "1"), ("B", "two words"), ("C", "x")]),
        );
        check(
            "T=\"a \\\"q\\\"\\nb\" # c\nS='${NOT} # kept'",
            Ok(&[("T", "a \"q\"\nb"), ("S", "${NOT} # kept")]),
        );
        check("URL=http://h/?a=b#frag", Ok(&[("URL", "http://h/?a=b#frag")]));
        check("\u{feff}K=v\r\n", Ok(&[("K", "v")]));
        check("A=1\njust words", Err("line 2: expected KEY=value"));
        check("A B=1", Err("line 1: \"A B\" is not a variable name"));
        check("A=\"open", Err("line 1: unclosed \""));
    }

    #[test]
    fn vscode_variables() {
        let scope = Scope {
            base_dir: None,
            workspace: Some("/w".into()),
            inputs: [("gh-token".to_string(), None), ("region".to_string(), Some("eu".to_string()))].into(),
        };
        let env = env_of(&[("HOME", "/home/u"), ("AGENTHUB_INPUT_GH_TOKEN", "t1"), ("X", "x")]);
        let check = |name: &str, expected: Result<&str, &str>| {
            assert_eq!(
                lookup(name, &env, &scope),
                expected.map(str::to_string).map_err(str::to_string),
                "{name}"
            );
        };
        check("workspaceFolder", Ok("/w"));
        check("userHome", Ok("/home/u"));
        check("pathSeparator", Ok("/"));
        check("input:gh-token", Ok("t1"));
        check("input:region", Ok("eu"));
        check("env:X", Ok("x"));
        check("X", Ok("x"));
        check("Y", Err("environment variable Y"));
        check("input:other", Err("input \"other\" (not declared in \"inputs\"; set AGENTHUB_INPUT_OTHER)"));
        let none = Scope { inputs: [("api-key".to_string(), None)].into(), ..Scope::default() };
        assert_eq!(
            lookup("input:api-key", &env, &none),
            Err("input \"api-key\" (the hub cannot prompt for it: set AGENTHUB_INPUT_API_KEY, or give the input a \"default\")".into())
        );
        assert!(lookup("workspaceFolder", &env, &none).unwrap_err().contains("AGENTHUB_WORKSPACE"));
        assert_eq!(
            Scope::of_file(Path::new("/p/proj/.vscode/mcp.json"), None).workspace,
            Some(PathBuf::from("/p/proj"))
        );
        assert_eq!(Scope::of_file(Path::new("/p/c.json"), None).workspace, None);
        assert_eq!(
            Scope::of_file(Path::new("/p/c.json"), Some(Path::new("/w"))).workspace,
            Some("/w".into())
        );
    }
}
