//! The pipelines API: `GET /pipelines` (names, descriptions, input schemas), `POST
//! /pipelines/{name}` with the inputs (the report when the run ends; with `Prefer:
//! respond-async`, 202 and `Location: /pipelines/runs/{id}` at once), `GET /pipelines/runs` and
//! `GET /pipelines/runs/{id}`. A run never holds a worker: it runs on its own thread, and a
//! caller waiting for it waits on a thread of its own.

use std::time::Duration;

use serde_json::{Value, json};

use super::json_of;
use super::routes::Params;
use crate::app::App;
use crate::error::{Error, Result};
use crate::front::{Reply, Req};

/// Longest a synchronous caller waits; after it, the report as it stands (still `running`).
const SYNC_WAIT: Duration = Duration::from_secs(3600);

pub fn list(app: &App, _: &Req, _: &Params) -> Result<Reply> {
    let all: Vec<Value> = app.pipelines.list().iter().map(|p| app.pipelines.describe(p)).collect();
    Ok(Reply::ok(&json!({ "pipelines": all })))
}

pub fn start(app: &App, req: &Req, p: &Params) -> Result<Reply> {
    let inputs = json_of(req)?;
    let run = app.pipelines.start(p.get("name"), &inputs, None)?;
    let wants_async = req
        .header("prefer")
        .is_some_and(|v| v.split([',', ';']).any(|t| t.trim().eq_ignore_ascii_case("respond-async")));
    if wants_async {
        let location = format!("/pipelines/runs/{}", run.id);
        return Ok(Reply::json(202, &run.report()).with_header("Location", location));
    }
    Ok(Reply::spawn(move || {
        run.wait(SYNC_WAIT);
        Reply::ok(&run.report())
    }))
}

pub fn runs(app: &App, _: &Req, _: &Params) -> Result<Reply> {
    let runs: Vec<Value> = app
        .pipelines
        .runs()
        .iter()
        .map(|r| {
            let mut v = r.report();
            if let Some(m) = v.as_object_mut() {
                m.remove("steps");
                m.remove("result");
            }
            v
        })
        .collect();
    Ok(Reply::ok(&json!({ "runs": runs })))
}

pub fn run(app: &App, _: &Req, p: &Params) -> Result<Reply> {
    let id = p.get("id");
    let run = app.pipelines.run(id).ok_or_else(|| Error::NotFound(format!("no pipeline run \"{id}\"")))?;
    Ok(Reply::ok(&run.report()))
}
