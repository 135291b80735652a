//! The one wiring of the hub: `App::build` turns settings and the loaded configuration into
//! the running parts (breakers, activity feed, server table, enhancement service, MCP gateway,
//! installer, pipelines), and `App::stop` takes them down in order. `main`, the tests
//! and the benchmark build the hub the same way. Every HTTP handler receives the `App`.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use crate::activity::Activity;
use crate::config::{Loaded, Settings};
use crate::enhance;
use crate::mcp::{ColdStart, Gateway};
use crate::pipelines::{self, Pipelines};
use crate::resilience::{BreakerConfig, Breakers};
use crate::servers::installer::Installer;
use crate::servers::{Context, Sampler, Servers};

/// The hub's shared state, handed to every handler.
pub struct App {
    pub settings: Settings,
    pub started: Instant,
    pub servers: Arc<Servers>,
    pub installer: Arc<Installer>,
    pub breakers: Arc<Breakers>,
    pub activity: Arc<Activity>,
    pub gateway: Arc<Gateway>,
    pub enhancer: Arc<enhance::Service>,
    pub pipelines: Arc<Pipelines>,
    /// Remote servers' sign-ins.
    pub oauth: Arc<crate::oauth::OAuth>,
}

impl App {
    /// Wires the hub. Nothing runs yet but the Ollama probe: servers start with
    /// `servers.start_background()` once the front listens.
    pub fn build(settings: Settings, loaded: Loaded) -> Arc<App> {
        let breakers = Arc::new(Breakers::new(BreakerConfig {
            failure_threshold: settings.breaker_threshold,
            recovery_timeout: settings.breaker_recovery,
        }));
        let activity = Arc::new(Activity::default());
        let npm_prefix = settings.data_dir.join("npm");
        let import_origin = settings.servers_file.as_ref().map(|p| p.display().to_string());
        let oauth = Arc::new(crate::oauth::OAuth::new(settings.data_dir.join("oauth")));
        oauth.set_client_document(settings.oauth_client_id_url.clone());
        let installer = Arc::new(Installer::new(npm_prefix.clone(), settings.data_dir.join("pids")));
        let servers = Servers::new(
            loaded.servers,
            (loaded.servers_path, loaded.document),
            import_origin,
            Context {
                npm_prefix,
                pids: settings.data_dir.join("pids"),
                installer: installer.clone(),
                held: settings.data_dir.join("held.json"),
                default_timeout: settings.request_timeout,
                max_calls: settings.max_calls,
                max_calls_total: settings.max_calls_total,
                elicitation_wait: settings.elicitation_wait,
                breakers: breakers.clone(),
                activity: activity.clone(),
                oauth: oauth.clone(),
            },
        );
        let enhancer = Arc::new(enhance::Service::new(
            loaded.rules,
            &settings.ollama_url,
            enhance::Limits {
                timeout: settings.ollama_timeout,
                cache_size: settings.cache_size,
                max_generations: settings.max_generations,
                embed_model: settings.embed_model.clone(),
            },
            breakers.clone(),
        ));
        servers.set_sampler(local_sampler(&servers, &enhancer, &activity));
        let limits = pipelines::Limits {
            max_runs: settings.max_pipeline_runs,
            vault_root: settings.vault_root.clone(),
        };
        let pipelines = Arc::new(Pipelines::new(
            loaded.pipelines,
            servers.clone(),
            enhancer.clone(),
            activity.clone(),
            limits,
        ));
        let gateway = Gateway::new(
            servers.clone(),
            Some(enhancer.clone()),
            Some(pipelines.clone()),
            ColdStart {
                catalog_dir: Some(settings.data_dir.join("catalog")),
                wait: settings.cold_list_wait,
                search: settings.tool_search,
            },
        );
        gateway.set_profiles(loaded.profiles);
        crate::audit::global().configure(match settings.audit.as_str() {
            "off" => crate::audit::Sink::Off,
            "stdout" => crate::audit::Sink::Stdout,
            _ => crate::audit::Sink::File(settings.data_dir.join("audit.jsonl")),
        });
        Arc::new(App {
            gateway,
            pipelines,
            enhancer,
            servers,
            installer,
            breakers,
            activity,
            oauth,
            started: Instant::now(),
            settings,
        })
    }

    /// Ends every MCP session, so their GET streams end and the front can drain.
    pub fn close_sessions(&self) {
        self.gateway.shutdown();
    }

    /// Stops an install under way (npm and what it started), pipeline runs, every child and the
    /// Ollama probe; returns when they are down.
    pub fn stop(&self) {
        self.installer.stop();
        // Runs stop after their current step, which fails fast once the servers are down.
        self.pipelines.begin_shutdown();
        self.servers.shutdown();
        self.pipelines.join();
        self.enhancer.stop();
    }
}

/// Sampling by the local model: each request on a `sample-*` thread of its own (bounded by
/// `OLLAMA_TIMEOUT_S`), its answer handed back to the child, the choice of model and why in the
/// activity feed.
fn local_sampler(
    servers: &Arc<Servers>,
    enhancer: &Arc<enhance::Service>,
    activity: &Arc<Activity>,
) -> Sampler {
    let (servers, enhancer, activity) = (Arc::downgrade(servers), enhancer.clone(), activity.clone());
    Arc::new(move |server: &str, forward: &Value, model: Option<&str>, why: &str| {
        let (servers, enhancer, activity) = (servers.clone(), enhancer.clone(), activity.clone());
        let (server, forward, model) = (server.to_string(), forward.clone(), model.map(str::to_string));
        let why = why.to_string();
        let name = format!("sample-{}", server.chars().take(8).collect::<String>());
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            let started = Instant::now();
            let relay_id = forward.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
            let answer =
                match enhancer.sample(forward.get("params").unwrap_or(&Value::Null), model.as_deref()) {
                    Ok(s) => {
                        let ms = started.elapsed().as_millis();
                        activity.record(
                            "sampling",
                            Some(&server),
                            format!("answered by {} ({}) in {ms} ms", s.model, s.why),
                        );
                        json!({"result": s.result})
                    }
                    Err(failed) => {
                        let message = format!("sampling/createMessage from {server}: {why}; {failed}");
                        activity.record("sampling", Some(&server), message.clone());
                        json!({"error": {"code": crate::jsonrpc::SERVER_UNAVAILABLE, "message": message}})
                    }
                };
            if let Some(servers) = servers.upgrade() {
                if !servers.answer_child(&server, &relay_id, &answer) {
                    log::debug!("server {server}: the sampling answer {relay_id} found nobody waiting");
                }
            }
        });
        spawned.is_ok()
    })
}
