//! Wiring: the engine, runner, webhook service and worker built once from a store, a
//! queue and settings. `hookflow serve` and both Lambdas start here.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::engine::{Engine, Limits};
use crate::nodes::NodeRegistry;
use crate::ports::{Queue, Store};
use crate::run::Runner;
use crate::webhook::{DEFAULT_MAX_BODY, WebhookService};
use crate::worker::Worker;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Environment variables a workflow may read as `$env.NAME`; no others.
    pub exposed_env: Vec<String>,
    pub hook_cache_ttl: Duration,
    pub max_body: usize,
    pub limits: Limits,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            exposed_env: Vec::new(),
            hook_cache_ttl: Duration::from_secs(5),
            max_body: DEFAULT_MAX_BODY,
            limits: Limits::default(),
        }
    }
}

pub struct App {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub webhook: Arc<WebhookService>,
    pub worker: Arc<Worker>,
}

impl App {
    pub fn new(store: Arc<dyn Store>, queue: Arc<dyn Queue>, settings: &Settings) -> Self {
        let engine = Arc::new(Engine::new(
            Arc::new(NodeRegistry::builtin()),
            settings.limits.clone(),
        ));
        let runner = Arc::new(Runner::new(
            engine,
            Arc::new(exposed_env(&settings.exposed_env)),
        ));
        let webhook = Arc::new(WebhookService::new(
            Arc::clone(&store),
            Arc::clone(&queue),
            Arc::clone(&runner),
            settings.hook_cache_ttl,
            settings.max_body,
        ));
        let worker = Arc::new(Worker::new(Arc::clone(&store), runner));
        Self {
            store,
            queue,
            webhook,
            worker,
        }
    }
}

/// The listed variables that are set, read once at start.
pub fn exposed_env(names: &[String]) -> Value {
    let mut env = Map::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if let Ok(value) = std::env::var(name) {
            env.insert(name.to_string(), Value::String(value));
        }
    }
    Value::Object(env)
}
