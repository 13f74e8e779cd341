//! NocoBase's basic calculation engine, shared by every node that tests a condition:
//! `{calculator, operands: [a, b]}` or `{group: {type: and|or, calculations: [...]}}`.

use std::cmp::Ordering;

use serde_json::Value;

use crate::engine::Checker;

const CALCULATORS: [&str; 18] = [
    "equal",
    "notEqual",
    "gt",
    "gte",
    "lt",
    "lte",
    "==",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "includes",
    "notIncludes",
    "startsWith",
    "notStartsWith",
    "endsWith",
    "notEndsWith",
];

/// Reports every problem of a calculation at `at`.
pub fn validate(calc: &Value, at: &str, check: &mut Checker) {
    let Some(map) = calc.as_object() else {
        check.error(at, "must be an object with `calculator` or `group`");
        return;
    };
    if let Some(group) = map.get("group") {
        let at = format!("{at}.group");
        let Some(group) = group.as_object() else {
            check.error(&at, "must be an object");
            return;
        };
        match group.get("type").and_then(Value::as_str) {
            Some("and" | "or") | None => {}
            Some(_) => check.error(format!("{at}.type"), "must be \"and\" or \"or\""),
        }
        match group.get("calculations") {
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    validate(item, &format!("{at}.calculations[{i}]"), check);
                }
            }
            None => {}
            Some(_) => check.error(format!("{at}.calculations"), "must be an array"),
        }
        return;
    }
    match map.get("calculator") {
        Some(Value::String(name)) if name.is_empty() || CALCULATORS.contains(&name.as_str()) => {}
        Some(Value::String(name)) => check.error(
            format!("{at}.calculator"),
            format!(
                "unknown calculator {name:?}; known: {}",
                CALCULATORS.join(", ")
            ),
        ),
        None | Some(Value::Null) => {}
        Some(_) => check.error(format!("{at}.calculator"), "must be a string"),
    }
    match map.get("operands") {
        Some(Value::Array(ops)) if ops.len() <= 2 => {}
        Some(Value::Array(_)) => {
            check.error(format!("{at}.operands"), "takes at most two operands")
        }
        None => {}
        Some(_) => check.error(format!("{at}.operands"), "must be an array"),
    }
}

/// Reports a missing calculation, or every problem of one.
pub fn validate_required(calc: Option<&Value>, at: &str, check: &mut Checker) {
    match calc {
        Some(calc) => validate(calc, at, check),
        None => check.error(at, "is required"),
    }
}

/// Evaluates a calculation; `render` resolves each operand's templates.
pub fn evaluate(calc: &Value, render: &dyn Fn(&Value) -> Value) -> bool {
    if let Some(group) = calc.get("group") {
        let items = group
            .get("calculations")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut results = items.iter().map(|c| evaluate(c, render));
        return match group.get("type").and_then(Value::as_str) {
            Some("or") => results.any(|r| r),
            _ => results.all(|r| r),
        };
    }
    let calculator = calc.get("calculator").and_then(Value::as_str).unwrap_or("");
    if calculator.is_empty() {
        // NocoBase counts an item with no calculator chosen as true.
        return true;
    }
    let operands = calc.get("operands").and_then(Value::as_array);
    let operand = |i: usize| {
        operands
            .and_then(|ops| ops.get(i))
            .map(render)
            .unwrap_or(Value::Null)
    };
    compare(calculator, &operand(0), &operand(1))
}

/// Applies one calculator to two values.
pub fn compare(calculator: &str, a: &Value, b: &Value) -> bool {
    match calculator {
        "equal" | "==" => equal(a, b),
        "notEqual" | "!=" => !equal(a, b),
        "gt" | ">" => order(a, b) == Some(Ordering::Greater),
        "gte" | ">=" => matches!(order(a, b), Some(Ordering::Greater | Ordering::Equal)),
        "lt" | "<" => order(a, b) == Some(Ordering::Less),
        "lte" | "<=" => matches!(order(a, b), Some(Ordering::Less | Ordering::Equal)),
        "includes" => includes(a, b),
        "notIncludes" => !includes(a, b),
        "startsWith" => text_test(a, b, |s, p| s.starts_with(p)),
        "notStartsWith" => !text_test(a, b, |s, p| s.starts_with(p)),
        "endsWith" => text_test(a, b, |s, p| s.ends_with(p)),
        "notEndsWith" => !text_test(a, b, |s, p| s.ends_with(p)),
        _ => false,
    }
}

