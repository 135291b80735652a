//! The hub's metrics registry, rendered in the Prometheus text format (0.0.4) by hand. One
//! registry per process, as there is one log: the request path, the calls and the enhancement
//! service record into it with one call each (`api::metrics` renders it for `/metrics`, with what
//! it reads at scrape time). A leaf: it imports nothing of the hub.
//!
//! Every label value is bounded: servers are the configured ones, methods a fixed list, clients
//! the rules' names, routes the route table's templates (never a raw path); tool and model names
//! keep the first `MAX_NAMES` seen per family, and `other` stands for the rest.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use parking_lot::Mutex;

/// Histogram bucket bounds in seconds (5 ms … 120 s).
const BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];
/// Distinct tool (per server) and model names kept as label values; past it, `other`.
const MAX_NAMES: usize = 64;
/// The label value standing for every value not kept.
pub const OTHER: &str = "other";

/// The MCP methods kept as label values.
const METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/roots/list_changed",
    "batch",
];

/// How a call to a server's tool ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A result with `isError: true`: the tool ran and failed.
    IsError,
    RpcError,
    Timeout,
    Unavailable,
    CircuitOpen,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::IsError => "is_error",
            Outcome::RpcError => "rpc_error",
            Outcome::Timeout => "timeout",
            Outcome::Unavailable => "unavailable",
            Outcome::CircuitOpen => "circuit_open",
        }
    }

    /// The OpenTelemetry `error.type`: empty for success.
    fn error_type(self) -> &'static str {
        match self {
            Outcome::Ok => "",
            Outcome::IsError => "tool_error",
            o => o.as_str(),
        }
    }
}

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
}

const SERVER_OPS: Family = Family {
    name: "mcp_server_operation_duration_seconds",
    kind: "histogram",
    help: "MCP requests clients made to the hub, by method, tool and error type",
    labels: &["mcp_method_name", "gen_ai_tool_name", "error_type"],
};
const CLIENT_OPS: Family = Family {
    name: "mcp_client_operation_duration_seconds",
    kind: "histogram",
    help: "MCP requests the hub made to its servers, by server, method, tool and error type",
    labels: &["server", "mcp_method_name", "gen_ai_tool_name", "error_type"],
};
const TOOL_CALLS: Family = Family {
    name: "agenthub_tool_calls_total",
    kind: "counter",
    help: "Tool calls to servers by outcome (ok, is_error, rpc_error, timeout, unavailable, circuit_open)",
    labels: &["server", "tool", "outcome"],
};
const RESTARTS: Family = Family {
    name: "agenthub_server_restarts_total",
    kind: "counter",
    help: "Restarts of a server after it crashed or failed",
    labels: &["server"],
};
const OLLAMA_REQUESTS: Family = Family {
    name: "agenthub_ollama_requests_total",
    kind: "counter",
    help: "Generations asked of Ollama by model and outcome",
    labels: &["model", "outcome"],
};
const OLLAMA_DURATION: Family = Family {
    name: "agenthub_ollama_request_duration_seconds",
    kind: "histogram",
    help: "How long Ollama took to answer a generation",
    labels: &["model"],
};
const OLLAMA_TOKENS: Family = Family {
    name: "agenthub_ollama_tokens_total",
    kind: "counter",
    help: "Tokens Ollama counted (prompt_eval_count, eval_count) by model and kind",
    labels: &["model", "kind"],
};
const ENHANCE: Family = Family {
    name: "agenthub_enhance_total",
    kind: "counter",
    help: "Prompt enhancements by client rule and result (enhanced, cached or the fallback's reason)",
    labels: &["client", "result"],
};
const HTTP_REQUESTS: Family = Family {
    name: "agenthub_http_requests_total",
    kind: "counter",
    help: "HTTP requests by route template and status",
    labels: &["route", "status"],
};
const RELOADS: Family = Family {
    name: "agenthub_config_reloads_total",
    kind: "counter",
    help: "Reloads of the hub's configuration files by result (applied, invalid)",
    labels: &["result"],
};

