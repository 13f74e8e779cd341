//! The Lambdas' setup on moto as the README's local AWS section makes it: a table and
//! a run queue (`hookflow init-local-aws`), the examples deployed (`hookflow deploy`),
//! the events in `events/`, and executions read back with `hookflow executions`.

use serde_json::{Value, json};

use crate::{hookflow, moto_endpoint, unique_name};

/// A table and a run queue of their own on moto, with `examples/` deployed.
pub struct Examples {
    pub table: String,
    pub queue_url: String,
    /// The FIFO queue of runs on a lane.
    pub lane_queue_url: String,
    /// The claim-check bucket.
    pub bucket: String,
    /// The ARN of the secret runs that redact are sealed with.
    pub sealing_secret: String,
}

/// Creates the table and queue and deploys the examples (`payment-callback` and
/// `git-push` among them) with the CLI.
pub fn deploy_examples() -> Examples {
    moto_endpoint();
    let table = unique_name("hookflow");
    let (ok, out, err) = hookflow(&[
        "init-local-aws",
        "--table",
        &table,
        "--queue",
        &unique_name("runs"),
        "--lane-queue",
        &unique_name("lanes"),
        "--bucket",
        &unique_name("objects"),
        "--sealing-secret",
        &unique_name("sealing"),
    ]);
    assert!(ok, "hookflow init-local-aws failed: {out}{err}");
    let queue_url = out
        .lines()
        .find_map(|l| l.strip_prefix("HOOKFLOW_QUEUE_URL="))
        .unwrap_or_else(|| panic!("no queue URL in {out:?}"))
        .to_string();
    let lane_queue_url = out
        .lines()
        .find_map(|l| l.strip_prefix("HOOKFLOW_LANE_QUEUE_URL="))
        .unwrap_or_else(|| panic!("no lane queue URL in {out:?}"))
        .to_string();
    let bucket = out
        .lines()
        .find_map(|l| l.strip_prefix("HOOKFLOW_BUCKET="))
        .unwrap_or_else(|| panic!("no bucket in {out:?}"))
        .to_string();
    let sealing_secret = out
        .lines()
        .find_map(|l| l.strip_prefix("HOOKFLOW_SEALING_SECRET="))
        .unwrap_or_else(|| panic!("no sealing secret in {out:?}"))
        .to_string();
    let (ok, out, err) = hookflow(&[
        "deploy",
        "--table",
        &table,
        concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"),
    ]);
    assert!(ok, "hookflow deploy failed: {out}{err}");
    assert!(
        out.contains("payment-callback v1 deployed  POST /api/webhook:trigger/pay-3kq9x0v2m1"),
        "{out}"
    );
    Examples {
        table,
        queue_url,
        lane_queue_url,
        bucket,
        sealing_secret,
    }
}

impl Examples {
    /// The environment the template gives both functions.
    pub fn function_env(&self) -> [(&str, &str); 6] {
        [
            ("HOOKFLOW_TABLE", self.table.as_str()),
            ("HOOKFLOW_QUEUE_URL", self.queue_url.as_str()),
            ("HOOKFLOW_LANE_QUEUE_URL", self.lane_queue_url.as_str()),
            ("HOOKFLOW_BUCKET", self.bucket.as_str()),
            ("HOOKFLOW_MAX_MESSAGE_BYTES", "1048576"),
            ("HOOKFLOW_SEALING_SECRET", self.sealing_secret.as_str()),
        ]
    }

    /// `hookflow executions show ID --json` on the table.
    pub fn execution(&self, id: &str) -> Value {
        execution_on(&self.table, id)
    }
}

/// `hookflow executions list --json --workflow WORKFLOW --table TABLE`: newest first.
pub fn executions_on(table: &str, workflow: &str) -> Vec<Value> {
    let (ok, out, err) = hookflow(&[
        "executions",
        "list",
        "--json",
        "--workflow",
        workflow,
        "--limit",
        "100000",
        "--table",
        table,
    ]);
    assert!(ok, "executions list failed: {err}");
    serde_json::from_str(&out).expect("executions list prints a JSON array")
}

/// `hookflow executions show ID --json --table TABLE`.
pub fn execution_on(table: &str, id: &str) -> Value {
    let (ok, out, err) = hookflow(&["executions", "show", id, "--json", "--table", table]);
    assert!(ok, "executions show failed: {err}");
    serde_json::from_str(&out).expect("executions show prints JSON")
}

/// The text of `events/NAME` (API Gateway payload 2.0 and SQS events).
pub fn event_file(name: &str) -> String {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// An SQS event as Lambda delivers it: one record per `(messageId, body)`, each on
/// its first receive.
pub fn sqs_event(messages: &[(&str, &str)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| json!({"messageId": id, "receiptHandle": "r", "body": body,
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "eventSource": "aws:sqs"}))
        .collect();
    json!({ "Records": records })
}

/// An API Gateway event for `hook_id` from `source_ip`, with these headers and body.
pub fn event_to(
    hook_id: &str,
    headers: Value,
    body: &str,
    source_ip: &str,
) -> lambda_http::Request {
    let path = format!(
        "{}/../events/apigw-post-json.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let route = format!("/api/webhook:trigger/{hook_id}");
    event["rawPath"] = json!(route);
    event["rawQueryString"] = json!("");
    event["requestContext"]["http"]["path"] = json!(route);
    event["requestContext"]["http"]["sourceIp"] = json!(source_ip);
    event["headers"] = headers;
    event["body"] = json!(body);
    lambda_http::request::from_str(&event.to_string()).expect("an API Gateway event")
}

/// An SQS event of `(messageId, body)` records, as the worker Lambda gets it.
pub fn sqs_event_of(bodies: &[(&str, &str)]) -> aws_lambda_events::event::sqs::SqsEvent {
    serde_json::from_value(sqs_event(bodies)).unwrap()
}

/// A Lambda HTTP answer's body, as JSON when it is JSON.
pub fn body_of(response: &lambda_http::Response<lambda_http::Body>) -> Value {
    serde_json::from_slice(response.body().as_ref())
        .unwrap_or_else(|_| json!(String::from_utf8_lossy(response.body().as_ref())))
}

/// Deploys one definition to `table` with `hookflow deploy`, as a user does.
pub fn deploy_to_table(table: &str, definition: &Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flow.json");
    std::fs::write(&file, definition.to_string()).unwrap();
    let (ok, out, err) = hookflow(&["deploy", "--table", table, file.to_str().unwrap()]);
    assert!(ok, "hookflow deploy failed: {out}{err}");
}
