//! `calculation`: evaluates an expression with the `math.js` or `formula.js` engine.
//!
//! Expressions are evaluated by the `evalexpr` crate (a maintained, sandboxed
//! expression language: no I/O, no loops). Each `{{ path }}` is replaced by a variable
//! that is bound to the referenced value, never spliced in as source text, so request
//! data cannot inject code. Numbers are floats as in JavaScript (`5 / 2` is 2.5),
//! results are rounded to 9 decimals, and NaN or infinities become null.

mod functions;

use async_trait::async_trait;
use evalexpr::{
    Context as _, ContextWithMutableFunctions, ContextWithMutableVariables, HashMapContext,
    Value as Ev,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Number, Value, json};

use crate::engine::{Checker, Node, NodeStop, RunContext};
use crate::lang::limits;
use crate::model::NodeDefinition;

pub struct Calculation;

#[async_trait]
impl Node for Calculation {
    type Config = CalculationConfig;

    fn name(&self) -> &'static str {
        "calculation"
    }

    fn check(&self, c: &CalculationConfig, at: &str, check: &mut Checker) {
        let at = format!("{at}.expression");
        match &c.expression {
            None => check.error(at, "is required (a string)"),
            Some(expr) => {
                if let Some(problem) = limits::check_expression(expr) {
                    check.error(at, problem);
                } else if let Err(e) = evalexpr::build_operator_tree::<evalexpr::DefaultNumericTypes>(
                    &bind_references(expr).0,
                ) {
                    check.error(at, format!("does not parse: {e}"));
                }
            }
        }
    }

    async fn run(
        &self,
        c: &CalculationConfig,
        _node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let (source, references) = bind_references(c.expression.as_deref().unwrap_or(""));
        let values: Vec<Value> = references.iter().map(|r| cx.resolve(r)).collect();
        evaluate(c.engine.as_str(), &source, &values)
            .map_err(|message| NodeStop::Fail(json!({ "message": message })))
    }
}

/// `engine` and `expression` (references bound as values, never spliced in).
#[derive(Debug, Deserialize, JsonSchema)]
pub struct CalculationConfig {
    #[serde(default)]
    engine: CalculationEngine,
    #[serde(default)]
    expression: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
enum CalculationEngine {
    #[default]
    #[serde(rename = "math.js")]
    Math,
    #[serde(rename = "formula.js")]
    Formula,
}

impl CalculationEngine {
    fn as_str(self) -> &'static str {
        match self {
            Self::Math => "math.js",
            Self::Formula => "formula.js",
        }
    }
}

/// Replaces each `{{ path }}` by `__hf_ref_N` and returns the references in order.
fn bind_references(expression: &str) -> (String, Vec<String>) {
    let mut source = String::with_capacity(expression.len());
    let mut references = Vec::new();
    let mut rest = expression;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open + 2..].find("}}") else {
            break;
        };
        source.push_str(&rest[..open]);
        source.push_str(&format!("__hf_ref_{}", references.len()));
        references.push(rest[open + 2..open + 2 + close].trim().to_string());
        rest = &rest[open + 2 + close + 2..];
    }
    source.push_str(rest);
    (as_float_literals(&source), references)
}

