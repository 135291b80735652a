//! Client for a local Ollama over its HTTP API (through one shared ureq agent), and `Probe`: a
//! background thread keeping a recent reachability result so `/health` never waits on Ollama.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};

/// How long a probe result counts as current.
const PROBE_TTL: Duration = Duration::from_secs(3);
/// Longest an `/api/embed` may take (less when `OLLAMA_TIMEOUT_S` is less): a tool search
/// waits for it, and a model loading from disk still fits.
const EMBED_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Client {
    base: String,
    /// Short deadlines: reachability and model listing must not hold `/health`.
    quick: ureq::Agent,
    /// Generations: the configured deadline (`OLLAMA_TIMEOUT_S`).
    slow: ureq::Agent,
    /// Embeddings: the quick connect (a dead Ollama costs half a second), `EMBED_TIMEOUT`.
    embedding: ureq::Agent,
    timeout: Duration,
}

/// One `POST /api/generate`.
pub struct Generation<'a> {
    pub model: &'a str,
    pub prompt: &'a str,
    pub system: &'a str,
    pub options: &'a Map<String, Value>,
    pub format: Option<&'a Value>,
}

/// How a call to Ollama failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Nothing answers at the address (refused, no route, name unknown).
    Unreachable(String),
    /// No answer within the deadline.
    Timeout,
    /// Ollama does not have the model (404 `model 'X' not found`).
    ModelNotFound(String),
    /// Any other status, with Ollama's `error` text.
    Status(u16, String),
    /// An answer that is not what the API documents.
    BadAnswer(String),
    /// Ollama's circuit breaker is open: not asked at all.
    BreakerOpen,
    /// As many generations as the hub allows at once (`AGENTHUB_MAX_GENERATIONS`, the number)
    /// are under way: not asked at all.
    Busy(usize),
}

impl Failure {
    /// The `reason` the enhancement API reports.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::Unreachable(_) => "ollama_unreachable",
            Failure::Timeout => "timeout",
            Failure::ModelNotFound(_) => "model_not_found",
            Failure::Status(..) | Failure::BadAnswer(_) => "ollama_error",
            Failure::BreakerOpen => "breaker_open",
            Failure::Busy(_) => "busy",
        }
    }

    /// Whether it says Ollama itself is unwell (for the breaker); a missing model does not.
    pub fn is_outage(&self) -> bool {
        match self {
            Failure::Unreachable(_) | Failure::Timeout => true,
            Failure::Status(s, _) => *s >= 500,
            Failure::ModelNotFound(_) | Failure::BadAnswer(_) | Failure::BreakerOpen | Failure::Busy(_) => {
                false
            }
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unreachable(e) => write!(f, "ollama is unreachable: {e}"),
            Failure::Timeout => f.write_str("ollama did not answer in time"),
            Failure::ModelNotFound(m) => write!(f, "{m}"),
            Failure::Status(s, e) => write!(f, "ollama answered {s}: {e}"),
            Failure::BadAnswer(e) => write!(f, "unexpected answer from ollama: {e}"),
            Failure::BreakerOpen => f.write_str("ollama's circuit breaker is open"),
            Failure::Busy(max) => write!(
                f,
                "the local model is busy: {max} generations are under way, the most at once (AGENTHUB_MAX_GENERATIONS)"
            ),
        }
    }
}

/// One chat answer.
#[derive(Debug, Clone)]
pub struct Chatted {
    pub text: String,
    pub model: String,
    /// `stop`, `length`, ...
    pub done_reason: Option<String>,
    /// Prompt and completion tokens, as Ollama counted them.
    pub tokens: (u64, u64),
    /// The tools the model asked to call (`message.tool_calls`).
    pub tool_calls: Vec<Value>,
}

/// One generation.
#[derive(Debug, Clone)]
pub struct Generated {
    pub response: String,
    pub model: String,
    /// Ollama's `prompt_eval_count` and `eval_count` (0 when it does not say).
    pub tokens: (u64, u64),
}

#[derive(Deserialize)]
struct Tags {
    #[serde(default)]
    models: Vec<TagModel>,
}

#[derive(Deserialize)]
struct TagModel {
    name: String,
    #[serde(default)]
    size: u64,
}

fn failure(e: ureq::Error) -> Failure {
    match e {
        ureq::Error::Timeout(_) => Failure::Timeout,
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => Failure::Timeout,
        e => Failure::Unreachable(e.to_string()),
    }
}

