//! Sampling by the local model: a server's `sampling/createMessage` answered by Ollama's
//! `/api/chat` when no client can (or should) answer it. The model is chosen deterministically
//! and the choice explained: the first of the request's `modelPreferences.hints` that is a
//! case-insensitive part of a local model's name (in hint order); else the server's
//! `sampling_model`; else, by the priorities, the smallest local model when speed or cost weigh
//! at least as much as intelligence, the largest otherwise; else the default rule's model.

use serde_json::{Map, Value, json};

use super::Service;
use super::ollama::Chatted;

/// A sampling request answered.
pub struct Sampled {
    /// The `CreateMessageResult`.
    pub result: Value,
    pub model: String,
    /// Why this model.
    pub why: String,
}

impl Service {
    /// Answers a server's `sampling/createMessage` params with the local model (behind Ollama's
    /// breaker, within `OLLAMA_TIMEOUT_S`). `configured`: the server's `sampling_model`. The
    /// error says what went wrong, for the server.
    pub fn sample(&self, params: &Value, configured: Option<&str>) -> Result<Sampled, String> {
        let body = chat_body(params)?;
        // Taken first, so a request past the cap does not even ask for the model list.
        let slot = self.slot().map_err(|f| format!("{f} ({})", f.reason()))?;
        // Without the list the hints and priorities cannot be matched; the rest still holds.
        let local = self.client.sized_models().unwrap_or_default();
        let (model, why) = choose(params, configured, &local, &self.model_for(None));
        if body.contains_key("tools") {
            let caps =
                self.client.capabilities(&model).map_err(|f| format!("the local model {model}: {f}"))?;
            if !caps.iter().any(|c| c == "tools") {
                return Err(format!(
                    "the request asks for tools, and the local model {model} does not take them (Ollama says it can: {})",
                    caps.join(", ")
                ));
            }
        }
        match self.guarded(&model, true, Some(slot), || self.client.chat_with(&model, &body), |c| c.tokens) {
            Ok(chatted) => Ok(Sampled { result: answer(&chatted), model: chatted.model, why }),
            Err(f) => Err(format!("the local model {model} could not answer: {f} ({})", f.reason())),
        }
    }
}

/// The model for a request, and why.
pub fn choose(
    params: &Value,
    configured: Option<&str>,
    local: &[(String, u64)],
    default: &str,
) -> (String, String) {
    let prefs = params.get("modelPreferences").unwrap_or(&Value::Null);
    let hints = prefs.get("hints").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for hint in hints.iter().filter_map(|h| h.get("name").and_then(Value::as_str)) {
        let wanted = hint.to_lowercase();
        if wanted.is_empty() {
            continue;
        }
        if let Some((name, _)) = local.iter().find(|(name, _)| name.to_lowercase().contains(&wanted)) {
            return (name.clone(), format!("the hint \"{hint}\" matches it"));
        }
    }
    if let Some(m) = configured.filter(|m| !m.trim().is_empty()) {
        return (m.to_string(), "the server's sampling_model".into());
    }
    let priority = |k: &str| prefs.get(k).and_then(Value::as_f64);
    let (cost, speed, smart) =
        (priority("costPriority"), priority("speedPriority"), priority("intelligencePriority"));
    if (cost.is_some() || speed.is_some() || smart.is_some()) && !local.is_empty() {
        let smart = smart.unwrap_or(0.0);
        let quick = speed.unwrap_or(0.0).max(cost.unwrap_or(0.0));
        let by_size = |(name, size): &(String, u64)| (*size, name.clone());
        let (pick, how) = match quick >= smart {
            true => (local.iter().min_by_key(|m| by_size(m)), "smallest"),
            false => (local.iter().max_by_key(|m| by_size(m)), "largest"),
        };
        if let Some((name, _)) = pick {
            let weights =
                format!("speed {}, cost {}, intelligence {smart}", speed.unwrap_or(0.0), cost.unwrap_or(0.0));
            return (name.clone(), format!("the {how} local model by the priorities ({weights})"));
        }
    }
    (default.to_string(), "the default rule's model".into())
}

