//! The graph walk: a list of nodes runs top to bottom; a branching node runs its
//! branches through [`super::RunContext::run_branch`], and the walk continues after
//! it once they are done. A halt anywhere ends the whole execution.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use serde_json::{Value, json};

use super::halt::{BranchOutcome, Decider, Halt, NodeStop, Pause, Reply};
use super::state::{Owned, RunContext, RunState};
use super::subflow::Subflows;
use crate::model::{Cursor, ExecutionStatus, JobStatus, NodeDefinition};
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
    /// Set when the run paused (status `started`): where, and what it waits for.
    pub pause: Option<Pause>,
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
    /// finishes, `decide` sees every branch's outcome so far (`None` = still running
    /// or waiting) and answers `Some(resolved?)` once the outcome is settled; branches
    /// still running or waiting then are dropped and their pending jobs recorded as
    /// `canceled`. A terminal halt (`end`, `response`) in any branch ends everything
    /// at once. When every branch has finished or waits and nothing is settled, the
    /// node pauses with each branch's state in its frame; `resume` is that frame.
    /// Returns each branch's outcome in branch order (`None` = canceled).
    pub(super) async fn run_parallel(
        &self,
        node: &NodeDefinition,
        indexes: &[String],
        state: &mut RunState,
        decide: Decider<'_>,
        resume: Option<&Value>,
    ) -> Result<Vec<BranchOutcome>, NodeStop> {
        use futures_util::stream::{FuturesUnordered, StreamExt};

        let empty: Vec<NodeDefinition> = Vec::new();
        let saved = SavedBranches::read(resume, indexes.len());
        let owned: Vec<Owned> = saved
            .jobs
            .iter()
            .map(|jobs| Arc::new(Mutex::new(jobs.clone())))
            .collect();
        let mut forks: Vec<RunState> = owned.iter().map(|o| state.fork(Arc::clone(o))).collect();
        // A branch that paused goes on with the variables it saw, not its siblings'.
        for (fork, results) in forks.iter_mut().zip(saved.results) {
            if let Some(results) = results {
                fork.set_results(results);
            }
        }
        let bases: Vec<Value> = forks.iter().map(|f| f.results().clone()).collect();
        let mut outcomes = saved.outcomes;
        let mut cursors = saved.cursors;
        let mut paused: Vec<Option<Pause>> = vec![None; indexes.len()];
        let mut terminal = None;
        let mut settled = decide(&outcomes).is_some();
        if !settled {
            let mut running: FuturesUnordered<_> = forks
                .iter_mut()
                .zip(indexes)
                .enumerate()
                .filter(|(i, _)| outcomes[*i].is_none())
                .map(|(i, (fork, index))| {
                    let nodes = node.branch(index).unwrap_or(&empty);
                    let cursor = cursors[i].take();
                    async move { (i, self.run_nodes_from(nodes, fork, cursor).await) }
                })
                .collect();
            while let Some((i, outcome)) = running.next().await {
                match outcome {
                    Err(halt) if halt.is_paused() => paused[i] = halt.pause.map(|p| *p),
                    Err(halt) if halt.terminal => {
                        terminal = Some(halt);
                        break;
                    }
                    outcome => outcomes[i] = Some(outcome),
                }
                if decide(&outcomes).is_some() {
                    settled = true;
                    break;
                }
            }
        }
        let mut views: Vec<Option<Value>> = vec![None; forks.len()];
        for (i, fork) in forks.into_iter().enumerate() {
            if paused[i].is_some() {
                views[i] = Some(fork.results().clone());
            }
            state.join(fork, &bases[i]);
        }
        if terminal.is_some() || settled {
            for (i, owned) in owned.iter().enumerate() {
                if outcomes[i].is_none() {
                    state.cancel_pending(owned);
                }
            }
        }
        if let Some(halt) = terminal {
            return Err(NodeStop::Halted(halt));
        }
        if !settled && paused.iter().any(Option::is_some) {
            return Err(SavedBranches::pause(
                state, &outcomes, paused, views, &owned,
            ));
        }
        Ok(outcomes)
    }

    /// Runs a workflow's main line to its end, or to a pause.
    pub async fn run(&self, nodes: &[NodeDefinition], state: &mut RunState) -> Outcome {
        Outcome::of(self.run_nodes_from(nodes, state, None).await)
    }

    /// Goes on with a paused run from where it stopped.
    pub async fn resume(
        &self,
        nodes: &[NodeDefinition],
        state: &mut RunState,
        cursor: Cursor,
    ) -> Outcome {
        Outcome::of(self.run_nodes_from(nodes, state, Some(cursor)).await)
    }

    /// Runs a list of nodes, from the start or from a paused node; boxed because
    /// branches recurse through it.
    pub(super) fn run_nodes_from<'a>(
        &'a self,
        nodes: &'a [NodeDefinition],
        state: &'a mut RunState,
        resume: Option<Cursor>,
    ) -> BoxFuture<'a, Result<(), Halt>> {
        Box::pin(async move {
            if let Some(cursor) = &resume
                && !nodes
                    .get(cursor.index)
                    .is_some_and(|n| state.is_pending_job_of(cursor.job, &n.key))
            {
                tracing::error!(
                    ?cursor,
                    "a paused run's position does not match its workflow"
                );
                return Err(Halt::terminal(ExecutionStatus::Error, None));
            }
            let first = resume.as_ref().map_or(0, |c| c.index);
            let mut resume = resume;
            for (index, node) in nodes.iter().enumerate().skip(first) {
                // Lets a timeout around the run fire even when no node ever waits.
                tokio::task::consume_budget().await;
                let Some(kind) = self.registry.get(&node.kind) else {
                    let message = format!("unknown node type {:?}", node.kind);
                    return Err(state.error_job(node, message, false));
                };
                let (job, result) = match resume.take() {
                    // The paused node: counted and its job started before the pause.
                    Some(cursor) => {
                        let mut cx = RunContext {
                            engine: self,
                            state: &mut *state,
                            job: cursor.job,
                        };
                        (cursor.job, kind.resume(node, &mut cx, cursor.frame).await)
                    }
                    None => {
                        if !state.count_node_run(self.limits.max_node_runs) {
                            let message = format!(
                                "the execution ran more than {} nodes and was stopped",
                                self.limits.max_node_runs
                            );
                            return Err(state.error_job(node, message, true));
                        }
                        let job = state.start_job(node);
                        let mut cx = RunContext {
                            engine: self,
                            state: &mut *state,
                            job,
                        };
                        (job, kind.run(node, &mut cx).await)
                    }
                };
                match result {
                    Ok(value) => state.finish_job(job, JobStatus::Resolved, value),
                    Err(NodeStop::Pause { frame, waits }) => {
                        let cursor = Cursor { index, job, frame };
                        return Err(Halt::paused(cursor, waits));
                    }
                    Err(NodeStop::Halted(halt)) if halt.is_paused() => {
                        let message =
                            format!("a {} node cannot wait inside its branches", node.kind);
                        return Err(state.stop_job(job, NodeStop::Error(message)));
                    }
                    Err(stop) => return Err(state.stop_job(job, stop)),
                }
            }
            Ok(())
        })
    }
}

