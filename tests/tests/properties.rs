use std::sync::Arc;
use std::time::Instant;

use hookflow::engine::{Engine, Limits, RunState};
use hookflow::model::NodeDefinition;
use serde_json::{Value, json};

#[test]
fn probe() {
    let Ok(expr) = std::env::var("HF_PROBE_EXPR") else {
        return;
    };
    let engine_name = std::env::var("HF_PROBE_ENGINE").unwrap_or("jsonata".into());
    let source: Value = std::env::var("HF_PROBE_SOURCE")
        .ok()
        .map(|s| serde_json::from_str(&s).unwrap())
        .unwrap_or(json!({}));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = Engine::new(Arc::new(hookflow::nodes::builtin()), Limits::default());
    let nodes: Vec<NodeDefinition> = serde_json::from_value(json!([
        {"key": "q", "type": "json-query", "config": {"engine": engine_name, "source": "{{$context.body}}", "expression": expr}}
    ]))
    .unwrap();
    let mut state = RunState::new("e", json!({"body": source}), Arc::new(json!({})));
    let start = Instant::now();
    let outcome = rt.block_on(engine.run(&nodes, &mut state));
    let jobs = state.jobs();
    let r = jobs[0].result.to_string();
    eprintln!(
        "PROBE {:?} in {:?}: {:?} {}",
        outcome.status,
        start.elapsed(),
        jobs[0].status,
        &r[..r.len().min(300)]
    );
}
