//! `agenthub connect --write`: the hub's entry merged into a client's own file, in the file's
//! format, as a person would edit it. Only the entry's text changes: every other entry, the
//! comments (JSONC, TOML, YAML), the indentation and the key order stay as they were. The save
//! is atomic (a temp file, fsync, rename), keeps the file's mode, writes through a symlink to its
//! target, and leaves the previous file beside it as `<file>.bak` (written the same way, never
//! through a link planted there).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::clients::{ENTRY, Format, Recipe, toml_table, yaml_item};
use crate::config::jsonc;
use crate::error::{Error, Result};

/// What `--write` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    /// The entry was added or replaced; the previous file is at `.bak`.
    Updated,
    /// The file already held this very entry: nothing written.
    Unchanged,
}

/// The path a recipe's file has on this machine: `~` and `%VAR%` expanded.
pub fn expand(path: &str, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    let mut p = path.to_string();
    if let Some(rest) = p.strip_prefix("~/") {
        p = format!("{}/{rest}", env("HOME").unwrap_or_default());
    }
    while let Some(start) = p.find('%') {
        let Some(len) = p[start + 1..].find('%') else { break };
        let name = p[start + 1..start + 1 + len].to_string();
        p.replace_range(start..start + len + 2, &env(&name).unwrap_or_default());
    }
    PathBuf::from(p)
}

/// Merges `entry` into the file at `path` (created when absent) and saves it.
pub fn write(recipe: &Recipe, path: &Path, entry: &Value) -> Result<Outcome> {
    let old = match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
    };
    let text = merge(recipe, old.as_deref().unwrap_or(""), entry)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    if old.as_deref() == Some(text.as_str()) {
        return Ok(Outcome::Unchanged);
    }
    save(path, text.as_bytes(), old.as_deref())?;
    Ok(if old.is_some() { Outcome::Updated } else { Outcome::Created })
}

/// The file's text with the entry in it.
pub fn merge(recipe: &Recipe, text: &str, entry: &Value) -> std::result::Result<String, String> {
    match recipe.format {
        Format::Json | Format::Jsonc => merge_json(text, recipe.key, entry),
        Format::Toml => merge_toml(text, recipe.key, entry),
        Format::Yaml => merge_yaml(text, recipe.key, entry),
    }
}

/// Whether the file's text already has an entry named `agenthub`.
pub fn connected(recipe: &Recipe, text: &str) -> bool {
    match recipe.format {
        Format::Json | Format::Jsonc => serde_json::from_str::<Value>(&jsonc::to_json(text).0)
            .ok()
            .is_some_and(|v| v.get(recipe.key).and_then(|s| s.get(ENTRY)).is_some()),
        Format::Toml => toml_section(text, recipe.key).is_some() || toml_inline(text, recipe.key),
        Format::Yaml => yaml_block(text, recipe.key).is_some_and(|b| b.entry.is_some()),
    }
}

// ---------------------------------------------------------------------------------------------
// JSON and JSONC: the text is spliced where the entry or its container is, so comments stay.

/// One member of an object in the text: where its key starts and its value's span.
struct Member {
    key: String,
    key_start: usize,
    value: (usize, usize),
}

fn merge_json(text: &str, key: &str, entry: &Value) -> std::result::Result<String, String> {
    let (bom, body) = match text.strip_prefix('\u{feff}') {
        Some(rest) => ("\u{feff}", rest),
        None => ("", text),
    };
    if body.trim().is_empty() {
        let doc = serde_json::json!({ key: { ENTRY: entry } });
        return Ok(format!("{}\n", render(&doc, "  ", "")));
    }
    // Comments blanked, every other byte where it was: spans found here hold in `body`.
    let plain = jsonc::to_json(body).0;
    serde_json::from_str::<Value>(&plain).map_err(|e| format!("not valid JSON: {e}"))?;
    let s = plain.as_bytes();
    let root = skip_ws(s, 0);
    if s.get(root) != Some(&b'{') {
        return Err("the file is not a JSON object".into());
    }
    let (members, _) = object_members(s, root)?;
    let unit = indent_unit(body, &members);
    let out = match members.iter().find(|m| m.key == key) {
        None => {
            let inner = render(&serde_json::json!({ ENTRY: entry }), &unit, &unit);
            insert_member(body, root, !members.is_empty(), (&unit, ""), key, &inner)
        }
        Some(container) => {
            if s[container.value.0] != b'{' {
                return Err(format!("`{key}` is not an object"));
            }
            let (inside, _) = object_members(s, container.value.0)?;
            let level = line_indent(body, container.key_start);
            let deeper = format!("{level}{unit}");
            match inside.iter().find(|m| m.key == ENTRY) {
                Some(m) => {
                    let at = line_indent(body, m.key_start);
                    format!("{}{}{}", &body[..m.value.0], render(entry, &unit, &at), &body[m.value.1..])
                }
                None => {
                    let rendered = render(entry, &unit, &deeper);
                    insert_member(
                        body,
                        container.value.0,
                        !inside.is_empty(),
                        (&deeper, &level),
                        ENTRY,
                        &rendered,
                    )
                }
            }
        }
    };
    Ok(format!("{bom}{out}"))
}

