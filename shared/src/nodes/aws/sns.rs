//! `sns`: publishes one message to a topic (Publish).

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    AwsClients, Fields, Text, call_failure, content_text, finish, message_attributes, required,
};
use crate::aws::{Service, xml_text};
use crate::engine::{Checker, Node, NodeStop, RunContext, config};
use crate::model::NodeDefinition;

pub struct Sns(pub Arc<AwsClients>);

/// `topicArn`, `message` (an object or list is sent as JSON text), `subject`
/// (email subscribers' subject line), `messageAttributes` (`{name: value}`,
/// numbers sent as Number); `ignoreFail`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnsConfig {
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
impl Node for Sns {
    type Config = SnsConfig;

    fn name(&self) -> &'static str {
        "sns"
    }

    fn check(&self, c: &SnsConfig, at: &str, check: &mut Checker) {
        required(&c.topic_arn, "topicArn", at, "the topic's ARN", check);
        if c.message.is_null() {
            check.error(format!("{at}.message"), "is required");
        }
        c.message_attributes.check("messageAttributes", at, check);
    }

    /// Every string may be templated: the config as written is rendered, then
    /// read, each run.
    async fn run(
        &self,
        _: &SnsConfig,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let c: SnsConfig = config::parse(&cx.render(&node.config))?;
        finish(self.publish(&c).await, c.ignore_fail)
    }
}

impl Sns {
    async fn publish(&self, c: &SnsConfig) -> Result<Value, Value> {
        let message = content_text(&c.message, "message")?;
        let client = self.0.signed().await?;
        let mut params = vec![
            ("TopicArn".to_string(), c.topic_arn.0.clone()),
            ("Message".to_string(), message),
        ];
        if let Some(subject) = c.subject.as_ref().filter(|s| !s.is_empty()) {
            params.push(("Subject".to_string(), subject.0.clone()));
        }
        for (n, (name, (data_type, text))) in message_attributes(&c.message_attributes)?
            .into_iter()
            .enumerate()
        {
            let entry = format!("MessageAttributes.entry.{}", n + 1);
            params.push((format!("{entry}.Name"), name));
            params.push((format!("{entry}.Value.DataType"), data_type.to_string()));
            params.push((format!("{entry}.Value.StringValue"), text));
        }
        let resource = format!("topic {}", c.topic_arn.as_str());
        let reply = client
            .query(Service::SNS, "2010-03-31", "Publish", &params)
            .await
            .map_err(|e| call_failure("Publish to", &resource, &e))?;
        Ok(json!({ "messageId": xml_text(&reply, "MessageId") }))
    }
}
