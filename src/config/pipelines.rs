//! Pipelines as data (`pipelines.json`): `{"pipelines": {"<name>": {description, inputs,
//! required, defaults {timeout_s, on_error}, exclusive, steps: [...], result}}}`. Inputs are a
//! small JSON Schema subset (per property: `type`, `description`, `title`, `default`, `enum`)
//! plus the hub's `under`: a string input that is a path inside a directory the settings name
//! (`"under": "vault_root"`: `AGENTHUB_VAULT_ROOT`; checked when a run starts, symlinks
//! followed, `..` refused, the run given the resolved path). A step has exactly one kind
//! (`tool` "server/tool" with `args`, `enhance`, `llm`, `template`) and the modifiers `id`,
//! `when`, `foreach` + `as`, `on_error`, `timeout_s`, `retries`, `always`. An `always: true`
//! step runs even once an earlier step has failed the run (to undo what earlier steps changed:
//! the run still ends failed); in such a run the steps that did not run read as `skipped`.
//! `exclusive: true` runs a pipeline's runs one at a time (a run waits for the one before it
//! to end): for a pipeline that changes shared state and puts it back. Every reference is
//! checked here: to an input that exists, to an earlier step, with known filters. Errors name
//! the file, the line of the step and its JSON path.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::refs::{self, Ref};
use super::{Fields, parse_json};
use crate::error::{Error, Result};

/// A pipeline step's longest wait when neither it nor the pipeline says.
const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub name: String,
    pub description: String,
    /// The input schema as clients see it: `{type: object, properties, required}`.
    pub schema: Value,
    pub inputs: Vec<Input>,
    pub steps: Vec<Step>,
    pub result: Value,
    /// Runs one at a time.
    pub exclusive: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub name: String,
    pub kind: Option<String>,
    pub required: bool,
    pub default: Option<Value>,
    pub choices: Option<Vec<Value>>,
    /// A path input that must lie inside this root (one of `ROOTS`).
    pub under: Option<String>,
}

/// The roots a path input may be kept `under`, each a setting.
pub const ROOTS: [&str; 1] = ["vault_root"];

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub id: String,
    pub kind: Kind,
    pub when: Option<String>,
    pub foreach: Option<String>,
    /// The loop variable's name (`item` unless `as` says).
    pub item: String,
    pub on_error: OnError,
    pub timeout: Duration,
    pub retries: u32,
    /// Runs even once the run has failed.
    pub always: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Tool {
        server: String,
        tool: String,
        args: Value,
    },
    Enhance {
        prompt: String,
        client: Option<String>,
    },
    Llm {
        system: String,
        prompt: String,
        model: Option<String>,
        format: Option<Value>,
        options: Map<String, Value>,
    },
    Template(String),
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Tool { .. } => "tool",
            Kind::Enhance { .. } => "enhance",
            Kind::Llm { .. } => "llm",
            Kind::Template(_) => "template",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    Fail,
    Continue,
}

const KINDS: [&str; 4] = ["tool", "enhance", "llm", "template"];
const STEP_KEYS: [&str; 13] = [
    "id",
    "tool",
    "args",
    "enhance",
    "llm",
    "template",
    "when",
    "foreach",
    "as",
    "on_error",
    "timeout_s",
    "retries",
    "always",
];
const INPUT_TYPES: [&str; 6] = ["string", "number", "integer", "boolean", "array", "object"];

/// Reads a pipelines file.
pub fn parse_pipelines(text: &str, file: &str) -> Result<Vec<Pipeline>> {
    let root = parse_json(text, file)?;
    let top = Fields::new(&root, file, "$")?;
    let Some(Value::Object(all)) = top.get("pipelines") else {
        return Err(top.err("pipelines", "expected an object of pipelines by name"));
    };
    let mut out = Vec::new();
    for (name, v) in all {
        let valid = !name.is_empty()
            && name.len() <= 46
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(Error::Config(format!(
                "{file}: pipelines.{name}: a pipeline name is 1-46 of A-Z a-z 0-9 - _ (its MCP tool is agenthub__pipeline_<name>)"
            )));
        }
        out.push(parse_pipeline(name, v, text, file)?);
    }
    Ok(out)
}

