//! `parallel`: runs branches `"0".."n-1"` concurrently. `mode`: `all` resolves when
//! every branch resolves and fails at the first failure; `any` resolves at the first
//! resolved branch and fails when all fail; `race` follows the first branch to
//! finish; `allSettled` waits for all and resolves. Branches that no longer matter
//! are canceled (their jobs recorded as `canceled`). Result: each branch's status, in
//! branch order.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::{
    Branch, BranchOutcome, Halt, Node, NodeStop, ParallelFrame, RunContext, read_frame,
};
use crate::model::{ExecutionStatus, NodeDefinition};

pub struct Parallel;

type Outcomes = [BranchOutcome];

/// `Some(resolved?)` once the mode's outcome is settled.
/// `mode`: when the branches' outcome is settled.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ParallelMode {
    /// Resolves when all resolve, fails at the first failure.
    #[default]
    All,
    /// Resolves at the first resolved branch, fails when all fail.
    Any,
    /// The first branch to finish decides.
    Race,
    /// Waits for all, resolves.
    AllSettled,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ParallelConfig {
    #[serde(default)]
    mode: ParallelMode,
}

fn decide(mode: ParallelMode, outcomes: &Outcomes) -> Option<bool> {
    let done = || outcomes.iter().all(Option::is_some);
    let any_ok = outcomes.iter().any(|o| matches!(o, Some(Ok(()))));
    let any_failed = outcomes.iter().any(|o| matches!(o, Some(Err(_))));
    match mode {
        ParallelMode::Any => {
            if any_ok {
                Some(true)
            } else if done() {
                Some(false)
            } else {
                None
            }
        }
        ParallelMode::Race => outcomes.iter().flatten().next().map(Result::is_ok),
        ParallelMode::AllSettled => done().then_some(true),
        ParallelMode::All => {
            if any_failed {
                Some(false)
            } else if done() {
                Some(true)
            } else {
                None
            }
        }
    }
}

#[async_trait]
impl Node for Parallel {
    type Config = ParallelConfig;

    fn name(&self) -> &'static str {
        "parallel"
    }

    /// Any number of branches, `"0".."n-1"`, in number order.
    fn branch(&self, _: &ParallelConfig, index: &str) -> Option<Branch> {
        let n = index.parse::<u64>().ok()?;
        (index == n.to_string()).then(|| Branch::new(format!("branch {n}"), n))
    }

    async fn run(
        &self,
        c: &ParallelConfig,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        run_branches(c.mode, node, cx, None).await
    }

    async fn resume(
        &self,
        c: &ParallelConfig,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
        frame: Value,
    ) -> Result<Value, NodeStop> {
        run_branches(c.mode, node, cx, Some(read_frame(frame)?)).await
    }
}