/// Families recorded as events, in the order they are rendered.
const RECORDED: [&Family; 10] = [
    &SERVER_OPS,
    &CLIENT_OPS,
    &TOOL_CALLS,
    &RESTARTS,
    &OLLAMA_REQUESTS,
    &OLLAMA_DURATION,
    &OLLAMA_TOKENS,
    &ENHANCE,
    &HTTP_REQUESTS,
    &RELOADS,
];

#[derive(Clone, Default)]
struct Histogram {
    /// Per bucket, not cumulative (summed when rendered).
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum += secs;
    }
}

#[derive(Default)]
struct Series {
    counters: BTreeMap<Vec<String>, u64>,
    histograms: BTreeMap<Vec<String>, Histogram>,
}

/// A series' label values as stored (`Vec<String>`) or as asked for (`&[&str]`): a series that
/// exists is found without allocating.
trait Key {
    fn len(&self) -> usize;
    fn at(&self, i: usize) -> &str;
}

impl Key for Vec<String> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn at(&self, i: usize) -> &str {
        &self[i]
    }
}

impl Key for &[&str] {
    fn len(&self) -> usize {
        <[&str]>::len(self)
    }
    fn at(&self, i: usize) -> &str {
        self[i]
    }
}

impl<'a> Borrow<dyn Key + 'a> for Vec<String> {
    fn borrow(&self) -> &(dyn Key + 'a) {
        self
    }
}

/// Value by value, as `Vec<String>` orders.
impl Ord for dyn Key + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        (0..self.len()).map(|i| self.at(i)).cmp((0..other.len()).map(|i| other.at(i)))
    }
}

impl PartialOrd for dyn Key + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for dyn Key + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for dyn Key + '_ {}

fn owned(labels: &[&str]) -> Vec<String> {
    labels.iter().map(|l| l.to_string()).collect()
}

#[derive(Default)]
struct Inner {
    series: BTreeMap<&'static str, Series>,
    /// Tool names kept per server, and model names kept.
    tools: BTreeMap<String, BTreeSet<String>>,
    models: BTreeSet<String>,
}

impl Inner {
    fn add(&mut self, f: &Family, labels: &[&str], n: u64) {
        let counters = &mut self.series.entry(f.name).or_default().counters;
        match counters.get_mut(&labels as &dyn Key) {
            Some(c) => *c += n,
            None => {
                counters.insert(owned(labels), n);
            }
        }
    }

    fn observe(&mut self, f: &Family, labels: &[&str], secs: f64) {
        let histograms = &mut self.series.entry(f.name).or_default().histograms;
        match histograms.get_mut(&labels as &dyn Key) {
            Some(h) => h.observe(secs),
            None => histograms.entry(owned(labels)).or_default().observe(secs),
        }
    }

    fn model(&mut self, model: &str) -> String {
        keep(&mut self.models, model).to_string()
    }
}

/// The label value of `tool` on `server`: kept (or there is room to keep it), else `other`.
fn kept_tool<'v>(tools: &mut BTreeMap<String, BTreeSet<String>>, server: &str, tool: &'v str) -> &'v str {
    if tool.is_empty() {
        return "";
    }
    if !tools.contains_key(server) {
        tools.insert(server.to_string(), BTreeSet::new());
    }
    match tools.get_mut(server) {
        Some(kept) => keep(kept, tool),
        None => OTHER,
    }
}

/// `value` if it is kept (or there is room to keep it), else `other`.
fn keep<'v>(kept: &mut BTreeSet<String>, value: &'v str) -> &'v str {
    if !kept.contains(value) {
        if kept.len() >= MAX_NAMES || value.len() > 128 {
            return OTHER;
        }
        kept.insert(value.to_string());
    }
    value
}

