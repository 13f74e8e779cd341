//! `ses`: sends one email (SES v2 SendEmail, simple content).

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AwsClients, Text, Texts, call_failure, finish, required};
use crate::aws::Service;
use crate::engine::{Checker, Node, NodeStop, RunContext, config};
use crate::model::NodeDefinition;

pub struct Ses(pub Arc<AwsClients>);

/// `from` (a verified identity), `to` (a list), `cc`, `replyTo`, `subject`,
/// `text` and/or `html`; `ignoreFail`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SesConfig {
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
impl Node for Ses {
    type Config = SesConfig;

    fn name(&self) -> &'static str {
        "ses"
    }

    fn check(&self, c: &SesConfig, at: &str, check: &mut Checker) {
        required(&c.from, "from", at, "a verified sender address", check);
        if c.to.0.is_empty() {
            check.error(format!("{at}.to"), "is required: a list of addresses");
        }
        if c.text.is_none() && c.html.is_none() {
            check.error(format!("{at}.text"), "text or html is required");
        }
    }

    /// Every string may be templated: the config as written is rendered, then
    /// read, each run.
    async fn run(
        &self,
        _: &SesConfig,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let c: SesConfig = config::parse(&cx.render(&node.config))?;
        finish(self.send(&c).await, c.ignore_fail)
    }
}

fn content(text: &str) -> Value {
    json!({ "Data": text, "Charset": "UTF-8" })
}

impl Ses {
    async fn send(&self, c: &SesConfig) -> Result<Value, Value> {
        if c.to.0.is_empty() {
            return Err(json!({
                "message": "to rendered to no address: nobody to send to",
                "code": "InvalidParameter"
            }));
        }
        let client = self.0.signed().await?;
        let mut body = serde_json::Map::new();
        if let Some(text) = &c.text {
            body.insert("Text".into(), content(text.as_str()));
        }
        if let Some(html) = &c.html {
            body.insert("Html".into(), content(html.as_str()));
        }
        let mut destination = json!({ "ToAddresses": c.to.0 });
        if let Some(cc) = c.cc.or_none() {
            destination["CcAddresses"] = json!(cc);
        }
        let mut input = json!({
            "FromEmailAddress": c.from.as_str(),
            "Destination": destination,
            "Content": { "Simple": {
                "Subject": content(c.subject.as_ref().map_or("", Text::as_str)),
                "Body": body,
            }},
        });
        if let Some(reply_to) = c.reply_to.or_none() {
            input["ReplyToAddresses"] = json!(reply_to);
        }
        let resource = format!("from {}", c.from.as_str());
        let out = client
            .rest_json(Service::SESV2, "/v2/email/outbound-emails", &input)
            .await
            .map_err(|e| call_failure("SendEmail", &resource, &e))?;
        Ok(json!({ "messageId": out["MessageId"] }))
    }
}
