//! The client recipes: for every desktop client the hub knows, where its MCP configuration lives
//! on each system, in which format, and the entry that connects it to this hub (its real
//! address, `X-Client-Name` set, and the bearer token by reference to `AGENTHUB_TOKEN`, never
//! pasted in clear). One table feeds `agenthub connect`, the dashboard's "connect a client"
//! panel (`GET /clients`) and the README's "Connect your client" section, which a test keeps in
//! step with it.

use serde_json::{Map, Value, json};

/// The name of the hub's entry in every client's file.
pub const ENTRY: &str = "agenthub";
/// The address a client reaches the hub at when nothing else is said.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9090";

/// How a client's file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    /// JSON with `//` and `/* */` comments and trailing commas (VS Code, Zed).
    Jsonc,
    Toml,
    Yaml,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Jsonc => "JSONC",
            Format::Toml => "TOML",
            Format::Yaml => "YAML",
        }
    }
}

/// How the hub's entry reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Only stdio servers: through `agenthub stdio`, which reads `AGENTHUB_TOKEN` itself.
    Stdio,
    /// Streamable HTTP with headers; the token as `Authorization: Bearer <ref>` where `<ref>`
    /// is the client's own reference to an environment variable; a client without one goes
    /// through `agenthub stdio` when a token is set.
    Http { url_key: &'static str, kind: Option<&'static str>, token_ref: Option<&'static str> },
    /// Codex: `http_headers` and `bearer_token_env_var`.
    Codex,
    /// Continue: an item of the `mcpServers` list.
    Continue,
}

/// One client's recipe.
#[derive(Debug)]
pub struct Recipe {
    /// What `agenthub connect` takes, and the `X-Client-Name` (the enhancement rule) it sends.
    pub id: &'static str,
    pub name: &'static str,
    pub format: Format,
    /// The user-level file on Linux, macOS and Windows (`~` is the home directory, `%APPDATA%`
    /// the Windows variable); `None` where the client has none (Raycast: a form).
    pub linux: Option<&'static str>,
    pub macos: Option<&'static str>,
    pub windows: Option<&'static str>,
    /// The key holding the servers (`mcpServers`, `servers`, `context_servers`, `mcp_servers`).
    pub key: &'static str,
    way: Way,
    /// A line for the README and the dashboard: other places, the client's own command.
    pub note: &'static str,
    /// What the client calls itself in `initialize`'s `clientInfo.name` (the hub maps these
    /// onto `id` when no `X-Client-Name` comes).
    pub client_info: &'static [&'static str],
    /// How many tools the client takes before it warns or stops (`tool_search: "auto"` offers
    /// the search tools past it).
    pub tool_cap: usize,
}

/// The tool cap of a client the table does not know, or one that states none.
pub const DEFAULT_TOOL_CAP: usize = 40;

const CURSOR_REF: &str = "${env:AGENTHUB_TOKEN}";