/// A status code as text, without allocating (the hub's statuses have three digits).
fn status_text(status: u16, buf: &mut [u8; 3]) -> &str {
    let s = status.min(999);
    *buf = [b'0' + (s / 100) as u8, b'0' + (s / 10 % 10) as u8, b'0' + (s % 10) as u8];
    std::str::from_utf8(buf).unwrap_or("")
}

/// A method as a label value: a known MCP method, else `other`.
pub fn method_label(method: &str) -> &'static str {
    METHODS.iter().find(|m| **m == method).copied().unwrap_or(OTHER)
}

/// The registry.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// The process's registry.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

impl Metrics {
    /// A request the hub made to one of its servers and how it ended; a `tools/call` is also
    /// counted in `agenthub_tool_calls_total`.
    pub fn server_call(&self, server: &str, method: &str, tool: &str, outcome: Outcome, took: Duration) {
        let mut guard = self.inner.lock();
        let m = &mut *guard;
        let tool = if method == "tools/call" { kept_tool(&mut m.tools, server, tool) } else { "" };
        let method = method_label(method);
        let labels = [server, method, tool, outcome.error_type()];
        m.observe(&CLIENT_OPS, &labels, took.as_secs_f64());
        if method == "tools/call" {
            m.add(&TOOL_CALLS, &[server, tool, outcome.as_str()], 1);
        }
    }

    /// A JSON-RPC request a client made to the hub (`server` names the endpoint's server, if
    /// any, for the tool name's bound).
    pub fn client_operation(&self, server: &str, method: &str, tool: &str, error_type: &str, took: Duration) {
        let mut guard = self.inner.lock();
        let m = &mut *guard;
        let tool = if method == "tools/call" { kept_tool(&mut m.tools, server, tool) } else { "" };
        m.observe(&SERVER_OPS, &[method_label(method), tool, error_type], took.as_secs_f64());
    }

    pub fn server_restart(&self, server: &str) {
        self.inner.lock().add(&RESTARTS, &[server], 1);
    }

    /// One generation asked of Ollama: `outcome` is `ok` or the failure's reason.
    pub fn ollama(&self, model: &str, outcome: &str, took: Duration, tokens: (u64, u64)) {
        let mut m = self.inner.lock();
        let model = m.model(model);
        m.add(&OLLAMA_REQUESTS, &[&model, outcome], 1);
        m.observe(&OLLAMA_DURATION, &[&model], took.as_secs_f64());
        m.add(&OLLAMA_TOKENS, &[&model, "prompt"], tokens.0);
        m.add(&OLLAMA_TOKENS, &[&model, "completion"], tokens.1);
    }

    /// An enhancement answered for a client rule (`client` is the rule's name).
    pub fn enhance(&self, client: &str, result: &str) {
        self.inner.lock().add(&ENHANCE, &[client, result], 1);
    }

    pub fn http_request(&self, route: &'static str, status: u16) {
        let mut buf = [0; 3];
        self.inner.lock().add(&HTTP_REQUESTS, &[route, status_text(status, &mut buf)], 1);
    }

    /// A reload of the configuration: `applied` or `invalid`.
    pub fn reload(&self, result: &'static str) {
        self.inner.lock().add(&RELOADS, &[result], 1);
    }

    /// Everything recorded, in the text format (no gauges).
    pub fn render_recorded(&self, out: &mut String) {
        let m = self.inner.lock();
        for f in RECORDED {
            header(out, f);
            let Some(series) = m.series.get(f.name) else { continue };
            for (labels, n) in &series.counters {
                sample(out, f.name, "", f.labels, labels, None, *n as f64);
            }
            for (labels, h) in &series.histograms {
                let mut total = 0;
                for (i, bound) in BUCKETS.iter().enumerate() {
                    total += h.counts[i];
                    sample(
                        out,
                        f.name,
                        "_bucket",
                        f.labels,
                        labels,
                        Some(&format_float(*bound)),
                        total as f64,
                    );
                }
                sample(out, f.name, "_bucket", f.labels, labels, Some("+Inf"), h.count as f64);
                sample(out, f.name, "_sum", f.labels, labels, None, h.sum);
                sample(out, f.name, "_count", f.labels, labels, None, h.count as f64);
            }
        }
    }
}

