//! Tool search: a lexical ranking of a catalog's tools against a request in plain words, so a
//! client can find the few tools it needs among hundreds. BM25F: each tool is a document of three
//! fields (its public name, its description, its parameters' names, descriptions and enum
//! values); a word's frequency in each field is normalised by the field's length against the
//! catalog's average, weighted by field, summed, then saturated once (k1) and weighted by the
//! word's rarity in the catalog (idf). Pure: the index is built from values and never reads
//! anything; building is linear in the catalog's text, so a changed catalog is simply rebuilt.

mod tokens;

#[cfg(test)]
mod eval;

use std::collections::HashMap;

use serde_json::Value;

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

/// How much a word counts in each field, and how much each field's length is normalised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    /// Field weights: name, description, params.
    pub field: [f32; FIELDS],
    /// Length normalisation per field (0 = none, 1 = full).
    pub b: [f32; FIELDS],
    /// Term-frequency saturation.
    pub k1: f32,
}

impl Default for Weights {
    /// The best of the settings the evaluation set compares (see `eval.rs`).
    fn default() -> Weights {
        Weights { field: [3.0, 1.0, 0.5], b: [0.5, 0.75, 0.75], k1: 1.2 }
    }
}

/// One word's occurrences in one tool, per field.
#[derive(Debug, Clone, Copy)]
struct Posting {
    tool: u32,
    tf: [u16; FIELDS],
}

/// A catalog's tools, indexed for `search`.
#[derive(Debug, Clone)]
pub struct Index {
    weights: Weights,
    /// Word → its postings, in tool order.
    postings: HashMap<String, Vec<Posting>>,
    /// Per tool, its fields' lengths in words.
    lengths: Vec<[u32; FIELDS]>,
    average: [f32; FIELDS],
    /// Per tool, the public name (the tie-breakers).
    names: Vec<String>,
}

impl Index {
    /// The index of `tools` with the default weights; results name tools by their position here.
    pub fn build(tools: &[Tool]) -> Index {
        Index::with_weights(tools, Weights::default())
    }

    pub fn with_weights(tools: &[Tool], weights: Weights) -> Index {
        let mut postings: HashMap<String, Vec<Posting>> = HashMap::new();
        let mut lengths = Vec::with_capacity(tools.len());
        let mut totals = [0u64; FIELDS];
        for (i, tool) in tools.iter().enumerate() {
            let fields =
                [tokens::words(&tool.name), tokens::words(&tool.description), tokens::words(&tool.params)];
            let mut tfs: HashMap<&str, [u16; FIELDS]> = HashMap::new();
            let mut len = [0u32; FIELDS];
            for (f, words) in fields.iter().enumerate() {
                len[f] = words.len() as u32;
                totals[f] += words.len() as u64;
                for w in words {
                    let tf = tfs.entry(w.as_str()).or_default();
                    tf[f] = tf[f].saturating_add(1);
                }
            }
            let mut words: Vec<_> = tfs.into_iter().collect();
            words.sort_by(|a, b| a.0.cmp(b.0));
            for (w, tf) in words {
                postings.entry(w.to_string()).or_default().push(Posting { tool: i as u32, tf });
            }
            lengths.push(len);
        }
        let n = tools.len().max(1) as f32;
        let average = totals.map(|t| (t as f32 / n).max(1.0));
        Index { weights, postings, lengths, average, names: tools.iter().map(|t| t.name.clone()).collect() }
    }

    /// The tools that match `query` best, at most `limit`, best first: (position, score). Only
    /// tools sharing a word with the query are returned. Equal scores go to the shorter name,
    /// then the name in byte order, so the order never depends on the catalog's order.
    pub fn search(&self, query: &str, limit: usize) -> Vec<(usize, f32)> {
        let mut words = tokens::words(query);
        words.sort();
        words.dedup();
        let n = self.names.len() as f32;
        let Weights { field, b, k1 } = self.weights;
        let mut scores = vec![0f32; self.names.len()];
        for word in &words {
            let Some(postings) = self.postings.get(word) else { continue };
            let df = postings.len() as f32;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for p in postings {
                let len = &self.lengths[p.tool as usize];
                let mut tf = 0.0;
                for f in 0..FIELDS {
                    if p.tf[f] > 0 {
                        let norm = 1.0 - b[f] + b[f] * len[f] as f32 / self.average[f];
                        tf += field[f] * p.tf[f] as f32 / norm;
                    }
                }
                scores[p.tool as usize] += idf * tf / (k1 + tf);
            }
        }
        let mut found: Vec<(usize, f32)> = scores.into_iter().enumerate().filter(|(_, s)| *s > 0.0).collect();
        found.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then_with(|| self.names[a.0].len().cmp(&self.names[b.0].len()))
                .then_with(|| self.names[a.0].cmp(&self.names[b.0]))
        });
        found.truncate(limit);
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
            tool("slack__post_message", "Post a message to a Slack channel.", "channel text"),
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
        check("read a file", &["files__read_file", "files__write_file", "files__list_directory"]);
        check("what's the forecast for Paris", &["weather__forecast"]);
        check("post a message to slack", &["slack__post_message"]);
        check("show the entries in a directory", &["files__list_directory"]);
        check("files", &["files__read_file", "files__write_file", "files__list_directory"]);
        check("write content", &["files__write_file", "files__read_file"]);
        check("", &[]);
        check("the of and", &[]);
        check("zebra", &[]);
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
