//! The worker Lambda's handler: an SQS batch, run concurrently, with partial batch
//! failures so only the runs that could not be recorded come back.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hookflow::app::worker::{Processed, Worker};
use hookflow::wiring::App;
use lambda_runtime::{Error, LambdaEvent};
use tokio::task::JoinSet;

/// Runs every message of a batch at once. A run already finished is not run again;
/// a poison message is reported in the log and dropped (not retried forever); a run
/// that could not be recorded is returned as a batch item failure for SQS to redeliver
/// (after its last delivery the worker records it as `error`). A run that panicked
/// was recorded as `error` by the worker's guard: it is not a failure of the batch,
/// and the batch's other runs go on untouched.
pub async fn handle(worker: Arc<Worker>, event: SqsEvent) -> SqsBatchResponse {
    let mut runs = JoinSet::new();
    // Which message each task runs, to name it should its task fail.
    let mut messages = HashMap::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let body = record.body.clone().unwrap_or_default();
        let attempt = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        let worker = Arc::clone(&worker);
        let task = runs.spawn({
            let id = id.clone();
            async move { (id, worker.process(&body, attempt).await) }
        });
        messages.insert(task.id(), id);
    }
    let mut response = SqsBatchResponse::default();
    while let Some(done) = runs.join_next().await {
        match done {
            Ok((_, Processed::Done)) => {}
            Ok((id, Processed::Poison(reason))) => {
                tracing::error!(message_id = %id, reason, "dropping a message that is not a run");
            }
            Ok((id, Processed::Retry(reason))) => {
                tracing::warn!(message_id = %id, reason, "run returned to the queue");
                response.add_failure(id);
            }
            // `Worker::process` catches its own panics; a task can fail only if that
            // guard itself failed. Redelivering would only repeat it, so it is logged.
            Err(e) => {
                let id = messages.remove(&e.id()).unwrap_or_default();
                tracing::error!(message_id = %id, error = %e, "a run's task failed outside its guard");
            }
        }
    }
    response
}

pub async fn run(app: App) -> Result<(), Error> {
    let worker = Arc::clone(&app.worker);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<SqsEvent>| {
            let worker = Arc::clone(&worker);
            async move { Ok::<_, Error>(handle(worker, event.payload).await) }
        },
    ))
    .await
}