/// Every client the hub writes an entry for.
pub const RECIPES: &[Recipe] = &[
    Recipe {
        id: "claude-desktop",
        name: "Claude Desktop",
        format: Format::Json,
        linux: Some("~/.config/Claude/claude_desktop_config.json"),
        macos: Some("~/Library/Application Support/Claude/claude_desktop_config.json"),
        windows: Some("%APPDATA%\\Claude\\claude_desktop_config.json"),
        key: "mcpServers",
        way: Way::Stdio,
        note: "Launches stdio servers only (a `url` entry is ignored), so the entry runs `agenthub stdio`, \
               which reads `AGENTHUB_TOKEN` from its environment; `connect` writes the binary's absolute \
               path, as the app does not see your shell's PATH.",
        client_info: &["claude-ai"],
        tool_cap: DEFAULT_TOOL_CAP,
    },
    Recipe {
        id: "claude-code",
        name: "Claude Code",
        format: Format::Json,
        linux: Some("~/.claude.json"),
        macos: Some("~/.claude.json"),
        windows: Some("%USERPROFILE%\\.claude.json"),
        key: "mcpServers",
        way: Way::Http { url_key: "url", kind: Some("http"), token_ref: Some("${AGENTHUB_TOKEN}") },
        note: "Or a project's `.mcp.json`, or `claude mcp add --transport http agenthub URL --header \
               \"X-Client-Name: claude-code\"`.",
        client_info: &["claude-code"],
        tool_cap: DEFAULT_TOOL_CAP,
    },
    Recipe {
        id: "vscode",
        name: "VS Code",
        format: Format::Jsonc,
        linux: Some("~/.config/Code/User/mcp.json"),
        macos: Some("~/Library/Application Support/Code/User/mcp.json"),
        windows: Some("%APPDATA%\\Code\\User\\mcp.json"),
        key: "servers",
        way: Way::Http { url_key: "url", kind: Some("http"), token_ref: Some(CURSOR_REF) },
        note: "Or a workspace's `.vscode/mcp.json` (`--file .vscode/mcp.json`).",
        client_info: &["Visual Studio Code", "Visual Studio Code - Insiders"],
        tool_cap: 128,
    },
    Recipe {
        id: "cursor",
        name: "Cursor",
        format: Format::Json,
        linux: Some("~/.cursor/mcp.json"),
        macos: Some("~/.cursor/mcp.json"),
        windows: Some("%USERPROFILE%\\.cursor\\mcp.json"),
        key: "mcpServers",
        way: Way::Http { url_key: "url", kind: None, token_ref: Some(CURSOR_REF) },
        note: "Or a project's `.cursor/mcp.json`.",
        client_info: &["cursor-vscode"],
        tool_cap: DEFAULT_TOOL_CAP,
    },
    Recipe {
        id: "windsurf",
        name: "Windsurf",
        format: Format::Json,
        linux: Some("~/.codeium/windsurf/mcp_config.json"),
        macos: Some("~/.codeium/windsurf/mcp_config.json"),
        windows: Some("%USERPROFILE%\\.codeium\\windsurf\\mcp_config.json"),
        key: "mcpServers",
        way: Way::Http { url_key: "serverUrl", kind: None, token_ref: Some(CURSOR_REF) },
        note: "The address goes under `serverUrl`.",
        client_info: &["windsurf-client"],
        tool_cap: 100,
    },
    Recipe {
        id: "zed",
        name: "Zed",
        format: Format::Jsonc,
        linux: Some("~/.config/zed/settings.json"),
        macos: Some("~/.config/zed/settings.json"),
        windows: Some("%APPDATA%\\Zed\\settings.json"),
        key: "context_servers",
        way: Way::Http { url_key: "url", kind: None, token_ref: None },
        note: "Settings expand no variables: with a token set the entry runs `agenthub stdio`.",
        client_info: &["Zed"],
        tool_cap: DEFAULT_TOOL_CAP,
    },
    Recipe {
        id: "codex",
        name: "Codex CLI",
        format: Format::Toml,
        linux: Some("~/.codex/config.toml"),
        macos: Some("~/.codex/config.toml"),
        windows: Some("%USERPROFILE%\\.codex\\config.toml"),
        key: "mcp_servers",
        way: Way::Codex,
        note: "The token by name: `bearer_token_env_var`.",
        client_info: &["codex-mcp-client"],
        tool_cap: DEFAULT_TOOL_CAP,
    },
    Recipe {
        id: "lm-studio",
        name: "LM Studio",
        format: Format::Json,
        linux: Some("~/.lmstudio/mcp.json"),
        macos: Some("~/.lmstudio/mcp.json"),
        windows: Some("%USERPROFILE%\\.lmstudio\\mcp.json"),
        key: "mcpServers",
        way: Way::Http { url_key: "url", kind: None, token_ref: None },
        note: "No variables in `mcp.json`: with a token set the entry runs `agenthub stdio`.",
        client_info: &[],
        tool_cap: DEFAULT_TOOL_CAP,
    },
    Recipe {
        id: "continue",
        name: "Continue",
        format: Format::Yaml,
        linux: Some("~/.continue/config.yaml"),
        macos: Some("~/.continue/config.yaml"),
        windows: Some("%USERPROFILE%\\.continue\\config.yaml"),
        key: "mcpServers",
        way: Way::Continue,
        note: "An item of the `mcpServers` list; with a token set it runs `agenthub stdio`.",
        client_info: &[],
        tool_cap: DEFAULT_TOOL_CAP,
    },
    Recipe {
        id: "raycast",
        name: "Raycast",
        format: Format::Json,
        linux: None,
        macos: None,
        windows: None,
        key: "mcpServers",
        way: Way::Http { url_key: "url", kind: None, token_ref: None },
        note: "No file: copy the snippet, then run Install MCP Server (it reads it from the clipboard). \
               Script commands: `assets/raycast/`.",
        client_info: &["Raycast"],
        tool_cap: DEFAULT_TOOL_CAP,
    },
];

