//! A node type written once: [`Node`] names its config type, and everything the
//! rest of hookflow asks of a type (the editor schema, validation, branches, the
//! workflow it calls, a run) comes from that type. A blanket impl makes every
//! `Node` a [`NodeType`], the registry's object-safe trait, as axum's
//! `FromRequestParts` extractors are `FromRequest` ones: registering one is
//! `registry.register(MyNode)`.

use async_trait::async_trait;
use schemars::JsonSchema;
#[cfg(feature = "authoring")]
use schemars::{Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::check::Checker;
use super::node::{Branch, Call, Mode, NodeType, cannot_resume};
use super::{NodeStop, RunContext, config};
use crate::model::NodeDefinition;

#[async_trait]
pub trait Node: Send + Sync + 'static {
    /// What a definition's `config` holds: read (strictly) when a definition is
    /// validated, and (leniently) once per loaded definition for its runs. Its
    /// JSON Schema is the one editors get.
    type Config: DeserializeOwned + JsonSchema + Send + Sync + 'static;

    /// The `type` written in definitions.
    fn name(&self) -> &'static str;

    /// Which workflows the type may appear in.
    fn mode(&self) -> Mode {
        Mode::Any
    }

    /// A type for the project's own tests, left out of the schema users' editors read.
    fn test_only(&self) -> bool {
        false
    }

    /// Reports what the config's type cannot say (a required field, a range); `at`
    /// is the config's JSON path.
    fn check(&self, _config: &Self::Config, _at: &str, _check: &mut Checker) {}

    /// The branch `index` of a node with this config, when it may have one: what
    /// validation allows and how the viewer draws it.
    fn branch(&self, _config: &Self::Config, _index: &str) -> Option<Branch> {
        None
    }

    /// The branches a node has even when its definition leaves them out: an empty
    /// one, through which the walk goes straight on (a condition's false side).
    fn implied_branches(&self) -> &'static [&'static str] {
        &[]
    }

    /// The workflow a node with this config calls, when it calls one: deploys
    /// and cycle checks follow it.
    fn calls(&self, _config: &Self::Config) -> Option<Call> {
        None
    }

    /// Runs the node: `Ok(result)` resolves its job and the walk goes on.
    async fn run(
        &self,
        config: &Self::Config,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop>;

    /// Goes on with a node that paused ([`NodeStop::Pause`]), itself or in one of
    /// its branches, from the `frame` it saved. Only such nodes implement it.
    async fn resume(
        &self,
        _config: &Self::Config,
        node: &NodeDefinition,
        _cx: &mut RunContext<'_>,
        _frame: Value,
    ) -> Result<Value, NodeStop> {
        Err(cannot_resume(node))
    }
}

/// The config of `node` as `N` reads it: kept with the definition after the
/// first read.
fn config_of<N: Node>(node: &NodeDefinition) -> Result<std::sync::Arc<N::Config>, NodeStop> {
    node.parsed()
        .get_or_read(|| config::parse::<N::Config>(&node.config))
}

#[async_trait]
impl<N: Node> NodeType for N {
    fn name(&self) -> &'static str {
        Node::name(self)
    }

    fn mode(&self) -> Mode {
        Node::mode(self)
    }

    fn test_only(&self) -> bool {
        Node::test_only(self)
    }

    /// A config that does not read has no branches to judge: its own problem is
    /// reported already.
    fn allows_branch(&self, config: &Value, index: &str) -> bool {
        config::parse::<N::Config>(config).map_or(true, |c| Node::branch(self, &c, index).is_some())
    }

    fn branch(&self, node: &NodeDefinition, index: &str) -> Option<Branch> {
        Node::branch(self, &*config_of::<N>(node).ok()?, index)
    }

    fn implied_branches(&self) -> &'static [&'static str] {
        Node::implied_branches(self)
    }

    fn calls(&self, node: &NodeDefinition) -> Option<Call> {
        Node::calls(self, &*config_of::<N>(node).ok()?)
    }

    #[cfg(feature = "authoring")]
    fn config_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<N::Config>()
    }

    #[cfg(feature = "authoring")]
    fn validate(&self, config: &Value, at: &str, check: &mut Checker) {
        if let Some(c) = config::read::<N::Config>(config, at, check) {
            self.check(&c, at, check);
        }
    }

    async fn run(&self, node: &NodeDefinition, cx: &mut RunContext<'_>) -> Result<Value, NodeStop> {
        let config = config_of::<N>(node)?;
        Node::run(self, &config, node, cx).await
    }

    async fn resume(
        &self,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
        frame: Value,
    ) -> Result<Value, NodeStop> {
        let config = config_of::<N>(node)?;
        Node::resume(self, &config, node, cx, frame).await
    }
}
