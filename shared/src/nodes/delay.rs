//! `delay`: waits `duration` × `unit` milliseconds, then resolves (`endStatus` 1, the
//! default) or fails (-1). Async workflows only. While it waits nothing runs and
//! nothing is held in memory: the execution pauses, is recorded with this node's
//! job pending and the time it waits for, and a durable wake-up resumes it.

use async_trait::async_trait;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::end::EndConfig;
use crate::engine::{Checker, Mode, Node, NodeStop, RunContext, read_frame};
use crate::model::{NodeDefinition, Wait};

/// A wait longer than this is surely a mistake in the definition.
const MAX_WAIT_MS: f64 = 366.0 * 24.0 * 3_600_000.0;

pub struct Delay;

/// `duration` × `unit` milliseconds (`duration` may be templated), then
/// `endStatus`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DelayConfig {
    #[serde(default)]
    duration: Value,
    #[serde(default = "seconds")]
    unit: u64,
    // `end`'s field, written beside the others.
    #[serde(default = "super::end::resolved", rename = "endStatus")]
    end_status: i64,
}

fn seconds() -> u64 {
    1000
}

#[async_trait]
impl Node for Delay {
    type Config = DelayConfig;

    fn name(&self) -> &'static str {
        "delay"
    }

    fn mode(&self) -> Mode {
        Mode::AsyncOnly
    }

    fn check(&self, c: &DelayConfig, at: &str, check: &mut Checker) {
        match &c.duration {
            Value::Number(n) if n.as_f64().is_some_and(|d| d >= 0.0) => {}
            Value::String(s) if s.contains("{{") => {}
            _ => check.error(
                format!("{at}.duration"),
                "is required: a number of units, 0 or more (or a {{variable}})",
            ),
        }
        if c.unit == 0 {
            check.error(
                format!("{at}.unit"),
                "must be a whole number of milliseconds: 1000 (seconds), 60000 (minutes), \
                 3600000 (hours), 86400000 (days) or 604800000 (weeks)",
            );
        }
        EndConfig {
            end_status: c.end_status,
        }
        .check(at, check);
    }

    async fn run(
        &self,
        c: &DelayConfig,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let duration = cx.render(&c.duration);
        let duration = match &duration {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .filter(|d| d.is_finite() && *d >= 0.0)
        .ok_or_else(|| {
            NodeStop::Fail(json!({
                "message": format!("the duration {duration} is not a number of units, 0 or more")
            }))
        })?;
        let wait_ms = duration * c.unit as f64;
        if wait_ms > MAX_WAIT_MS {
            return Err(NodeStop::Fail(json!({
                "message": format!("a delay of {wait_ms} ms is longer than a year")
            })));
        }
        // Whole milliseconds: the record's clock resolution.
        let until = Utc::now() + Duration::milliseconds(wait_ms.ceil() as i64);
        let until = until.to_rfc3339_opts(SecondsFormat::Millis, true);
        cx.set_result(json!({ "until": until }));
        self.wait_or_end(node, until, c)
    }

    async fn resume(
        &self,
        c: &DelayConfig,
        node: &NodeDefinition,
        _cx: &mut RunContext<'_>,
        frame: Value,
    ) -> Result<Value, NodeStop> {
        let Waiting { until } = read_frame(frame)?;
        self.wait_or_end(node, until, c)
    }
}

/// A `delay` node's state while it waits: until when (RFC 3339).
#[derive(Debug, Serialize, Deserialize)]
struct Waiting {
    until: String,
}

