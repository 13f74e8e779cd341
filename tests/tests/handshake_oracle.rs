//! A handshake never signs, with a secret that signs bodies, a text the caller
//! chose (issue 23, item 1). X gives the CRC and its event signature one consumer
//! secret; the attack: ask the CRC for `HMAC(secret, M)` where `M` is the message a
//! body-signature preset signs for a body of the attacker's choice, then post that
//! body with the answer, re-encoded as the preset writes it. Replayed on a real
//! `hookflow serve` for every body-HMAC preset, and on definitions deployed before
//! `validate` refused the dangerous combinations.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hookflow::model::WorkflowDefinition;
use hookflow::wiring::{App, Settings};
use hookflow_tests::{Server, client};
use serde_json::{Value, json};

/// X's consumer secret, also used as the body-signing secret (X's own case).
const X_SECRET: &str = "x-consumer-secret";

/// A body-HMAC preset as the attacker targets it: the signature config, the
/// message it signs for `body` at `ts`, and the headers that carry a CRC answer
/// (`sha256=<base64>`) as that preset's signature.
struct Target {
    preset: &'static str,
    signature: Value,
    message: fn(&str, i64) -> String,
    headers: fn(&[u8], i64) -> Headers,
}

type Headers = Vec<(String, String)>;

const DELIVERY_ID: &str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f1W";

fn targets() -> Vec<Target> {
    let secret = json!({"env": "X_SECRET"});
    vec![
        Target {
            preset: "hmac",
            // As X signs its events: x-twitter-webhooks-signature: sha256=<base64>.
            signature: json!({"preset": "hmac", "header": "x-twitter-webhooks-signature",
                "encoding": "base64", "prefix": "sha256=", "secret": secret}),
            message: |body, _| body.to_string(),
            headers: |mac, _| {
                vec![(
                    "x-twitter-webhooks-signature".into(),
                    format!("sha256={}", STANDARD.encode(mac)),
                )]
            },
        },
        Target {
            preset: "github",
            signature: json!({"preset": "github", "secret": secret}),
            message: |body, _| body.to_string(),
            headers: |mac, _| {
                vec![(
                    "x-hub-signature-256".into(),
                    format!("sha256={}", hex::encode(mac)),
                )]
            },
        },
        Target {
            preset: "shopify",
            signature: json!({"preset": "shopify", "secret": secret}),
            message: |body, _| body.to_string(),
            headers: |mac, _| vec![("x-shopify-hmac-sha256".into(), STANDARD.encode(mac))],
        },
        Target {
            preset: "stripe",
            signature: json!({"preset": "stripe", "secret": secret}),
            message: |body, ts| format!("{ts}.{body}"),
            headers: |mac, ts| {
                vec![(
                    "stripe-signature".into(),
                    format!("t={ts},v1={}", hex::encode(mac)),
                )]
            },
        },
        Target {
            preset: "slack",
            signature: json!({"preset": "slack", "secret": secret}),
            message: |body, ts| format!("v0:{ts}:{body}"),
            headers: |mac, ts| {
                vec![
                    ("x-slack-request-timestamp".into(), ts.to_string()),
                    (
                        "x-slack-signature".into(),
                        format!("v0={}", hex::encode(mac)),
                    ),
                ]
            },
        },
        Target {
            preset: "standard-webhooks",
            // `whsec_<base64 of the key>`: the very key the CRC signs with, though
            // the two secrets are not the same text.
            signature: json!({"preset": "standard-webhooks", "secret": {"env": "X_WHSEC"}}),
            message: |body, ts| format!("{DELIVERY_ID}.{ts}.{body}"),
            headers: |mac, ts| {
                vec![
                    ("webhook-id".into(), DELIVERY_ID.into()),
                    ("webhook-timestamp".into(), ts.to_string()),
                    (
                        "webhook-signature".into(),
                        format!("v1,{}", STANDARD.encode(mac)),
                    ),
                ]
            },
        },
    ]
}

fn hook_id(preset: &str) -> String {
    format!("x-{preset}")
}

