//! `eventbridge`: puts one event on a bus (PutEvents), AWS's own pattern for
//! inbound webhooks: rules on the bus route it to whatever handles it.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AwsClients, Text, Texts, call_failure, finish, required};
use crate::aws::Service;
use crate::engine::{Checker, Node, NodeStop, RunContext, config};
use crate::model::NodeDefinition;

pub struct EventBridge(pub Arc<AwsClients>);

/// `eventBusName` (a name or ARN; `default` when absent), `source`, `detailType`,
/// `detail` (any JSON, sent as JSON text), `resources` (ARNs); `ignoreFail`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventBridgeConfig {
    #[serde(default)]
    event_bus_name: Text,
    #[serde(default)]
    source: Text,
    #[serde(default)]
    detail_type: Text,
    #[serde(default)]
    detail: Value,
    #[serde(default)]
    resources: Texts,
    #[serde(default)]
    ignore_fail: bool,
}

#[async_trait]
impl Node for EventBridge {
    type Config = EventBridgeConfig;

    fn name(&self) -> &'static str {
        "eventbridge"
    }

    fn check(&self, c: &EventBridgeConfig, at: &str, check: &mut Checker) {
        required(
            &c.source,
            "source",
            at,
            "the event's source, such as com.stripe",
            check,
        );
        required(
            &c.detail_type,
            "detailType",
            at,
            "the event's detail-type",
            check,
        );
    }

    /// Every string may be templated: the config as written is rendered, then
    /// read, each run.
    async fn run(
        &self,
        _: &EventBridgeConfig,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let c: EventBridgeConfig = config::parse(&cx.render(&node.config))?;
        finish(self.put(&c).await, c.ignore_fail)
    }
}

impl EventBridge {
    async fn put(&self, c: &EventBridgeConfig) -> Result<Value, Value> {
        let client = self.0.signed().await?;
        let bus = if c.event_bus_name.is_empty() {
            "default"
        } else {
            c.event_bus_name.as_str()
        };
        let detail = match &c.detail {
            Value::Null => "{}".to_string(),
            // EventBridge wants a JSON object; anything else is wrapped.
            Value::Object(_) => c.detail.to_string(),
            other => json!({ "value": other }).to_string(),
        };
        let mut entry = json!({
            "EventBusName": bus,
            "Source": c.source.as_str(),
            "DetailType": c.detail_type.as_str(),
            "Detail": detail,
        });
        if let Some(resources) = c.resources.or_none() {
            entry["Resources"] = json!(resources);
        }
        let resource = format!("event bus {bus}");
        let out = client
            .json(
                Service::EVENTBRIDGE,
                "AWSEvents.PutEvents",
                &json!({ "Entries": [entry] }),
            )
            .await
            .map_err(|e| call_failure("PutEvents on", &resource, &e))?;
        // PutEvents answers 200 with the entry's own error when the event was refused.
        let first = out["Entries"].get(0);
        let field = |name: &str| first.and_then(|e| e[name].as_str());
        match field("EventId") {
            Some(id) if out["FailedEntryCount"].as_u64().unwrap_or(0) == 0 => {
                Ok(json!({ "eventId": id }))
            }
            _ => Err(json!({
                "message": format!(
                    "PutEvents on {resource}: {}",
                    field("ErrorMessage").unwrap_or("the event was refused")
                ),
                "code": field("ErrorCode").unwrap_or("FailedEntry"),
            })),
        }
    }
}