impl Delay {
    /// Ends the node once `until` has come (resolved or failed, as configured);
    /// before that (a first run, or a wake-up that came early) it waits.
    fn wait_or_end(
        &self,
        node: &NodeDefinition,
        until: String,
        c: &DelayConfig,
    ) -> Result<Value, NodeStop> {
        let due = DateTime::parse_from_rfc3339(&until).map_or(true, |t| t <= Utc::now());
        if !due {
            let waits = vec![Wait::Until {
                node_key: node.key.clone(),
                until: until.clone(),
            }];
            return Err(NodeStop::pause(&Waiting { until }, waits));
        }
        let result = json!({ "until": until });
        if c.end_status == -1 {
            Err(NodeStop::Fail(result))
        } else {
            Ok(result)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Value, json};

    use crate::app::runner::Runner;
    use crate::engine::{Engine, Limits};
    use crate::model::{DeployedWorkflow, ExecutionStatus, Wait};
    use crate::nodes::test_support::{run_pausing, trail};

    fn wait(key: &str, ms: u64) -> Value {
        json!({"key": key, "type": "delay", "config": {"duration": ms, "unit": 1}})
    }

    fn out(key: &str, value: Value) -> Value {
        json!({"key": key, "type": "output", "config": {"value": value}})
    }

    #[tokio::test]
    async fn a_delay_pauses_the_run_and_it_resumes_from_its_record() {
        let nodes = json!([
            out("before", json!(1)),
            wait("w", 30),
            out("after", json!("{{$jobsMapByNodeKey.before}}"))
        ]);
        let (done, pauses) = run_pausing(nodes, json!({})).await;
        assert_eq!(pauses.len(), 1);
        let paused = &pauses[0];
        assert_eq!(paused.status, ExecutionStatus::Started);
        assert_eq!(
            trail(&paused.jobs),
            [("before".into(), "resolved"), ("w".into(), "pending")]
        );
        let record = paused.paused.as_ref().unwrap();
        assert!(
            matches!(&record.waits[..], [Wait::Until { node_key, until }] if node_key == "w" && Some(until) == record.wake_at.as_ref()),
            "{:?}",
            record.waits
        );
        assert_eq!(done.status, ExecutionStatus::Resolved);
        assert!(done.paused.is_none() && done.finished_at.is_some());
        assert_eq!(
            trail(&done.jobs),
            [
                ("before".into(), "resolved"),
                ("w".into(), "resolved"),
                ("after".into(), "resolved")
            ],
            "each job recorded once"
        );
        assert_eq!(done.output, json!(1), "earlier results survive the pause");
    }

    #[tokio::test]
    async fn end_status_minus_one_fails_after_the_wait() {
        let nodes = json!([
            {"key": "w", "type": "delay", "config": {"duration": 10, "unit": 1, "endStatus": -1}},
            out("after", json!(1))
        ]);
        let (done, pauses) = run_pausing(nodes, json!({})).await;
        assert_eq!(pauses.len(), 1);
        assert_eq!(done.status, ExecutionStatus::Failed);
        assert_eq!(trail(&done.jobs), [("w".into(), "failed")]);
    }

    #[tokio::test]
    async fn a_zero_delay_does_not_pause() {
        let (done, pauses) =
            run_pausing(json!([wait("w", 0), out("o", json!(2))]), json!({})).await;
        assert!(pauses.is_empty());
        assert_eq!(
            (done.status, done.output),
            (ExecutionStatus::Resolved, json!(2))
        );
    }

    #[tokio::test]
    async fn a_delay_inside_loop_iterations_keeps_the_loop_position_and_scope() {
        let nodes = json!([
            {"key": "v", "type": "variable", "config": {"target": null, "value": 0}},
            {"key": "l", "type": "loop", "config": {"target": ["a", "b", "c"]}, "branches": {"0": [
                wait("w", 10),
                {"key": "sum", "type": "calculation", "config": {"expression": "{{$jobsMapByNodeKey.v}} + 1"}},
                {"key": "set", "type": "variable", "config": {"target": "v", "value": "{{$jobsMapByNodeKey.sum}}"}},
                out("o", json!("{{$scopes.l.item}}{{$scopes.l.index}}/{{$scopes.l.length}}"))
            ]}},
            out("total", json!({"count": "{{$jobsMapByNodeKey.v}}", "loop": "{{$jobsMapByNodeKey.l}}"}))
        ]);
        let (done, pauses) = run_pausing(nodes, json!({})).await;
        assert_eq!(pauses.len(), 3, "one pause per iteration");
        let scopes: Vec<Value> = pauses
            .iter()
            .map(|p| p.paused.as_ref().unwrap().scopes["l"]["index"].clone())
            .collect();
        assert_eq!(scopes, [json!(0), json!(1), json!(2)]);
        assert_eq!(done.status, ExecutionStatus::Resolved, "{:?}", done.jobs);
        assert_eq!(
            done.output,
            json!({"count": 3, "loop": {"looped": 3, "done": 3, "broken": false}})
        );
        let keys: Vec<&str> = done.jobs.iter().map(|j| j.node_key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "v", "l", "w", "sum", "set", "o", "w", "sum", "set", "o", "w", "sum", "set", "o",
                "total"
            ]
        );
        assert!(done.jobs.iter().all(|j| j.status.as_str() == "resolved"));
        let outs: Vec<&Value> = done
            .jobs
            .iter()
            .filter(|j| j.node_key == "o")
            .map(|j| &j.result)
            .collect();
        assert_eq!(outs, [&json!("a0/3"), &json!("b1/3"), &json!("c2/3")]);
    }

