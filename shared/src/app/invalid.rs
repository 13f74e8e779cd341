//! `trigger.schema` where a run would start: a delivery at the door (the
//! webhook) and a replay. A body that does not match is refused, or, with
//! `trigger.onInvalid: "keep"`, recorded as an execution with status `invalid`:
//! no node ran, and its output says why, for a replay once the workflow or its
//! schema is fixed.

use serde_json::Value;

use crate::model::{DeployedWorkflow, Execution, ExecutionStatus, Mismatch, SchemaProblem};
use crate::time::now_rfc3339;

use super::runner::Runner;

/// How `context.body` fails `workflow`'s schema, if it has one (`Ok(None)`: it
/// matches, or there is no schema). A schema that does not compile is a
/// definition `validate` would have refused: the caller reports it as a fault.
pub fn body_mismatch(
    workflow: &DeployedWorkflow,
    context: &Value,
) -> Result<Option<Mismatch>, SchemaProblem> {
    match &workflow.definition.trigger.schema {
        Some(schema) => schema.check(context.get("body").unwrap_or(&Value::Null)),
        None => Ok(None),
    }
}

/// The record of a delivery kept for its body's `mismatch`: finished as soon as
/// created, with the mismatch (`error`, `instancePath`, `schemaPath`) as its
/// output.
pub fn invalid_record(
    workflow: &DeployedWorkflow,
    id: &str,
    context: Value,
    mismatch: &Mismatch,
) -> Execution {
    let now = now_rfc3339();
    let mut record = Runner::started(workflow, id, context, now.clone());
    record.status = ExecutionStatus::Invalid;
    record.output = serde_json::to_value(mismatch).unwrap_or(Value::Null);
    record.finished_at = Some(now);
    record
}