impl Client {
    pub fn new(base_url: &str, timeout: Duration) -> Client {
        Client {
            base: base_url.trim_end_matches('/').to_string(),
            quick: crate::http_agent(Duration::from_millis(500), Some(Duration::from_secs(2))),
            slow: crate::http_agent(Duration::from_secs(2), Some(timeout)),
            embedding: crate::http_agent(Duration::from_millis(500), Some(timeout.min(EMBED_TIMEOUT))),
            timeout,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `GET /`: Ollama answers 200 "Ollama is running".
    pub fn health(&self) -> Result<()> {
        let resp = self
            .quick
            .get(&self.base)
            .call()
            .map_err(|e| Error::Upstream(format!("ollama at {} unreachable: {e}", self.base)))?;
        match resp.status().as_u16() {
            200 => Ok(()),
            s => Err(Error::Upstream(format!("ollama at {} answered {s}", self.base))),
        }
    }

    /// `GET /api/tags`: the names of the models pulled locally.
    pub fn models(&self) -> Result<Vec<String>> {
        Ok(self
            .sized_models()
            .map_err(|e| Error::Upstream(e.to_string()))?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }

    /// `GET /api/tags`: the models pulled locally with their sizes in bytes.
    pub fn sized_models(&self) -> std::result::Result<Vec<(String, u64)>, Failure> {
        let tags = self.get_json(&self.quick, "/api/tags")?;
        let tags: Tags =
            serde_json::from_value(tags).map_err(|e| Failure::BadAnswer(format!("/api/tags: {e}")))?;
        Ok(tags.models.into_iter().map(|m| (m.name, m.size)).collect())
    }

    /// `GET /api/version`.
    pub fn version(&self) -> std::result::Result<String, Failure> {
        let v = self.get_json(&self.quick, "/api/version")?;
        v.get("version")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Failure::BadAnswer("no version".into()))
    }

    /// `POST /api/generate` with `stream: false`: one answer object.
    pub fn generate(
        &self,
        model: &str,
        prompt: &str,
        system: &str,
        options: &Map<String, Value>,
    ) -> std::result::Result<Generated, Failure> {
        self.generate_with(&Generation { model, prompt, system, options, format: None })
    }

    /// As `generate`, with every field of the request (`format`: `"json"` or a JSON schema).
    pub fn generate_with(&self, g: &Generation) -> std::result::Result<Generated, Failure> {
        let (model, prompt) = (g.model, g.prompt);
        let mut body = json!({"model": model, "prompt": prompt, "stream": false});
        if !g.system.is_empty() {
            body["system"] = json!(g.system);
        }
        if !g.options.is_empty() {
            body["options"] = Value::Object(g.options.clone());
        }
        if let Some(f) = g.format {
            body["format"] = f.clone();
        }
        let v = self.post_json("/api/generate", &body, model)?;
        let response = v
            .get("response")
            .and_then(Value::as_str)
            .ok_or_else(|| Failure::BadAnswer("no \"response\"".into()))?;
        Ok(Generated {
            response: response.to_string(),
            model: v.get("model").and_then(Value::as_str).unwrap_or(model).to_string(),
            tokens: tokens_of(&v),
        })
    }

    /// `POST /api/chat` with `stream: false` and the given body fields (`messages`, `options`,
    /// ...): the assistant's text, the model that answered and why it stopped.
    pub fn chat_with(
        &self,
        model: &str,
        fields: &Map<String, Value>,
    ) -> std::result::Result<Chatted, Failure> {
        let mut body = Value::Object(fields.clone());
        body["model"] = json!(model);
        body["stream"] = json!(false);
        let v = self.post_json("/api/chat", &body, model)?;
        let text = v
            .pointer("/message/content")
            .and_then(Value::as_str)
            .ok_or_else(|| Failure::BadAnswer("no message content".into()))?;
        Ok(Chatted {
            text: text.to_string(),
            model: v.get("model").and_then(Value::as_str).unwrap_or(model).to_string(),
            done_reason: v.get("done_reason").and_then(Value::as_str).map(str::to_string),
            tokens: tokens_of(&v),
            tool_calls: v
                .pointer("/message/tool_calls")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        })
    }

    /// `POST /api/show`: what a model can do (`completion`, `tools`, `vision`, ...).
    pub fn capabilities(&self, model: &str) -> std::result::Result<Vec<String>, Failure> {
        let v = self.post_json("/api/show", &json!({"model": model}), model)?;
        let caps = v.get("capabilities").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(caps.iter().filter_map(Value::as_str).map(str::to_string).collect())
    }

    /// `POST /api/chat` with `stream: false`: the assistant's message text.
    pub fn chat(
        &self,
        model: &str,
        messages: &[Value],
        options: &Map<String, Value>,
    ) -> std::result::Result<String, Failure> {
        let mut fields = Map::new();
        fields.insert("messages".into(), Value::Array(messages.to_vec()));
        if !options.is_empty() {
            fields.insert("options".into(), Value::Object(options.clone()));
        }
        self.chat_with(model, &fields).map(|c| c.text)
    }

    /// `POST /api/embed`: one vector per input, in order (`truncate`: an input past the model's
    /// context is cut, not refused).
    pub fn embed(&self, model: &str, inputs: &[String]) -> std::result::Result<Vec<Vec<f32>>, Failure> {
        #[derive(Deserialize)]
        struct Embedded {
            embeddings: Vec<Vec<f32>>,
        }
        let body = json!({"model": model, "input": inputs, "truncate": true});
        let v = self.post_json_on(&self.embedding, "/api/embed", &body, model)?;
        let e: Embedded =
            serde_json::from_value(v).map_err(|e| Failure::BadAnswer(format!("/api/embed: {e}")))?;
        if e.embeddings.len() != inputs.len() {
            return Err(Failure::BadAnswer(format!(
                "/api/embed: {} embeddings for {} inputs",
                e.embeddings.len(),
                inputs.len()
            )));
        }
        Ok(e.embeddings)
    }

    fn get_json(&self, agent: &ureq::Agent, path: &str) -> std::result::Result<Value, Failure> {
        let mut resp = agent.get(format!("{}{path}", self.base)).call().map_err(failure)?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().map_err(failure)?;
        if status != 200 {
            return Err(Failure::Status(status, error_text(&text)));
        }
        serde_json::from_str(&text).map_err(|e| Failure::BadAnswer(e.to_string()))
    }

    fn post_json(&self, path: &str, body: &Value, model: &str) -> std::result::Result<Value, Failure> {
        self.post_json_on(&self.slow, path, body, model)
    }

    fn post_json_on(
        &self,
        agent: &ureq::Agent,
        path: &str,
        body: &Value,
        model: &str,
    ) -> std::result::Result<Value, Failure> {
        let mut resp = agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .map_err(failure)?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().map_err(failure)?;
        match status {
            200 => serde_json::from_str(&text).map_err(|e| Failure::BadAnswer(e.to_string())),
            404 => {
                let e = error_text(&text);
                Err(Failure::ModelNotFound(if e.is_empty() {
                    format!("model '{model}' not found")
                } else {
                    e
                }))
            }
            s => Err(Failure::Status(s, error_text(&text))),
        }
    }
}

/// The prompt and completion token counts of an answer (0 when Ollama leaves them out).
fn tokens_of(v: &Value) -> (u64, u64) {
    let count = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    (count("prompt_eval_count"), count("eval_count"))
}

/// Ollama's `{"error": "..."}`, or the text itself.
fn error_text(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

/// The last reachability result.
#[derive(Debug, Clone, Default)]
pub struct Reachability {
    pub up: bool,
    pub models: Vec<String>,
    pub checked_at: Option<Instant>,
}

enum Msg {
    Probe,
    Stop,
}

/// Keeps `Reachability` fresh on a thread of its own; readers never block on the network.
pub struct Probe {
    last: std::sync::Arc<Mutex<Reachability>>,
    tx: Sender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Probe {
    pub fn start(client: std::sync::Arc<Client>) -> Probe {
        let last = std::sync::Arc::new(Mutex::new(Reachability::default()));
        let (tx, rx) = crossbeam_channel::bounded(1);
        let shared = last.clone();
        let thread = std::thread::Builder::new()
            .name("ollama-probe".into())
            .spawn(move || probe_loop(&client, &shared, &rx))
            .expect("spawn the ollama-probe thread");
        let probe = Probe { last, tx, thread: Mutex::new(Some(thread)) };
        probe.refresh();
        probe
    }

    /// The last result; asks for a new one when it is older than the TTL.
    pub fn current(&self, now: Instant) -> Reachability {
        let last = self.last.lock().clone();
        if last.checked_at.is_none_or(|t| now.saturating_duration_since(t) > PROBE_TTL) {
            self.refresh();
        }
        last
    }

    /// Records a result learned elsewhere (a generation that failed or succeeded).
    pub fn record(&self, up: bool, now: Instant) {
        let mut last = self.last.lock();
        last.up = up;
        last.checked_at = Some(now);
    }

    fn refresh(&self) {
        // A full queue means a probe is already pending.
        if let Err(TrySendError::Disconnected(_)) = self.tx.try_send(Msg::Probe) {
            log::debug!("ollama probe thread has stopped");
        }
    }

    pub fn stop(&self) {
        let _ = self.tx.send_timeout(Msg::Stop, Duration::from_secs(1));
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

fn probe_loop(client: &Client, last: &Mutex<Reachability>, rx: &Receiver<Msg>) {
    while let Ok(Msg::Probe) = rx.recv() {
        let up = client.health().is_ok();
        let models = if up { client.models().unwrap_or_default() } else { Vec::new() };
        let was_up = {
            let mut l = last.lock();
            let was = l.up && l.checked_at.is_some();
            *l = Reachability { up, models, checked_at: Some(Instant::now()) };
            was
        };
        if was_up != up {
            log::info!("ollama at {} is {}", client.base_url(), if up { "up" } else { "down" });
        }
    }
}