fn parse_pipeline(name: &str, v: &Value, text: &str, file: &str) -> Result<Pipeline> {
    let at = format!("pipelines.{name}");
    let f = Fields::new(v, file, &at)?;
    let mut required: Vec<String> = f.str_list("required")?.unwrap_or_default();
    required.dedup();
    let (inputs, properties) = parse_inputs(&f, &required, file, &at)?;
    if let Some(missing) = required.iter().find(|r| !inputs.iter().any(|i| &i.name == *r)) {
        return Err(f.err("required", &format!("\"{missing}\" is not among the inputs")));
    }
    let defaults_at = format!("{at}.defaults");
    let defaults = match f.get("defaults") {
        Some(d) => {
            let d = Fields::new(d, file, &defaults_at)?;
            (d.secs("timeout_s")?, on_error(d.str("on_error")?.as_deref(), &d, "on_error")?)
        }
        None => (None, None),
    };
    let Some(Value::Array(raw)) = f.get("steps") else {
        return Err(f.err("steps", "expected an array of steps"));
    };
    if raw.is_empty() {
        return Err(f.err("steps", "a pipeline needs at least one step"));
    }
    let ids: Vec<String> =
        raw.iter().map(|s| s.get("id").and_then(Value::as_str).unwrap_or("").to_string()).collect();
    let names: BTreeSet<String> = inputs.iter().map(|i| i.name.clone()).collect();
    let mut steps = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let step_at = format!("{at}.steps[{i}]");
        let line = line_of_step(text, name, &ids[i]);
        let where_ = match line {
            Some(l) => format!("{file}:{l}"),
            None => file.to_string(),
        };
        let step = parse_step(s, &where_, &step_at, defaults)?;
        if ids[..i].contains(&step.id) {
            return Err(Error::Config(format!("{where_}: {step_at}.id: \"{}\" is used twice", step.id)));
        }
        check_refs(&step, &names, &ids[..i], &ids)
            .map_err(|why| Error::Config(format!("{where_}: {step_at} (step \"{}\"): {why}", step.id)))?;
        steps.push(step);
    }
    let result = f.get("result").cloned().unwrap_or(Value::Null);
    for r in refs::refs_in_value(&result).map_err(|e| f.err("result", &e))? {
        if let Some(why) = refs::check(&r, &names, &ids, &ids, None) {
            return Err(f.err("result", &why));
        }
    }
    let mut schema = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    Ok(Pipeline {
        name: name.to_string(),
        description: f.str("description")?.unwrap_or_default(),
        schema,
        inputs,
        steps,
        result,
        exclusive: f.bool("exclusive")?.unwrap_or(false),
    })
}

fn parse_inputs(
    f: &Fields,
    required: &[String],
    file: &str,
    at: &str,
) -> Result<(Vec<Input>, Map<String, Value>)> {
    let props = match f.get("inputs") {
        None => return Ok((Vec::new(), Map::new())),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(f.err("inputs", "expected an object of input schemas by name")),
    };
    let mut inputs = Vec::new();
    for (name, v) in props {
        let input_at = format!("{at}.inputs.{name}");
        let p = Fields::new(v, file, &input_at)?;
        for key in p.map.keys() {
            if !["type", "description", "title", "default", "enum", "under"].contains(&key.as_str()) {
                return Err(p.err(
                    key,
                    "not in the supported schema subset (type, description, title, default, enum, under)",
                ));
            }
        }
        let kind = p.str("type")?;
        if let Some(k) = kind.as_deref().filter(|k| !INPUT_TYPES.contains(k)) {
            return Err(p.err("type", &format!("\"{k}\" is not one of {}", INPUT_TYPES.join(", "))));
        }
        let choices = match p.get("enum") {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(_) => return Err(p.err("enum", "expected an array of values")),
        };
        let default = p.get("default").cloned();
        if let (Some(d), Some(k)) = (&default, kind.as_deref()) {
            if !has_type(d, k) {
                return Err(p.err("default", &format!("expected a value of type {k}")));
            }
        }
        let under = p.str("under")?;
        if let Some(root) = &under {
            if !ROOTS.contains(&root.as_str()) {
                return Err(p.err("under", &format!("\"{root}\" is not one of {}", ROOTS.join(", "))));
            }
            if kind.as_deref() != Some("string") {
                return Err(p.err("under", "a path input has \"type\": \"string\""));
            }
        }
        inputs.push(Input {
            name: name.clone(),
            kind,
            required: required.contains(name),
            default,
            choices,
            under,
        });
    }
    Ok((inputs, props.clone()))
}