    #[tokio::test]
    async fn parallel_waits_for_a_delayed_branch_and_decides_after_it() {
        let nodes = json!([
            {"key": "p", "type": "parallel", "config": {"mode": "all"}, "branches": {
                "0": [wait("slow", 40), out("a", json!("a"))],
                "1": [wait("fast", 10), out("b", json!("b"))],
                "2": [out("c", json!("c"))]
            }},
            out("after", json!("{{$jobsMapByNodeKey.p}}"))
        ]);
        let (done, pauses) = run_pausing(nodes, json!({})).await;
        assert_eq!(
            pauses.len(),
            2,
            "woken for the fast branch, then the slow one"
        );
        let waits = &pauses[0].paused.as_ref().unwrap().waits;
        assert_eq!(waits.len(), 2, "{waits:?}");
        let second = pauses[1].paused.as_ref().unwrap();
        assert!(matches!(&second.waits[..], [Wait::Until { node_key, .. }] if node_key == "slow"));
        assert_eq!(done.status, ExecutionStatus::Resolved, "{:?}", done.jobs);
        assert_eq!(done.output, json!(["resolved", "resolved", "resolved"]));
        let mut keys: Vec<&str> = done.jobs.iter().map(|j| j.node_key.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["a", "after", "b", "c", "fast", "p", "slow"],
            "each job once"
        );
    }

    #[tokio::test]
    async fn a_branch_resumes_with_the_variables_it_saw_not_its_siblings() {
        let nodes = |ms: u64| {
            json!([
                {"key": "p", "type": "parallel", "config": {"mode": "all"}, "branches": {
                    "0": [wait("w", ms), out("a", json!("{{$jobsMapByNodeKey.b}}"))],
                    "1": [{"key": "b", "type": "calculation", "config": {"expression": "2 + 3"}}]
                }},
                out("after", json!({"a": "{{$jobsMapByNodeKey.a}}", "b": "{{$jobsMapByNodeKey.b}}"}))
            ])
        };
        let (without, _) = run_pausing(nodes(0), json!({})).await;
        let (with, pauses) = run_pausing(nodes(20), json!({})).await;
        assert_eq!(pauses.len(), 1);
        assert_eq!(without.output, json!({"a": null, "b": 5}));
        assert_eq!(with.output, without.output);
    }

    #[tokio::test]
    async fn a_settled_parallel_cancels_the_branch_still_waiting() {
        // `any`: the branch without a delay decides at once; the waiting one is canceled.
        let nodes = json!([
            {"key": "p", "type": "parallel", "config": {"mode": "any"}, "branches": {
                "0": [wait("w", 60_000), out("a", json!("a"))],
                "1": [out("b", json!("b"))]
            }}
        ]);
        let (done, pauses) = run_pausing(nodes.clone(), json!({})).await;
        assert!(pauses.is_empty());
        assert_eq!(done.status, ExecutionStatus::Resolved);
        let w = done.jobs.iter().find(|j| j.node_key == "w").unwrap();
        assert_eq!(w.status.as_str(), "canceled");
        // `race` after a pause: the short wait finishes first; the long one is canceled.
        let nodes = json!([
            {"key": "p", "type": "parallel", "config": {"mode": "race"}, "branches": {
                "0": [wait("long", 60_000)],
                "1": [wait("short", 10), out("b", json!("b"))]
            }}
        ]);
        let (done, pauses) = run_pausing(nodes, json!({})).await;
        assert_eq!(pauses.len(), 1);
        assert_eq!(done.status, ExecutionStatus::Resolved);
        assert_eq!(done.output, json!("b"));
        let status = |key: &str| {
            done.jobs
                .iter()
                .find(|j| j.node_key == key)
                .unwrap()
                .status
                .as_str()
        };
        assert_eq!(
            (status("long"), status("short"), status("p")),
            ("canceled", "resolved", "resolved")
        );
    }

