//! Bounds on the JSON values hookflow makes and keeps.
//!
//! Every value a run produces ends up in an execution record that is written as
//! JSON and read back (a resume, `executions show`, the worker on another machine).
//! serde_json refuses to read JSON nested deeper than 128 levels, and serialising,
//! cloning and dropping a value recurse once per level; so values are kept far
//! below that: a request body, a node's result, an output. A node's result is also
//! bounded in size, so no chain of nodes (a loop doubling a string) can grow one
//! without limit.

use serde_json::Value;

/// The deepest nesting a request body or a node's result may have. The record
/// around them adds a few levels, and a paused run's frames a few per branching
/// node: all of it stays below serde_json's 128.
pub const MAX_DEPTH: usize = 64;

/// The largest a node's result may be, as JSON text.
pub const MAX_RESULT_BYTES: usize = 8 << 20;

/// The deepest an expression (calculation, JSONPath, JMESPath, JSONata) may nest
/// brackets. Their parsers recurse once per level: a definition nesting hundreds
/// of levels would overflow the stack of `hookflow validate` or of a run.
pub const MAX_EXPRESSION_NESTING: usize = 64;

/// Why an expression may not be parsed, or `None`: it nests `()`, `[]` and `{}`
/// (counted everywhere, quotes included, which only errs on the safe side) at
/// most [`MAX_EXPRESSION_NESTING`] deep.
pub fn check_expression(expression: &str) -> Option<String> {
    let mut level = 0usize;
    for c in expression.chars() {
        match c {
            '(' | '[' | '{' => {
                level += 1;
                if level > MAX_EXPRESSION_NESTING {
                    return Some(format!(
                        "nests brackets deeper than {MAX_EXPRESSION_NESTING} levels"
                    ));
                }
            }
            ')' | ']' | '}' => level = level.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// How deeply a value nests (a scalar is 0, `[1]` is 1). Iterative, so it is safe
/// on any value however deep.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, level)) = stack.pop() {
        match v {
            Value::Array(items) => {
                deepest = deepest.max(level + 1);
                stack.extend(items.iter().map(|i| (i, level + 1)));
            }
            Value::Object(map) => {
                deepest = deepest.max(level + 1);
                stack.extend(map.values().map(|i| (i, level + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// The length of a value as compact JSON text, counted without writing it, and
/// stopping as soon as it passes `cap` (the answer is then some number above it).
pub fn json_len_up_to(value: &Value, cap: usize) -> usize {
    let mut total = 0usize;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        total += match v {
            Value::Null => 4,
            Value::Bool(b) => 4 + usize::from(!b),
            Value::Number(n) => n.to_string().len(),
            Value::String(s) => string_len(s),
            Value::Array(items) => {
                stack.extend(items.iter());
                2 + items.len().saturating_sub(1)
            }
            Value::Object(map) => {
                stack.extend(map.values());
                // Braces, commas, and `"key":` for each entry.
                2 + map.len().saturating_sub(1)
                    + map.keys().map(|k| string_len(k) + 1).sum::<usize>()
            }
        };
        if total > cap {
            break;
        }
    }
    total
}

/// A string's length as a JSON string literal (quotes and escapes included).
fn string_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// The longest error message kept (a script may throw one of many MiB).
pub const MAX_MESSAGE_BYTES: usize = 64 << 10;

/// A message cut to [`MAX_MESSAGE_BYTES`] (on a character boundary), saying so.
pub fn shorten(message: &str) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message.to_string();
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &message[..end], message.len())
}

/// Why a value may not be kept, or `None` when it is within bounds.
pub fn check_result(value: &Value) -> Option<String> {
    if depth(value) > MAX_DEPTH {
        return Some(format!(
            "the result is nested deeper than {MAX_DEPTH} levels"
        ));
    }
    if json_len_up_to(value, MAX_RESULT_BYTES) > MAX_RESULT_BYTES {
        return Some(format!(
            "the result is larger than {} MiB",
            MAX_RESULT_BYTES >> 20
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_counts_levels() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!([])), 1);
        assert_eq!(depth(&json!({"a": [1, {"b": []}]})), 4);
        let mut deep = json!(null);
        for _ in 0..100_000 {
            deep = Value::Array(vec![deep]);
        }
        assert_eq!(depth(&deep), 100_000);
        // Dropping it would recurse once per level: take it apart by hand.
        while let Value::Array(mut items) = deep {
            deep = items.pop().unwrap_or(Value::Null);
        }
    }

    #[test]
    fn json_len_matches_serde_json() {
        for v in [
            json!(null),
            json!(true),
            json!(false),
            json!(-1.5e300),
            json!("a\"b\\c\n\u{1}é"),
            json!({"k\"": [1, 2, {"x": null}], "": {}}),
            json!([[], [[]], ""]),
        ] {
            assert_eq!(json_len_up_to(&v, usize::MAX), v.to_string().len(), "{v}");
        }
        assert!(json_len_up_to(&Value::Array(vec![json!("x"); 1000]), 10) > 10);
    }

    #[test]
    fn expressions_nest_at_most_64_levels() {
        assert_eq!(check_expression("a[(1 + {b: [2]})]"), None);
        let deep = format!("{}1{}", "(".repeat(65), ")".repeat(65));
        assert!(check_expression(&deep).unwrap().contains("deeper than 64"));
        let wide = "(1)".repeat(1000);
        assert_eq!(check_expression(&wide), None);
    }

    #[test]
    fn results_out_of_bounds_are_named() {
        assert_eq!(check_result(&json!({"a": 1})), None);
        let mut deep = json!(1);
        for _ in 0..=MAX_DEPTH {
            deep = json!([deep]);
        }
        assert!(check_result(&deep).unwrap().contains("deeper than 64"));
        let big = Value::String("x".repeat(MAX_RESULT_BYTES));
        assert!(check_result(&big).unwrap().contains("larger than 8 MiB"));
    }
}
