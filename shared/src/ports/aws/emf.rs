//! [`Telemetry`] for Lambda: one CloudWatch Embedded Metric Format line on stdout
//! per event. CloudWatch Logs turns the lines into metrics (namespace `hookflow`),
//! so counting costs no AWS call and no time on the request's path beyond a write.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::model::ExecutionStatus;
use crate::ports::telemetry::{Telemetry, mismatch_outcome};

pub const NAMESPACE: &str = "hookflow";

/// Where the lines go: stdout on Lambda.
type Sink = Box<dyn Fn(&str) + Send + Sync>;

pub struct Emf {
    sink: Sink,
}

impl Emf {
    /// Lines on stdout, which Lambda sends to CloudWatch Logs.
    pub fn stdout() -> Self {
        Self::to(|line| {
            // One write per line, so lines from concurrent runs never interleave.
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
        })
    }

    /// Lines (each ending in a newline) handed to `sink`.
    pub fn to(sink: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self {
            sink: Box::new(sink),
        }
    }

    /// One metric line: `metrics` (name, unit, value) under `dimensions`.
    pub fn line(dimensions: &[(&str, &str)], metrics: &[(&str, &str, f64)]) -> Value {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let names: Vec<&str> = dimensions.iter().map(|(name, _)| *name).collect();
        let definitions: Vec<Value> = metrics
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
            .collect();
        let mut line = json!({
            "_aws": {
                "Timestamp": u64::try_from(now).unwrap_or(u64::MAX),
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [names],
                    "Metrics": definitions,
                }],
            },
        });
        for (name, value) in dimensions {
            line[*name] = json!(value);
        }
        for (name, _, value) in metrics {
            line[*name] = json!(value);
        }
        line
    }

    fn print(&self, line: &Value) {
        let mut text = line.to_string();
        text.push('\n');
        (self.sink)(&text);
    }
}

impl Telemetry for Emf {
    fn request(&self, hook: &str, status: u16) {
        let status = status.to_string();
        self.print(&Self::line(
            &[("hook", hook), ("status", &status)],
            &[("hookflow_requests_total", "Count", 1.0)],
        ));
    }

    fn execution(&self, workflow: &str, status: ExecutionStatus, took: Duration) {
        self.print(&Self::line(
            &[("workflow", workflow), ("status", status.as_str())],
            &[
                ("hookflow_executions_total", "Count", 1.0),
                (
                    "hookflow_execution_duration_seconds",
                    "Seconds",
                    took.as_secs_f64(),
                ),
            ],
        ));
    }

    fn body_mismatch(&self, hook: &str, kept: bool) {
        self.print(&Self::line(
            &[("hook", hook), ("outcome", mismatch_outcome(kept))],
            &[("hookflow_schema_mismatches_total", "Count", 1.0)],
        ));
    }

    fn stale_skipped(&self, workflow: &str) {
        self.print(&Self::line(
            &[("workflow", workflow)],
            &[("hookflow_stale_skips_total", "Count", 1.0)],
        ));
    }

    fn gathered(&self, workflow: &str, kind: &'static str, deliveries: usize) {
        self.print(&Self::line(
            &[("workflow", workflow), ("kind", kind)],
            &[
                ("hookflow_gathered_runs_total", "Count", 1.0),
                (
                    "hookflow_gathered_deliveries_total",
                    "Count",
                    deliveries as f64,
                ),
            ],
        ));
    }
}
