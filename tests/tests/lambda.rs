//! The Lambda handlers on moto: workflows deployed with `hookflow deploy`, API Gateway
//! events from `events/` through the webhook handler, the SQS message it sent through
//! the worker handler, and the executions found in DynamoDB. AWS calls are counted
//! at the clients the app calls DynamoDB and SQS through.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use hookflow::model::RunMessage;
use hookflow::ports::Queue;
use hookflow::ports::aws::{self, Emf, SignedClient, SqsQueue};
use hookflow::wiring::{App, AwsEnv, Settings};
use hookflow_tests::on_moto::{self, Examples, body_of, event_to, sqs_event_of};
use hookflow_tests::{hookflow, job_trail, moto_endpoint, test_nodes, unique_name};
use lambda_http::RequestExt;
use serde_json::{Value, json};

/// Counts the AWS calls the app's clients start (retries of one call count once).
struct Calls {
    clients: Vec<Arc<SignedClient>>,
    seen: Mutex<u64>,
}

impl Calls {
    /// The calls since the last look.
    fn take(&self) -> u64 {
        let now: u64 = self.clients.iter().map(|c| c.calls()).sum();
        let mut seen = self.seen.lock().unwrap();
        let new = now - *seen;
        *seen = now;
        new
    }
}

struct Stack {
    env: AwsEnv,
    app: App,
    calls: Calls,
    /// A plain queue client for the test's own look at SQS.
    queue: SqsQueue,
    /// The Embedded Metric Format lines the handlers printed.
    emf: Arc<Mutex<Vec<String>>>,
}

/// A table and a queue of its own, the examples deployed with the CLI, and the app
/// the Lambdas build (on clients whose calls are counted).
async fn stack() -> Stack {
    stack_with_queue_endpoint(None).await
}

async fn stack_with_queue_endpoint(sqs_endpoint: Option<&str>) -> Stack {
    let Examples {
        table,
        queue_url,
        bucket,
        ..
    } = on_moto::deploy_examples();
    let config = aws::load_config().await;
    let dynamo = aws::client(&config);
    let sqs = match sqs_endpoint {
        Some(endpoint) => aws::client(&config.to_builder().endpoint_url(endpoint).build()),
        None => aws::client(&config),
    };
    let calls = Calls {
        clients: vec![Arc::clone(&dynamo), Arc::clone(&sqs)],
        seen: Mutex::new(0),
    };
    let env = AwsEnv {
        table,
        queue_url: queue_url.clone(),
        lane_queue_url: None,
        retention: Some(Duration::from_secs(7 * 86_400)),
        bucket: Some(bucket),
        max_message_bytes: 1 << 20,
        settings: Settings::default(),
    };
    let emf = Arc::new(Mutex::new(Vec::new()));
    let lines = Arc::clone(&emf);
    let telemetry = Emf::to(move |line| lines.lock().unwrap().push(line.to_string()));
    let app = env.app_with(dynamo, sqs, Arc::new(telemetry));
    Stack {
        env,
        app,
        calls,
        queue: SqsQueue::new(aws::client(&config), queue_url),
        emf,
    }
}

/// The app the Lambdas build from `env`, with plain clients.
async fn app_on(env: &AwsEnv) -> App {
    let client = aws::client(&aws::load_config().await);
    env.app(Arc::clone(&client), client)
}

/// The stack's app, on a table that does not exist (a store that fails every call).
async fn without_table(stack: &Stack) -> App {
    app_on(&AwsEnv {
        table: unique_name("missing"),
        ..stack.env.clone()
    })
    .await
}

/// The stack's app with the test crate's node types too, and `definition` (which
/// uses them) deployed to its table: no `hookflow` binary offers them, so it is
/// deployed here as `hookflow deploy` does.
async fn with_test_nodes(stack: &Stack, definition: &Value) -> App {
    let app = app_on(&AwsEnv {
        settings: Settings {
            node_types: test_nodes::with_test_nodes,
            ..stack.env.settings.clone()
        },
        ..stack.env.clone()
    })
    .await;
    let definition =
        hookflow::validate::validate(definition, &test_nodes::registry()).expect("valid");
    hookflow::app::deploy::deploy(app.store.as_ref(), &app.node_types, definition)
        .await
        .expect("deployed");
    app
}

fn api_event(name: &str) -> lambda_http::Request {
    lambda_http::request::from_str(&on_moto::event_file(name)).expect("an API Gateway event")
}

/// `hookflow executions show ID --json` on the stack's table.
async fn show(stack: &Stack, id: &str) -> Value {
    on_moto::execution_on(&stack.env.table, id)
}

