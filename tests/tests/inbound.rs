//! Verified senders on a real `hookflow serve` (inbound.md §1–3): signature presets,
//! secrets by reference, form, multipart and text bodies, and no secret in any log
//! line or record.

use hookflow::model::SignatureConfig;
use hookflow::webhook::signature::sign;
use hookflow_tests::{Server, client, hookflow};
use serde_json::{Value, json};

const GH_SECRET: &str = "gh-secret-8f2d1c9a";
const GH_OLD: &str = "gh-old-secret-41be";
const SLACK_SECRET: &str = "slack-secret-77ab3e";
const TWILIO_TOKEN: &str = "twilio-token-5c0d2f";
const STRIPE_SECRET: &str = "whsec_stripe-secret-99e1";
const PASSWORD: &str = "basic-password-3a7d";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn workflows() -> Vec<Value> {
    vec![
        json!({"key": "github-push", "trigger": {"type": "webhook", "hookId": "gh",
            "signature": {"preset": "github", "secret": [{"env": "GH_SECRET"}, {"env": "GH_OLD"}]},
            "response": {"statusCode": 202, "body": {"executionId": "{{$system.executionId}}"}}},
            "nodes": [{"key": "ref", "type": "output", "config": {"value": "{{$context.body.ref}}"}}]}),
        json!({"key": "stripe-payment", "sync": true, "trigger": {"type": "webhook", "hookId": "stripe",
            "signature": {"preset": "stripe", "secret": {"env": "STRIPE_SECRET"}}},
            "nodes": [{"key": "ok", "type": "response", "config": {"statusCode": 200, "body": {"received": "{{$context.body.id}}"}}}]}),
        json!({"key": "slack-command", "sync": true, "trigger": {"type": "webhook", "hookId": "slack",
            "signature": {"preset": "slack", "secret": {"env": "SLACK_SECRET"}}},
            "nodes": [{"key": "answer", "type": "response", "config": {"statusCode": 200,
                "body": {"response_type": "in_channel", "text": "Ordered {{$context.body.text}} for {{$context.body.user_name}}"}}}]}),
        json!({"key": "twilio-sms", "sync": true, "trigger": {"type": "webhook", "hookId": "sms",
            "signature": {"preset": "twilio", "secret": {"env": "TWILIO_TOKEN"}}},
            "nodes": [{"key": "reply", "type": "response", "config": {"statusCode": 200,
                "headers": [{"name": "content-type", "value": "text/xml"}],
                "body": "<Response><Message>Got: {{$context.body.Body}}</Message></Response>"}}]}),
        json!({"key": "unset", "sync": true, "trigger": {"type": "webhook", "hookId": "unset",
            "signature": {"preset": "github", "secret": {"env": "NOT_SET_ANYWHERE"}}}}),
        json!({"key": "basic", "sync": true, "trigger": {"type": "webhook", "hookId": "basic",
            "basicAuthentication": {"username": "ci", "password": {"env": "HOOK_PASSWORD"}},
            "request": {"rawBody": true}},
            "nodes": [{"key": "echo", "type": "response", "config": {"statusCode": 200,
                "body": {"body": "{{$context.body}}", "raw": "{{$context.rawBody}}", "files": "{{$context.files}}"}}}]}),
    ]
}

fn start() -> Server {
    Server::start_logged(
        &workflows(),
        &[],
        &[
            ("GH_SECRET", GH_SECRET),
            ("GH_OLD", GH_OLD),
            ("SLACK_SECRET", SLACK_SECRET),
            ("TWILIO_TOKEN", TWILIO_TOKEN),
            ("STRIPE_SECRET", STRIPE_SECRET),
            ("HOOK_PASSWORD", PASSWORD),
        ],
    )
}

