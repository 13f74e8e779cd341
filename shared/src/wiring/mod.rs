//! Wiring: the engine, runner, webhook service and worker built once from a store, a
//! queue and settings. `hookflow serve` and both Lambdas start here.

mod aws_env;

pub use aws_env::{AwsEnv, EnvError};

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::app::redaction::{Sealer, SealingKey};
use crate::app::runner::Runner;
use crate::app::subflows::{DEFAULT_MAX_DEPTH, SubflowService};
use crate::app::wakeups::Wakeups;
use crate::app::worker::Worker;
use crate::engine::{Engine, Limits, NodeRegistry, Subflows};
use crate::nodes::NodeSettings;
use crate::ports::secrets::SecretSource;
use crate::ports::{NoTelemetry, Queue, Store, Telemetry};
use crate::webhook::{MAX_BODY_CEILING, WebhookService};

#[derive(Debug, Clone)]
pub struct Settings {
    /// Environment variables a workflow may read as `$env.NAME`; no others.
    pub exposed_env: Vec<String>,
    pub hook_cache_ttl: Duration,
    /// The largest body any hook may take (`HOOKFLOW_MAX_BODY`, `--max-body`):
    /// each takes its `trigger.request.maxBodyBytes`, default 1 MiB, up to this.
    pub body_ceiling: usize,
    pub limits: Limits,
    pub nodes: NodeSettings,
    /// Builds the node types workflows may use from `nodes`: the built-in ones
    /// everywhere the project ships. The project's tests add their own test-only
    /// types here (tests/src/test_nodes.rs), so no build of the library holds them.
    pub node_types: fn(&NodeSettings) -> NodeRegistry,
    /// The key runs of workflows that redact are sealed with.
    pub sealing: SealingSource,
}

/// Where the key runs that redact are sealed with comes from
/// (`app::redaction::sealer`).
#[derive(Clone, Default)]
pub enum SealingSource {
    /// None: a delivery to a hook that redacts is answered 503.
    #[default]
    None,
    /// A secret read when first needed (the stack's Secrets Manager secret).
    Secret(crate::model::SecretRef),
    /// A key text (`hookflow serve`'s data directory keeps one).
    Key(Arc<str>),
}

impl std::fmt::Debug for SealingSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("SealingSource::None"),
            Self::Secret(reference) => write!(f, "SealingSource::Secret({reference:?})"),
            Self::Key(_) => f.write_str("SealingSource::Key(<redacted>)"),
        }
    }
}

impl SealingSource {
    fn sealer(&self, secrets: Arc<dyn SecretSource>) -> Sealer {
        match self {
            Self::None => Sealer::none(),
            Self::Secret(reference) => Sealer::from_secret(secrets, reference.clone()),
            Self::Key(text) => Sealer::ready(SealingKey::from_secret(text)),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            exposed_env: Vec::new(),
            hook_cache_ttl: Duration::from_secs(5),
            body_ceiling: MAX_BODY_CEILING,
            limits: Limits::default(),
            nodes: NodeSettings::default(),
            node_types: crate::nodes::builtin_with,
            sealing: SealingSource::None,
        }
    }
}

pub struct App {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub webhook: Arc<WebhookService>,
    pub worker: Arc<Worker>,
    /// The node types its engine runs: deploys and the viewer ask them too.
    pub node_types: Arc<NodeRegistry>,
    /// Kept alive here: the engine holds it weakly.
    _subflows: Arc<dyn Subflows>,
}

impl App {
    pub fn new(store: Arc<dyn Store>, queue: Arc<dyn Queue>, settings: &Settings) -> Self {
        Self::with_telemetry(store, queue, settings, Arc::new(NoTelemetry))
    }

    /// An app whose requests and runs are counted by `telemetry`.
    pub fn with_telemetry(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        settings: &Settings,
        telemetry: Arc<dyn Telemetry>,
    ) -> Self {
        let node_types = Arc::new((settings.node_types)(&settings.nodes));
        let engine = Arc::new(Engine::new(
            Arc::clone(&node_types),
            settings.limits.clone(),
        ));
        let runner = Arc::new(Runner::new(
            Arc::clone(&engine),
            Arc::new(exposed_env(&settings.exposed_env)),
        ));
        let wakeups = Arc::new(Wakeups::new(Arc::clone(&queue), Arc::clone(&store)));
        // Clients built on the first SSM or Secrets Manager reference only.
        let secrets: Arc<dyn SecretSource> = Arc::new(crate::ports::aws::AwsSecrets::new());
        let sealer = Arc::new(settings.sealing.sealer(Arc::clone(&secrets)));
        let subflows: Arc<dyn Subflows> = Arc::new(
            SubflowService::new(
                Arc::clone(&store),
                Arc::clone(&runner),
                Arc::clone(&wakeups),
                Arc::clone(&telemetry),
                DEFAULT_MAX_DEPTH,
            )
            .with_sealer(Arc::clone(&sealer)),
        );
        engine.set_subflows(Arc::downgrade(&subflows));
        let webhook = Arc::new(
            WebhookService::new(
                Arc::clone(&store),
                Arc::clone(&queue),
                Arc::clone(&runner),
                settings.hook_cache_ttl,
                settings.body_ceiling,
                secrets,
                Arc::clone(&sealer),
            )
            .with_telemetry(Arc::clone(&telemetry)),
        );
        let worker = Arc::new(Worker::new(
            Arc::clone(&store),
            runner,
            wakeups,
            telemetry,
            sealer,
        ));
        Self {
            store,
            queue,
            webhook,
            worker,
            node_types,
            _subflows: subflows,
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
