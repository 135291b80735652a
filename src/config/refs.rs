//! References and templates: how a pipeline step names the run's inputs and earlier outputs.
//! `${inputs.x}`, `${steps.ID.text}`, `${steps.ID.json#/pointer}` (RFC 6901), `${steps.ID.status}`,
//! `${item}` (or the step's `as` name), `${loop.index}` (from 0), `${loop.number}` (from 1),
//! `${loop.count}`, `${loop.last}`,
//! `${run.id}`, `${run.date}`, each followed by filters from a closed list (`|trim`,
//! `|tree2md:2`, ...). No code runs: a value that is exactly one reference keeps its JSON type,
//! anything else is text. `$${` is a literal `${`. Pure functions, no I/O.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value, json};

/// What a finished step left for later ones.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub status: &'static str,
    pub text: String,
    pub json: Value,
}

/// Where one `foreach` iteration is.
#[derive(Debug, Clone, Copy)]
pub struct Loop {
    pub index: usize,
    pub count: usize,
}

/// Everything a reference may name while a step runs.
pub struct Scope<'a> {
    pub inputs: &'a Map<String, Value>,
    pub steps: &'a HashMap<String, Output>,
    /// The `foreach` item under its `as` name, and the loop.
    pub item: Option<(&'a str, &'a Value, Loop)>,
    pub run_id: &'a str,
    /// Today, `YYYY-MM-DD` (UTC).
    pub date: &'a str,
}

/// The filters a template may use.
pub const FILTERS: &[&str] = &[
    "trim",
    "json",
    "lines",
    "tree2md",
    "code_blocks",
    "make_targets",
    "default",
    "yaml",
    "slug",
    "contains",
    "eq",
    "not",
    "join",
    "length",
];

/// One `${...}`: what it names and the filters after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ref {
    pub path: Vec<String>,
    pub pointer: Option<String>,
    pub filters: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Ref(Ref),
}

fn pieces(template: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = template;
    while let Some(i) = rest.find("${") {
        if rest[..i].ends_with('$') {
            text.push_str(&rest[..i - 1]);
            text.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        text.push_str(&rest[..i]);
        let body = &rest[i + 2..];
        let end = body.find('}').ok_or_else(|| format!("unclosed \"${{\" in {template:?}"))?;
        if !text.is_empty() {
            out.push(Piece::Text(std::mem::take(&mut text)));
        }
        out.push(Piece::Ref(parse_ref(&body[..end])?));
        rest = &body[end + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

fn parse_ref(body: &str) -> Result<Ref, String> {
    let mut parts = body.split('|');
    let head = parts.next().unwrap_or("").trim();
    let (path, pointer) = match head.split_once('#') {
        Some((p, ptr)) => (p, Some(ptr.to_string())),
        None => (head, None),
    };
    if pointer.as_deref().is_some_and(|p| !p.is_empty() && !p.starts_with('/')) {
        return Err(format!("\"${{{body}}}\": a JSON pointer starts with \"/\""));
    }
    let path: Vec<String> = path.split('.').map(|s| s.trim().to_string()).collect();
    if path.iter().any(String::is_empty) {
        return Err(format!("\"${{{body}}}\": empty name"));
    }
    let mut filters = Vec::new();
    for f in parts {
        let (name, arg) = match f.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a.to_string())),
            None => (f.trim(), None),
        };
        if !FILTERS.contains(&name) {
            return Err(format!(
                "\"${{{body}}}\": unknown filter \"{name}\" (known: {})",
                FILTERS.join(", ")
            ));
        }
        filters.push((name.to_string(), arg));
    }
    Ok(Ref { path, pointer, filters })
}

/// Every reference in a template.
pub fn refs_in(template: &str) -> Result<Vec<Ref>, String> {
    Ok(pieces(template)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Ref(r) => Some(r),
            Piece::Text(_) => None,
        })
        .collect())
}

/// Every reference in a JSON value's strings.
pub fn refs_in_value(v: &Value) -> Result<Vec<Ref>, String> {
    let mut out = Vec::new();
    match v {
        Value::String(s) => out.extend(refs_in(s)?),
        Value::Array(items) => {
            for i in items {
                out.extend(refs_in_value(i)?);
            }
        }
        Value::Object(m) => {
            for i in m.values() {
                out.extend(refs_in_value(i)?);
            }
        }
        _ => {}
    }
    Ok(out)
}

