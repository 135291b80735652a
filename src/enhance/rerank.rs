//! The tool search's second opinion: with `AGENTHUB_EMBED_MODEL` set, the lexical ranking's first
//! `DEPTH` tools are ordered again by how close each tool's embedding lies to the query's
//! (cosine): half of a tool's score is its lexical score over the best one, half its similarity
//! scaled between the candidates' lowest and highest (`fuse`; `rerank/eval.rs` measured it
//! against reciprocal rank fusion and other weights). A tool's vector is cached under the
//! model and the tool's text (so it outlives a catalog rebuild, and a changed tool is embedded
//! afresh), at most `CACHE_SIZE`; each search embeds its query and the tools not yet cached in one
//! `/api/embed`, behind Ollama's breaker. Any failure (Ollama away, slow, the model missing, an
//! answer of the wrong shape or dimension) gives the lexical order back: the client never sees
//! it; the log says so once, and Ollama is left alone for `PAUSE`.

#[cfg(test)]
mod eval;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::Service;
use super::ollama::Failure;
use crate::cache::{LruCache, hash_parts};
use crate::search::Tool;

/// How many of the lexical results are reordered (all when fewer).
pub const DEPTH: usize = 30;
/// Tool vectors kept (768 floats each for most models: about 30 MB when full).
const CACHE_SIZE: usize = 10_000;
/// The lexical score's share of the fused score; the similarity has the rest.
const LEXICAL_WEIGHT: f32 = 0.5;
/// How long reranking leaves Ollama alone after a failure.
const PAUSE: Duration = Duration::from_secs(30);
/// A tool's or a query's text, at most (bytes): enough to say what a tool is for.
const MAX_TEXT: usize = 2048;

/// What the service keeps for reranking: the model, its tool vectors, whether it works.
pub(super) struct Embeddings {
    model: String,
    cache: Mutex<LruCache<Arc<[f32]>>>,
    health: Mutex<Health>,
}

impl Embeddings {
    pub(super) fn new(model: String) -> Embeddings {
        Embeddings {
            model,
            cache: Mutex::new(LruCache::new(CACHE_SIZE)),
            health: Mutex::new(Health::default()),
        }
    }
}

/// The reranker of a service that has an embedding model.
pub struct Reranker<'a> {
    service: &'a Service,
    embeddings: &'a Embeddings,
}

impl Service {
    /// The reranker, when an embedding model is configured.
    pub fn reranker(&self) -> Option<Reranker<'_>> {
        self.embeddings.as_ref().map(|embeddings| Reranker { service: self, embeddings })
    }

    /// `POST /api/embed` behind Ollama's breaker, counted in the model's stats. It takes no
    /// generation slot: it is short, and a search waits on it.
    fn embed(&self, model: &str, inputs: &[String]) -> Result<Vec<Vec<f32>>, Failure> {
        self.guarded(model, false, None, || self.client.embed(model, inputs), |_| (0, 0))
    }
}

