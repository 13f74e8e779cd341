//! Secrets by reference from SSM Parameter Store and Secrets Manager (inbound.md
//! §1), on moto: through `hookflow serve` pointed at the endpoint, and through the
//! webhook Lambda's handler.

use std::sync::Arc;

use aws_sdk_ssm::types::ParameterType;
use hookflow::model::SignatureConfig;
use hookflow::ports::aws;
use hookflow::wiring::{AwsEnv, Settings};
use hookflow_tests::{Server, client, hookflow, moto_endpoint, unique_name};
use serde_json::{Value, json};

const GH: &str = "gh-from-ssm-71c2";
const STRIPE: &str = "whsec_from-secrets-manager-0b5e";

/// An SSM SecureString and a JSON secret in Secrets Manager; their names.
async fn put_secrets() -> (String, String) {
    let config = aws::load_config().await;
    let parameter = format!("/hookflow-test/{}", unique_name("github"));
    aws_sdk_ssm::Client::new(&config)
        .put_parameter()
        .name(&parameter)
        .value(GH)
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let secret = unique_name("hookflow-secrets");
    aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name(&secret)
        .secret_string(json!({"stripe": STRIPE, "other": "x"}).to_string())
        .send()
        .await
        .unwrap();
    (parameter, secret)
}

fn workflows(parameter: &str, secret: &str) -> Vec<Value> {
    vec![
        json!({"key": "gh-ssm", "sync": true, "trigger": {"type": "webhook", "hookId": "gh-ssm",
            "signature": {"preset": "github", "secret": {"ssm": parameter}}},
            "nodes": [{"key": "ok", "type": "response", "config": {"statusCode": 200, "body": "verified"}}]}),
        json!({"key": "stripe-sm", "sync": true, "trigger": {"type": "webhook", "hookId": "stripe-sm",
            "signature": {"preset": "stripe", "secret": {"secretsManager": secret, "key": "stripe"}}},
            "nodes": [{"key": "ok", "type": "response", "config": {"statusCode": 200, "body": "verified"}}]}),
        json!({"key": "missing", "sync": true, "trigger": {"type": "webhook", "hookId": "missing",
            "signature": {"preset": "github", "secret": {"ssm": "/hookflow-test/not-there"}}}}),
    ]
}

fn signature(preset: &str, secret: &str, body: &[u8]) -> Vec<(String, String)> {
    let config: SignatureConfig =
        serde_json::from_value(json!({"preset": preset, "secret": "x"})).unwrap();
    hookflow::webhook::signature::sign(
        &config,
        secret,
        body,
        "",
        &[],
        chrono::Utc::now().timestamp(),
        "",
    )
    .unwrap()
}

const BODY: &[u8] = br#"{"id": "evt_1"}"#;

#[tokio::test]
async fn serve_reads_signature_secrets_from_ssm_and_secrets_manager() {
    let endpoint = moto_endpoint();
    let (parameter, secret) = put_secrets().await;
    let server = Server::start_with_env(
        &workflows(&parameter, &secret),
        &["--table", &unique_name("t"), "--queue", &unique_name("q")],
        &[("AWS_ENDPOINT_URL", &endpoint)],
    );
    for (hook, preset, value) in [("gh-ssm", "github", GH), ("stripe-sm", "stripe", STRIPE)] {
        let mut request = client()
            .post(server.hook_url(hook))
            .header("content-type", "application/json")
            .body(BODY);
        for (name, v) in signature(preset, value, BODY) {
            request = request.header(name, v);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{hook}");
        assert_eq!(response.text().await.unwrap(), "verified");
        let wrong = signature(preset, "not-it", BODY);
        let mut request = client()
            .post(server.hook_url(hook))
            .header("content-type", "application/json")
            .body(BODY);
        for (name, v) in wrong {
            request = request.header(name, v);
        }
        assert_eq!(request.send().await.unwrap().status(), 401, "{hook}");
    }
    let response = client()
        .post(server.hook_url("missing"))
        .header("content-type", "application/json")
        .body(BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let text = response.text().await.unwrap();
    assert!(text.contains("trigger.signature.secret"), "{text}");
}

#[tokio::test]
async fn the_webhook_lambda_reads_them_too() {
    moto_endpoint();
    let (parameter, secret) = put_secrets().await;
    let config = aws::load_config().await;
    let table = unique_name("hookflow");
    let client = aws::client(&config);
    aws::create_table(&client, &table).await.unwrap();
    let queue_url = aws::create_queue(&client, &unique_name("runs"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for w in workflows(&parameter, &secret) {
        let file = dir
            .path()
            .join(format!("{}.json", w["key"].as_str().unwrap()));
        std::fs::write(file, w.to_string()).unwrap();
    }
    let (ok, out, err) = hookflow(&["deploy", "--table", &table, dir.path().to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    // The stored definition keeps the reference, not the value.
    assert!(!out.contains(GH) && !err.contains(GH));
    let env = AwsEnv {
        table,
        queue_url,
        lane_queue_url: None,
        retention: None,
        bucket: None,
        max_message_bytes: hookflow::ports::aws::DEFAULT_MAX_MESSAGE_BYTES,
        settings: Settings::default(),
    };
    let app = env.app(Arc::clone(&client), client);
    for (hook, preset, value, status) in [
        ("gh-ssm", "github", GH, 200),
        ("stripe-sm", "stripe", STRIPE, 200),
        ("gh-ssm", "github", "not-it", 401),
        ("missing", "github", GH, 503),
    ] {
        let mut request = http::Request::builder()
            .method("POST")
            .uri(format!(
                "https://abc.execute-api.eu-west-1.amazonaws.com/api/webhook:trigger/{hook}"
            ))
            .header("content-type", "application/json");
        for (name, v) in signature(preset, value, BODY) {
            request = request.header(name, v);
        }
        let request = request
            .body(lambda_http::Body::Binary(BODY.to_vec()))
            .unwrap();
        let response = hookflow_webhook::handle(&app, request).await.unwrap();
        assert_eq!(
            response.status().as_u16(),
            status,
            "{hook} signed with {value}"
        );
    }
}
