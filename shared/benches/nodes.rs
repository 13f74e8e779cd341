//! `cargo bench -p hookflow-shared --bench nodes`: what the costly node types cost,
//! and what one run of a loaded workflow costs the engine.
//! Plain timing (no harness): each case runs a fixed number of times and prints the
//! median and p99 of one run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookflow::engine::{Engine, Limits, RunState};
use hookflow::model::{ExecutionStatus, NodeDefinition};
use hookflow::nodes::script::run_script;
use serde_json::{Value, json};

fn measure(name: &str, runs: usize, mut f: impl FnMut()) {
    f(); // warm caches and lazy statics
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    let pick = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
    println!(
        "{name:<48} median {:>10.1?}  p99 {:>10.1?}  ({runs} runs)",
        pick(0.5),
        pick(0.99)
    );
}

fn main() {
    let timeout = Duration::from_secs(1);
    let memory = 64 << 20;
    measure("script: cold start + `return 1`", 300, || {
        let out = run_script("return 1;", &[], timeout, memory);
        assert_eq!(out.result, Ok(json!(1)));
    });
    let args = vec![(
        "order".to_string(),
        json!({"items": (0..50).map(|i| json!({"sku": i, "price": i})).collect::<Vec<_>>()}),
    )];
    measure("script: cold start + sum of 50 items", 300, || {
        let out = run_script(
            "return order.items.reduce((s, i) => s + i.price, 0);",
            &args,
            timeout,
            memory,
        );
        assert_eq!(out.result, Ok(json!(1225)));
    });
    runs();
}

/// A loop of 100 items whose body branches, maps, dates and assigns: the nodes
/// the engine runs most often, on a definition loaded once (as the webhook's hook
/// cache and a subflow's caller hold it), so what is measured is the walk and
/// the nodes, configs read included.
fn looped_nodes() -> Vec<NodeDefinition> {
    let calc = |op: &str, a: Value, b: Value| json!({"calculator": op, "operands": [a, b]});
    let nodes = json!([
        {"key": "acc", "type": "variable", "config": {"target": null, "value": 0}},
        {"key": "each", "type": "loop", "config": {"target": "{{$context.items}}", "exit": 2,
            "condition": {"checkpoint": 0, "continueOnFalse": true,
                "calculation": calc("notEqual", json!("{{$scopes.each.item.sku}}"), json!("skip"))}},
         "branches": {"0": [
            {"key": "paid", "type": "condition", "config": {
                "calculation": {"group": {"type": "and", "calculations": [
                    calc("equal", json!("{{$scopes.each.item.status}}"), json!("paid")),
                    calc("gte", json!("{{$scopes.each.item.price}}"), json!(0))]}}},
             "branches": {"1": [
                {"key": "tier", "type": "multi-conditions", "config": {"continueOnNoMatch": true, "conditions": [
                    {"calculation": calc("gt", json!("{{$scopes.each.item.price}}"), json!(100))},
                    {"calculation": calc("gt", json!("{{$scopes.each.item.price}}"), json!(10))}]},
                 "branches": {"1": [{"key": "big", "type": "output", "config": {"value": "big"}}],
                              "2": [{"key": "mid", "type": "output", "config": {"value": "mid"}}]}}
             ]}},
            {"key": "fields", "type": "json-variable-mapping", "config": {
                "dataSource": "{{$scopes.each.item}}",
                "variables": [{"key": "sku", "path": "sku"}, {"key": "price", "path": "price"},
                              {"key": "status", "path": "status"}]}},
            {"key": "due", "type": "dateCalculation", "config": {"input": "{{$scopes.each.item.at}}", "steps": [
                {"function": "add", "arguments": {"number": 30, "unit": "day"}},
                {"function": "endOfTime", "arguments": {"unit": "day"}},
                {"function": "format", "arguments": {"format": "YYYY-MM-DD"}}]}},
            {"key": "sum", "type": "variable", "config": {"target": "acc",
                "value": "{{$jobsMapByNodeKey.fields.price}}"}}
         ]}},
        {"key": "out", "type": "output", "config": {"value": {"last": "{{$jobsMapByNodeKey.acc}}",
            "due": "{{$jobsMapByNodeKey.due}}"}}}
    ]);
    serde_json::from_value(nodes).expect("a node list")
}

fn runs() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let engine = Engine::new(Arc::new(hookflow::nodes::builtin()), Limits::default());
    let nodes = looped_nodes();
    let items: Vec<Value> = (0..100)
        .map(|i| json!({"sku": format!("s{i}"), "status": "paid", "price": i * 3, "at": "2026-01-31T10:00:00Z"}))
        .collect();
    let context = json!({"items": items});
    let env = Arc::new(json!({}));
    measure("run: a 100-item loop of 6 nodes (599 jobs)", 200, || {
        let mut state = RunState::new("bench", context.clone(), Arc::clone(&env));
        let outcome = runtime.block_on(engine.run(&nodes, &mut state));
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        let (_, output, jobs) = state.into_parts();
        assert_eq!(output["due"], json!("2026-03-02"));
        assert_eq!(jobs.len(), 599);
    });
}
