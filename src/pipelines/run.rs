//! The step engine: one run, step after step. Each step may be skipped by its `when`, repeated
//! by its `foreach`, tried again by its `retries`, and bounded by its `timeout_s`; its output
//! (`text`, `json`, `status`) is what later steps reference. A failed step fails the run unless
//! its `on_error` is `continue`: the steps after it do not run, but for those marked `always`
//! (which run even while the hub stops, on servers still running), and read as `skipped`.
//! An `exclusive` pipeline's run first waits for its turn. Every step is an activity event.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use serde_json::{Map, Value, json};

use super::{Context, MAX_RESULT_BYTES, Progress, Run, Status, StepReport};
use crate::config::pipelines::{Kind, OnError, Pipeline, Step};
use crate::config::refs::{self, Loop, Output, Scope};
use crate::enhance::ollama::Generation;
use crate::exchange::Request;
use crate::servers::Status as ServerStatus;

pub(super) fn execute(
    ctx: &Context,
    p: &Pipeline,
    run: &Run,
    inputs: Map<String, Value>,
    progress: Option<Progress>,
) {
    let unix = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let date = crate::time::utc_date(unix);
    let mut outputs: HashMap<String, Output> = HashMap::new();
    if p.exclusive && ctx.turns.busy(&p.name) {
        let what = format!("{} {}: waiting for the run before it to end (one at a time)", p.name, run.id);
        ctx.activity.record("pipeline", None, what);
    }
    let _turn = p.exclusive.then(|| ctx.turns.take(&p.name));
    ctx.activity.record("pipeline", None, format!("{} {}: started", p.name, run.id));
    let mut status = Status::Ok;
    for (i, step) in p.steps.iter().enumerate() {
        if status == Status::Failed && !step.always {
            outputs.insert(step.id.clone(), Output { status: "skipped", ..Output::default() });
            continue;
        }
        let started = Instant::now();
        let scope = Scope { inputs: &inputs, steps: &outputs, item: None, run_id: &run.id, date: &date };
        let stopping = ctx.stopping.load(Ordering::SeqCst);
        let done = if stopping && !step.always {
            Done::failed("the hub is stopping".into())
        } else {
            run_step(ctx, step, &scope)
        };
        let (server, tool) = match &step.kind {
            Kind::Tool { server, tool, .. } => (Some(server.clone()), Some(tool.clone())),
            _ => (None, None),
        };
        let error = done.error.map(|e| match &server {
            Some(s) => ctx.servers.redact(s, &e),
            None => e,
        });
        let report = StepReport {
            id: step.id.clone(),
            kind: step.kind.name(),
            status: done.output.status,
            server,
            tool,
            duration_ms: started.elapsed().as_millis() as u64,
            error,
            items: done.items,
            retried: done.retried,
        };
        let what = match &report.error {
            Some(e) => format!(
                "{} {}: step {} {} after {} ms: {e}",
                p.name, run.id, step.id, report.status, report.duration_ms
            ),
            None => format!(
                "{} {}: step {} {} in {} ms",
                p.name, run.id, step.id, report.status, report.duration_ms
            ),
        };
        ctx.activity.record("pipeline", report.server.as_deref(), what);
        let failed = report.status == "failed";
        if let Some(f) = &progress {
            f(&report, i + 1, p.steps.len());
        }
        run.step_done(report);
        outputs.insert(step.id.clone(), done.output);
        if failed && (step.on_error == OnError::Fail || ctx.stopping.load(Ordering::SeqCst)) {
            status = Status::Failed;
        }
    }
    let result = match status {
        Status::Ok => {
            let scope = Scope { inputs: &inputs, steps: &outputs, item: None, run_id: &run.id, date: &date };
            match refs::resolve(&p.result, &scope) {
                Ok(v) => v,
                Err(e) => {
                    status = Status::Failed;
                    json!({"error": format!("result: {e}")})
                }
            }
        }
        _ => Value::Null,
    };
    let size = serde_json::to_vec(&result).map_or(0, |v| v.len());
    let result = if size > MAX_RESULT_BYTES {
        status = Status::Failed;
        json!({"error": format!(
            "result: {size} bytes, over the {MAX_RESULT_BYTES} a run keeps (return a path or a summary instead)"
        )})
    } else {
        result
    };
    let word = if status == Status::Ok { "ok" } else { "failed" };
    ctx.activity.record(
        "pipeline",
        None,
        format!("{} {}: {word} in {} ms", p.name, run.id, run.started.elapsed().as_millis()),
    );
    run.finish(status, result);
}

