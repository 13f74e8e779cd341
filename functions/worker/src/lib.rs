//! The worker Lambda's handler: an SQS batch, run concurrently, with partial batch
//! failures so only the runs that could not be recorded come back.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hookflow::app::worker::{Processed, backoff};
use hookflow::ports::Delivery;
use hookflow::wiring::App;
use lambda_runtime::{Error, LambdaEvent};
use tokio::task::JoinSet;

/// Runs every message of a batch at once. A run already finished is not run again;
/// a poison message is reported in the log and dropped (not retried forever); a run
/// that could not be recorded is returned as a batch item failure for SQS to redeliver
/// (after its last delivery the worker records it as `error`). A run that panicked
/// was recorded as `error` by the worker's guard: it is not a failure of the batch,
/// and the batch's other runs go on untouched. A run returned to the queue is made
/// visible again after a growing wait (`ChangeMessageVisibility`), not after the
/// queue's long visibility timeout, and not at once: an outage of the store spends
/// few receives.
pub async fn handle(app: &App, event: SqsEvent) -> SqsBatchResponse {
    let mut runs = JoinSet::new();
    // Which message each task runs, to name it should its task fail.
    let mut messages = HashMap::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let attempt = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        let delivery = Delivery {
            receipt: record.receipt_handle.clone().unwrap_or_default(),
            body: record.body.clone().unwrap_or_default(),
            attempt,
            waits: 0,
        };
        let (worker, queue) = (Arc::clone(&app.worker), Arc::clone(&app.queue));
        let task = runs.spawn({
            let id = id.clone();
            async move {
                let processed = worker.process(&delivery.body, delivery.attempt).await;
                if let Processed::Retry(_) | Processed::Unavailable(_) = &processed
                    && let Err(e) = queue.retry(&delivery, backoff(delivery.tries())).await
                {
                    // It comes back after the queue's visibility timeout instead.
                    tracing::warn!(message_id = %id, error = %e, "cannot shorten the wait of a returned run");
                }
                (id, processed)
            }
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
            Ok((id, Processed::Retry(reason) | Processed::Unavailable(reason))) => {
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
    let app = Arc::new(app);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<SqsEvent>| {
            let app = Arc::clone(&app);
            async move { Ok::<_, Error>(handle(&app, event.payload).await) }
        },
    ))
    .await
}
