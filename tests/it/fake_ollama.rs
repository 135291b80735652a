//! A fake Ollama on 127.0.0.1:0 speaking the real API shapes (`GET /`, `/api/version`,
//! `/api/tags`, `POST /api/generate` with and without streaming, `/api/embed` with the
//! deterministic `embedding`, 404 `model 'X' not found`), and recording every request it
//! received. Generations and embeddings can be held (`hold`, `release`): they are recorded as
//! they come and answered once released (at the latest after `HOLD_AT_MOST`). Stops when dropped.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Longest a held generation waits for `release`.
const HOLD_AT_MOST: Duration = Duration::from_secs(60);

/// Whether generations wait, and the condvar they wait on.
#[derive(Default)]
pub struct Gate {
    held: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn pass(&self) {
        let until = Instant::now() + HOLD_AT_MOST;
        let mut held = self.held.lock().unwrap();
        while *held {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            held = self.opened.wait_timeout(held, left).unwrap().0;
        }
    }
}

use serde_json::{Value, json};

use crate::harness::Stub;

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub body: Value,
}

pub struct FakeOllama {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// Delay before answering a generation.
    pub delay: Arc<Mutex<Duration>>,
    /// Delay before answering `/api/tags`.
    pub tags_delay: Arc<Mutex<Duration>>,
    gate: Arc<Gate>,
    _server: Stub,
}

impl FakeOllama {
    pub fn start(models: &[&str]) -> FakeOllama {
        FakeOllama::start_on(0, models)
    }

    /// On a given port (0: any), e.g. to come back where the hub expects Ollama.
    pub fn start_on(port: u16, models: &[&str]) -> FakeOllama {
        let models: Vec<String> = models.iter().map(|m| m.to_string()).collect();
        let received = Arc::new(Mutex::new(Vec::new()));
        let delay = Arc::new(Mutex::new(Duration::ZERO));
        let tags_delay = Arc::new(Mutex::new(Duration::ZERO));
        let gate = Arc::new(Gate::default());
        let (rec, dl, tl, g) = (received.clone(), delay.clone(), tags_delay.clone(), gate.clone());
        let server = Stub::start(port, move |rq| {
            let delays = (*dl.lock().unwrap(), *tl.lock().unwrap());
            answer(rq, &models, &rec, delays, &g)
        });
        FakeOllama { url: server.url.clone(), received, delay, tags_delay, gate, _server: server }
    }

    /// Generations (`/api/generate`, `/api/chat`) and embeddings from now on wait until `release`.
    pub fn hold(&self) {
        *self.gate.held.lock().unwrap() = true;
    }

    /// Answers the held generations and lets the next ones through.
    pub fn release(&self) {
        *self.gate.held.lock().unwrap() = false;
        self.gate.opened.notify_all();
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        self.received.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }

    /// The `input` of each `/api/embed` request so far, in order.
    pub fn embedded(&self) -> Vec<Vec<String>> {
        let inputs = |r: &Received| match &r.body["input"] {
            Value::String(s) => vec![s.clone()],
            v => v.as_array().into_iter().flatten().map(|i| i.as_str().unwrap_or("").to_string()).collect(),
        };
        self.received("/api/embed").iter().map(inputs).collect()
    }
}

/// The fake's embedding model's sense: one dimension per group of related words (a text has 1
/// there when one of its words starts with one of the group's), and a last dimension every text
/// has, so no vector is zero.
pub const CONCEPTS: &[&[&str]] = &[
    &["sleep", "wait", "pause", "delay", "millisecond"],
    &["echo", "repeat"],
    &["pid", "process"],
    &["notification", "progress", "log"],
];

/// What the fake answers `/api/embed` with for `text`.
pub fn embedding(text: &str) -> Vec<f64> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let has = |group: &[&str]| words.iter().any(|w| group.iter().any(|g| w.starts_with(g)));
    CONCEPTS.iter().map(|group| if has(group) { 1.0 } else { 0.0 }).chain([1.0]).collect()
}

/// A model's size as its tag says (`:3b` → 3 GB), else about 2 GB.
fn size_of(model: &str) -> u64 {
    let tag = model.rsplit(':').next().unwrap_or("");
    tag.strip_suffix('b').and_then(|n| n.parse::<f64>().ok()).map_or(2_019_393_189, |b| (b * 1e9) as u64)
}

/// A value of a JSON schema's shape: objects with each property, two-item arrays, strings
/// naming the model.
fn shaped(schema: &Value, model: &str) -> Value {
    match schema["type"].as_str() {
        Some("object") | None => {
            let props = schema["properties"].as_object().cloned().unwrap_or_default();
            Value::Object(props.iter().map(|(k, s)| (k.clone(), shaped(s, model))).collect())
        }
        Some("array") if schema["items"]["type"] == "string" => {
            json!([format!("[{model}] one"), format!("[{model}] two")])
        }
        Some("array") => json!([shaped(&schema["items"], model), shaped(&schema["items"], model)]),
        Some("number") | Some("integer") => json!(1),
        Some("boolean") => json!(true),
        _ => json!(format!("[{model}] text")),
    }
}

