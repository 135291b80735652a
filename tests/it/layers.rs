//! The code's shape, checked: the top-level modules of `src` form the layers ARCHITECTURE.md
//! declares (a module imports only modules below its own line), so the module graph is a DAG;
//! no file is over the size limit; every thread the hub starts has a name. Test modules are
//! left out: they may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The hard limit on a file's lines in `src`, tests in it included.
const MAX_LINES: usize = 600;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The layers as ARCHITECTURE.md's "Layers" block lists them, top first.
fn layers() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let start = text.find("<!-- layers -->").expect("ARCHITECTURE.md has a <!-- layers --> block");
    let end = text.find("<!-- /layers -->").expect("ARCHITECTURE.md closes its layers block");
    let block = &text[start..end];
    let inner = block.split("```").nth(1).expect("the layers block holds a fenced list");
    inner
        .lines()
        .skip(1) // the fence's info string
        .map(|l| l.split('#').next().unwrap_or("").split_whitespace().map(String::from).collect::<Vec<_>>())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Every `.rs` file under `src`, with the module path it defines (`src/a/b.rs` → `[a, b]`).
fn sources() -> Vec<(PathBuf, Vec<String>)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = root().join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let rel = f.strip_prefix(&src).unwrap().with_extension("");
            let mut module: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
            if module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            (f, module)
        })
        .collect()
}

