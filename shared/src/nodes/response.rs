//! `response`: sets a sync webhook's answer and ends the execution as resolved.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::engine::{Checker, Mode, Node, NodeStop, Reply, RunContext};
use crate::model::{NameValue, NodeDefinition};

pub struct Response;

/// `statusCode` (200..=599, default 200), `headers` `[{name, value}]` and `body`,
/// values templated.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResponseConfig {
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
impl Node for Response {
    type Config = ResponseConfig;

    fn name(&self) -> &'static str {
        "response"
    }

    fn mode(&self) -> Mode {
        Mode::SyncOnly
    }

    /// The field rules are the trigger's `response`'s too, which checks them on
    /// its JSON: these are the same functions.
    fn check(&self, c: &ResponseConfig, at: &str, check: &mut Checker) {
        check.status_code(Some(&c.status_code.into()), &format!("{at}.statusCode"));
        check_headers(&c.headers, &format!("{at}.headers"), check);
    }

    async fn run(
        &self,
        c: &ResponseConfig,
        _node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        Err(NodeStop::Respond(Reply {
            status_code: c.status_code,
            headers: render_headers(&c.headers, cx),
            body: cx.render(&c.body),
        }))
    }
}

/// Header names and values as the trigger's `response` has them (see
/// [`Checker::name_values`]); shared with `request`.
pub fn check_headers(headers: &[NameValue], at: &str, check: &mut Checker) {
    if let Ok(written) = serde_json::to_value(headers) {
        check.name_values(Some(&written), at);
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