/// What is wrong with a reference where it stands: `earlier` are the ids of the steps before,
/// `all` every step's, `item` the loop variable's name when the step has a `foreach`.
pub fn check(
    r: &Ref,
    inputs: &BTreeSet<String>,
    earlier: &[String],
    all: &[String],
    item: Option<&str>,
) -> Option<String> {
    let p: Vec<&str> = r.path.iter().map(String::as_str).collect();
    match p.as_slice() {
        ["inputs", name] if inputs.contains(*name) => None,
        ["inputs", name] => Some(format!("no input named \"{name}\"")),
        ["steps", id, field] => {
            if !earlier.iter().any(|e| e == id) {
                return Some(match all.iter().any(|e| e == id) {
                    true => format!("step \"{id}\" comes later (or is this one)"),
                    false => format!("no step with id \"{id}\""),
                });
            }
            match *field {
                "text" | "json" | "status" => None,
                _ => Some(format!("steps.{id}.{field}: a step has text, json and status")),
            }
        }
        ["loop", "index" | "number" | "count" | "last"] | ["run", "id" | "date"]
            if item.is_some() || p[0] == "run" =>
        {
            None
        }
        ["loop", _] if item.is_none() => Some("loop.* only in a step with foreach".into()),
        [name] if Some(*name) == item => None,
        _ => Some(format!("unknown reference \"{}\"", r.path.join("."))),
    }
}

/// A reference's value.
fn lookup(r: &Ref, scope: &Scope) -> Result<Value, String> {
    let p: Vec<&str> = r.path.iter().map(String::as_str).collect();
    let base = match p.as_slice() {
        ["inputs", name] => scope.inputs.get(*name).cloned().unwrap_or(Value::Null),
        ["steps", id, field] => {
            let out = scope.steps.get(*id).ok_or_else(|| format!("step \"{id}\" has not run"))?;
            match *field {
                "text" => json!(out.text),
                "json" => out.json.clone(),
                _ => json!(out.status),
            }
        }
        ["loop", field] => {
            let (_, _, l) = scope.item.ok_or("loop.* outside a foreach")?;
            match *field {
                "index" => json!(l.index),
                "number" => json!(l.index + 1),
                "count" => json!(l.count),
                _ => json!(l.index + 1 == l.count),
            }
        }
        ["run", "id"] => json!(scope.run_id),
        ["run", "date"] => json!(scope.date),
        [name] if scope.item.is_some_and(|(n, _, _)| n == *name) => {
            scope.item.map(|(_, v, _)| v.clone()).unwrap_or_default()
        }
        _ => return Err(format!("unknown reference \"{}\"", r.path.join("."))),
    };
    let value = match &r.pointer {
        None => base,
        Some(ptr) => {
            // A string holding JSON (a tool's text) is looked into as that JSON.
            let base = match base {
                Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
                v => v,
            };
            base.pointer(ptr).cloned().unwrap_or(Value::Null)
        }
    };
    r.filters.iter().try_fold(value, |v, (name, arg)| filter(name, arg.as_deref(), v))
}

/// A value as template text: strings as they are, null as nothing, the rest as JSON.
pub fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

/// Whether a `when` value lets its step run.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !matches!(s.trim(), "" | "false" | "0"),
        Value::Array(a) => !a.is_empty(),
        Value::Object(_) => true,
    }
}

/// A template made text.
pub fn render(template: &str, scope: &Scope) -> Result<String, String> {
    let mut out = String::new();
    for p in pieces(template)? {
        match p {
            Piece::Text(t) => out.push_str(&t),
            Piece::Ref(r) => out.push_str(&as_text(&lookup(&r, scope)?)),
        }
    }
    Ok(out)
}

/// A JSON value with its references resolved: a string that is exactly one reference becomes
/// that value, with its type.
pub fn resolve(v: &Value, scope: &Scope) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => match pieces(s)?.as_slice() {
            [Piece::Ref(r)] => lookup(r, scope)?,
            _ => Value::String(render(s, scope)?),
        },
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| resolve(i, scope)).collect::<Result<_, _>>()?)
        }
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(k.clone(), resolve(v, scope)?);
            }
            Value::Object(out)
        }
        v => v.clone(),
    })
}

