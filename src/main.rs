//! AgentHub: one small binary between desktop AI clients and the MCP servers and local models
//! they use. This file owns the command line, logging, signals and the start/stop sequence;
//! everything else lives in the library (`lib.rs`) and is reached through `App`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use agenthub::{Api, App, Shim, ShimOptions, VERSION, shim_endpoint, start_front};
use agenthub::{
    ClientHub, ConnectOutcome, RECIPES, clients_markdown, connect_write, connected, expand_path, find_client,
};
use agenthub::{Error, Result, SETTINGS, Settings, load_config};
use agenthub::{in_build_dir, own_binary, service_command};

/// How long in-flight requests may run on after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

enum Command {
    Serve,
    CheckConfig,
    /// The stdio shim, for one server or all.
    Stdio {
        server: Option<String>,
        url: Option<String>,
        client: Option<String>,
        wait: Option<String>,
    },
    /// A client's entry for this hub: printed, or written into its file; or every client's state.
    Connect(Connect),
    /// GET `/health`: exit 0 on 200 (`--strict`: and not `degraded`).
    Healthcheck {
        url: Option<String>,
        strict: bool,
    },
    /// A running hub's server started, stopped, restarted or shown.
    Server(Vec<String>),
    /// `service install|uninstall|status` and what follows, for `agenthub::service_command`.
    Service(Vec<String>),
    /// `kube export`: the manifests for this configuration.
    Kube(Vec<String>),
    Help,
    Version,
}

#[derive(Default)]
struct Connect {
    client: Option<String>,
    write: bool,
    list: bool,
    markdown: bool,
    file: Option<String>,
    url: Option<String>,
}