/// The code with comments, strings and character literals blanked (so a path in a comment or
/// a string is no import), lines kept.
fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !b[..i].last().is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            out.push(' ');
            i += 1;
            while i <= j {
                out.push(' ');
                i += 1;
            }
            loop {
                if i >= b.len() {
                    break;
                }
                if b[i] == '"' && (0..hashes).all(|k| b.get(i + 1 + k) == Some(&'#')) {
                    for _ in 0..=hashes {
                        out.push(' ');
                    }
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(b[i]));
                i += 1;
            }
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\''
            && (b.get(i + 2) == Some(&'\'')
                || (next == Some('\\') && b[i + 1..].iter().take(12).any(|&x| x == '\'')))
        {
            // A character literal (a lifetime has no closing quote).
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '\'' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                out.push(' ');
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The code of a file without its test modules (`#[cfg(test)] mod x { ... }`) and the items
/// marked `#[cfg(test)]`.
fn without_tests(code: &str) -> String {
    let mut out = code.to_string();
    while let Some(at) = out.find("#[cfg(test)]") {
        let rest = &out[at..];
        // The item ends at its `;` or at the brace closing its first `{`, whichever comes first.
        let semi = rest.find(';');
        let brace = rest.find('{');
        let end = match (semi, brace) {
            (Some(s), Some(b)) if s < b => at + s + 1,
            (_, Some(b)) => {
                let mut depth = 0;
                let mut end = out.len();
                for (k, ch) in out[at + b..].char_indices() {
                    match ch {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = at + b + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (Some(s), None) => at + s + 1,
            (None, None) => out.len(),
        };
        let blanked: String = out[at..end].chars().map(|c| if c == '\n' { '\n' } else { ' ' }).collect();
        out.replace_range(at..end, &blanked);
    }
    out
}

/// Files that are test modules of their parent (`#[cfg(test)] mod tests;`).
fn test_files(files: &[(PathBuf, Vec<String>)]) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    for (path, module) in files {
        let code = code_only(&std::fs::read_to_string(path).unwrap());
        for (at, _) in code.match_indices("#[cfg(test)]") {
            let item = code[at + 12..].trim_start();
            if let Some(name) = item.strip_prefix("mod ").and_then(|r| r.split(';').next()) {
                if !name.contains('{') {
                    let mut m = module.clone();
                    m.push(name.trim().to_string());
                    out.insert(m);
                }
            }
        }
    }
    out
}

/// The top-level modules a file's code names, with the line of each first mention.
fn imports(code: &str, module: &[String]) -> BTreeMap<String, usize> {
    let mut found = BTreeMap::new();
    let mut note = |name: &str, offset: usize| {
        let line = code[..offset].matches('\n').count() + 1;
        found.entry(name.to_string()).or_insert(line);
    };
    let word = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    // `crate::x` and `use crate::{x, y::z}`.
    for (at, _) in code.match_indices("crate::") {
        if code[..at].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &code[at + 7..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            let mut items = Vec::new();
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => items.push(std::mem::take(&mut item)),
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if depth == 1 && ch != ',' {
                    item.push(ch);
                }
            }
            items.push(item);
            for i in items {
                let w = word(i.trim());
                if !w.is_empty() {
                    note(&w, at);
                }
            }
        } else {
            note(&word(rest), at);
        }
    }
    // `super::` chains that climb to the crate's root.
    for (at, _) in code.match_indices("super::") {
        if code[..at].ends_with("::")
            || code[..at].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let mut rest = &code[at..];
        let mut ups = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            ups += 1;
            rest = r;
        }
        if ups >= module.len() {
            note(&word(rest), at);
        }
    }
    found
}

#[test]
fn the_modules_form_the_declared_layers() {
    let layers = layers();
    let level: BTreeMap<&str, usize> =
        layers.iter().enumerate().flat_map(|(i, names)| names.iter().map(move |n| (n.as_str(), i))).collect();
    let files = sources();
    let tests = test_files(&files);
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut problems = Vec::new();
    let tops: BTreeSet<String> = files.iter().filter_map(|(_, m)| m.first().cloned()).collect();
    for top in &tops {
        if top != "lib" && !level.contains_key(top.as_str()) {
            problems.push(format!("src/{top}: a top-level module missing from ARCHITECTURE.md's layers"));
        }
    }
    for (path, module) in &files {
        if tests.iter().any(|t| module.starts_with(t)) {
            continue;
        }
        let Some(top) = module.first() else { continue };
        if top == "lib" {
            continue;
        }
        let code = without_tests(&code_only(&std::fs::read_to_string(path).unwrap()));
        for (name, line) in imports(&code, module) {
            if name == *top || !tops.contains(&name) {
                continue;
            }
            let at = format!("{}:{line}", path.strip_prefix(root()).unwrap().display());
            edges.entry(top.clone()).or_default().entry(name.clone()).or_insert(at.clone());
            if let (Some(&from), Some(&to)) = (level.get(top.as_str()), level.get(name.as_str())) {
                if to <= from {
                    problems.push(format!("{at}: {top} imports {name}, which is not below it"));
                }
            }
        }
    }
    // A cycle, however the layers are written.
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        cycles: &mut Vec<String>,
    ) {
        if let Some(i) = path.iter().position(|p| p == n) {
            cycles.push(format!("cycle: {} -> {n}", path[i..].join(" -> ")));
            return;
        }
        if !done.insert(n.to_string()) {
            return;
        }
        path.push(n.to_string());
        for m in edges.get(n).into_iter().flat_map(|e| e.keys()) {
            visit(m, edges, path, done, cycles);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        visit(n, &edges, &mut Vec::new(), &mut done, &mut problems);
    }
    assert!(problems.is_empty(), "the module graph breaks its layers:\n{}", problems.join("\n"));
    // The check sees imports at all: the API uses the app.
    assert!(edges.get("api").is_some_and(|e| e.contains_key("app")), "{edges:?}");
}

#[test]
fn no_file_in_src_is_over_the_limit() {
    let long: Vec<String> = sources()
        .iter()
        .filter_map(|(path, _)| {
            let n = std::fs::read_to_string(path).unwrap().lines().count();
            (n > MAX_LINES).then(|| format!("{}: {n} lines", path.strip_prefix(root()).unwrap().display()))
        })
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines:\n{}", long.join("\n"));
}

#[test]
fn every_thread_the_hub_starts_is_named() {
    let files = sources();
    let tests = test_files(&files);
    let mut unnamed = Vec::new();
    for (path, module) in &files {
        if tests.iter().any(|t| module.starts_with(t)) {
            continue;
        }
        let code = without_tests(&code_only(&std::fs::read_to_string(path).unwrap()));
        for (n, line) in code.lines().enumerate() {
            // A named thread is started with `thread::Builder::new().name(..)`, scoped ones
            // with `spawn_scoped`; `thread::spawn` and `scope.spawn` give no name.
            if line.contains("thread::spawn(") || line.contains("scope.spawn(") {
                unnamed.push(format!("{}:{}", path.strip_prefix(root()).unwrap().display(), n + 1));
            }
        }
    }
    assert!(unnamed.is_empty(), "threads started without a name:\n{}", unnamed.join("\n"));
}

#[test]
fn the_checks_see_through_comments_strings_and_test_modules() {
    let code = "// use crate::a;\nlet s = \"crate::b\";\nuse crate::{c, d::e};\n#[cfg(test)]\nmod tests { use crate::f; }\nlet t = crate::g::h();\n";
    let found = imports(&without_tests(&code_only(code)), &["x".to_string()]);
    assert_eq!(found.keys().cloned().collect::<Vec<_>>(), ["c", "d", "g"]);
    let nested = imports(&code_only("use super::super::y::Z;\nuse super::w;"), &["a".into(), "b".into()]);
    assert_eq!(nested.keys().cloned().collect::<Vec<_>>(), ["y"]);
}
