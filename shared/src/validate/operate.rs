//! Rules for what keeps a workflow running after things go wrong: a node's
//! `retry`, and `options.onFailure`.

use serde_json::Value;

use super::{Checker, MAX_TIMEOUT_MS, is_identifier};
use crate::model::{RetryPolicy, WorkflowOptions};

/// `options`: `{timeoutMs?, onFailure?}` of the workflow keyed `key`.
pub(super) fn check_options(options: &Value, key: &str, check: &mut Checker) {
    let Some(map) = options.as_object() else {
        return;
    };
    let max_delay = WorkflowOptions::MAX_DELAY_SECONDS;
    let counts = [
        ("maxDelaySeconds", max_delay, "seconds a delay may wait"),
        ("maxPausedRuns", u64::MAX, "runs that may be paused at once"),
    ];
    for (name, max, what) in counts {
        match map.get(name) {
            None => {}
            Some(n) if n.as_u64().is_some_and(|n| (1..=max).contains(&n)) => {}
            Some(_) if max == u64::MAX => check.error(
                format!("options.{name}"),
                format!("must be the most {what}, 1 or more"),
            ),
            Some(_) => check.error(
                format!("options.{name}"),
                format!("must be the most {what}, 1..={max}"),
            ),
        }
    }
    match map.get("timeoutMs") {
        None => {}
        Some(t)
            if t.as_u64()
                .is_some_and(|t| (1..=MAX_TIMEOUT_MS).contains(&t)) => {}
        Some(_) => check.error("options.timeoutMs", format!("must be 1..={MAX_TIMEOUT_MS}")),
    }
    match map.get("onFailure") {
        None => {}
        Some(Value::String(target)) if target == key => check.error(
            "options.onFailure",
            "names this workflow itself; name another workflow to run when this one fails",
        ),
        Some(Value::String(target)) if is_identifier(target, 128) => {}
        Some(_) => check.error(
            "options.onFailure",
            "must be the key of the workflow to run when a run fails (a string)",
        ),
    }
}

/// `retry`: `{maxAttempts, backoffMs?, maxBackoffMs?}`.
pub(super) fn check_retry(retry: &Value, at: &str, check: &mut Checker) {
    let Some(map) = retry.as_object() else {
        return;
    };
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

    fn option_problems(options: Value) -> Vec<String> {
        let doc = json!({"key": "k", "trigger": {"type": "webhook"}, "options": options});
        match crate::validate::validate(&doc, &crate::nodes::builtin()) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn failure_workflows() {
        assert!(option_problems(json!({"onFailure": "alert", "timeoutMs": 5})).is_empty());
        assert_eq!(
            option_problems(json!({"onFailure": "k"})),
            [
                "options.onFailure: names this workflow itself; name another workflow to run when this one fails"
            ]
        );
        assert_eq!(
            option_problems(json!({"onFailure": ["a"], "retry": 1, "timeoutMs": 0})),
            [
                "options.retry: unknown field; expected one of timeoutMs, onFailure, maxDelaySeconds, maxPausedRuns, lane, staleGuard, concurrency, debounce, batch",
                "options.timeoutMs: must be 1..=900000",
                "options.onFailure: must be the key of the workflow to run when a run fails (a string)",
            ]
        );
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
            ["nodes[0].retry: must be an object {maxAttempts, backoffMs, maxBackoffMs}"]
        );
    }
}