/// `"name": value` as the first member of the object opening at `open`; `indent` is the
/// member's and the closing brace's.
fn insert_member(
    text: &str,
    open: usize,
    more: bool,
    indent: (&str, &str),
    name: &str,
    value: &str,
) -> String {
    let (indent, closing) = indent;
    let comma = if more { "," } else { "" };
    let close = if more { String::new() } else { format!("\n{closing}") };
    let (head, tail) = text.split_at(open + 1);
    // An empty `{}`: the member and a newline before the brace.
    let tail = if more { tail.to_string() } else { tail.trim_start().to_string() };
    format!("{head}\n{indent}{}: {value}{comma}{close}{tail}", Value::from(name))
}

/// A value pretty-printed with `unit` per level, its continuation lines at `at`.
fn render(v: &Value, unit: &str, at: &str) -> String {
    match v {
        Value::Object(m) if !m.is_empty() => {
            let inner = format!("{at}{unit}");
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{inner}{}: {}", Value::from(k.as_str()), render(v, unit, &inner)))
                .collect();
            format!("{{\n{}\n{at}}}", items.join(",\n"))
        }
        Value::Array(a) if !a.is_empty() => {
            let items: Vec<String> = a.iter().map(|v| render(v, unit, at)).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// The whitespace that starts the line holding `at`.
fn line_indent(text: &str, at: usize) -> String {
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    text[start..at].chars().take_while(|c| *c == ' ' || *c == '\t').collect()
}

/// The file's own indentation step, from its first member (two spaces by default).
fn indent_unit(text: &str, members: &[Member]) -> String {
    members.first().map(|m| line_indent(text, m.key_start)).filter(|u| !u.is_empty()).unwrap_or("  ".into())
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The members of the object whose `{` is at `open`, and the index past its `}`. The text is
/// valid JSON (checked before), with trailing commas blanked.
fn object_members(s: &[u8], open: usize) -> std::result::Result<(Vec<Member>, usize), String> {
    let mut out = Vec::new();
    let mut i = skip_ws(s, open + 1);
    if s.get(i) == Some(&b'}') {
        return Ok((out, i + 1));
    }
    loop {
        let key_start = i;
        let key_end = skip_value(s, i)?;
        let key: String = serde_json::from_slice(&s[key_start..key_end]).map_err(|e| e.to_string())?;
        i = skip_ws(s, key_end);
        if s.get(i) != Some(&b':') {
            return Err("expected ':'".into());
        }
        let start = skip_ws(s, i + 1);
        let end = skip_value(s, start)?;
        out.push(Member { key, key_start, value: (start, end) });
        i = skip_ws(s, end);
        match s.get(i) {
            Some(b',') => i = skip_ws(s, i + 1),
            Some(b'}') => return Ok((out, i + 1)),
            _ => return Err("expected ',' or '}'".into()),
        }
        if s.get(i) == Some(&b'}') {
            return Ok((out, i + 1));
        }
    }
}

/// The index past the value starting at `i`.
fn skip_value(s: &[u8], mut i: usize) -> std::result::Result<usize, String> {
    match s.get(i) {
        Some(b'"') => {
            i += 1;
            while i < s.len() && s[i] != b'"' {
                i += if s[i] == b'\\' { 2 } else { 1 };
            }
            Ok(i + 1)
        }
        Some(b'{') | Some(b'[') => {
            let mut depth = 0usize;
            while i < s.len() {
                match s[i] {
                    b'"' => {
                        i = skip_value(s, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            Err("unterminated value".into())
        }
        Some(_) => {
            while i < s.len() && !matches!(s[i], b',' | b'}' | b']') && !s[i].is_ascii_whitespace() {
                i += 1;
            }
            Ok(i)
        }
        None => Err("unexpected end".into()),
    }
}

// ---------------------------------------------------------------------------------------------
// TOML (Codex): the `[mcp_servers.agenthub]` table replaced, or appended.

/// The line span of the entry's table (and its sub-tables), trailing blank and comment lines
/// left out.
fn toml_section(text: &str, key: &str) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let names = [format!("{key}.{ENTRY}"), format!("{key}.\"{ENTRY}\"")];
    let header = |l: &str| -> Option<String> {
        let t = l.trim();
        let t = t.split(" #").next().unwrap_or(t).trim();
        (t.starts_with('[') && t.ends_with(']')).then(|| t.trim_matches(['[', ']']).trim().to_string())
    };
    let ours = |h: &str| names.iter().any(|n| h == n || h.starts_with(&format!("{n}.")));
    let start = lines.iter().position(|l| header(l).is_some_and(|h| ours(&h)))?;
    let mut end = start + 1;
    let mut last = start + 1;
    while end < lines.len() {
        match header(lines[end]) {
            Some(h) if !ours(&h) => break,
            _ => {}
        }
        let t = lines[end].trim();
        if !t.is_empty() && !t.starts_with('#') {
            last = end + 1;
        }
        end += 1;
    }
    Some((start, last))
}

/// `agenthub = {...}` under `[mcp_servers]`, or `mcp_servers.agenthub = ...` at the top: a
/// table written inline, which a `[mcp_servers.agenthub]` header would define twice.
fn toml_inline(text: &str, key: &str) -> bool {
    let mut table = String::new();
    text.lines().map(str::trim).any(|l| {
        if l.starts_with('[') {
            table = l.trim_matches(['[', ']']).trim().to_string();
            return false;
        }
        let k = l.split('=').next().unwrap_or("").trim().trim_matches('"');
        l.contains('=')
            && ((table == key && k == ENTRY) || (table.is_empty() && k == format!("{key}.{ENTRY}")))
    })
}

fn merge_toml(text: &str, key: &str, entry: &Value) -> std::result::Result<String, String> {
    let table = toml_table(&format!("{key}.{ENTRY}"), entry);
    if toml_section(text, key).is_none() && toml_inline(text, key) {
        return Err(format!("`{key}.{ENTRY}` is written inline: replace it by hand"));
    }
    Ok(match toml_section(text, key) {
        Some((start, end)) => {
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            let mut out: String = lines[..start].concat();
            out.push_str(&table);
            out.push_str(&lines[end..].concat());
            out
        }
        None if text.trim().is_empty() => table,
        None => {
            let mut out = text.to_string();
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push('\n');
            out.push_str(&table);
            out
        }
    })
}

// ---------------------------------------------------------------------------------------------
// YAML (Continue): an item of the top-level `mcpServers` block sequence replaced, or appended.

struct YamlBlock {
    /// The `mcpServers:` line.
    header: usize,
    /// Past the block's last item line.
    end: usize,
    /// The items' `- ` indentation.
    indent: String,
    /// The line span of the item named `agenthub`.
    entry: Option<(usize, usize)>,
}

fn yaml_block(text: &str, key: &str) -> Option<YamlBlock> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let is_header = |l: &str| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .is_some_and(|r| r.trim().is_empty() || r.trim().starts_with('#'))
    };
    let header = lines.iter().position(|l| is_header(l))?;
    let mut items: Vec<usize> = Vec::new();
    let mut end = header + 1;
    let mut indent = None;
    for (i, l) in lines.iter().enumerate().skip(header + 1) {
        let t = l.trim_start();
        if t.trim().is_empty() || t.starts_with('#') {
            continue;
        }
        let lead = &l[..l.len() - t.len()];
        if lead.is_empty() && !t.starts_with("- ") && t.trim() != "-" {
            break;
        }
        if t.starts_with("- ") || t.trim() == "-" {
            let own = indent.get_or_insert_with(|| lead.to_string());
            if *own == lead {
                items.push(i);
            }
        }
        end = i + 1;
    }
    let indent = indent.unwrap_or_else(|| "  ".to_string());
    let entry = items.iter().enumerate().find_map(|(n, &start)| {
        let stop = items.get(n + 1).copied().unwrap_or(end);
        let named = lines[start..stop].iter().any(|l| {
            let t = l.trim_start().trim_start_matches("- ").trim();
            t.strip_prefix("name:").is_some_and(|v| v.trim().trim_matches(['"', '\'']) == ENTRY)
        });
        named.then_some((start, stop))
    });
    Some(YamlBlock { header, end, indent, entry })
}

fn merge_yaml(text: &str, key: &str, entry: &Value) -> std::result::Result<String, String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let ensure_nl = |s: &mut String| {
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
    };
    if let Some(b) = yaml_block(text, key) {
        let item = yaml_item(entry, &b.indent);
        let (start, stop) = b.entry.unwrap_or((b.end, b.end));
        let mut out: String = lines[..start].concat();
        ensure_nl(&mut out);
        out.push_str(&item);
        out.push_str(&lines[stop..].concat());
        let _ = b.header;
        return Ok(out);
    }
    let empty = |l: &str| {
        l.strip_prefix(key).and_then(|r| r.strip_prefix(':')).is_some_and(|r| {
            let r = r.split(" #").next().unwrap_or(r).trim();
            r == "[]" || r == "~" || r == "null"
        })
    };
    if let Some(at) = lines.iter().position(|l| empty(l)) {
        // An empty flow list (or nothing): the block list takes its place.
        let mut out: String = lines[..at].concat();
        out.push_str(&format!("{key}:\n{}", yaml_item(entry, "  ")));
        out.push_str(&lines[at + 1..].concat());
        return Ok(out);
    }
    if lines.iter().any(|l| l.starts_with(&format!("{key}:"))) {
        return Err(format!("`{key}` is not a block list: add the entry by hand"));
    }
    let mut out = if text.trim().is_empty() {
        // Continue wants these in a new file.
        "name: Local Config\nversion: 1.0.0\nschema: v1\n".to_string()
    } else {
        text.to_string()
    };
    ensure_nl(&mut out);
    out.push_str(&format!("{key}:\n{}", yaml_item(entry, "  ")));
    Ok(out)
}

// ---------------------------------------------------------------------------------------------

/// The previous file to `<file>.bak`, then a temp file beside the target with the same mode,
/// fsync, rename over it, fsync the directory. A symlink is written through (it stays a link);
/// a new file is 0600 in a directory created as needed. The backup is written the same way (a
/// new file renamed over `.bak`), never through what is there: a `.bak` that is a symlink (a
/// cloned repository may ship one pointing at a file of the user's), a directory or a special
/// file is refused before anything is written.
fn save(path: &Path, bytes: &[u8], old: Option<&str>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = &crate::servers::edits::through_symlinks(path);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let mode = std::fs::metadata(path).map_or(0o600, |m| m.permissions().mode() & 0o7777);
    if let Some(old) = old {
        let bak = PathBuf::from(format!("{}.bak", path.display()));
        if std::fs::symlink_metadata(&bak).is_ok_and(|m| !m.file_type().is_file()) {
            return Err(Error::Config(format!(
                "{} is not a regular file (a symlink, a directory or a special file): nothing written; \
                 remove it and run again",
                bak.display()
            )));
        }
        crate::servers::edits::replace_file(&bak, dir, old.as_bytes(), mode)?;
    }
    crate::servers::edits::replace_file(path, dir, bytes, mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::{Hub, find};
    use serde_json::json;

    fn check(client: &str, before: &str, expected: &str) {
        let r = find(client).unwrap();
        let entry = r.entry(&Hub::new("http://127.0.0.1:9090", false));
        let after = merge(r, before, &entry).unwrap();
        assert_eq!(after, expected, "{client}:\n{after}");
        assert!(connected(r, &after), "{client}: connected after");
        assert_eq!(merge(r, &after, &entry).unwrap(), after, "{client}: a second merge changes nothing");
    }

    #[test]
    fn json_keeps_comments_other_entries_and_indentation() {
        check(
            "vscode",
            "// mine\n{\n    \"servers\": {\n        \"x\": {\"command\": \"x\"}, // keep\n    },\n    \"inputs\": []\n}\n",
            "// mine\n{\n    \"servers\": {\n        \"agenthub\": {\n            \"type\": \"http\",\n            \"url\": \"http://127.0.0.1:9090/mcp\",\n            \"headers\": {\n                \"X-Client-Name\": \"vscode\"\n            }\n        },\n        \"x\": {\"command\": \"x\"}, // keep\n    },\n    \"inputs\": []\n}\n",
        );
        check(
            "cursor",
            "{\"other\": 1}",
            "{\n  \"mcpServers\": {\n    \"agenthub\": {\n      \"url\": \"http://127.0.0.1:9090/mcp\",\n      \"headers\": {\n        \"X-Client-Name\": \"cursor\"\n      }\n    }\n  },\"other\": 1}",
        );
        check(
            "cursor",
            "{}",
            "{\n  \"mcpServers\": {\n    \"agenthub\": {\n      \"url\": \"http://127.0.0.1:9090/mcp\",\n      \"headers\": {\n        \"X-Client-Name\": \"cursor\"\n      }\n    }\n  }\n}",
        );
        // A byte-order mark stays where it was.
        check(
            "cursor",
            "\u{feff}{\"mcpServers\": {}}",
            "\u{feff}{\"mcpServers\": {\n  \"agenthub\": {\n    \"url\": \"http://127.0.0.1:9090/mcp\",\n    \"headers\": {\n      \"X-Client-Name\": \"cursor\"\n    }\n  }\n}}",
        );
        // An existing entry is replaced in place.
        check(
            "claude-desktop",
            "{\"mcpServers\": {\"a\": {}, \"agenthub\": {\"command\": \"old\"} /* c */}}",
            "{\"mcpServers\": {\"a\": {}, \"agenthub\": {\n  \"command\": \"agenthub\",\n  \"args\": [\"stdio\", \"--client\", \"claude-desktop\"]\n} /* c */}}",
        );
    }

    #[test]
    fn toml_replaces_or_appends_the_table() {
        check(
            "codex",
            "# codex\nmodel = \"o3\"\n\n[mcp_servers.agenthub]\nurl = \"old\"\n\n# next\n[mcp_servers.other]\ncommand = \"x\"\n",
            "# codex\nmodel = \"o3\"\n\n[mcp_servers.agenthub]\nurl = \"http://127.0.0.1:9090/mcp\"\nhttp_headers = { X-Client-Name = \"codex\" }\n\n# next\n[mcp_servers.other]\ncommand = \"x\"\n",
        );
        check(
            "codex",
            "model = \"o3\"",
            "model = \"o3\"\n\n[mcp_servers.agenthub]\nurl = \"http://127.0.0.1:9090/mcp\"\nhttp_headers = { X-Client-Name = \"codex\" }\n",
        );
    }

    #[test]
    fn toml_written_inline_is_left_alone() {
        let r = find("codex").unwrap();
        for text in
            ["[mcp_servers]\nagenthub = { url = \"x\" }\n", "mcp_servers.agenthub = { url = \"x\" }\n"]
        {
            assert!(connected(r, text), "{text}");
            assert!(merge(r, text, &json!({"url": "y"})).unwrap_err().contains("inline"), "{text}");
        }
        assert!(!connected(r, "[mcp_servers]\nother = { url = \"x\" }\n"));
    }

    #[test]
    fn yaml_replaces_or_appends_the_item() {
        let item = "  - name: \"agenthub\"\n    type: \"streamable-http\"\n    url: \"http://127.0.0.1:9090/mcp\"\n    requestOptions:\n      headers:\n        X-Client-Name: \"continue\"\n";
        check(
            "continue",
            "name: mine # c\nmcpServers:\n  - name: other\n    command: x\nmodels: []\n",
            &format!("name: mine # c\nmcpServers:\n  - name: other\n    command: x\n{item}models: []\n"),
        );
        check(
            "continue",
            "mcpServers:\n  - name: agenthub\n    url: old\n  - name: b\n",
            &format!("mcpServers:\n{item}  - name: b\n"),
        );
        check(
            "continue",
            "",
            &format!("name: Local Config\nversion: 1.0.0\nschema: v1\nmcpServers:\n{item}"),
        );
        check(
            "continue",
            "a: 1\nmcpServers: [] # none yet\nb: 2\n",
            &format!("a: 1\nmcpServers:\n{item}b: 2\n"),
        );
        let r = find("continue").unwrap();
        assert!(merge(r, "mcpServers: [{name: x}]\n", &json!({})).is_err());
    }

    #[test]
    fn paths_expand_home_and_windows_variables() {
        let env = |k: &str| match k {
            "HOME" => Some("/home/u".to_string()),
            "APPDATA" => Some("C:\\A".to_string()),
            _ => None,
        };
        assert_eq!(expand("~/.cursor/mcp.json", &env), PathBuf::from("/home/u/.cursor/mcp.json"));
        assert_eq!(expand("%APPDATA%\\Claude\\x.json", &env), PathBuf::from("C:\\A\\Claude\\x.json"));
    }
}
