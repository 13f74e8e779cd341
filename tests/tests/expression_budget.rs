//! Property: a `json-query` node whose JSONata expression grows its output from
//! what a request sends (`$replace`, `$join`, `$string` of shared parts, `$pad`, a
//! range, a backtracking-prone regex, `&` on shared parts) ends with a result within
//! the bound of a result, or fails naming the bound it reached; it never aborts the process
//! (this test process would die with it) and the process's peak memory stays
//! bounded. Before the budget, `$replace` from a 690 KB request aborted the
//! process (`memory allocation of 4915200000 bytes failed`).

use std::sync::Arc;

use hookflow::engine::{Engine, Limits, RunState};
use hookflow::lang::limits;
use hookflow::model::{JobStatus, NodeDefinition};
use hookflow_tests::test_nodes;
use proptest::prelude::*;
use serde_json::{Value, json};

/// The messages of the bounds an evaluation may reach: the size of a string or
/// result, the arena's budget, `$pad`'s width, JSONata's own range cap (10^7) and
/// time limit.
const BOUNDS: [&str; 6] = [
    "more than 8 MiB",
    "more than 16 MiB, the bound of one value's text",
    "memory budget of 64 MiB",
    "$pad: the width",
    "D2014",
    "U1001",
];

/// An expression from the growth builtins, over `$.t` (text), `$.v` (a
/// replacement) and `$.n` (a count), all sent by the request.
fn growth_expression() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("$replace(t, \"<x>\", v)".to_string()),
        Just("$replace(t, /<x>/, v)".to_string()),
        Just("$replace(t, /<(x)>/, \"$1$1$1\" & v)".to_string()),
        Just("$replace(t, /<x>/, function($m) { $$.v & $m.match })".to_string()),
        Just("$join([1..n].($$.t), v)".to_string()),
        Just("$count([[1..n]][0].($ + 1))".to_string()),
        Just("$pad(t, n, v)".to_string()),
        Just("$contains(t & \"!\", /^((<x>|<)+x?>?)*$/)".to_string()),
        (1usize..12).prop_map(|levels| {
            let mut e = "($a0 := [t, t]; ".to_string();
            for i in 1..levels {
                e.push_str(&format!("$a{i} := [$a{p}, $a{p}]; ", p = i - 1));
            }
            e.push_str(&format!("$string($a{}))", levels - 1));
            e
        }),
        // `&` writes its operands out as `$string` does, but is an operator, not
        // a builtin hookflow could rename: the serialiser itself is bounded
        // (vendor/jsonata-rs/PATCHES.md).
        (1usize..40, prop::bool::ANY).prop_map(|(levels, left)| {
            let mut e = "($a0 := [t, v]; ".to_string();
            for i in 1..levels {
                e.push_str(&format!("$a{i} := [$a{p}, $a{p}]; ", p = i - 1));
            }
            let last = format!("$a{}", levels - 1);
            e.push_str(&if left {
                format!("{last} & \"\")")
            } else {
                format!("\"\" & {last})")
            });
            e
        }),
    ]
}

/// A request body of sender size: up to ~700 KB of text and 50 KB of replacement.
fn sender_body() -> impl Strategy<Value = Value> {
    (0usize..240_000, 0usize..50_000, 0u64..20_000_000)
        .prop_map(|(markers, v, n)| json!({"t": "<x>".repeat(markers), "v": "y".repeat(v), "n": n}))
}

fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn growth_builtins_end_bounded_or_fail_naming_the_bound(
        expression in growth_expression(),
        body in sender_body(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let engine = Engine::new(Arc::new(test_nodes::registry()), Limits::default());
        let nodes: Vec<NodeDefinition> = serde_json::from_value(json!([{
            "key": "q", "type": "json-query",
            "config": {"engine": "jsonata", "source": "{{$context.body}}", "expression": expression}
        }])).unwrap();
        let mut state = RunState::new("e", json!({"headers": {}, "query": {}, "body": body}), Arc::new(json!({})));
        runtime.block_on(engine.run(&nodes, &mut state));
        let (_, _, jobs) = state.into_parts();
        let job = &jobs[0];
        match job.status {
            JobStatus::Resolved => {
                let size = limits::json_len_up_to(&job.result, usize::MAX);
                prop_assert!(size <= limits::MAX_RESULT_BYTES, "{expression}: a result of {size} bytes");
            }
            _ => {
                let message = job.result["message"].as_str().unwrap_or_default();
                prop_assert!(
                    BOUNDS.iter().any(|b| message.contains(b)),
                    "{expression} failed without naming a bound: {message}"
                );
            }
        }
        // Each evaluation's arena is 64 MiB and its strings 8 MiB: whatever was
        // asked, the process stays far below what it took before (3.4 GB).
        let peak = peak_rss_mb();
        prop_assert!(peak < 1024, "peak RSS {peak} MB after {expression}");
    }
}
