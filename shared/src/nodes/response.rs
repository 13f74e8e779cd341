//! `response`: sets a sync webhook's answer and ends the execution as resolved.

use async_trait::async_trait;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::Value;

use crate::engine::{Checker, Mode, NodeStop, NodeType, Reply, RunContext, config};
use crate::model::{NameValue, NodeDefinition};

pub struct Response;

/// `statusCode` (200..=599, default 200), `headers` `[{name, value}]` and `body`,
/// values templated.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ResponseConfig {
    #[serde(default = "ok")]
    status_code: u16,
    #[serde(default)]
    headers: Vec<NameValue>,
    #[serde(default)]
    body: Value,
}

fn ok() -> u16 {
    200
}

#[async_trait]
impl NodeType for Response {
    fn name(&self) -> &'static str {
        "response"
    }

    fn config_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<ResponseConfig>()
    }

    fn mode(&self) -> Mode {
        Mode::SyncOnly
    }

    fn validate(&self, config: &Value, at: &str, check: &mut Checker) {
        // The field rules are the trigger's `response`'s too: checked on the JSON.
        if config::read::<ResponseConfig>(config, at, check).is_some() {
            check.status_code(config.get("statusCode"), &format!("{at}.statusCode"));
            check.name_values(config.get("headers"), &format!("{at}.headers"));
        }
    }

    async fn run(&self, node: &NodeDefinition, cx: &mut RunContext<'_>) -> Result<Value, NodeStop> {
        let c: ResponseConfig = config::parse(&node.config)?;
        Err(NodeStop::Respond(Reply {
            status_code: c.status_code,
            headers: render_headers(&c.headers, cx),
            body: cx.render(&c.body),
        }))
    }
}

/// `[{name, value}]` with each value rendered to text.
pub fn render_headers(headers: &[NameValue], cx: &RunContext<'_>) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            let value = match cx.render(&h.value) {
                Value::String(s) => s,
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (h.name.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::model::ExecutionStatus;
    use crate::nodes::test_support::{run, trail};

    #[tokio::test]
    async fn response_inside_a_branch_answers_and_ends_everything() {
        let nodes = json!([
            {"key": "c", "type": "condition", "config": {"calculation": {"calculator": "equal", "operands": [1, 1]}},
             "branches": {"1": [
                {"key": "r", "type": "response", "config": {
                    "statusCode": 201,
                    "headers": [{"name": "X-Order", "value": "{{$context.id}}"}],
                    "body": {"id": "{{$context.id}}"}}},
                {"key": "unreached", "type": "output", "config": {"value": 1}}
             ]}},
            {"key": "after", "type": "output", "config": {"value": 2}}
        ]);
        let (outcome, jobs, _) = run(nodes, json!({"id": 7})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        let reply = outcome.reply.expect("a reply");
        assert_eq!(reply.status_code, 201);
        assert_eq!(reply.headers, [("X-Order".to_string(), "7".to_string())]);
        assert_eq!(reply.body, json!({"id": 7}));
        assert_eq!(
            trail(&jobs),
            [("c".into(), "resolved"), ("r".into(), "resolved")]
        );
        assert_eq!(jobs[1].result["statusCode"], json!(201));
    }
}
