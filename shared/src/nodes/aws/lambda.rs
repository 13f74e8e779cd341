//! `lambda`: invokes a function, and waits for its answer (`RequestResponse`) or
//! hands the event over (`Event`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AwsClients, Text, call_failure, check_number, finish, required, whole_number};
use crate::aws::{CallError, Service, SigningStyle};
use crate::engine::{Checker, Node, NodeStop, RunContext, config};
use crate::model::NodeDefinition;

pub struct Lambda {
    pub clients: Arc<AwsClients>,
    /// The largest answer read into a result.
    pub max_result_bytes: usize,
}

/// `functionName` (a name, ARN or alias), `payload` (JSON), `invocationType`
/// (`RequestResponse`, the default, or `Event`), `timeout` (ms to wait for the
/// function's answer, default 30 000, at most 900 000: Lambda's own limit);
/// `ignoreFail`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LambdaConfig {
    #[serde(default)]
    function_name: Text,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    invocation_type: Option<Text>,
    #[serde(default)]
    timeout: Value,
    #[serde(default)]
    ignore_fail: bool,
}

const INVOCATION_TYPES: [&str; 2] = ["RequestResponse", "Event"];

/// How long a `RequestResponse` call waits by default, and at most (ms).
const DEFAULT_TIMEOUT_MS: u64 = 30_000;
const MAX_TIMEOUT_MS: u64 = 900_000;

#[async_trait]
impl Node for Lambda {
    type Config = LambdaConfig;

    fn name(&self) -> &'static str {
        "lambda"
    }

    fn check(&self, c: &LambdaConfig, at: &str, check: &mut Checker) {
        required(
            &c.function_name,
            "functionName",
            at,
            "the function's name or ARN",
            check,
        );
        if let Some(t) = &c.invocation_type
            && !t.as_str().contains("{{")
            && !INVOCATION_TYPES.contains(&t.as_str())
        {
            check.error(
                format!("{at}.invocationType"),
                "must be RequestResponse or Event",
            );
        }
        check_number(&c.timeout, "timeout", at, 1..=MAX_TIMEOUT_MS, check);
    }

    /// Every string may be templated: the config as written is rendered, then
    /// read, each run.
    async fn run(
        &self,
        _: &LambdaConfig,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let c: LambdaConfig = config::parse(&cx.render(&node.config))?;
        finish(self.invoke(&c).await, c.ignore_fail)
    }
}

/// A function's name in the call's path: all but letters, digits and `-._~`
/// percent-encoded, as the SDK writes a path label (an ARN's colons included).
const LABEL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl Lambda {
    async fn invoke(&self, c: &LambdaConfig) -> Result<Value, Value> {
        let event = match c.invocation_type.as_ref().map(Text::as_str) {
            None | Some("RequestResponse") => false,
            Some("Event") => true,
            Some(other) => {
                return Err(json!({
                    "message": format!("invocationType must be RequestResponse or Event, not {other:?}"),
                    "code": "InvalidParameter"
                }));
            }
        };
        let timeout = whole_number(&c.timeout, "timeout", 1..=MAX_TIMEOUT_MS)?
            .map_or(DEFAULT_TIMEOUT_MS, |ms| ms);
        let name = c.function_name.as_str();
        let resource = format!("function {name}");
        let fail = |e: CallError| match e.code.as_str() {
            "Timeout" => json!({
                "message": format!("Invoke {resource}: no answer within {timeout} ms"),
                "code": "Timeout"
            }),
            _ => call_failure("Invoke", &resource, &e),
        };
        if name.is_empty() {
            return Err(fail(CallError::new(
                "InvalidParameter",
                "functionName rendered to nothing",
            )));
        }
        let client = self.clients.signed().await?;
        let payload = if c.payload.is_null() {
            json!({})
        } else {
            c.payload.clone()
        };
        let path = format!(
            "/2015-03-31/functions/{}/invocations",
            utf8_percent_encode(name, LABEL)
        );
        let url = client.url(Service::LAMBDA, &path).map_err(fail)?;
        let request = http::Request::builder()
            .method(Method::POST)
            .uri(&url)
            .header("content-type", "application/octet-stream")
            .header(
                "x-amz-invocation-type",
                if event { "Event" } else { "RequestResponse" },
            )
            .body(Bytes::from(payload.to_string()))
            .map_err(|e| fail(CallError::new("InvalidParameter", e.to_string())))?;
        // A function may take longer than the other calls' 10 s.
        let reply = client
            .send_within(
                Service::LAMBDA,
                SigningStyle::Standard,
                request,
                Duration::from_millis(timeout),
            )
            .await
            .map_err(fail)?;
        if event {
            return Ok(json!({ "statusCode": reply.status.as_u16() }));
        }
        let function_error = reply.header("x-amz-function-error").map(str::to_string);
        let too_large = |length: String| {
            json!({
                "message": format!(
                    "Invoke {resource}: its answer of {length} bytes is more than a result may hold ({} bytes)",
                    self.max_result_bytes
                ),
                "code": "TooLarge"
            })
        };
        if let Some(declared) = reply.content_length()
            && usize::try_from(declared).map_or(true, |n| n > self.max_result_bytes)
        {
            return Err(too_large(declared.to_string()));
        }
        let bytes =
            reply
                .bytes(self.max_result_bytes)
                .await
                .map_err(|e| match e.code.as_str() {
                    "TooLarge" => too_large(format!("more than {}", self.max_result_bytes)),
                    _ => fail(e),
                })?;
        let answer = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        match function_error {
            // The function ran and threw: its error object is the answer.
            Some(kind) => Err(json!({
                "message": format!(
                    "Invoke {resource}: the function failed ({kind}): {}",
                    answer.get("errorMessage").and_then(Value::as_str).unwrap_or("no message")
                ),
                "code": "FunctionError",
                "error": answer,
            })),
            None => Ok(answer),
        }
    }
}