/// How a step ended.
struct Done {
    output: Output,
    error: Option<String>,
    items: Option<usize>,
    retried: u32,
}

impl Done {
    fn failed(error: String) -> Done {
        Done {
            output: Output { status: "failed", ..Output::default() },
            error: Some(error),
            items: None,
            retried: 0,
        }
    }
}

fn run_step(ctx: &Context, step: &Step, scope: &Scope) -> Done {
    if let Some(when) = &step.when {
        match refs::resolve(&json!(when), scope) {
            Ok(v) if refs::truthy(&v) => {}
            Ok(_) => {
                return Done {
                    output: Output { status: "skipped", ..Output::default() },
                    error: None,
                    items: None,
                    retried: 0,
                };
            }
            Err(e) => return Done::failed(format!("when: {e}")),
        }
    }
    let Some(foreach) = &step.foreach else {
        return match attempt(ctx, step, scope) {
            (Ok((text, json)), retried) => {
                Done { output: Output { status: "ok", text, json }, error: None, items: None, retried }
            }
            (Err(e), retried) => Done { retried, ..Done::failed(e) },
        };
    };
    let items = match refs::resolve(&json!(foreach), scope) {
        Ok(Value::Array(items)) => items,
        Ok(Value::Null) => Vec::new(),
        Ok(Value::String(s)) => match serde_json::from_str(&s) {
            Ok(Value::Array(items)) => items,
            _ => return Done::failed(format!("foreach: expected a list, got the text {:?}", short(&s))),
        },
        Ok(v) => return Done::failed(format!("foreach: expected a list, got {}", short(&v.to_string()))),
        Err(e) => return Done::failed(format!("foreach: {e}")),
    };
    let (mut texts, mut jsons, mut retried) = (Vec::new(), Vec::new(), 0);
    for (index, item) in items.iter().enumerate() {
        let inner = Scope {
            inputs: scope.inputs,
            steps: scope.steps,
            item: Some((&step.item, item, Loop { index, count: items.len() })),
            run_id: scope.run_id,
            date: scope.date,
        };
        let (got, r) = attempt(ctx, step, &inner);
        retried += r;
        match got {
            Ok((text, json)) => {
                jsons.push(if json.is_null() { json!(text) } else { json });
                texts.push(text);
            }
            Err(e) => {
                let mut d = Done::failed(format!("item {index}: {e}"));
                (d.items, d.retried) = (Some(index + 1), retried);
                return d;
            }
        }
    }
    Done {
        output: Output { status: "ok", text: texts.join("\n"), json: Value::Array(jsons) },
        error: None,
        items: Some(items.len()),
        retried,
    }
}

/// The step's kind, tried again up to `retries` times; the outcome and the tries beyond the first.
fn attempt(ctx: &Context, step: &Step, scope: &Scope) -> (Result<(String, Value), String>, u32) {
    let mut tries = 0;
    loop {
        let got = perform(ctx, step, scope);
        if got.is_ok() || tries >= step.retries || ctx.stopping.load(Ordering::SeqCst) {
            return (got, tries);
        }
        tries += 1;
    }
}

