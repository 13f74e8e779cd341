//! `json-query`: queries a JSON value with JMESPath (`jmespath` crate), JSONPath
//! (RFC 9535, `serde_json_path` crate) or JSONata (`jsonata-rs` crate), optionally
//! mapping the result into named fields with `model: [{path, alias}]`.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;

use crate::engine::{Checker, Node, NodeStop, RunContext};
use crate::lang::{limits, path};
use crate::model::NodeDefinition;

mod jsonata;

pub struct JsonQuery;

#[async_trait]
impl Node for JsonQuery {
    type Config = QueryConfig;

    fn name(&self) -> &'static str {
        "json-query"
    }

    fn check(&self, c: &QueryConfig, at: &str, check: &mut Checker) {
        match &c.expression {
            Some(expr) => {
                if let Err(e) = query(c.engine.as_str(), expr, &Value::Null, true) {
                    check.error(format!("{at}.expression"), e);
                }
            }
            None => check.error(format!("{at}.expression"), "is required (a string)"),
        }
        if c.source.is_none() {
            check.error(
                format!("{at}.source"),
                "is required (usually a {{variable}})",
            );
        }
        for (i, field) in c.model.iter().enumerate() {
            if path::parse(&field.path).is_none() {
                check.error(
                    format!("{at}.model[{i}].path"),
                    "must be a path such as a.b[0]",
                );
            }
        }
    }

    async fn run(
        &self,
        c: &QueryConfig,
        _node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let source = cx.render(c.source.as_ref().unwrap_or(&Value::Null));
        let expression = c.expression.clone().unwrap_or_default();
        let engine = c.engine.as_str();
        // Off the threads that answer requests, and no more at once than the cap:
        // the permit goes with the evaluation, so one whose run was cancelled
        // (a sync deadline) still counts until it stops (JSONata: its time limit).
        let permit = evaluations()
            .acquire_owned()
            .await
            .map_err(|e| NodeStop::Error(format!("the query engines are closed: {e}")))?;
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            query(engine, &expression, &source, false)
        })
        .await
        .map_err(|e| NodeStop::Error(format!("the query engine failed: {e}")))?
        .map_err(|message| NodeStop::Fail(json!({ "message": message })))?;
        Ok(if c.model.is_empty() {
            result
        } else {
            apply_model(&result, &c.model)
        })
    }
}

/// `engine`, `expression`, `source` (templated), and `model: [{path, alias}]`
/// naming the fields to keep.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct QueryConfig {
    #[serde(default)]
    engine: QueryEngine,
    #[serde(default)]
    expression: Option<String>,
    #[serde(default)]
    source: Option<Value>,
    #[serde(default)]
    model: Vec<ModelField>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum QueryEngine {
    #[default]
    Jmespath,
    Jsonpath,
    Jsonata,
}

impl QueryEngine {
    fn as_str(self) -> &'static str {
        match self {
            Self::Jmespath => "jmespath",
            Self::Jsonpath => "jsonpath",
            Self::Jsonata => "jsonata",
        }
    }
}

/// A field of each result item: its path, and the name it takes.
#[derive(Debug, Deserialize, JsonSchema)]
struct ModelField {
    path: String,
    #[serde(default)]
    alias: Option<String>,
}

/// Runs a query; with `compile_only`, only checks that it parses.
fn query(
    engine: &str,
    expression: &str,
    source: &Value,
    compile_only: bool,
) -> Result<Value, String> {
    if let Some(problem) = limits::check_expression(expression) {
        return Err(format!("the expression {problem}"));
    }
    match engine {
        "jsonpath" => {
            let parsed = serde_json_path::JsonPath::parse(expression)
                .map_err(|e| format!("not a JSONPath: {e}"))?;
            if compile_only {
                return Ok(Value::Null);
            }
            let found = parsed.query(source).all();
            // `$..*` lists every value under every other: copies add up past the source.
            let mut size = 0usize;
            for value in &found {
                size = size.saturating_add(limits::json_len_up_to(value, MAX_RESULT_BYTES));
                if size > MAX_RESULT_BYTES {
                    return Err(too_big());
                }
            }
            Ok(Value::Array(found.into_iter().cloned().collect()))
        }
        "jsonata" => jsonata::evaluate(expression, source, compile_only),
        _ => {
            let parsed = jmespath::compile(expression)
                .map_err(|e| format!("not a JMESPath expression: {e}"))?;
            if compile_only {
                return Ok(Value::Null);
            }
            let found = parsed.search(source).map_err(|e| e.to_string())?;
            // Shared parts (`[@, @]` nested) cost the search pointers, and their copies
            // grow exponentially.
            if jmespath_len_up_to(&found, MAX_RESULT_BYTES) > MAX_RESULT_BYTES {
                return Err(too_big());
            }
            serde_json::to_value(&*found).map_err(|e| e.to_string())
        }
    }
}

