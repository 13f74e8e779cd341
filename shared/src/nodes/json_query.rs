//! `json-query`: queries a JSON value with JMESPath (`jmespath` crate), JSONPath
//! (RFC 9535, `serde_json_path` crate) or JSONata (`jsonata-rs` crate), optionally
//! mapping the result into named fields with `model: [{path, alias}]`.

use async_trait::async_trait;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::engine::{Checker, NodeStop, NodeType, RunContext, config};
use crate::lang::{limits, path};
use crate::model::NodeDefinition;

/// JSONata may recurse; these bound one evaluation.
const JSONATA_MAX_DEPTH: usize = 200;
const JSONATA_TIME_LIMIT_MS: usize = 1000;

pub struct JsonQuery;

#[async_trait]
impl NodeType for JsonQuery {
    fn name(&self) -> &'static str {
        "json-query"
    }

    fn config_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<QueryConfig>()
    }

    fn validate(&self, config: &Value, at: &str, check: &mut Checker) {
        let Some(c) = config::read::<QueryConfig>(config, at, check) else {
            return;
        };
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

    async fn run(&self, node: &NodeDefinition, cx: &mut RunContext<'_>) -> Result<Value, NodeStop> {
        let c: QueryConfig = config::parse(&node.config)?;
        let source = cx.render(c.source.as_ref().unwrap_or(&Value::Null));
        let expression = c.expression.clone().unwrap_or_default();
        let engine = c.engine.as_str();
        let result = match c.engine {
            // JSONata may compute for up to its time limit: on a blocking thread, so
            // the run's own timeout (a sync deadline) can fire meanwhile.
            QueryEngine::Jsonata => {
                tokio::task::spawn_blocking(move || query(engine, &expression, &source, false))
                    .await
                    .map_err(|e| NodeStop::Error(format!("the JSONata engine failed: {e}")))?
            }
            _ => query(engine, &expression, &source, false),
        }
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
struct QueryConfig {
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
            Ok(Value::Array(
                parsed.query(source).all().into_iter().cloned().collect(),
            ))
        }
        "jsonata" => {
            let arena = bumpalo::Bump::new();
            let expression = with_bounded_pad(expression);
            // jsonata-rs panics on syntax it parses but does not implement (the
            // `%` parent operator): that is an expression it cannot run, not a bug
            // to fail the run with.
            let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                jsonata_rs::JsonAta::new(&expression, &arena)
            }))
            .map_err(|_| {
                "not a JSONata expression hookflow can run: it uses syntax the engine does \
                 not implement (such as the % parent operator)"
                    .to_string()
            })?
            .map_err(|e| format!("not a JSONata expression: {e}"))?;
            // Fail closed: a `$pad` the renaming did not reach (written where the
            // scan cannot see it, after a regex literal say) would be unbounded.
            if format!("{:?}", parsed.ast()).contains("Var(\"pad\")") {
                return Err("$pad is written where hookflow cannot bound its width; \
                            call it plainly, as $pad(text, width)"
                    .to_string());
            }
            parsed.register_function(BOUNDED_PAD, 3, bounded_pad);
            if compile_only {
                return Ok(Value::Null);
            }
            let input = source.to_string();
            // jsonata-rs panics on some inputs (a range whose bounds overflow, such
            // as `[-$x..$x]` with x = 1e300): that fails the node with its message,
            // as any error of the expression does.
            let result = crate::guard::catch_sync(|| {
                parsed.evaluate_timeboxed(
                    Some(&input),
                    Some(JSONATA_MAX_DEPTH),
                    Some(JSONATA_TIME_LIMIT_MS),
                )
            })
            .map_err(|panic| format!("the JSONata expression failed on this input: {panic}"))?
            .map_err(|e| e.to_string())?;
            if result.is_undefined() {
                return Ok(Value::Null);
            }
            serde_json::from_str(&result.serialize(false)).map_err(|e| e.to_string())
        }
        _ => {
            let parsed = jmespath::compile(expression)
                .map_err(|e| format!("not a JMESPath expression: {e}"))?;
            if compile_only {
                return Ok(Value::Null);
            }
            let found = parsed.search(source).map_err(|e| e.to_string())?;
            serde_json::to_value(&*found).map_err(|e| e.to_string())
        }
    }
}

