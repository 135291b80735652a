//! Tool search: a lexical ranking of a catalog's tools against a request in plain words, so a
//! client can find the few tools it needs among hundreds. BM25F: each tool is a document of three
//! fields (its public name, its description, its parameters' names, descriptions and enum
//! values); a word's frequency in each field is normalised by the field's length against the
//! catalog's average, weighted by field, summed, then saturated once (k1) and weighted by the
//! word's rarity in the catalog (idf). Words are split, stop-worded and stemmed alike on both
//! sides (`tokens.rs`). On top of that, the request's phrasing (`vocabulary.rs`):
//! - each request word is matched through its related words too ("folder" finds "directory"),
//!   at half weight, the word and its related words counted as one term (a tool scores by its
//!   best of them; the idf is that of having any of them);
//! - a question ("which pods are running?") asks for the reading verbs (get, list, search...) as
//!   one more term at a low weight;
//! - when the request only reads (a question, or reading verbs and no writing one), a tool whose
//!   name writes (create, send, delete...) loses a share of its score.
//!
//! Ties go to the shorter name, then the name. `eval.rs` measures all this on two sets of
//! requests. Pure: the index is built from values and never reads anything; building is linear
//! in the catalog's text, so a changed catalog is simply rebuilt.

mod tokens;
mod vocabulary;

#[cfg(test)]
mod eval;

use std::collections::HashMap;

use serde_json::Value;

use vocabulary::Action;

/// One tool as the index reads it.
#[derive(Debug, Clone)]
pub struct Tool {
    /// The public name, `{server}__{tool}`.
    pub name: String,
    pub description: String,
    /// The input schema's parameter names, descriptions and enum values, as one text.
    pub params: String,
}

impl Tool {
    /// A tool from an MCP `tools/list` entry (`name`, `description`, `inputSchema`), its name
    /// given as the public one.
    pub fn from_mcp(public_name: &str, tool: &Value) -> Tool {
        let mut params = String::new();
        if let Some(schema) = tool.get("inputSchema") {
            schema_text(schema, 0, &mut params);
        }
        Tool {
            name: public_name.to_string(),
            description: tool.get("description").and_then(Value::as_str).unwrap_or("").to_string(),
            params,
        }
    }
}

/// A schema's property names, descriptions and enum values, nested ones included (to a depth
/// that real schemas do not pass; a hostile one stops there).
fn schema_text(schema: &Value, depth: usize, out: &mut String) {
    if depth > 6 {
        return;
    }
    fn push(out: &mut String, s: &str) {
        out.push_str(s);
        out.push(' ');
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            push(out, name);
            if let Some(d) = prop.get("description").and_then(Value::as_str) {
                push(out, d);
            }
            schema_text(prop, depth + 1, out);
        }
    }
    for e in schema.get("enum").and_then(Value::as_array).into_iter().flatten() {
        if let Some(s) = e.as_str() {
            push(out, s);
        }
    }
    if let Some(items) = schema.get("items") {
        schema_text(items, depth + 1, out);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for sub in schema.get(key).and_then(Value::as_array).into_iter().flatten() {
            schema_text(sub, depth + 1, out);
        }
    }
}

/// The fields of a tool document, in the order of the arrays below.
const FIELDS: usize = 3;
const NAME: usize = 0;

/// How much a word counts in each field, how much each field's length is normalised, and what
/// the request's phrasing adds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    /// Field weights: name, description, params.
    pub field: [f32; FIELDS],
    /// Length normalisation per field (0 = none, 1 = full).
    pub b: [f32; FIELDS],
    /// Term-frequency saturation.
    pub k1: f32,
    /// What a related word (`vocabulary.rs`) counts for against the request's own word (0 = no
    /// related words).
    pub related: f32,
    /// What the reading verbs it does not name count for when the request is a question
    /// ("which pods are running?" is after "list" or "get" them); 0 = nothing.
    pub asked: f32,
    /// The share of its score a tool named for writing loses when the request only reads
    /// ("show the open tickets": `list_tickets` before `create_ticket`); 0 = nothing.
    pub reading: f32,
}

