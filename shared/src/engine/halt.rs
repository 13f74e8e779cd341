//! How a run stops early: a node's own stop, and the halt that carries it up
//! through every enclosing branch to the execution.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Cursor, ExecutionStatus, JobStatus, Wait};

/// An HTTP answer chosen by a workflow (response node), free of any HTTP library.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reply {
    pub status_code: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

/// Why a node did not simply resolve.
#[derive(Debug)]
pub enum NodeStop {
    /// The node failed with this result; the execution fails.
    Fail(Value),
    /// Something went wrong running the node; the execution errors.
    Error(String),
    /// `end`: the whole execution ends, resolved or failed.
    End { resolved: bool },
    /// `response`: the sync answer is set and the execution resolves.
    Respond(Reply),
    /// A branch this node ran was halted; the halt travels on.
    Halted(Halt),
    /// The node waits (a delay, a paused child, or a branch that waits): the run
    /// pauses, and `frame` is what the node needs to go on when it resumes.
    Pause { frame: Value, waits: Vec<Wait> },
}

impl NodeStop {
    /// A node's own pause, with the typed state it resumes from.
    pub fn pause<F: Serialize>(frame: &F, waits: Vec<Wait>) -> Self {
        match serde_json::to_value(frame) {
            Ok(frame) => NodeStop::Pause { frame, waits },
            Err(e) => NodeStop::Error(format!("the node's pause cannot be kept: {e}")),
        }
    }
}

/// Reads the typed frame a node paused with (see [`NodeStop::pause`]); a frame
/// that does not read (an edited or damaged record) errors the node.
pub fn read_frame<F: DeserializeOwned>(frame: Value) -> Result<F, NodeStop> {
    serde_json::from_value(frame)
        .map_err(|e| NodeStop::Error(format!("the paused state cannot be read: {e}")))
}

/// A branching node's frame when a branch under it paused: the node's own state
/// and, as `inner`, where the branch stood. The state's fields sit beside `inner`
/// in the record (`{"branch": "1", "inner": {...}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BranchFrame<S> {
    #[serde(flatten)]
    pub state: S,
    pub inner: Cursor,
}

impl From<Halt> for NodeStop {
    fn from(h: Halt) -> Self {
        NodeStop::Halted(h)
    }
}

/// The end of a run before the main line finished.
#[derive(Debug, Clone, PartialEq)]
pub struct Halt {
    pub status: ExecutionStatus,
    pub reply: Option<Reply>,
    /// `end`, `response` or a safety limit: the whole execution ends here, whatever
    /// the enclosing loops or parallel branches would do with a failure.
    pub terminal: bool,
    /// Set when the run paused rather than ended: where, and what it waits for.
    pub pause: Option<Box<Pause>>,
}

/// Where a paused run stands in one list of nodes, and what it waits for.
#[derive(Debug, Clone, PartialEq)]
pub struct Pause {
    pub cursor: Cursor,
    pub waits: Vec<Wait>,
}

impl Halt {
    /// A failure that enclosing nodes may handle (a loop's `exit`, parallel modes).
    pub fn new(status: ExecutionStatus) -> Self {
        Self {
            status,
            reply: None,
            terminal: false,
            pause: None,
        }
    }

    /// The run paused at `cursor`; the execution stays `started`.
    pub fn paused(cursor: Cursor, waits: Vec<Wait>) -> Self {
        Self {
            status: ExecutionStatus::Started,
            reply: None,
            terminal: false,
            pause: Some(Box::new(Pause { cursor, waits })),
        }
    }

    pub fn is_paused(&self) -> bool {
        self.pause.is_some()
    }

    /// What a branching node answers when one of its branches halted: a pause
    /// becomes the node's own pause, a [`BranchFrame`] of the node's `state` and
    /// the branch's position; any other halt travels on.
    pub fn pause_with<S: Serialize>(self, state: S) -> NodeStop {
        match self.pause {
            Some(pause) => NodeStop::pause(
                &BranchFrame {
                    state,
                    inner: pause.cursor,
                },
                pause.waits,
            ),
            None => NodeStop::Halted(self),
        }
    }

    /// An end of the whole execution.
    pub fn terminal(status: ExecutionStatus, reply: Option<Reply>) -> Self {
        Self {
            status,
            reply,
            terminal: true,
            pause: None,
        }
    }

    /// The status a branching node's own job takes when a halt passes through it.
    pub fn job_status(&self) -> JobStatus {
        match self.status {
            ExecutionStatus::Resolved => JobStatus::Resolved,
            ExecutionStatus::Failed => JobStatus::Failed,
            ExecutionStatus::Aborted => JobStatus::Aborted,
            ExecutionStatus::Canceled => JobStatus::Canceled,
            ExecutionStatus::Started => JobStatus::Pending,
            // No node halts a run as invalid: that is decided before any runs.
            ExecutionStatus::Error | ExecutionStatus::Invalid => JobStatus::Error,
        }
    }
}

/// How each branch of a parallel run ended: `None` while running (or canceled).
pub type BranchOutcome = Option<Result<(), Halt>>;

/// Decides a parallel run from its branches' outcomes so far: `Some(resolved?)` once
/// settled.
pub type Decider<'a> = &'a (dyn Fn(&[BranchOutcome]) -> Option<bool> + Sync);
