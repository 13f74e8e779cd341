//! `test-panic`: a node that panics on purpose, to prove that a bug in one node
//! costs only its own execution. Built into test builds only (the `testing`
//! feature, which the workspace's end-to-end tests turn on); never in a release.

use async_trait::async_trait;
use serde_json::Value;

use crate::engine::{Checker, NodeStop, NodeType, RunContext};
use crate::model::NodeDefinition;

pub struct TestPanic;

#[async_trait]
impl NodeType for TestPanic {
    fn name(&self) -> &'static str {
        "test-panic"
    }

    fn validate(&self, _config: &Value, _at: &str, _check: &mut Checker) {}

    /// Panics when `when` renders to `true` or `"true"` (always, when absent).
    async fn run(&self, node: &NodeDefinition, cx: &mut RunContext<'_>) -> Result<Value, NodeStop> {
        let when = cx.render(node.config.get("when").unwrap_or(&Value::Bool(true)));
        if when == Value::Bool(true) || when == "true" {
            panic!("test-panic node {:?} panicked on purpose", node.key);
        }
        Ok(Value::Null)
    }
}