#[tokio::test]
async fn async_run_through_webhook_sqs_and_worker() {
    let stack = stack().await;
    let response = hookflow_webhook::handle(&stack.app, api_event("apigw-basic-auth.json"))
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["x-delivery"], "d-42");
    let id = body_of(&response)["executionId"]
        .as_str()
        .unwrap()
        .to_string();
    // Cold: one GetItem for the hook, one SendMessage.
    assert_eq!(stack.calls.take(), 2, "cold async path");

    // Warm, hook cached: the async path is one SendMessage.
    let again = hookflow_webhook::handle(&stack.app, api_event("apigw-basic-auth.json"))
        .await
        .unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(stack.calls.take(), 1, "warm async path");

    let messages = stack
        .queue
        .receive(10, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(messages.len(), 2);
    let first = messages
        .iter()
        .find(|m| m.body.contains(&id))
        .expect("the run's message");
    stack.calls.take();
    let batch = hookflow_worker::handle(&stack.app, sqs_event_of(&[("m-1", &first.body)])).await;
    assert!(batch.batch_item_failures.is_empty());
    assert_eq!(
        stack.calls.take(),
        2,
        "cold worker run, first delivery: GetItem (version), PutItem (its end, conditional)"
    );

    let execution = show(&stack, &id).await;
    assert_eq!(execution["status"], "resolved");
    assert_eq!(execution["workflowKey"], "git-push");
    assert_eq!(
        execution["output"],
        json!({"deploy": "acme/app", "commit": "4f2c1a9"})
    );
    let jobs: Vec<&str> = execution["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["nodeKey"].as_str().unwrap())
        .collect();
    assert_eq!(jobs, ["is-main", "deploy-note"]);
    assert!(!execution.to_string().contains("authorization"));

    // The same message delivered twice is one execution.
    let before = show(&stack, &id).await;
    let batch = hookflow_worker::handle(&stack.app, sqs_event_of(&[("m-1", &first.body)])).await;
    assert!(batch.batch_item_failures.is_empty());
    assert_eq!(show(&stack, &id).await, before);
    let (_, out, _) = hookflow(&[
        "executions",
        "list",
        "--json",
        "--workflow",
        "git-push",
        "--table",
        &stack.env.table,
    ]);
    let ids: Vec<Value> = serde_json::from_str::<Vec<Value>>(&out)
        .unwrap()
        .into_iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(
        ids,
        [json!(id)],
        "one execution for the run delivered twice; the other run was never delivered"
    );
    // The other run, of the same workflow version: the version is not read again.
    stack.calls.take();
    let second = messages.iter().find(|m| !m.body.contains(&id)).unwrap();
    let batch = hookflow_worker::handle(&stack.app, sqs_event_of(&[("m-2", &second.body)])).await;
    assert!(batch.batch_item_failures.is_empty());
    assert_eq!(
        stack.calls.take(),
        1,
        "warm worker run: the version is read once per worker, so a run that ends at once is one write"
    );
}

#[tokio::test]
async fn sync_runs_answer_from_the_response_node_and_are_recorded() {
    let stack = stack().await;
    let response = hookflow_webhook::handle(&stack.app, api_event("apigw-post-json.json"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(body_of(&response), json!({"received": "A-1"}));
    assert_eq!(stack.calls.take(), 2, "cold sync path: GetItem + PutItem");

    let response = hookflow_webhook::handle(&stack.app, api_event("apigw-base64-body.json"))
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert_eq!(
        body_of(&response),
        json!({"error": "unexpected status refunded"})
    );
    assert_eq!(stack.calls.take(), 1, "warm sync path: PutItem");

    let executions = on_moto::executions_on(&stack.env.table, "payment-callback");
    assert_eq!(executions.len(), 2);
    let paid = &executions[1];
    assert_eq!(paid["status"], "resolved");
    assert_eq!(paid["context"]["headers"], json!({"x-request-id": "req-1"}));
    assert_eq!(paid["context"]["query"], json!({"query": [{"a": "1"}]}));
    assert!(!paid.to_string().contains("do-not-record"));
}

#[tokio::test]
async fn wrong_method_and_the_sample_sqs_event() {
    let stack = stack().await;
    let response = hookflow_webhook::handle(&stack.app, api_event("apigw-get.json"))
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/sqs-run.json");
    let event: SqsEvent = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let batch = hookflow_worker::handle(&stack.app, event).await;
    assert!(batch.batch_item_failures.is_empty());
    let execution = show(&stack, "01a21fdb-f563-7091-8b2e-6a211fb85800").await;
    assert_eq!(execution["status"], "resolved");
    assert_eq!(execution["output"]["commit"], "9b8c7d6");
}

#[tokio::test]
async fn poison_messages_are_dropped_and_unrecordable_runs_come_back() {
    let stack = stack().await;
    let batch = hookflow_worker::handle(&stack.app, sqs_event_of(&[("bad", "{not a run")])).await;
    assert!(
        batch.batch_item_failures.is_empty(),
        "poison is reported in the log, not retried forever"
    );

    // A run whose table is gone cannot be recorded: it comes back as a batch failure.
    let app = without_table(&stack).await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/sqs-run.json");
    let event: SqsEvent = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let batch = hookflow_worker::handle(&app, event).await;
    let failed: Vec<&str> = batch
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["5f1a2b3c-0000-4000-8000-000000000001"]);
}

#[tokio::test]
async fn a_run_returned_while_the_table_is_down_comes_back_within_seconds() {
    let stack = stack().await;
    let run = RunMessage {
        execution_id: "01a21fdb-f563-7091-8b2e-6a211fb85899".into(),
        workflow_key: "payment-callback".into(),
        workflow_version: 1,
        context: json!({"body": {"status": "paid", "order": {"id": "A-9"}}}),
        accepted_at: hookflow::time::now_rfc3339(),
        wake: None,
        after: None,
        idempotency_key: None,
        replay_of: None,
        on_failure_of: None,
        copy_id: None,
        context_at: None,
        gather: None,
        flow: None,
        sealed: None,
        sent_once: true,
    };
    stack.queue.enqueue(&run).await.unwrap();
    let got = stack
        .queue
        .receive(1, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    // The table is unreachable for this worker.
    let app = without_table(&stack).await;
    let event: SqsEvent = serde_json::from_value(json!({"Records": [{
        "messageId": "m-1", "receiptHandle": got[0].receipt, "body": got[0].body,
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "eventSource": "aws:sqs"}]}))
    .unwrap();
    let batch = hookflow_worker::handle(&app, event).await;
    assert_eq!(batch.batch_item_failures.len(), 1);
    // Back after its short wait (about a second), not the queue's 30 s visibility
    // timeout: the worker changed the message's visibility.
    let again = stack
        .queue
        .receive(1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "the run came back within 5 s");
    assert_eq!(again[0].attempt, 2);
    // With the table back, it runs.
    let batch = hookflow_worker::handle(&stack.app, serde_json::from_value(json!({"Records": [{
        "messageId": "m-1", "receiptHandle": again[0].receipt, "body": again[0].body,
        "attributes": {"ApproximateReceiveCount": "2"}, "messageAttributes": {}, "eventSource": "aws:sqs"}]}))
    .unwrap())
    .await;
    assert!(batch.batch_item_failures.is_empty());
    assert_eq!(show(&stack, &run.execution_id).await["status"], "resolved");
}

#[tokio::test]
async fn unreachable_sqs_answers_503_and_loses_nothing() {
    // A loopback port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let stack = stack_with_queue_endpoint(Some(&endpoint)).await;
    let response = hookflow_webhook::handle(&stack.app, api_event("apigw-basic-auth.json"))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(
        body_of(&response)["error"]
            .as_str()
            .unwrap()
            .contains("retry later")
    );
    // Nothing was acknowledged, so nothing can be missing: no message, no execution.
    assert!(
        stack
            .queue
            .receive(10, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );
    let (_, out, _) = hookflow(&["executions", "list", "--json", "--table", &stack.env.table]);
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&out).unwrap(),
        Vec::<Value>::new()
    );
}

#[tokio::test]
async fn serve_uses_dynamodb_and_sqs_when_pointed_at_an_endpoint() {
    let endpoint = moto_endpoint();
    let table = unique_name("serve");
    let queue = unique_name("serve-runs");
    let workflows: Vec<Value> = ["git-push-async.json", "payment-callback.json"]
        .iter()
        .map(|f| {
            serde_json::from_str(
                &std::fs::read_to_string(format!("{}/../examples/{f}", env!("CARGO_MANIFEST_DIR")))
                    .unwrap(),
            )
            .unwrap()
        })
        .collect();
    let server = hookflow_tests::Server::start_with_env(
        &workflows,
        &["--table", &table, "--queue", &queue],
        &[("AWS_ENDPOINT_URL", &endpoint)],
    );
    assert!(
        server.banner[0].contains(&format!("DynamoDB table {table}")),
        "{:?}",
        server.banner
    );
    let http = hookflow_tests::client();
    let r = http
        .post(server.hook_url("git-push-7f3a9c21d4"))
        .basic_auth("ci", Some("push-hook-secret"))
        .json(&json!({"ref": "refs/heads/main", "repository": {"full_name": "acme/app"}, "after": "c0ffee"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["executionId"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, out, _) = hookflow(&["executions", "show", &id, "--json", "--table", &table]);
        if ok && serde_json::from_str::<Value>(&out).unwrap()["status"] == "resolved" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run never resolved in DynamoDB"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = http
        .post(server.hook_url("pay-3kq9x0v2m1"))
        .basic_auth("acme", Some("s3cret"))
        .json(&json!({"status": "paid", "order": {"id": "A-9"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"received": "A-9"}));
}

#[tokio::test]
async fn a_delay_goes_through_an_sqs_delayed_message_and_the_worker() {
    let stack = stack().await;
    let response = hookflow_webhook::handle(&stack.app, api_event("apigw-cart-reminder.json"))
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = body_of(&response)["executionId"]
        .as_str()
        .unwrap()
        .to_string();
    let run = stack
        .queue
        .receive(10, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(run.len(), 1);
    stack.queue.ack(&run[0]).await.unwrap();
    let batch = hookflow_worker::handle(&stack.app, sqs_event_of(&[("m-1", &run[0].body)])).await;
    assert!(batch.batch_item_failures.is_empty());

    // Paused and recorded; its wake-up is a delayed message, invisible for now.
    let paused = show(&stack, &id).await;
    assert_eq!(paused["status"], "started");
    assert_eq!(paused["paused"]["waits"][0]["nodeKey"], "wait");
    assert_eq!(paused["jobs"][0]["status"], "pending");
    let sent = std::time::Instant::now();
    assert!(
        stack
            .queue
            .receive(10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "the wake-up waits for its delay"
    );
    let mut wake = Vec::new();
    while wake.is_empty() && sent.elapsed() < Duration::from_secs(10) {
        wake = stack
            .queue
            .receive(10, Duration::from_secs(1))
            .await
            .unwrap();
    }
    assert_eq!(wake.len(), 1, "one wake-up");
    let message: Value = serde_json::from_str(&wake[0].body).unwrap();
    assert_eq!(message["executionId"], json!(id));
    assert_eq!(message["wake"], paused["paused"]["token"]);
    stack.queue.ack(&wake[0]).await.unwrap();

    let batch = hookflow_worker::handle(&stack.app, sqs_event_of(&[("m-2", &wake[0].body)])).await;
    assert!(batch.batch_item_failures.is_empty());
    let done = show(&stack, &id).await;
    assert_eq!(done["status"], "resolved", "{done}");
    assert!(done.get("paused").is_none());
    assert_eq!(
        done["output"],
        json!({"to": "ana@example.com", "cart": "c-77", "message": "You left 3 item(s) in your cart"})
    );
    assert_eq!(
        job_trail(&done),
        [("wait", "resolved"), ("reminder", "resolved")]
    );

    // The same wake-up delivered again changes nothing.
    let batch = hookflow_worker::handle(&stack.app, sqs_event_of(&[("m-2", &wake[0].body)])).await;
    assert!(batch.batch_item_failures.is_empty());
    assert_eq!(show(&stack, &id).await, done);
}

#[tokio::test]
async fn a_wake_up_that_comes_before_its_time_is_chained() {
    let stack = stack().await;
    let id = hookflow::app::ids::new_execution_id();
    let run = hookflow::model::RunMessage {
        execution_id: id.clone(),
        workflow_key: "cart-reminder".into(),
        workflow_version: 1,
        context: json!({"body": {"cart": {"id": "c-1", "items": 1}, "remindInSeconds": 7200}}),
        accepted_at: hookflow::time::now_rfc3339(),
        wake: None,
        after: None,
        idempotency_key: None,
        replay_of: None,
        on_failure_of: None,
        copy_id: None,
        context_at: None,
        gather: None,
        flow: None,
        sealed: None,
        sent_once: true,
    };
    let batch = hookflow_worker::handle(
        &stack.app,
        sqs_event_of(&[("m-1", &serde_json::to_string(&run).unwrap())]),
    )
    .await;
    assert!(batch.batch_item_failures.is_empty());
    let paused = show(&stack, &id).await;
    let token = paused["paused"]["token"].as_str().unwrap().to_string();

    // The paused item carries its token for conditional resumes, and no expiry: a
    // wait may outlast the retention period.
    let config = aws::load_config().await;
    let item = aws_sdk_dynamodb::Client::new(&config)
        .get_item()
        .table_name(&stack.env.table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("EX#{id}")),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("EX".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["pauseToken"].as_s().unwrap(), &token);
    assert!(!item.contains_key("expiresAt"));

    // SQS delays 15 minutes at most, so a two-hour wait wakes early: the worker only
    // sends the wake-up again for the rest (one read, one SendMessage) and runs nothing.
    stack.calls.take();
    let wake = hookflow::model::RunMessage::wake(&id, token);
    let batch = hookflow_worker::handle(
        &stack.app,
        sqs_event_of(&[("m-2", &serde_json::to_string(&wake).unwrap())]),
    )
    .await;
    assert!(batch.batch_item_failures.is_empty());
    assert_eq!(stack.calls.take(), 2, "GetItem, then SendMessage");
    assert_eq!(show(&stack, &id).await, paused, "still paused, unchanged");

    // A wake-up of a pause that is over (a stale token) is dropped.
    stack.calls.take();
    let stale = hookflow::model::RunMessage::wake(&id, "not-the-token");
    let batch = hookflow_worker::handle(
        &stack.app,
        sqs_event_of(&[("m-3", &serde_json::to_string(&stale).unwrap())]),
    )
    .await;
    assert!(batch.batch_item_failures.is_empty());
    assert_eq!(stack.calls.take(), 1, "GetItem only");
}

#[tokio::test]
async fn an_async_child_that_waits_pauses_its_parent_on_dynamodb_and_sqs() {
    let stack = stack().await;
    let dir = tempfile::tempdir().unwrap();
    let child = json!({"key": "label-later", "trigger": {"type": "webhook"}, "nodes": [
        {"key": "wait", "type": "delay", "config": {"duration": 1, "unit": 1000}},
        {"key": "label", "type": "output", "config": {"value": {"label": "parcel {{$context.n}}"}}}
    ]});
    let parent = json!({"key": "ship-later", "trigger": {"type": "webhook", "hookId": "ship-later-2b7d"}, "nodes": [
        {"key": "call", "type": "subflow", "config": {"workflow": "label-later", "context": {"n": "{{$context.body.n}}"}}},
        {"key": "done", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.call.label}}"}}
    ]});
    for w in [&child, &parent] {
        let file = dir
            .path()
            .join(format!("{}.json", w["key"].as_str().unwrap()));
        std::fs::write(file, w.to_string()).unwrap();
    }
    let (ok, out, err) = hookflow(&[
        "deploy",
        "--table",
        &stack.env.table,
        dir.path().to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");

    let id = hookflow::app::ids::new_execution_id();
    let run = hookflow::model::RunMessage {
        execution_id: id.clone(),
        workflow_key: "ship-later".into(),
        workflow_version: 1,
        context: json!({"body": {"n": 7}}),
        accepted_at: hookflow::time::now_rfc3339(),
        wake: None,
        after: None,
        idempotency_key: None,
        replay_of: None,
        on_failure_of: None,
        copy_id: None,
        context_at: None,
        gather: None,
        flow: None,
        sealed: None,
        sent_once: true,
    };
    let mut bodies = vec![serde_json::to_string(&run).unwrap()];
    let started = std::time::Instant::now();
    // The worker Lambda as SQS would drive it: every message the queue delivers.
    loop {
        for (n, body) in bodies.iter().enumerate() {
            let batch =
                hookflow_worker::handle(&stack.app, sqs_event_of(&[(&format!("m-{n}"), body)]))
                    .await;
            assert!(batch.batch_item_failures.is_empty());
        }
        let parent = show(&stack, &id).await;
        if parent["status"] != "started" {
            break;
        }
        assert!(
            parent["paused"]["waits"][0]["kind"] == "execution",
            "{parent}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the parent never finished"
        );
        let delivered = stack
            .queue
            .receive(10, Duration::from_secs(1))
            .await
            .unwrap();
        for d in &delivered {
            stack.queue.ack(d).await.unwrap();
        }
        bodies = delivered.into_iter().map(|d| d.body).collect();
    }
    let parent = show(&stack, &id).await;
    assert_eq!(parent["status"], "resolved", "{parent}");
    assert_eq!(parent["output"], "parcel 7");
    let child_id = parent["jobs"][0]["result"]["executionId"].as_str();
    assert!(
        child_id.is_none(),
        "the call's result is the child's output"
    );
    let (_, out, _) = hookflow(&[
        "executions",
        "list",
        "--json",
        "--workflow",
        "label-later",
        "--table",
        &stack.env.table,
    ]);
    let children: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0]["status"], "resolved");
    assert_eq!(children[0]["parentExecutionId"], json!(id));
}

/// Deploys one definition to the stack's table with the CLI.
fn deploy_to(stack: &Stack, definition: &Value) {
    on_moto::deploy_to_table(&stack.env.table, definition);
}

#[tokio::test]
async fn a_run_that_panics_in_a_batch_fails_alone_and_is_not_returned_to_sqs() {
    let stack = stack().await;
    let app = with_test_nodes(
        &stack,
        &json!({"key": "boom", "trigger": {"type": "webhook", "hookId": "boom-hook"}, "nodes": [
            {"key": "boom", "type": "test-panic", "config": {"when": "{{$context.body.panic}}"}},
            {"key": "out", "type": "output", "config": {"value": "{{$context.body.n}}"}}
        ]}),
    )
    .await;
    let runs: Vec<(String, String)> = (0..3)
        .map(|n| {
            let id = hookflow::app::ids::new_execution_id();
            let message = json!({"executionId": id, "workflowKey": "boom", "workflowVersion": 1,
                "context": {"body": {"panic": n == 1, "n": n}, "headers": {}, "query": {}},
                "acceptedAt": "2026-11-29T00:00:00.000Z"});
            (id, message.to_string())
        })
        .collect();
    let records: Vec<(&str, &str)> = runs
        .iter()
        .enumerate()
        .map(|(i, (_, body))| (["m-0", "m-1", "m-2"][i], body.as_str()))
        .collect();
    let batch = hookflow_worker::handle(&app, sqs_event_of(&records)).await;
    assert!(
        batch.batch_item_failures.is_empty(),
        "no run comes back: {:?}",
        batch.batch_item_failures
    );
    let statuses: Vec<Value> =
        futures_util::future::join_all(runs.iter().map(|(id, _)| show(&stack, id)))
            .await
            .into_iter()
            .map(|e| e["status"].clone())
            .collect();
    assert_eq!(
        statuses,
        [json!("resolved"), json!("error"), json!("resolved")]
    );
    let broken = show(&stack, &runs[1].0).await;
    let message = broken["jobs"][0]["result"]["message"].as_str().unwrap();
    assert!(message.contains("panicked on purpose"), "{message}");
    assert_eq!(show(&stack, &runs[0].0).await["output"], json!(0));
}

#[tokio::test]
async fn a_sync_run_answers_504_before_the_invocation_deadline() {
    let stack = stack().await;
    deploy_to(
        &stack,
        &json!({"key": "slow", "sync": true, "options": {"timeoutMs": 25000},
            "trigger": {"type": "webhook", "hookId": "slow-hook"}, "nodes": [
            {"key": "spin", "type": "script", "config": {"content": "while (true) {}", "timeout": 4000}}
        ]}),
    );
    let mut context = lambda_http::Context::default();
    let deadline = std::time::SystemTime::now() + Duration::from_millis(2_500);
    context.deadline = deadline
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let request = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://example.com/api/webhook:trigger/slow-hook")
        .header("content-type", "application/json")
        .body(lambda_http::Body::Text("{}".into()))
        .unwrap()
        .with_lambda_context(context);
    let started = std::time::Instant::now();
    let response = hookflow_webhook::handle(&stack.app, request).await.unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), 504, "{}", body_of(&response));
    assert!(
        took < Duration::from_millis(2_500),
        "answered before the deadline, not at timeoutMs: {took:?}"
    );
    let id = body_of(&response)["executionId"]
        .as_str()
        .unwrap()
        .to_string();
    let execution = show(&stack, &id).await;
    assert_eq!(execution["status"], "aborted");
    assert_eq!(execution["jobs"][0]["status"], "aborted");
}

/// Receives `n` queued runs and hands them to the worker Lambda in one batch, which
/// must process them all; how many there were.
async fn work_off(stack: &Stack, n: usize) -> usize {
    let mut messages = Vec::new();
    for _ in 0..10 {
        messages.extend(
            stack
                .queue
                .receive(10, Duration::from_secs(1))
                .await
                .unwrap(),
        );
        if messages.len() >= n {
            break;
        }
    }
    let bodies: Vec<(String, String)> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| (format!("m-{i}"), m.body.clone()))
        .collect();
    let refs: Vec<(&str, &str)> = bodies
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let batch = hookflow_worker::handle(&stack.app, sqs_event_of(&refs)).await;
    assert!(batch.batch_item_failures.is_empty());
    messages.len()
}

#[tokio::test]
async fn duplicates_start_one_run_on_dynamodb_within_the_call_budget() {
    let stack = stack().await;
    let definition = json!({"key": "dedup-orders", "trigger": {"type": "webhook", "hookId": "dedup-orders",
        "request": {"headers": [{"key": "x-delivery"}]},
        "idempotency": {"key": "{{$context.headers.x-delivery}}"},
        "allowIps": ["203.0.113.0/24"],
        "response": {"statusCode": 202, "body": {"executionId": "{{$system.executionId}}"}}},
        "nodes": [{"key": "order", "type": "output", "config": {"value": "{{$context.body.order}}"}}]});
    deploy_to(&stack, &definition);
    let delivery = |id: &str, source: &str| {
        event_to(
            "dedup-orders",
            json!({"content-type": "application/json", "x-delivery": id, "x-forwarded-for": "203.0.113.10"}),
            r#"{"order": 7}"#,
            source,
        )
    };
    let send = |request| hookflow_webhook::handle(&stack.app, request);
    stack.calls.take();

    let first = send(delivery("d-1", "203.0.113.10")).await.unwrap();
    assert_eq!(first.status(), 202);
    let first_id = body_of(&first)["executionId"].clone();
    assert_eq!(
        stack.calls.take(),
        3,
        "cold: GetItem (hook), PutItem (claim), SendMessage"
    );
    let other = send(delivery("d-2", "203.0.113.10")).await.unwrap();
    assert_eq!(other.status(), 202);
    assert_eq!(
        stack.calls.take(),
        2,
        "warm async path with a key: claim + send"
    );
    // A copy while the first is being accepted is told to retry; one after, once
    // the first has answered, gets its answer.
    let early = send(delivery("d-2", "203.0.113.10")).await.unwrap();
    assert_eq!(early.status(), 409);
    assert_eq!(stack.calls.take(), 1, "a refused claim");
    // The claims stand once the worker that took their runs confirmed them (a claim
    // no worker confirmed may be taken over: its run may never have been queued).
    let d1_and_d2 = work_off(&stack, 2).await;
    assert_eq!(d1_and_d2, 2);
    stack.calls.take();
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let duplicate = send(delivery("d-1", "203.0.113.10")).await.unwrap();
    assert_eq!(duplicate.status(), 202);
    assert_eq!(duplicate.headers()["idempotent-replayed"], "true");
    assert_eq!(body_of(&duplicate)["executionId"], first_id);
    assert_eq!(
        stack.calls.take(),
        1,
        "a duplicate: the refused claim returns its holder, no second read"
    );
    // A new instance (a cold start) on the same table knows the key too.
    let cold = app_on(&stack.env).await;
    let again = hookflow_webhook::handle(&cold, delivery("d-1", "203.0.113.10"))
        .await
        .unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(body_of(&again)["executionId"], first_id);

    // Concurrent copies: one run, one answer.
    let copies =
        futures_util::future::join_all((0..8).map(|_| send(delivery("d-3", "203.0.113.10")))).await;
    let ids: std::collections::HashSet<String> = copies
        .iter()
        .map(|r| body_of(r.as_ref().unwrap())["executionId"].to_string())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let fresh = copies
        .iter()
        .map(|r| r.as_ref().unwrap())
        .filter(|r| r.status() == 202 && !r.headers().contains_key("idempotent-replayed"))
        .count();
    assert_eq!(fresh, 1);

    // Another address is refused whatever X-Forwarded-For says, with no AWS call.
    stack.calls.take();
    let outsider = send(delivery("d-4", "198.51.100.7")).await.unwrap();
    assert_eq!(outsider.status(), 403);
    assert_eq!(stack.calls.take(), 0);

    // The third run, d-3's, was queued once.
    assert_eq!(work_off(&stack, 1).await, 1);
    let first = show(&stack, first_id.as_str().unwrap()).await;
    assert_eq!(first["status"], "resolved");
    assert_eq!(first["idempotencyKey"], "d-1");
}

/// The metric lines printed so far, parsed; each must be one JSON object whose
/// `_aws` block declares namespace `hookflow` and the metrics it carries.
fn emf_lines(stack: &Stack) -> Vec<Value> {
    let lines = std::mem::take(&mut *stack.emf.lock().unwrap());
    lines
        .iter()
        .map(|line| {
            assert!(
                line.ends_with('\n') && !line.trim_end().contains('\n'),
                "{line:?}"
            );
            let value: Value = serde_json::from_str(line).expect("an EMF line is JSON");
            let directive = &value["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(directive["Namespace"], "hookflow");
            assert!(value["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
            for dimension in directive["Dimensions"][0].as_array().unwrap() {
                assert!(value[dimension.as_str().unwrap()].is_string(), "{value}");
            }
            for metric in directive["Metrics"].as_array().unwrap() {
                assert!(
                    value[metric["Name"].as_str().unwrap()].is_number(),
                    "{value}"
                );
            }
            value
        })
        .collect()
}

#[tokio::test]
async fn the_handlers_print_embedded_metric_format_lines_with_no_aws_call() {
    let stack = stack().await;
    let response = hookflow_webhook::handle(&stack.app, api_event("apigw-basic-auth.json"))
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let lines = emf_lines(&stack);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["hook"], "git-push-7f3a9c21d4");
    assert_eq!(lines[0]["status"], "202");
    assert_eq!(lines[0]["hookflow_requests_total"], 1.0);
    assert_eq!(
        stack.calls.take(),
        2,
        "metrics cost no call: GetItem and SendMessage only"
    );

    // A hook nobody deployed is counted under "unknown", never under its id.
    let unknown = event_to("no-such-hook-123", json!({}), "{}", "203.0.113.9");
    let response = hookflow_webhook::handle(&stack.app, unknown).await.unwrap();
    assert_eq!(response.status(), 404);
    let lines = emf_lines(&stack);
    assert_eq!(lines[0]["hook"], "unknown");
    assert_eq!(lines[0]["status"], "404");

    let message = stack
        .queue
        .receive(1, Duration::from_secs(2))
        .await
        .unwrap();
    let batch =
        hookflow_worker::handle(&stack.app, sqs_event_of(&[("m-1", &message[0].body)])).await;
    assert!(batch.batch_item_failures.is_empty());
    let lines = emf_lines(&stack);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["workflow"], "git-push");
    assert_eq!(lines[0]["status"], "resolved");
    assert_eq!(lines[0]["hookflow_executions_total"], 1.0);
    let took = lines[0]["hookflow_execution_duration_seconds"]
        .as_f64()
        .unwrap();
    assert!((0.0..30.0).contains(&took), "{took}");
    let units: Vec<&str> = lines[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Unit"].as_str().unwrap())
        .collect();
    assert_eq!(units, ["Count", "Seconds"]);
}

#[tokio::test]
async fn an_async_run_hands_its_event_on_to_aws_from_the_worker() {
    let stack = stack().await;
    let config = aws::load_config().await;
    let plain_sqs = aws_sdk_sqs::Client::new(&config);
    let client = aws::client(&config);
    let target = aws::create_queue(&client, &unique_name("orders"))
        .await
        .unwrap();
    // Any table keyed by pk and sk will do for the orders.
    let orders = unique_name("orders");
    aws::create_table(&client, &orders).await.unwrap();
    deploy_to(
        &stack,
        &json!({"key": "hand-on", "sync": false,
        "trigger": {"type": "webhook", "hookId": "hand-on-7c1",
            "response": {"statusCode": 202, "body": {"executionId": "{{$system.executionId}}"}}},
        "nodes": [
            {"key": "store", "type": "dynamodb", "config": {"operation": "put",
                "tableName": orders,
                "item": {"pk": "ORDER#{{$context.body.id}}", "sk": "order", "total": "{{$context.body.total}}"}}},
            {"key": "send", "type": "sqs", "config": {"queueUrl": target,
                "messageBody": {"order": "{{$context.body.id}}"}}}
        ]}),
    );
    let response = hookflow_webhook::handle(
        &stack.app,
        event_to(
            "hand-on-7c1",
            json!({"content-type": "application/json"}),
            r#"{"id": "A-8", "total": 12}"#,
            "203.0.113.9",
        ),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 202);
    let id = body_of(&response)["executionId"]
        .as_str()
        .unwrap()
        .to_string();
    let runs = stack
        .queue
        .receive(10, Duration::from_secs(2))
        .await
        .unwrap();
    let run = runs.iter().find(|m| m.body.contains(&id)).expect("the run");
    let batch = hookflow_worker::handle(&stack.app, sqs_event_of(&[("m-1", &run.body)])).await;
    assert!(batch.batch_item_failures.is_empty());
    let execution = show(&stack, &id).await;
    assert_eq!(execution["status"], "resolved", "{execution}");
    assert_eq!(
        job_trail(&execution),
        [("store", "resolved"), ("send", "resolved")]
    );

    // Both effects, read back with the SDK.
    let item = aws_sdk_dynamodb::Client::new(&config)
        .get_item()
        .table_name(&orders)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("ORDER#A-8".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("order".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .expect("the stored order");
    assert_eq!(
        item["total"],
        aws_sdk_dynamodb::types::AttributeValue::N("12".into())
    );
    let sent = plain_sqs
        .receive_message()
        .queue_url(&target)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body(), Some(r#"{"order":"A-8"}"#));
}

/// `trigger.schema` through the webhook handler on DynamoDB and SQS: a refused
/// body is answered 422 with its pointers and queues nothing; a kept one is
/// recorded `invalid` at once, counted as such, and runs through the worker when
/// replayed after the fix.
#[tokio::test]
async fn a_body_failing_trigger_schema_is_refused_422_or_kept_invalid_then_replayed() {
    let stack = stack().await;
    let flow = |key: &str, id_type: &str, keep: bool| {
        let schema = json!({"type": "object", "required": ["id"],
            "properties": {"id": {"type": id_type}}});
        let mut trigger = json!({"type": "webhook", "hookId": key, "schema": schema});
        if keep {
            trigger["onInvalid"] = json!("keep");
        }
        json!({"key": key, "trigger": trigger,
            "nodes": [{"key": "note", "type": "output", "config": {"value": "order {{$context.body.id}}"}}]})
    };
    deploy_to(&stack, &flow("schema-refuse", "integer", false));
    deploy_to(&stack, &flow("schema-keep", "integer", true));
    let json_body = json!({"content-type": "application/json"});
    let deliver = |hook: &str| event_to(hook, json_body.clone(), r#"{"id": "A-1"}"#, "203.0.113.9");

    let refused = hookflow_webhook::handle(&stack.app, deliver("schema-refuse"))
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let body = body_of(&refused);
    assert_eq!(body["instancePath"], "/id", "{body}");
    assert_eq!(body["schemaPath"], "/properties/id/type", "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("integer"),
        "{body}"
    );
    assert!(on_moto::executions_on(&stack.env.table, "schema-refuse").is_empty());

    let kept = hookflow_webhook::handle(&stack.app, deliver("schema-keep"))
        .await
        .unwrap();
    assert_eq!(
        kept.status(),
        200,
        "the default answer of an accepted delivery"
    );
    let found = on_moto::executions_on(&stack.env.table, "schema-keep");
    assert_eq!(found.len(), 1);
    let (id, record) = (
        found[0]["id"].as_str().unwrap(),
        show(&stack, found[0]["id"].as_str().unwrap()).await,
    );
    assert_eq!(record["status"], "invalid");
    assert!(job_trail(&record).is_empty());
    assert_eq!(record["output"]["schemaPath"], "/properties/id/type");
    // Listed by status: the gsi2 partition WFST#schema-keep#invalid.
    let by_status = |status: &str| {
        let args = [
            "executions",
            "list",
            "--json",
            "--workflow",
            "schema-keep",
            "--status",
        ];
        let (ok, out, err) =
            hookflow(&[&args[..], &[status, "--table", &stack.env.table]].concat());
        assert!(ok, "{err}");
        serde_json::from_str::<Vec<Value>>(&out).unwrap().len()
    };
    assert_eq!((by_status("invalid"), by_status("resolved")), (1, 0));
    let queued = stack
        .queue
        .receive(10, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(
        queued.is_empty(),
        "neither delivery queued a run: {queued:?}"
    );
    let lines = emf_lines(&stack);
    assert!(
        lines
            .iter()
            .any(|l| l["hook"] == "schema-refuse" && l["status"] == "422"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["workflow"] == "schema-keep" && l["status"] == "invalid"),
        "{lines:?}"
    );
    let mismatches: Vec<(&Value, &Value)> = lines
        .iter()
        .filter(|l| l["hookflow_schema_mismatches_total"] == 1.0)
        .map(|l| (&l["hook"], &l["outcome"]))
        .collect();
    assert_eq!(
        mismatches,
        [
            (&json!("schema-refuse"), &json!("refused")),
            (&json!("schema-keep"), &json!("kept"))
        ]
    );

    // The fix accepts string ids; the replay is queued and the worker runs it.
    deploy_to(&stack, &flow("schema-keep", "string", true));
    let (ok, out, err) = hookflow(&[
        "executions",
        "replay",
        id,
        "--table",
        &stack.env.table,
        "--queue-url",
        &stack.env.queue_url,
    ]);
    assert!(
        ok && out.contains("(schema-keep v2)") && !out.contains("invalid"),
        "{out}{err}"
    );
    assert_eq!(work_off(&stack, 1).await, 1);
    let replays = on_moto::executions_on(&stack.env.table, "schema-keep");
    let run = replays
        .iter()
        .find(|e| e["replayOf"] == id)
        .expect("the replay's record");
    assert_eq!(run["status"], "resolved", "{run}");
    assert_eq!(job_trail(run), [("note", "resolved")]);
}
