//! How a run stops early: a node's own stop, and the halt that carries it up
//! through every enclosing branch to the execution.

use serde::Serialize;
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
    /// becomes the node's own pause, keeping `frame` (the node's state) with the
    /// branch's position under `inner`; any other halt travels on.
    pub fn pause_with(self, mut frame: Value) -> NodeStop {
        match self.pause {
            Some(pause) => {
                if let Value::Object(map) = &mut frame {
                    map.insert(
                        "inner".into(),
                        serde_json::to_value(&pause.cursor).unwrap_or(Value::Null),
                    );
                }
                NodeStop::Pause {
                    frame,
                    waits: pause.waits,
                }
            }
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
            ExecutionStatus::Error => JobStatus::Error,
        }
    }
}

/// How each branch of a parallel run ended: `None` while running (or canceled).
pub type BranchOutcome = Option<Result<(), Halt>>;

/// Decides a parallel run from its branches' outcomes so far: `Some(resolved?)` once
/// settled.
pub type Decider<'a> = &'a (dyn Fn(&[BranchOutcome]) -> Option<bool> + Sync);
