//! [`Queue`] on SQS. A receipt is SQS's receipt handle; the attempt is SQS's
//! `ApproximateReceiveCount`.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::MessageSystemAttributeName;

use crate::model::RunMessage;
use crate::ports::{Delivery, Queue, QueueError};

/// SQS's longest `DelaySeconds`.
const MAX_DELAY_SECONDS: f64 = 900.0;

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

pub(super) fn backend<E: std::error::Error + Send + Sync + 'static>(e: E) -> QueueError {
    let what = DisplayErrorContext(&e).to_string();
    QueueError::unavailable_by(what, e)
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn enqueue(&self, run: &RunMessage) -> Result<(), QueueError> {
        let body = serde_json::to_string(run)
            .map_err(|e| QueueError::unavailable_by("encoding a run", e))?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map(drop)
            .map_err(backend)
    }

    async fn enqueue_after(&self, run: &RunMessage, delay: Duration) -> Result<(), QueueError> {
        let body = serde_json::to_string(run)
            .map_err(|e| QueueError::unavailable_by("encoding a run", e))?;
        // SQS delays a message 15 minutes at most; the worker enqueues an early
        // wake-up again for the rest (a chain of delayed messages).
        let seconds = delay.as_secs_f64().ceil().min(MAX_DELAY_SECONDS);
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(seconds as i32)
            .send()
            .await
            .map(drop)
            .map_err(backend)
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .wait_time_seconds(i32::try_from(wait.as_secs().min(20)).unwrap_or(20))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(backend)?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                let attempt = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                Some(Delivery {
                    receipt: m.receipt_handle()?.to_string(),
                    body: m.body().unwrap_or_default().to_string(),
                    attempt,
                    waits: 0,
                })
            })
            .collect())
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(&delivery.receipt)
            .send()
            .await
            .map(drop)
            .map_err(backend)
    }

    async fn retry(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(&delivery.receipt)
            // Whole seconds, rounded up: a wait is never cut short.
            .visibility_timeout(delay.as_secs_f64().ceil().min(43_200.0) as i32)
            .send()
            .await
            .map(drop)
            .map_err(backend)
    }
}

/// Creates a queue and returns its URL (for local endpoints and tests; on AWS the SAM
/// template does it).
pub async fn create_queue(client: &Client, name: &str) -> Result<String, QueueError> {
    let out = client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(backend)?;
    out.queue_url
        .ok_or_else(|| QueueError::unavailable("CreateQueue returned no URL"))
}