/// The largest result a query may make.
const MAX_RESULT_BYTES: usize = limits::MAX_RESULT_BYTES;

fn too_big() -> String {
    format!(
        "the result is more than {} MiB, the bound of a node's result",
        MAX_RESULT_BYTES >> 20
    )
}

/// About the length of a JMESPath value as JSON text, stopping past `cap`.
fn jmespath_len_up_to(value: &jmespath::Variable, cap: usize) -> usize {
    use jmespath::Variable as V;
    let mut total = 0usize;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        total = total.saturating_add(match v {
            V::String(s) => s.len() + 2,
            V::Array(items) => {
                stack.extend(items.iter().map(|i| &**i));
                items.len() + 2
            }
            V::Object(map) => {
                stack.extend(map.values().map(|i| &**i));
                map.keys().map(|k| k.len() + 4).sum::<usize>() + 2
            }
            _ => 24,
        });
        if total > cap {
            break;
        }
    }
    total
}

/// Queries running at once in the process: twice the cores. Each may take up to
/// [`jsonata::MEMORY_BUDGET_BYTES`], so together they stay within a known bound.
fn evaluations() -> Arc<Semaphore> {
    static CAP: OnceLock<Arc<Semaphore>> = OnceLock::new();
    Arc::clone(CAP.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(Semaphore::new((cores * 2).clamp(2, 16)))
    }))
}

