//! The engine: walks a workflow's node graph and records one job per node run.
//!
//! It knows nothing of HTTP, AWS or storage. A run takes a [`RunState`] (context,
//! variables, jobs so far) and ends in an [`Outcome`]; callers record it. Node types
//! plug in through [`crate::nodes::NodeType`], so new types touch no code here.

mod halt;
mod state;
mod subflow;
mod walk;

pub use halt::{BranchOutcome, Decider, Halt, NodeStop, Pause, Reply};
pub use state::{RunContext, RunState};
pub use subflow::{SubflowCall, SubflowResult, Subflows};
pub use walk::{Engine, Limits, Outcome};