/// A sync workflow whose 200 says it ran.
fn workflow(key: &str, hook: &str, trigger_extra: Value) -> Value {
    let mut trigger = json!({"type": "webhook", "hookId": hook});
    for (k, v) in trigger_extra.as_object().unwrap() {
        trigger[k] = v.clone();
    }
    json!({"key": key, "sync": true, "trigger": trigger,
        "nodes": [{"key": "ok", "type": "response",
            "config": {"statusCode": 200, "body": {"ran": "{{$context.body}}"}}}]})
}

fn start() -> Server {
    let workflows: Vec<Value> = targets()
        .iter()
        .map(|t| {
            workflow(
                &hook_id(t.preset),
                &hook_id(t.preset),
                json!({"handshake": {"preset": "crc", "secret": {"env": "X_SECRET"}},
                    "signature": t.signature}),
            )
        })
        .collect();
    let whsec = format!("whsec_{}", STANDARD.encode(X_SECRET));
    Server::start_with_env(
        &workflows,
        &[],
        &[("X_SECRET", X_SECRET), ("X_WHSEC", whsec.as_str())],
    )
}

struct Answer {
    status: u16,
    body: String,
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.unwrap();
    Answer {
        status: response.status().as_u16(),
        body: response.text().await.unwrap(),
    }
}

async fn crc(server_hook: &str, token: &str) -> Answer {
    let token: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    send(client().get(format!("{server_hook}?crc_token={token}"))).await
}

async fn post(url: &str, body: &str, headers: &[(String, String)]) -> Answer {
    let mut request = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    send(request).await
}

/// The MAC inside a CRC answer `{"response_token": "sha256=<base64>"}`.
fn mac_of(answer: &Answer) -> Vec<u8> {
    let token: Value = serde_json::from_str(&answer.body).unwrap();
    let encoded = token["response_token"]
        .as_str()
        .and_then(|t| t.strip_prefix("sha256="))
        .unwrap_or_else(|| panic!("not a CRC answer: {}", answer.body));
    STANDARD.decode(encoded).unwrap()
}

#[tokio::test]
async fn no_crc_answer_serves_as_a_body_signature_for_any_preset_and_x_still_works() {
    let server = start();
    let now = chrono::Utc::now().timestamp();
    for target in targets() {
        let url = server.hook_url(&hook_id(target.preset));
        // The attacker's JSON object: every message signed for it holds a '{',
        // which no CRC token may.
        let object = r#"{"amount":1000000,"to":"attacker"}"#;
        let answer = crc(&url, &(target.message)(object, now)).await;
        assert_eq!(answer.status, 400, "{}: {}", target.preset, answer.body);
        assert!(!answer.body.contains("sha256="), "{}", answer.body);

        // A body without '{' gets its CRC answer, but is no event this hook
        // accepts, however well signed.
        let array = r#"["attacker"]"#;
        let answer = crc(&url, &(target.message)(array, now)).await;
        assert_eq!(answer.status, 200, "{}: {}", target.preset, answer.body);
        let forged = post(&url, array, &(target.headers)(&mac_of(&answer), now)).await;
        assert_eq!(forged.status, 401, "{}: {}", target.preset, forged.body);
    }
    for target in targets() {
        let key = hook_id(target.preset);
        assert_eq!(server.executions(Some(&key)), Vec::<Value>::new(), "{key}");
    }

    // X itself still passes its CRC and delivers its events.
    let url = server.hook_url("x-hmac");
    // The expected value computed apart, with Python's hmac module.
    let answer = crc(&url, "crc-token-123").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        serde_json::from_str::<Value>(&answer.body).unwrap(),
        json!({"response_token": "sha256=YUsT0aLbF0VtFGcLCND1EU/aQP0sjPL19cPulVY7Wes="})
    );
    // An event as X signs it: sha256=base64(HMAC-SHA256(consumer secret, body)),
    // computed apart with Python's hmac module.
    let event = r#"{"for_user_id":"2244994945","tweet_create_events":[]}"#;
    let signature = "sha256=a4IB6Y3qNL32PivQfuAjSp1JuTxZnTUdUG9TDH8lQ3I=";
    let delivered = post(
        &url,
        event,
        &[("x-twitter-webhooks-signature".into(), signature.into())],
    )
    .await;
    assert_eq!(delivered.status, 200, "{}", delivered.body);
    assert_eq!(
        serde_json::from_str::<Value>(&delivered.body).unwrap()["ran"]["for_user_id"],
        "2244994945"
    );
    assert_eq!(server.executions(Some("x-hmac")).len(), 1);
}

