//! The engine as the rest of the library holds it: its node types, its limits and
//! the application's subflow runner. How it walks a graph is `walk.rs`'s; a run's
//! context (`state.rs`) holds the engine, so this sits below both.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use super::node::NodeRegistry;
use super::subflow::Subflows;

/// Bounds that keep a bad graph from running forever. The node runs, executions
/// and time are one budget for a run and every subflow run under it (see
/// [`super::Budget`]), so a workflow that calls itself ends.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Node runs of a run and its subflow runs, all together.
    pub max_node_runs: usize,
    /// Executions a run and its subflow runs start, the run itself included.
    pub max_executions: usize,
    /// How long a run and the subflow runs it waits for may work without pausing.
    pub max_busy: Duration,
    /// Iterations one loop node may run.
    pub max_loop_iterations: usize,
    /// Bytes one execution keeps of job results, logs and output, as JSON text:
    /// what its record holds and what its run holds in memory. A loop whose
    /// items each render a large body stops here, not at the machine's RAM.
    pub max_kept_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_node_runs: 10_000,
            max_executions: 1_000,
            // A Lambda invocation's own ceiling: no run outlives the one it began in.
            max_busy: Duration::from_secs(15 * 60),
            max_loop_iterations: 1_000,
            // Four results of the largest size one may have (`MAX_RESULT_BYTES`).
            max_kept_bytes: 32 << 20,
        }
    }
}

pub struct Engine {
    pub(super) registry: Arc<NodeRegistry>,
    pub(super) limits: Limits,
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

    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}
