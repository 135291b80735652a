//! Client for a local Ollama over its HTTP API (through one shared ureq agent), and `Probe`: a
//! background thread keeping a recent reachability result so `/health` never waits on Ollama.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;
use serde::Deserialize;

use crate::error::{Error, Result};

/// How long a probe result counts as current.
const PROBE_TTL: Duration = Duration::from_secs(3);

pub struct Client {
    base: String,
    /// Short deadlines: reachability and model listing must not hold `/health`.
    quick: ureq::Agent,
}

#[derive(Deserialize)]
struct Tags {
    #[serde(default)]
    models: Vec<TagModel>,
}

#[derive(Deserialize)]
struct TagModel {
    name: String,
}

/// ureq agent for loopback-first calls: explicit deadlines, error bodies readable, and no proxy
/// from the environment (it would capture calls to 127.0.0.1).
pub fn agent(connect: Duration, global: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(connect))
        .timeout_global(Some(global))
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into()
}

impl Client {
    pub fn new(base_url: &str) -> Client {
        Client {
            base: base_url.trim_end_matches('/').to_string(),
            quick: agent(Duration::from_millis(500), Duration::from_secs(2)),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
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
        let url = format!("{}/api/tags", self.base);
        let mut resp = self
            .quick
            .get(&url)
            .call()
            .map_err(|e| Error::Upstream(format!("ollama at {} unreachable: {e}", self.base)))?;
        if resp.status().as_u16() != 200 {
            return Err(Error::Upstream(format!("{url} answered {}", resp.status().as_u16())));
        }
        let tags: Tags = resp
            .body_mut()
            .read_json()
            .map_err(|e| Error::Upstream(format!("{url}: unexpected answer: {e}")))?;
        Ok(tags.models.into_iter().map(|m| m.name).collect())
    }
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
