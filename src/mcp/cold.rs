//! A cold `/mcp`: a client that lists once must see every server it could use, though servers
//! start only when wanted. A list (tools, prompts, resources, resource templates) carries, for
//! each enabled server that is not running, its catalog kept on disk (`shelf`) when one was
//! made under its present configuration; such a server is not started by the list, only when
//! a request is routed to it (`up_for_use`). A server with no catalog is started, and a
//! session's lists wait for it until `ColdStart::wait` after the session began (a sessionless
//! request is a session of its own); one not up by then is left out, and comes with the
//! `list_changed` every aggregated session hears when a server comes up. Waiting always leaves
//! the worker.
//!
//! A server a person stopped is neither listed nor started by a list or a request routed to
//! it. Every list from a running server is noted on the shelf (what it lacks of a full catalog
//! is listed too, once per configuration, within the same fan-out deadline), so the next cold
//! start can do without it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::aggregate::{FANOUT_DEADLINE, Place};
use super::shelf::{Kind, Shelf};
use super::{Answer, Gateway, Session, reply, unavailable};
use crate::config::ToolSearch;
use crate::error::Result;
use crate::jsonrpc::RpcError;
use crate::servers::{Snapshot, Status, launch_hash};

/// How the aggregated endpoint starts cold.
#[derive(Clone, Debug)]
pub struct ColdStart {
    /// Where each server's catalog is kept (`<data dir>/catalog`); None: only in memory.
    pub catalog_dir: Option<PathBuf>,
    /// How long after a session began its lists wait for servers with no catalog
    /// (`AGENTHUB_COLD_LIST_WAIT_S`).
    pub wait: Duration,
    /// All the tools, or the two search tools (`AGENTHUB_TOOL_SEARCH`).
    pub search: ToolSearch,
}

impl Default for ColdStart {
    fn default() -> Self {
        ColdStart { catalog_dir: None, wait: Duration::from_secs(15), search: ToolSearch::Off }
    }
}

/// The gateway's side of a cold start: its settings and the catalogs kept.
pub(super) struct Cold {
    wait: Duration,
    shelf: Shelf,
    pub(super) search: ToolSearch,
}

impl Cold {
    pub(super) fn new(settings: ColdStart) -> Cold {
        Cold { wait: settings.wait, shelf: Shelf::open(settings.catalog_dir), search: settings.search }
    }

    /// A server an aggregated client could use now or once started: enabled, and RUNNING,
    /// STARTING, or STOPPED or SLEEPING and not held by a person's stop (a FAILED one waits for
    /// a person; a STOPPING one is going).
    fn usable(&self, s: &Snapshot) -> bool {
        s.config.enabled
            && match s.info.status {
                Status::Running | Status::Starting => true,
                Status::Stopped | Status::Sleeping => !s.info.held,
                Status::Failed | Status::Stopping | Status::AuthRequired => false,
            }
    }

    /// A usable server that is not running, with no catalog kept under its configuration.
    fn uncached(&self, s: &Snapshot) -> bool {
        self.usable(s)
            && s.info.status != Status::Running
            && !self.shelf.has(&s.name, &launch_hash(&s.config))
    }
}

impl Gateway {
    /// Starts, in the background, every usable STOPPED server with no catalog kept; returns
    /// the usable servers not running that have none (what a list waits for).
    pub(super) fn start_uncached(&self, view: &super::View) -> Vec<String> {
        let mut pending = Vec::new();
        let mut start = Vec::new();
        let uncached = self.servers.list().into_iter().filter(|s| self.cold.uncached(s));
        for s in uncached.filter(|s| view.shows_server(&s.name)) {
            if matches!(s.info.status, Status::Stopped | Status::Sleeping) {
                start.push(s.name.clone());
            }
            pending.push(s.name);
        }
        self.servers.start_for_use_background(&start);
        pending
    }

