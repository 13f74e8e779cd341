//! The webhook endpoint of a real `hookflow serve`, over HTTP: the status table, auth,
//! sync answers, async accepts and restarts.

use base64::Engine as _;
use hookflow_tests::{Server, client, hookflow};
use serde_json::{Value, json};

fn payment_callback() -> Value {
    serde_json::from_str(include_str!("../../examples/payment-callback.json")).unwrap()
}

const PAY: &str = "pay-3kq9x0v2m1";

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

async fn body_json(response: reqwest::Response) -> Value {
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"))
}

fn sync_flow(key: &str, hook: &str, nodes: Value) -> Value {
    json!({"key": key, "sync": true, "trigger": {"type": "webhook", "hookId": hook}, "nodes": nodes})
}

#[tokio::test]
async fn status_table_in_order() {
    let disabled = json!({"key": "off", "enabled": false, "trigger": {"type": "webhook", "hookId": "off-hook"}});
    let open = sync_flow("open", "open-hook", json!([]));
    let server = Server::start(&[payment_callback(), disabled, open]);
    let http = client();

    // 405 comes first, even without credentials, with Allow: POST.
    let r = http.get(server.hook_url(PAY)).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    assert!(body_json(r).await["error"].is_string());

    // 404: unknown and disabled answer the same.
    let unknown = http.post(server.hook_url("nope")).send().await.unwrap();
    let off = http.post(server.hook_url("off-hook")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(off.status(), 404);
    assert_eq!(body_json(unknown).await, body_json(off).await);
    let elsewhere = http
        .post(format!("{}/api/other", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);

    // 401 before looking at the body.
    let r = http
        .post(server.hook_url(PAY))
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"hookflow\"");
    assert!(body_json(r).await["error"].is_string());

    // 413 past 1 MiB, before JSON parsing.
    let big = format!("\"{}\"", "x".repeat(1 << 20));
    let r = http
        .post(server.hook_url("open-hook"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(
        body_json(r).await["error"]
            .as_str()
            .unwrap()
            .contains("larger than")
    );

    // 400 for a JSON content type with a body that is not JSON.
    let r = http
        .post(server.hook_url("open-hook"))
        .header("content-type", "application/json; charset=utf-8")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        body_json(r).await["error"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );

    // Nothing above ran a workflow.
    assert!(server.executions(None).is_empty());
}

#[tokio::test]
async fn basic_auth_right_and_wrong() {
    let server = Server::start(&[payment_callback()]);
    let http = client();
    let paid = json!({"status": "paid", "order": {"id": "A-1"}});
    for wrong in [
        basic("acme", "wrong"),
        basic("other", "s3cret"),
        basic("acme", "s3cret2"),
        "Bearer s3cret".into(),
    ] {
        let r = http
            .post(server.hook_url(PAY))
            .header("authorization", wrong)
            .json(&paid)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = http
        .post(server.hook_url(PAY))
        .header("authorization", basic("acme", "s3cret"))
        .json(&paid)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Credentials never reach the execution record.
    let executions = server.executions(Some("payment-callback"));
    assert_eq!(executions.len(), 1);
    let recorded = executions[0].to_string();
    assert!(
        !recorded.contains("s3cret") && !recorded.contains("authorization"),
        "{recorded}"
    );
}

#[tokio::test]
async fn sync_success_and_failure_branches() {
    let server = Server::start(&[payment_callback()]);
    let http = client();
    let auth = basic("acme", "s3cret");

    let r = http
        .post(format!("{}?query[0][a]=x", server.hook_url(PAY)))
        .header("authorization", &auth)
        .header("x-request-id", "req-7")
        .header("cookie", "session=secret")
        .json(&json!({"status": "paid", "order": {"id": "A-1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(body_json(r).await, json!({"received": "A-1"}));

    let r = http
        .post(server.hook_url(PAY))
        .header("authorization", &auth)
        .json(&json!({"status": "void", "order": {"id": "A-2"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        body_json(r).await,
        json!({"error": "unexpected status void"})
    );

    let executions = server.executions(Some("payment-callback"));
    assert_eq!(executions.len(), 2);
    // Newest first: the failure branch, then the success branch.
    let (failure, success) = (&executions[0], &executions[1]);
    assert_eq!(success["status"], "resolved");
    assert_eq!(
        success["context"]["headers"],
        json!({"x-request-id": "req-7"})
    );
    assert_eq!(success["context"]["query"], json!({"query": [{"a": "x"}]}));
    let trail = |e: &Value| -> Vec<(String, String)> {
        e["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| {
                (
                    j["nodeKey"].as_str().unwrap().into(),
                    j["status"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    assert_eq!(
        trail(success),
        [
            ("paid".into(), "resolved".into()),
            ("ok".into(), "resolved".into())
        ]
    );
    assert_eq!(
        trail(failure),
        [
            ("paid".into(), "resolved".into()),
            ("nope".into(), "resolved".into())
        ]
    );
    assert_eq!(failure["jobs"][0]["result"], json!(false));
    for field in [
        "id",
        "workflowKey",
        "workflowVersion",
        "status",
        "context",
        "output",
        "jobs",
        "createdAt",
        "finishedAt",
    ] {
        assert!(success.get(field).is_some(), "missing {field}");
    }
}

#[tokio::test]
async fn sync_without_a_response_node_answers_200_or_500() {
    let resolves = sync_flow(
        "resolves",
        "resolves-hook",
        json!([{"key": "o", "type": "output", "config": {"value": 1}}]),
    );
    let fails = sync_flow(
        "fails",
        "fails-hook",
        json!([
            {"key": "check", "type": "condition", "config": {"rejectOnFalse": true,
              "calculation": {"calculator": "equal", "operands": ["{{$context.body.ok}}", true]}}}
        ]),
    );
    let server = Server::start(&[resolves, fails]);
    let http = client();

    let r = http
        .post(server.hook_url("resolves-hook"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = body_json(r).await;
    assert_eq!(body["status"], "resolved");
    let recorded = server
        .execution(body["executionId"].as_str().unwrap())
        .expect("recorded");
    assert_eq!(recorded["output"], json!(1));

    let r = http
        .post(server.hook_url("fails-hook"))
        .json(&json!({"ok": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let body = body_json(r).await;
    assert_eq!(
        body.as_object().unwrap().len(),
        2,
        "no internal detail: {body}"
    );
    assert_eq!(body["status"], "failed");
    let recorded = server
        .execution(body["executionId"].as_str().unwrap())
        .expect("recorded");
    assert_eq!(recorded["status"], "failed");
    assert_eq!(recorded["jobs"][0]["status"], "failed");
}

#[tokio::test]
async fn sync_timeout_answers_504_and_records_aborted() {
    // Thousands of nodes each copying a large body: far more than 5 ms of work.
    let nodes: Vec<Value> = (0..9000)
        .map(|i| json!({"key": format!("n{i}"), "type": "output", "config": {"value": "{{$context.body}}"}}))
        .collect();
    let slow = json!({"key": "slow", "sync": true, "options": {"timeoutMs": 5},
        "trigger": {"type": "webhook", "hookId": "slow-hook"}, "nodes": nodes});
    let server = Server::start(&[slow]);
    let body: serde_json::Map<String, Value> =
        (0..3000).map(|i| (format!("field{i}"), json!(i))).collect();
    let r = client()
        .post(server.hook_url("slow-hook"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    let answer = body_json(r).await;
    assert!(answer["error"].as_str().unwrap().contains("5 ms"));
    let recorded = server
        .execution(answer["executionId"].as_str().unwrap())
        .expect("recorded");
    assert_eq!(recorded["status"], "aborted");
    let jobs = recorded["jobs"].as_array().unwrap();
    assert!(jobs.len() < 9000, "the run was cut short");
    assert!(
        jobs.iter()
            .all(|j| j["status"] == "resolved" || j["status"] == "aborted")
    );
}

fn async_flow() -> Value {
    json!({
        "key": "orders", "sync": false,
        "trigger": {"type": "webhook", "hookId": "orders-hook",
            "basicAuthentication": {"username": "shop", "password": "p4ss"},
            "response": {"statusCode": 202, "headers": [{"name": "X-Order", "value": "{{$context.body.id}}"}],
                         "body": {"queued": "{{$context.body.id}}", "executionId": "{{$system.executionId}}"}}},
        "nodes": [
            {"key": "big", "type": "condition", "config": {"calculation": {"calculator": "gte", "operands": ["{{$context.body.amount}}", 100]}},
             "branches": {"1": [{"key": "flag", "type": "output", "config": {"value": {"review": "{{$context.body.id}}"}}}]}}
        ]
    })
}

#[tokio::test]
async fn async_run_answers_at_once_then_resolves_with_jobs() {
    let server = Server::start(&[async_flow()]);
    let r = client()
        .post(server.hook_url("orders-hook"))
        .header("authorization", basic("shop", "p4ss"))
        .json(&json!({"id": "o-9", "amount": "250"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["x-order"], "o-9");
    let body = body_json(r).await;
    assert_eq!(body["queued"], "o-9");
    let id = body["executionId"].as_str().unwrap();

    let execution = server.wait_for_execution(id, "resolved");
    assert_eq!(execution["workflowKey"], "orders");
    assert_eq!(execution["output"], json!({"review": "o-9"}));
    let jobs = execution["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0]["nodeKey"], "big");
    assert_eq!(jobs[0]["result"], json!(true));
    assert_eq!(jobs[1]["nodeKey"], "flag");
    assert!(
        jobs.iter()
            .all(|j| j["status"] == "resolved" && j["finishedAt"].is_string())
    );
}

#[tokio::test]
async fn accepted_runs_survive_a_restart_and_a_crash() {
    // Workers off: runs are accepted and queued but not run.
    let mut server = Server::start_with(&[async_flow()], &["--workers", "0"]);
    let http = client();
    let mut ids = Vec::new();
    for n in 0..3 {
        let r = http
            .post(server.hook_url("orders-hook"))
            .header("authorization", basic("shop", "p4ss"))
            .json(&json!({"id": format!("o-{n}"), "amount": 5}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        ids.push(
            body_json(r).await["executionId"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert!(server.executions(None).is_empty(), "nothing ran yet");
    // Not yet an execution, but not unknown either: `executions show` says queued.
    let queued = server.execution(&ids[0]).expect("a queued run is shown");
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["workflowKey"], "orders");
    assert_eq!(queued["context"]["body"], json!({"id": "o-0", "amount": 5}));
    let (_, listed, _) = hookflow(&[
        "executions",
        "list",
        "--data",
        server.data_dir().to_str().unwrap(),
    ]);
    assert!(listed.contains("3 accepted run(s) queued"), "{listed}");

    // A graceful restart, still without workers, keeps them queued.
    server.restart_with(&["--workers", "0"]);
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.contains("resuming 3 queued run(s)")),
        "{:?}",
        server.banner
    );

    // A crash (SIGKILL) right after accepting one more loses nothing either.
    let r = http
        .post(server.hook_url("orders-hook"))
        .header("authorization", basic("shop", "p4ss"))
        .json(&json!({"id": "o-crash", "amount": 500}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    ids.push(
        body_json(r).await["executionId"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    server.crash();

    server.restart_with(&[]);
    for id in &ids {
        let execution = server.wait_for_execution(id, "resolved");
        assert_eq!(execution["jobs"][0]["nodeKey"], "big");
    }
    assert_eq!(
        server.execution(&ids[3]).unwrap()["output"],
        json!({"review": "o-crash"})
    );
    assert_eq!(server.executions(Some("orders")).len(), 4);
}

#[tokio::test]
async fn serve_redeploys_only_changed_definitions() {
    let mut flow = sync_flow(
        "versioned",
        "versioned-hook",
        json!([{"key": "o", "type": "output", "config": {"value": 1}}]),
    );
    let mut server = Server::start(&[flow.clone()]);
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.contains("versioned v1 deployed")),
        "{:?}",
        server.banner
    );
    server.restart_with(&[]);
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.contains("versioned v1 (sync)")),
        "{:?}",
        server.banner
    );

    flow["nodes"][0]["config"]["value"] = json!(2);
    let file = server
        .data_dir()
        .parent()
        .unwrap()
        .join("workflows/versioned.json");
    std::fs::write(file, flow.to_string()).unwrap();
    server.restart_with(&[]);
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.contains("versioned v2 deployed")),
        "{:?}",
        server.banner
    );
    let r = client()
        .post(server.hook_url("versioned-hook"))
        .send()
        .await
        .unwrap();
    let id = body_json(r).await["executionId"]
        .as_str()
        .unwrap()
        .to_string();
    let execution = server.execution(&id).unwrap();
    assert_eq!(execution["workflowVersion"], 2);
    assert_eq!(execution["output"], 2);
}

#[tokio::test]
async fn invalid_workflows_stop_serve_with_every_problem() {
    let bad = json!({"key": "bad", "sync": false, "trigger": {"type": "webhook"},
        "nodes": [{"key": "r", "type": "response", "config": {"statusCode": 99}}]});
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.json"), bad.to_string()).unwrap();
    let (ok, _, err) = hookflow(&[
        "serve",
        "--workflows",
        dir.path().to_str().unwrap(),
        "--data",
        dir.path().join("d").to_str().unwrap(),
        "--addr",
        "127.0.0.1:0",
    ]);
    assert!(!ok);
    assert!(
        err.contains("nodes[0].type: \"response\" nodes work in sync workflows only"),
        "{err}"
    );
    assert!(
        err.contains("nodes[0].config.statusCode: must be 200..=599"),
        "{err}"
    );
}

/// A sync run's record is committed before its answer (its fsync follows just
/// after, docs/workflows.md): a server killed (SIGKILL) right after answering
/// 224 sync runs, 32 at a time, has every one of them recorded after a restart.
#[tokio::test]
async fn every_answered_sync_run_is_recorded_after_a_kill_9() {
    let flow = json!({"key": "answers", "sync": true,
        "trigger": {"type": "webhook", "hookId": "answers"},
        "nodes": [{"key": "ok", "type": "response",
            "config": {"statusCode": 200, "body": {"id": "{{$system.executionId}}", "n": "{{$context.body.n}}"}}}]});
    let mut server = Server::start_with(&[flow], &[]);
    let http = client();
    let url = server.hook_url("answers");
    let mut ids = Vec::new();
    for wave in 0..7 {
        let sent = (0..32).map(|i| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let r = http
                    .post(url)
                    .json(&json!({"n": wave * 32 + i}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                body_json(r).await["id"].as_str().unwrap().to_string()
            }
        });
        ids.extend(futures_util::future::join_all(sent).await);
    }
    server.crash();
    server.restart_with(&[]);
    let recorded: std::collections::HashMap<String, Value> = server
        .executions(Some("answers"))
        .into_iter()
        .map(|e| (e["id"].as_str().unwrap().to_string(), e))
        .collect();
    let missing: Vec<&String> = ids
        .iter()
        .filter(|id| !recorded.contains_key(*id))
        .collect();
    assert!(missing.is_empty(), "answered, not recorded: {missing:?}");
    assert!(recorded.values().all(|e| e["status"] == "resolved"));
    assert_eq!((recorded.len(), ids.len()), (224, 224));
}
