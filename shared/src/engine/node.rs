//! What a node type is to the engine: the [`NodeType`] trait, and the registry
//! the walk finds types in by name. The types themselves live in the layer above,
//! written as [`super::Node`]s (a typed config, read once) that a blanket impl
//! makes `NodeType`s.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
#[cfg(feature = "authoring")]
use schemars::{Schema, SchemaGenerator};
use serde_json::Value;

#[cfg(feature = "authoring")]
use super::check::Checker;
use super::{NodeStop, RunContext};
use crate::model::NodeDefinition;

/// Which workflows a node type may appear in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Any,
    SyncOnly,
    AsyncOnly,
}

/// A workflow a node calls: deploys and cycle checks follow it, and point at
/// `field`, the config field that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub workflow: String,
    pub field: &'static str,
}

#[async_trait]
pub trait NodeType: Send + Sync {
    /// The `type` written in definitions.
    fn name(&self) -> &'static str;

    /// Whether a definition may hold a branch with this index (given the node's config).
    fn allows_branch(&self, _config: &Value, _index: &str) -> bool {
        false
    }

    /// How the branch `index` of `node` reads: its label and place (see [`Branch`]).
    fn branch(&self, _node: &NodeDefinition, _index: &str) -> Option<Branch> {
        None
    }

    /// The branches a node has even when its definition leaves them out: an empty
    /// one, through which the walk goes straight on (a condition's false side).
    fn implied_branches(&self) -> &'static [&'static str] {
        &[]
    }

    /// The workflow `node` calls, when it calls one (`subflow`).
    fn calls(&self, _node: &NodeDefinition) -> Option<Call> {
        None
    }

    fn mode(&self) -> Mode {
        Mode::Any
    }

    /// A type for the project's own tests, left out of the schema users' editors read.
    fn test_only(&self) -> bool {
        false
    }

    /// The JSON Schema of the node's `config`: the typed struct `validate` reads
    /// (`generator.subschema_for::<TheConfig>()`), so editors and the loader agree.
    #[cfg(feature = "authoring")]
    fn config_schema(&self, generator: &mut SchemaGenerator) -> Schema;

    /// Reports every problem of a node's config; `at` is the config's JSON path.
    #[cfg(feature = "authoring")]
    fn validate(&self, config: &Value, at: &str, check: &mut Checker);

    /// Runs the node: `Ok(result)` resolves its job and the walk goes on.
    async fn run(&self, node: &NodeDefinition, cx: &mut RunContext<'_>) -> Result<Value, NodeStop>;

    /// Goes on with a node that paused ([`NodeStop::Pause`]), itself or in one of
    /// its branches, from the `frame` it saved. Only such nodes implement it.
    async fn resume(
        &self,
        node: &NodeDefinition,
        _cx: &mut RunContext<'_>,
        _frame: Value,
    ) -> Result<Value, NodeStop> {
        Err(cannot_resume(node))
    }
}

/// A resume of a node that never pauses (a record edited by hand).
pub(super) fn cannot_resume(node: &NodeDefinition) -> NodeStop {
    NodeStop::Error(format!("a {} node cannot resume after a pause", node.kind))
}

/// A branch as a node type describes it: the label on its arrow and its place
/// among its node's branches, left to right (lowest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    pub label: String,
    pub order: u64,
}

impl Branch {
    pub fn new(label: impl Into<String>, order: u64) -> Self {
        Self {
            label: label.into(),
            order,
        }
    }
}

/// The node types a deployment knows, by name.
pub struct NodeRegistry {
    types: HashMap<&'static str, Arc<dyn NodeType>>,
}

impl NodeRegistry {
    pub fn empty() -> Self {
        Self {
            types: HashMap::new(),
        }
    }

    pub fn register(&mut self, node: impl NodeType + 'static) {
        self.types.insert(node.name(), Arc::new(node));
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn NodeType>> {
        self.types.get(name)
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.types.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// The workflow `node` calls, when its type calls one.
    pub fn calls(&self, node: &NodeDefinition) -> Option<Call> {
        self.get(&node.kind)?.calls(node)
    }
}
