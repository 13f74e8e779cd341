//! The worker Lambda's handler: an SQS batch, run concurrently, with partial batch
//! failures so only the runs that could not be recorded come back.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use std::time::Duration;

use hookflow::app::worker::{Processed, Worker};
use hookflow::ports::{Delivery, Queue};
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
///
/// Records from the FIFO lane queue (`options.lane`) run one after another per
/// message group, in order: SQS hands a group out in order and holds its next
/// messages until these are settled. After one of a group is returned, the
/// group's later records are returned with it, unrun, at the same wait: they
/// must not start before it.
pub async fn handle(app: &App, event: SqsEvent) -> SqsBatchResponse {
    let mut runs = JoinSet::new();
    // Which messages each task runs, to name them should its task fail.
    let mut messages = HashMap::new();
    let mut lanes: Vec<(String, Vec<(String, Delivery)>)> = Vec::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let group = record.attributes.get("MessageGroupId").cloned();
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
            ordered: group.is_some(),
        };
        match group {
            Some(group) => match lanes.iter_mut().find(|(g, _)| *g == group) {
                Some((_, lane)) => lane.push((id, delivery)),
                None => lanes.push((group, vec![(id, delivery)])),
            },
            None => {
                let (worker, queue) = (Arc::clone(&app.worker), Arc::clone(&app.queue));
                let task = runs.spawn({
                    let id = id.clone();
                    async move {
                        let processed = run_one(&worker, queue.as_ref(), &id, &delivery).await;
                        vec![(id, processed)]
                    }
                });
                messages.insert(task.id(), vec![id]);
            }
        }
    }
    for (_, lane) in lanes {
        let ids = lane.iter().map(|(id, _)| id.clone()).collect();
        let (worker, queue) = (Arc::clone(&app.worker), Arc::clone(&app.queue));
        let task = runs.spawn(async move { run_lane(&worker, queue.as_ref(), lane).await });
        messages.insert(task.id(), ids);
    }
    let mut response = SqsBatchResponse::default();
    while let Some(done) = runs.join_next().await {
        match done {
            Ok(settled) => {
                for (id, processed) in settled {
                    match processed {
                        Processed::Done => {}
                        Processed::Poison(reason) => {
                            tracing::error!(message_id = %id, reason, "dropping a message that is not a run");
                        }
                        Processed::Retry(reason)
                        | Processed::Unavailable(reason)
                        | Processed::Later(reason, _) => {
                            tracing::warn!(message_id = %id, reason, "run returned to the queue");
                            response.add_failure(id);
                        }
                    }
                }
            }
            // `Worker::process` catches its own panics; a task can fail only if that
            // guard itself failed. Redelivering would only repeat it, so it is logged.
            Err(e) => {
                let ids = messages.remove(&e.id()).unwrap_or_default();
                tracing::error!(message_ids = ?ids, error = %e, "a run's task failed outside its guard");
            }
        }
    }
    response
}

/// Runs one delivery; one that comes back is made visible again after a growing
/// wait.
async fn run_one(worker: &Worker, queue: &dyn Queue, id: &str, delivery: &Delivery) -> Processed {
    let processed = worker.process_delivery(delivery).await;
    if let Some(wait) = processed.returned_after(delivery) {
        shorten_wait(queue, id, delivery, wait).await;
    }
    processed
}

/// A lane's records in order; once one comes back, the rest come back with it,
/// unrun, visible at once: SQS holds a FIFO group's messages while an earlier
/// one is in flight, so they follow the one that waits, in their order.
async fn run_lane(
    worker: &Worker,
    queue: &dyn Queue,
    lane: Vec<(String, Delivery)>,
) -> Vec<(String, Processed)> {
    let mut settled = Vec::with_capacity(lane.len());
    let mut returned = false;
    for (id, delivery) in lane {
        let processed = if returned {
            shorten_wait(queue, &id, &delivery, Duration::ZERO).await;
            Processed::Unavailable("waits behind an earlier run of its lane".into())
        } else {
            let processed = run_one(worker, queue, &id, &delivery).await;
            returned = processed.returned_after(&delivery).is_some();
            processed
        };
        settled.push((id, processed));
    }
    settled
}

async fn shorten_wait(queue: &dyn Queue, id: &str, delivery: &Delivery, wait: Duration) {
    if let Err(e) = queue.retry(delivery, wait).await {
        // It comes back after the queue's visibility timeout instead.
        tracing::warn!(message_id = %id, error = %e, "cannot shorten the wait of a returned run");
    }
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
