//! What a run did at each node: the status its jobs ended in, or `skipped` when
//! the run never reached it.

use std::collections::HashMap;

use super::layout::Edge;
use crate::model::{Execution, Job};

/// The `data-status` of a node the run did not reach.
pub const SKIPPED: &str = "skipped";

/// The jobs of one execution by node key.
#[derive(Debug, Default)]
pub struct NodeRuns<'a> {
    by_key: HashMap<&'a str, Vec<&'a Job>>,
}

impl<'a> NodeRuns<'a> {
    pub fn of(execution: &'a Execution) -> Self {
        let mut by_key: HashMap<&str, Vec<&Job>> = HashMap::new();
        for job in &execution.jobs {
            by_key.entry(job.node_key.as_str()).or_default().push(job);
        }
        Self { by_key }
    }

    /// The node's last job's status (a loop's body runs once per item), or
    /// [`SKIPPED`].
    pub fn status(&self, key: &str) -> &'static str {
        self.jobs(key)
            .last()
            .map_or(SKIPPED, |job| job.status.as_str())
    }

    pub fn jobs(&self, key: &str) -> &[&'a Job] {
        self.by_key.get(key).map_or(&[], Vec::as_slice)
    }

    pub fn reached(&self, key: &str) -> bool {
        !self.jobs(key).is_empty()
    }

    /// Whether the run went along an arrow: both its ends reached, and for an
    /// empty branch's arrow, none of the other branches taken instead.
    pub fn took(&self, edge: &Edge) -> bool {
        self.reached(&edge.from)
            && edge.to.as_deref().is_none_or(|to| self.reached(to))
            && !edge.alternatives.iter().any(|key| self.reached(key))
    }
}

/// A status as a symbol that reads without colour.
pub fn icon(status: &str) -> &'static str {
    match status {
        "resolved" => "✓",
        "failed" => "✗",
        "error" => "!",
        // Refused at the door by trigger.schema: kept, never run.
        "invalid" => "≠",
        "pending" | "started" => "‖",
        "aborted" | "canceled" => "⊘",
        SKIPPED => "–",
        _ => "•",
    }
}
