//! Prompt enhancement through a local Ollama model: the client's rule (by `X-Client-Name`),
//! the prompt cache, Ollama's circuit breaker, and per-model statistics. When the model is away
//! the original prompt comes back with the reason: enhancement never fails a caller. Every
//! generation (enhancement, pipelines' `llm` steps, sampling) holds one of a bounded number of
//! `Slot`s while it asks Ollama; with none free it is refused at once (`Failure::Busy`).
//! `rerank`: the tool search's ranking reordered by an embedding model, when one is configured.

pub mod ollama;
mod rerank;
pub mod sampling;

pub use rerank::Reranker;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use crate::cache::{CacheStats, LruCache, hash_parts};
use crate::config::Rules;
use crate::error::{Error, Result};
use crate::resilience::Breakers;

/// The name of Ollama's breaker in the registry.
pub const BREAKER: &str = "ollama";
/// Longest prompt accepted, in bytes.
pub const MAX_PROMPT_BYTES: usize = 32 * 1024;

/// One enhanced prompt as cached.
#[derive(Debug, Clone)]
struct Cached {
    prompt: String,
    model: String,
    /// The rule it was made by: a reload that changes the rule drops it.
    rule: String,
}

/// What to enhance.
pub struct Request<'a> {
    pub prompt: &'a str,
    /// From `X-Client-Name`, else the body's `client`.
    pub client: Option<&'a str>,
    /// Overrides the rule's model.
    pub model: Option<&'a str>,
}

/// The answer: `prompt` is the text to use.
#[derive(Debug, Clone, Serialize)]
pub struct Enhancement {
    pub prompt: String,
    pub original: String,
    pub enhanced: bool,
    pub model: String,
    pub cached: bool,
    /// The rule applied: the client's name, or `default`.
    pub client: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// Calls, errors and latency of one model.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ModelStats {
    pub calls: u64,
    /// Of those, sampling requests of MCP servers answered by the model.
    pub sampling: u64,
    pub errors: u64,
    pub total_ms: f64,
    pub last_ms: f64,
}

/// How far `prepare` got without the model.
pub enum Prepared {
    Answer(Enhancement),
    /// The model must be asked (`generate`); the rewrite is cached under this key.
    Generate(CacheKey),
}

pub struct CacheKey(String);

/// A place among the generations asked of Ollama at once; given back when dropped.
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct Service {
    /// Swapped whole by a reload: a request reads one set of rules from start to end.
    rules: RwLock<Arc<Rules>>,
    pub client: Arc<ollama::Client>,
    pub probe: ollama::Probe,
    cache: Mutex<LruCache<Cached>>,
    breakers: Arc<Breakers>,
    stats: Mutex<BTreeMap<String, ModelStats>>,
    /// Generations under way, at most `max_generations`.
    generating: Arc<AtomicUsize>,
    max_generations: usize,
    /// The tool search's reranking, with `AGENTHUB_EMBED_MODEL`.
    embeddings: Option<rerank::Embeddings>,
}

/// How the service reaches Ollama and how much it asks of it.
pub struct Limits {
    pub timeout: Duration,
    pub cache_size: usize,
    /// Generations at once.
    pub max_generations: usize,
    /// The model that reranks the tool search (`AGENTHUB_EMBED_MODEL`); None: no reranking.
    pub embed_model: Option<String>,
}

impl Service {
    pub fn new(rules: Rules, ollama_url: &str, limits: Limits, breakers: Arc<Breakers>) -> Service {
        let Limits { timeout, cache_size, max_generations, embed_model } = limits;
        let client = Arc::new(ollama::Client::new(ollama_url, timeout));
        Service {
            rules: RwLock::new(Arc::new(rules)),
            probe: ollama::Probe::start(client.clone()),
            client,
            cache: Mutex::new(LruCache::new(cache_size)),
            breakers,
            stats: Mutex::new(BTreeMap::new()),
            generating: Arc::new(AtomicUsize::new(0)),
            max_generations: max_generations.max(1),
            embeddings: embed_model.map(rerank::Embeddings::new),
        }
    }

