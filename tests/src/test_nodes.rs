//! The node types of the project's own tests, registered through the library's
//! public registry: `test-panic`, a node that panics on purpose, to prove that a
//! bug in one node costs only its own execution. They live in this crate, which
//! nothing that ships depends on, so no build of the library or the Lambdas can
//! offer them to a workflow.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use hookflow::engine::{Node, NodeRegistry, NodeStop, RunContext};
use hookflow::model::NodeDefinition;
use hookflow::nodes::NodeSettings;

/// The built-in node types and the test-only ones: `Settings::node_types` of an
/// app under test (`Settings { node_types: with_test_nodes, .. }`).
pub fn with_test_nodes(settings: &NodeSettings) -> NodeRegistry {
    let mut registry = hookflow::nodes::builtin_with(settings);
    registry.register(TestPanic);
    registry
}

/// [`with_test_nodes`] with the default node settings.
pub fn registry() -> NodeRegistry {
    with_test_nodes(&NodeSettings::default())
}

pub struct TestPanic;

/// `when`: panics when it renders to true (always, when absent).
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PanicConfig {
    #[serde(default = "always")]
    when: Value,
}

fn always() -> Value {
    Value::Bool(true)
}

#[async_trait]
impl Node for TestPanic {
    type Config = PanicConfig;

    fn name(&self) -> &'static str {
        "test-panic"
    }

    fn test_only(&self) -> bool {
        true
    }

    /// Panics when `when` renders to `true` or `"true"` (always, when absent).
    async fn run(
        &self,
        c: &PanicConfig,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let when = cx.render(&c.when);
        if when == Value::Bool(true) || when == "true" {
            panic!("test-panic node {:?} panicked on purpose", node.key);
        }
        Ok(Value::Null)
    }
}
