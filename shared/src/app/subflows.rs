//! The application's side of the `subflow` port: finds the child's current enabled
//! version, enforces the call rules, runs it and records it as its own execution.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use crate::app::failures;
use crate::app::ids::new_execution_id;
use crate::app::redaction::{self, Sealer};
use crate::app::runner::Runner;
use crate::app::wakeups::Wakeups;
use crate::engine::{SubflowCall, SubflowError, SubflowResult, Subflows};
use crate::model::ExecutionStatus;
use crate::ports::telemetry::count_recorded;
use crate::ports::{Store, Telemetry};
use crate::time::now_rfc3339;

/// Subflow calls nest at most this deep by default.
pub const DEFAULT_MAX_DEPTH: usize = 8;

pub struct SubflowService {
    store: Arc<dyn Store>,
    runner: Arc<Runner>,
    wakeups: Arc<Wakeups>,
    telemetry: Arc<dyn Telemetry>,
    max_depth: usize,
    /// Opens the real output of a child that redacts (see `app::redaction`).
    sealer: Arc<Sealer>,
}

impl SubflowService {
    pub fn new(
        store: Arc<dyn Store>,
        runner: Arc<Runner>,
        wakeups: Arc<Wakeups>,
        telemetry: Arc<dyn Telemetry>,
        max_depth: usize,
    ) -> Self {
        Self {
            store,
            runner,
            wakeups,
            telemetry,
            max_depth,
            sealer: Arc::new(Sealer::none()),
        }
    }

    /// Reads the sealed output of children whose runs redact with `sealer`'s key.
    pub fn with_sealer(mut self, sealer: Arc<Sealer>) -> Self {
        self.sealer = sealer;
        self
    }
}

#[async_trait]
impl Subflows for SubflowService {
    async fn call(&self, call: SubflowCall) -> Result<SubflowResult, SubflowError> {
        let depth = call.parent_depth + 1;
        if depth > self.max_depth {
            return Err(SubflowError::Refused(format!(
                "subflow calls nest more than {} deep (calling {:?})",
                self.max_depth, call.workflow_key
            )));
        }
        let workflow = self
            .store
            .current_workflow(&call.workflow_key)
            .await
            .map_err(|e| SubflowError::Unavailable(e.to_string()))?
            .filter(|w| w.definition.enabled)
            .ok_or_else(|| {
                SubflowError::Refused(format!(
                    "no enabled workflow has the key {:?}",
                    call.workflow_key
                ))
            })?;
        if call.parent_sync && !workflow.definition.sync {
            return Err(SubflowError::Refused(format!(
                "a sync workflow may call only sync workflows; {:?} is async",
                call.workflow_key
            )));
        }
        // Every run under one delivery counts against that delivery's run, so a
        // workflow that calls itself ends (see `engine::Budget`).
        call.budget
            .take_execution()
            .map_err(SubflowError::Refused)?;
        let id = new_execution_id();
        let mut execution = Runner::started(&workflow, &id, call.context, now_rfc3339());
        execution.parent_execution_id = Some(call.parent_execution_id);
        // A child of a run in a failure workflow's lineage is in it too: its
        // failure must not start a failure workflow (which could call it again).
        execution.on_failure_of = call.parent_on_failure_of;
        execution.kept_as = call.parent_kept_as;
        let mut finished = self
            .runner
            .run_at_depth(execution, &workflow, depth, Arc::clone(&call.budget))
            .await;
        // A child's pause is bounded by its own workflow, as any run's is.
        super::pauses::bound(
            self.store.as_ref(),
            &workflow.definition,
            &mut finished.execution,
            true,
        )
        .await
        .map_err(|e| unavailable("checked against its workflow's pause bounds", &e))?;
        // A child that paused goes on by itself later, maybe elsewhere: it takes a
        // share of the budget along, and its caller gets back what it leaves.
        if finished.execution.paused.is_some() {
            finished.execution.budget = Some(call.budget.take_share());
        }
        // A child that paused goes on by itself, woken like any paused execution.
        let child = match self.store.as_written(&finished.execution) {
            Cow::Owned(written) => written,
            Cow::Borrowed(_) => finished.execution,
        };
        self.wakeups
            .before_save(&child, None, false)
            .await
            .map_err(|e| unavailable("scheduled", &e))?;
        self.store
            .save_execution(&child)
            .await
            .map_err(|e| unavailable("recorded", &e))?;
        self.wakeups
            .after_save(&child)
            .await
            .map_err(|e| unavailable("scheduled", &e))?;
        count_recorded(self.telemetry.as_ref(), &child);
        // The child ran and is recorded: a failure workflow that cannot be started
        // now is logged, not a reason to run the child again.
        let store = self.store.as_ref();
        if let Err(e) = failures::after_final_save(store, self.wakeups.queue(), &child).await {
            tracing::error!(execution_id = %child.id, error = %e, "cannot start the failure workflow of a failed subflow run");
        }
        Ok(SubflowResult {
            execution_id: id,
            status: child.status,
            output: child.output,
            left: None,
        })
    }

    async fn outcome(&self, execution_id: &str) -> Result<Option<SubflowResult>, SubflowError> {
        let child = self
            .store
            .execution(execution_id)
            .await
            .map_err(|e| SubflowError::Unavailable(e.to_string()))?;
        // Gone (deleted, or expired): the call fails rather than wait forever.
        let Some(child) = child else {
            return Ok(Some(SubflowResult {
                execution_id: execution_id.to_string(),
                status: ExecutionStatus::Error,
                output: json!({ "error": "the child execution is no longer recorded" }),
                left: None,
            }));
        };
        if !child.status.is_final() {
            return Ok(None);
        }
        // A child kept redacted: its caller goes on with the real output.
        let output = match &child.sealed {
            Some(sealed) => {
                let key = self
                    .sealer
                    .key()
                    .await
                    .map_err(|e| unavailable("read", &e))?;
                match redaction::open(sealed, key) {
                    Ok(opened) => opened.output.unwrap_or(child.output),
                    Err(e) => return Err(SubflowError::Refused(e.to_string())),
                }
            }
            None => child.output,
        };
        Ok(Some(SubflowResult {
            execution_id: child.id,
            status: child.status,
            output,
            left: child.budget,
        }))
    }
}

fn unavailable(what: &str, e: &dyn std::fmt::Display) -> SubflowError {
    SubflowError::Unavailable(format!("the child execution could not be {what}: {e}"))
}