/// Whether a JSON value is of a schema `type`.
pub fn has_type(v: &Value, kind: &str) -> bool {
    match kind {
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => true,
    }
}

fn on_error(v: Option<&str>, f: &Fields, key: &str) -> Result<Option<OnError>> {
    match v {
        None => Ok(None),
        Some("fail") => Ok(Some(OnError::Fail)),
        Some("continue") => Ok(Some(OnError::Continue)),
        Some(o) => Err(f.err(key, &format!("\"{o}\" is not fail or continue"))),
    }
}

fn parse_step(
    v: &Value,
    file: &str,
    at: &str,
    (timeout, on_err): (Option<Duration>, Option<OnError>),
) -> Result<Step> {
    let f = Fields::new(v, file, at)?;
    let id = f.str("id")?.ok_or_else(|| f.err("id", "missing (every step has an id)"))?;
    let id_ok = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !id_ok {
        return Err(f.err("id", &format!("\"{id}\": an id is A-Z a-z 0-9 _ -")));
    }
    let step_err = |key: &str, msg: &str| Error::Config(format!("{file}: {at}.{key} (step \"{id}\"): {msg}"));
    for key in f.map.keys() {
        if !STEP_KEYS.contains(&key.as_str()) {
            return Err(step_err(
                key,
                &format!(
                    "unknown field; a step has one kind ({}) and {}",
                    KINDS.join(", "),
                    "id, when, foreach, as, on_error, timeout_s, retries, always"
                ),
            ));
        }
    }
    let kinds: Vec<&str> = KINDS.iter().copied().filter(|k| f.get(k).is_some()).collect();
    let kind = match kinds.as_slice() {
        [one] => *one,
        [] => return Err(step_err("tool", &format!("no step kind: give one of {}", KINDS.join(", ")))),
        many => {
            return Err(step_err(many[1], &format!("a step has one kind, this has {}", many.join(" and "))));
        }
    };
    let kind = match kind {
        "tool" => {
            let target = f.str("tool")?.unwrap_or_default();
            let Some((server, tool)) = target.split_once('/').filter(|(s, t)| !s.is_empty() && !t.is_empty())
            else {
                return Err(step_err("tool", &format!("\"{target}\": expected \"server/tool\"")));
            };
            let args = f.get("args").cloned().unwrap_or(json!({}));
            if !args.is_object() {
                return Err(step_err("args", "expected an object of arguments"));
            }
            Kind::Tool { server: server.to_string(), tool: tool.to_string(), args }
        }
        "enhance" => {
            let e_at = format!("{at}.enhance");
            let e = Fields::new(f.get("enhance").unwrap_or(&Value::Null), file, &e_at)?;
            let prompt = e.str("prompt")?.ok_or_else(|| step_err("enhance.prompt", "missing"))?;
            Kind::Enhance { prompt, client: e.str("client")? }
        }
        "llm" => {
            let l_at = format!("{at}.llm");
            let l = Fields::new(f.get("llm").unwrap_or(&Value::Null), file, &l_at)?;
            let prompt = l.str("prompt")?.ok_or_else(|| step_err("llm.prompt", "missing"))?;
            let format = match l.get("format") {
                None => None,
                Some(Value::String(s)) if s == "json" => Some(json!("json")),
                Some(v @ Value::Object(_)) => Some(v.clone()),
                Some(_) => return Err(step_err("llm.format", "expected \"json\" or a JSON schema")),
            };
            let options = match l.get("options") {
                None => Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(_) => return Err(step_err("llm.options", "expected an object")),
            };
            Kind::Llm {
                system: l.str("system")?.unwrap_or_default(),
                prompt,
                model: l.str("model")?,
                format,
                options,
            }
        }
        _ => Kind::Template(f.str("template")?.ok_or_else(|| step_err("template", "expected a string"))?),
    };
    let foreach = f.str("foreach")?;
    let item = f.str("as")?.unwrap_or_else(|| "item".into());
    if ["inputs", "steps", "loop", "run"].contains(&item.as_str()) || item.contains(['.', '#', '|']) {
        return Err(step_err("as", &format!("\"{item}\" cannot name the loop variable")));
    }
    Ok(Step {
        id: id.clone(),
        kind,
        when: f.str("when")?,
        foreach,
        item,
        on_error: on_error(f.str("on_error")?.as_deref(), &f, "on_error")?
            .or(on_err)
            .unwrap_or(OnError::Fail),
        timeout: f.secs("timeout_s")?.or(timeout).unwrap_or(DEFAULT_STEP_TIMEOUT),
        retries: f.u32("retries")?.unwrap_or(0).min(10),
        always: f.bool("always")?.unwrap_or(false),
    })
}