    /// A place for one generation, or `Failure::Busy` when all are taken.
    pub fn slot(&self) -> std::result::Result<Slot, ollama::Failure> {
        let max = self.max_generations;
        self.generating
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < max).then_some(n + 1))
            .map(|_| Slot(self.generating.clone()))
            .map_err(|_| ollama::Failure::Busy(max))
    }

    pub fn rules(&self) -> Arc<Rules> {
        self.rules.read().clone()
    }

    /// Swaps in reloaded rules at once; the cache keeps what the unchanged rules made. Returns
    /// the names of the rules that changed (`default` for the default rule).
    pub fn set_rules(&self, rules: Rules) -> Vec<String> {
        let old = self.rules();
        let mut changed: Vec<String> = Vec::new();
        if old.default != rules.default {
            changed.push("default".into());
        }
        for name in old.clients.keys().chain(rules.clients.keys()) {
            if old.clients.get(name) != rules.clients.get(name) && !changed.contains(name) {
                changed.push(name.clone());
            }
        }
        *self.rules.write() = Arc::new(rules);
        if !changed.is_empty() {
            self.cache.lock().retain(|c| !changed.contains(&c.rule));
        }
        changed
    }

    pub fn stop(&self) {
        self.probe.stop();
    }

    /// Enhances a prompt by the client's rule; errors only for bad input (empty, too large).
    /// May wait on Ollama for up to its timeout.
    pub fn enhance(&self, req: &Request) -> Result<Enhancement> {
        match self.prepare(req)? {
            Prepared::Answer(a) => Ok(a),
            Prepared::Generate(key) => Ok(self.generate(req, key)),
        }
    }

    fn answer(
        &self,
        req: &Request,
        prompt: String,
        enhanced: bool,
        cached: bool,
        reason: Option<&'static str>,
    ) -> Enhancement {
        let rules = self.rules();
        let (client, rule) = rules.for_client(req.client);
        let result = match (cached, enhanced) {
            (true, _) => "cached",
            (false, true) => "enhanced",
            (false, false) => reason.unwrap_or("not_enhanced"),
        };
        crate::metrics::global().enhance(client, result);
        Enhancement {
            prompt,
            original: req.prompt.to_string(),
            enhanced,
            model: req.model.filter(|m| !m.trim().is_empty()).unwrap_or(&rule.model).to_string(),
            cached,
            client: client.to_string(),
            reason,
        }
    }

    /// What can be answered without the model (bad input, a disabled rule, a cached rewrite),
    /// or what `generate` needs to ask it: the model may take seconds, so a caller on an HTTP
    /// worker asks from a thread of its own.
    pub fn prepare(&self, req: &Request) -> Result<Prepared> {
        if req.prompt.trim().is_empty() {
            return Err(Error::BadRequest("\"prompt\" must not be empty".into()));
        }
        if req.prompt.len() > MAX_PROMPT_BYTES {
            return Err(Error::PayloadTooLarge(format!("prompt exceeds {MAX_PROMPT_BYTES} bytes")));
        }
        let rules = self.rules();
        let (_, rule) = rules.for_client(req.client);
        if !rule.enabled {
            return Ok(Prepared::Answer(self.answer(
                req,
                req.prompt.to_string(),
                false,
                false,
                Some("disabled"),
            )));
        }
        let model = req.model.filter(|m| !m.trim().is_empty()).unwrap_or(&rule.model);
        let options = serde_json::Value::Object(rule.options.clone()).to_string();
        let key = hash_parts(&[&rule.system_prompt, &options, model, req.prompt]);
        if let Some(hit) = self.cache.lock().get(&key) {
            let mut a = self.answer(req, hit.prompt, true, true, None);
            a.model = hit.model;
            return Ok(Prepared::Answer(a));
        }
        Ok(Prepared::Generate(CacheKey(key)))
    }

    /// Asks the model; every failure (no slot free included: `busy`) becomes the original
    /// prompt with a reason.
    pub fn generate(&self, req: &Request, key: CacheKey) -> Enhancement {
        match self.slot() {
            Ok(slot) => self.generate_in(req, key, slot),
            Err(f) => self.answer(req, req.prompt.to_string(), false, false, Some(f.reason())),
        }
    }

    /// `generate` in a slot the caller already holds (one taken before the work left the worker).
    pub fn generate_in(&self, req: &Request, CacheKey(key): CacheKey, slot: Slot) -> Enhancement {
        let rules = self.rules();
        let (rule_name, rule) = rules.for_client(req.client);
        let model = req.model.filter(|m| !m.trim().is_empty()).unwrap_or(&rule.model).to_string();
        let answer = |prompt: String, enhanced: bool, reason: Option<&'static str>| {
            self.answer(req, prompt, enhanced, false, reason)
        };
        let g = ollama::Generation {
            model: &model,
            prompt: req.prompt,
            system: &rule.system_prompt,
            options: &rule.options,
            format: None,
        };
        match self.complete_in(&g, slot) {
            Ok(g) => {
                let text = g.response.trim().to_string();
                if text.is_empty() {
                    return answer(req.prompt.to_string(), false, Some("ollama_error"));
                }
                self.cache.lock().set(
                    key,
                    Cached { prompt: text.clone(), model: g.model.clone(), rule: rule_name.to_string() },
                );
                let mut a = answer(text, true, None);
                a.model = g.model;
                a
            }
            Err(f) => {
                if !matches!(f, ollama::Failure::BreakerOpen | ollama::Failure::Busy(_)) {
                    log::warn!("enhancement with {model} fell back to the original prompt: {f}");
                }
                answer(req.prompt.to_string(), false, Some(f.reason()))
            }
        }
    }

    /// One generation behind Ollama's breaker, counted in the model's stats (enhancement and
    /// pipelines' `llm` steps alike). An open breaker is `Failure::BreakerOpen`, no free slot
    /// `Failure::Busy`.
    pub fn complete(
        &self,
        g: &ollama::Generation,
    ) -> std::result::Result<ollama::Generated, ollama::Failure> {
        self.complete_in(g, self.slot()?)
    }

    fn complete_in(
        &self,
        g: &ollama::Generation,
        slot: Slot,
    ) -> std::result::Result<ollama::Generated, ollama::Failure> {
        self.guarded(g.model, false, Some(slot), || self.client.generate_with(g), |r| r.tokens)
    }

    /// A call to Ollama for `model` behind its breaker, in its slot when it takes one (held until
    /// it ends; an embedding takes none), counted in the model's stats (`sampling`: counted
    /// apart too), its outcome telling the probe and the breaker.
    fn guarded<T>(
        &self,
        model: &str,
        sampling: bool,
        _slot: Option<Slot>,
        call: impl FnOnce() -> std::result::Result<T, ollama::Failure>,
        tokens: impl Fn(&T) -> (u64, u64),
    ) -> std::result::Result<T, ollama::Failure> {
        if !self.breakers.allow(BREAKER, Instant::now()) {
            return Err(ollama::Failure::BreakerOpen);
        }
        let started = Instant::now();
        let result = call();
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let (outcome, tokens) = match &result {
            Ok(r) => ("ok", tokens(r)),
            Err(f) => (f.reason(), (0, 0)),
        };
        crate::metrics::global().ollama(model, outcome, started.elapsed(), tokens);
        {
            let mut stats = self.stats.lock();
            let s = stats.entry(model.to_string()).or_default();
            s.calls += 1;
            s.sampling += u64::from(sampling);
            s.total_ms += ms;
            s.last_ms = ms;
            if result.is_err() {
                s.errors += 1;
            }
        }
        match &result {
            Ok(_) => {
                self.breakers.record_success(BREAKER, Instant::now());
                self.probe.record(true, Instant::now());
            }
            Err(f) if f.is_outage() => {
                self.breakers.record_failure(BREAKER, Instant::now());
                if matches!(f, ollama::Failure::Unreachable(_)) {
                    self.probe.record(false, Instant::now());
                }
            }
            Err(_) => self.breakers.record_success(BREAKER, Instant::now()),
        }
        result
    }

    /// The model a rule gives a client (the default rule's without one).
    pub fn model_for(&self, client: Option<&str>) -> String {
        self.rules().for_client(client).1.model.clone()
    }

    pub fn stats(&self) -> BTreeMap<String, ModelStats> {
        self.stats.lock().clone()
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.cache.lock().stats()
    }

    pub fn clear_cache(&self) {
        self.cache.lock().clear();
    }
}