/// `/api/chat` fields for a `sampling/createMessage`: the system prompt first, then each
/// message's text (images as `images`, earlier tool uses as `tool_calls`, tool results as
/// `tool` messages), the request's `tools` as functions, `maxTokens` as `num_predict`,
/// `temperature` and `stopSequences` as options. Audio is refused, saying so.
pub fn chat_body(params: &Value) -> Result<Map<String, Value>, String> {
    let mut messages = Vec::new();
    if let Some(system) = params.get("systemPrompt").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        messages.push(json!({"role": "system", "content": system}));
    }
    let given = params.get("messages").and_then(Value::as_array).ok_or("the request has no messages")?;
    for (i, m) in given.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let blocks: Vec<&Value> = match m.get("content") {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(one) => vec![one],
            None => Vec::new(),
        };
        let (mut text, mut images, mut calls) = (Vec::new(), Vec::new(), Vec::new());
        for b in blocks {
            match b.get("type").and_then(Value::as_str) {
                Some("text") => text.push(b.get("text").and_then(Value::as_str).unwrap_or("").to_string()),
                Some("image") => images.push(b.get("data").cloned().unwrap_or(Value::Null)),
                Some("tool_use") => calls.push(json!({"function": {"name": b.get("name").cloned().unwrap_or(Value::Null),
                                                                    "arguments": b.get("input").cloned().unwrap_or(json!({}))}})),
                Some("tool_result") => {
                    let inner = b.get("content").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
                    let said: Vec<&str> = inner.iter().filter_map(|c| c.get("text").and_then(Value::as_str)).collect();
                    messages.push(json!({"role": "tool", "content": said.join("\n")}));
                }
                other => {
                    return Err(format!(
                        "messages[{i}]: {} content is not something the local model takes",
                        other.unwrap_or("untyped")
                    ));
                }
            }
        }
        if text.is_empty() && images.is_empty() && calls.is_empty() {
            continue;
        }
        let mut msg = json!({"role": role, "content": text.join("\n")});
        if !images.is_empty() {
            msg["images"] = Value::Array(images);
        }
        if !calls.is_empty() {
            msg["tool_calls"] = Value::Array(calls);
        }
        messages.push(msg);
    }
    let mut options = Map::new();
    if let Some(n) = params.get("maxTokens").and_then(Value::as_u64) {
        options.insert("num_predict".into(), json!(n));
    }
    if let Some(t) = params.get("temperature").filter(|t| t.is_number()) {
        options.insert("temperature".into(), t.clone());
    }
    if let Some(stop) = params.get("stopSequences").filter(|s| s.is_array()) {
        options.insert("stop".into(), stop.clone());
    }
    let mut body = Map::new();
    body.insert("messages".into(), Value::Array(messages));
    if let Some(tools) = params.get("tools").and_then(Value::as_array).filter(|t| !t.is_empty()) {
        let functions: Vec<Value> = tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {"name": t.get("name").cloned().unwrap_or(Value::Null),
                "description": t.get("description").cloned().unwrap_or(json!("")),
                "parameters": t.get("inputSchema").cloned().unwrap_or(json!({"type": "object"}))}})
            })
            .collect();
        body.insert("tools".into(), Value::Array(functions));
    }
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    Ok(body)
}