fn signed_headers(
    preset: Value,
    secret: &str,
    body: &[u8],
    url: &str,
    form: &[(String, String)],
    at: i64,
) -> Vec<(String, String)> {
    let config: SignatureConfig =
        serde_json::from_value(json!({"preset": preset, "secret": "x"})).unwrap();
    sign(&config, secret, body, url, form, at, "msg_1").unwrap()
}

async fn post(
    url: &str,
    content_type: &str,
    body: &[u8],
    headers: &[(String, String)],
) -> (u16, String) {
    let mut request = client()
        .post(url)
        .header("content-type", content_type)
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn signed_senders_run_and_everything_else_is_refused_without_a_run_or_a_leak() {
    let server = start();
    let gh = server.hook_url("gh");
    let push = br#"{"ref": "refs/heads/main"}"#;

    // GitHub: the current secret, the old one (rotation), then refusals.
    let current = signed_headers(json!("github"), GH_SECRET, push, "", &[], 0);
    let (status, body) = post(&gh, "application/json", push, &current).await;
    assert_eq!(status, 202, "{body}");
    let first: Value = serde_json::from_str(&body).unwrap();
    let old = signed_headers(json!("github"), GH_OLD, push, "", &[], 0);
    assert_eq!(post(&gh, "application/json", push, &old).await.0, 202);
    let tampered = br#"{"ref": "refs/heads/evil"}"#;
    let (status, body) = post(&gh, "application/json", tampered, &current).await;
    assert_eq!(
        (status, body.contains("does not match")),
        (401, true),
        "{body}"
    );
    let wrong = signed_headers(json!("github"), "not-the-secret", push, "", &[], 0);
    assert_eq!(post(&gh, "application/json", push, &wrong).await.0, 401);
    let (status, body) = post(&gh, "application/json", push, &[]).await;
    assert_eq!(status, 401);
    assert!(body.contains("x-hub-signature-256 is missing"), "{body}");
    let malformed = vec![("X-Hub-Signature-256".to_string(), "md5=abc".to_string())];
    assert_eq!(post(&gh, "application/json", push, &malformed).await.0, 401);
    let run = server.wait_for_execution(first["executionId"].as_str().unwrap(), "resolved");
    assert_eq!(run["output"], json!("refs/heads/main"));

    // Stripe: signed now passes; signed ten minutes ago does not (ahead does, as
    // Stripe's own libraries accept it: tests/tests/official_sdks.rs).
    let event = br#"{"id": "evt_1", "type": "payment_intent.succeeded"}"#;
    let stripe = server.hook_url("stripe");
    let fresh = signed_headers(json!("stripe"), STRIPE_SECRET, event, "", &[], now());
    let (status, body) = post(&stripe, "application/json", event, &fresh).await;
    assert_eq!((status, body.as_str()), (200, r#"{"received":"evt_1"}"#));
    for skew in [-600] {
        let stale = signed_headers(json!("stripe"), STRIPE_SECRET, event, "", &[], now() + skew);
        let (status, body) = post(&stripe, "application/json", event, &stale).await;
        assert_eq!(status, 401);
        assert!(body.contains("outside the accepted window"), "{body}");
    }

    // Slack: a slash command (a form body), answered in the channel.
    let command = b"command=%2Forder&text=2+pizzas&user_name=ann&team_id=T1";
    let slack = signed_headers(json!("slack"), SLACK_SECRET, command, "", &[], now());
    let (status, body) = post(
        &server.hook_url("slack"),
        "application/x-www-form-urlencoded",
        command,
        &slack,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"response_type": "in_channel", "text": "Ordered 2 pizzas for ann"})
    );

    // Twilio: the URL as received (http, Host, path) and the sorted form fields.
    let sms_url = server.hook_url("sms");
    let form = b"From=%2B15551234567&Body=Hello+there&To=%2B15557654321";
    let fields: Vec<(String, String)> = vec![
        ("From".into(), "+15551234567".into()),
        ("Body".into(), "Hello there".into()),
        ("To".into(), "+15557654321".into()),
    ];
    let twilio = signed_headers(json!("twilio"), TWILIO_TOKEN, form, &sms_url, &fields, 0);
    let (status, body) = post(&sms_url, "application/x-www-form-urlencoded", form, &twilio).await;
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "<Response><Message>Got: Hello there</Message></Response>"
        )
    );
    let other_field = b"From=%2B15551234567&Body=Hello+there&To=%2B15550000000";
    assert_eq!(
        post(
            &sms_url,
            "application/x-www-form-urlencoded",
            other_field,
            &twilio
        )
        .await
        .0,
        401
    );

    // A reference that cannot be resolved: 503 naming where, no run.
    let (status, body) = post(
        &server.hook_url("unset"),
        "application/json",
        push,
        &current,
    )
    .await;
    assert_eq!(status, 503);
    assert!(body.contains("trigger.signature.secret"), "{body}");

    // Basic auth with its password by reference.
    let basic = |password: &str| {
        use base64::Engine as _;
        vec![(
            "authorization".to_string(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("ci:{password}"))
            ),
        )]
    };
    assert_eq!(
        post(
            &server.hook_url("basic"),
            "text/plain",
            b"hi",
            &basic("wrong")
        )
        .await
        .0,
        401
    );
    let (status, body) = post(
        &server.hook_url("basic"),
        "text/plain",
        b"hi",
        &basic(PASSWORD),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["raw"],
        json!("hi")
    );

    // Only the signed runs ran: 2 GitHub pushes, Stripe, Slack, Twilio, Basic.
    // (The second push runs in the background: waited for until it is recorded.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let executions = loop {
        let all = server.executions(None);
        if all.len() >= 6 || std::time::Instant::now() > deadline {
            break all;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut keys: Vec<&str> = executions
        .iter()
        .map(|e| e["workflowKey"].as_str().unwrap())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "basic",
            "github-push",
            "github-push",
            "slack-command",
            "stripe-payment",
            "twilio-sms"
        ]
    );

    // No secret value in any log line, record, or CLI output.
    let data = server.data_dir();
    let (_, listed, _) = hookflow(&["executions", "list", "--data", data.to_str().unwrap()]);
    let mut everything = server.log() + &listed + &serde_json::to_string(&executions).unwrap();
    for e in &executions {
        let (_, shown, _) = hookflow(&[
            "executions",
            "show",
            e["id"].as_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ]);
        everything += &shown;
    }
    assert!(
        server.log().contains("signature refused"),
        "refusals are logged"
    );
    for secret in [
        GH_SECRET,
        GH_OLD,
        SLACK_SECRET,
        TWILIO_TOKEN,
        STRIPE_SECRET,
        PASSWORD,
    ] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
}

#[tokio::test]
async fn multipart_bodies_and_their_files() {
    let server = start();
    use base64::Engine as _;
    let auth = vec![(
        "authorization".to_string(),
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("ci:{PASSWORD}"))
        ),
    )];
    let body = "--b0undary\r\nContent-Disposition: form-data; name=\"order[id]\"\r\n\r\nA-7\r\n\
                --b0undary\r\nContent-Disposition: form-data; name=\"receipt\"; filename=\"r.txt\"\r\nContent-Type: text/plain\r\n\r\npaid\r\n\
                --b0undary--\r\n";
    let (status, answer) = post(
        &server.hook_url("basic"),
        "multipart/form-data; boundary=b0undary",
        body.as_bytes(),
        &auth,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["body"], json!({"order": {"id": "A-7"}}));
    assert_eq!(
        answer["files"],
        json!([{"field": "receipt", "filename": "r.txt", "contentType": "text/plain", "size": 4, "contentBase64": "cGFpZA=="}])
    );
    let (status, answer) = post(
        &server.hook_url("basic"),
        "multipart/form-data; boundary=b0undary",
        b"--b0undary\r\nbroken",
        &auth,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("multipart body is broken"), "{answer}");
}
