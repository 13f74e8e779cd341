//! The graph walk: a list of nodes runs top to bottom; a branching node runs its
//! branches through [`super::RunContext::run_branch`], and the walk continues after
//! it once they are done. A halt anywhere ends the whole execution.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};

use super::halt::{BranchOutcome, Decider, Halt, Reply};
use super::state::{RunContext, RunState};
use super::subflow::Subflows;
use crate::model::{ExecutionStatus, JobStatus, NodeDefinition};
use crate::nodes::NodeRegistry;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Bounds that keep a bad graph from running forever.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_node_runs: usize,
    /// Iterations one loop node may run.
    pub max_loop_iterations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_node_runs: 10_000,
            max_loop_iterations: 1_000,
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
    /// Set once by the application; weak because the implementation runs this engine.
    subflows: OnceLock<Weak<dyn Subflows>>,
}

impl Engine {
    pub fn new(registry: Arc<NodeRegistry>, limits: Limits) -> Self {
        Self {
            registry,
            limits,
            subflows: OnceLock::new(),
        }
    }

    /// Connects the `subflow` node to the application's implementation.
    pub fn set_subflows(&self, subflows: Weak<dyn Subflows>) {
        let _ = self.subflows.set(subflows);
    }

    pub fn subflows(&self) -> Option<Arc<dyn Subflows>> {
        self.subflows.get().and_then(Weak::upgrade)
    }

    pub fn registry(&self) -> &NodeRegistry {
        &self.registry
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Runs branches concurrently, each on its own fork of the state. After each branch
    /// finishes, `decide` sees every branch's outcome so far (`None` = still running)
    /// and answers `Some(resolved?)` once the outcome is settled; branches still
    /// running then are dropped and their pending jobs recorded as `canceled`. A
    /// terminal halt (`end`, `response`) in any branch ends everything at once.
    /// Returns each branch's outcome in branch order (`None` = canceled).
    pub(super) async fn run_parallel(
        &self,
        node: &NodeDefinition,
        indexes: &[String],
        state: &mut RunState,
        decide: Decider<'_>,
    ) -> Result<Vec<BranchOutcome>, Halt> {
        use futures_util::stream::{FuturesUnordered, StreamExt};

        let empty: Vec<NodeDefinition> = Vec::new();
        let mut forks: Vec<RunState> = indexes.iter().map(|_| state.fork()).collect();
        let mut outcomes: Vec<BranchOutcome> = vec![None; indexes.len()];
        let mut terminal = None;
        {
            let mut running: FuturesUnordered<_> = forks
                .iter_mut()
                .zip(indexes)
                .enumerate()
                .map(|(i, (fork, index))| {
                    let nodes = node.branch(index).unwrap_or(&empty);
                    async move { (i, self.run_nodes(nodes, fork).await) }
                })
                .collect();
            while let Some((i, outcome)) = running.next().await {
                if let Err(halt) = &outcome
                    && halt.terminal
                {
                    terminal = Some(halt.clone());
                }
                outcomes[i] = Some(outcome);
                if terminal.is_some() || decide(&outcomes).is_some() {
                    break;
                }
            }
        }
        let base = state.results().clone();
        for (i, fork) in forks.into_iter().enumerate() {
            state.join(fork, outcomes[i].is_none(), &base);
        }
        match terminal {
            Some(halt) => Err(halt),
            None => Ok(outcomes),
        }
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
                    return Err(state.error_job(node, message, true));
                }
                let Some(kind) = self.registry.get(&node.kind) else {
                    let message = format!("unknown node type {:?}", node.kind);
                    return Err(state.error_job(node, message, false));
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
