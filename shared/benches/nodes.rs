//! `cargo bench -p hookflow-shared --bench nodes`: what the costly node types cost.
//! Plain timing (no harness): each case runs a fixed number of times and prints the
//! median and p99 of one run.

use std::time::{Duration, Instant};

use hookflow::nodes::script::run_script;
use serde_json::json;

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
}