/// The strings of a step that may hold references.
fn templates(step: &Step) -> Vec<Value> {
    let mut out: Vec<Value> = [&step.when, &step.foreach].into_iter().flatten().map(|s| json!(s)).collect();
    match &step.kind {
        Kind::Tool { args, .. } => out.push(args.clone()),
        Kind::Enhance { prompt, client } => out.extend([json!(prompt), json!(client)]),
        Kind::Llm { system, prompt, model, .. } => out.extend([json!(system), json!(prompt), json!(model)]),
        Kind::Template(t) => out.push(json!(t)),
    }
    out
}

fn check_refs(
    step: &Step,
    inputs: &BTreeSet<String>,
    earlier: &[String],
    all: &[String],
) -> std::result::Result<(), String> {
    let item = step.foreach.is_some().then_some(step.item.as_str());
    if let Some(f) = &step.foreach {
        // The list itself is worked out before the loop starts.
        for r in refs::refs_in(f)? {
            if let Some(why) = refs::check(&r, inputs, earlier, all, None) {
                return Err(format!("foreach: {why}"));
            }
        }
    }
    let found: Vec<Ref> =
        templates(step).iter().map(refs::refs_in_value).collect::<std::result::Result<Vec<_>, _>>()?.concat();
    match found.iter().find_map(|r| refs::check(r, inputs, earlier, all, item)) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

/// The line of a step's `"id": "<id>"` inside its pipeline, for messages.
fn line_of_step(text: &str, pipeline: &str, id: &str) -> Option<usize> {
    let start = text.find(&format!("\"{pipeline}\""))?;
    let needle = |s: &str| {
        let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        compact.contains(&format!("\"id\":\"{id}\""))
    };
    let first = text[..start].lines().count().max(1);
    text[start..].lines().position(needle).map(|i| first + i)
}

/// Names of the servers a pipeline's tool steps use.
pub fn servers_used(p: &Pipeline) -> BTreeSet<String> {
    p.steps
        .iter()
        .filter_map(|s| match &s.kind {
            Kind::Tool { server, .. } => Some(server.clone()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"pipelines": {"hello": {
  "description": "Greets",
  "inputs": {"who": {"type": "string"}, "times": {"type": "integer", "default": 1}},
  "required": ["who"],
  "steps": [
    {"id": "greet", "template": "hello ${inputs.who}"},
    {"id": "shout", "tool": "echo/echo", "args": {"message": "${steps.greet.text}"}, "foreach": "${inputs.who}", "as": "w"}
  ],
  "result": {"text": "${steps.shout.text}"}
}}}"#;

    #[test]
    fn a_pipeline_reads_with_its_schema_and_defaults() {
        let p = &parse_pipelines(GOOD, "p.json").unwrap()[0];
        assert_eq!(p.name, "hello");
        assert_eq!(p.schema["required"], json!(["who"]));
        assert_eq!(p.schema["properties"]["times"]["default"], 1);
        assert_eq!(p.steps[1].item, "w");
        assert_eq!(p.steps[1].on_error, OnError::Fail);
        assert_eq!(p.steps[0].timeout, DEFAULT_STEP_TIMEOUT);
        assert_eq!(servers_used(p).into_iter().collect::<Vec<_>>(), ["echo"]);
        assert!(!p.exclusive && !p.steps[1].always && p.inputs[0].under.is_none());
    }

    #[test]
    fn always_steps_exclusive_runs_and_rooted_paths_read() {
        let text = GOOD
            .replace(r#""description": "Greets","#, r#""description": "Greets", "exclusive": true,"#)
            .replace(r#""as": "w"}"#, r#""as": "w", "always": true}"#)
            .replace(r#""who": {"type": "string"}"#, r#""who": {"type": "string", "under": "vault_root"}"#);
        let p = &parse_pipelines(&text, "p.json").unwrap()[0];
        assert!(p.exclusive && p.steps[1].always && !p.steps[0].always);
        assert_eq!(p.inputs.iter().find(|i| i.name == "who").unwrap().under.as_deref(), Some("vault_root"));
        let bad = |from: &str, to: &str, want: &str| {
            let e = parse_pipelines(&text.replace(from, to), "p.json").unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        };
        bad(r#""always": true"#, r#""always": "yes""#, "always");
        bad(
            r#""under": "vault_root""#,
            r#""under": "/etc""#,
            "inputs.who.under: \"/etc\" is not one of vault_root",
        );
        bad(r#""type": "string", "under""#, r#""type": "integer", "under""#, "a path input has");
    }

    #[test]
    fn errors_name_the_file_line_step_and_path() {
        fn check(from: &str, to: &str, want: &str) {
            let text = GOOD.replace(from, to);
            let e = parse_pipelines(&text, "p.json").unwrap_err().to_string();
            assert!(e.contains(want), "{from} → {to}: {e}");
        }
        check(
            r#""template": "hello"#,
            r#""shell": "hello"#,
            "p.json:6: pipelines.hello.steps[0].shell (step \"greet\"): unknown field",
        );
        check(r#"{"id": "greet", "template": "hello ${inputs.who}"}"#, r#"{"id": "greet"}"#, "no step kind");
        check(
            "${steps.greet.text}",
            "${steps.later.text}",
            "p.json:7: pipelines.hello.steps[1] (step \"shout\"): no step with id \"later\"",
        );
        check("hello ${inputs.who}", "hello ${steps.shout.text}", "step \"shout\" comes later");
        check("hello ${inputs.who}", "hello ${inputs.nobody}", "no input named \"nobody\"");
        check("hello ${inputs.who}", "hello ${inputs.who|exec}", "unknown filter \"exec\"");
        check(
            "\"echo/echo\"",
            "\"echo\"",
            "steps[1].tool (step \"shout\"): \"echo\": expected \"server/tool\"",
        );
        check(r#""id": "shout""#, r#""id": "greet""#, "\"greet\" is used twice");
        check(r#""type": "integer""#, r#""type": "int""#, "pipelines.hello.inputs.times.type");
        check(
            r#""default": 1"#,
            r#""default": "one""#,
            "inputs.times.default: expected a value of type integer",
        );
        check(r#""required": ["who"]"#, r#""required": ["whom"]"#, "\"whom\" is not among the inputs");
        check(r#""as": "w""#, r#""as": "inputs""#, "cannot name the loop variable");
        check(
            "${steps.shout.text}\"}",
            "${steps.nope.text}\"}",
            "pipelines.hello.result: no step with id \"nope\"",
        );
        check("\"pipelines\": {", "\"pipelines\": {,", "p.json:1:");
    }
}
