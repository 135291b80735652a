//! Pipelines: declarative multi-step flows across servers (`configs/pipelines.json`). A run is
//! started with validated inputs and executes on a thread of its own (never an HTTP worker),
//! step after step (`run.rs`); its report grows as steps end, and callers wait on it or poll
//! it. At most `Limits::max_runs` runs are under way at once (past it a start is
//! `Error::TooManyRequests`); the last `KEPT_RUNS` finished runs are kept, each result within
//! `MAX_RESULT_BYTES`. Tool steps go
//! through the one call path (`Servers::acquire`), so deadlines, breakers, restarts and the
//! activity feed apply. A path input marked `under` a root is resolved (symlinks followed) and
//! must lie inside it.

mod run;

use std::collections::{HashSet, VecDeque};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex, RwLock};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::activity::Activity;
use crate::config::pipelines::{Pipeline, has_type, servers_used};
use crate::enhance;
use crate::error::{Error, Result};
use crate::servers::Servers;

/// Finished runs kept for `GET /pipelines/runs`.
pub const KEPT_RUNS: usize = 50;
/// Largest result a run keeps (as JSON): past it the run fails with a note instead, so the
/// kept runs hold at most `KEPT_RUNS` × this much.
pub const MAX_RESULT_BYTES: usize = 1 << 20;

/// What a run is told after each step: the step's report, how many steps are done, and of how
/// many.
pub type Progress = Box<dyn Fn(&StepReport, usize, usize) + Send>;

/// What runs are held to.
pub struct Limits {
    /// Runs under way at once (`AGENTHUB_MAX_PIPELINE_RUNS`).
    pub max_runs: usize,
    /// Where inputs marked `"under": "vault_root"` must point (`AGENTHUB_VAULT_ROOT`).
    pub vault_root: PathBuf,
}

/// What the steps use.
struct Context {
    servers: Arc<Servers>,
    enhancer: Arc<enhance::Service>,
    activity: Arc<Activity>,
    stopping: AtomicBool,
    turns: Turns,
}

/// The exclusive pipelines with a run under way: a run of one waits here for its turn.
#[derive(Default)]
struct Turns {
    busy: Mutex<HashSet<String>>,
    freed: Condvar,
}

/// One exclusive pipeline's turn, passed on when dropped.
struct Turn<'a> {
    turns: &'a Turns,
    pipeline: String,
}

impl Turns {
    fn busy(&self, pipeline: &str) -> bool {
        self.busy.lock().contains(pipeline)
    }

    /// Waits until no other run of `pipeline` is under way (bounded by that run's own end).
    fn take(&self, pipeline: &str) -> Turn<'_> {
        let mut busy = self.busy.lock();
        while busy.contains(pipeline) {
            self.freed.wait(&mut busy);
        }
        busy.insert(pipeline.to_string());
        Turn { turns: self, pipeline: pipeline.to_string() }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.turns.busy.lock().remove(&self.pipeline);
        self.turns.freed.notify_all();
    }
}

pub struct Pipelines {
    /// Swapped whole by a reload; a run keeps the definition it started with.
    defs: RwLock<Vec<Arc<Pipeline>>>,
    ctx: Arc<Context>,
    limits: Limits,
    /// The runs under way (at most `limits.max_runs`) and the last `KEPT_RUNS` finished.
    runs: Mutex<VecDeque<Arc<Run>>>,
    next_id: AtomicU64,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Ok,
    Failed,
}

/// One step as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub id: String,
    pub kind: &'static str,
    /// `ok`, `failed` or `skipped`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How many items a `foreach` went through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<usize>,
    /// Tries beyond the first (`retries`).
    #[serde(skip_serializing_if = "is_zero")]
    pub retried: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One run of a pipeline.
pub struct Run {
    pub id: String,
    pub pipeline: String,
    started_at: SystemTime,
    started: Instant,
    total: usize,
    state: Mutex<RunState>,
    changed: Condvar,
}

struct RunState {
    status: Status,
    steps: Vec<StepReport>,
    result: Value,
    duration_ms: Option<u64>,
}

impl Run {
    pub fn is_done(&self) -> bool {
        self.state.lock().status != Status::Running
    }

    /// The report: `{pipeline, run_id, status, started_at, duration_ms, steps, result}`.
    pub fn report(&self) -> Value {
        let st = self.state.lock();
        let ms = st.duration_ms.unwrap_or_else(|| self.started.elapsed().as_millis() as u64);
        json!({
            "pipeline": self.pipeline,
            "run_id": self.id,
            "status": st.status,
            "started_at_ms": self.started_at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            "duration_ms": ms,
            "steps_done": st.steps.len(),
            "steps_total": self.total,
            "steps": st.steps,
            "result": st.result,
        })
    }

