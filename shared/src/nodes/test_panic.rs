//! `test-panic`: a node that panics on purpose, to prove that a bug in one node
//! costs only its own execution. Built into test builds only (the `testing`
//! feature, which the workspace's end-to-end tests turn on); never in a release.

use async_trait::async_trait;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::Value;

use crate::engine::{Checker, NodeStop, NodeType, RunContext, config};
use crate::model::NodeDefinition;

pub struct TestPanic;

/// `when`: panics when it renders to true (always, when absent).
#[derive(Debug, Deserialize, JsonSchema)]
struct PanicConfig {
    #[serde(default = "always")]
    when: Value,
}

fn always() -> Value {
    Value::Bool(true)
}

#[async_trait]
impl NodeType for TestPanic {
    fn name(&self) -> &'static str {
        "test-panic"
    }

    fn test_only(&self) -> bool {
        true
    }

    fn config_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<PanicConfig>()
    }

    fn validate(&self, config: &Value, at: &str, check: &mut Checker) {
        config::read::<PanicConfig>(config, at, check);
    }

    /// Panics when `when` renders to `true` or `"true"` (always, when absent).
    async fn run(&self, node: &NodeDefinition, cx: &mut RunContext<'_>) -> Result<Value, NodeStop> {
        let c: PanicConfig = config::parse(&node.config)?;
        let when = cx.render(&c.when);
        if when == Value::Bool(true) || when == "true" {
            panic!("test-panic node {:?} panicked on purpose", node.key);
        }
        Ok(Value::Null)
    }
}
