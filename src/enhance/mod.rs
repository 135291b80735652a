//! Prompt enhancement through a local Ollama model: rules per client, the prompt cache and
//! Ollama's reachability.

pub mod ollama;

use std::sync::Arc;

use parking_lot::Mutex;

use crate::cache::LruCache;
use crate::config::Rules;

/// One enhanced prompt as cached.
#[derive(Debug, Clone)]
pub struct Enhanced {
    pub prompt: String,
    pub model: String,
}

pub struct Service {
    pub rules: Rules,
    pub client: Arc<ollama::Client>,
    pub probe: ollama::Probe,
    pub cache: Mutex<LruCache<Enhanced>>,
}

impl Service {
    pub fn new(rules: Rules, ollama_url: &str, cache_size: usize) -> Service {
        let client = Arc::new(ollama::Client::new(ollama_url));
        Service {
            rules,
            probe: ollama::Probe::start(client.clone()),
            client,
            cache: Mutex::new(LruCache::new(cache_size)),
        }
    }

    pub fn stop(&self) {
        self.probe.stop();
    }
}
