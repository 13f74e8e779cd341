//! `GET /metrics` of `hookflow serve` (issue 12), read by a Prometheus text parser:
//! requests by hook and status, runs by workflow and status, their durations, the
//! queue's depth and the paused executions.

use std::time::{Duration, Instant};

use hookflow_tests::{Server, client};
use prometheus_parse::{Sample, Scrape, Value as Metric};
use serde_json::json;

fn flows() -> Vec<serde_json::Value> {
    vec![
        json!({"key": "ok", "sync": true, "trigger": {"type": "webhook", "hookId": "m-ok",
            "basicAuthentication": {"username": "u", "password": "p"}}, "nodes": []}),
        json!({"key": "bad", "sync": true, "trigger": {"type": "webhook", "hookId": "m-bad"},
            "nodes": [{"key": "stop", "type": "end", "config": {"endStatus": -1}}]}),
        json!({"key": "wait", "trigger": {"type": "webhook", "hookId": "m-wait"},
            "nodes": [{"key": "nap", "type": "delay", "config": {"duration": 60}}]}),
    ]
}

async fn scrape(server: &Server) -> Scrape {
    let answer = client()
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let kind = answer.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let text = answer.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("a Prometheus exposition")
}

fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matches =
        |s: &&Sample| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v));
    scrape.samples.iter().find(matches).map(|s| match &s.value {
        Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => *v,
        Metric::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
        Metric::Summary(_) => f64::NAN,
    })
}

#[tokio::test]
async fn metrics_count_requests_runs_durations_and_what_waits() {
    let server = Server::start(&flows());
    let http = client();
    let post = |hook: &str| http.post(server.hook_url(hook));
    for _ in 0..3 {
        assert_eq!(
            post("m-ok")
                .basic_auth("u", Some("p"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(post("m-ok").send().await.unwrap().status(), 401);
    assert_eq!(post("m-bad").send().await.unwrap().status(), 500);
    for probe in ["nope-1", "nope-2", "nope-3"] {
        assert_eq!(post(probe).send().await.unwrap().status(), 404);
    }
    assert_eq!(post("m-wait").send().await.unwrap().status(), 200);

    // The async run pauses on its delay: one paused, nothing ended.
    let began = Instant::now();
    let metrics = loop {
        let metrics = scrape(&server).await;
        if value(&metrics, "hookflow_paused_executions", &[]) == Some(1.0) {
            break metrics;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{:?}",
            metrics.samples
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let requests = |hook: &str, status: &str| {
        value(
            &metrics,
            "hookflow_requests_total",
            &[("hook", hook), ("status", status)],
        )
    };
    assert_eq!(requests("m-ok", "200"), Some(3.0));
    assert_eq!(requests("m-ok", "401"), Some(1.0));
    assert_eq!(requests("m-bad", "500"), Some(1.0));
    assert_eq!(requests("m-wait", "200"), Some(1.0));
    // Probes of hooks nobody deployed are one label, never one per id.
    assert_eq!(requests("unknown", "404"), Some(3.0));
    assert!(
        metrics
            .samples
            .iter()
            .all(|s| s.labels.get("hook") != Some("nope-1"))
    );

    let runs = |workflow: &str, status: &str| {
        value(
            &metrics,
            "hookflow_executions_total",
            &[("workflow", workflow), ("status", status)],
        )
    };
    assert_eq!(runs("ok", "resolved"), Some(3.0));
    assert_eq!(runs("bad", "failed"), Some(1.0));
    assert_eq!(runs("wait", "resolved"), None, "a paused run has not ended");
    assert_eq!(
        value(
            &metrics,
            "hookflow_execution_duration_seconds",
            &[("workflow", "ok")]
        ),
        Some(3.0),
        "three observations in the +Inf bucket"
    );
    assert!(value(&metrics, "hookflow_queue_depth", &[]).is_some());

    // Only GET reads them; anything else there is no webhook either.
    let answer = http
        .post(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
}
