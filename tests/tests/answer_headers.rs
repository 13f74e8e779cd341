//! Every answer of the webhook endpoint, on a real `hookflow serve`, tells a
//! browser not to sniff it and to sandbox it (`X-Content-Type-Options: nosniff`,
//! `Content-Security-Policy: sandbox`): the endpoint shares its origin with the
//! viewer, so a sync workflow echoing a caller's HTML must not run as a page of
//! that origin. A workflow that sets these headers itself keeps its own.

use hookflow_tests::{Server, client};
use serde_json::json;

const PASSWORD: &str = "p4ss";

fn start() -> Server {
    let html = |key: &str, headers: serde_json::Value| {
        json!({"key": key, "sync": true, "trigger": {"type": "webhook", "hookId": key,
            "request": {"query": [{"key": "name"}]}},
            "nodes": [{"key": "page", "type": "response", "config": {"statusCode": 200,
                "headers": headers, "body": "<h1>Hello {{$context.query.name}}</h1>"}}]})
    };
    let workflows = [
        html(
            "page",
            json!([{"name": "Content-Type", "value": "text/html"}]),
        ),
        html(
            "own-policy",
            json!([{"name": "Content-Type", "value": "text/html"},
                   {"name": "Content-Security-Policy", "value": "default-src 'none'; img-src https:"}]),
        ),
        json!({"key": "queued", "trigger": {"type": "webhook", "hookId": "queued",
            "response": {"statusCode": 202, "body": {"id": "{{$system.executionId}}"}}}}),
        json!({"key": "locked", "trigger": {"type": "webhook", "hookId": "locked",
            "basicAuthentication": {"username": "u", "password": {"env": "HOOK_PASSWORD"}}}}),
        json!({"key": "dropbox", "trigger": {"type": "webhook", "hookId": "dbx",
            "handshake": {"preset": "dropbox"}}}),
    ];
    Server::start_with_env(&workflows, &[], &[("HOOK_PASSWORD", PASSWORD)])
}

/// `(status, x-content-type-options, content-security-policy)` of an answer.
async fn guards(request: reqwest::RequestBuilder) -> (u16, String, String) {
    let answer = request.send().await.unwrap();
    let header = |name: &str| {
        let values: Vec<&str> = answer
            .headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        values.join(" | ")
    };
    (
        answer.status().as_u16(),
        header("x-content-type-options"),
        header("content-security-policy"),
    )
}

fn sandboxed(status: u16) -> (u16, String, String) {
    (status, "nosniff".into(), "sandbox".into())
}

#[tokio::test]
async fn every_kind_of_answer_is_sandboxed_by_default() {
    let server = start();
    let http = client();
    let script = "%3Cscript%3Efetch('/ui')%3C/script%3E";
    let page = format!("{}?name={script}", server.hook_url("page"));
    assert_eq!(
        guards(http.post(&page).json(&json!({}))).await,
        sandboxed(200)
    );
    assert_eq!(
        guards(http.post(server.hook_url("queued")).json(&json!({}))).await,
        sandboxed(202)
    );
    assert_eq!(
        guards(http.post(server.hook_url("locked")).json(&json!({}))).await,
        sandboxed(401)
    );
    assert_eq!(
        guards(http.get(format!("{}?challenge=c-9", server.hook_url("dbx")))).await,
        sandboxed(200)
    );
    assert_eq!(
        guards(http.post(server.hook_url("no-such-hook"))).await,
        sandboxed(404)
    );
}

#[tokio::test]
async fn a_workflow_that_sets_its_own_policy_keeps_it() {
    let server = start();
    let url = format!("{}?name=Ann", server.hook_url("own-policy"));
    assert_eq!(
        guards(client().post(url).json(&json!({}))).await,
        (
            200,
            "nosniff".into(),
            "default-src 'none'; img-src https:".into()
        )
    );
}