/// One try of a step's kind: its text and JSON.
fn perform(ctx: &Context, step: &Step, scope: &Scope) -> Result<(String, Value), String> {
    match &step.kind {
        Kind::Tool { server, tool, args } => {
            let args = refs::resolve(args, scope)?;
            let result = call_tool(ctx, server, tool, args, Instant::now() + step.timeout)?;
            tool_output(&result)
        }
        Kind::Enhance { prompt, client } => {
            let prompt = refs::render(prompt, scope)?;
            let client = client.as_deref().map(|c| refs::render(c, scope)).transpose()?;
            let req = crate::enhance::Request {
                prompt: &prompt,
                client: client.as_deref().filter(|c| !c.is_empty()),
                model: None,
            };
            let e = ctx.enhancer.enhance(&req).map_err(|e| e.to_string())?;
            Ok((e.prompt.clone(), serde_json::to_value(&e).unwrap_or(Value::Null)))
        }
        Kind::Llm { system, prompt, model, format, options } => {
            let (system, prompt) = (refs::render(system, scope)?, refs::render(prompt, scope)?);
            let model = match model {
                Some(m) => refs::render(m, scope)?,
                None => ctx.enhancer.model_for(None),
            };
            let g = Generation {
                model: &model,
                prompt: &prompt,
                system: &system,
                options,
                format: format.as_ref(),
            };
            let answer = ctx.enhancer.complete(&g).map_err(|f| format!("{f} ({})", f.reason()))?;
            let text = answer.response.trim().to_string();
            let json = match (format, serde_json::from_str::<Value>(&text)) {
                (_, Ok(v)) => v,
                (Some(_), Err(e)) => {
                    return Err(format!("the model's answer is not the JSON asked for: {e}"));
                }
                (None, Err(_)) => Value::Null,
            };
            Ok((text, json))
        }
        Kind::Template(t) => {
            let text = refs::render(t, scope)?;
            let json = serde_json::from_str(&text).unwrap_or(Value::Null);
            Ok((text, json))
        }
    }
}

/// A tool call through the one call path; a server that is not running is started for use
/// first (not one a person stopped, and not once the hub stops: an `always` step then only
/// reaches servers still running).
fn call_tool(ctx: &Context, server: &str, tool: &str, args: Value, until: Instant) -> Result<Value, String> {
    let snap = ctx.servers.get(server).ok_or_else(|| format!("no server named \"{server}\""))?;
    if snap.info.status != ServerStatus::Running {
        if ctx.stopping.load(Ordering::SeqCst) {
            return Err(format!("the hub is stopping and server {server} is not running"));
        }
        ctx.servers.start_for_use(server).map_err(|e| e.to_string())?;
    }
    let params = json!({"name": tool, "arguments": args});
    let mut call =
        ctx.servers.acquire(server, Request::own("tools/call", Some(params))).map_err(|e| e.to_string())?;
    call.last_until(Some(until));
    call.wait_until(until).map_err(|e| e.message)
}

/// A tool result as a step's output: the text of its content, and its structured content (or
/// the text when that is JSON). server-filesystem puts its JSON inside a `content` string of
/// `structuredContent`: that string is read as the JSON. `isError` fails the step.
fn tool_output(result: &Value) -> Result<(String, Value), String> {
    let text = result
        .get("content")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
        })
        .unwrap_or_default();
    if result.get("isError") == Some(&json!(true)) {
        return Err(if text.is_empty() { "the tool reported an error".into() } else { short(&text) });
    }
    let parsed = |s: &str| serde_json::from_str::<Value>(s).ok();
    let json = match result.get("structuredContent") {
        Some(Value::Object(m)) if m.len() == 1 && m.get("content").is_some_and(Value::is_string) => m
            .get("content")
            .and_then(Value::as_str)
            .and_then(parsed)
            .unwrap_or_else(|| Value::Object(m.clone())),
        Some(v) if !v.is_null() => v.clone(),
        _ => parsed(&text).unwrap_or(Value::Null),
    };
    Ok((text, json))
}

/// At most 300 characters of a message.
fn short(s: &str) -> String {
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_results_become_text_and_json() {
        let check = |result: Value, want: Result<(&str, Value), &str>| {
            let got = tool_output(&result);
            assert_eq!(got, want.map(|(t, j)| (t.to_string(), j)).map_err(str::to_string), "{result}");
        };
        check(
            json!({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}),
            Ok(("a\nb", Value::Null)),
        );
        check(
            json!({"content": [{"type": "text", "text": "{\"n\": 1}"}]}),
            Ok(("{\"n\": 1}", json!({"n": 1}))),
        );
        check(json!({"content": [], "structuredContent": {"sum": 3}}), Ok(("", json!({"sum": 3}))));
        let tree = r#"[{"name":"src","type":"directory"}]"#;
        check(
            json!({"content": [{"type": "text", "text": tree}], "structuredContent": {"content": tree}}),
            Ok((tree, json!([{"name": "src", "type": "directory"}]))),
        );
        check(
            json!({"content": [{"type": "text", "text": "no such file"}], "isError": true}),
            Err("no such file"),
        );
        check(json!({"content": [], "isError": true}), Err("the tool reported an error"));
    }
}