/// A number, or a string that reads as one (`"100"`, `" 1.5e3 "`).
fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let s = s.trim();
            let numeric = !s.is_empty()
                && s.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
                && s.chars().any(|c| c.is_ascii_digit());
            numeric
                .then(|| s.parse::<f64>().ok())
                .flatten()
                .filter(|n| n.is_finite())
        }
        _ => None,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (as_number(a), as_number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn order(a: &Value, b: &Value) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (as_number(a), as_number(b)) {
        return x.partial_cmp(&y);
    }
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn includes(a: &Value, b: &Value) -> bool {
    match a {
        Value::String(s) => as_text(b).is_some_and(|needle| s.contains(needle.as_str())),
        Value::Array(items) => items.iter().any(|item| equal(item, b)),
        _ => false,
    }
}

fn text_test(a: &Value, b: &Value, test: fn(&str, &str) -> bool) -> bool {
    match (a, as_text(b)) {
        (Value::String(s), Some(p)) => test(s, &p),
        _ => false,
    }
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_and_numeric_strings_compare_as_numbers() {
        assert!(compare("equal", &json!("100"), &json!(100)));
        assert!(compare("==", &json!(1.5), &json!(" 1.5 ")));
        assert!(compare("gt", &json!("10"), &json!("9")));
        assert!(compare("lte", &json!(3), &json!("3")));
        assert!(compare("!=", &json!("100"), &json!(101)));
        assert!(!compare("equal", &json!("abc"), &json!(0)));
    }

    #[test]
    fn other_values_compare_as_json() {
        assert!(compare("equal", &json!("paid"), &json!("paid")));
        assert!(!compare("equal", &json!("Paid"), &json!("paid")));
        assert!(compare("equal", &json!(null), &json!(null)));
        assert!(compare("equal", &json!({"a": [1]}), &json!({"a": [1]})));
        assert!(compare("notEqual", &json!(true), &json!("true")));
        assert!(compare("lt", &json!("apple"), &json!("banana")));
        assert!(!compare("gt", &json!(null), &json!(1)));
        assert!(!compare("lt", &json!(null), &json!(1)));
        assert!(!compare(">=", &json!({}), &json!({})));
    }

    #[test]
    fn text_and_array_calculators() {
        assert!(compare("includes", &json!("hello world"), &json!("lo w")));
        assert!(compare("includes", &json!(["a", 2]), &json!("2")));
        assert!(compare("notIncludes", &json!(["a"]), &json!("b")));
        assert!(!compare("includes", &json!(5), &json!(5)));
        assert!(compare("startsWith", &json!("evt_123"), &json!("evt_")));
        assert!(compare("notStartsWith", &json!("evt_123"), &json!("ch_")));
        assert!(compare("endsWith", &json!("file.json"), &json!(".json")));
        assert!(compare("notEndsWith", &json!("file.json"), &json!(".xml")));
        assert!(compare("startsWith", &json!("42abc"), &json!(42)));
        assert!(!compare("startsWith", &json!(null), &json!("")));
    }

    #[test]
    fn groups_nest_and_empty_calculators_are_true() {
        let id = |v: &Value| v.clone();
        let calc = json!({"group": {"type": "or", "calculations": [
            {"calculator": "equal", "operands": [1, 2]},
            {"group": {"type": "and", "calculations": [
                {"calculator": "gt", "operands": [3, 2]},
                {"calculator": "", "operands": []}
            ]}}
        ]}});
        assert!(evaluate(&calc, &id));
        let calc = json!({"group": {"type": "and", "calculations": [
            {"calculator": "equal", "operands": [1, 1]},
            {"calculator": "equal", "operands": [1, 2]}
        ]}});
        assert!(!evaluate(&calc, &id));
        assert!(evaluate(
            &json!({"group": {"type": "and", "calculations": []}}),
            &id
        ));
        assert!(!evaluate(
            &json!({"group": {"type": "or", "calculations": []}}),
            &id
        ));
    }

    #[test]
    fn validation_names_each_bad_calculator() {
        let mut problems = Vec::new();
        let mut check = Checker::new(&mut problems);
        let calc = json!({"group": {"type": "xor", "calculations": [
            {"calculator": "equals", "operands": [1, 2]},
            {"calculator": "equal", "operands": "x"}
        ]}});
        validate(&calc, "c", &mut check);
        let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "c.group.type",
                "c.group.calculations[0].calculator",
                "c.group.calculations[1].operands"
            ]
        );
    }
}