fn answer(
    mut rq: tiny_http::Request,
    models: &[String],
    rec: &Mutex<Vec<Received>>,
    (delay, tags_delay): (Duration, Duration),
    gate: &Gate,
) {
    let mut body = String::new();
    let _ = rq.as_reader().read_to_string(&mut body);
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let path = rq.url().to_string();
    rec.lock().unwrap().push(Received {
        method: rq.method().to_string(),
        path: path.clone(),
        body: body.clone(),
    });
    let json_resp = |status: u16, v: Value| {
        tiny_http::Response::from_string(v.to_string())
            .with_status_code(status)
            .with_header(tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap())
    };
    let route = (rq.method().as_str(), path.as_str());
    match route {
        ("POST", "/api/generate") => {
            std::thread::sleep(delay);
            gate.pass();
        }
        ("POST", "/api/chat" | "/api/embed") => gate.pass(),
        ("GET", "/api/tags") => std::thread::sleep(tags_delay),
        _ => {}
    }
    let model = body["model"].as_str().unwrap_or("").to_string();
    let resp = match route {
        ("GET", "/") => tiny_http::Response::from_string("Ollama is running"),
        ("GET", "/api/version") => json_resp(200, json!({"version": "0.12.0"})),
        ("GET", "/api/tags") => json_resp(
            200,
            json!({"models": models.iter().map(|m| json!({"name": m, "model": m, "size": size_of(m),
                "digest": "a80c4f17acd5", "details": {"format": "gguf", "family": "llama"}})).collect::<Vec<_>>()}),
        ),
        ("POST", "/api/generate" | "/api/chat" | "/api/embed") if !models.contains(&model) => {
            json_resp(404, json!({"error": format!("model '{model}' not found")}))
        }
        ("POST", "/api/generate") => {
            let mut text = format!("[{model}] {}", body["prompt"].as_str().unwrap_or(""));
            if !body["format"].is_null() {
                // Asked for JSON: an answer of the schema's shape (a "json" format gets an object).
                text = shaped(&body["format"], &model).to_string();
            }
            if body["stream"] == json!(false) {
                json_resp(
                    200,
                    json!({"model": model, "created_at": "2026-11-25T00:00:00Z", "response": text,
                    "done": true, "done_reason": "stop", "total_duration": 1_000_000u64, "prompt_eval_count": 5, "eval_count": 3}),
                )
            } else {
                let lines = format!(
                    "{}\n{}\n",
                    json!({"model": model, "response": text, "done": false}),
                    json!({"model": model, "response": "", "done": true, "done_reason": "stop"})
                );
                tiny_http::Response::from_string(lines).with_header(
                    tiny_http::Header::from_bytes("Content-Type", "application/x-ndjson").unwrap(),
                )
            }
        }
        ("POST", "/api/embed") => {
            let inputs: Vec<String> = match &body["input"] {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a.iter().map(|i| i.as_str().unwrap_or("").to_string()).collect(),
                _ => Vec::new(),
            };
            json_resp(
                200,
                json!({"model": model, "embeddings": inputs.iter().map(|i| embedding(i)).collect::<Vec<_>>(),
                "total_duration": 14_143_917u64, "load_duration": 1_019_500u64, "prompt_eval_count": 8 * inputs.len()}),
            )
        }
        ("POST", "/api/show") if models.contains(&model) => {
            // Models named like qwen take tools here, the others do not.
            let caps =
                if model.contains("qwen") { json!(["completion", "tools"]) } else { json!(["completion"]) };
            json_resp(200, json!({"details": {"family": "llama"}, "capabilities": caps}))
        }
        ("POST", "/api/show") => json_resp(404, json!({"error": format!("model '{model}' not found")})),
        ("POST", "/api/chat") if body["tools"].as_array().is_some_and(|t| !t.is_empty()) => {
            // Asked with tools: a call of the first one.
            let name = body["tools"][0]["function"]["name"].clone();
            json_resp(
                200,
                json!({"model": model, "created_at": "2026-11-25T00:00:00Z",
                "message": {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": name, "arguments": {"x": 1}}}]},
                "done": true, "done_reason": "stop"}),
            )
        }
        ("POST", "/api/chat") => {
            let last = body["messages"]
                .as_array()
                .and_then(|m| m.last())
                .map(|m| m["content"].clone())
                .unwrap_or(json!(""));
            json_resp(
                200,
                json!({"model": model, "created_at": "2026-11-25T00:00:00Z",
                "message": {"role": "assistant", "content": format!("[{model}] {}", last.as_str().unwrap_or(""))},
                "done": true, "done_reason": "stop"}),
            )
        }
        _ => tiny_http::Response::from_string("404 page not found").with_status_code(404),
    };
    let _ = rq.respond(resp);
}