/// The recipe `connect` and the dashboard name.
pub fn find(id: &str) -> Option<&'static Recipe> {
    let id = id.trim().to_ascii_lowercase();
    RECIPES.iter().find(|r| r.id == id || r.name.eq_ignore_ascii_case(&id))
}

/// The client id a `clientInfo.name` stands for, as the table knows it (case-insensitive).
pub fn id_of_client_info(name: &str) -> Option<&'static str> {
    let name = name.trim();
    RECIPES.iter().find(|r| r.client_info.iter().any(|n| n.eq_ignore_ascii_case(name))).map(|r| r.id)
}

/// How many tools the client of this id takes (`DEFAULT_TOOL_CAP` for one the table does not
/// know).
pub fn tool_cap(id: &str) -> usize {
    find(id).map_or(DEFAULT_TOOL_CAP, |r| r.tool_cap)
}

/// The hub as a client reaches it.
#[derive(Debug, Clone)]
pub struct Hub {
    /// Scheme, host and port, no trailing slash.
    pub url: String,
    /// `AGENTHUB_TOKEN` is set: entries carry it by reference.
    pub token: bool,
    /// What a stdio entry runs: `agenthub`, or the binary's absolute path (`connect`).
    pub command: String,
}

impl Hub {
    pub fn new(url: &str, token: bool) -> Hub {
        Hub { url: url.trim_end_matches('/').to_string(), token, command: "agenthub".into() }
    }

    /// Stdio entries run `program` rather than whatever `agenthub` is on the client's PATH.
    pub fn command(self, program: &str) -> Hub {
        Hub { command: program.to_string(), ..self }
    }
}

impl Recipe {
    /// The file on this system, as written in the table.
    pub fn file(&self) -> Option<&'static str> {
        match std::env::consts::OS {
            "macos" => self.macos,
            "windows" => self.windows,
            _ => self.linux,
        }
    }

    /// The hub's entry, as a JSON value (TOML and YAML are rendered from it).
    pub fn entry(&self, hub: &Hub) -> Value {
        let mcp = format!("{}/mcp", hub.url);
        let stdio = || {
            let mut args = vec![json!("stdio"), json!("--client"), json!(self.id)];
            if hub.url != DEFAULT_URL {
                args.extend([json!("--url"), json!(hub.url)]);
            }
            json!({"command": hub.command, "args": args})
        };
        let headers = |token: Option<&str>| {
            let mut h = Map::new();
            h.insert("X-Client-Name".into(), json!(self.id));
            if let Some(t) = token.filter(|_| hub.token) {
                h.insert("Authorization".into(), json!(format!("Bearer {t}")));
            }
            Value::Object(h)
        };
        match self.way {
            Way::Stdio => stdio(),
            Way::Http { token_ref: None, .. } if hub.token => stdio(),
            Way::Http { url_key, kind, token_ref } => {
                let mut e = Map::new();
                if let Some(k) = kind {
                    e.insert("type".into(), json!(k));
                }
                e.insert(url_key.into(), json!(mcp));
                e.insert("headers".into(), headers(token_ref));
                Value::Object(e)
            }
            Way::Codex => {
                let mut e = json!({"url": mcp, "http_headers": headers(None)});
                if hub.token {
                    e["bearer_token_env_var"] = json!("AGENTHUB_TOKEN");
                }
                e
            }
            Way::Continue => {
                let mut e = json!({"name": ENTRY});
                if hub.token {
                    e["type"] = json!("stdio");
                    for (k, v) in stdio().as_object().into_iter().flatten() {
                        e[k] = v.clone();
                    }
                } else {
                    e["type"] = json!("streamable-http");
                    e["url"] = json!(mcp);
                    e["requestOptions"] = json!({"headers": headers(None)});
                }
                e
            }
        }
    }

    /// How the token travels, for the README and the dashboard.
    pub fn token_note(&self) -> String {
        match self.way {
            Way::Stdio => "`agenthub stdio` reads `AGENTHUB_TOKEN`".into(),
            Way::Http { token_ref: Some(r), .. } => format!("`Authorization: Bearer {r}`"),
            Way::Http { token_ref: None, .. } | Way::Continue => "through `agenthub stdio`".into(),
            Way::Codex => "`bearer_token_env_var = \"AGENTHUB_TOKEN\"`".into(),
        }
    }

    /// What to put in the client's file: a whole minimal file in its format.
    pub fn snippet(&self, hub: &Hub) -> String {
        let entry = self.entry(hub);
        match self.format {
            Format::Json | Format::Jsonc => {
                let doc = json!({ self.key: { ENTRY: entry } });
                format!("{}\n", serde_json::to_string_pretty(&doc).unwrap_or_default())
            }
            Format::Toml => toml_table(&format!("{}.{ENTRY}", self.key), &entry),
            Format::Yaml => format!("{}:\n{}", self.key, yaml_item(&entry, "  ")),
        }
    }
}