    /// Before a list on `/mcp`: true when it may be answered now. While the session is young
    /// (the first `ColdStart::wait` of it), servers with no catalog are started and the list
    /// waits for them (false: it must, and `at` is the worker). An older session's lists cost
    /// nothing more than before: its servers were started at its handshake.
    pub(super) fn cold_ready(&self, session: &Session, at: Place) -> bool {
        let until = session.opened + self.cold.wait;
        if Instant::now() >= until {
            return true;
        }
        if at == Place::Worker {
            // Every aggregated request passes the worker first: servers are started here once.
            return self.start_uncached(&self.view(&session.client)).is_empty();
        }
        let view = self.view(&session.client);
        let uncached = self.servers.list().into_iter().filter(|s| self.cold.uncached(s));
        let pending: Vec<String> = uncached.filter(|s| view.shows_server(&s.name)).map(|s| s.name).collect();
        if !pending.is_empty() {
            log::debug!("a cold /mcp list waits for {}", pending.join(", "));
            self.servers.wait_up(&pending, until);
        }
        true
    }

    /// `live` (what running servers listed of `kind`) with the kept catalogs of the usable
    /// servers not running, in the servers' order.
    pub(super) fn with_kept<E>(
        &self,
        live: Vec<(String, std::result::Result<Vec<Value>, E>)>,
        kind: Kind,
    ) -> Vec<(String, std::result::Result<Vec<Value>, E>)> {
        let servers = self.servers.list();
        let mut all = live;
        for s in &servers {
            if !self.cold.usable(s) || s.info.status == Status::Running {
                continue;
            }
            if let Some(items) = self.cold.shelf.get(&s.name, &launch_hash(&s.config), kind) {
                all.push((s.name.clone(), Ok(items)));
            }
        }
        let place = |name: &str| servers.iter().position(|s| s.name == name).unwrap_or(usize::MAX);
        all.sort_by_key(|(name, _)| place(name));
        all
    }

    /// Every page of `kind` from a running server, noted on the shelf: all of it (and what
    /// its catalog still lacks) within the fan-out's deadline.
    pub(super) fn listed(&self, server: &str, kind: Kind) -> std::result::Result<Vec<Value>, RpcError> {
        let until = Instant::now() + FANOUT_DEADLINE;
        let items = self.collect_until(server, kind.method(), kind.key(), until)?;
        self.keep(server, kind, &items, until);
        Ok(items)
    }

    /// A running server's list kept; the rest of its catalog listed too when not yet known
    /// under its configuration (a list it does not offer is empty).
    fn keep(&self, server: &str, kind: Kind, items: &[Value], until: Instant) {
        let Some(snap) = self.servers.get(server) else { return };
        let hash = launch_hash(&snap.config);
        for missing in self.cold.shelf.note(server, &hash, kind, items) {
            let pointer = format!("/capabilities/{}", missing.capability());
            let offered = snap.initialize.as_ref().and_then(|i| i.pointer(&pointer)).is_some();
            let items = match offered {
                false => Vec::new(),
                true => match self.collect_until(server, missing.method(), missing.key(), until) {
                    Ok(items) => items,
                    // Declared without it (resource templates often are): it has none.
                    Err(e) if e.code == crate::jsonrpc::METHOD_NOT_FOUND => Vec::new(),
                    Err(e) => {
                        let why = self.servers.redact(server, &e.message);
                        log::debug!("catalog of {server} not kept: {} failed: {why}", missing.method());
                        return;
                    }
                },
            };
            self.cold.shelf.note(server, &hash, missing, &items);
        }
    }

    /// Before a request is relayed to `server` on `/mcp`: a usable STOPPED server (listed from
    /// its catalog) is started for this use and waited for, bounded by its handshake timeout
    /// (then the request has its own deadline). `Ok(false)`: it must be, and `at` is the worker.
    /// One a person stopped is left so: the relay says it is stopped.
    pub(super) fn up_for_use(&self, server: &str, at: Place) -> Result<bool> {
        let stopped = self.servers.get(server).is_some_and(|s| {
            matches!(s.info.status, Status::Stopped | Status::Sleeping) && self.cold.usable(&s)
        });
        if !stopped {
            return Ok(true);
        }
        if at == Place::Worker {
            return Ok(false);
        }
        self.servers.start_for_use(server)?;
        Ok(true)
    }

    /// `up_for_use` as `route` needs it: None to go on; `Some(None)` to go on off the worker;
    /// `Some(Some(answer))` when the server could not be started.
    pub(super) fn start_first(&self, server: &str, at: Place, id: &Value) -> Option<Option<Answer>> {
        match self.up_for_use(server, at) {
            Ok(true) => None,
            Ok(false) => Some(None),
            Err(e) => Some(Some(reply(unavailable(id.clone(), &e)))),
        }
    }
}