/// Runs the branches (or, with the frame of a pause, goes on with them) and turns
/// their outcomes into the node's result.
async fn run_branches(
    mode: ParallelMode,
    node: &NodeDefinition,
    cx: &mut RunContext<'_>,
    resume: Option<ParallelFrame>,
) -> Result<Value, NodeStop> {
    let mut indexes: Vec<String> = node.branches.keys().cloned().collect();
    indexes.sort_by_key(|i| i.parse::<usize>().unwrap_or(usize::MAX));
    let decider = |outcomes: &Outcomes| decide(mode, outcomes);
    let outcomes = cx
        .run_branches_concurrently(node, &indexes, &decider, resume)
        .await?;
    let statuses: Vec<Value> = outcomes
        .iter()
        .map(|o| match o {
            None => json!("canceled"),
            Some(Ok(())) => json!("resolved"),
            Some(Err(h)) => json!(h.job_status().as_str()),
        })
        .collect();
    let result = Value::Array(statuses);
    if decide(mode, &outcomes).unwrap_or(true) {
        return Ok(result);
    }
    // The branch failure that decided the outcome (the first one, in branch order).
    let status = outcomes
        .iter()
        .flatten()
        .find_map(|o| o.as_ref().err().map(|h| h.status))
        .unwrap_or(ExecutionStatus::Failed);
    cx.set_result(result);
    Err(NodeStop::Halted(Halt::new(status)))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::model::ExecutionStatus;
    use crate::nodes::test_support::run;

    /// Branch 0 resolves after a short loop; branch 1 fails at once or resolves; branch 2
    /// resolves.
    fn three_branches(mode: &str, second_fails: bool) -> Value {
        json!([
            {"key": "p", "type": "parallel", "config": {"mode": mode}, "branches": {
                "0": [{"key": "a", "type": "output", "config": {"value": "a"}}],
                "1": [{"key": "b", "type": "condition", "config": {"rejectOnFalse": true,
                        "calculation": {"calculator": "equal", "operands": [second_fails, false]}}}],
                "2": [{"key": "c", "type": "output", "config": {"value": "c"}}]
            }},
            {"key": "after", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.p}}"}}
        ])
    }

    #[tokio::test]
    async fn all_resolves_when_every_branch_resolves() {
        let (outcome, jobs, output) = run(three_branches("all", false), json!({})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        assert_eq!(output, json!(["resolved", "resolved", "resolved"]));
        let keys: Vec<&str> = jobs.iter().map(|j| j.node_key.as_str()).collect();
        assert_eq!(
            keys,
            ["p", "a", "b", "c", "after"],
            "branch jobs in branch order"
        );
    }

    #[tokio::test]
    async fn all_fails_at_the_first_failure() {
        let (outcome, jobs, _) = run(three_branches("all", true), json!({})).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed);
        assert_eq!(jobs[0].status.as_str(), "failed");
        assert!(
            jobs.iter().all(|j| j.node_key != "after"),
            "no node after the parallel ran"
        );
    }

    #[tokio::test]
    async fn any_race_and_all_settled() {
        let (outcome, _, _) = run(three_branches("any", true), json!({})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        let (outcome, _, output) = run(three_branches("allSettled", true), json!({})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        assert_eq!(output, json!(["resolved", "failed", "resolved"]));
        // The first branch to finish decides; the others no longer matter.
        let (outcome, _, output) = run(three_branches("race", false), json!({})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        let statuses = output.as_array().unwrap();
        assert_eq!(
            statuses.iter().filter(|s| *s == "resolved").count(),
            1,
            "{output}"
        );
        assert_eq!(
            statuses.iter().filter(|s| *s == "canceled").count(),
            2,
            "{output}"
        );
    }

    #[tokio::test]
    async fn any_fails_when_every_branch_fails() {
        let nodes = json!([{"key": "p", "type": "parallel", "config": {"mode": "any"}, "branches": {
            "0": [{"key": "x", "type": "end", "config": {"endStatus": -1}}],
            "1": [{"key": "y", "type": "condition", "config": {"rejectOnFalse": true, "calculation": {"calculator": "equal", "operands": [1, 2]}}}]
        }}]);
        let (outcome, jobs, _) = run(nodes, json!({})).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed, "{jobs:?}");
    }

    #[tokio::test]
    async fn slow_branches_are_canceled_when_the_outcome_is_settled() {
        // Both branches loop (yielding to each other as they go); the short one wins.
        let nodes = json!([
            {"key": "p", "type": "parallel", "config": {"mode": "any"}, "branches": {
                "0": [{"key": "fast", "type": "loop", "config": {"target": 300}, "branches": {"0": [
                    {"key": "tock", "type": "output", "config": {"value": 1}}
                ]}}],
                "1": [{"key": "slow", "type": "loop", "config": {"target": 900}, "branches": {"0": [
                    {"key": "tick", "type": "output", "config": {"value": "{{$scopes.slow.index}}"}}
                ]}}]
            }},
            {"key": "after", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.p}}"}}
        ]);
        let (outcome, jobs, output) = run(nodes, json!({})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        assert_eq!(output, json!(["resolved", "canceled"]));
        let slow = jobs.iter().find(|j| j.node_key == "slow").unwrap();
        assert_eq!(slow.status.as_str(), "canceled");
        let ticks = jobs.iter().filter(|j| j.node_key == "tick").count();
        assert!(
            ticks > 0 && ticks < 900,
            "the slow branch ran and was cut short: {ticks}"
        );
    }

    #[tokio::test]
    async fn nesting_a_loop_in_a_parallel_branch_in_a_condition() {
        let nodes = json!([
            {"key": "c", "type": "condition", "config": {"calculation": {"calculator": "gt", "operands": ["{{$context.n}}", 0]}},
             "branches": {"1": [
                {"key": "p", "type": "parallel", "config": {"mode": "all"}, "branches": {
                    "0": [{"key": "l", "type": "loop", "config": {"target": "{{$context.n}}"}, "branches": {"0": [
                        {"key": "v", "type": "output", "config": {"value": "{{$scopes.l.index}}"}}
                    ]}}],
                    "1": [{"key": "w", "type": "output", "config": {"value": "w"}}]
                }}
             ]}},
            {"key": "end", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.l.looped}}/{{$jobsMapByNodeKey.p}}"}}
        ]);
        let (outcome, jobs, output) = run(nodes, json!({"n": 3})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        assert_eq!(output, json!("3/[\"resolved\",\"resolved\"]"));
        assert_eq!(jobs.iter().filter(|j| j.node_key == "v").count(), 3);
    }

    #[tokio::test]
    async fn assignments_in_branches_are_seen_after_the_join() {
        let nodes = json!([
            {"key": "count", "type": "variable", "config": {"target": null, "value": 1}},
            {"key": "p", "type": "parallel", "config": {"mode": "all"}, "branches": {
                "0": [{"key": "bump", "type": "variable", "config": {"target": "count", "value": 2}}],
                "1": [{"key": "other", "type": "output", "config": {"value": "x"}}]
            }},
            {"key": "out", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.count}}"}}
        ]);
        let (_, _, output) = run(nodes, json!({})).await;
        assert_eq!(output, json!(2));
    }

    #[tokio::test]
    async fn the_node_run_cap_counts_every_branch() {
        let branch = |key: &str| {
            json!([{"key": key, "type": "loop", "config": {"target": 40}, "branches": {"0": [
            {"key": format!("{key}-tick"), "type": "output", "config": {"value": 1}}]}}])
        };
        let nodes = json!([{"key": "p", "type": "parallel", "config": {"mode": "allSettled"},
            "branches": {"0": branch("a"), "1": branch("b"), "2": branch("c")}}]);
        let limits = crate::engine::Limits {
            max_node_runs: 60,
            ..crate::engine::Limits::default()
        };
        let (_, jobs, _) = crate::nodes::test_support::run_with(nodes, json!({}), limits).await;
        assert!(jobs.len() <= 61, "{} jobs ran past a cap of 60", jobs.len());
    }

    #[tokio::test]
    async fn end_in_a_branch_ends_the_execution() {
        let nodes = json!([
            {"key": "p", "type": "parallel", "config": {"mode": "allSettled"}, "branches": {
                "0": [{"key": "stop", "type": "end", "config": {"endStatus": 1}}],
                "1": [{"key": "w", "type": "output", "config": {"value": 1}}]
            }},
            {"key": "never", "type": "output", "config": {"value": 2}}
        ]);
        let (outcome, jobs, _) = run(nodes, json!({})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        assert!(jobs.iter().all(|j| j.node_key != "never"));
    }

    #[tokio::test]
    async fn a_timeout_during_a_parallel_keeps_every_branch_job() {
        // A sync run stopped by its timeout while one branch still runs: the finished
        // branch's job stays recorded, the running ones are recorded as aborted.
        let definition = json!({"key": "t", "sync": true, "trigger": {"type": "webhook"}, "nodes": [
            {"key": "p", "type": "parallel", "config": {"mode": "all"}, "branches": {
                "0": [{"key": "quick", "type": "output", "config": {"value": 1}}],
                "1": [{"key": "spin", "type": "script", "config": {"content": "while (true) {}", "timeout": 800}}]
            }}
        ]});
        let workflow = crate::model::DeployedWorkflow {
            key: "t".into(),
            version: 1,
            hook_id: "h".into(),
            definition: serde_json::from_value(definition).unwrap(),
            deployed_at: String::new(),
            switched_by: None,
        };
        let engine = crate::engine::Engine::new(
            std::sync::Arc::new(crate::nodes::builtin()),
            crate::engine::Limits::default(),
        );
        let runner = crate::app::runner::Runner::new(
            std::sync::Arc::new(engine),
            std::sync::Arc::new(json!({})),
        );
        let started = crate::app::runner::Runner::started(&workflow, "e", json!({}), String::new());
        let finished = runner
            .run(
                started,
                &workflow,
                Some(std::time::Duration::from_millis(200)),
            )
            .await;
        assert!(finished.timed_out);
        let e = finished.execution;
        assert_eq!(e.status, ExecutionStatus::Aborted);
        let status = |key: &str| {
            e.jobs
                .iter()
                .find(|j| j.node_key == key)
                .map(|j| j.status.as_str())
        };
        assert_eq!(
            (status("p"), status("quick"), status("spin")),
            (Some("aborted"), Some("resolved"), Some("aborted"))
        );
    }
}
