//! `lambda`: invokes a function, and waits for its answer (`RequestResponse`) or
//! hands the event over (`Event`).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AwsClients, Text, failure, finish, required};
use crate::engine::{Checker, NodeStop, NodeType, RunContext, config};
use crate::model::NodeDefinition;

pub struct Lambda {
    pub clients: Arc<AwsClients>,
    /// The largest answer read into a result.
    pub max_result_bytes: usize,
}

/// `functionName` (a name, ARN or alias), `payload` (JSON), `invocationType`
/// (`RequestResponse`, the default, or `Event`); `ignoreFail`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct LambdaConfig {
    #[serde(default)]
    function_name: Text,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    invocation_type: Option<Text>,
    #[serde(default)]
    ignore_fail: bool,
}

const INVOCATION_TYPES: [&str; 2] = ["RequestResponse", "Event"];

#[async_trait]
impl NodeType for Lambda {
    fn name(&self) -> &'static str {
        "lambda"
    }

    fn config_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<LambdaConfig>()
    }

    fn validate(&self, config: &Value, at: &str, check: &mut Checker) {
        let Some(c) = config::read::<LambdaConfig>(config, at, check) else {
            return;
        };
        required(&c.function_name, "functionName", at, "the function's name or ARN", check);
        if let Some(t) = &c.invocation_type
            && !t.as_str().contains("{{")
            && !INVOCATION_TYPES.contains(&t.as_str())
        {
            check.error(
                format!("{at}.invocationType"),
                "must be RequestResponse or Event",
            );
        }
    }

    async fn run(&self, node: &NodeDefinition, cx: &mut RunContext<'_>) -> Result<Value, NodeStop> {
        let c: LambdaConfig = config::parse(&cx.render(&node.config))?;
        finish(self.invoke(&c).await, c.ignore_fail)
    }
}

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
        let client = self.clients.client(&self.clients.lambda, aws_sdk_lambda::Client::new).await?;
        let name = c.function_name.as_str();
        let resource = format!("function {name}");
        let payload = if c.payload.is_null() { json!({}) } else { c.payload.clone() };
        let out = client
            .invoke()
            .function_name(name)
            .invocation_type(if event {
                InvocationType::Event
            } else {
                InvocationType::RequestResponse
            })
            .payload(Blob::new(payload.to_string().into_bytes()))
            .send()
            .await
            .map_err(|e| failure("Invoke", &resource, &e))?;
        if event {
            return Ok(json!({ "statusCode": out.status_code() }));
        }
        let bytes = out.payload().map(Blob::as_ref).unwrap_or_default();
        if bytes.len() > self.max_result_bytes {
            return Err(json!({
                "message": format!(
                    "Invoke {resource}: its answer of {} bytes is more than a result may hold ({} bytes)",
                    bytes.len(),
                    self.max_result_bytes
                ),
                "code": "TooLarge"
            }));
        }
        let answer = serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()));
        match out.function_error() {
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
