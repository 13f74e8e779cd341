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

/// A queue whose messages go to a dead-letter queue after one receive, as the
/// stack's run queue does after its maxReceiveCount; returns (queue, dlq) URLs.
async fn queue_with_dlq(sqs: &aws_sdk_sqs::Client) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let dlq = sqs
        .create_queue()
        .queue_name(unique_name("dead"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let policy = json!({"deadLetterTargetArn": arn, "maxReceiveCount": 1}).to_string();
    let queue = sqs
        .create_queue()
        .queue_name(unique_name("source"))
        .attributes(QueueAttributeName::RedrivePolicy, policy)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (queue, dlq)
}

#[tokio::test]
async fn dead_lettered_runs_are_listed_and_redriven_to_run() {
    let stack = stack().await;
    let config = hookflow::ports::aws::load_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (source, dlq) = queue_with_dlq(&sqs).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let id = hookflow::app::ids::new_execution_id();
        let run = json!({"executionId": id, "workflowKey": "later", "workflowVersion": 1,
            "context": {"body": {"n": n}}, "acceptedAt": "2026-11-29T00:00:00.000Z"});
        sqs.send_message()
            .queue_url(&source)
            .message_body(run.to_string())
            .send()
            .await
            .unwrap();
        ids.push(id);
    }
    sqs.send_message()
        .queue_url(&source)
        .message_body("not a run")
        .send()
        .await
        .unwrap();
    // Received and never acknowledged: past maxReceiveCount they move to the DLQ.
    let began = Instant::now();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(&source)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
        if got.messages.unwrap_or_default().is_empty() {
            break;
        }
        assert!(began.elapsed() < Duration::from_secs(10));
    }

    let (ok, out, err) = hookflow(&["dlq", "list", "--dlq-url", &dlq, "--json"]);
    assert!(ok, "{err}");
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.len(), 4, "{out}");
    let mut listed_ids: Vec<&str> = listed
        .iter()
        .filter_map(|r| r["executionId"].as_str())
        .collect();
    listed_ids.sort();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(listed_ids, want);
    assert!(listed.iter().filter(|r| r["workflow"] == "later").count() == 3);
    assert!(
        listed
            .iter()
            .all(|r| r["receiveCount"].as_u64().unwrap() >= 1)
    );
    let (_, text, _) = hookflow(&["dlq", "list", "--dlq-url", &dlq]);
    assert!(
        text.contains("later") && text.contains("(not a run)"),
        "{text}"
    );

    // Two at a time: the rest stays.
    let (ok, out, _) = hookflow(&[
        "dlq",
        "redrive",
        "--dlq-url",
        &dlq,
        "--queue-url",
        &stack.queue_url,
        "--max",
        "2",
    ]);
    assert!(ok && out.starts_with("moved 2 message(s)"), "{out}");
    let (ok, out, _) = hookflow(&[
        "dlq",
        "redrive",
        "--dlq-url",
        &dlq,
        "--queue-url",
        &stack.queue_url,
    ]);
    assert!(ok && out.starts_with("moved 2 message(s)"), "{out}");
    let (_, out, _) = hookflow(&["dlq", "list", "--dlq-url", &dlq]);
    assert!(out.contains("empty"), "{out}");

    // The stack's worker (serve, here) runs them; the body that is no run is
    // dropped as poison.
    for id in &ids {
        let began = Instant::now();
        loop {
            let (ok, out, _) = stack.run(&["executions", "show", id, "--json"]);
            if ok && serde_json::from_str::<Value>(&out).unwrap()["status"] == "resolved" {
                break;
            }
            assert!(began.elapsed() < Duration::from_secs(15), "{id} never ran");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// `hookflow ui --table`: the viewer over a stack's table, in a real browser.
#[tokio::test]
async fn the_viewer_reads_a_stacks_table() {
    let stack = stack().await;
    let http = client();
    for hook in ["aws-ok-hook", "aws-bad-hook"] {
        http.post(stack.server.hook_url(hook))
            .json(&json!({"n": 1}))
            .send()
            .await
            .unwrap();
    }
    let failed = stack.list_until(&["--status", "failed"], 1).await;
    let id = failed[0]["id"].as_str().unwrap().to_string();
    let (base, _ui) =
        hookflow_tests::start_ui(&["--table", &stack.table], "https://api.example.com").await;
    let index = http
        .get(format!("{base}/ui"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        index.contains("https://api.example.com/api/webhook:trigger/aws-bad-hook"),
        "{index}"
    );
    let page = hookflow_tests::browser::load(&format!("{base}/ui/executions/{id}"));
    assert!(page.console.is_empty(), "{:?}", page.console);
    assert!(
        page.dom
            .contains(r#"data-node="stop" data-status="failed""#),
        "{}",
        page.dom
    );
}