    /// Waits until the run ends or `timeout` passes; true when it ended.
    pub fn wait(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        let mut st = self.state.lock();
        while st.status == Status::Running {
            if self.changed.wait_until(&mut st, until).timed_out() {
                break;
            }
        }
        st.status != Status::Running
    }

    fn step_done(&self, report: StepReport) {
        self.state.lock().steps.push(report);
        self.changed.notify_all();
    }

    fn finish(&self, status: Status, result: Value) {
        let mut st = self.state.lock();
        st.status = status;
        st.result = result;
        st.duration_ms = Some(self.started.elapsed().as_millis() as u64);
        drop(st);
        self.changed.notify_all();
    }
}

impl Pipelines {
    pub fn new(
        defs: Vec<Pipeline>,
        servers: Arc<Servers>,
        enhancer: Arc<enhance::Service>,
        activity: Arc<Activity>,
        limits: Limits,
    ) -> Pipelines {
        let stopping = AtomicBool::new(false);
        Pipelines {
            defs: RwLock::new(defs.into_iter().map(Arc::new).collect()),
            ctx: Arc::new(Context { servers, enhancer, activity, stopping, turns: Turns::default() }),
            limits,
            runs: Mutex::default(),
            next_id: AtomicU64::new(1),
            threads: Mutex::default(),
        }
    }

    pub fn list(&self) -> Vec<Arc<Pipeline>> {
        self.defs.read().clone()
    }

    pub fn get(&self, name: &str) -> Option<Arc<Pipeline>> {
        self.defs.read().iter().find(|p| p.name == name).cloned()
    }

    /// Swaps in reloaded definitions (runs under way go on with theirs); the names of the
    /// pipelines added, removed or changed.
    pub fn set(&self, defs: Vec<Pipeline>) -> Vec<String> {
        let new: Vec<Arc<Pipeline>> = defs.into_iter().map(Arc::new).collect();
        let mut defs = self.defs.write();
        let mut changed: Vec<String> = Vec::new();
        for p in defs.iter().chain(new.iter()) {
            let before = defs.iter().find(|o| o.name == p.name);
            let after = new.iter().find(|n| n.name == p.name);
            if before != after && !changed.contains(&p.name) {
                changed.push(p.name.clone());
            }
        }
        *defs = new;
        changed
    }

    /// The servers a pipeline uses that the hub does not have.
    pub fn missing_servers(&self, p: &Pipeline) -> Vec<String> {
        servers_used(p).into_iter().filter(|s| !self.ctx.servers.contains(s)).collect()
    }

    /// A pipeline as `GET /pipelines` lists it.
    pub fn describe(&self, p: &Pipeline) -> Value {
        let mut v = json!({"name": p.name, "description": p.description, "inputs": p.schema,
                           "steps": p.steps.iter().map(|s| json!({"id": s.id, "kind": s.kind.name()})).collect::<Vec<_>>()});
        let missing = self.missing_servers(p);
        if !missing.is_empty() {
            v["missing_servers"] = json!(missing);
        }
        v
    }

    /// Validates the inputs and starts a run on a thread of its own; with `max_runs` under
    /// way, `Error::TooManyRequests`.
    pub fn start(&self, name: &str, inputs: &Value, progress: Option<Progress>) -> Result<Arc<Run>> {
        let p = self.get(name).ok_or_else(|| {
            let defs = self.list();
            let known: Vec<&str> = defs.iter().map(|p| p.name.as_str()).collect();
            Error::NotFound(format!("no pipeline named \"{name}\" (known: {})", known.join(", ")))
        })?;
        let inputs = validate(&p, inputs, &self.limits)?;
        if self.ctx.stopping.load(Ordering::SeqCst) {
            return Err(Error::Unavailable("the hub is stopping".into()));
        }
        let id = format!("run-{}", self.next_id.fetch_add(1, Ordering::SeqCst));
        let run = Arc::new(Run {
            id: id.clone(),
            pipeline: p.name.clone(),
            started_at: SystemTime::now(),
            started: Instant::now(),
            total: p.steps.len(),
            state: Mutex::new(RunState {
                status: Status::Running,
                steps: Vec::new(),
                result: Value::Null,
                duration_ms: None,
            }),
            changed: Condvar::new(),
        });
        self.admit(run.clone())?;
        let (ctx, r) = (self.ctx.clone(), run.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("pipeline-{id}"))
            .spawn(move || run::execute(&ctx, &p, &r, inputs, progress));
        let handle = match spawned {
            Ok(h) => h,
            Err(e) => {
                // Admitted, it counts as under way until it ends: end it, or its place is lost.
                run.finish(Status::Failed, json!({"error": format!("starting the run: {e}")}));
                return Err(Error::io("starting a pipeline run", e));
            }
        };
        let mut threads = self.threads.lock();
        threads.retain(|h| !h.is_finished());
        threads.push(handle);
        Ok(run)
    }

