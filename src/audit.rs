//! The audit trail: one JSON line per tool call, however it came (the MCP endpoints, the REST
//! relay, a pipeline's step): when, who (client name, profile, the name of the token it
//! presented), which server and tool, how it ended and how long it took — never its arguments
//! or its result. To `<data dir>/audit.jsonl` (0600, rotated at `ROTATE_AT` bytes, `KEEP` files
//! kept), or to standard output for a cluster's log shipping (`AGENTHUB_AUDIT=stdout`), or
//! nowhere (`off`). A line that cannot be written is dropped with a warning, once per outage:
//! the call itself never waits on the trail.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use serde_json::json;

/// Bytes of `audit.jsonl` before it is rotated.
pub const ROTATE_AT: u64 = 10 * 1024 * 1024;
/// Rotated files kept (`audit.jsonl.1` … `.3`).
pub const KEEP: usize = 3;

/// Who made a call, as the trail names them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Who {
    pub client: Option<String>,
    pub profile: Option<String>,
    /// The tokens file's name for the token presented (never the token).
    pub token: Option<String>,
}

/// Where the trail goes (`AGENTHUB_AUDIT`).
#[derive(Debug, Clone, PartialEq)]
pub enum Sink {
    Off,
    Stdout,
    File(PathBuf),
}

struct Open {
    sink: Sink,
    file: Option<File>,
    size: u64,
    failing: bool,
}

pub struct Audit {
    open: Mutex<Open>,
}

/// The process's trail (off until `configure`).
pub fn global() -> &'static Audit {
    static AUDIT: OnceLock<Audit> = OnceLock::new();
    AUDIT.get_or_init(|| Audit {
        open: Mutex::new(Open { sink: Sink::Off, file: None, size: 0, failing: false }),
    })
}

impl Audit {
    /// Sends the trail to `sink` from now on.
    pub fn configure(&self, sink: Sink) {
        *self.open.lock() = Open { sink, file: None, size: 0, failing: false };
    }

    /// One tool call: `outcome` as the metrics name it (`ok`, `tool_error`, `timeout`, ...).
    pub fn tool_call(&self, who: Option<&Who>, server: &str, tool: &str, outcome: &str, took: Duration) {
        let mut open = self.open.lock();
        if open.sink == Sink::Off {
            return;
        }
        let who = who.cloned().unwrap_or_default();
        let line = json!({
            "time": crate::time::rfc3339(SystemTime::now()),
            "client": who.client, "profile": who.profile, "token": who.token,
            "server": server, "tool": tool, "outcome": outcome,
            "duration_ms": (took.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        })
        .to_string()
            + "\n";
        let written = match open.sink.clone() {
            Sink::Off => Ok(()),
            Sink::Stdout => std::io::stdout().lock().write_all(line.as_bytes()),
            Sink::File(path) => open.append(&path, line.as_bytes()),
        };
        match written {
            Ok(()) if open.failing => {
                open.failing = false;
                log::info!("the audit trail is written again");
            }
            Ok(()) => {}
            Err(e) if !open.failing => {
                open.failing = true;
                open.file = None;
                log::warn!("the audit trail cannot be written ({e}); calls go on, their lines are dropped");
            }
            Err(_) => open.file = None,
        }
    }
}

impl Open {
    fn append(&mut self, path: &PathBuf, line: &[u8]) -> std::io::Result<()> {
        if self.file.is_some() && self.size + line.len() as u64 > ROTATE_AT {
            self.file = None;
            rotate(path)?;
        }
        if self.file.is_none() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file = OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
            self.size = file.metadata()?.len();
            self.file = Some(file);
            if self.size + line.len() as u64 > ROTATE_AT {
                self.file = None;
                rotate(path)?;
                return self.append(path, line);
            }
        }
        let file = self.file.as_mut().ok_or_else(|| std::io::Error::other("not open"))?;
        file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }
}

/// `audit.jsonl` → `.1` → … → `.KEEP`; the oldest goes.
fn rotate(path: &PathBuf) -> std::io::Result<()> {
    let numbered = |n: usize| PathBuf::from(format!("{}.{n}", path.display()));
    let _ = std::fs::remove_file(numbered(KEEP));
    for n in (1..KEEP).rev() {
        if numbered(n).exists() {
            std::fs::rename(numbered(n), numbered(n + 1))?;
        }
    }
    std::fs::rename(path, numbered(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_who_and_what_and_rotate_keeping_three() {
        let dir = std::env::temp_dir().join(format!("agenthub-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("audit.jsonl");
        let audit = Audit {
            open: Mutex::new(Open { sink: Sink::File(path.clone()), file: None, size: 0, failing: false }),
        };
        let who = Who {
            client: Some("cursor".into()),
            profile: Some("coding".into()),
            token: Some("alice".into()),
        };
        audit.tool_call(Some(&who), "files", "echo", "ok", Duration::from_micros(1500));
        let text = std::fs::read_to_string(&path).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(
            (
                &line["client"],
                &line["profile"],
                &line["token"],
                &line["server"],
                &line["tool"],
                &line["outcome"]
            ),
            (
                &json!("cursor"),
                &json!("coding"),
                &json!("alice"),
                &json!("files"),
                &json!("echo"),
                &json!("ok")
            )
        );
        assert_eq!(line["duration_ms"], 1.5);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        // Past the bound the file rotates; four rotations keep three old files.
        for _ in 0..4 {
            audit.open.lock().size = ROTATE_AT;
            audit.tool_call(None, "files", "echo", "timeout", Duration::ZERO);
        }
        let names: Vec<bool> = (1..=4).map(|n| dir.join(format!("audit.jsonl.{n}")).exists()).collect();
        assert_eq!(names, [true, true, true, false]);
        let last: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
        assert_eq!((last["outcome"].as_str(), last["client"].is_null()), (Some("timeout"), true));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
