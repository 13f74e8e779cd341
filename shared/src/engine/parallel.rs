//! Parallel branches: each runs on its own fork of the run state, concurrently;
//! the parallel node's mode decides when the outcome is settled. A pause inside
//! any branch pauses the node with every branch's state in its frame.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::halt::{BranchOutcome, Decider, Halt, NodeStop, Pause};
use super::instance::Engine;
use super::state::{Owned, RunState};
use crate::model::{Cursor, ExecutionStatus, NodeDefinition};

impl Engine {
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
        resume: Option<ParallelFrame>,
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
                views[i] = Some(fork.results());
            }
            state.join(fork);
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
}

/// A parallel node's frame while branches wait: one entry per branch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParallelFrame {
    branches: Vec<SavedBranch>,
}

/// One branch as a pause left it: finished (with how), or waiting with its
/// position, the pending jobs it owns and the variables it saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
enum SavedBranch {
    Paused {
        cursor: Cursor,
        #[serde(default)]
        jobs: Vec<usize>,
        #[serde(default)]
        results: Option<Value>,
    },
    Resolved,
    Failed,
    Error,
    Aborted,
    Canceled,
}

/// The branches' state read from a frame (none when starting afresh).
struct SavedBranches {
    outcomes: Vec<BranchOutcome>,
    cursors: Vec<Option<Cursor>>,
    jobs: Vec<Vec<usize>>,
    results: Vec<Option<Value>>,
}

impl SavedBranches {
    fn read(frame: Option<ParallelFrame>, count: usize) -> Self {
        let mut saved = Self {
            outcomes: vec![None; count],
            cursors: vec![None; count],
            jobs: vec![Vec::new(); count],
            results: vec![None; count],
        };
        let branches = frame.map(|f| f.branches).unwrap_or_default();
        for (i, branch) in branches.into_iter().take(count).enumerate() {
            let ended = |status| Some(Err(Halt::new(status)));
            match branch {
                SavedBranch::Paused {
                    cursor,
                    jobs,
                    results,
                } => {
                    saved.cursors[i] = Some(cursor);
                    saved.jobs[i] = jobs;
                    saved.results[i] = results;
                }
                SavedBranch::Resolved => saved.outcomes[i] = Some(Ok(())),
                SavedBranch::Failed => saved.outcomes[i] = ended(ExecutionStatus::Failed),
                SavedBranch::Error => saved.outcomes[i] = ended(ExecutionStatus::Error),
                SavedBranch::Aborted => saved.outcomes[i] = ended(ExecutionStatus::Aborted),
                SavedBranch::Canceled => saved.outcomes[i] = ended(ExecutionStatus::Canceled),
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
        let branches: Vec<SavedBranch> = paused
            .into_iter()
            .enumerate()
            .map(|(i, pause)| match (pause, &outcomes[i]) {
                (Some(pause), _) => {
                    waits.extend(pause.waits);
                    SavedBranch::Paused {
                        cursor: pause.cursor,
                        jobs: state.pending_of(&owned[i]),
                        results: views[i].take(),
                    }
                }
                (None, Some(Ok(()))) => SavedBranch::Resolved,
                (None, Some(Err(halt))) => match halt.status {
                    ExecutionStatus::Resolved => SavedBranch::Resolved,
                    ExecutionStatus::Failed => SavedBranch::Failed,
                    ExecutionStatus::Aborted => SavedBranch::Aborted,
                    ExecutionStatus::Canceled => SavedBranch::Canceled,
                    ExecutionStatus::Error
                    | ExecutionStatus::Started
                    | ExecutionStatus::Invalid => SavedBranch::Error,
                },
                (None, None) => SavedBranch::Canceled,
            })
            .collect();
        NodeStop::pause(&ParallelFrame { branches }, waits)
    }
}