    /// Keeps a new run among the runs, unless `max_runs` are under way; the oldest finished
    /// ones past `KEPT_RUNS` are forgotten.
    fn admit(&self, run: Arc<Run>) -> Result<()> {
        let mut runs = self.runs.lock();
        let running = runs.iter().filter(|r| !r.is_done()).count();
        if running >= self.limits.max_runs {
            return Err(Error::TooManyRequests(format!(
                "{running} pipeline runs are under way, the most at once (AGENTHUB_MAX_PIPELINE_RUNS={}): try again once one has ended",
                self.limits.max_runs
            )));
        }
        runs.push_back(run);
        while runs.iter().filter(|r| r.is_done()).count() > KEPT_RUNS {
            let Some(oldest) = runs.iter().position(|r| r.is_done()) else { break };
            runs.remove(oldest);
        }
        Ok(())
    }

    pub fn run(&self, id: &str) -> Option<Arc<Run>> {
        self.runs.lock().iter().find(|r| r.id == id).cloned()
    }

    /// The runs kept, newest first.
    pub fn runs(&self) -> Vec<Arc<Run>> {
        self.runs.lock().iter().rev().cloned().collect()
    }

    /// No new run starts and running ones stop after their current step.
    pub fn begin_shutdown(&self) {
        self.ctx.stopping.store(true, Ordering::SeqCst);
    }

    /// Waits for every run's thread (call after the servers are down, so no step waits long).
    pub fn join(&self) {
        let threads = std::mem::take(&mut *self.threads.lock());
        for h in threads {
            let _ = h.join();
        }
    }
}

/// The inputs checked against the pipeline's schema, defaults filled in, paths kept `under` a
/// root resolved; a 400 names the field.
fn validate(p: &Pipeline, given: &Value, limits: &Limits) -> Result<Map<String, Value>> {
    let given = match given {
        Value::Null => Map::new(),
        Value::Object(m) => m.clone(),
        _ => return Err(Error::BadRequest("inputs: expected a JSON object of inputs by name".into())),
    };
    let known: Vec<&str> = p.inputs.iter().map(|i| i.name.as_str()).collect();
    if let Some(k) = given.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(Error::BadRequest(format!("inputs.{k}: unknown input (known: {})", known.join(", "))));
    }
    let mut out = Map::new();
    for input in &p.inputs {
        let v = match given.get(&input.name).filter(|v| !v.is_null()) {
            Some(v) => v.clone(),
            None => match (&input.default, input.required) {
                (Some(d), _) => d.clone(),
                (None, true) => return Err(Error::BadRequest(format!("inputs.{}: required", input.name))),
                (None, false) => continue,
            },
        };
        if let Some(kind) = &input.kind {
            if !has_type(&v, kind) {
                return Err(Error::BadRequest(format!(
                    "inputs.{}: expected {} {kind}",
                    input.name,
                    article(kind)
                )));
            }
        }
        if let Some(choices) = &input.choices {
            if !choices.contains(&v) {
                let list: Vec<String> = choices.iter().map(Value::to_string).collect();
                return Err(Error::BadRequest(format!(
                    "inputs.{}: must be one of {}",
                    input.name,
                    list.join(", ")
                )));
            }
        }
        let v = match (&input.under, &v) {
            (Some(_), Value::String(path)) => json!(inside(&input.name, path, &limits.vault_root)?),
            _ => v,
        };
        out.insert(input.name.clone(), v);
    }
    Ok(out)
}