/// `[name]` and its keys: strings, arrays of strings and inline tables of strings (all an entry
/// holds).
pub fn toml_table(name: &str, entry: &Value) -> String {
    let mut out = format!("[{name}]\n");
    for (k, v) in entry.as_object().into_iter().flatten() {
        out.push_str(&format!("{} = {}\n", toml_key(k), toml_value(v)));
    }
    out
}

fn toml_key(k: &str) -> String {
    if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        k.to_string()
    } else {
        json!(k).to_string()
    }
}

fn toml_value(v: &Value) -> String {
    match v {
        Value::Array(items) => format!("[{}]", items.iter().map(toml_value).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{ {} }}",
            m.iter()
                .map(|(k, v)| format!("{} = {}", toml_key(k), toml_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        // A JSON string is a TOML basic string: the same escapes.
        other => other.to_string(),
    }
}

/// One item of a YAML block sequence at `indent`: `- key: value`, nested mappings in block
/// style, scalars as JSON strings (which YAML reads as double-quoted scalars).
pub fn yaml_item(entry: &Value, indent: &str) -> String {
    let mut out = String::new();
    let inner = format!("{indent}  ");
    for (i, (k, v)) in entry.as_object().into_iter().flatten().enumerate() {
        let lead = if i == 0 { format!("{indent}- ") } else { inner.clone() };
        yaml_pair(&mut out, &lead, &inner, k, v);
    }
    out
}

fn yaml_pair(out: &mut String, lead: &str, indent: &str, k: &str, v: &Value) {
    let key = if k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        k.to_string()
    } else {
        json!(k).to_string()
    };
    match v {
        Value::Object(m) => {
            out.push_str(&format!("{lead}{key}:\n"));
            let deeper = format!("{indent}  ");
            for (k, v) in m {
                yaml_pair(out, &deeper, &deeper, k, v);
            }
        }
        Value::Array(items) => {
            out.push_str(&format!("{lead}{key}:\n"));
            for item in items {
                out.push_str(&format!("{indent}  - {item}\n"));
            }
        }
        other => out.push_str(&format!("{lead}{key}: {other}\n")),
    }
}

/// The recipes as the dashboard shows them, for a hub at `hub`.
pub fn table_json(hub: &Hub) -> Value {
    let list: Vec<Value> = RECIPES
        .iter()
        .map(|r| {
            json!({
                "id": r.id, "name": r.name, "format": r.format.as_str(), "file": r.file(),
                "files": {"linux": r.linux, "macos": r.macos, "windows": r.windows},
                "snippet": r.snippet(hub), "token": r.token_note(), "note": r.note,
                "connect": format!("agenthub connect {} --write", r.id),
                "client_info": r.client_info, "tool_cap": r.tool_cap,
            })
        })
        .collect();
    json!({ "clients": list, "token": hub.token })
}

/// Where the README's generated section starts and ends.
pub const README_BEGIN: &str =
    "<!-- clients:begin (generated from src/clients.rs: agenthub connect --markdown) -->";
pub const README_END: &str = "<!-- clients:end -->";

/// The README's "Connect your client" table and snippets, between the markers.
pub fn markdown() -> String {
    let hub = Hub::new(DEFAULT_URL, false);
    let mut out = format!("{README_BEGIN}\n\n");
    out.push_str(
        "| client | `agenthub connect` | file (Linux; macOS; Windows) | format | with `AGENTHUB_TOKEN` | `clientInfo.name` | tool cap |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|\n");
    let cell = |p: Option<&str>| p.map_or("—".to_string(), |p| format!("`{p}`"));
    for r in RECIPES {
        let files = if r.linux.is_none() {
            "— (the Install MCP Server form)".to_string()
        } else if r.linux == r.macos {
            format!("{}; {}", cell(r.linux), cell(r.windows))
        } else {
            format!("{}; {}; {}", cell(r.linux), cell(r.macos), cell(r.windows))
        };
        let info: Vec<String> = r.client_info.iter().map(|n| format!("`{n}`")).collect();
        let info = if info.is_empty() { "—".to_string() } else { info.join(", ") };
        out.push_str(&format!(
            "| {} | `{}` | {} | {} | {} | {info} | {} |\n",
            r.name,
            r.id,
            files.replace('|', "\\|"),
            r.format.as_str(),
            r.token_note(),
            r.tool_cap
        ));
    }
    for r in RECIPES {
        let lang = match r.format {
            Format::Json => "json",
            Format::Jsonc => "jsonc",
            Format::Toml => "toml",
            Format::Yaml => "yaml",
        };
        out.push_str(&format!("\n**{}** — {}\n\n```{lang}\n{}```\n", r.name, r.note, r.snippet(&hub)));
    }
    out.push_str(&format!("\n{README_END}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_section_is_generated_from_the_table() {
        let readme = include_str!("../README.md");
        let (Some(start), Some(end)) = (readme.find(README_BEGIN), readme.find(README_END)) else {
            panic!("README.md lacks the markers {README_BEGIN} … {README_END}");
        };
        let found = &readme[start..end + README_END.len() + 1];
        assert!(
            found == markdown(),
            "README.md's client section drifted from src/clients.rs; replace it with the output of \
             `agenthub connect --markdown`:\n{}",
            markdown()
        );
    }

    #[test]
    fn entries_name_the_hub_and_never_carry_the_token_in_clear() {
        for token in [false, true] {
            let hub = Hub::new("http://127.0.0.1:7777/", token);
            for r in RECIPES {
                let text = r.snippet(&hub);
                assert!(text.contains("127.0.0.1:7777"), "{}: {text}", r.id);
                assert!(text.contains(r.id), "{} names itself: {text}", r.id);
                if token && text.contains("Authorization") {
                    assert!(text.contains("${"), "{}: the token by reference: {text}", r.id);
                }
            }
        }
        let hub = Hub::new(DEFAULT_URL, true);
        assert_eq!(find("zed").unwrap().entry(&hub)["command"], "agenthub");
        assert_eq!(
            find("Cursor").unwrap().entry(&hub)["headers"]["Authorization"],
            "Bearer ${env:AGENTHUB_TOKEN}"
        );
        assert_eq!(find("codex").unwrap().entry(&hub)["bearer_token_env_var"], "AGENTHUB_TOKEN");
    }

    #[test]
    fn toml_and_yaml_render_the_shapes_an_entry_has() {
        let e =
            json!({"url": "http://h/mcp", "http_headers": {"X-Client-Name": "codex"}, "args": ["a", "b\"c"]});
        assert_eq!(
            toml_table("mcp_servers.agenthub", &e),
            "[mcp_servers.agenthub]\nurl = \"http://h/mcp\"\nhttp_headers = { X-Client-Name = \"codex\" }\nargs = [\"a\", \"b\\\"c\"]\n"
        );
        let e = json!({"name": "agenthub", "requestOptions": {"headers": {"X-Client-Name": "continue"}}, "args": ["x"]});
        assert_eq!(
            yaml_item(&e, "  "),
            "  - name: \"agenthub\"\n    requestOptions:\n      headers:\n        X-Client-Name: \"continue\"\n    args:\n      - \"x\"\n"
        );
    }
}
