//! The data hookflow works on: workflow definitions and execution records.

mod body_schema;
mod claim;
mod execution;
mod flow;
mod inbound;
mod parsed;
mod pause;
mod redaction;
mod workflow;

pub use body_schema::{BodySchema, Mismatch, OnInvalid, SchemaProblem};
pub use claim::{Claim, ClaimCheck, ClaimOutcome, KeyedAccept, StoredAnswer, key_hash};
pub use execution::{Allowance, Execution, ExecutionStatus, Job, JobStatus, RunMessage};
pub use flow::{
    BatchConfig, DebounceConfig, FlowTicket, Flush, GatherKind, GatherTicket, Gathering, Joined,
    LaneConfig, LaneVersion, MAX_BATCH_SIZE, MAX_CONCURRENCY, MAX_DEBOUNCE_WAIT_MS,
    MAX_GATHER_WAIT_MS, MAX_LANE_CONCURRENCY, StaleGuardConfig, group_id, lane_id,
};
pub use inbound::{
    DEFAULT_IDEMPOTENCY_TTL_SECONDS, DEFAULT_TOLERANCE_SECONDS, HandshakeConfig, HandshakePreset,
    HmacAlgorithm, IdempotencyConfig, RateLimit, SecretRef, Secrets, SignatureConfig,
    SignatureEncoding, SignaturePreset, parse_block,
};
pub use parsed::ParsedConfig;
pub use pause::{Cursor, Paused, Wait};
pub use redaction::{Keeper, KeptAs, RedactConfig, RedactMode};
pub use workflow::{
    BasicAuth, DEFAULT_SYNC_TIMEOUT_MS, DeclaredPath, DeployedWorkflow, HeaderDeclaration,
    NameValue, NodeDefinition, RequestDeclarations, RetryPolicy, TriggerDefinition,
    TriggerResponse, WorkflowDefinition, WorkflowOptions, is_hook_id,
};
