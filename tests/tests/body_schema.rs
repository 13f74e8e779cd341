//! `trigger.schema` and `trigger.onInvalid` (issue 27) through `hookflow serve`:
//! a body that does not match is refused 422 with JSON Pointers into the body and
//! the schema before any run, or kept as an `invalid` execution that a replay runs
//! once the schema is fixed; `validate` checks the schema itself. The Lambda
//! handler's answer is in lambda.rs.

use hookflow_tests::{Server, client, hookflow, job_trail, post, replayed_ids};
use serde_json::{Value, json};

fn order_schema() -> Value {
    json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}})
}

fn workflow(key: &str, schema: Value, extra: Value) -> Value {
    let mut trigger = json!({"type": "webhook", "hookId": format!("{key}-hook"), "schema": schema});
    trigger
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"key": key, "trigger": trigger,
        "nodes": [{"key": "note", "type": "output", "config": {"value": "order {{$context.body.id}}"}}]})
}

/// The kept workflow: `onInvalid: keep` with a configured answer.
fn inbox(schema: Value) -> Value {
    workflow(
        "inbox",
        schema,
        json!({"onInvalid": "keep", "response": {"statusCode": 202, "body": {"queued": "{{$system.executionId}}"}}}),
    )
}

/// The value of the `GET /metrics` sample of `metric` with all of `labels`.
async fn count(server: &Server, metric: &str, labels: &[&str]) -> Option<f64> {
    let response = client().get(format!("{}/metrics", server.base)).send();
    let text = response.await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn replay(server: &Server, id: &str) -> String {
    let data = server.data_dir();
    let (ok, out, err) = hookflow(&["executions", "replay", id, "--data", data.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    out
}

/// The one id a replay printed.
fn replayed_id(out: &str) -> String {
    let ids = replayed_ids(out);
    assert_eq!(ids.len(), 1, "{out}");
    ids[0].clone()
}

#[tokio::test]
async fn a_body_that_does_not_match_is_refused_422_with_its_pointers_and_never_runs() {
    let answer = json!({"response": {"body": {"executionId": "{{$system.executionId}}"}}});
    let server = Server::start(&[workflow("orders", order_schema(), answer)]);
    let (status, body) = post(&server, "orders-hook", json!({"id": "A-1"})).await;
    assert_eq!(status, 422, "{body}");
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["error", "instancePath", "schemaPath"], "{body}");
    assert_eq!(body["instancePath"], "/id");
    assert_eq!(body["schemaPath"], "/properties/id/type");
    assert!(
        body["error"].as_str().unwrap().contains("integer"),
        "{body}"
    );
    let (status, body) = post(&server, "orders-hook", json!({"name": "no id"})).await;
    assert_eq!(status, 422);
    assert_eq!(
        (&body["instancePath"], &body["schemaPath"]),
        (&json!(""), &json!("/required"))
    );

    let (status, body) = post(&server, "orders-hook", json!({"id": 7})).await;
    assert_eq!(status, 200, "{body}");
    let id = body["executionId"]
        .as_str()
        .expect("an accepted run")
        .to_string();
    let run = server.wait_for_execution(&id, "resolved");
    assert_eq!(run["jobs"][0]["result"], "order 7");
    assert_eq!(
        server.executions(Some("orders")).len(),
        1,
        "no run for a refused body"
    );
    let refused = ["hook=\"orders-hook\"", "status=\"422\""];
    let counted = count(&server, "hookflow_requests_total", &refused).await;
    assert_eq!(counted, Some(2.0));
}

#[tokio::test]
async fn a_kept_delivery_is_invalid_until_the_schema_is_fixed_then_its_replay_runs() {
    let mut server = Server::start(&[inbox(order_schema())]);
    let (status, body) = post(&server, "inbox-hook", json!({"id": "A-1"})).await;
    assert_eq!(
        status, 202,
        "the configured answer of an accepted delivery: {body}"
    );
    let kept = body["queued"]
        .as_str()
        .expect("the execution id")
        .to_string();
    let record = server.execution(&kept).expect("recorded at once");
    assert_eq!(record["status"], "invalid");
    assert_eq!(
        job_trail(&record),
        Vec::<(&str, &str)>::new(),
        "no node ran"
    );
    assert_eq!(record["context"]["body"], json!({"id": "A-1"}));
    assert_eq!(record["output"]["instancePath"], "/id");
    assert_eq!(record["output"]["schemaPath"], "/properties/id/type");
    assert!(record["output"]["error"].is_string());
    let listed = server.executions(Some("inbox"));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "invalid");
    let invalid = ["workflow=\"inbox\"", "status=\"invalid\""];
    let counted = count(&server, "hookflow_executions_total", &invalid).await;
    assert_eq!(counted, Some(1.0));

    // Replayed before the fix, it is invalid again: nothing runs.
    let out = replay(&server, &kept);
    assert!(out.contains("recorded invalid"), "{out}");
    let again = server.execution(&replayed_id(&out)).unwrap();
    assert_eq!(
        (&again["status"], &again["replayOf"]),
        (&json!("invalid"), &json!(kept))
    );
    assert!(job_trail(&again).is_empty());

    // The fix: a schema file beside the workflow, read when serve deploys it.
    let workflows = server.data_dir().parent().unwrap().join("workflows");
    std::fs::create_dir_all(workflows.join("schemas")).unwrap();
    let fixed = json!({"type": "object", "required": ["id"],
        "properties": {"id": {"type": ["integer", "string"]}}});
    std::fs::write(workflows.join("schemas/inbox.json"), fixed.to_string()).unwrap();
    server.write_workflow(&inbox(json!("schemas/inbox.json")));
    server.restart_with(&[]);
    let out = replay(&server, &kept);
    assert!(
        out.contains("(inbox v2)") && !out.contains("invalid"),
        "{out}"
    );
    let run = server.wait_for_execution(&replayed_id(&out), "resolved");
    assert_eq!(run["replayOf"], json!(kept));
    assert_eq!(job_trail(&run), [("note", "resolved")]);
    assert_eq!(run["jobs"][0]["result"], "order A-1");
    // The deployed definition holds the schema itself, not the path.
    let (status, body) = post(&server, "inbox-hook", json!({"id": ["x"]})).await;
    assert_eq!(status, 202, "{body}");
    let kept = server.execution(body["queued"].as_str().unwrap()).unwrap();
    assert_eq!(kept["status"], "invalid");
    assert_eq!(kept["workflowVersion"], 2);
    assert_eq!(server.executions(Some("inbox")).len(), 4);
}

#[test]
fn validate_checks_the_schema_itself_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.json");
    let bad = json!({"type": "object", "properties": {"id": {"type": "intger"}}});
    std::fs::write(&file, workflow("orders", bad, json!({})).to_string()).unwrap();
    let (ok, out, _) = hookflow(&["validate", file.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("trigger.schema: ") && out.contains("(at /properties/id/type in the schema)"),
        "{out}"
    );
    let missing = json!("schemas/none.json");
    std::fs::write(
        &file,
        workflow("orders", missing, json!({"onInvalid": "keep"})).to_string(),
    )
    .unwrap();
    let (ok, out, _) = hookflow(&["validate", file.to_str().unwrap()]);
    assert!(!ok && out.contains("trigger.schema: cannot read"), "{out}");
    let wrong = json!({"onInvalid": "drop"});
    std::fs::write(&file, workflow("orders", order_schema(), wrong).to_string()).unwrap();
    let (ok, out, _) = hookflow(&["validate", file.to_str().unwrap()]);
    assert!(!ok && out.contains("trigger.onInvalid"), "{out}");
}
