//! `loop`: runs branch `"0"` once per item of `target` (an array), `target` times (a
//! number), or once (anything else), with `$scopes.<loop key>` = `{item, index,
//! length}`. An optional `condition` (`checkpoint` 0: before, 1: after each
//! iteration; `continueOnFalse`; `calculation`) stops or skips iterations. `exit`
//! decides what a failed iteration does: 0 fail the execution, 1 break, 2 continue.
//! Result: `{looped, done, broken}`. Iterations are capped.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::basic;
use crate::engine::{Branch, BranchFrame, Checker, Node, NodeStop, RunContext, read_frame};
use crate::model::{Cursor, NodeDefinition};

pub struct Loop;

/// `target` (templated), `condition` (absent, null or false: none), `exit`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct LoopConfig {
    #[serde(default)]
    target: Option<Value>,
    #[serde(default, deserialize_with = "condition_or_false")]
    #[schemars(schema_with = "condition_or_false_schema")]
    condition: Option<LoopCondition>,
    #[serde(default)]
    exit: u64,
}

/// Tested before (`checkpoint` 0) or after (1) each iteration; false breaks the
/// loop, or skips the iteration with `continueOnFalse`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct LoopCondition {
    #[serde(default)]
    checkpoint: u64,
    #[serde(default)]
    continue_on_false: bool,
    #[serde(default)]
    calculation: Option<Value>,
}

/// NocoBase writes "no condition" as `false`.
fn condition_or_false<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<LoopCondition>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null | Value::Bool(false) => Ok(None),
        other => LoopCondition::deserialize(other)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

fn condition_or_false_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "anyOf": [generator.subschema_for::<LoopCondition>(), {"type": "null"}, {"const": false}]
    })
}

/// What to do after a condition check.
enum Check {
    Go,
    Skip,
    Break,
}

#[async_trait]
impl Node for Loop {
    type Config = LoopConfig;

    fn name(&self) -> &'static str {
        "loop"
    }

    fn branch(&self, _: &LoopConfig, index: &str) -> Option<Branch> {
        (index == "0").then(|| Branch::new("each item", 0))
    }

    fn check(&self, c: &LoopConfig, at: &str, check: &mut Checker) {
        if c.target.is_none() {
            check.error(
                format!("{at}.target"),
                "is required: an array, a number, or a {{variable}}",
            );
        }
        if c.exit > 2 {
            check.error(
                format!("{at}.exit"),
                "must be 0 (fail), 1 (break) or 2 (continue)",
            );
        }
        if let Some(condition) = &c.condition {
            let at = format!("{at}.condition");
            if condition.checkpoint > 1 {
                check.error(
                    format!("{at}.checkpoint"),
                    "must be 0 (before) or 1 (after each iteration)",
                );
            }
            let calc_at = format!("{at}.calculation");
            basic::validate_required(condition.calculation.as_ref(), &calc_at, check);
        }
    }

    async fn run(
        &self,
        c: &LoopConfig,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let target = cx.render(c.target.as_ref().unwrap_or(&Value::Null));
        let cap = cx.limits().max_loop_iterations;
        let too_many = |count: String| {
            NodeStop::Fail(json!({
                "message": format!("the loop would run {count} iterations; the limit is {cap}")
            }))
        };
        // A count is checked before anything is made of it: a request may send 1e300.
        let count = match &target {
            Value::Number(n) => n.as_f64(),
            // Whole-number text of any length (past u64 it is past the limit too).
            Value::String(s)
                if !s.trim().is_empty() && s.trim().bytes().all(|b| b.is_ascii_digit()) =>
            {
                s.trim().parse::<f64>().ok()
            }
            _ => None,
        };
        let items: Vec<Value> = match (target, count) {
            (_, Some(n)) => {
                // A fraction counts its whole part (NocoBase's `parseInt`); a
                // negative count runs nothing. NaN cannot come from JSON.
                let whole = n.max(0.0).floor();
                if whole > cap as f64 {
                    return Err(too_many(whole.to_string()));
                }
                (0..whole as usize).map(|i| json!(i)).collect()
            }
            (Value::Array(items), None) => items,
            (other, None) => vec![other],
        };
        if items.len() > cap {
            return Err(too_many(items.len().to_string()));
        }
        let progress = Progress {
            items,
            index: 0,
            looped: 0,
        };
        iterate(node, cx, c, progress, None).await
    }

    async fn resume(
        &self,
        c: &LoopConfig,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
        frame: Value,
    ) -> Result<Value, NodeStop> {
        let BranchFrame {
            state: progress,
            inner,
        } = read_frame::<BranchFrame<Progress>>(frame)?;
        iterate(node, cx, c, progress, Some(inner)).await
    }
}

/// Where a loop stands: its items, the iteration at hand and how many ran (kept
/// in the frame while its body waits).
#[derive(Debug, Serialize, Deserialize)]
struct Progress {
    items: Vec<Value>,
    index: usize,
    looped: usize,
}