fn header(out: &mut String, f: &Family) {
    let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
    let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
}

fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    names: &[&str],
    values: &[String],
    le: Option<&str>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    let mut sep = '{';
    for (n, v) in names.iter().zip(values) {
        out.push(sep);
        sep = ',';
        out.push_str(n);
        out.push_str("=\"");
        escape(out, v);
        out.push('"');
    }
    if let Some(le) = le {
        out.push(sep);
        sep = ',';
        out.push_str("le=\"");
        out.push_str(le);
        out.push('"');
    }
    if sep == ',' {
        out.push('}');
    }
    out.push(' ');
    out.push_str(&format_float(value));
    out.push('\n');
}

fn escape(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn format_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

/// A gauge family read at scrape time.
pub fn gauge(out: &mut String, name: &str, help: &str, labels: &[&str], rows: &[(Vec<String>, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (values, v) in rows {
        sample(out, name, "", labels, values, None, *v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_render_in_the_text_format() {
        let m = Metrics::default();
        m.server_call("fx", "tools/call", "echo", Outcome::Ok, Duration::from_millis(7));
        m.server_call("fx", "tools/call", "echo", Outcome::Timeout, Duration::from_secs(200));
        m.http_request("/servers/{name}", 404);
        // Series found again add up, whatever was recorded between.
        for (route, status) in
            [("/health", 200), ("/servers/{name}", 404), ("/health", 200), ("/health", 503)]
        {
            m.http_request(route, status);
        }
        m.http_request("/health", 200);
        let mut out = String::new();
        m.render_recorded(&mut out);
        for line in [
            "agenthub_tool_calls_total{server=\"fx\",tool=\"echo\",outcome=\"ok\"} 1",
            "agenthub_tool_calls_total{server=\"fx\",tool=\"echo\",outcome=\"timeout\"} 1",
            "mcp_client_operation_duration_seconds_bucket{server=\"fx\",mcp_method_name=\"tools/call\",gen_ai_tool_name=\"echo\",error_type=\"\",le=\"0.01\"} 1",
            "mcp_client_operation_duration_seconds_bucket{server=\"fx\",mcp_method_name=\"tools/call\",gen_ai_tool_name=\"echo\",error_type=\"timeout\",le=\"120\"} 0",
            "mcp_client_operation_duration_seconds_bucket{server=\"fx\",mcp_method_name=\"tools/call\",gen_ai_tool_name=\"echo\",error_type=\"timeout\",le=\"+Inf\"} 1",
            "agenthub_http_requests_total{route=\"/servers/{name}\",status=\"404\"} 2",
            "agenthub_http_requests_total{route=\"/health\",status=\"200\"} 3",
            "agenthub_http_requests_total{route=\"/health\",status=\"503\"} 1",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing in\n{out}");
        }
    }

    #[test]
    fn label_values_are_bounded_and_escaped() {
        let m = Metrics::default();
        for i in 0..(MAX_NAMES + 3) {
            m.server_call("fx", "tools/call", &format!("t{i}"), Outcome::Ok, Duration::ZERO);
        }
        m.server_call("fx", "made/up", "", Outcome::Ok, Duration::ZERO);
        m.enhance("a\"b\\c\n", "cached");
        let mut out = String::new();
        m.render_recorded(&mut out);
        assert!(out.contains("tool=\"other\",outcome=\"ok\"} 3"), "{out}");
        assert!(out.contains("mcp_method_name=\"other\""), "{out}");
        assert!(out.contains("client=\"a\\\"b\\\\c\\n\""), "{out}");
    }
}
