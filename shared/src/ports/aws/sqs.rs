//! [`Queue`] on SQS. A receipt is SQS's receipt handle; the attempt is SQS's
//! `ApproximateReceiveCount`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::errors::queue_backend as backend;
use super::objects::{self, Objects};
use crate::aws::SignedClient;
use crate::model::RunMessage;
use crate::ports::{Delivery, Queue, QueueError};

/// SQS's longest `DelaySeconds`.
const MAX_DELAY_SECONDS: f64 = 900.0;

/// The largest message an SQS queue takes by default (256 KiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 << 10;

#[derive(Clone)]
pub struct SqsQueue {
    client: Arc<SignedClient>,
    url: String,
    /// Where the context of a run too large for a message goes.
    objects: Option<Objects>,
    /// The largest message body sent as it is (the queue's `MaximumMessageSize`).
    max_message_bytes: usize,
    /// The FIFO queue of runs on a lane: a message group per lane, which SQS
    /// hands out one message at a time, in the order they were sent.
    lane_url: Option<String>,
    /// The places of runs in flight under `options.concurrency`.
    places: Option<super::Places>,
}

impl SqsQueue {
    pub fn new(client: Arc<SignedClient>, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
            objects: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            lane_url: None,
            places: None,
        }
    }

    /// Bounds the runs in flight of a workflow with `options.concurrency` by
    /// places on the table.
    pub fn with_places(mut self, places: super::Places) -> Self {
        self.places = Some(places);
        self
    }

    /// Sends runs on a lane to the FIFO queue at `url`.
    pub fn with_lanes(mut self, url: Option<String>) -> Self {
        self.lane_url = url;
        self
    }

    /// The queue a run goes to and, on a lane, its group: a lane's runs go to
    /// the FIFO queue, grouped by lane, deduplicated by their queue id (a copy
    /// sent twice within five minutes is kept once).
    fn destination(&self, run: &RunMessage) -> Result<(&str, Option<Value>), QueueError> {
        // A lane of one at a time is a FIFO group; a lane of more takes places
        // like `options.concurrency` (FIFO hands a group out one batch at a time).
        let Some(lane) = run
            .flow
            .as_ref()
            .filter(|f| f.lane_concurrency <= 1)
            .and_then(|f| f.lane.as_deref())
        else {
            return Ok((&self.url, None));
        };
        let Some(url) = &self.lane_url else {
            return Err(QueueError::unavailable(
                "a run on a lane (options.lane) needs the FIFO lane queue: set HOOKFLOW_LANE_QUEUE_URL",
            ));
        };
        let group = json!({"MessageGroupId": lane, "MessageDeduplicationId": run.new_queue_id()});
        Ok((url, Some(group)))
    }

    /// Sends a run whose message would be larger than `max_message_bytes` with its
    /// context in `objects`, and the message pointing to it.
    pub fn with_objects(mut self, objects: Objects, max_message_bytes: usize) -> Self {
        self.objects = Some(objects);
        self.max_message_bytes = max_message_bytes;
        self
    }

    /// A run's message body: the run as JSON, or, too large for the queue, with its
    /// context in the claim-check bucket (one `PutObject`).
    async fn body(&self, run: &RunMessage) -> Result<String, QueueError> {
        let encode = |run: &RunMessage| {
            serde_json::to_string(run).map_err(|e| QueueError::unavailable_by("encoding a run", e))
        };
        let body = encode(run)?;
        // SQS counts a message's bytes as UTF-8 text.
        let (Some(objects), true) = (&self.objects, body.len() > self.max_message_bytes) else {
            return Ok(body);
        };
        let key = objects::message_key(&run.execution_id);
        // The context, and the sealed one of a run that redacts: the large parts.
        let parts = json!({"context": run.context, "sealed": run.sealed});
        objects
            .put(&key, parts.to_string())
            .await
            .map_err(|e| QueueError::unavailable_by("keeping a large run's context", e))?;
        encode(&RunMessage {
            context: Value::Null,
            sealed: None,
            context_at: Some(key),
            ..run.clone()
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn call(&self, operation: &str, mut input: Value) -> Result<Value, QueueError> {
        input["QueueUrl"] = json!(self.url);
        self.client.sqs(operation, &input).await.map_err(backend)
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn enqueue(&self, run: &RunMessage) -> Result<(), QueueError> {
        let (url, group) = self.destination(run)?;
        let body = self.body(run).await?;
        let mut input = json!({"MessageBody": body, "QueueUrl": url});
        if let Some(Value::Object(group)) = group {
            input.as_object_mut().expect("an object").extend(group);
        }
        self.client
            .sqs("SendMessage", &input)
            .await
            .map_err(backend)
            .map(drop)
    }

    async fn enqueue_after(&self, run: &RunMessage, delay: Duration) -> Result<(), QueueError> {
        // A FIFO queue delays no single message: a lane's run is sent now (only
        // wake-ups wait, and they are on no lane).
        if self.destination(run)?.1.is_some() {
            return self.enqueue(run).await;
        }
        let body = self.body(run).await?;
        // SQS delays a message 15 minutes at most; the worker enqueues an early
        // wake-up again for the rest (a chain of delayed messages).
        let seconds = delay.as_secs_f64().ceil().min(MAX_DELAY_SECONDS) as u32;
        let input = json!({"MessageBody": body, "DelaySeconds": seconds});
        self.call("SendMessage", input).await.map(drop)
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let input = json!({
            "MaxNumberOfMessages": max.clamp(1, 10),
            "WaitTimeSeconds": wait.as_secs().min(20),
            "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
        });
        let out = self.call("ReceiveMessage", input).await?;
        Ok(messages(&out)
            .filter_map(|m| {
                let attempt = attribute(m, "ApproximateReceiveCount")
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(1);
                Some(Delivery {
                    receipt: m.get("ReceiptHandle")?.as_str()?.to_string(),
                    body: text(m, "Body").to_string(),
                    attempt,
                    waits: 0,
                    ordered: false,
                })
            })
            .collect())
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let input = json!({"ReceiptHandle": delivery.receipt});
        self.call("DeleteMessage", input).await.map(drop)
    }

    async fn retry(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        let url = match (&self.lane_url, delivery.ordered) {
            (Some(lanes), true) => lanes,
            _ => &self.url,
        };
        let input = json!({
            "QueueUrl": url,
            "ReceiptHandle": delivery.receipt,
            // Whole seconds, rounded up: a wait is never cut short.
            "VisibilityTimeout": delay.as_secs_f64().ceil().min(43_200.0) as u32,
        });
        self.client
            .sqs("ChangeMessageVisibility", &input)
            .await
            .map_err(backend)
            .map(drop)
    }

    async fn open(&self, run: &mut RunMessage) -> Result<bool, QueueError> {
        let Some(key) = run.context_at.clone() else {
            return Ok(true);
        };
        let Some(objects) = &self.objects else {
            return Err(QueueError::unavailable(format!(
                "the run's context is at {key}, and no claim-check bucket is configured (HOOKFLOW_BUCKET)"
            )));
        };
        let text = objects
            .get(&key)
            .await
            .map_err(|e| QueueError::unavailable_by("reading a large run's context", e))?;
        let Some(text) = text else {
            return Ok(false);
        };
        let mut parts: Value = serde_json::from_str(&text)
            .map_err(|e| QueueError::unavailable_by(format!("the context at {key}"), e))?;
        run.context = parts["context"].take();
        run.sealed = parts["sealed"].as_str().map(str::to_string);
        Ok(true)
    }

    async fn take_place(&self, run: &RunMessage) -> Result<bool, QueueError> {
        let Some(places) = &self.places else {
            return Ok(true);
        };
        for (gate, limit) in gates(run) {
            let taken = places
                .take(&gate, &run.execution_id, limit)
                .await
                .map_err(|e| {
                    QueueError::unavailable_by("taking a place of a lane or workflow", e)
                })?;
            if !taken {
                // The lane's place is given back while the workflow's are held.
                self.free_place(run).await;
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn free_place(&self, run: &RunMessage) {
        let Some(places) = &self.places else {
            return;
        };
        for (gate, _) in gates(run) {
            if let Err(e) = places.free(&gate, &run.execution_id).await {
                tracing::warn!(execution_id = %run.execution_id, error = %e, "a place of a lane or workflow lapses instead of being freed");
            }
        }
    }

    async fn close(&self, run: &RunMessage) {
        if let Some(objects) = &self.objects
            && run.context_at.is_some()
        {
            objects
                .discard(&objects::message_key(&run.execution_id))
                .await;
        }
    }
}

/// What bounds a run on SQS with places: a lane of more than one at a time
/// (`lane#<id>`), and its workflow's `options.concurrency` (the workflow key).
fn gates(run: &RunMessage) -> Vec<(String, u32)> {
    let Some(flow) = &run.flow else {
        return Vec::new();
    };
    let mut gates = Vec::new();
    if let Some(lane) = flow.lane.as_deref().filter(|_| flow.lane_concurrency > 1) {
        gates.push((format!("lane#{lane}"), flow.lane_concurrency));
    }
    if let Some(limit) = flow.concurrency {
        gates.push((run.workflow_key.clone(), limit));
    }
    gates
}

/// The messages of a `ReceiveMessage` reply.
pub(super) fn messages(reply: &Value) -> impl Iterator<Item = &Value> {
    reply
        .get("Messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// A message's field as text, empty when it has none.
pub(super) fn text<'a>(message: &'a Value, field: &str) -> &'a str {
    message
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A numeric system attribute of a message (`SentTimestamp`, ...).
pub(super) fn attribute(message: &Value, name: &str) -> Option<u64> {
    message.get("Attributes")?.get(name)?.as_str()?.parse().ok()
}

/// Creates the FIFO queue of ordered lanes (`name` ends in `.fifo`) and returns
/// its URL (for local endpoints and tests; on AWS the SAM template does it).
pub async fn create_lane_queue(client: &SignedClient, name: &str) -> Result<String, QueueError> {
    let input = json!({"QueueName": name, "Attributes": {
        "FifoQueue": "true",
        "DeduplicationScope": "messageGroup",
        "FifoThroughputLimit": "perMessageGroupId",
    }});
    let out = client.sqs("CreateQueue", &input).await.map_err(backend)?;
    out.get("QueueUrl")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| QueueError::unavailable("CreateQueue returned no URL"))
}

/// Creates a queue and returns its URL (for local endpoints and tests; on AWS the SAM
/// template does it).
pub async fn create_queue(client: &SignedClient, name: &str) -> Result<String, QueueError> {
    let out = client
        .sqs("CreateQueue", &json!({"QueueName": name}))
        .await
        .map_err(backend)?;
    out.get("QueueUrl")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| QueueError::unavailable("CreateQueue returned no URL"))
}
