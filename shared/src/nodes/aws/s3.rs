//! `s3`: puts or gets one object: the raw payload archived, a file fetched.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use http::Method;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AwsClients, Text, call_failure, finish, required};
use crate::aws::{CallError, Reply, Service, SigningStyle, s3_object_url};
use crate::engine::{Checker, Node, NodeStop, RunContext, config};
use crate::model::NodeDefinition;

pub struct S3 {
    pub clients: Arc<AwsClients>,
    /// The largest object `get` reads into a result.
    pub max_result_bytes: usize,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Operation {
    Put,
    Get,
}

/// `operation` (`put` or `get`), `bucket`, `key`; for `put`, `body` (a string as
/// it is, anything else as JSON) and `contentType` (default `application/json`
/// for JSON, `text/plain; charset=utf-8` for a string); `ignoreFail`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Config {
    operation: Operation,
    #[serde(default)]
    bucket: Text,
    #[serde(default)]
    key: Text,
    #[serde(default)]
    body: Value,
    #[serde(default)]
    content_type: Option<Text>,
    #[serde(default)]
    ignore_fail: bool,
}

impl S3Config {
    /// The object, as failures name it.
    fn resource(&self) -> String {
        format!("s3://{}/{}", self.bucket.as_str(), self.key.as_str())
    }
}

#[async_trait]
impl Node for S3 {
    type Config = S3Config;

    fn name(&self) -> &'static str {
        "s3"
    }

    fn check(&self, c: &S3Config, at: &str, check: &mut Checker) {
        required(&c.bucket, "bucket", at, "the bucket's name", check);
        required(&c.key, "key", at, "the object's key", check);
    }

    /// Every string may be templated: the config as written is rendered, then
    /// read, each run.
    async fn run(
        &self,
        _: &S3Config,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let c: S3Config = config::parse(&cx.render(&node.config))?;
        let outcome = match c.operation {
            Operation::Put => self.put(&c).await,
            Operation::Get => self.get(&c).await,
        };
        finish(outcome, c.ignore_fail)
    }
}

impl S3 {
    /// One signed request for an object (see the workspace's Cargo.toml for why
    /// S3 is called without its SDK crate).
    async fn call(
        &self,
        action: &str,
        c: &S3Config,
        request: http::request::Builder,
        body: Bytes,
    ) -> Result<Reply, Value> {
        let fail = |e: CallError| call_failure(action, &c.resource(), &e);
        let client = self.clients.signed().await?;
        let url =
            s3_object_url(client.config(), c.bucket.as_str(), c.key.as_str()).map_err(fail)?;
        let request = request
            .uri(url)
            .body(body)
            .map_err(|e| fail(CallError::new("InvalidParameter", e.to_string())))?;
        client
            .send(Service::S3, SigningStyle::S3, request)
            .await
            .map_err(fail)
    }

    async fn put(&self, c: &S3Config) -> Result<Value, Value> {
        let (body, default_type) = match &c.body {
            Value::String(s) => (s.clone().into_bytes(), "text/plain; charset=utf-8"),
            other => (other.to_string().into_bytes(), "application/json"),
        };
        let content_type = c.content_type.as_ref().map_or(default_type, |t| t.as_str());
        let request = http::Request::builder()
            .method(Method::PUT)
            .header("content-type", content_type);
        let reply = self
            .call("PutObject", c, request, Bytes::from(body))
            .await?;
        Ok(json!({ "etag": reply.header("etag") }))
    }

    async fn get(&self, c: &S3Config) -> Result<Value, Value> {
        let resource = c.resource();
        let request = http::Request::builder().method(Method::GET);
        let mut reply = self.call("GetObject", c, request, Bytes::new()).await?;
        let too_large = |length: String| {
            json!({
                "message": format!(
                    "GetObject {resource}: {length} bytes is more than a result may hold ({} bytes)",
                    self.max_result_bytes
                ),
                "code": "TooLarge"
            })
        };
        let declared = reply.content_length().unwrap_or(0);
        if usize::try_from(declared).map_or(true, |n| n > self.max_result_bytes) {
            return Err(too_large(declared.to_string()));
        }
        let content_type = reply.header("content-type").map(str::to_string);
        // Read no more than a result may hold, whatever the length said (or if
        // it said nothing).
        let mut bytes = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
        while let Some(chunk) = reply
            .chunk()
            .await
            .map_err(|e| call_failure("GetObject", &resource, &e))?
        {
            if bytes.len() + chunk.len() > self.max_result_bytes {
                return Err(too_large(format!("more than {}", self.max_result_bytes)));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(match String::from_utf8(bytes) {
            Ok(text) => json!({ "body": text, "contentType": content_type }),
            Err(e) => json!({
                "body": base64::engine::general_purpose::STANDARD.encode(e.as_bytes()),
                "encoding": "base64",
                "contentType": content_type,
            }),
        })
    }
}