impl Reranker<'_> {
    /// How many lexical results to ask for when `limit` are wanted.
    pub fn depth(&self, limit: usize) -> usize {
        limit.max(DEPTH)
    }

    /// `lexical` (position, score; best first) in the fused order, or as it is when Ollama
    /// cannot help. `tool` gives the tool at a position.
    pub fn rerank(
        &self,
        query: &str,
        lexical: Vec<(usize, f32)>,
        tool: impl Fn(usize) -> Option<Tool>,
    ) -> Vec<(usize, f32)> {
        if lexical.len() < 2 {
            return lexical;
        }
        let now = Instant::now();
        if !self.embeddings.health.lock().may_ask(now) {
            return lexical;
        }
        let probe = self.service.probe.current(now);
        let result = match probe.checked_at.is_some() && !probe.up {
            true => Err(Failure::Unreachable("the probe finds it down".into())),
            false => self.similarities(query, &lexical, tool),
        };
        let model = &self.embeddings.model;
        match result {
            Ok(similarity) => {
                if self.embeddings.health.lock().worked() {
                    log::info!("tool search: reranking with {model} works again");
                }
                fuse(&lexical, &similarity)
            }
            Err(f) => {
                // Refusals that cost nothing are looked at again next time; the rest rest.
                let pause = match f {
                    Failure::BreakerOpen => Duration::ZERO,
                    Failure::Unreachable(_) if probe.checked_at.is_some() && !probe.up => Duration::ZERO,
                    _ => PAUSE,
                };
                match self.embeddings.health.lock().failed(now, pause) {
                    true => log::warn!(
                        "tool search: no reranking with {model} ({f}); the lexical order until it works"
                    ),
                    false if !pause.is_zero() => log::debug!("tool search: reranking with {model}: {f}"),
                    false => {}
                }
                lexical
            }
        }
    }

    /// The cosine of each candidate's vector with the query's, asking Ollama for the query and
    /// the tools not cached.
    fn similarities(
        &self,
        query: &str,
        lexical: &[(usize, f32)],
        tool: impl Fn(usize) -> Option<Tool>,
    ) -> Result<Vec<f32>, Failure> {
        let model = &self.embeddings.model;
        let (query_prefix, document_prefix) = prefixes(model);
        let texts: Vec<Option<String>> =
            lexical.iter().map(|(i, _)| tool(*i).map(|t| document(document_prefix, &t))).collect();
        let keys: Vec<Option<String>> =
            texts.iter().map(|t| t.as_ref().map(|t| hash_parts(&[model, t]))).collect();
        let mut vectors: Vec<Option<Arc<[f32]>>> = {
            let mut cache = self.embeddings.cache.lock();
            keys.iter().map(|k| k.as_ref().and_then(|k| cache.get(k))).collect()
        };
        let missing: Vec<usize> =
            (0..texts.len()).filter(|&j| vectors[j].is_none() && texts[j].is_some()).collect();
        let mut inputs = vec![crate::text::cut(&format!("{query_prefix}{query}"), MAX_TEXT)];
        inputs.extend(missing.iter().filter_map(|&j| texts[j].clone()));
        let mut got = self.service.embed(model, &inputs)?.into_iter().map(unit);
        let query = got.next().ok_or_else(|| Failure::BadAnswer("no embedding for the query".into()))?;
        if query.is_empty() {
            return Err(Failure::BadAnswer("an empty embedding".into()));
        }
        let fresh: Vec<(String, Arc<[f32]>)> = missing
            .iter()
            .zip(got)
            .filter_map(|(&j, v)| {
                let v: Arc<[f32]> = v.into();
                vectors[j] = Some(v.clone());
                keys[j].clone().map(|k| (k, v))
            })
            .collect();
        if vectors.iter().flatten().any(|v| v.len() != query.len()) {
            // The model behind the name changed (pulled again): what is cached is of no use.
            self.embeddings.cache.lock().clear();
            return Err(Failure::BadAnswer(format!(
                "embeddings of different dimensions ({} for the query)",
                query.len()
            )));
        }
        let mut cache = self.embeddings.cache.lock();
        for (key, v) in fresh {
            cache.set(key, v);
        }
        drop(cache);
        Ok(vectors.iter().map(|v| v.as_ref().map_or(-1.0, |v| dot(&query, v))).collect())
    }
}

/// What a model wants before a query and before a document, where its model card says so
/// (asymmetric models were trained that way); other models get the text as it is.
fn prefixes(model: &str) -> (&'static str, &'static str) {
    let name = model.rsplit('/').next().unwrap_or(model);
    if name.starts_with("nomic-embed-text") {
        ("search_query: ", "search_document: ")
    } else if name.starts_with("mxbai-embed-large") {
        ("Represent this sentence for searching relevant passages: ", "")
    } else {
        ("", "")
    }
}

/// A tool as the model reads it: name, description, parameters.
fn document(prefix: &str, tool: &Tool) -> String {
    let mut text = format!("{prefix}{}: {}", tool.name, tool.description);
    if !tool.params.trim().is_empty() {
        text.push_str("\nParameters: ");
        text.push_str(tool.params.trim());
    }
    crate::text::cut(&text, MAX_TEXT)
}

