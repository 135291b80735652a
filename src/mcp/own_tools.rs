//! The hub's own tools on the aggregated endpoint: `agenthub__enhance_prompt` (a prompt
//! rewritten by the local model with a client's rule) and `agenthub__pipeline_<name>` (a
//! pipeline run, with a progress notification per step).

use std::time::Duration;

use serde_json::{Value, json};

use super::aggregate::{ENHANCE_TOOL, PIPELINE_TOOL_PREFIX};
use super::{Answer, Gateway, Session, reply};
use crate::jsonrpc;

/// Longest a pipeline tool call waits for its run.
const PIPELINE_WAIT: Duration = Duration::from_secs(3600);

impl Gateway {
    /// A pipeline run as a tool call: its report as the result (`isError` when it failed),
    /// with a progress notification after each step when the caller sent a `progressToken`
    /// and takes an event stream.
    pub(super) fn pipeline_call(&self, msg: &Value, sse: bool) -> Answer {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let tool = msg.pointer("/params/name").and_then(Value::as_str).unwrap_or("");
        let name = tool.strip_prefix(PIPELINE_TOOL_PREFIX).unwrap_or("");
        let args = msg.pointer("/params/arguments").cloned().unwrap_or(Value::Null);
        let Some(pipelines) = &self.pipelines else {
            return reply(jsonrpc::error(id, jsonrpc::INVALID_PARAMS, &format!("unknown tool \"{tool}\"")));
        };
        let token = msg.pointer("/params/_meta/progressToken").cloned().filter(|_| sse);
        let (tx, rx) = crossbeam_channel::unbounded::<Value>();
        let progress: Option<crate::pipelines::Progress> = token.map(|token| {
            Box::new(move |step: &crate::pipelines::StepReport, done: usize, total: usize| {
                let message = format!("step {} {} ({} ms)", step.id, step.status, step.duration_ms);
                let params =
                    json!({"progressToken": token, "progress": done, "total": total, "message": message});
                let _ = tx.send(jsonrpc::notification("notifications/progress", Some(params)));
            }) as crate::pipelines::Progress
        });
        let streaming = progress.is_some();
        let run = match pipelines.start(name, &args, progress) {
            Ok(run) => run,
            Err(e @ crate::error::Error::NotFound(_)) => {
                return reply(jsonrpc::error(
                    id,
                    jsonrpc::INVALID_PARAMS,
                    &format!("unknown tool \"{tool}\": {e}"),
                ));
            }
            Err(e @ crate::error::Error::TooManyRequests(_)) => {
                return reply(jsonrpc::error(id, jsonrpc::SERVER_UNAVAILABLE, &e.to_string()));
            }
            Err(e) => return reply(jsonrpc::error(id, jsonrpc::INVALID_PARAMS, &e.to_string())),
        };
        let outcome = move |run: &crate::pipelines::Run| {
            let report = run.report();
            let failed = report["status"] != "ok";
            let text = serde_json::to_string_pretty(&report).unwrap_or_default();
            jsonrpc::result(
                id.clone(),
                json!({"content": [{"type": "text", "text": text}],
                                                "structuredContent": report, "isError": failed}),
            )
        };
        if !streaming {
            run.wait(PIPELINE_WAIT);
            return reply(outcome(&run));
        }
        Answer::Stream(Box::new(move |w: &mut dyn std::io::Write| {
            // The run's thread lets go of the sender when the run ends.
            for note in rx.iter() {
                if super::write_event(w, &note).is_err() {
                    return;
                }
            }
            run.wait(PIPELINE_WAIT);
            let _ = super::write_event(w, &outcome(&run));
        }))
    }

    /// The tool's `client` argument, else the session's client (`X-Client-Name`, else its
    /// `clientInfo.name` as mapped), chooses the rule.
    pub(super) fn enhance_call(&self, session: &Session, args: Option<&Value>) -> Value {
        let Some(enhancer) = &self.enhancer else {
            return json!({"content": [{"type": "text", "text": "prompt enhancement is not available"}], "isError": true});
        };
        let prompt = args.and_then(|a| a.get("prompt")).and_then(Value::as_str).unwrap_or("");
        let named = self.client_name(&session.client);
        let client = args.and_then(|a| a.get("client")).and_then(Value::as_str).or(named.as_deref());
        match enhancer.enhance(&crate::enhance::Request { prompt, client, model: None }) {
            Ok(e) => json!({
                "content": [{"type": "text", "text": e.prompt}],
                "structuredContent": serde_json::to_value(&e).unwrap_or(Value::Null),
                "isError": false
            }),
            Err(e) => json!({"content": [{"type": "text", "text": e.to_string()}], "isError": true}),
        }
    }
}

pub(super) fn enhance_tool() -> Value {
    json!({
        "name": ENHANCE_TOOL,
        "description": "Rewrite a prompt through the local model with the rules for a client (vscode, cursor, claude-desktop, raycast, ...). Returns the prompt to use: the rewritten one, or the original when the model is unavailable.",
        "inputSchema": {"type": "object", "properties": {
            "prompt": {"type": "string", "description": "The prompt to rewrite"},
            "client": {"type": "string", "description": "Whose rules to apply; default when absent"}
        }, "required": ["prompt"]}
    })
}