    #[tokio::test]
    async fn nested_a_delay_in_a_loop_in_a_parallel_branch_in_a_condition() {
        let nodes = json!([
            {"key": "c", "type": "condition", "config": {"calculation": {"calculator": "equal", "operands": ["{{$context.go}}", true]}},
             "branches": {"1": [
                {"key": "p", "type": "parallel", "config": {"mode": "allSettled"}, "branches": {
                    "0": [{"key": "l", "type": "loop", "config": {"target": 2}, "branches": {"0": [
                        wait("w", 10),
                        out("o", json!("{{$scopes.l.index}}"))
                    ]}}],
                    "1": [out("x", json!("x"))]
                }}
             ]}},
            {"key": "last", "type": "output", "config": {"value": {"p": "{{$jobsMapByNodeKey.p}}", "l": "{{$jobsMapByNodeKey.l}}"}}}
        ]);
        let (done, pauses) = run_pausing(nodes, json!({"go": true})).await;
        assert_eq!(pauses.len(), 2);
        assert_eq!(done.status, ExecutionStatus::Resolved, "{:?}", done.jobs);
        assert_eq!(
            done.output,
            json!({"p": ["resolved", "resolved"], "l": {"looped": 2, "done": 2, "broken": false}})
        );
        assert_eq!(
            done.jobs.len(),
            9,
            "c p l x w o w o last: {:?}",
            trail(&done.jobs)
        );
        assert!(done.jobs.iter().all(|j| j.status.as_str() == "resolved"));
    }

    #[tokio::test]
    async fn end_after_a_delay_in_a_branch_ends_everything() {
        let nodes = json!([
            {"key": "m", "type": "multi-conditions", "config": {"conditions": [
                {"calculation": {"calculator": "equal", "operands": [1, 1]}}
            ]}, "branches": {"1": [wait("w", 10), {"key": "stop", "type": "end", "config": {"endStatus": -1}}]}},
            out("after", json!(1))
        ]);
        let (done, pauses) = run_pausing(nodes, json!({})).await;
        assert_eq!(pauses.len(), 1);
        assert_eq!(done.status, ExecutionStatus::Failed);
        assert_eq!(
            trail(&done.jobs),
            [
                ("m".into(), "failed"),
                ("w".into(), "resolved"),
                ("stop".into(), "failed")
            ]
        );
    }

    #[tokio::test]
    async fn a_wake_up_that_comes_early_waits_again() {
        let definition =
            json!({"key": "t", "trigger": {"type": "webhook"}, "nodes": [wait("w", 60_000)]});
        let workflow = DeployedWorkflow {
            key: "t".into(),
            version: 1,
            hook_id: "h".into(),
            definition: serde_json::from_value(definition).unwrap(),
            deployed_at: String::new(),
            switched_by: None,
        };
        let engine = Engine::new(Arc::new(crate::nodes::builtin()), Limits::default());
        let runner = Runner::new(Arc::new(engine), Arc::new(json!({})));
        let started = Runner::started(&workflow, "e", json!({}), String::new());
        let first = runner.run(started, &workflow, None).await.execution;
        // Resumed at once: the delay is not due, so the run pauses again at the same
        // node and time, its job still the one pending job.
        let again = runner.resume(first.clone(), &workflow).await.execution;
        let (a, b) = (first.paused.unwrap(), again.paused.unwrap());
        assert_eq!(a.wake_at, b.wake_at);
        assert_ne!(a.token, b.token, "a new pause, a new token");
        assert_eq!(trail(&again.jobs), [("w".into(), "pending")]);
    }
}
