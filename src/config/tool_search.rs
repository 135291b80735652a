//! How the aggregated endpoint offers a profile's tools (`AGENTHUB_TOOL_SEARCH` for every
//! profile, a profile's own `tool_search` for its clients): all of them (`off`), only the two
//! search tools (`on`), or the search tools once there are more than the client takes (`auto`:
//! the client's cap from the client table, 40 for one it does not know, as Cursor warns past
//! 40; `auto:N`: N for every client).

use std::str::FromStr;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ToolSearch {
    /// Every tool listed.
    #[default]
    Off,
    /// `agenthub__find_tools` and `agenthub__call_tool` in place of the servers' tools.
    On,
    /// As `On` when there are more tools than this cap (`None`: the client's), else as `Off`.
    Auto(Option<usize>),
}

impl ToolSearch {
    /// Whether a list of `tools` servers' tools is offered through search to a client that
    /// takes `client_cap` tools.
    pub fn searching(self, tools: usize, client_cap: usize) -> bool {
        match self {
            ToolSearch::Off => false,
            ToolSearch::On => true,
            ToolSearch::Auto(cap) => tools > cap.unwrap_or(client_cap),
        }
    }

    pub fn as_string(self) -> String {
        match self {
            ToolSearch::Off => "off".into(),
            ToolSearch::On => "on".into(),
            ToolSearch::Auto(None) => "auto".into(),
            ToolSearch::Auto(Some(n)) => format!("auto:{n}"),
        }
    }
}

impl FromStr for ToolSearch {
    type Err = ();

    fn from_str(s: &str) -> Result<ToolSearch, ()> {
        match s {
            "off" => Ok(ToolSearch::Off),
            "on" => Ok(ToolSearch::On),
            "auto" => Ok(ToolSearch::Auto(None)),
            _ => match s.strip_prefix("auto:").map(str::parse) {
                Some(Ok(cap)) => Ok(ToolSearch::Auto(Some(cap))),
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
        check("auto", Ok(ToolSearch::Auto(None)));
        check("auto:60", Ok(ToolSearch::Auto(Some(60))));
        check("auto:x", Err(()));
        check("yes", Err(()));
        let auto = ToolSearch::Auto(None);
        assert!(!auto.searching(40, 40) && auto.searching(41, 40), "past the client's cap");
        assert!(!auto.searching(100, 128), "a client that takes 128");
        assert!(ToolSearch::Auto(Some(60)).searching(61, 128), "a cap given wins over the client's");
        for s in ["off", "on", "auto", "auto:60"] {
            assert_eq!(s.parse::<ToolSearch>().map(ToolSearch::as_string), Ok(s.to_string()));
        }
    }
}
