//! The `SETTINGS` table: every setting `--help` prints, its variable, flag, default and help.

/// One setting: its environment variable, the flag overriding it, its default and help line.
pub struct SettingSpec {
    pub env: &'static str,
    pub flag: Option<&'static str>,
    pub default: &'static str,
    pub help: &'static str,
}

/// Every setting, in the order `--help` lists them.
pub const SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        env: "AGENTHUB_HOST",
        flag: Some("--host"),
        default: "127.0.0.1",
        help: "address to bind (a non-loopback address requires AGENTHUB_TOKEN)",
    },
    SettingSpec {
        env: "AGENTHUB_PORT",
        flag: Some("--port"),
        default: "9090",
        help: "port to listen on (0 = any free port)",
    },
    SettingSpec {
        env: "AGENTHUB_CONFIG_DIR",
        flag: Some("--config-dir"),
        default: "$XDG_CONFIG_HOME/agenthub, else embedded defaults",
        help: "directory holding mcp-servers.json and enhancement-rules.json",
    },
    SettingSpec {
        env: "AGENTHUB_SERVERS_FILE",
        flag: Some("--servers-file"),
        default: "(none)",
        help: "extra servers file to import read-only (Claude Desktop, Cursor or VS Code format)",
    },
    SettingSpec {
        env: "AGENTHUB_WORKSPACE",
        flag: Some("--workspace"),
        default: "the folder above .vscode/",
        help: "what ${workspaceFolder} in a servers file stands for",
    },
    SettingSpec {
        env: "AGENTHUB_DATA_DIR",
        flag: Some("--data-dir"),
        default: "$XDG_DATA_HOME/agenthub",
        help: "directory for installed packages and state",
    },
    SettingSpec {
        env: "AGENTHUB_LOG_LEVEL",
        flag: Some("--log-level"),
        default: "info",
        help: "off, error, warn, info, debug or trace",
    },
    SettingSpec {
        env: "AGENTHUB_WORKERS",
        flag: Some("--workers"),
        default: "max(4, 2 x cores)",
        help: "HTTP worker threads",
    },
    SettingSpec {
        env: "AGENTHUB_TOKEN",
        flag: None,
        default: "(none)",
        help: "bearer token required on every request when set (16+ characters beyond loopback)",
    },
    SettingSpec {
        env: "AGENTHUB_ALLOWED_ORIGINS",
        flag: None,
        default: "(none)",
        help: "comma-separated extra allowed origins or hosts",
    },
    SettingSpec {
        env: "AGENTHUB_CACHE_SIZE",
        flag: None,
        default: "1000",
        help: "prompt cache entries (0 disables the cache)",
    },
    SettingSpec {
        env: "AGENTHUB_MAX_BODY_BYTES",
        flag: None,
        default: "4194304",
        help: "largest accepted request body",
    },
    SettingSpec {
        env: "AGENTHUB_MAX_BODIES_BYTES",
        flag: None,
        default: "67108864 (at least AGENTHUB_MAX_BODY_BYTES)",
        help: "request bodies over 64 KiB held at once, all connections together; past it a 503",
    },
    SettingSpec {
        env: "AGENTHUB_MAX_CONNECTIONS",
        flag: None,
        default: "(open-file limit - 256) / 2",
        help: "client connections served at once; past it a 503",
    },
    SettingSpec {
        env: "AGENTHUB_READ_TIMEOUT_S",
        flag: None,
        default: "30",
        help: "seconds a request's head or body may take; idle connections close after twice that",
    },
    SettingSpec {
        env: "AGENTHUB_MAX_CALLS",
        flag: None,
        default: "256",
        help: "calls one server may have in flight at once; past it a 503",
    },
    SettingSpec {
        env: "AGENTHUB_MAX_CALLS_TOTAL",
        flag: None,
        default: "1024",
        help: "calls all servers together may have in flight at once; past it a 503",
    },
    SettingSpec {
        env: "AGENTHUB_MAX_PIPELINE_RUNS",
        flag: None,
        default: "16",
        help: "pipeline runs (synchronous and async) under way at once; past it a 429",
    },
    SettingSpec {
        env: "AGENTHUB_MAX_GENERATIONS",
        flag: None,
        default: "4",
        help: "generations asked of Ollama at once (enhancement, llm steps, sampling); past it a 429 or a failed step",
    },
    SettingSpec {
        env: "AGENTHUB_VAULT_ROOT",
        flag: None,
        default: "$HOME",
        help: "directory a pipeline's vault path must lie in (inputs with \"under\": \"vault_root\")",
    },
    SettingSpec {
        env: "AGENTHUB_REQUEST_TIMEOUT_S",
        flag: None,
        default: "60",
        help: "default deadline of an MCP request, seconds",
    },
    SettingSpec {
        env: "AGENTHUB_COLD_LIST_WAIT_S",
        flag: None,
        default: "15",
        help: "seconds a new /mcp session's first list waits for servers with no cached catalog (0: none)",
    },
    SettingSpec {
        env: "AGENTHUB_ELICITATION_WAIT_S",
        flag: None,
        default: "120",
        help: "seconds a server's question no client can take waits for a person when its request's deadline is unknown (0: declined at once)",
    },
    SettingSpec {
        env: "AGENTHUB_AUDIT",
        flag: None,
        default: "file",
        help: "one JSON line per tool call: file (<data dir>/audit.jsonl, rotated at 10 MB, 3 kept), stdout or off",
    },
    SettingSpec {
        env: "AGENTHUB_TOKENS_FILE",
        flag: None,
        default: "",
        help: "JSON file of inbound tokens for a team, each naming a profile (see profiles.json)",
    },
    SettingSpec {
        env: "AGENTHUB_OAUTH_CLIENT_ID_URL",
        flag: None,
        default: "",
        help: "https URL of the hub's Client ID Metadata Document (redirect_uris naming http://127.0.0.1/oauth/callback), used as its client_id where an authorization server supports such documents",
    },
    SettingSpec {
        env: "AGENTHUB_TOOL_SEARCH",
        flag: None,
        default: "off",
        help: "/mcp tools: off (all), on (find_tools + call_tool), auto[:N] (search past the client's cap, or N)",
    },
    SettingSpec {
        env: "AGENTHUB_EMBED_MODEL",
        flag: None,
        default: "(none: no reranking)",
        help: "Ollama embedding model that reranks agenthub__find_tools' lexical results",
    },
    SettingSpec {
        env: "AGENTHUB_BREAKER_THRESHOLD",
        flag: None,
        default: "3",
        help: "consecutive failures that open a circuit breaker",
    },
    SettingSpec {
        env: "AGENTHUB_BREAKER_RECOVERY_S",
        flag: None,
        default: "30",
        help: "seconds an open breaker waits before one trial call",
    },
    SettingSpec {
        env: "OLLAMA_URL",
        flag: None,
        default: "(from OLLAMA_HOST)",
        help: "Ollama base URL; wins over OLLAMA_HOST and OLLAMA_PORT",
    },
    SettingSpec {
        env: "OLLAMA_HOST",
        flag: None,
        default: "127.0.0.1:11434",
        help: "Ollama as host, host:port or URL",
    },
    SettingSpec {
        env: "OLLAMA_PORT",
        flag: None,
        default: "11434",
        help: "Ollama port when OLLAMA_HOST names none",
    },
    SettingSpec {
        env: "OLLAMA_TIMEOUT_S",
        flag: None,
        default: "30",
        help: "deadline of one Ollama generation, seconds",
    },
];
