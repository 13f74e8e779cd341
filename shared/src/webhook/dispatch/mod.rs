//! Dispatch: an accepted event runs. A sync workflow runs now and answers with
//! its result (sync.rs); an async one is queued and answered with its configured
//! response; a delivery with an idempotency key runs once and its duplicates get
//! its answer (keyed.rs). A body `trigger.schema` refused, on a hook that keeps
//! such deliveries, is recorded `invalid` and answered as accepted.

mod keyed;
mod sync;

use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use serde_json::Value;

use super::accept::Event;
use super::deadline::Deadline;
use super::idempotency::IdempotencyService;
use super::refusal::Refusal;
use super::reply;
use crate::app::ids::new_execution_id;
use crate::app::invalid::invalid_record;
use crate::app::redaction::Redaction;
use crate::app::runner::Runner;
use crate::model::{DeployedWorkflow, Mismatch, RunMessage};
use crate::ports::telemetry::count_recorded;
use crate::ports::{NoTelemetry, Queue, Store, Telemetry};
use crate::time::now_rfc3339;

pub(super) struct Dispatch {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    runner: Arc<Runner>,
    claims: IdempotencyService,
    pub(super) telemetry: Arc<dyn Telemetry>,
}

impl Dispatch {
    pub(super) fn new(store: Arc<dyn Store>, queue: Arc<dyn Queue>, runner: Arc<Runner>) -> Self {
        Self {
            claims: IdempotencyService::new(store.clone()),
            store,
            queue,
            runner,
            telemetry: Arc::new(NoTelemetry),
        }
    }

    pub(super) async fn run(&self, mut event: Event) -> Result<Response<Bytes>, Refusal> {
        match (event.key.take(), event.workflow.definition.sync) {
            (Some(key), true) => self.run_sync_once(event, key).await,
            (Some(key), false) => {
                let id = new_execution_id();
                let message = async_message(&event, id, Some(key.clone()));
                self.accept_once(&event, message, key).await
            }
            (None, true) => {
                let Event {
                    workflow,
                    context,
                    deadline,
                    redaction,
                    ..
                } = event;
                let id = new_execution_id();
                let run = SyncRun {
                    context,
                    redaction,
                    deadline,
                    idempotency_key: None,
                };
                self.run_sync(&workflow, run, id).await
            }
            (None, false) => {
                let id = new_execution_id();
                let mut message = async_message(&event, id, None);
                // Answered from the real context; queued with it sealed.
                let answer = async_answer(&event.workflow, &message.context, &message.execution_id);
                seal(&event, &mut message)?;
                self.enqueue(&message, None).await?;
                Ok(answer)
            }
        }
    }

    /// Records a delivery whose body does not match `trigger.schema` as an
    /// `invalid` execution (no node runs) and answers as an accepted async
    /// delivery would, so the sender does not retry it: it waits for a replay.
    pub(super) async fn keep(
        &self,
        mut event: Event,
        mismatch: &Mismatch,
    ) -> Result<Response<Bytes>, Refusal> {
        match event.key.take() {
            Some(key) => self.keep_once(event, mismatch, key).await,
            None => {
                self.keep_invalid(event, mismatch, new_execution_id(), None)
                    .await
            }
        }
    }

    /// [`Dispatch::keep`] of one delivery, under execution `id`, with its
    /// idempotency key.
    async fn keep_invalid(
        &self,
        event: Event,
        mismatch: &Mismatch,
        id: String,
        key: Option<String>,
    ) -> Result<Response<Bytes>, Refusal> {
        // A hook that redacts keeps no message that quotes the body: cut short, a
        // quoted value would no longer be found and scrubbed.
        let quiet;
        let mismatch = match &event.redaction {
            Some(redaction) => {
                let mut path = Value::String(mismatch.instance_path.clone());
                redaction.scrub(&mut path);
                quiet = Mismatch {
                    error: format!(
                        "the body does not match trigger.schema at {:?}",
                        mismatch.schema_path
                    ),
                    instance_path: path.as_str().unwrap_or_default().to_string(),
                    schema_path: mismatch.schema_path.clone(),
                };
                &quiet
            }
            None => mismatch,
        };
        let mut record = invalid_record(&event.workflow, &id, event.context, mismatch);
        record.idempotency_key = key;
        if let Some(redaction) = event.redaction {
            record.kept_as = crate::model::KeptAs(Some(redaction));
        }
        match self.store.insert_execution(&record).await {
            Ok(_) => {
                self.telemetry.body_mismatch(&event.workflow.hook_id, true);
                count_recorded(self.telemetry.as_ref(), &record);
            }
            Err(e) => {
                tracing::error!(execution_id = %id, error = %e, "cannot record an invalid delivery");
                return Err(Refusal::NotRecorded);
            }
        }
        Ok(async_answer(&event.workflow, &record.context, &id))
    }

    /// `retry_after`: when a refusal should tell the sender to wait (a keyed
    /// run's claim holds a while).
    async fn enqueue(&self, message: &RunMessage, retry_after: Option<u64>) -> Result<(), Refusal> {
        self.queue.enqueue(message).await.map_err(|e| {
            tracing::error!(execution_id = %message.execution_id, error = %e, "cannot enqueue a run");
            Refusal::NotQueued { retry_after }
        })
    }
}

/// What a sync run starts from.
pub(super) struct SyncRun {
    context: Value,
    redaction: Option<Arc<Redaction>>,
    deadline: Option<Deadline>,
    idempotency_key: Option<String>,
}

/// An async run's message; for a hook that redacts, its context redacted and the
/// real one sealed ([`seal`]).
fn async_message(
    event: &Event,
    execution_id: String,
    idempotency_key: Option<String>,
) -> RunMessage {
    let workflow = &event.workflow;
    let gather = crate::app::gather::ticket(workflow, &event.context);
    RunMessage {
        execution_id,
        workflow_key: workflow.key.clone(),
        workflow_version: workflow.version,
        context: event.context.clone(),
        accepted_at: now_rfc3339(),
        wake: None,
        after: None,
        idempotency_key,
        replay_of: None,
        on_failure_of: None,
        copy_id: None,
        context_at: None,
        flow: match &gather {
            Some(ticket) => Some(crate::app::gather::member_lane(ticket)),
            None => crate::app::lanes::ticket(workflow, &event.context),
        },
        gather,
        sealed: None,
        sent_once: true,
    }
}

/// For a hook that redacts: the message's context redacted, the real one sealed.
fn seal(event: &Event, message: &mut RunMessage) -> Result<(), Refusal> {
    let Some(redaction) = &event.redaction else {
        return Ok(());
    };
    redaction.seal_message(message).map_err(|e| {
        tracing::error!(execution_id = %message.execution_id, error = %e, "cannot seal a run");
        Refusal::NotQueued { retry_after: None }
    })
}

/// An async workflow's configured immediate answer (a sync workflow has none
/// configured: the default).
fn async_answer(
    workflow: &DeployedWorkflow,
    context: &Value,
    execution_id: &str,
) -> Response<Bytes> {
    let configured = workflow
        .definition
        .trigger
        .response
        .clone()
        .unwrap_or_default();
    reply::trigger_response(&configured, context, execution_id)
}