/// Runs the iterations from `progress.index` on. With `paused` (where a pause
/// inside the body stood) the first of them goes on inside its body instead of
/// starting afresh.
async fn iterate(
    node: &NodeDefinition,
    cx: &mut RunContext<'_>,
    c: &LoopConfig,
    progress: Progress,
    mut paused: Option<Cursor>,
) -> Result<Value, NodeStop> {
    let condition = c.condition.as_ref();
    let checkpoint = condition.map_or(0, |c| c.checkpoint);
    let exit = c.exit;
    let Progress {
        items,
        index: first,
        mut looped,
    } = progress;
    let length = items.len();
    let mut broken = false;
    let test = |cx: &RunContext<'_>| -> Check {
        let Some(c) = condition else { return Check::Go };
        let calculation = c.calculation.as_ref().unwrap_or(&Value::Null);
        if basic::evaluate(calculation, &|v| cx.render(v)) {
            Check::Go
        } else if c.continue_on_false {
            Check::Skip
        } else {
            Check::Break
        }
    };
    for index in first..length {
        let item = items[index].clone();
        cx.set_scope(
            &node.key,
            Some(json!({ "item": item, "index": index, "length": length })),
        );
        let body = match paused.take() {
            Some(cursor) => cx.resume_branch(node, "0", cursor).await,
            None => {
                if checkpoint == 0 {
                    match test(cx) {
                        Check::Go => {}
                        Check::Skip => continue,
                        Check::Break => {
                            broken = true;
                            break;
                        }
                    }
                }
                looped += 1;
                cx.set_result(json!({ "looped": looped, "done": index, "broken": false }));
                cx.run_branch(node, "0").await
            }
        };
        if let Err(halt) = body {
            if halt.is_paused() {
                // The scope stays: the body reads it again when it goes on.
                return Err(halt.pause_with(Progress {
                    items,
                    index,
                    looped,
                }));
            }
            if halt.terminal || exit == 0 {
                cx.set_scope(&node.key, None);
                return Err(halt.into());
            }
            if exit == 1 {
                broken = true;
                break;
            }
            continue;
        }
        if checkpoint == 1 {
            match test(cx) {
                Check::Go | Check::Skip => {}
                Check::Break => {
                    broken = true;
                    break;
                }
            }
        }
    }
    cx.set_scope(&node.key, None);
    Ok(json!({ "looped": looped, "done": looped, "broken": broken }))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::engine::Limits;
    use crate::model::ExecutionStatus;
    use crate::nodes::test_support::{run, run_with};

    fn collect(target: Value) -> Value {
        json!([
            {"key": "acc", "type": "variable", "config": {"target": null, "value": ""}},
            {"key": "each", "type": "loop", "config": {"target": target}, "branches": {"0": [
                {"key": "add", "type": "variable", "config": {"target": "acc",
                    "value": "{{$jobsMapByNodeKey.acc}}[{{$scopes.each.index}}/{{$scopes.each.length}}:{{$scopes.each.item}}]"}}
            ]}},
            {"key": "out", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.acc}}"}}
        ])
    }

    #[tokio::test]
    async fn arrays_numbers_and_single_items() {
        let (_, _, output) = run(
            collect(json!("{{$context.items}}")),
            json!({"items": ["a", "b"]}),
        )
        .await;
        assert_eq!(output, json!("[0/2:a][1/2:b]"));
        let (_, _, output) = run(collect(json!(3)), json!({})).await;
        assert_eq!(output, json!("[0/3:0][1/3:1][2/3:2]"));
        let (_, jobs, output) = run(collect(json!({"one": 1})), json!({})).await;
        assert_eq!(output, json!("[0/1:{\"one\":1}]"));
        assert_eq!(
            jobs[1].result,
            json!({"looped": 1, "done": 1, "broken": false})
        );
    }

    #[tokio::test]
    async fn nested_loops_have_their_own_scopes() {
        let nodes = json!([
            {"key": "acc", "type": "variable", "config": {"target": null, "value": ""}},
            {"key": "outer", "type": "loop", "config": {"target": ["x", "y"]}, "branches": {"0": [
                {"key": "inner", "type": "loop", "config": {"target": 2}, "branches": {"0": [
                    {"key": "add", "type": "variable", "config": {"target": "acc",
                        "value": "{{$jobsMapByNodeKey.acc}}{{$scopes.outer.item}}{{$scopes.inner.index}} "}}
                ]}}
            ]}},
            {"key": "out", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.acc}}"}}
        ]);
        let (outcome, _, output) = run(nodes, json!({})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        assert_eq!(output, json!("x0 x1 y0 y1 "));
    }

    fn with_condition(checkpoint: u64, continue_on_false: bool) -> Value {
        json!([
            {"key": "acc", "type": "variable", "config": {"target": null, "value": ""}},
            {"key": "each", "type": "loop", "config": {"target": [1, 5, 2, 7],
                "condition": {"checkpoint": checkpoint, "continueOnFalse": continue_on_false,
                    "calculation": {"calculator": "lt", "operands": ["{{$scopes.each.item}}", 5]}}},
             "branches": {"0": [{"key": "add", "type": "variable", "config": {"target": "acc", "value": "{{$jobsMapByNodeKey.acc}}{{$scopes.each.item}}"}}]}},
            {"key": "out", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.acc}}|{{$jobsMapByNodeKey.each.broken}}"}}
        ])
    }

    #[tokio::test]
    async fn conditions_before_and_after_each_iteration() {
        assert_eq!(
            run(with_condition(0, false), json!({})).await.2,
            json!("1|true")
        );
        assert_eq!(
            run(with_condition(0, true), json!({})).await.2,
            json!("12|false")
        );
        assert_eq!(
            run(with_condition(1, false), json!({})).await.2,
            json!("15|true")
        );
    }

    fn failing(exit: u64) -> Value {
        json!([
            {"key": "acc", "type": "variable", "config": {"target": null, "value": ""}},
            {"key": "each", "type": "loop", "config": {"target": [1, 2, 3], "exit": exit}, "branches": {"0": [
                {"key": "check", "type": "condition", "config": {"rejectOnFalse": true,
                    "calculation": {"calculator": "notEqual", "operands": ["{{$scopes.each.item}}", 2]}}},
                {"key": "add", "type": "variable", "config": {"target": "acc", "value": "{{$jobsMapByNodeKey.acc}}{{$scopes.each.item}}"}}
            ]}},
            {"key": "out", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.acc}}"}}
        ])
    }

    #[tokio::test]
    async fn exit_modes_on_a_failed_iteration() {
        let (outcome, _, _) = run(failing(0), json!({})).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed);
        let (outcome, _, output) = run(failing(1), json!({})).await;
        assert_eq!(
            (outcome.status, output),
            (ExecutionStatus::Resolved, json!("1"))
        );
        let (outcome, _, output) = run(failing(2), json!({})).await;
        assert_eq!(
            (outcome.status, output),
            (ExecutionStatus::Resolved, json!("13"))
        );
    }

    #[tokio::test]
    async fn counts_past_the_limit_fail_however_they_are_written() {
        for target in [json!(1e300), json!("18446744073709551616"), json!("1001")] {
            let nodes = json!([{"key": "each", "type": "loop", "config": {"target": target}, "branches": {"0": []}}]);
            let (outcome, jobs, _) = run(nodes, json!({})).await;
            assert_eq!(outcome.status, ExecutionStatus::Failed, "{target}");
            assert!(
                jobs[0].result["message"]
                    .as_str()
                    .unwrap()
                    .contains("the limit is 1000")
            );
        }
    }

    /// Each iteration renders the body into its result: the record would hold it
    /// once per item. Past the bytes an execution keeps, the run ends `error`
    /// naming that budget, even with `exit: 2` (go on after a failed iteration).
    #[tokio::test]
    async fn a_loop_echoing_the_body_stops_at_the_bytes_an_execution_keeps() {
        let nodes = json!([
            {"key": "each", "type": "loop", "config": {"target": 1000, "exit": 2}, "branches": {"0": [
                {"key": "echo", "type": "output", "config": {"value": "{{$context.body}}"}}
            ]}},
            {"key": "never", "type": "output", "config": {"value": 1}}
        ]);
        let limits = Limits {
            max_kept_bytes: 1 << 20,
            ..Limits::default()
        };
        let body = "x".repeat(100 << 10);
        let (outcome, jobs, _) = run_with(nodes, json!({"body": body}), limits).await;
        assert_eq!(outcome.status, ExecutionStatus::Error);
        let last = jobs.last().unwrap();
        assert_eq!(last.node_key, "echo");
        assert_eq!(
            last.result["message"],
            json!(
                "the run's results exceed 1 MiB (the bytes an execution may keep: results, logs and output)"
            )
        );
        let kept: usize = jobs
            .iter()
            .map(|j| serde_json::to_string(&j.result).unwrap().len())
            .sum();
        assert!(kept <= 1 << 20, "{kept} bytes kept");
        assert!(jobs.len() < 30, "{} jobs", jobs.len());
    }

    #[tokio::test]
    async fn end_inside_a_loop_ends_everything_and_the_cap_fails_clearly() {
        let nodes = json!([
            {"key": "each", "type": "loop", "config": {"target": 5, "exit": 2}, "branches": {"0": [
                {"key": "stop", "type": "end", "config": {"endStatus": 1}}
            ]}},
            {"key": "never", "type": "output", "config": {"value": 1}}
        ]);
        let (outcome, jobs, _) = run(nodes, json!({})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        assert_eq!(jobs.len(), 2, "one iteration, then the end: {jobs:?}");
        let nodes = json!([{"key": "each", "type": "loop", "config": {"target": 50}, "branches": {"0": []}}]);
        let limits = Limits {
            max_loop_iterations: 10,
            ..Limits::default()
        };
        let (outcome, jobs, _) = run_with(nodes, json!({}), limits).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed);
        assert!(
            jobs[0].result["message"]
                .as_str()
                .unwrap()
                .contains("the limit is 10")
        );
    }
}
