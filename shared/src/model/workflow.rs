//! The workflow definition format (spec section 2), as it is read from a JSON file.
//!
//! Deserialising is lenient about defaults; the rules themselves live in the
//! definition validator, which reports every problem with its JSON path before a
//! definition is ever turned into these types.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ParsedConfig;
use super::body_schema::{BodySchema, OnInvalid};
use super::inbound::{HandshakeConfig, IdempotencyConfig, RateLimit, SecretRef, SignatureConfig};

/// Whether `s` can be a hook id: 1..=128 URL-safe characters (letters, digits,
/// `-`, `_`). The webhook answers any other id 404 without looking it up.
pub fn is_hook_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
}

/// Sync runs answer before API Gateway's own 30 s limit.
pub const DEFAULT_SYNC_TIMEOUT_MS: u64 = 25_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowDefinition {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub sync: bool,
    #[serde(default)]
    pub options: WorkflowOptions,
    pub trigger: TriggerDefinition,
    #[serde(default)]
    pub nodes: Vec<NodeDefinition>,
}

fn yes() -> bool {
    true
}

impl WorkflowDefinition {
    /// The time a sync run may take before it is aborted and answered with 504.
    pub fn sync_timeout_ms(&self) -> u64 {
        self.options.timeout_ms.unwrap_or(DEFAULT_SYNC_TIMEOUT_MS)
    }

    /// How long an idempotency key's claim lasts (`trigger.idempotency.ttlSeconds`).
    pub fn idempotency_ttl(&self) -> u64 {
        self.trigger
            .idempotency
            .as_ref()
            .map_or(crate::model::DEFAULT_IDEMPOTENCY_TTL_SECONDS, |c| c.ttl())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The key of a workflow started (async) when a run ends `failed`, `error` or
    /// `aborted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
    /// The longest a `delay` node may wait, in seconds (default 7 days, at most
    /// 366 days). A delay a caller chooses (read from the request) past it fails
    /// its node, so no sender parks runs with their contexts for a year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 31_622_400))]
    pub max_delay_seconds: Option<u64>,
    /// The most runs of this workflow that may be paused (waiting for a delay or a
    /// child) at once (default 10,000); a run that would pause past it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_paused_runs: Option<u64>,
    /// Runs whose key renders equal start in accept order, a few at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<super::LaneConfig>,
    /// Skips a run older than what its lane already ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_guard: Option<super::StaleGuardConfig>,
    /// The most runs of this workflow running at once, over all keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000))]
    pub concurrency: Option<u32>,
    /// Deliveries of one key in quick succession make one run, on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce: Option<super::DebounceConfig>,
    /// Deliveries of one key make one run together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<super::BatchConfig>,
}

impl WorkflowOptions {
    /// `maxDelaySeconds` when none is set: a week.
    pub const DEFAULT_MAX_DELAY_SECONDS: u64 = 7 * 24 * 3600;
    /// The highest `maxDelaySeconds` (366 days): a wait longer than that is surely a
    /// mistake.
    pub const MAX_DELAY_SECONDS: u64 = 366 * 24 * 3600;
    /// `maxPausedRuns` when none is set.
    pub const DEFAULT_MAX_PAUSED_RUNS: u64 = 10_000;

    pub fn max_delay_seconds(&self) -> u64 {
        self.max_delay_seconds
            .unwrap_or(Self::DEFAULT_MAX_DELAY_SECONDS)
            .min(Self::MAX_DELAY_SECONDS)
    }

    pub fn max_paused_runs(&self) -> u64 {
        self.max_paused_runs
            .unwrap_or(Self::DEFAULT_MAX_PAUSED_RUNS)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerDefinition {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "basic_auth_or_false",
        serialize_with = "basic_auth_or_false_out"
    )]
    #[schemars(schema_with = "basic_auth_or_false_schema")]
    pub basic_authentication: Option<BasicAuth>,
    #[serde(default)]
    pub request: RequestDeclarations,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<TriggerResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake: Option<HandshakeConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<IdempotencyConfig>,
    /// CIDR blocks (IPv4 and IPv6) the request must come from; empty = anyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Values scrubbed from everything kept of each run while its nodes see them
    /// (docs/workflows.md, "Redaction").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redact: Option<super::RedactConfig>,
    /// A JSON Schema `$context.body` must match before a run starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<BodySchema>,
    /// What a body that does not match `schema` gets: 422, or kept as `invalid`.
    #[serde(default, skip_serializing_if = "OnInvalid::is_refuse")]
    pub on_invalid: OnInvalid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BasicAuth {
    pub username: String,
    pub password: SecretRef,
}

/// `basicAuthentication` is `false`, `null`, absent, or `{username, password}`.
fn basic_auth_or_false<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<BasicAuth>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null | Value::Bool(false) => Ok(None),
        other => serde_json::from_value(other)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

fn basic_auth_or_false_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "anyOf": [generator.subschema_for::<BasicAuth>(), {"type": "null"}, {"const": false}]
    })
}

