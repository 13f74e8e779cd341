//! The graph walk: a list of nodes runs top to bottom; a branching node runs its
//! branches through [`super::RunContext::run_branch`], and the walk continues after
//! it once they are done. A halt anywhere ends the whole execution.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::halt::{Halt, Reply};
use super::state::{RunContext, RunState};
use crate::model::{ExecutionStatus, JobStatus, NodeDefinition};
use crate::nodes::NodeRegistry;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Bounds that keep a bad graph from running forever.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_node_runs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_node_runs: 10_000,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: ExecutionStatus,
    /// Set when a response node answered (sync workflows).
    pub reply: Option<Reply>,
}

pub struct Engine {
    registry: Arc<NodeRegistry>,
    limits: Limits,
}

impl Engine {
    pub fn new(registry: Arc<NodeRegistry>, limits: Limits) -> Self {
        Self { registry, limits }
    }

    pub fn registry(&self) -> &NodeRegistry {
        &self.registry
    }

    /// Runs a workflow's main line to its end.
    pub async fn run(&self, nodes: &[NodeDefinition], state: &mut RunState) -> Outcome {
        match self.run_nodes(nodes, state).await {
            Ok(()) => Outcome {
                status: ExecutionStatus::Resolved,
                reply: None,
            },
            Err(halt) => Outcome {
                status: halt.status,
                reply: halt.reply,
            },
        }
    }

    /// Runs a list of nodes; boxed because branches recurse through it.
    pub(super) fn run_nodes<'a>(
        &'a self,
        nodes: &'a [NodeDefinition],
        state: &'a mut RunState,
    ) -> BoxFuture<'a, Result<(), Halt>> {
        Box::pin(async move {
            for node in nodes {
                // Lets a timeout around the run fire even when no node ever waits.
                tokio::task::consume_budget().await;
                if !state.count_node_run(self.limits.max_node_runs) {
                    let message = format!(
                        "the execution ran more than {} nodes and was stopped",
                        self.limits.max_node_runs
                    );
                    return Err(state.error_job(node, message));
                }
                let Some(kind) = self.registry.get(&node.kind) else {
                    let message = format!("unknown node type {:?}", node.kind);
                    return Err(state.error_job(node, message));
                };
                let job = state.start_job(node);
                let result = {
                    let mut cx = RunContext {
                        engine: self,
                        state: &mut *state,
                        job,
                    };
                    kind.run(node, &mut cx).await
                };
                match result {
                    Ok(value) => state.finish_job(job, JobStatus::Resolved, value),
                    Err(stop) => return Err(state.stop_job(job, stop)),
                }
            }
            Ok(())
        })
    }
}
