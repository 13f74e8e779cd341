//! `s3`: puts or gets one object: the raw payload archived, a file fetched.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AwsClients, Text, failure, finish, required};
use crate::engine::{Checker, NodeStop, NodeType, RunContext, config};
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
struct S3Config {
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

#[async_trait]
impl NodeType for S3 {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn config_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<S3Config>()
    }

    fn validate(&self, config: &Value, at: &str, check: &mut Checker) {
        let Some(c) = config::read::<S3Config>(config, at, check) else {
            return;
        };
        required(&c.bucket, "bucket", at, "the bucket's name", check);
        required(&c.key, "key", at, "the object's key", check);
    }

    async fn run(&self, node: &NodeDefinition, cx: &mut RunContext<'_>) -> Result<Value, NodeStop> {
        let c: S3Config = config::parse(&cx.render(&node.config))?;
        let outcome = match c.operation {
            Operation::Put => self.put(&c).await,
            Operation::Get => self.get(&c).await,
        };
        finish(outcome, c.ignore_fail)
    }
}

impl S3 {
    async fn client(&self) -> Result<aws_sdk_s3::Client, Value> {
        self.clients
            .client(&self.clients.s3, |config| {
                // A custom endpoint (moto, LocalStack, MinIO) serves buckets by path.
                let path_style = std::env::var_os("AWS_ENDPOINT_URL").is_some()
                    || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
                aws_sdk_s3::Client::from_conf(
                    aws_sdk_s3::config::Builder::from(config)
                        .force_path_style(path_style)
                        .build(),
                )
            })
            .await
    }

    async fn put(&self, c: &S3Config) -> Result<Value, Value> {
        let client = self.client().await?;
        let (body, default_type) = match &c.body {
            Value::String(s) => (s.clone().into_bytes(), "text/plain; charset=utf-8"),
            other => (other.to_string().into_bytes(), "application/json"),
        };
        let content_type = c.content_type.as_ref().map_or(default_type, |t| t.as_str());
        let resource = format!("s3://{}/{}", c.bucket.as_str(), c.key.as_str());
        let out = client
            .put_object()
            .bucket(c.bucket.as_str())
            .key(c.key.as_str())
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| failure("PutObject", &resource, &e))?;
        Ok(json!({ "etag": out.e_tag() }))
    }

    async fn get(&self, c: &S3Config) -> Result<Value, Value> {
        let client = self.client().await?;
        let resource = format!("s3://{}/{}", c.bucket.as_str(), c.key.as_str());
        let out = client
            .get_object()
            .bucket(c.bucket.as_str())
            .key(c.key.as_str())
            .send()
            .await
            .map_err(|e| failure("GetObject", &resource, &e))?;
        let too_large = |length: String| {
            json!({
                "message": format!(
                    "GetObject {resource}: {length} bytes is more than a result may hold ({} bytes)",
                    self.max_result_bytes
                ),
                "code": "TooLarge"
            })
        };
        let declared = out.content_length().unwrap_or(0);
        if usize::try_from(declared).map_or(true, |n| n > self.max_result_bytes) {
            return Err(too_large(declared.to_string()));
        }
        let content_type = out.content_type().map(str::to_string);
        // Read no more than a result may hold, whatever the length said (or if
        // it said nothing).
        let mut body = out.body;
        let mut bytes = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
        while let Some(chunk) = body.try_next().await.map_err(
            |e| json!({"message": format!("GetObject {resource}: {e}"), "code": "ReadError"}),
        )? {
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
