//! Nodes that hand a run's data on to AWS: an event on an EventBridge bus, a
//! message on SQS or SNS, an item in DynamoDB, an object in S3, an email through
//! SES, another Lambda. One module per type; what they share lives here.
//!
//! Clients are made once per process and lazily per service (a deployment that
//! never sends email never builds an SES client), from the standard AWS
//! environment: region, credentials and `AWS_ENDPOINT_URL` (moto, LocalStack), so
//! `hookflow serve` and the Lambdas run the same nodes. Every AWS error fails the
//! node with `{message, code}` naming the resource, so `ignoreFail` and `retry`
//! apply to it.

mod dynamodb;
mod eventbridge;
mod lambda;
mod s3;
mod ses;
mod sns;
mod sqs;

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::engine::{Checker, NodeRegistry, NodeStop};

pub use dynamodb::DynamoDb;
pub use eventbridge::EventBridge;
pub use lambda::Lambda;
pub use s3::S3;
pub use ses::Ses;
pub use sns::Sns;
pub use sqs::Sqs;

/// How long one AWS call may take, retries included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The AWS configuration and each service's client, made when first needed.
#[derive(Default)]
pub struct AwsClients {
    config: OnceCell<Option<SdkConfig>>,
    eventbridge: OnceCell<aws_sdk_eventbridge::Client>,
    sqs: OnceCell<aws_sdk_sqs::Client>,
    sns: OnceCell<aws_sdk_sns::Client>,
    dynamodb: OnceCell<aws_sdk_dynamodb::Client>,
    s3: OnceCell<aws_sdk_s3::Client>,
    ses: OnceCell<aws_sdk_sesv2::Client>,
    lambda: OnceCell<aws_sdk_lambda::Client>,
}

impl AwsClients {
    /// The standard AWS configuration, or a failure saying how to give one.
    async fn config(&self) -> Result<&SdkConfig, Value> {
        let loaded = self
            .config
            .get_or_init(|| async {
                let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .timeout_config(
                        aws_config::timeout::TimeoutConfig::builder()
                            .operation_timeout(CALL_TIMEOUT)
                            .build(),
                    )
                    .load()
                    .await;
                config.region().is_some().then_some(config)
            })
            .await;
        loaded.as_ref().ok_or_else(|| {
            json!({
                "message": "AWS is not configured: set AWS_REGION (on Lambda it is set) and \
                            credentials, or AWS_ENDPOINT_URL for moto or LocalStack",
                "code": "NotConfigured"
            })
        })
    }

    async fn client<C: Clone>(
        &self,
        cell: &OnceCell<C>,
        make: impl FnOnce(&SdkConfig) -> C,
    ) -> Result<C, Value> {
        let config = self.config().await?;
        Ok(cell.get_or_init(|| async { make(config) }).await.clone())
    }
}

/// Registers the AWS node types, sharing one set of clients.
pub fn register(registry: &mut NodeRegistry, max_result_bytes: usize) {
    let clients = Arc::new(AwsClients::default());
    registry.register(EventBridge(Arc::clone(&clients)));
    registry.register(Sqs(Arc::clone(&clients)));
    registry.register(Sns(Arc::clone(&clients)));
    registry.register(DynamoDb(Arc::clone(&clients)));
    registry.register(S3 {
        clients: Arc::clone(&clients),
        max_result_bytes,
    });
    registry.register(Ses(Arc::clone(&clients)));
    registry.register(Lambda {
        clients,
        max_result_bytes,
    });
}

/// An AWS error as a node's failure: what was asked of which resource, AWS's
/// message and its error code.
fn failure<E>(action: &str, resource: &str, error: &aws_sdk_sqs::error::SdkError<E>) -> Value
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_sqs::error::SdkError;
    let (code, detail) = match error {
        SdkError::ServiceError(service) => {
            let e = service.err();
            (
                e.code().unwrap_or("ServiceError").to_string(),
                e.message().map_or_else(|| e.to_string(), str::to_string),
            )
        }
        SdkError::TimeoutError(_) => (
            "Timeout".to_string(),
            format!("no answer within {} s", CALL_TIMEOUT.as_secs()),
        ),
        SdkError::DispatchFailure(d) => (
            if d.is_timeout() { "Timeout" } else { "DispatchFailure" }.to_string(),
            chain(error),
        ),
        _ => ("ClientError".to_string(), chain(error)),
    };
    json!({"message": format!("{action} {resource}: {detail}"), "code": code})
}

/// An error with its causes, which say what actually went wrong.
fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

/// The node's answer: its result, or its failure (a result when `ignoreFail`).
fn finish(outcome: Result<Value, Value>, ignore_fail: bool) -> Result<Value, NodeStop> {
    match outcome {
        Ok(result) => Ok(result),
        Err(failure) if ignore_fail => Ok(failure),
        Err(failure) => Err(NodeStop::Fail(failure)),
    }
}

/// A text field: a string, or a number or boolean a template rendered (an id).
#[derive(Debug, Clone, Default, PartialEq, JsonSchema)]
#[schemars(transparent)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Self(s)),
            Value::Number(n) => Ok(Self(n.to_string())),
            Value::Bool(b) => Ok(Self(b.to_string())),
            Value::Null => Ok(Self::default()),
            other => Err(serde::de::Error::custom(format!(
                "expected text, found {}",
                kind_of(&other)
            ))),
        }
    }
}

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A field that must be there (it may be a template).
fn required(value: &Text, field: &str, at: &str, what: &str, check: &mut Checker) {
    if value.is_empty() {
        check.error(format!("{at}.{field}"), format!("is required: {what}"));
    }
}

/// A value sent as text: a string as it is, anything else as JSON.
fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A whole number a template may have rendered as text.
fn whole_number(value: &Value, field: &str, max: u64) -> Result<Option<u64>, Value> {
    let number = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_u64(),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match number {
        Some(n) if n <= max => Ok(Some(n)),
        _ => Err(json!({
            "message": format!("{field} must be a whole number 0..={max}, not {value}"),
            "code": "InvalidParameter"
        })),
    }
}

/// Checks a number field at validation: a whole number in range, or a template.
fn check_number(value: &Value, field: &str, at: &str, max: u64, check: &mut Checker) {
    let ok = match value {
        Value::Null => true,
        Value::String(s) => s.contains("{{"),
        Value::Number(n) => n.as_u64().is_some_and(|n| n <= max),
        _ => false,
    };
    if !ok {
        check.error(
            format!("{at}.{field}"),
            format!("must be a whole number 0..={max} (or a template)"),
        );
    }
}
