//! The credentials hookflow checks are never recorded, on a real `hookflow serve`:
//! `hookflow validate` refuses a hook that declares `Authorization` beside Basic
//! authentication, and a definition stored before that rule (deployed straight
//! into the store here) still runs without the header in its context, its
//! answer, its record or anywhere in the data directory.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hookflow::app::deploy;
use hookflow::model::WorkflowDefinition;
use hookflow::ports::embedded::{Database, EmbeddedStore};
use hookflow_tests::{Server, client, hookflow};
use serde_json::{Value, json};

const USER: &str = "acme";
const PASSWORD: &str = "hunter2-basic-pass";

/// A sync hook that answers with every header it declared.
fn echoing(key: &str, basic: bool) -> Value {
    let mut trigger = json!({"type": "webhook", "hookId": key,
        "request": {"headers": [{"key": "x-request-id"}, {"key": "Authorization"}]}});
    if basic {
        trigger["basicAuthentication"] =
            json!({"username": USER, "password": {"env": "HOOK_PASSWORD"}});
    }
    json!({"key": key, "sync": true, "trigger": trigger, "nodes": [
        {"key": "echo", "type": "response", "config": {"statusCode": 200,
            "body": {"headers": "{{$context.headers}}"}}}]})
}

fn credential() -> String {
    STANDARD.encode(format!("{USER}:{PASSWORD}"))
}

/// Every file under `dir`, as bytes, that holds `needle`.
fn files_holding(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
        {
            found.push(path.display().to_string());
        }
    }
    found
}

#[test]
fn validate_refuses_a_declared_authorization_header_beside_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("guarded.json");
    std::fs::write(&file, echoing("guarded", true).to_string()).unwrap();
    let (ok, out, err) = hookflow(&["validate", file.to_str().unwrap()]);
    assert!(!ok, "{out}{err}");
    let said = format!("{out}{err}");
    assert!(
        said.contains("trigger.request.headers[1].key") && said.contains("Authorization"),
        "{said}"
    );
    // The same header on a hook without Basic auth is the workflow's to read.
    std::fs::write(&file, echoing("guarded", false).to_string()).unwrap();
    let (ok, out, err) = hookflow(&["validate", file.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
}

#[tokio::test]
async fn a_definition_stored_before_the_rule_still_records_no_credentials() {
    let server = Server::start_with_env(
        &[echoing("bearer", false)],
        &[],
        &[("HOOK_PASSWORD", PASSWORD)],
    );
    // Deployed as an older hookflow (or another loader) would have: not validated.
    let definition: WorkflowDefinition = serde_json::from_value(echoing("guarded", true)).unwrap();
    let db = Database::open(&server.data_dir()).unwrap();
    deploy::deploy(
        &EmbeddedStore::new(Arc::clone(&db)),
        &hookflow::nodes::builtin(),
        definition,
    )
    .await
    .unwrap();

    let answer = client()
        .post(server.hook_url("guarded"))
        .basic_auth(USER, Some(PASSWORD))
        .header("x-request-id", "r-7")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["headers"], json!({"x-request-id": "r-7"}));

    let runs = server.executions(Some("guarded"));
    assert_eq!(runs.len(), 1);
    let id = runs[0]["id"].as_str().unwrap();
    let record = server.execution(id).unwrap();
    assert_eq!(record["context"]["headers"], json!({"x-request-id": "r-7"}));
    let data = server.data_dir();
    let (ok, shown, err) = hookflow(&["executions", "show", id, "--data", data.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(shown.contains("r-7"), "{shown}");
    for secret in [credential().as_str(), PASSWORD] {
        assert!(!shown.contains(secret), "{shown}");
        assert!(!record.to_string().contains(secret), "{record}");
        assert_eq!(files_holding(&data, secret), Vec::<String>::new());
    }

    // Without Basic auth the declared header reaches the workflow, as declared.
    let bearer = client()
        .post(server.hook_url("bearer"))
        .header("authorization", "Bearer t-1")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let bearer: Value = bearer.json().await.unwrap();
    assert_eq!(bearer["headers"]["authorization"], "Bearer t-1");
}
