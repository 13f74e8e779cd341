//! The engine: walks a workflow's node graph and records one job per node run.
//!
//! It knows nothing of HTTP, AWS or storage. A run takes a [`RunState`] (context,
//! variables, jobs so far) and ends in an [`Outcome`]; callers record it. Node types
//! plug in through [`Node`] (bridged to [`NodeType`]), so new types touch no code here.

mod budget;
pub mod check;
pub mod config;
mod halt;
mod instance;
mod layered;
mod node;
mod parallel;
mod retry;
mod state;
mod subflow;
mod typed;
mod walk;

pub use budget::Budget;
pub use check::{Checker, Problem, is_header_name, is_path};
pub use halt::{BranchFrame, BranchOutcome, Decider, Halt, NodeStop, Pause, Reply, read_frame};
pub use instance::{Engine, Limits};
pub use node::{Branch, Call, Mode, NodeRegistry, NodeType};
pub use parallel::ParallelFrame;
pub use state::{RunContext, RunState};
pub use subflow::{SubflowCall, SubflowError, SubflowResult, Subflows};
pub use typed::Node;
pub use walk::Outcome;
