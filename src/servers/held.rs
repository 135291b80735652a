//! The servers a person stopped, kept in `<data dir>/held.json` (`{"held": ["name", ...]}`,
//! written atomically, 0600): a user who stopped a server expects it to stay stopped across a
//! restart of the hub. The hold itself lives in each server's state (`State::held`); this file
//! is its copy on disk, rewritten whole after each change, read once when the table is built.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

use super::Servers;
use super::edits::write_atomically;

/// How many names the file may hold (a hand-edited file cannot grow the table's memory).
const MAX_HELD: usize = 10_000;

/// The names in the file; none when it is missing. A file that does not parse is reported
/// and taken as empty: a hold lost is a server that may start, never a hub that cannot.
pub(super) fn load(path: &Path) -> BTreeSet<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BTreeSet::new(),
        Err(e) => {
            log::warn!("cannot read {}: {e}; no server is held stopped", path.display());
            return BTreeSet::new();
        }
    };
    match serde_json::from_str::<Value>(&text).ok().and_then(|v| names(&v)) {
        Some(names) => names,
        None => {
            log::warn!("{} is not {{\"held\": [names]}}; no server is held stopped", path.display());
            BTreeSet::new()
        }
    }
}

fn names(v: &Value) -> Option<BTreeSet<String>> {
    let list = v.get("held")?.as_array()?;
    Some(list.iter().filter_map(Value::as_str).take(MAX_HELD).map(str::to_string).collect())
}

impl Servers {
    /// Writes the held servers as they are now. Taken in turn: two changes saved at once
    /// could otherwise write their sets in the wrong order.
    pub(super) fn save_held(&self) {
        let _turn = self.held_saves.lock();
        let list = self.list.lock().clone();
        let held: Vec<String> = list.iter().filter(|s| s.state.lock().held).map(|s| s.name.clone()).collect();
        let path = &self.ctx.held;
        if held.is_empty() && !path.exists() {
            return;
        }
        let text = format!("{}\n", json!({ "held": held }));
        if let Err(e) = write_atomically(path, text.as_bytes()) {
            log::warn!("the servers a person stopped are not saved: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{shell_server, table};
    use super::*;

    #[test]
    fn a_hold_is_saved_and_read_back_and_a_bad_file_holds_nothing() {
        let servers = table("held", vec![shell_server("a"), shell_server("b")]);
        let path = servers.ctx.held.clone();
        let _ = std::fs::remove_file(&path);
        servers.stop("b").expect("a person's stop");
        assert_eq!(load(&path), BTreeSet::from(["b".to_string()]));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        assert_eq!(mode, 0o600);
        assert!(servers.start_for_use("b").is_err(), "held: a use does not start it");
        servers.start("b").expect("a person's start");
        assert_eq!(load(&path), BTreeSet::new());
        std::fs::write(&path, "not json").unwrap();
        assert_eq!(load(&path), BTreeSet::new());
        std::fs::write(&path, r#"{"held": ["a", 3]}"#).unwrap();
        assert_eq!(load(&path), BTreeSet::from(["a".to_string()]));
        let _ = std::fs::remove_file(&path);
        servers.shutdown();
    }
}
