//! The data hookflow works on: workflow definitions and execution records.

mod execution;
mod inbound;
mod pause;
mod workflow;

pub use execution::{Execution, ExecutionStatus, Job, JobStatus, RunMessage};
pub use inbound::{
    DEFAULT_TOLERANCE_SECONDS, HmacAlgorithm, SecretRef, Secrets, SignatureConfig,
    SignatureEncoding, SignaturePreset,
};
pub use pause::{Cursor, Paused, Wait};
pub use workflow::{
    BasicAuth, DEFAULT_SYNC_TIMEOUT_MS, DeclaredPath, DeployedWorkflow, HeaderDeclaration,
    NameValue, NodeDefinition, RequestDeclarations, TriggerDefinition, TriggerResponse,
    WorkflowDefinition, WorkflowOptions, is_hook_id,
};