/// `v` scaled to length 1 (so a dot product is the cosine); a zero vector stays zero.
fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The fused order: `LEXICAL_WEIGHT` × the lexical score over the best one, plus the rest ×
/// the similarity (same indices as `lexical`) scaled to 0..1 between the lowest and the highest
/// among the candidates (a model's cosines have a range of their own). Ties go to the lexical
/// order; similarities all alike leave it as it is.
fn fuse(lexical: &[(usize, f32)], similarity: &[f32]) -> Vec<(usize, f32)> {
    let best = lexical.first().map_or(1.0, |l| l.1).max(f32::MIN_POSITIVE);
    let (low, high) = similarity.iter().fold((f32::MAX, f32::MIN), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
    let spread = high - low;
    let scaled = |s: f32| if spread > 0.0 { (s - low) / spread } else { 0.0 };
    let mut fused: Vec<(usize, f32, usize)> = lexical
        .iter()
        .zip(similarity)
        .enumerate()
        .map(|(j, (&(at, score), &s))| {
            (at, LEXICAL_WEIGHT * score / best + (1.0 - LEXICAL_WEIGHT) * scaled(s), j)
        })
        .collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    fused.into_iter().map(|(at, score, _)| (at, score)).collect()
}

/// Whether reranking works, as a value (`now` passed in): after a failure it rests until a
/// given time, and a failure or a recovery is worth a log line only at an episode's edge.
#[derive(Debug, Default)]
struct Health {
    /// Failing; Ollama is asked again from then.
    failing: Option<Instant>,
}

impl Health {
    fn may_ask(&self, now: Instant) -> bool {
        self.failing.is_none_or(|from| now >= from)
    }

    /// A failure: asked again after `pause`. True when it begins an episode.
    fn failed(&mut self, now: Instant, pause: Duration) -> bool {
        self.failing.replace(now + pause).is_none()
    }

    /// A success. True when it ends an episode.
    fn worked(&mut self) -> bool {
        self.failing.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The positions `fuse` puts first to last, for lexical positions 0.. with these scores
    /// and these similarities.
    fn check(scores: &[f32], similarity: &[f32], expected: &[usize]) {
        let lexical: Vec<(usize, f32)> = scores.iter().copied().enumerate().collect();
        let order: Vec<usize> = fuse(&lexical, similarity).into_iter().map(|(i, _)| i).collect();
        assert_eq!(order, expected, "{scores:?} {similarity:?}");
    }

    #[test]
    fn fusion_weighs_the_lexical_score_against_the_similarity() {
        check(&[4.0, 3.0, 2.0, 1.0], &[0.9, 0.1, 0.1, 0.6], &[0, 3, 1, 2]);
        check(&[4.0, 3.0, 2.0, 1.0], &[0.2, 0.8, 0.3, 0.2], &[1, 0, 2, 3]);
        // A clear lexical lead holds against a middling similarity, not against the lowest.
        check(&[4.0, 1.0, 1.0], &[0.5, 0.9, 0.1], &[0, 1, 2]);
        check(&[4.0, 1.0, 1.0], &[0.1, 0.9, 0.5], &[1, 0, 2]);
        // Alike similarities keep the lexical order.
        check(&[3.0, 2.0, 1.0], &[0.5, 0.5, 0.5], &[0, 1, 2]);
        check(&[], &[], &[]);
    }

    #[test]
    fn vectors_are_made_unit_and_zero_stays_zero() {
        assert_eq!(unit(vec![3.0, 4.0]), vec![0.6, 0.8]);
        assert_eq!(unit(vec![0.0, 0.0]), vec![0.0, 0.0]);
        assert!((dot(&unit(vec![1.0, 1.0]), &unit(vec![2.0, 2.0])) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn a_failure_rests_and_is_said_once_per_episode() {
        let t0 = Instant::now();
        let mut h = Health::default();
        assert!(h.may_ask(t0));
        assert!(h.failed(t0, PAUSE), "the first failure is news");
        assert!(!h.may_ask(t0 + PAUSE / 2));
        assert!(h.may_ask(t0 + PAUSE));
        assert!(!h.failed(t0 + PAUSE, PAUSE), "the same episode");
        assert!(!h.may_ask(t0 + PAUSE + PAUSE / 2));
        assert!(h.worked(), "a recovery is news");
        assert!(!h.worked());
        assert!(h.failed(t0, Duration::ZERO) && h.may_ask(t0), "a free refusal does not rest");
    }

    #[test]
    fn documents_and_prefixes_follow_the_model() {
        let t = Tool { name: "fs__read".into(), description: "Read a file".into(), params: " path ".into() };
        assert_eq!(document("", &t), "fs__read: Read a file\nParameters: path");
        let bare = Tool { params: String::new(), ..t };
        assert_eq!(document("search_document: ", &bare), "search_document: fs__read: Read a file");
        assert_eq!(prefixes("nomic-embed-text:v1.5").0, "search_query: ");
        assert_eq!(prefixes("mxbai-embed-large").1, "");
        assert_eq!(prefixes("all-minilm"), ("", ""));
    }
}
