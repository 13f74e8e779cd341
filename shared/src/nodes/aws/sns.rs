//! `sns`: publishes one message to a topic (Publish).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    AwsClients, Fields, Text, content_text, failure, finish, message_attributes, required,
};
use crate::engine::{Checker, NodeStop, NodeType, RunContext, config};
use crate::model::NodeDefinition;

pub struct Sns(pub Arc<AwsClients>);

/// `topicArn`, `message` (an object or list is sent as JSON text), `subject`
/// (email subscribers' subject line), `messageAttributes` (`{name: value}`,
/// numbers sent as Number); `ignoreFail`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct SnsConfig {
    #[serde(default)]
    topic_arn: Text,
    #[serde(default)]
    message: Value,
    #[serde(default)]
    subject: Option<Text>,
    #[serde(default)]
    message_attributes: Fields<Value>,
    #[serde(default)]
    ignore_fail: bool,
}

#[async_trait]
impl NodeType for Sns {
    fn name(&self) -> &'static str {
        "sns"
    }

    fn config_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<SnsConfig>()
    }

    fn validate(&self, config: &Value, at: &str, check: &mut Checker) {
        let Some(c) = config::read::<SnsConfig>(config, at, check) else {
            return;
        };
        required(&c.topic_arn, "topicArn", at, "the topic's ARN", check);
        if c.message.is_null() {
            check.error(format!("{at}.message"), "is required");
        }
        c.message_attributes.check("messageAttributes", at, check);
    }

    async fn run(&self, node: &NodeDefinition, cx: &mut RunContext<'_>) -> Result<Value, NodeStop> {
        let c: SnsConfig = config::parse(&cx.render(&node.config))?;
        finish(self.publish(&c).await, c.ignore_fail)
    }
}

impl Sns {
    async fn publish(&self, c: &SnsConfig) -> Result<Value, Value> {
        let message = content_text(&c.message, "message")?;
        let client = self.0.client(&self.0.sns, aws_sdk_sns::Client::new).await?;
        let attributes = message_attributes(&c.message_attributes, |data_type, text| {
            MessageAttributeValue::builder()
                .data_type(data_type)
                .string_value(text)
                .build()
        })?;
        let resource = format!("topic {}", c.topic_arn.as_str());
        let out = client
            .publish()
            .topic_arn(c.topic_arn.as_str())
            .message(message)
            .set_subject(
                c.subject
                    .as_ref()
                    .filter(|s| !s.is_empty())
                    .map(|s| s.0.clone()),
            )
            .set_message_attributes(attributes)
            .send()
            .await
            .map_err(|e| failure("Publish to", &resource, &e))?;
        Ok(json!({ "messageId": out.message_id() }))
    }
}
