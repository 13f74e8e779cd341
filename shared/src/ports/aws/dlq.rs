//! The run queue's dead-letter queue: what is there, and moving it back.
//!
//! A message reaches it after the run queue's `maxReceiveCount` deliveries that
//! were never acknowledged (a worker that crashed, or a store down for hours).
//! Moving one back sends it to the run queue first and deletes it from the
//! dead-letter queue only once that send succeeded: a stop in between leaves it in
//! both, and the run's fixed execution id makes the second delivery a no-op.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::errors::queue_backend as backend;
use super::sqs::{attribute, messages, text};
use crate::aws::SignedClient;
use crate::model::RunMessage;
use crate::ports::QueueError;

/// One message in the dead-letter queue, as far as it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadRun {
    pub message_id: String,
    /// From the run message; `None` for a body that is not one.
    pub workflow_key: Option<String>,
    pub execution_id: Option<String>,
    /// Set when the message is the wake-up of a paused execution.
    pub wake: bool,
    pub receive_count: u32,
    /// Since the message was first sent (to the run queue).
    pub age: Duration,
}

/// A message of a `ReceiveMessage` reply (JSON).
type Message = Value;

fn describe(message: &Message) -> DeadRun {
    let run: Option<RunMessage> = serde_json::from_str(text(message, "Body")).ok();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let sent = attribute(message, "SentTimestamp")
        .map(Duration::from_millis)
        .unwrap_or(now);
    DeadRun {
        message_id: text(message, "MessageId").to_string(),
        workflow_key: run
            .as_ref()
            .map(|r| r.workflow_key.clone())
            .filter(|k| !k.is_empty()),
        execution_id: run.as_ref().map(|r| r.execution_id.clone()),
        wake: run.as_ref().is_some_and(|r| r.wake.is_some()),
        receive_count: attribute(message, "ApproximateReceiveCount")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        age: now.saturating_sub(sent),
    }
}

/// Up to `count` (at most 10) messages, hidden for `visibility` seconds.
async fn receive(
    client: &SignedClient,
    url: &str,
    visibility: u32,
    count: usize,
) -> Result<Vec<Message>, QueueError> {
    let input = json!({
        "QueueUrl": url,
        "MaxNumberOfMessages": count.clamp(1, 10),
        "VisibilityTimeout": visibility,
        "WaitTimeSeconds": 1,
        "MessageSystemAttributeNames": ["All"],
    });
    let out = client
        .sqs("ReceiveMessage", &input)
        .await
        .map_err(backend)?;
    Ok(messages(&out).cloned().collect())
}

/// Up to `max` messages of the dead-letter queue, left there: each is received
/// with a visibility timeout of 0, so it stays visible (its receive count grows).
pub async fn list(
    client: &SignedClient,
    url: &str,
    max: usize,
) -> Result<Vec<DeadRun>, QueueError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    // SQS samples its servers: a few empty or repeated answers do not mean the
    // end of the queue.
    let mut idle = 0;
    while out.len() < max && idle < 3 {
        let batch = receive(client, url, 0, 10).await?;
        let before = out.len();
        for message in &batch {
            if seen.insert(text(message, "MessageId").to_string()) && out.len() < max {
                out.push(describe(message));
            }
        }
        idle = if out.len() == before { idle + 1 } else { 0 };
    }
    Ok(out)
}

/// What a redrive did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Redriven {
    pub moved: usize,
    /// Messages whose send failed: left in the dead-letter queue.
    pub failed: usize,
}

/// Moves up to `max` messages from the dead-letter queue to the run queue, each
/// deleted only after it was sent.
pub async fn redrive(
    client: &SignedClient,
    dlq_url: &str,
    queue_url: &str,
    max: usize,
) -> Result<Redriven, QueueError> {
    let mut done = Redriven::default();
    let mut idle = 0;
    while done.moved + done.failed < max && idle < 3 {
        // Hidden for a minute while it is moved; one whose send fails shows again.
        // Only as many as are still to move: a message received and not moved
        // would stay hidden for that minute.
        let batch = receive(client, dlq_url, 60, max - done.moved - done.failed).await?;
        if batch.is_empty() {
            idle += 1;
            continue;
        }
        idle = 0;
        let (sent, failed) = send_all(client, queue_url, &batch).await?;
        done.failed += failed;
        let deletes: Vec<Value> = sent
            .iter()
            .filter_map(|&i| batch.get(i))
            .enumerate()
            .map(|(i, m)| json!({"Id": i.to_string(), "ReceiptHandle": text(m, "ReceiptHandle")}))
            .collect();
        if deletes.is_empty() {
            continue;
        }
        let count = deletes.len();
        let input = json!({"QueueUrl": dlq_url, "Entries": deletes});
        let deleted = client
            .sqs("DeleteMessageBatch", &input)
            .await
            .map_err(backend)?;
        let not_deleted = failures(&deleted);
        // Sent but not deleted: it comes back in a minute and is sent again,
        // which the run's fixed execution id makes harmless.
        done.moved += count - not_deleted;
        done.failed += not_deleted;
    }
    Ok(done)
}

/// What one `SendMessageBatch` may carry in all (SQS's payload limit, 256 KiB).
const BATCH_BYTES: usize = 256 * 1024;

/// Sends every message's body to the run queue: in batches within SQS's payload
/// limit, a message too large to share one alone. The indexes of those sent, and
/// how many were not.
async fn send_all(
    client: &SignedClient,
    queue_url: &str,
    messages: &[Message],
) -> Result<(Vec<usize>, usize), QueueError> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for (i, m) in messages.iter().enumerate() {
        let size = text(m, "Body").len();
        match groups.last_mut() {
            Some(group) if bytes + size <= BATCH_BYTES => group.push(i),
            _ => {
                groups.push(vec![i]);
                bytes = 0;
            }
        }
        bytes += size;
    }
    let (mut sent, mut failed) = (Vec::new(), 0);
    for group in groups {
        let entries: Vec<Value> = group
            .iter()
            .map(|&i| json!({"Id": i.to_string(), "MessageBody": text(&messages[i], "Body")}))
            .collect();
        let input = json!({"QueueUrl": queue_url, "Entries": entries});
        match client.sqs("SendMessageBatch", &input).await {
            Ok(out) => {
                failed += failures(&out);
                let successful = out.get("Successful").and_then(Value::as_array);
                sent.extend(
                    successful
                        .into_iter()
                        .flatten()
                        .filter_map(|ok| ok.get("Id")?.as_str()?.parse::<usize>().ok()),
                );
            }
            // The whole batch refused (too large for this queue, say): each alone.
            Err(e) if group.len() > 1 => {
                tracing::warn!(error = %e.describe(), "a batch was refused; sending its messages one by one");
                for i in group {
                    let one =
                        json!({"QueueUrl": queue_url, "MessageBody": text(&messages[i], "Body")});
                    match client.sqs("SendMessage", &one).await {
                        Ok(_) => sent.push(i),
                        Err(_) => failed += 1,
                    }
                }
            }
            Err(_) => failed += group.len(),
        }
    }
    Ok((sent, failed))
}

/// How many entries a batch call's reply lists as failed.
fn failures(reply: &Value) -> usize {
    reply
        .get("Failed")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}
