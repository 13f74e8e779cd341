//! The Lambdas' setup on moto as the README's local AWS section makes it: a table and
//! a run queue (`hookflow init-local-aws`), the examples deployed (`hookflow deploy`),
//! the events in `events/`, and executions read back with `hookflow executions`.

use serde_json::{Value, json};

use crate::{hookflow, moto_endpoint, unique_name};

/// A table and a run queue of their own on moto, with `examples/` deployed.
pub struct Examples {
    pub table: String,
    pub queue_url: String,
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
    ]);
    assert!(ok, "hookflow init-local-aws failed: {out}{err}");
    let queue_url = out
        .lines()
        .find_map(|l| l.strip_prefix("HOOKFLOW_QUEUE_URL="))
        .unwrap_or_else(|| panic!("no queue URL in {out:?}"))
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
    Examples { table, queue_url }
}

impl Examples {
    /// The environment the template gives both functions.
    pub fn function_env(&self) -> [(&str, &str); 2] {
        [
            ("HOOKFLOW_TABLE", self.table.as_str()),
            ("HOOKFLOW_QUEUE_URL", self.queue_url.as_str()),
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