/// `model: [{path, alias}]` turns each result object (or each item of a result
/// array) into an object of the named fields.
/// The name `$pad` calls go to (jsonata-rs binds its own `pad` at every
/// evaluation, over anything registered under that name).
const BOUNDED_PAD: &str = "__hookflow_pad";

/// The expression with every call of `$pad` (outside string literals and
/// comments) renamed to [`BOUNDED_PAD`].
fn with_bounded_pad(expression: &str) -> String {
    let mut out = String::with_capacity(expression.len());
    let mut rest = expression;
    while let Some(c) = rest.chars().next() {
        let skip = match c {
            '"' | '\'' | '`' => string_literal_len(rest, c),
            '/' if rest.starts_with("/*") => rest.find("*/").map_or(rest.len(), |end| end + 2),
            '$' if rest.starts_with("$pad")
                && !rest[4..].starts_with(|n: char| n.is_alphanumeric() || n == '_') =>
            {
                out.push('$');
                out.push_str(BOUNDED_PAD);
                rest = &rest[4..];
                continue;
            }
            _ => c.len_utf8(),
        };
        out.push_str(&rest[..skip]);
        rest = &rest[skip..];
    }
    out
}

/// The length of the string literal at the start of `text`, quotes included (all
/// of `text` when it is not closed).
fn string_literal_len(text: &str, quote: char) -> usize {
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if c == quote => return i + c.len_utf8(),
            _ => {}
        }
    }
    text.len()
}

/// The widest `$pad` may make a string. jsonata-rs's own `$pad` builds any width
/// it is given, and a width from a request (`$pad(x, $.n)` with n = 1e15) would
/// take all the memory there is.
const MAX_PAD_WIDTH: f64 = 1_048_576.0;

/// JSONata's `$pad(str, width [, char])`: pads on the right for a positive width,
/// on the left for a negative one, with `char` (a space by default) repeated.
fn bounded_pad<'a>(
    cx: jsonata_rs::FunctionContext<'a, '_>,
    args: &[&'a jsonata_rs::Value<'a>],
) -> Result<&'a jsonata_rs::Value<'a>, jsonata_rs::Error> {
    use jsonata_rs::Value as J;
    let (Some(text), Some(width)) = (args.first(), args.get(1)) else {
        return Ok(J::undefined());
    };
    if !text.is_string() || !width.is_number() {
        return Ok(J::undefined());
    }
    let width = width.as_f64().round();
    if !width.is_finite() || width.abs() > MAX_PAD_WIDTH {
        return Err(jsonata_rs::Error::D3137Error(format!(
            "$pad: the width {width} is more than {MAX_PAD_WIDTH}"
        )));
    }
    let text = text.as_str();
    let fill = args
        .get(2)
        .map(|c| c.as_str().into_owned())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| " ".to_string());
    // Within the bound above: the cast is exact.
    let missing = (width.abs() as usize).saturating_sub(text.chars().count());
    let padding: String = fill.chars().cycle().take(missing).collect();
    let padded = if width > 0.0 {
        format!("{text}{padding}")
    } else {
        format!("{padding}{text}")
    };
    Ok(J::string(cx.arena, &padded))
}

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
        // Only calls are renamed: not text in strings or comments, not `$padded`.
        assert_eq!(
            with_bounded_pad("$pad(\"$pad(\", 1) & '$pad' /* $pad */ & $padded"),
            "$__hookflow_pad(\"$pad(\", 1) & '$pad' /* $pad */ & $padded"
        );
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