/// JavaScript has one number type: `5 / 2` is 2.5. evalexpr keeps integer literals as
/// integers, so integer literals outside strings are written as floats.
fn as_float_literals(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len() + 8);
    let mut i = 0;
    let mut in_string = false;
    while i < chars.len() {
        let c = chars[i];
        if in_string {
            out.push(c);
            if c == '\\' && i + 1 < chars.len() {
                out.push(chars[i + 1]);
                i += 1;
            } else if c == '"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        if c == '"' {
            in_string = true;
            out.push(c);
            i += 1;
            continue;
        }
        let starts_number = c.is_ascii_digit()
            && (i == 0
                || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_' || chars[i - 1] == '.'));
        if starts_number {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            out.extend(&chars[start..i]);
            let continues = i < chars.len() && matches!(chars[i], '.' | 'e' | 'E');
            if !continues {
                out.push_str(".0");
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Evaluates a prepared expression with its bound values.
pub fn evaluate(engine: &str, source: &str, values: &[Value]) -> Result<Value, String> {
    if let Some(problem) = limits::check_expression(source) {
        return Err(format!("the expression {problem}"));
    }
    let mut context = HashMapContext::<evalexpr::DefaultNumericTypes>::new();
    // Only the functions documented for each engine: evalexpr's own built-ins
    // (string slicing, integer bit shifts, ...) are not part of the language.
    context
        .set_builtin_functions_disabled(true)
        .map_err(|e| e.to_string())?;
    let table = if engine == "formula.js" {
        functions::FORMULA
    } else {
        functions::MATH
    };
    for (name, function) in table {
        context
            .set_function((*name).to_string(), evalexpr::Function::new(*function))
            .map_err(|e| e.to_string())?;
    }
    for (i, value) in values.iter().enumerate() {
        context
            .set_value(format!("__hf_ref_{i}"), to_evalexpr(value))
            .map_err(|e| e.to_string())?;
    }
    let result = evalexpr::eval_with_context(source, &context).map_err(|e| e.to_string())?;
    Ok(to_json(&result))
}

fn to_evalexpr(value: &Value) -> Ev {
    match value {
        Value::Null => Ev::Empty,
        Value::Bool(b) => Ev::Boolean(*b),
        Value::Number(n) => Ev::Float(n.as_f64().unwrap_or(f64::NAN)),
        // Webhook data is text ("19.99" from a query string); like math.js, numeric
        // text takes part in arithmetic as a number.
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(n) if n.is_finite() && !s.trim().is_empty() => Ev::Float(n),
            _ => Ev::String(s.clone()),
        },
        Value::Array(items) => Ev::Tuple(items.iter().map(to_evalexpr).collect()),
        Value::Object(_) => Ev::String(value.to_string()),
    }
}

fn to_json(value: &Ev) -> Value {
    match value {
        Ev::Empty => Value::Null,
        Ev::Boolean(b) => Value::Bool(*b),
        Ev::Int(i) => json!(i),
        Ev::Float(f) => number(*f),
        Ev::String(s) => Value::String(s.clone()),
        Ev::Tuple(items) => Value::Array(items.iter().map(to_json).collect()),
    }
}

/// Rounded to 9 decimals; NaN and infinities are null; whole numbers print without
/// a fraction.
pub fn number(f: f64) -> Value {
    if !f.is_finite() {
        return Value::Null;
    }
    // Float noise (0.1 + 0.2) rounded off at 9 decimals, where that is exact
    // enough; larger numbers are kept as they are (scaling them would overflow).
    let rounded = if f.abs() < 1e6 {
        (f * 1e9).round() / 1e9
    } else {
        f
    };
    if rounded.fract() == 0.0 && rounded.abs() < 9.0e15 {
        return json!(rounded as i64);
    }
    Number::from_f64(rounded).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ExecutionStatus;
    use crate::nodes::test_support::run;

    fn calc(engine: &str, expression: &str, values: &[Value]) -> Value {
        let (source, _) = bind_references(expression);
        evaluate(engine, &source, values).unwrap()
    }

    #[test]
    fn arithmetic_like_math_js() {
        assert_eq!(calc("math.js", "1 + 2 * 3", &[]), json!(7));
        assert_eq!(calc("math.js", "5 / 2", &[]), json!(2.5));
        assert_eq!(calc("math.js", "2 ^ 10", &[]), json!(1024));
        assert_eq!(calc("math.js", "10 % 4", &[]), json!(2));
        assert_eq!(calc("math.js", "0.1 + 0.2", &[]), json!(0.3));
        assert_eq!(calc("math.js", "1 / 3", &[]), json!(0.333333333));
        assert_eq!(calc("math.js", "3 > 2 && 1 == 1", &[]), json!(true));
        assert_eq!(
            calc("math.js", "sqrt(16) + abs(-2) + round(2.567, 2)", &[]),
            json!(8.57)
        );
        assert_eq!(calc("math.js", "max(1, 7, 3) - min(4, 2)", &[]), json!(5));
        assert_eq!(calc("math.js", "1 / 0", &[]), Value::Null);
        assert_eq!(calc("math.js", "sqrt(-1)", &[]), Value::Null);
    }

    #[test]
    fn spreadsheet_functions_like_formula_js() {
        assert_eq!(calc("formula.js", "SUM(1, 2, 3)", &[]), json!(6));
        assert_eq!(
            calc("formula.js", "AVERAGE({{a}})", &[json!([2, 4, "6"])]),
            json!(4)
        );
        assert_eq!(calc("formula.js", "ROUND(2.71828, 2)", &[]), json!(2.72));
        assert_eq!(
            calc(
                "formula.js",
                "IF({{a}} > 100, \"big\", \"small\")",
                &[json!(250)]
            ),
            json!("big")
        );
        assert_eq!(
            calc("formula.js", "AND(true, 1 > 0, OR(false, true))", &[]),
            json!(true)
        );
        assert_eq!(
            calc("formula.js", "CONCATENATE(\"order-\", {{id}})", &[json!(7)]),
            json!("order-7")
        );
        // Numbers as JavaScript writes them (formula.js is JavaScript).
        for (value, text) in [
            (json!(1e16), "100000000000000000"),
            (json!(1e300), "1e+3000"),
            (json!(-0.0), "00"),
            (json!(0.5), "0.50"),
        ] {
            assert_eq!(
                calc(
                    "formula.js",
                    "CONCATENATE({{id}}, 0)",
                    std::slice::from_ref(&value)
                ),
                json!(text),
                "{value}"
            );
        }
        assert_eq!(
            calc(
                "formula.js",
                "LEN(UPPER(\"abc\")) + LEN(LOWER(\"DEF\"))",
                &[]
            ),
            json!(6)
        );
        let xs = json!([3, 9, 1]);
        assert_eq!(
            calc("formula.js", "MAX({{xs}}) - MIN({{xs}})", &[xs.clone(), xs]),
            json!(8)
        );
        assert_eq!(
            calc(
                "formula.js",
                "IF({{q}} >= 10, \"bulk\", \"single\")",
                &[json!("12")]
            ),
            json!("bulk")
        );
    }

    #[test]
    fn references_are_values_not_source() {
        // A string that looks like code stays a string.
        let evil = json!("1) + 1000 + (1");
        assert!(evaluate("math.js", &bind_references("{{x}} + 1").0, &[evil]).is_err());
        assert_eq!(
            calc("math.js", "{{x}} + \" suffix\"", &[json!("a \" b")]),
            json!("a \" b suffix")
        );
        assert_eq!(
            calc("math.js", "{{price}} * {{qty}}", &[json!(2.5), json!(4)]),
            json!(10)
        );
    }

    #[test]
    fn literals_inside_strings_are_untouched() {
        assert_eq!(
            as_float_literals("\"a1\" + x2 + 3 + 1.5 + 2e3"),
            "\"a1\" + x2 + 3.0 + 1.5 + 2e3"
        );
    }

    #[tokio::test]
    async fn the_result_flows_into_later_nodes_and_errors_fail() {
        let nodes = json!([
            {"key": "total", "type": "calculation", "config": {"engine": "math.js", "expression": "{{$context.price}} * {{$context.qty}}"}},
            {"key": "out", "type": "output", "config": {"value": "total={{$jobsMapByNodeKey.total}}"}}
        ]);
        let (outcome, _, output) = run(nodes, json!({"price": "19.99", "qty": 3})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        assert_eq!(output, json!("total=59.97"));

        let nodes =
            json!([{"key": "bad", "type": "calculation", "config": {"expression": "nosuchfn(1)"}}]);
        let (outcome, jobs, _) = run(nodes, json!({})).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed);
        assert!(jobs[0].result["message"].is_string());
    }
}
