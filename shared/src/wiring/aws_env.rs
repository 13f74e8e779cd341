//! The Lambdas' configuration: environment variables read once per cold start.

use std::sync::Arc;
use std::time::Duration;

use super::{App, Settings};
use crate::aws::SignedClient;
use crate::engine::Limits;
use crate::nodes::NodeSettings;
use crate::nodes::request::guard::NetworkPolicy;
use crate::ports::Telemetry;
use crate::webhook::MAX_BODY_CEILING;

/// What is wrong with a Lambda's environment: the function cannot start, and
/// retrying cannot help until its configuration changes.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} must be a whole number, not {value:?}")]
    NotANumber {
        name: &'static str,
        value: String,
        #[source]
        source: std::num::ParseIntError,
    },
    #[error("{0} is larger than this machine can address")]
    TooLarge(&'static str),
}

/// The Lambdas' configuration, read from their environment once per cold start.
#[derive(Debug, Clone)]
pub struct AwsEnv {
    /// `HOOKFLOW_TABLE`
    pub table: String,
    /// `HOOKFLOW_QUEUE_URL`
    pub queue_url: String,
    /// `HOOKFLOW_LANE_QUEUE_URL`: the FIFO queue of runs on a lane
    /// (`options.lane`); without it such runs are refused (503).
    pub lane_queue_url: Option<String>,
    /// `HOOKFLOW_RETENTION_DAYS` (default 30; 0 keeps executions forever).
    pub retention: Option<Duration>,
    /// `HOOKFLOW_BUCKET`: the claim-check bucket, where records too large for a
    /// DynamoDB item and contexts too large for a message go. Without it, large
    /// records are trimmed and large messages refused.
    pub bucket: Option<String>,
    /// `HOOKFLOW_MAX_MESSAGE_BYTES` (default 262,144): the run queue's
    /// `MaximumMessageSize`; larger runs go through the bucket.
    pub max_message_bytes: usize,
    /// `HOOKFLOW_HOOK_CACHE_TTL_MS` (default 5000), `HOOKFLOW_EXPOSED_ENV`
    /// (comma-separated names), `HOOKFLOW_SEALING_SECRET` (the Secrets Manager secret
    /// runs of workflows that redact are sealed with), `HOOKFLOW_MAX_BODY` (bytes: the most any hook may
    /// take, default 6 MiB).
    pub settings: Settings,
}

impl AwsEnv {
    pub fn from_env() -> Result<Self, EnvError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let number = |name: &'static str, default: u64| -> Result<u64, EnvError> {
            var(name).map_or(Ok(default), |value| {
                value.trim().parse().map_err(|source| EnvError::NotANumber {
                    name,
                    value,
                    source,
                })
            })
        };
        let table = var("HOOKFLOW_TABLE").ok_or(EnvError::Missing("HOOKFLOW_TABLE"))?;
        let queue_url = var("HOOKFLOW_QUEUE_URL").ok_or(EnvError::Missing("HOOKFLOW_QUEUE_URL"))?;
        let days = number("HOOKFLOW_RETENTION_DAYS", 30)?;
        let max_message_bytes = number(
            "HOOKFLOW_MAX_MESSAGE_BYTES",
            crate::ports::aws::DEFAULT_MAX_MESSAGE_BYTES as u64,
        )?;
        let sealing = match var("HOOKFLOW_SEALING_SECRET") {
            Some(secret) => super::SealingSource::Secret(crate::model::SecretRef::SecretsManager {
                secrets_manager: secret,
                key: None,
            }),
            None => super::SealingSource::None,
        };
        let settings = Settings {
            sealing,
            exposed_env: var("HOOKFLOW_EXPOSED_ENV")
                .map(|v| v.split(',').map(|n| n.trim().to_string()).collect())
                .unwrap_or_default(),
            hook_cache_ttl: Duration::from_millis(number("HOOKFLOW_HOOK_CACHE_TTL_MS", 5_000)?),
            body_ceiling: usize::try_from(number("HOOKFLOW_MAX_BODY", MAX_BODY_CEILING as u64)?)
                .map_err(|_| EnvError::TooLarge("HOOKFLOW_MAX_BODY"))?,
            limits: Limits::default(),
            nodes: NodeSettings {
                network: NetworkPolicy {
                    allow_loopback: false,
                    allow_private: var("HOOKFLOW_ALLOW_PRIVATE_REQUESTS")
                        .is_some_and(|v| v == "true"),
                },
                ..NodeSettings::default()
            },
            ..Settings::default()
        };
        Ok(Self {
            table,
            queue_url,
            lane_queue_url: var("HOOKFLOW_LANE_QUEUE_URL"),
            retention: (days > 0).then(|| Duration::from_secs(days * 86_400)),
            bucket: var("HOOKFLOW_BUCKET"),
            max_message_bytes: usize::try_from(max_message_bytes)
                .map_err(|_| EnvError::TooLarge("HOOKFLOW_MAX_MESSAGE_BYTES"))?,
            settings,
        })
    }

    /// The Lambdas' start: configuration from the environment (no provider
    /// chain: a Lambda's credentials are in it), one AWS client built once.
    pub async fn app_from_env() -> Result<App, EnvError> {
        let env = Self::from_env()?;
        let client = crate::ports::aws::client(&crate::ports::aws::env_config());
        Ok(env.app(Arc::clone(&client), client))
    }

    /// The app on DynamoDB and SQS through the given clients (built once by the
    /// caller), counting in Embedded Metric Format lines on stdout.
    pub fn app(&self, dynamo: Arc<SignedClient>, sqs: Arc<SignedClient>) -> App {
        self.app_with(dynamo, sqs, Arc::new(crate::ports::aws::Emf::stdout()))
    }

    /// [`AwsEnv::app`] with its metrics going to `telemetry`.
    pub fn app_with(
        &self,
        dynamo: Arc<SignedClient>,
        sqs: Arc<SignedClient>,
        telemetry: Arc<dyn Telemetry>,
    ) -> App {
        use crate::ports::aws::{DynamoStore, Objects, SqsQueue};
        let mut store = DynamoStore::new(Arc::clone(&dynamo), &self.table, self.retention);
        let mut queue = SqsQueue::new(sqs, &self.queue_url)
            .with_lanes(self.lane_queue_url.clone())
            .with_places(crate::ports::aws::Places::new(
                Arc::clone(&dynamo),
                &self.table,
            ));
        if let Some(bucket) = &self.bucket {
            let objects = Objects::new(dynamo, bucket);
            store = store.with_objects(objects.clone());
            queue = queue.with_objects(objects, self.max_message_bytes);
        }
        let (store, queue) = (Arc::new(store), Arc::new(queue));
        App::with_telemetry(store, queue, &self.settings, telemetry)
    }
}