fn basic_auth_or_false_out<S: serde::Serializer>(
    auth: &Option<BasicAuth>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match auth {
        Some(a) => a.serialize(s),
        None => s.serialize_bool(false),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestDeclarations {
    #[serde(default)]
    pub headers: Vec<HeaderDeclaration>,
    #[serde(default)]
    pub query: Vec<DeclaredPath>,
    #[serde(default)]
    pub body: Vec<DeclaredPath>,
    /// Adds `$context.rawBody` (and `rawBodyEncoding` when it is base64).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raw_body: bool,
    /// The largest body this hook takes, in bytes (default 1 MiB, at most 6 MiB:
    /// a Lambda's request limit); a larger one is answered 413.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 6_291_456))]
    pub max_body_bytes: Option<usize>,
}

impl RequestDeclarations {
    /// The default of `maxBodyBytes`: 1 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
    /// The largest `maxBodyBytes`: 6 MiB, what a Lambda invocation's request may
    /// carry (base64 included).
    pub const MAX_BODY_BYTES: usize = 6 << 20;

    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes.unwrap_or(Self::DEFAULT_MAX_BODY_BYTES)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HeaderDeclaration {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

/// A documented variable path with an optional display name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeclaredPath {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

/// The immediate answer of an async workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerResponse {
    #[serde(default = "ok_status")]
    pub status_code: u16,
    #[serde(default)]
    pub headers: Vec<NameValue>,
    #[serde(default = "ok_body")]
    pub body: Value,
}

impl Default for TriggerResponse {
    fn default() -> Self {
        Self {
            status_code: ok_status(),
            headers: Vec::new(),
            body: ok_body(),
        }
    }
}

fn ok_status() -> u16 {
    200
}

fn ok_body() -> Value {
    Value::String("ok".into())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NameValue {
    pub name: String,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeDefinition {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default = "empty_object")]
    pub config: Value,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub branches: BTreeMap<String, Vec<NodeDefinition>>,
    /// Runs the node again when it fails or errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// `config` as the node's type reads it, read once per loaded definition.
    #[serde(skip)]
    #[schemars(skip)]
    parsed: ParsedConfig,
}

/// `retry` on a node: up to `maxAttempts` runs in all, waiting `backoffMs` before
/// the second, twice that before the third, and so on, at most `maxBackoffMs`,
/// each wait shortened by up to a quarter at random (so retries of many runs
/// spread out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

fn default_backoff_ms() -> u64 {
    1_000
}

fn default_max_backoff_ms() -> u64 {
    300_000
}

impl RetryPolicy {
    pub const MAX_ATTEMPTS: u32 = 10;
    /// The longest wait between two attempts (an hour).
    pub const MAX_BACKOFF_MS: u64 = 3_600_000;

    /// The wait before attempt `next` (2 for the first retry), before jitter.
    pub fn backoff_before(&self, next: u32) -> std::time::Duration {
        let doublings = next.saturating_sub(2).min(32);
        let ms = self
            .backoff_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_backoff_ms);
        std::time::Duration::from_millis(ms)
    }
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl NodeDefinition {
    pub fn branch(&self, index: &str) -> Option<&[NodeDefinition]> {
        self.branches.get(index).map(Vec::as_slice)
    }

    /// Where the node's type keeps `config` once read (the config is not changed
    /// after a definition is loaded).
    pub fn parsed(&self) -> &ParsedConfig {
        &self.parsed
    }
}

/// A definition as deployed: one version of one key, with its hook id settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployedWorkflow {
    pub key: String,
    pub version: u32,
    pub hook_id: String,
    pub definition: WorkflowDefinition,
    pub deployed_at: String,
    /// Set on a version `hookflow workflows enable|disable` made: who, and how. A
    /// deploy of the unchanged file keeps such a switch (see `app::deploy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switched_by: Option<String>,
}
