//! The one integration test binary: every test starts the real `agenthub` binary.

mod apps;
mod bodies;
mod bridge;
mod calls;
mod catalog;
mod children;
mod clients;
mod cold;
mod compose;
mod config_api;
mod conformance_client;
mod container;
mod core;
mod dashboard;
mod elicitations;
mod enhance;
mod floods;
mod front;
mod gateway;
mod imports;
mod kube;
mod layers;
mod life;
mod metrics;
mod modern;
mod modern_upstream;
mod npm_servers;
mod oauth;
mod parity;
mod pipelines;
mod profiles;
mod raycast;
mod ready;
mod reload;
mod remote_requests;
mod remote_sse;
mod remote_url;
mod replicas;
mod request_id;
mod sampling;
mod saves;
mod security;
mod servers;
mod service;
mod sessions;
mod shared_child;
mod shim;
mod tool_search;
// Shared test support: not every helper is used by every test module.
#[allow(dead_code)]
mod fake_ollama;
#[allow(dead_code)]
mod harness;
