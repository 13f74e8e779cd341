//! `sqs`: sends one message to a queue (SendMessage).

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    AwsClients, Fields, Text, call_failure, check_number, content_text, finish, message_attributes,
    required, whole_number,
};
use crate::aws::Service;
use crate::engine::{Checker, Node, NodeStop, RunContext, config};
use crate::model::NodeDefinition;

pub struct Sqs(pub Arc<AwsClients>);

/// `queueUrl`, `messageBody` (an object or list is sent as JSON text), and for
/// FIFO queues `messageGroupId` and `messageDeduplicationId`; `delaySeconds`
/// (0..=900), `messageAttributes` (`{name: value}`, numbers sent as Number);
/// `ignoreFail`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SqsConfig {
    #[serde(default)]
    queue_url: Text,
    #[serde(default)]
    message_body: Value,
    #[serde(default)]
    message_group_id: Option<Text>,
    #[serde(default)]
    message_deduplication_id: Option<Text>,
    #[serde(default)]
    delay_seconds: Value,
    #[serde(default)]
    message_attributes: Fields<Value>,
    #[serde(default)]
    ignore_fail: bool,
}

#[async_trait]
impl Node for Sqs {
    type Config = SqsConfig;

    fn name(&self) -> &'static str {
        "sqs"
    }

    fn check(&self, c: &SqsConfig, at: &str, check: &mut Checker) {
        required(&c.queue_url, "queueUrl", at, "the queue's URL", check);
        if c.message_body.is_null() {
            check.error(format!("{at}.messageBody"), "is required");
        }
        check_number(&c.delay_seconds, "delaySeconds", at, 0..=900, check);
        c.message_attributes.check("messageAttributes", at, check);
    }

    /// Every string may be templated: the config as written is rendered, then
    /// read, each run.
    async fn run(
        &self,
        _: &SqsConfig,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let c: SqsConfig = config::parse(&cx.render(&node.config))?;
        finish(self.send(&c).await, c.ignore_fail)
    }
}

impl Sqs {
    async fn send(&self, c: &SqsConfig) -> Result<Value, Value> {
        let delay = whole_number(&c.delay_seconds, "delaySeconds", 0..=900)?;
        let body = content_text(&c.message_body, "messageBody")?;
        let client = self.0.signed().await?;
        let mut input = json!({ "QueueUrl": c.queue_url.as_str(), "MessageBody": body });
        if let Some(group) = &c.message_group_id {
            input["MessageGroupId"] = json!(group.as_str());
        }
        if let Some(id) = &c.message_deduplication_id {
            input["MessageDeduplicationId"] = json!(id.as_str());
        }
        if let Some(delay) = delay {
            input["DelaySeconds"] = json!(delay);
        }
        let attributes = message_attributes(&c.message_attributes)?;
        if !attributes.is_empty() {
            input["MessageAttributes"] = attributes
                .into_iter()
                .map(|(name, (data_type, text))| {
                    (name, json!({ "DataType": data_type, "StringValue": text }))
                })
                .collect();
        }
        let resource = format!("queue {}", c.queue_url.as_str());
        let out = client
            .json(Service::SQS, "AmazonSQS.SendMessage", &input)
            .await
            .map_err(|e| call_failure("SendMessage to", &resource, &e))?;
        Ok(json!({ "messageId": out["MessageId"] }))
    }
}
