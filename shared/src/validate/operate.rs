//! Rules for what keeps a workflow running after things go wrong: a node's
//! `retry`, and `options.onFailure`.

use serde_json::Value;

use super::{Checker, unknown_fields};
use crate::model::RetryPolicy;

/// `retry`: `{maxAttempts, backoffMs?, maxBackoffMs?}`.
pub(super) fn check_retry(retry: &Value, at: &str, check: &mut Checker) {
    let Some(map) = retry.as_object() else {
        check.error(
            at,
            "must be an object {maxAttempts, backoffMs, maxBackoffMs}, e.g. {\"maxAttempts\": 3, \"backoffMs\": 200}",
        );
        return;
    };
    unknown_fields(
        map,
        &["maxAttempts", "backoffMs", "maxBackoffMs"],
        at,
        check,
    );
    if map.get("maxAttempts").is_none() {
        check.error(
            format!("{at}.maxAttempts"),
            format!(
                "is required: how many runs in all, 1..={}",
                RetryPolicy::MAX_ATTEMPTS
            ),
        );
    }
    check.optional_whole(
        retry,
        "maxAttempts",
        at,
        1..=u64::from(RetryPolicy::MAX_ATTEMPTS),
        "runs in all",
    );
    for field in ["backoffMs", "maxBackoffMs"] {
        check.optional_whole(
            retry,
            field,
            at,
            0..=RetryPolicy::MAX_BACKOFF_MS,
            "milliseconds",
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems(retry: Value) -> Vec<String> {
        let doc = json!({"key": "k", "trigger": {"type": "webhook"},
            "nodes": [{"key": "n", "type": "output", "config": {"value": 1}, "retry": retry}]});
        match crate::validate::validate(&doc, &crate::nodes::builtin()) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn retry_policies() {
        assert!(problems(json!({"maxAttempts": 3, "backoffMs": 200})).is_empty());
        assert!(problems(json!({"maxAttempts": 1})).is_empty());
        assert_eq!(
            problems(json!({"backoffMs": 200})),
            ["nodes[0].retry.maxAttempts: is required: how many runs in all, 1..=10"]
        );
        assert_eq!(
            problems(json!({"maxAttempts": 0, "backoffMs": -1, "tries": 2})),
            [
                "nodes[0].retry.tries: unknown field; expected one of maxAttempts, backoffMs, maxBackoffMs",
                "nodes[0].retry.maxAttempts: must be a whole number of runs in all, 1..=10",
                "nodes[0].retry.backoffMs: must be a whole number of milliseconds, 0..=3600000",
            ]
        );
        assert_eq!(
            problems(json!(3)),
            [
                "nodes[0].retry: must be an object {maxAttempts, backoffMs, maxBackoffMs}, e.g. {\"maxAttempts\": 3, \"backoffMs\": 200}"
            ]
        );
    }
}
