//! `output`: sets the execution's output (what a parent workflow receives).

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::engine::{Node, NodeStop, RunContext};
use crate::model::NodeDefinition;

pub struct Output;

/// `value`: the output, templated.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct OutputConfig {
    #[serde(default)]
    value: Value,
}

#[async_trait]
impl Node for Output {
    type Config = OutputConfig;

    fn name(&self) -> &'static str {
        "output"
    }

    async fn run(
        &self,
        c: &OutputConfig,
        _node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let value = cx.render(&c.value);
        cx.set_output(value.clone());
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::engine::Limits;
    use crate::model::ExecutionStatus;
    use crate::nodes::test_support::{run, run_with, trail};

    #[tokio::test]
    async fn later_outputs_win_and_read_earlier_results() {
        let nodes = json!([
            {"key": "a", "type": "output", "config": {"value": {"n": "{{$context.n}}", "env": "{{$env.REGION}}"}}},
            {"key": "b", "type": "output", "config": {"value": "n was {{$jobsMapByNodeKey.a.n}} in {{$jobsMapByNodeKey.a.env}}"}}
        ]);
        let (outcome, jobs, output) = run(nodes, json!({"n": 3})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        assert_eq!(jobs[0].result, json!({"n": 3, "env": "eu"}));
        assert_eq!(output, json!("n was 3 in eu"));
    }

    #[tokio::test]
    async fn unknown_node_type_errors_the_run() {
        let nodes = json!([{"key": "x", "type": "teleport"}]);
        let (outcome, jobs, _) = run(nodes, json!({})).await;
        assert_eq!(outcome.status, ExecutionStatus::Error);
        assert_eq!(trail(&jobs), [("x".into(), "error")]);
    }

    #[tokio::test]
    async fn node_run_cap_stops_the_run() {
        let nodes = json!([
            {"key": "a", "type": "output"}, {"key": "b", "type": "output"}, {"key": "c", "type": "output"}
        ]);
        let (outcome, jobs, _) = run_with(
            nodes,
            json!({}),
            Limits {
                max_node_runs: 2,
                ..Limits::default()
            },
        )
        .await;
        assert_eq!(outcome.status, ExecutionStatus::Error);
        assert_eq!(trail(&jobs).last().unwrap(), &("c".to_string(), "error"));
        assert!(
            jobs[2].result["message"]
                .as_str()
                .unwrap()
                .contains("more than 2 nodes")
        );
    }
}