impl Default for Weights {
    /// The best of the settings the evaluation sets compare (see `eval.rs`).
    fn default() -> Weights {
        Weights {
            field: [3.0, 1.0, 0.5],
            b: [0.5, 0.75, 0.75],
            k1: 1.2,
            related: 0.5,
            asked: 0.4,
            reading: 0.3,
        }
    }
}

/// One word in one tool: its occurrences in each field, each normalised by the field's length
/// against the catalog's average and weighted by field, summed (what BM25F saturates).
#[derive(Debug, Clone, Copy)]
struct Posting {
    tool: u32,
    tf: f32,
}

/// A catalog's tools, indexed for `search`.
#[derive(Debug, Clone)]
pub struct Index {
    weights: Weights,
    /// Word → its number, the index into `postings`.
    terms: HashMap<String, u32>,
    /// Per word, its postings in tool order.
    postings: Vec<Vec<Posting>>,
    /// Per tool, what its name says it does.
    actions: Vec<Action>,
    /// The reading verbs the catalog has (what a question implies).
    reads: Vec<u32>,
    /// Per tool, the public name (the tie-breakers).
    names: Vec<String>,
}

/// One of the request's words as the index matches it: its own word and its related words,
/// each with its weight. A tool scores for the concept once, by its best word.
struct Concept {
    terms: Vec<(u32, f32)>,
}

impl Index {
    /// The index of `tools` with the default weights; results name tools by their position here.
    pub fn build(tools: &[Tool]) -> Index {
        Index::with_weights(tools, Weights::default())
    }

    pub fn with_weights(tools: &[Tool], weights: Weights) -> Index {
        let mut terms: HashMap<String, u32> = HashMap::new();
        // Per word, (tool, occurrences per field), until the average lengths are known.
        let mut counts: Vec<Vec<(u32, [u16; FIELDS])>> = Vec::new();
        let mut lengths = Vec::with_capacity(tools.len());
        let mut actions = Vec::with_capacity(tools.len());
        let mut totals = [0u64; FIELDS];
        for (i, tool) in tools.iter().enumerate() {
            let fields =
                [tokens::words(&tool.name), tokens::words(&tool.description), tokens::words(&tool.params)];
            let mut tfs: HashMap<u32, [u16; FIELDS]> = HashMap::new();
            let mut len = [0u32; FIELDS];
            for (f, words) in fields.iter().enumerate() {
                len[f] = words.len() as u32;
                totals[f] += words.len() as u64;
                for w in words {
                    let id = match terms.get(w) {
                        Some(&id) => id,
                        None => {
                            counts.push(Vec::new());
                            terms.insert(w.clone(), counts.len() as u32 - 1);
                            counts.len() as u32 - 1
                        }
                    };
                    let tf = tfs.entry(id).or_default();
                    tf[f] = tf[f].saturating_add(1);
                }
            }
            let mut words: Vec<_> = tfs.into_iter().collect();
            words.sort_by_key(|(id, _)| *id);
            for (id, tf) in words {
                counts[id as usize].push((i as u32, tf));
            }
            lengths.push(len);
            actions.push(vocabulary::action(&fields[NAME]));
        }
        let n = tools.len().max(1) as f32;
        let average = totals.map(|t| (t as f32 / n).max(1.0));
        let Weights { field, b, .. } = weights;
        let postings: Vec<Vec<Posting>> = counts
            .into_iter()
            .map(|list| {
                let posting = |(tool, tf): (u32, [u16; FIELDS])| {
                    let len: &[u32; FIELDS] = &lengths[tool as usize];
                    let tf = (0..FIELDS)
                        .filter(|&f| tf[f] > 0)
                        .map(|f| field[f] * tf[f] as f32 / (1.0 - b[f] + b[f] * len[f] as f32 / average[f]))
                        .sum();
                    Posting { tool, tf }
                };
                list.into_iter().map(posting).collect()
            })
            .collect();
        let reads = vocabulary::reads().iter().filter_map(|w| terms.get(w).copied()).collect();
        Index {
            weights,
            terms,
            postings,
            actions,
            reads,
            names: tools.iter().map(|t| t.name.clone()).collect(),
        }
    }