struct Cli {
    command: Command,
    /// Flag values keyed by the environment variable each overrides.
    flags: HashMap<&'static str, String>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match parse_args(&args) {
        Ok(cli) => cli,
        Err(msg) => {
            eprintln!("agenthub: {msg}\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    let env = |k: &str| std::env::var(k).ok();
    match cli.command {
        Command::Help => {
            print!("{}", help());
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("agenthub {VERSION}");
            ExitCode::SUCCESS
        }
        Command::CheckConfig => agenthub::check_command(&cli.flags, &env),
        Command::Connect(c) => {
            let url = hub_url(c.url.clone(), &cli.flags, &env);
            match connect(&c, &url, &env) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("agenthub connect: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Healthcheck { url, strict } => {
            agenthub::healthcheck(&hub_url(url, &cli.flags, &env), strict, env("AGENTHUB_TOKEN").as_deref())
        }
        Command::Server(args) => agenthub::server_command(
            &args,
            &hub_url(None, &cli.flags, &env),
            env("AGENTHUB_TOKEN").as_deref(),
        ),
        Command::Service(args) => service_command(&args, &env),
        Command::Kube(args) => agenthub::kube_command(&args, &cli.flags, &env),
        Command::Stdio { server, url, client, wait } => {
            init_logging(log::LevelFilter::Warn);
            let base = hub_url(url, &cli.flags, &env);
            let Some(wait) = agenthub::shim_wait(wait.as_deref()) else {
                eprintln!("agenthub: --wait: expected a number of seconds");
                return ExitCode::from(2);
            };
            let shim = Arc::new(Shim::new(ShimOptions {
                endpoint: shim_endpoint(&base, server.as_deref()),
                token: env("AGENTHUB_TOKEN"),
                client,
                wait,
            }));
            match shim.run() {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve => {
            let settings = match Settings::resolve(&cli.flags, &env) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("agenthub: {e}");
                    return ExitCode::from(2);
                }
            };
            init_logging(settings.log_level);
            match serve(settings, &env) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn parse_args(args: &[String]) -> std::result::Result<Cli, String> {
    let mut command = None;
    let mut flags = HashMap::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        i += 1;
        match arg {
            "-h" | "--help" => return Ok(Cli { command: Command::Help, flags }),
            "-V" | "--version" => return Ok(Cli { command: Command::Version, flags }),
            "serve" if command.is_none() => command = Some(Command::Serve),
            "check-config" if command.is_none() => command = Some(Command::CheckConfig),
            "stdio" if command.is_none() => {
                command = Some(Command::Stdio { server: None, url: None, client: None, wait: None })
            }
            "--url" | "--client" | "--wait" if matches!(command, Some(Command::Stdio { .. })) => {
                let v = args.get(i).ok_or_else(|| format!("{arg} needs a value"))?.clone();
                i += 1;
                if let Some(Command::Stdio { url, client, wait, .. }) = &mut command {
                    match arg {
                        "--url" => *url = Some(v),
                        "--client" => *client = Some(v),
                        _ => *wait = Some(v),
                    }
                }
            }
            "server" | "auth" if command.is_none() => {
                // `auth NAME` is `server auth NAME`.
                let rest =
                    (arg == "auth").then(|| arg.to_string()).into_iter().chain(args[i..].iter().cloned());
                return Ok(Cli { command: Command::Server(rest.collect()), flags });
            }
            "kube" if command.is_none() => {
                return Ok(Cli { command: Command::Kube(args[i..].to_vec()), flags });
            }
            "service" if command.is_none() => {
                return Ok(Cli { command: Command::Service(args[i..].to_vec()), flags });
            }
            "connect" if command.is_none() => command = Some(Command::Connect(Connect::default())),
            "healthcheck" if command.is_none() => {
                command = Some(Command::Healthcheck { url: None, strict: false })
            }
            "--strict" if matches!(command, Some(Command::Healthcheck { .. })) => {
                if let Some(Command::Healthcheck { strict, .. }) = &mut command {
                    *strict = true;
                }
            }
            "--url" if matches!(command, Some(Command::Healthcheck { .. })) => {
                let v = args.get(i).ok_or_else(|| format!("{arg} needs a value"))?.clone();
                i += 1;
                if let Some(Command::Healthcheck { url, .. }) = &mut command {
                    *url = Some(v);
                }
            }
            "--write" | "--list" | "--markdown" if matches!(command, Some(Command::Connect(_))) => {
                if let Some(Command::Connect(c)) = &mut command {
                    match arg {
                        "--write" => c.write = true,
                        "--list" => c.list = true,
                        _ => c.markdown = true,
                    }
                }
            }
            "--file" | "--url" if matches!(command, Some(Command::Connect(_))) => {
                let v = args.get(i).ok_or_else(|| format!("{arg} needs a value"))?.clone();
                i += 1;
                if let Some(Command::Connect(c)) = &mut command {
                    match arg {
                        "--file" => c.file = Some(v),
                        _ => c.url = Some(v),
                    }
                }
            }
            _ if !arg.starts_with('-')
                && matches!(&command, Some(Command::Connect(c)) if c.client.is_none()) =>
            {
                if let Some(Command::Connect(c)) = &mut command {
                    c.client = Some(arg.to_string());
                }
            }
            _ if !arg.starts_with('-') && matches!(command, Some(Command::Stdio { server: None, .. })) => {
                if let Some(Command::Stdio { server, .. }) = &mut command {
                    *server = Some(arg.to_string());
                }
            }
            _ if arg.starts_with("--") => {
                let (name, inline) = match arg.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (arg, None),
                };
                let spec = SETTINGS
                    .iter()
                    .find(|s| s.flag == Some(name))
                    .ok_or_else(|| format!("unknown flag '{name}'"))?;
                let value = match inline {
                    Some(v) => v,
                    None => {
                        let v = args.get(i).ok_or_else(|| format!("{name} needs a value"))?;
                        i += 1;
                        v.clone()
                    }
                };
                flags.insert(spec.env, value);
            }
            _ => return Err(format!("unexpected argument '{arg}'")),
        }
    }
    Ok(Cli { command: command.unwrap_or(Command::Serve), flags })
}

fn usage() -> String {
    "usage: agenthub [serve] [--host H] [--port P] [--config-dir D] [--servers-file F] \
     [--data-dir D] [--log-level L] [--workers N]\n       agenthub check-config [--config-dir D] \
     [--servers-file F]\n       agenthub stdio [SERVER] [--url http://127.0.0.1:9090] [--client NAME] [--wait SECONDS]\n       \
     agenthub connect CLIENT [--write] [--file PATH] [--url URL] | connect --list\n       \
     agenthub healthcheck [--url URL] [--strict]\n       \
     agenthub server start|stop|restart NAME | status [NAME] [--url URL] | agenthub auth NAME\n       \
     agenthub service install [--force] [-- SERVE-FLAGS] | uninstall | status\n       \
     agenthub kube export [--image IMAGE]\n       \
     agenthub --help | --version"
        .to_string()
}

fn help() -> String {
    let mut out = format!(
        "agenthub {VERSION}: a local hub for MCP servers and Ollama models\n\n{}\n\n\
         commands:\n  serve          run the hub (the default)\n  \
         check-config   validate the configuration, print what was loaded; exit 0 if valid, 1 if not\n  \
         stdio          a stdio MCP server forwarding to a running hub (AGENTHUB_URL, AGENTHUB_TOKEN):\n                 \
         all servers, or SERVER alone; for clients that only launch stdio servers.\n                 \
         --client sets X-Client-Name (default: the client's own name); --wait bounds the wait\n                 \
         for a hub that is not up (default 30 s)\n  \
         connect        print CLIENT's entry for this hub (X-Client-Name set, the token by reference);\n                 \
         --write merges it into the client's file (other entries, comments and mode kept,\n                 \
         the previous file as .bak); --list shows the clients found and whether connected\n  \
         healthcheck    GET /health (AGENTHUB_URL, AGENTHUB_TOKEN): exit 0 on 200; --strict: and not degraded\n  \
         server         start, stop or restart a running hub's server as the dashboard does (a stop holds it\n                 \
         until a start); status shows one or all\n  \
         service        run `serve` as your service at login (systemd user unit, launchd agent); flags after\n                 \
         -- go to serve; never the token (~/.config/agenthub/env); uninstall; status\n  \
         kube export    Kubernetes manifests for this configuration, secrets as Secret references\n\n\
         settings (flag, then environment variable, default):\n",
        usage()
    );
    for s in SETTINGS {
        let flag = s.flag.map(|f| format!("{f} VALUE")).unwrap_or_default();
        out.push_str(&format!(
            "  {flag:<22} {:<28} {}\n  {:<51} default: {}\n",
            s.env, s.help, "", s.default
        ));
    }
    out.push_str(
        "\nfiles in the config dir: mcp-servers.json ({\"servers\": {...}}; Claude Desktop's and \
         Cursor's {\"mcpServers\": ...} and VS Code's {\"servers\": ...} are read as they are),\n\
         enhancement-rules.json ({\"default\": rule, \"clients\": {name: rule}, \"client_names\": {clientInfo.name: name}}),\n\
         pipelines.json, profiles.json (what each client sees).\n",
    );
    out
}

/// The hub's address for a client on this machine: `--url`, `AGENTHUB_URL`, else loopback on
/// the configured port.
fn hub_url(
    url: Option<String>,
    flags: &HashMap<&'static str, String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> String {
    url.or_else(|| env("AGENTHUB_URL")).unwrap_or_else(|| {
        let port = flags.get("AGENTHUB_PORT").cloned().or_else(|| env("AGENTHUB_PORT"));
        format!("http://127.0.0.1:{}", port.as_deref().unwrap_or("9090"))
    })
}

fn token_set(env: &dyn Fn(&str) -> Option<String>) -> bool {
    env("AGENTHUB_TOKEN").is_some_and(|t| !t.trim().is_empty())
}

/// `agenthub connect`: the snippet on stdout (so it can be piped), what to do with it on stderr.
fn connect(c: &Connect, url: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
    let mut hub = ClientHub::new(url, token_set(env));
    // GUI apps do not see the shell's PATH: stdio entries name the binary by its full path.
    let exe = own_binary().map_err(|e| eprintln!("# {e}; entries say `agenthub`")).ok();
    if let Some(exe) = &exe {
        hub = hub.command(&exe.display().to_string());
    }
    if c.markdown {
        print!("{}", clients_markdown());
        return Ok(());
    }
    if c.list {
        println!("{:<16} {:<15} {:<19} file", "client", "id", "state");
        let home = env("HOME").map(std::path::PathBuf::from);
        for r in RECIPES {
            let (state, file) = match r.file() {
                None => (
                    "no file".to_string(),
                    "(agenthub connect ".to_string() + r.id + " prints what to paste)",
                ),
                Some(f) => {
                    let path = expand_path(f, env);
                    let state = match std::fs::read_to_string(&path) {
                        Ok(text) if connected(r, &text) => "connected",
                        Ok(_) => "found",
                        // Its own folder (not the home folder itself) says the client is here.
                        Err(_) if path.parent().is_some_and(|d| d.is_dir() && Some(d) != home.as_deref()) => {
                            "installed, no file"
                        }
                        Err(_) => "not found",
                    };
                    (state.to_string(), path.display().to_string())
                }
            };
            println!("{:<16} {:<15} {:<19} {file}", r.name, r.id, state);
        }
        return Ok(());
    }
    let Some(id) = c.client.as_deref() else {
        let ids: Vec<&str> = RECIPES.iter().map(|r| r.id).collect();
        return Err(Error::Config(format!("name a client: {}", ids.join(", "))));
    };
    let Some(r) = find_client(id) else {
        let ids: Vec<&str> = RECIPES.iter().map(|r| r.id).collect();
        return Err(Error::Config(format!("unknown client '{id}' (known: {})", ids.join(", "))));
    };
    let file = c.file.as_deref().or(r.file());
    if let Some(exe) = exe.filter(|e| in_build_dir(e) && r.entry(&hub).get("command").is_some()) {
        eprintln!("# {} is in a build folder; `make install` puts agenthub on PATH", exe.display());
    }
    if !c.write {
        print!("{}", r.snippet(&hub));
        match file {
            Some(f) => eprintln!("# {}: merge into {f}, or run: agenthub connect {} --write", r.name, r.id),
            None => eprintln!("# {}: {}", r.name, r.note),
        }
        return Ok(());
    }
    let Some(f) = file else {
        return Err(Error::Config(format!("{} has no configuration file: {}", r.name, r.note)));
    };
    let path = expand_path(f, env);
    let outcome = connect_write(r, &path, &r.entry(&hub))?;
    let how = match outcome {
        ConnectOutcome::Created => "created".to_string(),
        ConnectOutcome::Updated => format!("updated; the previous file is {}.bak", path.display()),
        ConnectOutcome::Unchanged => "already connected, unchanged".to_string(),
    };
    println!("{}: {} ({how})", r.name, path.display());
    if hub.token {
        println!("the token is not in the file: {}", r.token_note().replace('`', ""));
    }
    Ok(())
}

fn init_logging(level: log::LevelFilter) {
    use simplelog::{ColorChoice, ConfigBuilder, TermLogger, TerminalMode};
    let config = ConfigBuilder::new()
        .add_filter_ignore_str("ureq")
        .add_filter_ignore_str("rustls")
        .set_thread_level(log::LevelFilter::Off)
        .set_target_level(log::LevelFilter::Off)
        .set_time_format_rfc3339()
        .build();
    // Colors only for a person at a terminal, never in a log file or a pipe.
    let color = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ColorChoice::Auto
    } else {
        ColorChoice::Never
    };
    let _ = TermLogger::init(level, config, TerminalMode::Stderr, color);
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        log::error!("panic in thread '{}': {info}", thread.name().unwrap_or("?"));
    }));
}

