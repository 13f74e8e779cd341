//! `ses`: sends one email (SES v2 SendEmail, simple content).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AwsClients, Text, Texts, failure, finish, required};
use crate::engine::{Checker, NodeStop, NodeType, RunContext, config};
use crate::model::NodeDefinition;

pub struct Ses(pub Arc<AwsClients>);

/// `from` (a verified identity), `to` (a list), `cc`, `replyTo`, `subject`,
/// `text` and/or `html`; `ignoreFail`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct SesConfig {
    #[serde(default)]
    from: Text,
    #[serde(default)]
    to: Texts,
    #[serde(default)]
    cc: Texts,
    #[serde(default)]
    reply_to: Texts,
    #[serde(default)]
    subject: Option<Text>,
    #[serde(default)]
    text: Option<Text>,
    #[serde(default)]
    html: Option<Text>,
    #[serde(default)]
    ignore_fail: bool,
}

#[async_trait]
impl NodeType for Ses {
    fn name(&self) -> &'static str {
        "ses"
    }

    fn config_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<SesConfig>()
    }

    fn validate(&self, config: &Value, at: &str, check: &mut Checker) {
        let Some(c) = config::read::<SesConfig>(config, at, check) else {
            return;
        };
        required(&c.from, "from", at, "a verified sender address", check);
        if c.to.0.is_empty() {
            check.error(format!("{at}.to"), "is required: a list of addresses");
        }
        if c.text.is_none() && c.html.is_none() {
            check.error(format!("{at}.text"), "text or html is required");
        }
    }

    async fn run(&self, node: &NodeDefinition, cx: &mut RunContext<'_>) -> Result<Value, NodeStop> {
        let c: SesConfig = config::parse(&cx.render(&node.config))?;
        finish(self.send(&c).await, c.ignore_fail)
    }
}

fn content(text: &str) -> Result<Content, Value> {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|e| json!({"message": e.to_string(), "code": "InvalidParameter"}))
}

impl Ses {
    async fn send(&self, c: &SesConfig) -> Result<Value, Value> {
        if c.to.0.is_empty() {
            return Err(json!({
                "message": "to rendered to no address: nobody to send to",
                "code": "InvalidParameter"
            }));
        }
        let client = self
            .0
            .client(&self.0.ses, aws_sdk_sesv2::Client::new)
            .await?;
        let mut body = Body::builder();
        if let Some(text) = &c.text {
            body = body.text(content(text.as_str())?);
        }
        if let Some(html) = &c.html {
            body = body.html(content(html.as_str())?);
        }
        let message = Message::builder()
            .subject(content(c.subject.as_ref().map_or("", Text::as_str))?)
            .body(body.build())
            .build();
        let resource = format!("from {}", c.from.as_str());
        let out = client
            .send_email()
            .from_email_address(c.from.as_str())
            .destination(
                Destination::builder()
                    .set_to_addresses(c.to.or_none())
                    .set_cc_addresses(c.cc.or_none())
                    .build(),
            )
            .set_reply_to_addresses(c.reply_to.or_none())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(|e| failure("SendEmail", &resource, &e))?;
        Ok(json!({ "messageId": out.message_id() }))
    }
}
