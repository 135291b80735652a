//! What the aggregated endpoint knows of its servers' lists: `Catalog`, the cache, and
//! `Index`, one merged list (tools or prompts) in a stable order with its lookups. An index is
//! built once per list change and shared (`Arc`): a `tools/call` finds its entry by hashing the
//! public name, never by copying or scanning the list, so a call costs the same with 3 tools
//! or 2,000.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::Gateway;
use super::aggregate::{List, Place};

/// How `GET /catalog` estimates tokens from a definition's bytes.
const TOKEN_ESTIMATE: &str = "bytes / 4";

fn tokens(bytes: usize) -> usize {
    bytes.div_ceil(4)
}

/// One tool or prompt of the aggregated view: its public name and where it lives.
pub(super) struct Entry {
    pub(super) public: String,
    pub(super) server: String,
    pub(super) original: String,
    pub(super) item: Value,
}

/// One merged list, sorted by server (in the configuration's order) then by the server's own
/// name for the item, so every list is the same while nothing changed (clients' prompt
/// caches key on it).
pub(super) struct Index {
    entries: Vec<Entry>,
    /// Public name → position.
    public: HashMap<String, usize>,
    /// A server's own name → position, when exactly one server has it (an MCP app calls its
    /// tools by their own names); `None`: several do.
    bare: HashMap<String, Option<usize>>,
    /// The tool search's ranking over these entries, built at its first search.
    search: std::sync::OnceLock<crate::search::Index>,
}

impl Index {
    /// `entries` in the servers' order (`rank` of a server: its place in the configuration),
    /// sorted and indexed.
    pub(super) fn new(mut entries: Vec<Entry>, rank: impl Fn(&str) -> usize) -> Index {
        entries.sort_by(|a, b| {
            (rank(&a.server), &a.server, &a.original).cmp(&(rank(&b.server), &b.server, &b.original))
        });
        Index::from_sorted(entries)
    }

    /// `entries` already in order (a part of an index), indexed.
    pub(super) fn from_sorted(entries: Vec<Entry>) -> Index {
        let mut public = HashMap::with_capacity(entries.len());
        let mut bare: HashMap<String, Option<usize>> = HashMap::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            public.entry(e.public.clone()).or_insert(i);
            bare.entry(e.original.clone()).and_modify(|at| *at = None).or_insert(Some(i));
        }
        Index { entries, public, bare, search: std::sync::OnceLock::new() }
    }

    /// The ranking over these entries (a list change builds a new `Index`, so a new ranking).
    pub(super) fn ranking(&self) -> &crate::search::Index {
        self.search.get_or_init(|| {
            let tools: Vec<crate::search::Tool> =
                self.entries.iter().map(|e| crate::search::Tool::from_mcp(&e.public, &e.item)).collect();
            crate::search::Index::build(&tools)
        })
    }

    pub(super) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry of this public name.
    pub(super) fn get(&self, public: &str) -> Option<&Entry> {
        self.public.get(public).map(|&i| &self.entries[i])
    }

    /// Where the entry of this public name is, else (`bare`) the one entry whose own name it is.
    fn position(&self, name: &str, bare: bool) -> Option<usize> {
        self.public.get(name).copied().or_else(|| match bare {
            true => self.bare.get(name).copied().flatten(),
            false => None,
        })
    }
}

/// An entry found in a shared index: holds the index, copies nothing.
pub(super) struct Found {
    index: Arc<Index>,
    at: usize,
}

impl Found {
    /// `Index::find` in a shared index.
    pub(super) fn find(index: &Arc<Index>, name: &str, bare: bool) -> Option<Found> {
        index.position(name, bare).map(|at| Found { index: index.clone(), at })
    }
}

impl std::ops::Deref for Found {
    type Target = Entry;
    fn deref(&self) -> &Entry {
        &self.index.entries[self.at]
    }
}

#[derive(Default)]
pub(super) struct Catalog {
    pub(super) tools: Option<Arc<Index>>,
    pub(super) prompts: Option<Arc<Index>>,
    /// A server's own resource URI (or template prefix) → server: for URIs a client did not
    /// get from `/mcp`'s lists (a skill's files, a tool result's link).
    pub(super) resources: HashMap<String, String>,
    /// Skill URI → server (`skills/list`).
    pub(super) skills: HashMap<String, String>,
    /// A profile's part of a list ((tools?, profile) → (the whole list it was cut from, the part)).
    pub(super) views: HashMap<(bool, String), (Arc<Index>, Arc<Index>)>,
}