/// `model: [{path, alias}]` turns each result object (or each item of a result
/// array) into an object of the named fields.
fn apply_model(result: &Value, model: &[ModelField]) -> Value {
    let pick = |item: &Value| {
        let mut out = Map::new();
        for field in model {
            let p = field.path.as_str();
            let name = field
                .alias
                .as_deref()
                .filter(|a| !a.is_empty())
                .unwrap_or(p);
            let value = path::parse(p)
                .and_then(|segs| path::get(item, &segs).cloned())
                .unwrap_or(Value::Null);
            out.insert(name.to_string(), value);
        }
        Value::Object(out)
    };
    match result {
        Value::Array(items) => Value::Array(items.iter().map(pick).collect()),
        other => pick(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ExecutionStatus;
    use crate::nodes::test_support::run;

    fn orders() -> Value {
        json!({"orders": [{"id": 1, "total": 30, "customer": {"name": "Ann"}}, {"id": 2, "total": 120, "customer": {"name": "Bo"}}]})
    }

    /// Found by the property tests (`Σ%%`): jsonata-rs panics on the parent
    /// operator; a definition using it is refused, a run fails the node.
    #[test]
    fn syntax_the_engine_does_not_implement_is_refused() {
        for compile_only in [true, false] {
            let refused = query("jsonata", "Σ%%", &json!(1e300), compile_only).unwrap_err();
            assert!(refused.contains("the % parent operator"), "{refused}");
        }
    }

    #[test]
    fn each_engine_queries() {
        assert_eq!(
            query("jmespath", "orders[?total > `100`].id", &orders(), false).unwrap(),
            json!([2])
        );
        assert_eq!(
            query(
                "jsonpath",
                "$.orders[?@.total > 100].customer.name",
                &orders(),
                false
            )
            .unwrap(),
            json!(["Bo"])
        );
        assert_eq!(
            query("jsonata", "$sum(orders.total)", &orders(), false).unwrap(),
            json!(150)
        );
        assert_eq!(
            query("jsonata", "nothing.here", &orders(), false).unwrap(),
            Value::Null
        );
        assert_eq!(
            query("jmespath", "nothing", &orders(), false).unwrap(),
            Value::Null
        );
    }

    #[test]
    fn pad_pads_within_its_bound() {
        let source = json!({"s": "ab", "n": 5, "huge": 1e15});
        let pad = |e: &str| query("jsonata", e, &source, false);
        assert_eq!(pad("$pad(s, n)").unwrap(), json!("ab   "));
        assert_eq!(pad("$pad(s, -n, \"#\")").unwrap(), json!("###ab"));
        assert_eq!(pad("$pad(s, 1)").unwrap(), json!("ab"));
        let message = pad("$pad(s, huge)").unwrap_err();
        assert!(message.contains("$pad: the width"), "{message}");
        assert_eq!(
            pad("$pad(\"$pad\", 5) & '$pad' & \"\\\"$pad\"").unwrap(),
            json!("$pad $pad\"$pad")
        );
    }

    #[test]
    fn pad_cannot_slip_past_the_bound() {
        let source = json!({"Customer's name": "x", "huge": 1e15});
        // A quote inside a backtick name does not hide the call that follows.
        let message = query(
            "jsonata",
            "`Customer's name` & $pad('x', huge)",
            &source,
            false,
        )
        .unwrap_err();
        assert!(message.contains("$pad: the width"), "{message}");
        // After a regex literal the scan cannot tell; the expression is refused.
        let message = query(
            "jsonata",
            "$match('a', /'/) & $pad('x', huge) & 'b'",
            &source,
            true,
        )
        .unwrap_err();
        assert!(message.contains("cannot bound"), "{message}");
    }

    #[test]
    fn deep_jsonata_recursion_stops_at_its_depth_limit_within_a_blocking_threads_stack() {
        // The node runs JSONata on tokio's blocking threads (2 MiB of stack): the
        // depth limit must stop a recursion the request drives before the stack does.
        let expression = "($f := function($n) { $n <= 0 ? 0 : 1 + $f($n - 1) }; $f(n))";
        let outcome = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || query("jsonata", expression, &json!({"n": 100_000}), false))
            .unwrap()
            .join()
            .unwrap();
        let message = outcome.unwrap_err();
        assert!(
            message.to_lowercase().contains("depth") || message.contains("U1001"),
            "{message}"
        );
        let shallow = query("jsonata", expression, &json!({"n": 50}), false).unwrap();
        assert_eq!(shallow, json!(50));
    }

    #[test]
    fn a_range_past_the_integers_fails_clearly() {
        let message = query("jsonata", "$count([-v..v])", &json!({"v": 1e300}), false).unwrap_err();
        assert!(message.contains("failed on this input"), "{message}");
    }

    #[test]
    fn shared_parts_of_a_jmespath_result_are_sized_before_they_are_copied() {
        // Each pipe doubles the result with two pointers: 2^12 copies of 100 KB.
        let expression = ["[@, @]"; 12].join(" | ");
        let source = json!({"t": "x".repeat(100_000)});
        let message = query("jmespath", &expression, &source, false).unwrap_err();
        assert!(message.contains("more than 8 MiB"), "{message}");
        assert_eq!(
            query("jmespath", "[@, @] | [@, @]", &json!(1), false).unwrap(),
            json!([[1, 1], [1, 1]])
        );
    }

    #[test]
    fn jsonpath_descendants_are_sized_before_they_are_copied() {
        // `$..*` lists each level with all it holds: 20 copies of 1 MB.
        let mut source = json!({"s": "x".repeat(1_000_000)});
        for _ in 0..20 {
            source = json!({"a": source});
        }
        let message = query("jsonpath", "$..*", &source, false).unwrap_err();
        assert!(message.contains("more than 8 MiB"), "{message}");
    }

    #[tokio::test]
    async fn a_growth_builtin_past_its_bound_fails_the_node_naming_it() {
        let nodes = json!([{"key": "q", "type": "json-query", "config": {"engine": "jsonata",
            "source": "{{$context.body}}", "expression": "$replace(t, \"<x>\", v)"}}]);
        let body = json!({"t": "<x>".repeat(120_000), "v": "y".repeat(40_000)});
        let (outcome, jobs, _) = run(nodes, json!({"body": body})).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed);
        let message = jobs[0].result["message"].as_str().unwrap();
        assert!(
            message.contains("$replace: the result would be more than 8 MiB"),
            "{message}"
        );
    }

    #[test]
    fn bad_expressions_are_reported() {
        for engine in ["jmespath", "jsonpath", "jsonata"] {
            assert!(
                query(engine, "[[[", &Value::Null, true).is_err(),
                "{engine}"
            );
        }
    }

    #[test]
    fn model_names_the_fields() {
        let model: Vec<ModelField> = serde_json::from_value(json!([
            {"path": "id", "alias": "orderId"},
            {"path": "customer.name", "alias": "name"},
        ]))
        .unwrap();
        let all = query("jmespath", "orders", &orders(), false).unwrap();
        assert_eq!(
            apply_model(&all, &model),
            json!([{"orderId": 1, "name": "Ann"}, {"orderId": 2, "name": "Bo"}])
        );
        assert_eq!(
            apply_model(&json!({"id": 9}), &model),
            json!({"orderId": 9, "name": null})
        );
    }

    #[tokio::test]
    async fn the_result_flows_into_later_nodes() {
        let nodes = json!([
            {"key": "big", "type": "json-query", "config": {"engine": "jmespath", "source": "{{$context.body}}",
                "expression": "orders[?total > `100`]", "model": [{"path": "customer.name", "alias": "name"}]}},
            {"key": "out", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.big[0].name}}"}}
        ]);
        let (outcome, _, output) = run(nodes, json!({"body": orders()})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        assert_eq!(output, json!("Bo"));
    }

    #[tokio::test]
    async fn a_failing_query_fails_the_node() {
        let nodes = json!([{"key": "q", "type": "json-query", "config": {"engine": "jsonata", "source": "{{$context}}", "expression": "$number(\"x\") + $undefinedFn()"}}]);
        let (outcome, jobs, _) = run(nodes, json!({})).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed);
        assert!(jobs[0].result["message"].is_string());
    }
}
