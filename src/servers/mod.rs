//! The MCP servers the hub fronts: their configuration and live state. `Registry` is the one
//! table of servers; it hands out snapshots and never holds its lock across I/O.

use parking_lot::Mutex;
use serde::Serialize;
use std::time::Instant;

use crate::config::{ServerConfig, ServerEntry, Transport};

/// Lifecycle state of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Stopped,
    Starting,
    Running,
    Failed,
    Stopping,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Stopped => "STOPPED",
            Status::Starting => "STARTING",
            Status::Running => "RUNNING",
            Status::Failed => "FAILED",
            Status::Stopping => "STOPPING",
        }
    }
}

/// What is known about a server's process right now.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    pub status: Status,
    pub pid: Option<u32>,
    /// Wall-clock start (for RFC 3339 display) and monotonic start (for uptime).
    pub started_at: Option<(std::time::SystemTime, Instant)>,
    pub restart_count: u32,
    pub last_error: Option<String>,
}

impl ProcessInfo {
    pub fn uptime_s(&self, now: Instant) -> Option<f64> {
        match (self.status, self.started_at) {
            (Status::Running, Some((_, at))) => {
                Some(now.saturating_duration_since(at).as_secs_f64())
            }
            _ => None,
        }
    }
}

/// A server as the API shows it: name, configuration and process state.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub name: String,
    pub config: ServerConfig,
    pub origin: String,
    pub info: ProcessInfo,
}

impl Snapshot {
    pub fn transport(&self) -> Transport {
        self.config.transport
    }
}

struct Slot {
    entry: ServerEntry,
    info: ProcessInfo,
}

/// Every configured server, in configuration order.
pub struct Registry {
    slots: Mutex<Vec<Slot>>,
}

impl Registry {
    /// Servers whose configuration cannot run (a missing variable) start out FAILED with the reason.
    pub fn new(entries: Vec<ServerEntry>) -> Registry {
        let slots = entries
            .into_iter()
            .map(|entry| {
                let (status, last_error) = match &entry.problem {
                    Some(p) => (Status::Failed, Some(p.clone())),
                    None => (Status::Stopped, None),
                };
                Slot {
                    info: ProcessInfo {
                        status,
                        pid: None,
                        started_at: None,
                        restart_count: 0,
                        last_error,
                    },
                    entry,
                }
            })
            .collect();
        Registry {
            slots: Mutex::new(slots),
        }
    }

    pub fn list(&self) -> Vec<Snapshot> {
        self.slots.lock().iter().map(snapshot).collect()
    }

    pub fn get(&self, name: &str) -> Option<Snapshot> {
        self.slots
            .lock()
            .iter()
            .find(|s| s.entry.name == name)
            .map(snapshot)
    }

    pub fn len(&self) -> usize {
        self.slots.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.lock().is_empty()
    }
}

fn snapshot(s: &Slot) -> Snapshot {
    Snapshot {
        name: s.entry.name.clone(),
        config: s.entry.config.clone(),
        origin: s.entry.origin.clone(),
        info: s.info.clone(),
    }
}
