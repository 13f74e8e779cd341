//! `trigger.redact` (issue 27): a canary e-mail address and API key sent to a hook that
//! redacts them reach a node that runs after a pause (a stand-in HTTP server gets
//! them), and appear nowhere hookflow keeps: not in the embedded store's files, the
//! server's log, `executions show`/`list`, the viewer's pages; on AWS, not in any
//! DynamoDB item, S3 object or SQS message (read back with the AWS SDKs), through the
//! real Lambda handlers on moto. A hashed value is the HMAC-SHA256 Python's `hmac`
//! module computes.

use std::time::Duration;

use hookflow_tests::{Server, client, hookflow, recording_server};
use serde_json::{Value, json};

const EMAIL: &str = "canary-7f3a@example.com";
const API_KEY: &str = "sk_canary_91d2e4";
const CARD: &str = "4242424242424242";

fn body() -> Value {
    json!({"customer": {"email": EMAIL, "name": "Ana"},
        "items": [{"sku": "a", "card": CARD}, {"sku": "b", "card": CARD}]})
}

/// Waits a second (a pause: the run's state goes to the store), then sends the
/// e-mail and key to `url`, then copies the e-mail into its output.
fn waits_then_sends(key: &str, url: &str) -> Value {
    json!({"key": key, "sync": false,
    "trigger": {"type": "webhook", "hookId": key,
        "request": {"headers": [{"key": "x-api-key"}]},
        "redact": {"paths": ["body.customer.email", "headers.x-api-key", "body.items[*].card"], "mode": "mask"},
        "response": {"statusCode": 202, "body": {"executionId": "{{$system.executionId}}"}}},
    "nodes": [
        {"key": "wait", "type": "delay", "config": {"duration": 1, "unit": 1000, "endStatus": 1}},
        {"key": "send", "type": "request", "config": {"url": url, "method": "POST",
            "data": {"email": "{{$context.body.customer.email}}", "key": "{{$context.headers.x-api-key}}"}}},
        {"key": "copy", "type": "output", "config": {"value": "mail {{$context.body.customer.email}} about {{$context.body.items[0].card}}"}}
    ]})
}

/// A sync hook that hashes the e-mail and answers with the real one.
fn hashes(key: &str) -> Value {
    json!({"key": key, "sync": true,
    "trigger": {"type": "webhook", "hookId": key,
        "redact": {"paths": ["body.customer.email"], "mode": "hash", "key": {"env": "REDACT_KEY"}}},
    "nodes": [
        {"key": "echo", "type": "output", "config": {"value": "{{$context.body.customer.email}}"}},
        {"key": "answer", "type": "response", "config": {"body": {"email": "{{$context.body.customer.email}}"}}}
    ]})
}

fn hmac_by_python(key: &str, value: &str) -> String {
    let out = std::process::Command::new(std::env::var("PYTHON").unwrap_or("python3".into()))
        .args([
            "-c",
            "import hmac, hashlib, sys; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())",
            key,
            value,
        ])
        .output()
        .expect("python3 runs");
    format!(
        "hmac-sha256:{}",
        String::from_utf8(out.stdout).unwrap().trim()
    )
}

fn assert_clean(what: &str, text: &str) {
    for canary in [EMAIL, API_KEY, CARD] {
        assert!(!text.contains(canary), "{canary} is in {what}");
    }
}

