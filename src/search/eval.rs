//! The ranking measured: `tests/search/tools.json` (the real tools of the npm reference servers
//! and desktop-commander, as their `tools/list` gives them, and a pool of realistic tools across
//! domains) against `tests/search/queries.json` (requests in a user's words, each with the tool
//! or tools that answer it; a few requests have two right answers, e.g. the same tool on two
//! servers). Recall@k: the share of requests with a right tool in the first k results.

use serde_json::Value;

use super::{Index, Tool, Weights};

const TOOLS: &str = include_str!("../../tests/search/tools.json");
const QUERIES: &str = include_str!("../../tests/search/queries.json");

struct Case {
    query: String,
    expected: Vec<String>,
}

fn catalog() -> Vec<Tool> {
    let tools: Value = serde_json::from_str(TOOLS).expect("tools.json parses");
    let tools = tools.as_array().expect("tools.json is an array");
    tools.iter().map(|t| Tool::from_mcp(t["name"].as_str().expect("a tool has a name"), t)).collect()
}

fn cases() -> Vec<Case> {
    let cases: Value = serde_json::from_str(QUERIES).expect("queries.json parses");
    let cases = cases.as_array().expect("queries.json is an array");
    cases
        .iter()
        .map(|c| Case {
            query: c["query"].as_str().expect("a case has a query").to_string(),
            expected: c["expected"]
                .as_array()
                .expect("a case lists its expected tools")
                .iter()
                .map(|e| e.as_str().expect("a tool name").to_string())
                .collect(),
        })
        .collect()
}

/// Recall@1 and recall@5 of `weights` over the set, and the requests missed at 5.
fn recall(tools: &[Tool], cases: &[Case], weights: Weights) -> (f32, f32, Vec<String>) {
    let index = Index::with_weights(tools, weights);
    let (mut at1, mut at5, mut missed) = (0, 0, Vec::new());
    for case in cases {
        let found = index.search(&case.query, 5);
        let right = |i: &usize| case.expected.contains(&tools[*i].name);
        if found.first().is_some_and(|(i, _)| right(i)) {
            at1 += 1;
        }
        if found.iter().any(|(i, _)| right(i)) {
            at5 += 1;
        } else {
            let top = found.first().map_or("nothing", |(i, _)| tools[*i].name.as_str());
            missed.push(format!("{:?} → {top} (wanted {})", case.query, case.expected.join(" or ")));
        }
    }
    let n = cases.len() as f32;
    (at1 as f32 / n, at5 as f32 / n, missed)
}

/// The settings compared; the first is `Weights::default()`.
fn settings() -> Vec<(&'static str, Weights)> {
    let b = [0.5, 0.75, 0.75];
    vec![
        ("name 3, description 1, params 0.5", Weights::default()),
        ("all fields 1", Weights { field: [1.0, 1.0, 1.0], b, k1: 1.2 }),
        ("name 2, description 1, params 1", Weights { field: [2.0, 1.0, 1.0], b, k1: 1.2 }),
        ("name 5, description 1.5, params 0.3", Weights { field: [5.0, 1.5, 0.3], b, k1: 1.2 }),
    ]
}

#[test]
fn recall_on_the_evaluation_set() {
    let (tools, cases) = (catalog(), cases());
    assert!(tools.len() >= 200 && cases.len() >= 150, "{} tools, {} requests", tools.len(), cases.len());
    println!("{} tools, {} requests", tools.len(), cases.len());
    let mut results = Vec::new();
    for (name, weights) in settings() {
        let (r1, r5, missed) = recall(&tools, &cases, weights);
        println!("{name}: recall@1 {r1:.3}, recall@5 {r5:.3}");
        results.push((name, r1, r5, missed));
    }
    let (_, r1, r5, missed) = &results[0];
    for m in missed {
        println!("missed at 5: {m}");
    }
    assert_eq!(settings()[0].1, Weights::default());
    assert!(*r1 >= 0.78 && *r5 >= 0.92, "default: recall@1 {r1:.3}, recall@5 {r5:.3}");
}
