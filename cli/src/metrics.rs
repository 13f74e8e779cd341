//! `GET /metrics` of `hookflow serve`: the [`Telemetry`] port kept in
//! `prometheus-client` metrics and encoded in the text exposition format, with
//! the queue's depth and the paused executions read at each scrape.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hookflow::model::ExecutionStatus;
use hookflow::ports::Telemetry;
use hookflow::ports::embedded::EmbeddedQueue;
use hookflow::ports::telemetry::mismatch_outcome;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of the exposition `encode` writes (OpenMetrics text, which
/// Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    hook: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExecutionLabels {
    workflow: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MismatchLabels {
    hook: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GatherLabels {
    workflow: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkflowLabel {
    workflow: String,
}

/// 1 ms to about 9 minutes, doubling.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    executions: Family<ExecutionLabels, Counter>,
    mismatches: Family<MismatchLabels, Counter>,
    durations: Family<WorkflowLabel, Histogram, fn() -> Histogram>,
    queue_depth: Gauge,
    paused: Gauge,
    stale_skips: Family<WorkflowLabel, Counter>,
    gathered_runs: Family<GatherLabels, Counter>,
    gathered_deliveries: Family<GatherLabels, Counter>,
    lane_backlog: Family<WorkflowLabel, Gauge>,
    /// Workflows a backlog was read for: set to 0 when their backlog is gone.
    backlogged: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Read at each scrape; `None` when the queue is SQS (CloudWatch has its depth).
    queue: Option<Arc<EmbeddedQueue>>,
    /// Whether callers other than loopback may read them: the labels name hook
    /// ids, the secret part of the webhook URLs.
    public: bool,
}

impl Metrics {
    pub fn new(queue: Option<Arc<EmbeddedQueue>>, public: bool) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "hookflow_requests",
            "Webhook requests answered, by hook id (\"unknown\" for hooks of no enabled workflow) and status code",
            requests.clone(),
        );
        let executions = Family::<ExecutionLabels, Counter>::default();
        registry.register(
            "hookflow_executions",
            "Runs that ended, by workflow and status",
            executions.clone(),
        );
        let mismatches = Family::<MismatchLabels, Counter>::default();
        registry.register(
            "hookflow_schema_mismatches",
            "Bodies that did not match their hook's trigger.schema, by hook id and outcome (refused: 422; kept: recorded invalid)",
            mismatches.clone(),
        );
        let durations = Family::<WorkflowLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        registry.register(
            "hookflow_execution_duration_seconds",
            "Time from a run's start (an async run: its acceptance) to its end",
            durations.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "hookflow_queue_depth",
            "Async runs and wake-ups queued or running now",
            queue_depth.clone(),
        );
        let paused = Gauge::default();
        registry.register(
            "hookflow_paused_executions",
            "Executions paused until a time (delay nodes, retry waits)",
            paused.clone(),
        );
        let stale_skips = Family::<WorkflowLabel, Counter>::default();
        registry.register(
            "hookflow_stale_skips",
            "Runs skipped as stale by options.staleGuard, by workflow",
            stale_skips.clone(),
        );
        let gathered_runs = Family::<GatherLabels, Counter>::default();
        registry.register(
            "hookflow_gathered_runs",
            "Runs made of gathered deliveries, by workflow and kind (debounced, batched)",
            gathered_runs.clone(),
        );
        let gathered_deliveries = Family::<GatherLabels, Counter>::default();
        registry.register(
            "hookflow_gathered_deliveries",
            "Deliveries gathered into runs, by workflow and kind (debounced, batched)",
            gathered_deliveries.clone(),
        );
        let lane_backlog = Family::<WorkflowLabel, Gauge>::default();
        registry.register(
            "hookflow_lane_backlog",
            "Runs waiting their turn in a lane or under options.concurrency, by workflow",
            lane_backlog.clone(),
        );
        Self {
            gathered_runs,
            gathered_deliveries,
            stale_skips,
            lane_backlog,
            backlogged: Default::default(),
            registry,
            requests,
            executions,
            mismatches,
            durations,
            queue_depth,
            paused,
            queue,
            public,
        }
    }

    /// Whether a caller at `peer` sending `headers` may read them: one on this
    /// machine (as the viewer decides), or anyone when public.
    pub fn readable_from(&self, peer: Option<IpAddr>, headers: &http::HeaderMap) -> bool {
        self.public || crate::local_caller::is_local(peer, headers)
    }

    /// The exposition, the gauges read now.
    pub async fn render(&self) -> String {
        if let Some(queue) = &self.queue {
            if let Ok(depth) = queue.depth().await {
                self.queue_depth
                    .set(i64::try_from(depth).unwrap_or(i64::MAX));
            }
            if let Ok(paused) = queue.delayed().await {
                self.paused.set(i64::try_from(paused).unwrap_or(i64::MAX));
            }
            if let Ok(backlog) = queue.lane_backlog().await {
                self.set_backlog(backlog);
            }
        }
        let mut text = String::new();
        if let Err(e) = encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        text
    }
}