/// A chat answer as a `CreateMessageResult`: the text, or the tool uses the model asked for
/// (`stopReason: toolUse`).
fn answer(c: &Chatted) -> Value {
    let stop = match c.done_reason.as_deref() {
        _ if !c.tool_calls.is_empty() => "toolUse",
        Some("length") => "maxTokens",
        Some("stop") | None => "endTurn",
        Some(other) => other,
    };
    if c.tool_calls.is_empty() {
        return json!({"role": "assistant", "content": {"type": "text", "text": c.text}, "model": c.model, "stopReason": stop});
    }
    let mut content: Vec<Value> = Vec::new();
    if !c.text.trim().is_empty() {
        content.push(json!({"type": "text", "text": c.text}));
    }
    for (i, call) in c.tool_calls.iter().enumerate() {
        let f = call.get("function").unwrap_or(&Value::Null);
        content.push(json!({"type": "tool_use", "id": format!("call_{i}"), "name": f.get("name").cloned().unwrap_or(Value::Null),
                            "input": f.get("arguments").cloned().unwrap_or(json!({}))}));
    }
    json!({"role": "assistant", "content": content, "model": c.model, "stopReason": stop})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_chosen_in_a_stated_order() {
        let local = [
            ("llama3.2:3b".to_string(), 2_000),
            ("qwen2.5-coder:7b".to_string(), 4_700),
            ("phi3:mini".to_string(), 1_200),
        ];
        let check = |prefs: Value, configured: Option<&str>, model: &str, why: &str| {
            let (m, w) = choose(&json!({"modelPreferences": prefs}), configured, &local, "default-model");
            assert_eq!((m.as_str(), w.contains(why)), (model, true), "{prefs} → {m}: {w}");
        };
        check(
            json!({"hints": [{"name": "claude-3"}, {"name": "QWEN"}]}),
            None,
            "qwen2.5-coder:7b",
            "hint \"QWEN\"",
        );
        check(
            json!({"hints": [{"name": "llama"}, {"name": "qwen"}]}),
            Some("phi3:mini"),
            "llama3.2:3b",
            "hint \"llama\"",
        );
        check(json!({"hints": [{"name": "gpt-4"}]}), Some("phi3:mini"), "phi3:mini", "sampling_model");
        check(json!({"speedPriority": 0.8, "intelligencePriority": 0.2}), None, "phi3:mini", "smallest");
        check(json!({"costPriority": 0.5, "intelligencePriority": 0.5}), None, "phi3:mini", "smallest");
        check(
            json!({"intelligencePriority": 0.9, "speedPriority": 0.3}),
            None,
            "qwen2.5-coder:7b",
            "largest",
        );
        check(json!({}), None, "default-model", "default rule");
        let (m, _) = choose(&json!({"modelPreferences": {"speedPriority": 1}}), None, &[], "default-model");
        assert_eq!(m, "default-model", "nothing local to weigh");
    }

    #[test]
    fn requests_map_onto_ollama_chat() {
        let params = json!({
            "systemPrompt": "be brief",
            "messages": [{"role": "user", "content": {"type": "text", "text": "hi"}},
                         {"role": "assistant", "content": [{"type": "text", "text": "yes"}, {"type": "image", "data": "AAAA", "mimeType": "image/png"}]}],
            "maxTokens": 50, "temperature": 0.2, "stopSequences": ["END"]
        });
        let body = chat_body(&params).unwrap();
        assert_eq!(
            body["messages"],
            json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "yes", "images": ["AAAA"]}])
        );
        assert_eq!(body["options"], json!({"num_predict": 50, "temperature": 0.2, "stop": ["END"]}));
        let with_tools = json!({"messages": [
                {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "add", "input": {"a": 1}}]},
                {"role": "user", "content": [{"type": "tool_result", "toolUseId": "c1", "content": [{"type": "text", "text": "2"}]}]}],
            "tools": [{"name": "add", "description": "Adds", "inputSchema": {"type": "object"}}]});
        let body = chat_body(&with_tools).unwrap();
        assert_eq!(
            body["tools"],
            json!([{"type": "function", "function": {"name": "add", "description": "Adds", "parameters": {"type": "object"}}}])
        );
        assert_eq!(
            body["messages"],
            json!([{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "add", "arguments": {"a": 1}}}]},
                                             {"role": "tool", "content": "2"}])
        );
        let audio =
            chat_body(&json!({"messages": [{"role": "user", "content": {"type": "audio", "data": ""}}]}))
                .unwrap_err();
        assert!(audio.contains("messages[0]: audio"), "{audio}");
        let a = answer(&Chatted {
            text: "t".into(),
            model: "m".into(),
            done_reason: Some("length".into()),
            tokens: (1, 2),
            tool_calls: vec![],
        });
        assert_eq!(
            a,
            json!({"role": "assistant", "content": {"type": "text", "text": "t"}, "model": "m", "stopReason": "maxTokens"})
        );
        let call = json!({"function": {"name": "add", "arguments": {"a": 1}}});
        let a = answer(&Chatted {
            text: String::new(),
            model: "m".into(),
            done_reason: Some("stop".into()),
            tokens: (0, 0),
            tool_calls: vec![call],
        });
        assert_eq!(
            a,
            json!({"role": "assistant", "content": [{"type": "tool_use", "id": "call_0", "name": "add", "input": {"a": 1}}],
                             "model": "m", "stopReason": "toolUse"})
        );
    }
}