impl Outcome {
    fn of(walk: Result<(), Halt>) -> Self {
        match walk {
            Ok(()) => Outcome {
                status: ExecutionStatus::Resolved,
                reply: None,
                pause: None,
            },
            Err(halt) => Outcome {
                status: halt.status,
                reply: halt.reply,
                pause: halt.pause.map(|p| *p),
            },
        }
    }
}

/// A parallel node's branches as a pause left them (`frame.branches`, one per
/// branch: `{status}` when finished, `{status: "paused", cursor, jobs, results}`
/// when waiting, with the pending jobs it owns and the variables it saw).
struct SavedBranches {
    outcomes: Vec<BranchOutcome>,
    cursors: Vec<Option<Cursor>>,
    jobs: Vec<Vec<usize>>,
    results: Vec<Option<Value>>,
}

impl SavedBranches {
    fn read(frame: Option<&Value>, count: usize) -> Self {
        let mut saved = Self {
            outcomes: vec![None; count],
            cursors: vec![None; count],
            jobs: vec![Vec::new(); count],
            results: vec![None; count],
        };
        let branches = frame
            .and_then(|f| f.get("branches"))
            .and_then(Value::as_array);
        for (i, branch) in branches.into_iter().flatten().take(count).enumerate() {
            match branch.get("status").and_then(Value::as_str) {
                Some("paused") => {
                    saved.cursors[i] = branch
                        .get("cursor")
                        .cloned()
                        .and_then(|c| serde_json::from_value(c).ok());
                    saved.jobs[i] = branch
                        .get("jobs")
                        .cloned()
                        .and_then(|j| serde_json::from_value(j).ok())
                        .unwrap_or_default();
                    saved.results[i] = branch.get("results").cloned();
                }
                Some("resolved") => saved.outcomes[i] = Some(Ok(())),
                Some(other) => {
                    let status = serde_json::from_value(Value::String(other.to_string()))
                        .unwrap_or(ExecutionStatus::Failed);
                    saved.outcomes[i] = Some(Err(Halt::new(status)));
                }
                None => {}
            }
        }
        saved
    }

    /// The parallel node's pause: what each branch did, and what they all wait for.
    fn pause(
        state: &RunState,
        outcomes: &[BranchOutcome],
        paused: Vec<Option<Pause>>,
        mut views: Vec<Option<Value>>,
        owned: &[Owned],
    ) -> NodeStop {
        let mut waits = Vec::new();
        let branches: Vec<Value> = paused
            .into_iter()
            .enumerate()
            .map(|(i, pause)| match (pause, &outcomes[i]) {
                (Some(pause), _) => {
                    waits.extend(pause.waits);
                    json!({
                        "status": "paused",
                        "cursor": pause.cursor,
                        "jobs": state.pending_of(&owned[i]),
                        "results": views[i].take(),
                    })
                }
                (None, Some(Ok(()))) => json!({ "status": "resolved" }),
                (None, Some(Err(halt))) => json!({ "status": halt.status.as_str() }),
                (None, None) => json!({ "status": "canceled" }),
            })
            .collect();
        NodeStop::Pause {
            frame: json!({ "branches": branches }),
            waits,
        }
    }
}