/// Builds the hub, serves until SIGINT/SIGTERM (or a fatal listener error), then stops it;
/// SIGHUP reloads the configuration.
fn serve(settings: Settings, env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
    if let Err(e) = agenthub::raise_fd_limit() {
        log::warn!("cannot raise the open-file limit: {e}");
    }
    // Orphaned grandchildren come back to the hub instead of init, so a stop still finds them.
    if let Err(e) = agenthub::set_child_subreaper() {
        log::warn!("cannot become the subreaper of the children: {e}");
    }
    // Looked at before the load: a file changed while the hub starts is reloaded.
    let baseline = agenthub::ConfigBaseline::take(&settings);
    let loaded = load_config(&settings, env)?;
    for s in &loaded.sources {
        log::info!("config {s}");
    }
    for w in &loaded.warnings {
        log::warn!("{w}");
    }
    for s in loaded.servers.iter().filter(|s| s.problem.is_some()) {
        // The problem names what is missing, never a value: it is safe to log.
        log::error!("server {} cannot start: {}", s.name, s.problem.as_deref().unwrap_or(""));
    }
    let app = App::build(settings, loaded);

    let (fatal_tx, fatal_rx) = crossbeam_channel::bounded::<String>(4);
    let (sig_tx, sig_rx) = crossbeam_channel::bounded::<i32>(4);
    // SIGHUP reloads; SIGINT and SIGTERM stop the hub and its children.
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Error::io("installing signal handlers", e))?;
    let signals_handle = signals.handle();
    let signal_thread = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let _ = sig_tx.send(sig);
            }
        })
        .map_err(|e| Error::io("spawning the signal thread", e))?;

    let api = Api::new(app.clone());
    let limits = api.limits();
    let front = start_front(api, limits, fatal_tx).map_err(|(what, e)| Error::io(what, e))?;
    log::info!("agenthub {VERSION}: {} server(s) configured", app.servers.len());
    log::info!("listening on http://{}", front.addr());
    app.oauth.set_address(front.addr());
    app.servers.start_background();
    // After `start_background`, which killed what an earlier hub's npm left running.
    app.installer.clean_stale();

    let watcher = agenthub::ConfigWatcher::start(app.clone(), baseline)?;

    let outcome = loop {
        crossbeam_channel::select! {
            recv(sig_rx) -> sig => match sig {
                // SIGHUP reloads the configuration (a closed terminal does not stop the hub).
                Ok(SIGHUP) => {
                    log::info!("SIGHUP received; reloading the configuration");
                    watcher.reload_now();
                }
                sig => {
                    log::info!("signal {} received; shutting down", sig.unwrap_or(0));
                    break Ok(());
                }
            },
            recv(fatal_rx) -> msg => {
                break Err(Error::Internal(msg.unwrap_or_else(|_| "the HTTP front stopped".into())));
            }
        }
    };
    drop(watcher);
    app.close_sessions();
    // npm first: the install's caller is answered while the front drains.
    app.installer.stop();
    front.shutdown(SHUTDOWN_GRACE);
    app.stop();
    signals_handle.close();
    let _ = signal_thread.join();
    log::info!("stopped");
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_parse_in_both_forms() {
        let cli = parse_args(&args(&["serve", "--port", "0", "--host=localhost"])).unwrap();
        assert!(matches!(cli.command, Command::Serve));
        assert_eq!(cli.flags["AGENTHUB_PORT"], "0");
        assert_eq!(cli.flags["AGENTHUB_HOST"], "localhost");
        let cli = parse_args(&args(&["check-config", "--config-dir", "/x"])).unwrap();
        assert!(matches!(cli.command, Command::CheckConfig));
        assert!(matches!(parse_args(&[]).unwrap().command, Command::Serve));
    }

    #[test]
    fn connect_and_healthcheck_take_their_flags() {
        let cli =
            parse_args(&args(&["connect", "vscode", "--write", "--file", "x.json", "--url", "http://h:1"]))
                .unwrap();
        let Command::Connect(c) = cli.command else { panic!("connect") };
        assert_eq!(
            (c.client.as_deref(), c.write, c.file.as_deref(), c.url.as_deref()),
            (Some("vscode"), true, Some("x.json"), Some("http://h:1"))
        );
        assert!(matches!(
            parse_args(&args(&["connect", "--list"])).unwrap().command,
            Command::Connect(Connect { list: true, .. })
        ));
        let cli = parse_args(&args(&["healthcheck", "--strict", "--url", "http://h:2"])).unwrap();
        assert!(
            matches!(cli.command, Command::Healthcheck { strict: true, url: Some(ref u) } if u == "http://h:2")
        );
        assert!(parse_args(&args(&["connect", "a", "b"])).is_err());
        assert!(parse_args(&args(&["healthcheck", "--write"])).is_err());
    }

    #[test]
    fn bad_arguments_are_refused() {
        fn check(a: &[&str], needle: &str) {
            let e = parse_args(&args(a)).err().unwrap_or_default();
            assert!(e.contains(needle), "{a:?}: {e:?}");
        }
        check(&["--bogus"], "unknown flag '--bogus'");
        check(&["--port"], "--port needs a value");
        check(&["frobnicate"], "unexpected argument 'frobnicate'");
        check(&["serve", "serve"], "unexpected argument 'serve'");
    }

    #[test]
    fn help_lists_every_setting() {
        let h = help();
        for s in SETTINGS {
            assert!(h.contains(s.env), "{}", s.env);
            if let Some(f) = s.flag {
                assert!(h.contains(f), "{f}");
            }
        }
    }
}
