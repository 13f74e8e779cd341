//! What hookflow counts, as a port: each request answered and each run that
//! ended. `hookflow serve` keeps them for Prometheus (`GET /metrics`); the Lambdas
//! print them as CloudWatch Embedded Metric Format lines ([`super::aws::Emf`]).

use std::time::Duration;

use crate::model::{Execution, ExecutionStatus};

/// The `hook` label of requests to no deployed, enabled workflow: callers choose
/// those ids, so they are never labels of their own.
pub const UNKNOWN_HOOK: &str = "unknown";

pub trait Telemetry: Send + Sync {
    /// A webhook request was answered with `status`; `hook` is its hook id, or
    /// [`UNKNOWN_HOOK`].
    fn request(&self, hook: &str, status: u16);

    /// A run ended (not paused) after `took` since it was created.
    fn execution(&self, workflow: &str, status: ExecutionStatus, took: Duration);

    /// A body did not match its hook's `trigger.schema`: refused with 422, or
    /// `kept` as an `invalid` execution. Counted apart from the answers, which
    /// cannot tell it from a workflow whose own response is a 422.
    fn body_mismatch(&self, hook: &str, kept: bool);

    /// A run of `workflow` was skipped as stale (`options.staleGuard`).
    fn stale_skipped(&self, workflow: &str);

    /// `deliveries` of `workflow` were gathered into one run, `kind`
    /// `debounced` or `batched`.
    fn gathered(&self, workflow: &str, kind: &'static str, deliveries: usize);
}

/// The `outcome` label of [`Telemetry::body_mismatch`].
pub fn mismatch_outcome(kept: bool) -> &'static str {
    if kept { "kept" } else { "refused" }
}

/// Counts nothing.
pub struct NoTelemetry;

impl Telemetry for NoTelemetry {
    fn request(&self, _hook: &str, _status: u16) {}
    fn execution(&self, _workflow: &str, _status: ExecutionStatus, _took: Duration) {}
    fn body_mismatch(&self, _hook: &str, _kept: bool) {}
    fn stale_skipped(&self, _workflow: &str) {}
    fn gathered(&self, _workflow: &str, _kind: &'static str, _deliveries: usize) {}
}

/// Counts an execution just recorded, if it ended: its time from `createdAt` to
/// `finishedAt`. Called after a successful save only, so a run whose save failed
/// and is delivered again counts once.
pub fn count_recorded(telemetry: &dyn Telemetry, execution: &Execution) {
    if !execution.status.is_final() || execution.paused.is_some() {
        return;
    }
    let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    let took = match (
        at(&execution.created_at),
        execution.finished_at.as_deref().and_then(at),
    ) {
        (Some(from), Some(to)) => (to - from).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    };
    telemetry.execution(&execution.workflow_key, execution.status, took);
}