    /// The request's distinct words as concepts, each with the related words the catalog has
    /// (a word the request has itself is its own concept, never another's related word); and,
    /// when the request is a question, the reading verbs it does not name as one more.
    fn concepts(&self, query: &str, words: &[String]) -> Vec<Concept> {
        let mut own: Vec<&String> = Vec::new();
        for w in words {
            if !own.contains(&w) {
                own.push(w);
            }
        }
        let mut concepts: Vec<Concept> = Vec::with_capacity(own.len() + 1);
        for w in &own {
            let mut terms = Vec::new();
            if let Some(&id) = self.terms.get(*w) {
                terms.push((id, 1.0));
            }
            if self.weights.related > 0.0 {
                for r in vocabulary::related(w) {
                    if let Some(&id) = self.terms.get(r)
                        && !own.contains(&r)
                        && !terms.iter().any(|(t, _)| *t == id)
                    {
                        terms.push((id, self.weights.related));
                    }
                }
            }
            if !terms.is_empty() {
                concepts.push(Concept { terms });
            }
        }
        if self.weights.asked > 0.0 && vocabulary::asks(query) {
            let terms: Vec<(u32, f32)> = self
                .reads
                .iter()
                .filter(|&&t| !own.iter().any(|w| self.terms.get(*w) == Some(&t)))
                .map(|&t| (t, self.weights.asked))
                .collect();
            if !terms.is_empty() {
                concepts.push(Concept { terms });
            }
        }
        concepts
    }