impl Catalog {
    /// A server's list changed (or a server came or went: `None`).
    pub(super) fn invalidate(&mut self, method: Option<&str>) {
        match method {
            Some("notifications/tools/list_changed") => {
                self.tools = None;
                self.views.retain(|(tools, _), _| !tools);
            }
            Some("notifications/prompts/list_changed") => {
                self.prompts = None;
                self.views.retain(|(tools, _), _| *tools);
            }
            Some(_) => {
                self.resources.clear();
                self.skills.clear();
            }
            None => *self = Catalog::default(),
        }
    }
}

impl Gateway {
    /// The aggregated tool list built (the servers asked when it is cold; never on a worker):
    /// how many tools it has.
    pub fn warm_catalog(&self) -> usize {
        self.entries(List::Tools, Place::Own).map_or(0, |i| i.entries().len())
    }

    /// What each tool on `/mcp` costs a client's context: per server and tool the bytes of its
    /// definition as listed, an estimate of its tokens, per server and in all. Lists the
    /// servers when the aggregated list is cold (never on a worker).
    pub fn catalog_size(&self) -> Value {
        let own = self.own_tools().into_iter().map(|t| ("agenthub".to_string(), t));
        let index = self.entries(List::Tools, Place::Own);
        let listed = index.iter().flat_map(|i| i.entries()).map(|e| (e.server.clone(), e.item.clone()));
        let mut servers: Vec<(String, Vec<Value>, usize, usize)> = Vec::new();
        for (server, item) in own.chain(listed) {
            let bytes = serde_json::to_vec(&item).map_or(0, |b| b.len());
            if servers.last().is_none_or(|(s, ..)| *s != server) {
                servers.push((server.clone(), Vec::new(), 0, 0));
            }
            if let Some((_, tools, b, t)) = servers.last_mut() {
                tools.push(json!({"name": item.get("name"), "bytes": bytes, "tokens": tokens(bytes)}));
                *b += bytes;
                *t += tokens(bytes);
            }
        }
        let (mut count, mut bytes, mut toks) = (0, 0, 0);
        let servers: Vec<Value> = servers
            .into_iter()
            .map(|(name, tools, b, t)| {
                (count, bytes, toks) = (count + tools.len(), bytes + b, toks + t);
                json!({"name": name, "tool_count": tools.len(), "bytes": b, "tokens": t, "tools": tools})
            })
            .collect();
        let profiles = self.profiles_info();
        let profiles: Vec<Value> = profiles["profiles"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| json!({"name": p["name"], "tool_count": p["tool_count"], "bytes": p["bytes"], "tokens": p["tokens"]}))
            .collect();
        json!({"token_estimate": TOKEN_ESTIMATE, "servers": servers, "profiles": profiles,
               "total": {"tool_count": count, "bytes": bytes, "tokens": toks}})
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(server: &str, name: &str) -> Entry {
        let public = format!("{server}__{name}");
        Entry {
            public: public.clone(),
            server: server.into(),
            original: name.into(),
            item: json!({"name": public}),
        }
    }

    fn index(entries: Vec<Entry>) -> Index {
        // The configuration's order: zeta before alpha.
        Index::new(entries, |s| ["zeta", "alpha"].iter().position(|n| *n == s).unwrap_or(usize::MAX))
    }

    #[test]
    fn lists_are_sorted_by_server_then_name() {
        let i = index(vec![entry("alpha", "b"), entry("zeta", "y"), entry("alpha", "a"), entry("zeta", "x")]);
        let names: Vec<&str> = i.entries().iter().map(|e| e.public.as_str()).collect();
        assert_eq!(names, ["zeta__x", "zeta__y", "alpha__a", "alpha__b"]);
    }

    #[test]
    fn names_are_found_by_hash_in_a_large_list() {
        let many: Vec<Entry> = (0..2000).map(|n| entry("alpha", &format!("t{n:04}"))).collect();
        let i = Arc::new(index(many.into_iter().chain([entry("zeta", "t0001")]).collect()));
        let find = |name: &str, bare: bool| {
            Found::find(&i, name, bare).map(|e| (e.server.clone(), e.original.clone()))
        };
        assert_eq!(find("alpha__t1999", true), Some(("alpha".into(), "t1999".into())));
        assert_eq!(find("t1999", true), Some(("alpha".into(), "t1999".into())), "one server has it");
        assert_eq!(find("t0001", true), None, "two servers have it");
        assert_eq!(find("t1999", false), None, "prompts go by public names only");
        assert_eq!(find("alpha__nope", true), None);
    }

    #[test]
    fn a_found_entry_shares_the_index() {
        let i = Arc::new(index(vec![entry("alpha", "a"), entry("alpha", "b")]));
        let found = Found::find(&i, "alpha__b", true);
        assert_eq!(found.as_ref().map(|f| f.original.as_str()), Some("b"));
        assert_eq!(Arc::strong_count(&i), 2, "the lookup holds the one index, no copy of it");
    }
}