fn filter(name: &str, arg: Option<&str>, v: Value) -> Result<Value, String> {
    let text = || as_text(&v);
    let number = |default: usize| -> Result<usize, String> {
        arg.map_or(Ok(default), |a| {
            a.trim().parse().map_err(|_| format!("|{name}: expected a number, got {a:?}"))
        })
    };
    Ok(match name {
        "trim" => json!(text().trim()),
        "json" => json!(v.to_string()),
        "lines" => json!(text().lines().take(number(20)?).collect::<Vec<_>>().join("\n")),
        "tree2md" => json!(tree_markdown(&v, number(usize::MAX)?)),
        "code_blocks" => json!(code_blocks(&text())),
        "make_targets" => json!(make_targets(&text())),
        "default" if !truthy(&v) => json!(arg.unwrap_or("")),
        "default" => v,
        "yaml" => json!(serde_json::to_string(&text()).unwrap_or_default()),
        "slug" => json!(slug(&text())),
        "contains" => json!(text().contains(arg.unwrap_or(""))),
        "eq" => json!(text() == arg.unwrap_or("")),
        "not" => json!(!truthy(&v)),
        "join" => match &v {
            Value::Array(items) => {
                json!(items.iter().map(as_text).collect::<Vec<_>>().join(arg.unwrap_or(", ")))
            }
            _ => json!(text()),
        },
        "length" => json!(match &v {
            Value::Array(a) => a.len(),
            Value::Object(m) => m.len(),
            Value::Null => 0,
            v => as_text(v).chars().count(),
        }),
        _ => return Err(format!("unknown filter \"{name}\"")),
    })
}