/// A definition deployed before `validate` refused these combinations (it reads
/// from the store as it was written): the handshake still signs nothing a caller
/// chose with a body-signing secret.
async fn app_with_unchecked(dir: &Path, documents: &[Value]) -> App {
    let app = hookflow_tests::inproc::app(dir, &[], &Settings::default(), None).await;
    for document in documents {
        let definition: WorkflowDefinition = serde_json::from_value(document.clone()).unwrap();
        hookflow::app::deploy::deploy(app.store.as_ref(), &app.node_types, definition)
            .await
            .unwrap();
    }
    app
}

fn request(method: &str, uri: &str, body: &str) -> http::Request<bytes::Bytes> {
    http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(bytes::Bytes::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn handshakes_deployed_before_the_check_sign_nothing_a_caller_chose() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_unchecked(
        dir.path(),
        &[
            // The crc secret left out: it used to fall back to the signature's.
            workflow(
                "crc-fallback",
                "crc-fallback",
                json!({"handshake": {"preset": "crc"},
                    "signature": {"preset": "github", "secret": X_SECRET}}),
            ),
            // A zoom handshake with no signature to check first.
            workflow(
                "zoom-unsigned",
                "zoom-unsigned",
                json!({"handshake": {"preset": "zoom", "secret": X_SECRET}}),
            ),
            // As validate wants it: Zoom's signature checked before its check is
            // answered.
            workflow(
                "zoom",
                "zoom",
                json!({"handshake": {"preset": "zoom"}, "signature": zoom_signature()}),
            ),
        ],
    )
    .await;
    let body = r#"["forged"]"#;
    let crc = app
        .webhook
        .handle(request(
            "GET",
            &format!(
                "/api/webhook:trigger/crc-fallback?crc_token={}",
                url::form_urlencoded::byte_serialize(body.as_bytes()).collect::<String>()
            ),
            "",
        ))
        .await;
    assert_eq!(crc.status(), 403);
    assert!(!String::from_utf8_lossy(crc.body()).contains("sha256="));

    let check = r#"{"payload":{"plainToken":"v0:1700000000:[\"forged\"]"},"event":"endpoint.url_validation"}"#;
    let zoom = app
        .webhook
        .handle(request("POST", "/api/webhook:trigger/zoom-unsigned", check))
        .await;
    assert_eq!(zoom.status(), 401);
    assert!(!String::from_utf8_lossy(zoom.body()).contains("encryptedToken"));

    // Zoom's own check (its documentation's plain token), unsigned then signed.
    let check = r#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
    let unsigned = app
        .webhook
        .handle(request("POST", "/api/webhook:trigger/zoom", check))
        .await;
    assert_eq!(unsigned.status(), 401);
    assert!(!String::from_utf8_lossy(unsigned.body()).contains("encryptedToken"));
    let config = serde_json::from_value(zoom_signature()).unwrap();
    let now = chrono::Utc::now().timestamp();
    let headers =
        hookflow::webhook::signature::sign(&config, X_SECRET, check.as_bytes(), "", &[], now, "")
            .unwrap();
    let mut signed = request("POST", "/api/webhook:trigger/zoom", check);
    for (name, value) in headers {
        signed.headers_mut().insert(
            http::HeaderName::try_from(name).unwrap(),
            value.parse().unwrap(),
        );
    }
    let answer = app.webhook.handle(signed).await;
    assert_eq!(answer.status(), 200);
    let answer: Value = serde_json::from_slice(answer.body()).unwrap();
    assert_eq!(answer["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
}

/// Zoom's scheme: `x-zm-signature: v0=hex(HMAC-SHA256(secret, "v0:{ts}:{body}"))`.
fn zoom_signature() -> Value {
    json!({"preset": "hmac", "header": "x-zm-signature", "prefix": "v0=",
        "timestampHeader": "x-zm-request-timestamp", "signedPayload": "v0:{timestamp}:{body}",
        "secret": X_SECRET})
}