/// `path` resolved (symlinks followed, as far as it exists; the rest must not exist yet) when
/// it lies inside `root`, else a 400 naming the input. `..` is refused outright: in the part
/// that does not exist yet it could not be resolved.
fn inside(input: &str, path: &str, root: &Path) -> Result<String> {
    let bad = |why: String| Error::BadRequest(format!("inputs.{input}: {why}"));
    let given = Path::new(path);
    if !given.is_absolute() {
        return Err(bad(format!("\"{path}\" is not an absolute path")));
    }
    if given.components().any(|c| c == Component::ParentDir) {
        return Err(bad(format!("\"{path}\": \"..\" is not allowed in the path")));
    }
    let root = root.canonicalize().map_err(|e| {
        bad(format!("the vault root {} (AGENTHUB_VAULT_ROOT) cannot be resolved: {e}", root.display()))
    })?;
    // The deepest part that exists, resolved; what follows it is appended as it is.
    let mut rest: Vec<&std::ffi::OsStr> = Vec::new();
    let mut at = given;
    let resolved = loop {
        if at.symlink_metadata().is_ok() {
            break at
                .canonicalize()
                .map_err(|e| bad(format!("\"{}\" cannot be resolved: {e}", at.display())))?;
        }
        match (at.file_name(), at.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                at = parent;
            }
            _ => return Err(bad(format!("\"{path}\" cannot be resolved"))),
        }
    };
    let full = rest.iter().rev().fold(resolved, |p, name| p.join(name));
    if !full.starts_with(&root) {
        return Err(bad(format!(
            "{} is outside the vault root {} (AGENTHUB_VAULT_ROOT)",
            full.display(),
            root.display()
        )));
    }
    full.to_str().map(str::to_string).ok_or_else(|| bad(format!("\"{}\" is not UTF-8", full.display())))
}

fn article(kind: &str) -> &'static str {
    if kind.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::pipelines::parse_pipelines;

    #[test]
    fn inputs_are_checked_and_defaulted() {
        let text = r#"{"pipelines": {"p": {"inputs": {"path": {"type": "string"}, "depth": {"type": "integer", "default": 2},
            "mode": {"enum": ["a", "b"]}}, "required": ["path"], "steps": [{"id": "t", "template": "x"}]}}}"#;
        let p = &parse_pipelines(text, "p.json").unwrap()[0];
        let limits = Limits { max_runs: 1, vault_root: PathBuf::from("/") };
        let check = |given: Value, want: std::result::Result<Value, &str>| {
            let got = validate(p, &given, &limits).map(Value::Object).map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_string), "{given}");
        };
        check(json!({"path": "/r"}), Ok(json!({"path": "/r", "depth": 2})));
        check(
            json!({"path": "/r", "depth": 5, "mode": "b"}),
            Ok(json!({"path": "/r", "depth": 5, "mode": "b"})),
        );
        check(json!({}), Err("inputs.path: required"));
        check(json!({"path": 3}), Err("inputs.path: expected a string"));
        check(json!({"path": "/r", "depth": 1.5}), Err("inputs.depth: expected an integer"));
        check(json!({"path": "/r", "mode": "c"}), Err("inputs.mode: must be one of \"a\", \"b\""));
        check(
            json!({"path": "/r", "colour": 1}),
            Err("inputs.colour: unknown input (known: path, depth, mode)"),
        );
        check(json!([1]), Err("inputs: expected a JSON object of inputs by name"));
    }
}

#[cfg(test)]
mod paths {
    use super::*;

    #[test]
    fn paths_under_a_root_are_resolved_and_kept_inside() {
        let base = std::env::temp_dir().join(format!("agenthub-inside-{}", std::process::id()));
        let (root, out) = (base.join("root"), base.join("out"));
        std::fs::create_dir_all(root.join("notes")).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::os::unix::fs::symlink(&out, root.join("escape")).unwrap();
        std::os::unix::fs::symlink(base.join("nowhere"), root.join("dangling")).unwrap();
        let canon = base.canonicalize().unwrap();
        let s = |p: &Path| p.to_str().unwrap().to_string();
        let check = |path: String, want: std::result::Result<String, &str>| {
            let got = inside("vault", &path, &root).map_err(|e| e.to_string());
            match (&got, &want) {
                (Err(g), Err(w)) => assert!(g.contains(w), "{path}: {g}"),
                _ => assert_eq!(got, want.map_err(str::to_string), "{path}"),
            }
        };
        check(s(&root.join("notes")), Ok(s(&canon.join("root/notes"))));
        check(s(&root.join("notes/new/deeper")), Ok(s(&canon.join("root/notes/new/deeper"))));
        check(s(&root), Ok(s(&canon.join("root"))));
        check(s(&out), Err("is outside the vault root"));
        check(s(&root.join("escape")), Err("is outside the vault root"));
        check(s(&root.join("escape/new")), Err("is outside the vault root"));
        check(s(&root.join("notes/../../out")), Err("\"..\" is not allowed"));
        check(s(&root.join("dangling/x")), Err("cannot be resolved"));
        check("notes".into(), Err("is not an absolute path"));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
