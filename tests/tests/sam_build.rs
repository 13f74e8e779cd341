//! What ships is what works: the `bootstrap` files `sam build` makes from
//! template.yaml (as the README's deploy section runs it), started as Lambda starts
//! them, under a stand-in of the Lambda Runtime API, against DynamoDB and SQS on moto.
//! A sync webhook is answered by the webhook bootstrap; an async one is queued on
//! SQS, and the worker bootstrap, fed that message as an SQS event, records the run.
//!
//! `HOOKFLOW_SAM_BUILD_DIR` names the `sam build` output (`./scripts/test` builds it
//! once and sets it). Unset, the test runs `sam build` itself, for this machine's
//! architecture, and fails saying what to install when `sam` is missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use hookflow::ports::Queue;
use hookflow::ports::aws::{self, SqsQueue};
use hookflow_tests::on_moto::{self, event_file, sqs_event};
use hookflow_tests::runtime_api::{Bootstrap, Outcome};
use serde_json::{Value, json};

/// The template's architecture that runs on this machine.
const ARCHITECTURE: &str = if cfg!(target_arch = "aarch64") {
    "arm64"
} else {
    "x86_64"
};

/// The `sam build` output directory, built once per test process when not given.
fn build_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("HOOKFLOW_SAM_BUILD_DIR") {
            return PathBuf::from(dir);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let sam = |args: &[&str]| {
            Command::new("sam")
                .args(args)
                .current_dir(&root)
                .env("SAM_CLI_TELEMETRY", "0")
                .status()
        };
        assert!(
            sam(&["--version"]).is_ok_and(|s| s.success()),
            "HOOKFLOW_SAM_BUILD_DIR is not set and `sam` is not installed: run ./scripts/test \
             (it installs aws-sam-cli, cargo-lambda and ziglang, runs `sam build` and sets the \
             variable), or `pip install aws-sam-cli cargo-lambda` and run this test again, or \
             set HOOKFLOW_SAM_BUILD_DIR to a `sam build` output (.aws-sam/build)"
        );
        let overrides = format!("Architecture={ARCHITECTURE}");
        let built = sam(&["build", "--parameter-overrides", &overrides]).expect("run sam build");
        assert!(built.success(), "sam build failed: {built}");
        root.join(".aws-sam/build")
    })
}

/// A function's shipped bootstrap, started with the template's environment.
fn start(function: &str, examples: &on_moto::Examples) -> Bootstrap {
    let path = build_dir().join(function).join("bootstrap");
    assert!(
        path.is_file(),
        "{} is missing: is {} a `sam build` output?",
        path.display(),
        build_dir().display()
    );
    Bootstrap::start(&path, &examples.function_env())
}

/// The result a function posted to the Runtime API, as JSON.
fn response(outcome: Outcome) -> Value {
    match outcome {
        Outcome::Response(body) => serde_json::from_str(&body).expect("a JSON result"),
        other => panic!("the function failed: {other:?}"),
    }
}

/// An API Gateway (payload 2.0) result's status and body (as JSON when it is JSON).
fn http_answer(result: &Value) -> (u64, Value) {
    let body = result["body"].as_str().unwrap_or_default();
    let body = if result["isBase64Encoded"] == true {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("base64 body");
        String::from_utf8(bytes).expect("a text body")
    } else {
        body.to_string()
    };
    let status = result["statusCode"].as_u64().expect("a status code");
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

#[test]
fn a_sync_webhook_is_answered_by_the_shipped_webhook_bootstrap() {
    let examples = on_moto::deploy_examples();
    let mut webhook = start("WebhookFunction", &examples);

    let result = response(webhook.invoke(&event_file("apigw-post-json.json")));
    assert_eq!(http_answer(&result), (200, json!({"received": "A-1"})));
    // Warm: the same process answers the next invocation.
    let result = response(webhook.invoke(&event_file("apigw-base64-body.json")));
    assert_eq!(
        http_answer(&result),
        (422, json!({"error": "unexpected status refunded"}))
    );

    let executions = on_moto::executions_on(&examples.table, "payment-callback");
    assert_eq!(executions.len(), 2, "both runs recorded: {executions:?}");
    let paid = &executions[1];
    assert_eq!(paid["status"], "resolved", "{paid}");
    assert_eq!(paid["context"]["headers"], json!({"x-request-id": "req-1"}));
}

/// A request through the webhook function's URL (template parameter FunctionUrl):
/// the same payload format as the HTTP API's, answered the same, its caller's
/// address from `requestContext`.
#[test]
fn a_function_url_request_is_answered_by_the_shipped_webhook_bootstrap() {
    let examples = on_moto::deploy_examples();
    let mut webhook = start("WebhookFunction", &examples);
    let result = response(webhook.invoke(&event_file("function-url-post-json.json")));
    assert_eq!(http_answer(&result), (200, json!({"received": "A-2"})));
    let executions = on_moto::executions_on(&examples.table, "payment-callback");
    let run = executions
        .iter()
        .find(|e| e["context"]["body"]["order"]["id"] == "A-2")
        .expect("the run recorded");
    assert_eq!(run["status"], "resolved", "{run}");
    assert_eq!(
        run["context"]["headers"],
        json!({"x-request-id": "req-url-1"})
    );
}

#[tokio::test]
async fn an_async_webhook_is_queued_by_the_shipped_webhook_and_run_by_the_shipped_worker() {
    let examples = on_moto::deploy_examples();
    let mut webhook = start("WebhookFunction", &examples);
    let mut worker = start("WorkerFunction", &examples);

    let result = response(webhook.invoke(&event_file("apigw-basic-auth.json")));
    let (status, body) = http_answer(&result);
    assert_eq!(status, 202, "{result}");
    assert_eq!(result["headers"]["x-delivery"], "d-42", "{result}");
    let id = body["executionId"].as_str().expect("an execution id");

    let queue = SqsQueue::new(
        aws::client(&aws::load_config().await),
        examples.queue_url.clone(),
    );
    let messages = queue.receive(10, Duration::from_secs(5)).await.unwrap();
    assert_eq!(messages.len(), 1, "one run queued");
    let event = sqs_event(&[("m-1", &messages[0].body)]).to_string();
    let batch = response(worker.invoke(&event));
    assert_eq!(batch["batchItemFailures"], json!([]), "{batch}");

    let execution = examples.execution(id);
    assert_eq!(execution["status"], "resolved", "{execution}");
    assert_eq!(execution["workflowKey"], "git-push");
    assert_eq!(
        execution["output"],
        json!({"deploy": "acme/app", "commit": "4f2c1a9"})
    );
}