/// A directory tree (server-filesystem's `directory_tree`: `[{name, type, children}]`, or the
/// text holding it) as a Markdown list, folders first marked with `/`, down to `depth` levels.
fn tree_markdown(v: &Value, depth: usize) -> String {
    let tree = match v {
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
        v => v.clone(),
    };
    fn walk(items: &Value, level: usize, depth: usize, out: &mut Vec<String>) {
        let Some(items) = items.as_array() else { return };
        let is_dir = |v: &Value| v.get("type").and_then(Value::as_str) == Some("directory");
        let name_of = |v: &Value| v.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        let mut items: Vec<&Value> = items.iter().collect();
        items.sort_by_key(|v| (!is_dir(v), name_of(v)));
        for item in items {
            let name = item.get("name").and_then(Value::as_str).unwrap_or("?");
            let dir = item.get("type").and_then(Value::as_str) == Some("directory");
            out.push(format!("{}- {name}{}", "  ".repeat(level), if dir { "/" } else { "" }));
            if dir && level + 1 < depth {
                walk(item.get("children").unwrap_or(&Value::Null), level + 1, depth, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&tree, 0, depth, &mut out);
    out.join("\n")
}

/// The shell lines of a Markdown text's fenced code blocks (no language, or sh, bash, shell,
/// console), verbatim, one block after another.
fn code_blocks(md: &str) -> String {
    let mut out = Vec::new();
    let mut inside: Option<bool> = None;
    for line in md.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (inside, fence) {
            (None, Some(lang)) => {
                inside = Some(matches!(lang.trim(), "" | "sh" | "bash" | "shell" | "console"));
            }
            (Some(_), Some(_)) => inside = None,
            (Some(true), None) => out.push(line.to_string()),
            _ => {}
        }
    }
    out.join("\n")
}

/// `make <target>` for each target a Makefile defines (not special or pattern targets).
fn make_targets(makefile: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for line in makefile.lines() {
        if line.starts_with(['\t', ' ', '#', '.']) {
            continue;
        }
        let Some((names, _)) = line.split_once(':') else { continue };
        if line[names.len()..].starts_with(":=") || names.contains(['=', '$', '%', '?', '+']) {
            continue;
        }
        for t in names.split_whitespace() {
            let t = format!("make {t}");
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out.join("\n")
}

fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope_with<'a>(
        inputs: &'a Map<String, Value>,
        steps: &'a HashMap<String, Output>,
        item: Option<(&'a str, &'a Value, Loop)>,
    ) -> Scope<'a> {
        Scope { inputs, steps, item, run_id: "r7", date: "2026-12-02" }
    }

    fn fixture() -> (Map<String, Value>, HashMap<String, Output>) {
        let inputs = json!({"name": "Hub", "n": 3, "tags": ["a", "b"]}).as_object().cloned().unwrap();
        let mut steps = HashMap::new();
        let tree = r#"[{"name":"src","type":"directory","children":[{"name":"main.rs","type":"file"}]},{"name":"README.md","type":"file"}]"#;
        steps.insert(
            "tree".into(),
            Output { status: "ok", text: tree.into(), json: serde_json::from_str(tree).unwrap() },
        );
        steps.insert("plan".into(), Output { status: "failed", text: String::new(), json: Value::Null });
        steps.insert(
            "obj".into(),
            Output { status: "ok", text: "{}".into(), json: json!({"a": {"b": [1, 2]}, "s": " x "}) },
        );
        (inputs, steps)
    }

    #[test]
    fn references_resolve_and_keep_their_type() {
        let (inputs, steps) = fixture();
        let item = json!({"path": "Cargo.toml"});
        let scope = scope_with(&inputs, &steps, Some(("file", &item, Loop { index: 1, count: 2 })));
        let check = |v: Value, want: Value| assert_eq!(resolve(&v, &scope).unwrap(), want, "{v}");
        check(json!("${inputs.n}"), json!(3));
        check(json!("n=${inputs.n}"), json!("n=3"));
        check(json!("${inputs.tags}"), json!(["a", "b"]));
        check(json!("${inputs.missing}"), Value::Null);
        check(json!("${steps.obj.json#/a/b/1}"), json!(2));
        check(json!("${steps.obj.json#/a/b}"), json!([1, 2]));
        check(json!("${steps.tree.text#/0/name}"), json!("src"));
        check(json!("${steps.plan.status}"), json!("failed"));
        check(json!("${file#/path}"), json!("Cargo.toml"));
        check(json!("${loop.index}/${loop.count} last=${loop.last}"), json!("1/2 last=true"));
        check(json!("${loop.number}"), json!(2));
        check(json!({"k": ["${run.id}", "${run.date}"]}), json!({"k": ["r7", "2026-12-02"]}));
        check(json!("cost: $${not.a.ref}"), json!("cost: ${not.a.ref}"));
        check(json!(7), json!(7));
    }

    #[test]
    fn filters_are_a_closed_list() {
        let (inputs, steps) = fixture();
        let scope = scope_with(&inputs, &steps, None);
        let check = |t: &str, want: &str| assert_eq!(render(t, &scope).unwrap(), want, "{t}");
        check("[${steps.obj.json#/s|trim}]", "[x]");
        check("${steps.obj.json#/a|json}", r#"{"b":[1,2]}"#);
        check("${steps.tree.json|tree2md}", "- src/\n  - main.rs\n- README.md");
        check("${steps.tree.text|tree2md:1}", "- src/\n- README.md");
        check("${inputs.name|slug}", "hub");
        check("${inputs.name|yaml}", "\"Hub\"");
        check("${steps.plan.json|default:none}", "none");
        check("${steps.plan.status|eq:ok}", "false");
        check("${steps.plan.status|eq:ok|not}", "true");
        check("${steps.tree.text|contains:main.rs}", "true");
        check("${inputs.tags|join:+} ${inputs.tags|length}", "a+b 2");
        let bad = render("${inputs.name|shell}", &scope).unwrap_err();
        assert!(bad.contains("unknown filter \"shell\""), "{bad}");
        assert!(render("${inputs.name", &scope).unwrap_err().contains("unclosed"));
    }

    #[test]
    fn facts_are_quoted_verbatim() {
        let md =
            "# X\n```sh\nmake run\nmake test\n```\ntext\n```rust\nfn main() {}\n```\n```\ncargo build\n```\n";
        assert_eq!(code_blocks(md), "make run\nmake test\ncargo build");
        let mk = "CARGO ?= cargo\n.PHONY: run test\nrun:\n\tcargo run\ntest: deps\n\tcargo test\n%.o: %.c\nX := 1\n";
        assert_eq!(make_targets(mk), "make run\nmake test");
    }

    #[test]
    fn references_are_checked_where_they_stand() {
        let inputs: BTreeSet<String> = ["repo".to_string()].into();
        let (earlier, all) = (vec!["a".to_string()], vec!["a".to_string(), "b".to_string(), "c".to_string()]);
        let check = |t: &str, item: Option<&str>, want: Option<&str>| {
            let r = &refs_in(t).unwrap()[0];
            assert_eq!(super::check(r, &inputs, &earlier, &all, item).as_deref(), want, "{t}");
        };
        check("${inputs.repo}", None, None);
        check("${inputs.nope}", None, Some("no input named \"nope\""));
        check("${steps.a.text}", None, None);
        check("${steps.c.text}", None, Some("step \"c\" comes later (or is this one)"));
        check("${steps.z.json}", None, Some("no step with id \"z\""));
        check("${steps.a.body}", None, Some("steps.a.body: a step has text, json and status"));
        check("${item}", Some("item"), None);
        check("${loop.index}", Some("item"), None);
        check("${loop.index}", None, Some("loop.* only in a step with foreach"));
        check("${run.date}", None, None);
        check("${what}", None, Some("unknown reference \"what\""));
    }
}
