//! What a paused execution keeps: what it waits for, and exactly where its walk
//! stopped, so it can go on later without anything held in memory meanwhile.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Something a paused execution waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Wait {
    /// A `delay` node: a point in time (RFC 3339).
    Until { node_key: String, until: String },
    /// A `subflow` node: a child execution that paused, until it finishes.
    Execution {
        node_key: String,
        execution_id: String,
    },
}

/// Where a paused walk stands in one list of nodes: the node it stopped at, that
/// node's pending job, and what the node needs to go on (its own state, with
/// cursors into its branches under `inner`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub index: usize,
    pub job: usize,
    #[serde(default)]
    pub frame: Value,
}

/// The part of a paused execution's record that lets it resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Paused {
    pub waits: Vec<Wait>,
    /// When the earliest time wait comes due; none when it waits for children only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_at: Option<String>,
    /// New at every pause. A wake-up names it, so a duplicate or stale wake-up
    /// cannot resume the same pause twice.
    pub token: String,
    /// The walk's position in the main line.
    pub cursor: Cursor,
    /// `$jobsMapByNodeKey` and `$scopes` as they stood.
    pub results: Value,
    pub scopes: Value,
    /// Node runs so far, so the cap counts across pauses.
    pub node_runs: usize,
    /// The subflow call depth the run has (0 unless a `subflow` node started it).
    #[serde(default)]
    pub depth: usize,
}

impl Paused {
    /// The earliest `until` among the waits.
    pub fn earliest_until(waits: &[Wait]) -> Option<String> {
        waits
            .iter()
            .filter_map(|w| match w {
                Wait::Until { until, .. } => Some(until.clone()),
                Wait::Execution { .. } => None,
            })
            .min()
    }
}
