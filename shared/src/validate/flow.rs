//! `options.lane`, `options.staleGuard` and `options.concurrency` (model/flow.rs):
//! async only, their templates over `$context` alone (rendered when a delivery
//! is accepted, before any node ran), a stale guard only on a lane.

use serde_json::Value;

use super::Checker;
use crate::lang::template;
use crate::model::{
    MAX_BATCH_SIZE, MAX_CONCURRENCY, MAX_DEBOUNCE_WAIT_MS, MAX_GATHER_WAIT_MS, MAX_LANE_CONCURRENCY,
};

pub(super) fn check(
    options: &serde_json::Map<String, Value>,
    sync: bool,
    redacts: bool,
    check: &mut Checker,
) {
    gathering(options, redacts, check);
    for name in ["lane", "staleGuard", "concurrency", "debounce", "batch"] {
        if sync && options.contains_key(name) {
            check.error(
                format!("options.{name}"),
                "is for async workflows: a sync run starts when its request comes",
            );
        }
    }
    if let Some(lane) = options.get("lane") {
        context_template(lane.get("key"), "options.lane.key", check);
        check.optional_whole(
            lane,
            "concurrency",
            "options.lane",
            1..=u64::from(MAX_LANE_CONCURRENCY),
            "runs of one key at once",
        );
    }
    if let Some(guard) = options.get("staleGuard") {
        context_template(guard.get("version"), "options.staleGuard.version", check);
        if !options.contains_key("lane") {
            check.error(
                "options.staleGuard",
                "needs options.lane: a version is stale against what its lane ran",
            );
        }
    }
    if let Some(n) = options.get("concurrency")
        && !n
            .as_u64()
            .is_some_and(|n| (1..=u64::from(MAX_CONCURRENCY)).contains(&n))
    {
        check.error(
            "options.concurrency",
            format!("must be the most runs at once, 1..={MAX_CONCURRENCY}"),
        );
    }
}

/// `options.debounce` and `options.batch`: one of them, their bounds.
fn gathering(options: &serde_json::Map<String, Value>, redacts: bool, check: &mut Checker) {
    if options.contains_key("debounce") && options.contains_key("batch") {
        check.error(
            "options.batch",
            "a workflow debounces or batches its deliveries, not both",
        );
    }
    let wait = 1..=MAX_GATHER_WAIT_MS;
    if let Some(debounce) = options.get("debounce") {
        context_template(debounce.get("key"), "options.debounce.key", check);
        required_whole(
            debounce,
            "periodMs",
            "options.debounce",
            (wait.clone(), "milliseconds"),
            check,
        );
        check.optional_whole(
            debounce,
            "maxWaitMs",
            "options.debounce",
            1..=MAX_DEBOUNCE_WAIT_MS,
            "milliseconds",
        );
    }
    if let Some(batch) = options.get("batch") {
        context_template(batch.get("key"), "options.batch.key", check);
        let sizes = 1..=u64::from(MAX_BATCH_SIZE);
        required_whole(
            batch,
            "maxSize",
            "options.batch",
            (sizes, "deliveries"),
            check,
        );
        required_whole(
            batch,
            "timeoutMs",
            "options.batch",
            (wait, "milliseconds"),
            check,
        );
    }
    for name in ["debounce", "batch"] {
        if redacts && options.contains_key(name) {
            check.error(
                format!("options.{name}"),
                "cannot be used with trigger.redact yet: a gathered run is built from its deliveries' kept (redacted) records",
            );
        }
    }
}

fn required_whole(
    object: &Value,
    field: &str,
    at: &str,
    (range, unit): (std::ops::RangeInclusive<u64>, &str),
    check: &mut Checker,
) {
    if object.get(field).is_none() {
        check.error(
            format!("{at}.{field}"),
            format!("is required, {}..={}", range.start(), range.end()),
        );
    }
    check.optional_whole(object, field, at, range, unit);
}

/// A template naming `$context` only: what a delivery has when it is accepted.
fn context_template(value: Option<&Value>, at: &str, check: &mut Checker) {
    let Some(Value::String(text)) = value else {
        check.error(
            at,
            "is required: a template such as \"{{$context.body.customer}}\"",
        );
        return;
    };
    let references = template::references(text);
    if references.is_empty() {
        check.error(
            at,
            "names no value of the delivery: use a template such as \"{{$context.body.customer}}\"",
        );
    }
    for reference in references {
        if reference != "$context" && !reference.starts_with("$context.") {
            check.error(
                at,
                format!("{{{{{reference}}}}}: only $context is known when a delivery is accepted"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    fn problems(sync: bool, options: serde_json::Value) -> Vec<String> {
        let doc =
            json!({"key": "k", "sync": sync, "trigger": {"type": "webhook"}, "options": options});
        match crate::validate::validate(&doc, &crate::nodes::builtin()) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn lanes_are_checked_as_written() {
        let good = json!({"lane": {"key": "{{$context.body.customer}}", "concurrency": 3},
            "staleGuard": {"version": "{{$context.body.updated}}"}, "concurrency": 20});
        assert_eq!(problems(false, good.clone()), Vec::<String>::new());
        let found = problems(true, good).join("\n");
        assert!(
            found.contains("options.lane: is for async workflows"),
            "{found}"
        );
        assert!(
            found.contains("options.concurrency: is for async"),
            "{found}"
        );
        let found = problems(
            false,
            json!({"lane": {"key": "{{$jobsMapByNodeKey.a}}", "concurrency": 0},
                "staleGuard": {"version": "fixed"}, "concurrency": 0}),
        )
        .join("\n");
        for expected in [
            "options.lane.key: {{$jobsMapByNodeKey.a}}: only $context is known",
            "options.lane.concurrency: must be a whole number of runs of one key at once, 1..=100",
            "options.staleGuard.version: names no value of the delivery",
            "options.concurrency: must be the most runs at once, 1..=1000",
        ] {
            assert!(found.contains(expected), "{expected} not in {found}");
        }
        let found = problems(
            false,
            json!({"staleGuard": {"version": "{{$context.body.v}}"}}),
        );
        assert_eq!(
            found,
            [
                "options.staleGuard: needs options.lane: a version is stale against what its lane ran"
            ]
        );
    }
}