impl Metrics {
    fn set_backlog(&self, backlog: Vec<(String, usize)>) {
        let mut seen = self
            .backlogged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for workflow in seen.iter() {
            self.lane_backlog
                .get_or_create(&WorkflowLabel {
                    workflow: workflow.clone(),
                })
                .set(0);
        }
        for (workflow, waiting) in backlog {
            self.lane_backlog
                .get_or_create(&WorkflowLabel {
                    workflow: workflow.clone(),
                })
                .set(i64::try_from(waiting).unwrap_or(i64::MAX));
            seen.insert(workflow);
        }
    }
}

impl Telemetry for Metrics {
    fn gathered(&self, workflow: &str, kind: &'static str, deliveries: usize) {
        let labels = GatherLabels {
            workflow: workflow.to_string(),
            kind,
        };
        self.gathered_runs.get_or_create(&labels).inc();
        self.gathered_deliveries
            .get_or_create(&labels)
            .inc_by(deliveries as u64);
    }

    fn stale_skipped(&self, workflow: &str) {
        self.stale_skips
            .get_or_create(&WorkflowLabel {
                workflow: workflow.to_string(),
            })
            .inc();
    }

    fn request(&self, hook: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                hook: hook.to_string(),
                status: status.to_string(),
            })
            .inc();
    }

    fn execution(&self, workflow: &str, status: ExecutionStatus, took: Duration) {
        self.executions
            .get_or_create(&ExecutionLabels {
                workflow: workflow.to_string(),
                status: status.as_str().to_string(),
            })
            .inc();
        self.durations
            .get_or_create(&WorkflowLabel {
                workflow: workflow.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    fn body_mismatch(&self, hook: &str, kept: bool) {
        self.mismatches
            .get_or_create(&MismatchLabels {
                hook: hook.to_string(),
                outcome: mismatch_outcome(kept),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_reads_hook_ids_unless_public() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let local6: IpAddr = "::1".parse().unwrap();
        let remote: IpAddr = "203.0.113.7".parse().unwrap();
        let mut direct = http::HeaderMap::new();
        direct.insert("host", http::HeaderValue::from_static("localhost:3000"));
        let mut proxied = direct.clone();
        proxied.insert(
            "x-forwarded-for",
            http::HeaderValue::from_static("203.0.113.7"),
        );
        let private = Metrics::new(None, false);
        assert!(private.readable_from(Some(local), &direct));
        assert!(private.readable_from(Some(local6), &direct));
        assert!(!private.readable_from(Some(remote), &direct));
        assert!(!private.readable_from(None, &direct));
        assert!(!private.readable_from(Some(local), &proxied));
        assert!(Metrics::new(None, true).readable_from(Some(remote), &proxied));
    }

    #[test]
    fn counts_are_encoded_with_their_labels() {
        let metrics = Metrics::new(None, false);
        metrics.request("h-1", 200);
        metrics.request("h-1", 200);
        metrics.execution("k", ExecutionStatus::Failed, Duration::from_millis(3));
        let text = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(metrics.render());
        assert!(
            text.contains("hookflow_requests_total{hook=\"h-1\",status=\"200\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("hookflow_executions_total{workflow=\"k\",status=\"failed\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "hookflow_execution_duration_seconds_bucket{le=\"0.004\",workflow=\"k\"} 1\n"
            ),
            "{text}"
        );
    }
}
