//! Tool search on the aggregated endpoint: `agenthub__find_tools` ranks the servers' tools for
//! what a model is after (`search::Index`, built once per catalog, kept with it) and
//! `agenthub__call_tool` calls one by its public name. Offered in place of the full list when
//! `AGENTHUB_TOOL_SEARCH` says so (`on`, or `auto` past its cap), so a client's context holds two
//! schemas instead of hundreds. No per-session state: both protocol eras alike.

use serde_json::{Value, json};

use super::Gateway;
use super::catalog::Index;
use crate::enhance::Reranker;
use crate::search::Tool;

pub const FIND_TOOLS: &str = "agenthub__find_tools";
pub const CALL_TOOL: &str = "agenthub__call_tool";
/// Tools a search returns when the caller names no limit, and at most.
const DEFAULT_LIMIT: u64 = 5;
const MAX_LIMIT: u64 = 20;

impl Gateway {
    /// The two search tools. The find tool's description names the servers and what they are
    /// for, so a model knows when to call it.
    pub(super) fn search_tools(&self, catalog: &Index) -> Vec<Value> {
        let mut servers: Vec<&str> = catalog.entries().iter().map(|e| e.server.as_str()).collect();
        servers.dedup();
        let described: Vec<String> = servers
            .iter()
            .map(|name| match self.servers.get(name).and_then(|s| s.config.description.clone()) {
                Some(d) if !d.is_empty() => format!("{name} ({d})"),
                _ => name.to_string(),
            })
            .collect();
        let find = format!(
            "Find the tools for a task among {} tool(s) of these servers: {}. Describe what you want to \
             do; the answer lists the best matching tools with their input schemas. Then call one \
             with {CALL_TOOL}.",
            catalog.entries().len(),
            described.join("; ")
        );
        vec![
            json!({"name": FIND_TOOLS, "description": find, "inputSchema": {"type": "object", "properties": {
                "query": {"type": "string", "description": "What you want to do, in words"},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                          "description": format!("How many tools to return (default {DEFAULT_LIMIT})")}
            }, "required": ["query"]}}),
            json!({"name": CALL_TOOL, "description": format!("Call a tool {FIND_TOOLS} returned, by its name, with its arguments."),
                "inputSchema": {"type": "object", "properties": {
                "name": {"type": "string", "description": "The tool's name as find_tools gave it"},
                "arguments": {"type": "object", "description": "The tool's arguments, as its inputSchema says"}
            }, "required": ["name"]}}),
        ]
    }
}

/// `agenthub__find_tools`' result over `catalog` (the lexical ranking, reordered by `rerank`
/// when there is one), or what is wrong with its arguments.
pub(super) fn find_tools(
    catalog: &Index,
    args: Option<&Value>,
    rerank: Option<&Reranker>,
) -> Result<Value, String> {
    let query = args.and_then(|a| a.get("query")).and_then(Value::as_str).map(str::trim).unwrap_or("");
    if query.is_empty() {
        return Err(format!("{FIND_TOOLS}: \"query\" (what you want to do) is required"));
    }
    let limit = match args.and_then(|a| a.get("limit")) {
        None | Some(Value::Null) => DEFAULT_LIMIT,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => return Err(format!("{FIND_TOOLS}: \"limit\" must be an integer from 1 to {MAX_LIMIT}")),
        },
    };
    let mut ranked =
        catalog.ranking().search(query, rerank.map_or(limit as usize, |r| r.depth(limit as usize)));
    if let Some(r) = rerank {
        ranked =
            r.rerank(query, ranked, |i| catalog.entries().get(i).map(|e| Tool::from_mcp(&e.public, &e.item)));
    }
    let found: Vec<Value> = ranked
        .into_iter()
        .take(limit as usize)
        .filter_map(|(i, _)| catalog.entries().get(i))
        .map(|e| {
            json!({"name": e.public, "description": e.item.get("description").cloned().unwrap_or(json!("")),
                   "inputSchema": e.item.get("inputSchema").cloned().unwrap_or(json!({"type": "object"})),
                   "server": e.server})
        })
        .collect();
    let text = match found.is_empty() {
        true => format!("no tool matches \"{query}\"; try other words"),
        false => serde_json::to_string_pretty(&found).unwrap_or_default(),
    };
    Ok(json!({"content": [{"type": "text", "text": text}], "structuredContent": {"tools": found}}))
}

/// `agenthub__call_tool`'s message made the `tools/call` it stands for, or why it cannot be.
pub(super) fn unwrap_call(msg: &mut Value) -> Result<(), String> {
    let args = msg.pointer("/params/arguments").cloned().unwrap_or(Value::Null);
    let Some(name) = args.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) else {
        return Err(format!("{CALL_TOOL}: \"name\" (a tool's name as {FIND_TOOLS} gave it) is required"));
    };
    if name == CALL_TOOL || name == FIND_TOOLS {
        return Err(format!("{CALL_TOOL}: call {name} directly"));
    }
    let arguments = match args.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(a @ Value::Object(_)) => a.clone(),
        Some(_) => return Err(format!("{CALL_TOOL}: \"arguments\" must be an object")),
    };
    msg["params"]["name"] = json!(name);
    msg["params"]["arguments"] = arguments;
    Ok(())
}
