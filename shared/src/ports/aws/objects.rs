//! The claim-check bucket: what is too large for a DynamoDB item (400 KB) or an SQS
//! message goes to S3, and the item or the message carries the object's key.
//!
//! Keys, by what a lifecycle rule does with them (see `template.yaml`):
//! - `records/<execution id>/<uuid>.json`: an execution record, expired with the
//!   executions' retention (`RetentionDays`), as DynamoDB's TTL expires the item.
//! - `paused/<execution id>/<uuid>.json`: a paused run's record, never expired (a
//!   wait may outlast the retention); the write that ends the pause deletes it.
//! - `messages/<execution id>.json`: a queued run's context (and, for a run that
//!   redacts, its sealed real one: `{"context", "sealed"}`), expired after 15 days
//!   (longer than any queue keeps a message); the worker deletes it once the run
//!   is recorded.
//!
//! A record's object is written under a new key each time, before the item that
//! points to it, so a conditional write that loses leaves the winner's object alone.

use std::sync::Arc;

use bytes::Bytes;
use http::Method;

use crate::aws::{CallError, Service, SignedClient, SigningStyle, s3_bucket_url, s3_object_url};
use crate::ports::StoreError;

/// The most of an object read back: a record holds a body of up to 6 MB, JSON
/// escaped, with what its nodes made of it (bounded by the engine's kept bytes).
const MAX_OBJECT_BYTES: usize = 96 << 20;

/// One bucket's objects, through the client the store and the queue call with.
#[derive(Clone)]
pub struct Objects {
    client: Arc<SignedClient>,
    bucket: String,
}

/// Where an execution's record goes when its item cannot hold it.
pub fn record_key(execution_id: &str, paused: bool) -> String {
    let prefix = if paused { "paused" } else { "records" };
    format!("{prefix}/{execution_id}/{}.json", uuid::Uuid::now_v7())
}

/// Where a queued run's context goes when its message cannot hold it.
pub fn message_key(execution_id: &str) -> String {
    format!("messages/{execution_id}.json")
}

impl Objects {
    pub fn new(client: Arc<SignedClient>, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn send(
        &self,
        method: Method,
        key: &str,
        body: Bytes,
    ) -> Result<crate::aws::Reply, CallError> {
        let url = s3_object_url(self.client.config(), &self.bucket, key)?;
        let request = http::Request::builder()
            .method(method)
            .uri(url)
            .header("content-type", "application/json")
            .body(body)
            .map_err(|e| CallError::new("ClientError", e.to_string()))?;
        self.client
            .send(Service::S3, SigningStyle::S3, request)
            .await
    }

    /// Writes `text` at `key` (one `PutObject`).
    pub async fn put(&self, key: &str, text: String) -> Result<(), StoreError> {
        self.send(Method::PUT, key, Bytes::from(text))
            .await
            .map(drop)
            .map_err(|e| failed("PutObject", key, e))
    }

    /// The text at `key` (one `GetObject`); `None` when there is no such object.
    pub async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let reply = match self.send(Method::GET, key, Bytes::new()).await {
            Ok(reply) => reply,
            Err(e) if e.code == "NoSuchKey" || e.code == "404" => return Ok(None),
            Err(e) => return Err(failed("GetObject", key, e)),
        };
        let bytes = reply
            .bytes(MAX_OBJECT_BYTES)
            .await
            .map_err(|e| failed("GetObject", key, e))?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|e| StoreError::unreadable(format!("object {key}"), e))
    }

    /// Deletes the object at `key` (one `DeleteObject`; none there is no error).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.send(Method::DELETE, key, Bytes::new())
            .await
            .map(drop)
            .map_err(|e| failed("DeleteObject", key, e))
    }

    /// [`Self::delete`], for objects no longer pointed to: a failure is logged,
    /// and the bucket's lifecycle (or a prune) removes the object later.
    pub async fn discard(&self, key: &str) {
        if let Err(e) = self.delete(key).await {
            tracing::warn!(key, error = %e, "an object no longer used was not deleted");
        }
    }
}

fn failed(action: &str, key: &str, e: CallError) -> StoreError {
    super::errors::backend(CallError::new(
        &e.code.clone(),
        format!("{action} {key}: {}", e.describe()),
    ))
}

/// Creates a bucket (for local endpoints and tests; on AWS the SAM template does).
pub async fn create_bucket(client: &SignedClient, bucket: &str) -> Result<(), StoreError> {
    let url = s3_bucket_url(client.config(), bucket)
        .map_err(|e| StoreError::unavailable(e.describe()))?;
    let request = http::Request::builder()
        .method(Method::PUT)
        .uri(format!("{url}/"))
        .body(Bytes::new())
        .map_err(|e| StoreError::unavailable(e.to_string()))?;
    match client.send(Service::S3, SigningStyle::S3, request).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == "BucketAlreadyOwnedByYou" => Ok(()),
        Err(e) => Err(failed("CreateBucket", bucket, e)),
    }
}
