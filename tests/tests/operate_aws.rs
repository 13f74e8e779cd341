//! The operator commands against a stack's DynamoDB table and SQS queue (moto):
//! `executions list` filters, `replay --queue-url`, `prune`, `workflows
//! disable|enable`, with `hookflow serve` on the same table and queue as the worker.

use std::time::{Duration, Instant};

use hookflow_tests::{Server, client, hookflow, moto_endpoint, unique_name};
use serde_json::{Value, json};

fn flows() -> Vec<Value> {
    vec![
        json!({"key": "ok", "sync": true, "trigger": {"type": "webhook", "hookId": "aws-ok-hook"},
            "nodes": [{"key": "r", "type": "response", "config": {"statusCode": 200, "body": "fine"}}]}),
        json!({"key": "bad", "sync": true, "trigger": {"type": "webhook", "hookId": "aws-bad-hook"},
            "nodes": [{"key": "stop", "type": "end", "config": {"endStatus": -1}}]}),
        json!({"key": "later", "trigger": {"type": "webhook", "hookId": "aws-later-hook"},
            "nodes": [{"key": "o", "type": "output", "config": {"value": "{{$context.body.n}}"}}]}),
    ]
}

struct Stack {
    server: Server,
    table: String,
    queue_url: String,
}

impl Stack {
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let mut all = args.to_vec();
        all.extend(["--table", &self.table]);
        hookflow(&all)
    }

    fn list(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["executions", "list", "--json", "--limit", "1000"];
        all.extend_from_slice(args);
        let (ok, out, err) = self.run(&all);
        assert!(ok, "{err}");
        serde_json::from_str(&out).unwrap()
    }

    /// Waits until a listing has `n` executions.
    async fn list_until(&self, args: &[&str], n: usize) -> Vec<Value> {
        let began = Instant::now();
        loop {
            let found = self.list(args);
            if found.len() == n {
                return found;
            }
            assert!(
                began.elapsed() < Duration::from_secs(15),
                "{args:?}: {} executions, not {n}",
                found.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn stack() -> Stack {
    let endpoint = moto_endpoint();
    let table = unique_name("operate");
    let queue = unique_name("operate");
    let server = Server::start_with_env(
        &flows(),
        &["--table", &table, "--queue", &queue],
        &[("AWS_ENDPOINT_URL", &endpoint)],
    );
    let config = hookflow::ports::aws::load_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue_url = sqs
        .get_queue_url()
        .queue_name(&queue)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    Stack {
        server,
        table,
        queue_url,
    }
}

#[tokio::test]
async fn operators_find_replay_switch_and_prune_on_dynamodb_and_sqs() {
    let stack = stack().await;
    let http = client();
    for (hook, want) in [
        ("aws-ok-hook", 200),
        ("aws-bad-hook", 500),
        ("aws-later-hook", 200),
    ] {
        let answer = http
            .post(stack.server.hook_url(hook))
            .json(&json!({"n": 7}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16() >= 500, want >= 500, "{hook}");
    }
    stack.list_until(&["--since", "1h"], 3).await;
    let failed = stack.list(&["--status", "failed"]);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["workflowKey"], "bad");
    assert!(stack.list(&["--until", "1h"]).is_empty());
    let bad_run = failed[0]["id"].as_str().unwrap().to_string();

    // Replay onto the stack's queue; the worker (serve, here) runs it.
    let (ok, _, err) = stack.run(&["executions", "replay", &bad_run]);
    assert!(!ok && err.contains("--queue-url"), "{err}");
    let (ok, out, err) = stack.run(&[
        "executions",
        "replay",
        &bad_run,
        "--queue-url",
        &stack.queue_url,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("(bad v1)"), "{out}");
    let replays = stack
        .list_until(&["--workflow", "bad", "--status", "failed"], 2)
        .await;
    assert_eq!(replays[0]["replayOf"], bad_run.as_str());

    // Switched off and on again through the table.
    let (ok, out, err) = stack.run(&["workflows", "disable", "ok"]);
    assert!(ok && out.starts_with("ok v2 disabled"), "{out}{err}");
    let began = Instant::now();
    loop {
        let answer = http
            .post(stack.server.hook_url("aws-ok-hook"))
            .send()
            .await
            .unwrap();
        if answer.status() == 404 {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "still {}",
            answer.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, out, _) = stack.run(&["workflows", "list", "--json"]);
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert!(
        listed
            .iter()
            .any(|w| w["key"] == "ok" && w["enabled"] == false && w["version"] == 2)
    );
    let (ok, out, _) = stack.run(&["workflows", "enable", "ok"]);
    assert!(ok && out.starts_with("ok v3 enabled"), "{out}");

    // Pruned by status, from the status index.
    let (ok, out, err) = stack.run(&[
        "executions",
        "prune",
        "--older-than",
        "0s",
        "--status",
        "failed",
    ]);
    assert!(ok, "{err}");
    assert!(out.starts_with("pruned 2 execution(s)"), "{out}");
    // Left: the async run and every `ok` run (the polls above until the switch
    // was seen), all resolved.
    let left = stack.list(&[]);
    assert!(left.len() >= 2);
    assert!(left.iter().all(|e| e["status"] == "resolved"), "{left:?}");
    assert!(left.iter().any(|e| e["workflowKey"] == "later"));
}