/// Every file under `dir`, as bytes read as lossy text.
fn files_text(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_text(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((
                path.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
    out
}

#[tokio::test]
async fn nodes_get_the_real_values_and_serve_keeps_only_redacted_ones() {
    let (url, received) = recording_server();
    let server = Server::start_logged(
        &[waits_then_sends("redacted", &url), hashes("hashed")],
        &["--allow-loopback-requests"],
        &[("REDACT_KEY", "correlate-me")],
    );
    let accepted = client()
        .post(server.hook_url("redacted"))
        .header("x-api-key", API_KEY)
        .json(&body())
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let answer: Value = accepted.json().await.unwrap();
    assert_clean("the accept answer", &answer.to_string());
    let id = answer["executionId"].as_str().unwrap().to_string();
    let done = server.wait_for_execution(&id, "resolved");

    // After the pause, the node sent the real values.
    let sent = received.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(sent.contains(EMAIL) && sent.contains(API_KEY), "{sent}");

    // What is kept: masked wherever the values went.
    assert_eq!(done["context"]["body"]["customer"]["email"], "***");
    assert_eq!(done["context"]["body"]["customer"]["name"], "Ana");
    assert_eq!(done["context"]["headers"]["x-api-key"], "***");
    assert_eq!(done["context"]["body"]["items"][1]["card"], "***");
    assert_eq!(done["output"], "mail *** about ***");
    assert!(done.get("sealed").is_none(), "nothing sealed once it ended");

    // Sync, hashed: the sender gets the real value; the record keeps its HMAC.
    let response = client()
        .post(server.hook_url("hashed"))
        .json(&json!({"customer": {"email": EMAIL}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["email"], EMAIL);
    let hashed = server.executions(Some("hashed"));
    let expected = hmac_by_python("correlate-me", EMAIL);
    assert_eq!(hashed[0]["context"]["body"]["customer"]["email"], expected);
    assert_eq!(hashed[0]["output"], expected);

    // Nowhere: the CLI, the viewer's pages, the log, the store's files.
    let data = server.data_dir();
    let data = data.to_str().unwrap();
    for args in [
        vec!["executions", "show", &id, "--data", data],
        vec!["executions", "show", &id, "--json", "--data", data],
        vec!["executions", "list", "--json", "--data", data],
    ] {
        let (ok, out, err) = hookflow(&args);
        assert!(ok, "{err}");
        assert_clean(&format!("hookflow {args:?}"), &(out + &err));
    }
    for page in [
        format!("{}/ui/executions/{id}", server.base),
        format!("{}/ui/workflows/redacted", server.base),
        format!("{}/ui", server.base),
    ] {
        let text = client()
            .get(&page)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            text.contains("***") || !page.contains("executions"),
            "{page}"
        );
        assert_clean(&page, &text);
    }
    assert_clean("the server's log", &server.log());
    for (file, text) in files_text(server.data_dir().as_path()) {
        assert_clean(&file, &text);
    }
}

/// The same through the Lambda handlers on moto, with a body large enough that its
/// context goes through the claim-check bucket (past 1 MiB) and its records too.
#[tokio::test]
async fn on_aws_no_item_object_or_message_holds_them() {
    use hookflow::ports::Queue;
    use hookflow::ports::aws::{self, SqsQueue};
    use hookflow::wiring::{AwsEnv, SealingSource, Settings};
    use hookflow_tests::on_moto::{self, body_of, event_to, sqs_event_of};

    let examples = on_moto::deploy_examples();
    let (url, received) = recording_server();
    let mut definition = waits_then_sends(&hookflow_tests::unique_name("redacted"), &url);
    definition["trigger"]["request"]["maxBodyBytes"] = json!(2 << 20);
    let hook = definition["key"].as_str().unwrap().to_string();
    on_moto::deploy_to_table(&examples.table, &definition);

    let config = aws::load_config().await;
    let client = aws::client(&config);
    let mut settings = Settings {
        sealing: SealingSource::Secret(hookflow::model::SecretRef::SecretsManager {
            secrets_manager: examples.sealing_secret.clone(),
            key: None,
        }),
        ..Settings::default()
    };
    settings.nodes.network.allow_loopback = true;
    let env = AwsEnv {
        table: examples.table.clone(),
        queue_url: examples.queue_url.clone(),
        lane_queue_url: None,
        retention: None,
        bucket: Some(examples.bucket.clone()),
        max_message_bytes: 1 << 20,
        settings,
    };
    let app = env.app(
        std::sync::Arc::clone(&client),
        std::sync::Arc::clone(&client),
    );
    let queue = SqsQueue::new(client, &examples.queue_url);

    let mut large = body();
    large["pad"] = json!("p".repeat(1_200_000));
    let headers = json!({"content-type": "application/json", "x-api-key": API_KEY});
    let event = event_to(&hook, headers, &large.to_string(), "203.0.113.9");
    let response = hookflow_webhook::handle(&app, event).await.unwrap();
    assert_eq!(response.status(), 202, "{}", body_of(&response));
    let id = body_of(&response)["executionId"]
        .as_str()
        .unwrap()
        .to_string();

    // The run, then its wake-up: each message as SQS holds it, clean.
    for _ in 0..2 {
        let message = loop {
            if let Some(m) = queue
                .receive(1, Duration::from_secs(1))
                .await
                .unwrap()
                .pop()
            {
                break m;
            }
        };
        assert_clean("an SQS message", &message.body);
        queue.ack(&message).await.unwrap();
        let batch = hookflow_worker::handle(&app, sqs_event_of(&[("m", &message.body)])).await;
        assert!(batch.batch_item_failures.is_empty());
        check_aws_is_clean(&config, &examples).await;
    }
    let sent = received.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(sent.contains(EMAIL) && sent.contains(API_KEY), "{sent}");
    let (ok, out, err) = hookflow(&[
        "executions",
        "show",
        &id,
        "--json",
        "--table",
        &examples.table,
        "--bucket",
        &examples.bucket,
    ]);
    assert!(ok, "{err}");
    let done: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(done["status"], "resolved");
    assert_eq!(done["output"], "mail *** about ***");
    assert_eq!(
        done["context"]["body"]["pad"].as_str().unwrap().len(),
        1_200_000
    );
    assert_clean("executions show", &out);
}

/// Every item of the table and every object of the bucket, read with the SDKs.
async fn check_aws_is_clean(
    config: &aws_config::SdkConfig,
    examples: &hookflow_tests::on_moto::Examples,
) {
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let items = dynamodb
        .scan()
        .table_name(&examples.table)
        .send()
        .await
        .unwrap();
    for item in items.items() {
        assert_clean("a DynamoDB item", &format!("{item:?}"));
    }
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    );
    let listed = s3
        .list_objects_v2()
        .bucket(&examples.bucket)
        .send()
        .await
        .unwrap();
    assert!(!listed.contents().is_empty(), "the large run's objects");
    for object in listed.contents() {
        let key = object.key().unwrap();
        let got = s3
            .get_object()
            .bucket(&examples.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert_clean(&format!("object {key}"), &String::from_utf8_lossy(&bytes));
    }
}
