//! `AGENTHUB_TOOL_SEARCH`: how the aggregated endpoint offers its tools — all of them (`off`),
//! only the two search tools (`on`), or the search tools once there are more than a cap
//! (`auto`, 40; `auto:N`), as clients cap what they take (Cursor warns past 40).

use std::str::FromStr;

/// The cap `auto` uses when none is given.
pub const DEFAULT_CAP: usize = 40;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ToolSearch {
    /// Every tool listed.
    #[default]
    Off,
    /// `agenthub__find_tools` and `agenthub__call_tool` in place of the servers' tools.
    On,
    /// As `On` when the servers offer more tools than this, else as `Off`.
    Auto(usize),
}

impl ToolSearch {
    /// Whether a list of `tools` servers' tools is offered through search.
    pub fn searching(self, tools: usize) -> bool {
        match self {
            ToolSearch::Off => false,
            ToolSearch::On => true,
            ToolSearch::Auto(cap) => tools > cap,
        }
    }
}

impl FromStr for ToolSearch {
    type Err = ();

    fn from_str(s: &str) -> Result<ToolSearch, ()> {
        match s {
            "off" => Ok(ToolSearch::Off),
            "on" => Ok(ToolSearch::On),
            "auto" => Ok(ToolSearch::Auto(DEFAULT_CAP)),
            _ => match s.strip_prefix("auto:").map(str::parse) {
                Some(Ok(cap)) => Ok(ToolSearch::Auto(cap)),
                _ => Err(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_off_on_and_auto_with_a_cap() {
        let check = |s: &str, expected: Result<ToolSearch, ()>| assert_eq!(s.parse(), expected, "{s}");
        check("off", Ok(ToolSearch::Off));
        check("on", Ok(ToolSearch::On));
        check("auto", Ok(ToolSearch::Auto(40)));
        check("auto:60", Ok(ToolSearch::Auto(60)));
        check("auto:x", Err(()));
        check("yes", Err(()));
        assert!(!ToolSearch::Auto(40).searching(40) && ToolSearch::Auto(40).searching(41));
    }
}