    /// The tools that match `query` best, at most `limit`, best first: (position, score). Only
    /// tools sharing a word (or a related word) with the query are returned. Equal scores go to
    /// the shorter name, then the name in byte order, so the order never depends on the
    /// catalog's order.
    ///
    /// Each concept scores like one BM25F term: a tool's frequency for it is its best word's,
    /// that word's weight times its field-weighted, length-normalised frequency; the idf counts
    /// the tools having any of the concept's words, so a common idea ("make", "create", "add")
    /// weighs little however rare one of its words is.
    pub fn search(&self, query: &str, limit: usize) -> Vec<(usize, f32)> {
        let words = tokens::words(query);
        let concepts = self.concepts(query, &words);
        let n = self.names.len();
        let Weights { k1, reading, .. } = self.weights;
        let mut scores = vec![0f32; n];
        // Per concept: each tool's best frequency among the concept's words, and which tools.
        let mut best = vec![0f32; n];
        let mut touched: Vec<u32> = Vec::new();
        for concept in &concepts {
            for &(term, weight) in &concept.terms {
                for p in &self.postings[term as usize] {
                    let (t, tf) = (p.tool as usize, weight * p.tf);
                    if tf > 0.0 && best[t] == 0.0 {
                        touched.push(p.tool);
                    }
                    best[t] = best[t].max(tf);
                }
            }
            let df = touched.len() as f32;
            let idf = (1.0 + (n as f32 - df + 0.5) / (df + 0.5)).ln();
            for &t in &touched {
                let tf = std::mem::take(&mut best[t as usize]);
                scores[t as usize] += idf * tf / (k1 + tf);
            }
            touched.clear();
        }
        // A question reads whatever verbs it holds ("which processes are running?").
        let reads = vocabulary::asks(query) || vocabulary::action(&words) == Action::Reads;
        if reading > 0.0 && reads {
            for (score, action) in scores.iter_mut().zip(&self.actions) {
                if *action == Action::Writes {
                    *score *= 1.0 - reading;
                }
            }
        }
        let mut found: Vec<(usize, f32)> = scores.into_iter().enumerate().filter(|(_, s)| *s > 0.0).collect();
        let order = |a: &(usize, f32), b: &(usize, f32)| {
            b.1.total_cmp(&a.1)
                .then_with(|| self.names[a.0].len().cmp(&self.names[b.0].len()))
                .then_with(|| self.names[a.0].cmp(&self.names[b.0]))
        };
        // Related words make many tools score a little: order only the best `limit`.
        if limit < found.len() {
            found.select_nth_unstable_by(limit, order);
            found.truncate(limit);
        }
        found.sort_by(order);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(name: &str, description: &str, params: &str) -> Tool {
        Tool { name: name.into(), description: description.into(), params: params.into() }
    }

    fn catalog() -> Vec<Tool> {
        vec![
            tool("files__read_file", "Read the contents of a file.", "path The file to read"),
            tool("files__write_file", "Write content to a file, replacing it.", "path content"),
            tool("files__list_directory", "List the entries of a directory.", "path"),
            tool("files__create_directory", "Create a new directory.", "path"),
            tool("slack__post_message", "Post a message to a Slack channel.", "channel text"),
            tool("slack__list_channels", "List the channels of the Slack workspace.", "limit"),
            tool("slack__create_channel", "Create a Slack channel.", "name is_private"),
            tool("weather__forecast", "The weather forecast for a city.", "city days"),
        ]
    }

    /// The names `query` finds, best first.
    fn check(query: &str, expected: &[&str]) {
        let tools = catalog();
        let found: Vec<&str> =
            Index::build(&tools).search(query, 10).iter().map(|(i, _)| tools[*i].name.as_str()).collect();
        assert_eq!(found, expected, "search({query:?})");
    }

    #[test]
    fn ranks_the_obvious_tool_first() {
        // A request that only reads puts a tool named for writing after the ones that read.
        check(
            "read a file",
            &["files__read_file", "files__list_directory", "files__write_file", "files__create_directory"],
        );
        check(
            "what's the forecast for Paris",
            &["weather__forecast", "files__read_file", "files__list_directory", "slack__list_channels"],
        );
        check(
            "post a message to slack",
            &["slack__post_message", "slack__create_channel", "slack__list_channels"],
        );
        check(
            "show the entries in a directory",
            &["files__list_directory", "files__read_file", "files__create_directory"],
        );
        check(
            "files",
            &["files__read_file", "files__write_file", "files__list_directory", "files__create_directory"],
        );
        check("write content", &["files__write_file", "files__read_file"]);
        check("", &[]);
        check("the of and", &[]);
        check("zebra", &[]);
    }

    #[test]
    fn meets_other_words_for_the_same_thing() {
        check(
            "make a folder",
            &["files__create_directory", "files__list_directory", "slack__create_channel"],
        );
        check("erase the folder", &["files__list_directory", "files__create_directory"]);
    }

    #[test]
    fn a_question_reads() {
        // And asks for the reading verbs: tools that only read ("list", "read") come along.
        let tools =
            ["slack__list_channels", "slack__create_channel", "slack__post_message", "files__read_file"];
        check("which slack channels are there?", &[&tools[..], &["files__list_directory"]].concat());
        check("slack channels", &["slack__create_channel", "slack__list_channels", "slack__post_message"]);
        check(
            "create a slack channel",
            &[
                "slack__create_channel",
                "slack__list_channels",
                "slack__post_message",
                "files__create_directory",
            ],
        );
    }

    #[test]
    fn ties_go_to_the_shorter_name_then_the_name() {
        let tools = vec![tool("b__lookup_x", "", ""), tool("a__lookup_x", "", ""), tool("a__lookup", "", "")];
        let found: Vec<usize> = Index::build(&tools).search("lookup", 10).iter().map(|(i, _)| *i).collect();
        assert_eq!(found, [2, 1, 0]);
    }

    #[test]
    fn limit_cuts_the_list() {
        let tools = catalog();
        assert_eq!(Index::build(&tools).search("file", 1).len(), 1);
        assert!(Index::build(&tools).search("file", 0).is_empty());
        assert!(Index::build(&[]).search("file", 5).is_empty());
    }

    #[test]
    fn reads_an_mcp_tool_and_its_schema() {
        let t = Tool::from_mcp(
            "db__query",
            &json!({"name": "query", "description": "Run SQL", "inputSchema": {"type": "object", "properties": {
                "sql": {"type": "string", "description": "The statement"},
                "format": {"enum": ["csv", "json"]},
                "opts": {"type": "array", "items": {"properties": {"timeoutMs": {"type": "number"}}}}
            }}}),
        );
        assert_eq!(t.description, "Run SQL");
        let words = tokens::words(&t.params);
        for w in ["sql", "statement", "format", "csv", "json", "opt", "timeout", "ms"] {
            assert!(words.contains(&w.to_string()), "{w} in {words:?}");
        }
        let none = Tool::from_mcp("x__y", &json!({"name": "y"}));
        assert_eq!((none.description.as_str(), none.params.as_str()), ("", ""));
    }
}
