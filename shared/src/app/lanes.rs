//! The rule a lane keeps when its run starts (`options.staleGuard`, model/flow.rs):
//! a run whose version is not greater than the highest its lane already ran
//! ends `resolved` as skipped, running no node. Lane order and concurrency are
//! the queue's (each adapter's); this is the store's part, asked once per run.

use serde_json::{Value, json};

use super::error::AppError;
use crate::lang::path::{self, Segment};
use crate::lang::template::{self, Variables};
use crate::model::{
    DeployedWorkflow, Execution, ExecutionStatus, FlowTicket, LaneVersion, RunMessage,
    StaleGuardConfig,
};
use crate::ports::Store;
use crate::time::now_rfc3339;

/// Where a delivery to `workflow` accepted with `context` waits its turn: its
/// lane's key rendered now, once.
pub fn ticket(workflow: &DeployedWorkflow, context: &Value) -> Option<FlowTicket> {
    let options = &workflow.definition.options;
    let lane = options
        .lane
        .as_ref()
        .map(|lane| (lane, render_text(&lane.key, context)));
    FlowTicket::of(&workflow.key, lane, options.concurrency)
}

/// A template rendered over `$context` alone, as text; `None` when it renders
/// null.
pub(crate) fn render_text(template: &str, context: &Value) -> Option<String> {
    match template::render_str(template, &ContextOnly(context)) {
        Value::Null => None,
        Value::String(s) => Some(s),
        Value::Number(n) => Some(crate::lang::number::text(&n)),
        other => Some(other.to_string()),
    }
}

/// A run's `staleGuard` version, rendered over its context.
fn version(config: &StaleGuardConfig, context: &Value) -> Result<LaneVersion, String> {
    LaneVersion::of(&template::render_str(
        &config.version,
        &ContextOnly(context),
    ))
}

/// `$context` and nothing else: what a delivery's accept can render.
struct ContextOnly<'a>(&'a Value);

impl Variables for ContextOnly<'_> {
    fn lookup(&self, root: &str, path: &[Segment]) -> Option<Value> {
        (root == "$context")
            .then(|| path::get(self.0, path).cloned())
            .flatten()
    }
}

/// A run that must not go on: recorded as it is, with no node run.
pub enum Verdict {
    Run,
    /// Stale, or its version could not be read: `execution` ended.
    Ended(Box<Execution>),
}

/// Whether `execution` (begun, no node run yet) may run on its lane.
pub async fn guard(
    store: &dyn Store,
    workflow: &DeployedWorkflow,
    message: &RunMessage,
    execution: &Execution,
) -> Result<Verdict, AppError> {
    let options = &workflow.definition.options;
    let lane = message.flow.as_ref().and_then(|f| f.lane.as_deref());
    // A replay runs what was kept, whatever its lane ran since.
    let (Some(config), Some(lane), None) = (&options.stale_guard, lane, &message.replay_of) else {
        return Ok(Verdict::Run);
    };
    let mut ended = execution.clone();
    ended.finished_at = Some(now_rfc3339());
    let version = match version(config, &execution.context) {
        Ok(version) => version,
        Err(reason) => {
            ended.status = ExecutionStatus::Error;
            ended.output = json!({ "error": reason });
            return Ok(Verdict::Ended(Box::new(ended)));
        }
    };
    let Some(lane_version) = store
        .raise_lane_version(lane, &version, &execution.id)
        .await?
    else {
        return Ok(Verdict::Run);
    };
    tracing::info!(execution_id = %execution.id, "a stale run is skipped");
    ended.status = ExecutionStatus::Resolved;
    ended.output = json!({
        "skipped": "stale",
        "version": version.value,
        "laneVersion": lane_version,
    });
    Ok(Verdict::Ended(Box::new(ended)))
}
