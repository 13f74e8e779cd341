//! A sync run: run now within its time limit, recorded, answered with its
//! result (a response node's reply, or its status).

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::json;

use super::super::deadline::sync_time_limit;
use super::super::refusal::Refusal;
use super::super::reply;
use super::{Dispatch, SyncRun};
use crate::app::failures;
use crate::app::runner::Runner;
use crate::model::{DeployedWorkflow, Execution, ExecutionStatus, KeptAs};
use crate::ports::StoreError;
use crate::ports::telemetry::count_recorded;
use crate::time::now_rfc3339;

impl Dispatch {
    /// Runs a sync workflow and records it: its answer, or why it has none (each
    /// refusal a 5xx).
    pub(super) async fn run_sync(
        &self,
        workflow: &DeployedWorkflow,
        run: SyncRun,
        id: String,
    ) -> Result<Response<Bytes>, Refusal> {
        let SyncRun {
            context,
            redaction,
            deadline,
            idempotency_key,
        } = run;
        let mut execution = Runner::started(workflow, &id, context, now_rfc3339());
        execution.idempotency_key = idempotency_key;
        if let Some(redaction) = redaction {
            execution.kept_as = KeptAs(Some(redaction));
        }
        let timeout = sync_time_limit(workflow.definition.sync_timeout_ms(), deadline);
        let finished = self.runner.run(execution, workflow, Some(timeout)).await;
        if let Err(e) = self.store.save_answered(&finished.execution).await {
            tracing::error!(execution_id = %id, error = %e, "cannot record a sync execution");
            if !e.is_retryable() {
                return Err(self.record_refused(&finished.execution, &e).await);
            }
            return Err(Refusal::NotRecorded);
        }
        self.recorded(&finished.execution).await;
        let status = finished.execution.status;
        if finished.timed_out {
            return Err(Refusal::TimedOut {
                limit: timeout,
                execution_id: id,
            });
        }
        let response = match finished.reply {
            Some(r) => reply::from_reply(&r),
            None => {
                let code = if status == ExecutionStatus::Resolved {
                    StatusCode::OK
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                reply::json(
                    code,
                    &json!({ "executionId": id, "status": status.as_str() }),
                )
            }
        };
        Ok(response)
    }

    /// A sync run whose record the store refused for good (too large, say): a retry
    /// would be refused the same way, so it is recorded small, as `error`, and
    /// answered 500 with the reason rather than 503 "retry later".
    async fn record_refused(&self, execution: &Execution, refusal: &StoreError) -> Refusal {
        let reason = format!("the run could not be recorded: {refusal}");
        let record = crate::app::worker::refused_record(execution, &reason);
        if let Err(e) = self.store.save_execution(&record).await {
            tracing::error!(execution_id = %record.id, error = %e, "cannot record a refused sync execution");
        } else {
            self.recorded(&record).await;
        }
        Refusal::RecordRefused {
            reason,
            execution_id: record.id,
        }
    }

    /// What follows a sync run's final record: it is counted, and a failed one
    /// starts its failure workflow. A start that cannot be queued is logged and
    /// the answer stands (the run happened).
    async fn recorded(&self, execution: &Execution) {
        count_recorded(self.telemetry.as_ref(), execution);
        let failures =
            failures::after_final_save(self.store.as_ref(), self.queue.as_ref(), execution);
        if let Err(e) = failures.await {
            tracing::error!(execution_id = %execution.id, error = %e, "cannot start the failure workflow of a failed sync run");
        }
    }
}
