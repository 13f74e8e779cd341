//! When a write of an execution record applies, given the record the store holds:
//! each rule of execution state written once, here, and translated by each
//! adapter (a SQL `WHERE`, a DynamoDB `ConditionExpression`) so the check and the
//! write are one atomic step. [`Precondition::holds`] is the rule itself; the
//! contract suite runs every variant against every state on both adapters.

use crate::model::{Execution, ExecutionStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition<'a> {
    /// No record with its id yet: the first delivery of a run records it once.
    Absent,
    /// Whatever the store holds: the record of a run its worker holds.
    Always,
    /// No record, or one still running and not paused: a late or duplicate
    /// delivery never overwrites a finished or paused record (a paused one changes
    /// only through [`Precondition::PausedOn`]).
    Running,
    /// A record paused on this token: only the wake-up its pause waits for
    /// resumes it, once.
    PausedOn(&'a str),
}

impl Precondition<'_> {
    /// Whether a write under this precondition applies over `held`, the record the
    /// store holds (`None`: none).
    pub fn holds(&self, held: Option<&Execution>) -> bool {
        match (self, held) {
            (Self::Always, _) | (Self::Absent | Self::Running, None) => true,
            (Self::Absent, Some(_)) | (Self::PausedOn(_), None) => false,
            (Self::Running, Some(e)) => e.status == ExecutionStatus::Started && e.paused.is_none(),
            (Self::PausedOn(token), Some(e)) => {
                e.paused.as_ref().is_some_and(|p| p.token == *token)
            }
        }
    }
}
