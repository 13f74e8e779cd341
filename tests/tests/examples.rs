//! The example workflows, served by the real `hookflow serve`: every data and
//! integration node answers through HTTP as the README promises.

use std::time::Duration;

use hookflow_tests::{Server, client, recording_server};
use serde_json::{Value, json};

fn example(name: &str) -> Value {
    let path = format!("{}/../examples/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn order_pricing_calculates_and_dates() {
    let server = Server::start(&[example("order-pricing.json")]);
    let r = client()
        .post(server.hook_url("order-pricing-8d2f"))
        .json(&json!({"price": "19.99", "qty": 6, "orderedAt": "2026-11-28T10:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"subtotal": 119.94, "discount": 11.99, "payBy": "2026-12-28"})
    );
}

#[tokio::test]
async fn chat_event_queries_maps_and_scripts() {
    let server = Server::start(&[example("chat-event-mapping.json")]);
    let event = json!({"event": {"type": "message", "channel": "C1", "text": "Prod is DOWN urgent",
        "blocks": [{"type": "mention", "user": "U1"}, {"type": "text"}, {"type": "mention", "user": "U2"}]}});
    let r = client()
        .post(server.hook_url("chat-event-41c7"))
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"channel": "C1", "mentioned": [{"user": "U1"}, {"user": "U2"}], "urgency": {"score": 2, "page": true}})
    );
    let executions = server.executions(Some("chat-event"));
    let script_job = executions[0]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["nodeKey"] == "urgency")
        .unwrap()
        .clone();
    assert_eq!(script_job["log"], json!(["urgency score 2"]));
}

#[tokio::test]
async fn forward_posts_to_the_configured_service() {
    let (target, requests) = recording_server();
    let url = format!("{target}/inbound");
    let server = Server::start_with_env(
        &[example("forward-to-service.json")],
        &["--expose-env", "FORWARD_URL", "--allow-loopback-requests"],
        &[("FORWARD_URL", &url), ("NOT_EXPOSED", "secret")],
    );
    let r = client()
        .post(server.hook_url("forward-6e90"))
        .header("x-request-id", "req-9")
        .json(&json!({"invoice": "INV-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
    let raw = requests
        .recv_timeout(Duration::from_secs(10))
        .expect("the service got the request");
    assert!(
        raw.starts_with("POST /inbound?source=hookflow HTTP/1.1"),
        "{raw}"
    );
    assert!(
        raw.to_ascii_lowercase().contains("x-request-id: req-9"),
        "{raw}"
    );
    let body: Value = serde_json::from_str(&raw[raw.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(body["received"], json!({"invoice": "INV-1"}));
    let executions = server.executions(Some("forward"));
    let id = executions[0]["id"].as_str().unwrap();
    let execution = server.wait_for_execution(id, "resolved");
    assert_eq!(execution["output"], json!({"status": 200}));
}

#[tokio::test]
async fn http_nodes_are_refused_loopback_unless_allowed() {
    let (target, requests) = recording_server();
    let server = Server::start_with_env(
        &[example("forward-to-service.json")],
        &["--expose-env", "FORWARD_URL"],
        &[("FORWARD_URL", &format!("{target}/inbound"))],
    );
    let r = client()
        .post(server.hook_url("forward-6e90"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = loop {
        if let Some(e) = server.executions(Some("forward")).first() {
            break e["id"].as_str().unwrap().to_string();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let execution = server.wait_for_execution(&id, "failed");
    assert!(
        execution["jobs"][0]["result"]["message"]
            .as_str()
            .unwrap()
            .contains("loopback")
    );
    assert!(requests.try_recv().is_err(), "nothing reached the service");
}

#[tokio::test]
async fn order_fulfilment_loops_routes_and_checks_in_parallel() {
    let server = Server::start(&[example("order-fulfilment.json")]);
    let order = json!({"email": "ann@example.com", "items": [{"sku": "a", "qty": 4}, {"sku": "b", "qty": 8}]});
    let r = client()
        .post(server.hook_url("order-fulfilment-2b7a"))
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"units": 12, "route": 2, "checks": ["resolved", "resolved"], "inStock": true})
    );
    let execution = &server.executions(Some("order-fulfilment"))[0];
    let adds = execution["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["nodeKey"] == "add-units")
        .count();
    assert_eq!(adds, 2, "one job per loop iteration");
}

#[tokio::test]
async fn invoice_total_calls_tax_rules_as_a_subflow() {
    let server = Server::start(&[example("tax-rules.json"), example("invoice-total.json")]);
    let r = client()
        .post(server.hook_url("invoice-total-7a1e"))
        .json(&json!({"amount": 100, "country": "DE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"net": 100, "tax": 19, "total": 119}));
    let parent = &server.executions(Some("invoice-total"))[0];
    let child = &server.executions(Some("tax-rules"))[0];
    assert_eq!(child["parentExecutionId"], parent["id"]);
    assert_eq!(child["output"], json!({"tax": 19}));
}

#[tokio::test]
async fn cart_reminder_waits_then_reminds() {
    let server = Server::start(&[example("cart-reminder.json")]);
    let r = client()
        .post(server.hook_url("cart-reminder-5d1e8b3a90"))
        .json(&json!({"cart": {"id": "c-9", "items": 2}, "customer": {"email": "bo@example.com"}, "remindInSeconds": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["scheduled"], true);
    let id = body["executionId"].as_str().unwrap();
    let done = server.wait_for_execution(id, "resolved");
    assert_eq!(
        done["output"],
        json!({"to": "bo@example.com", "cart": "c-9", "message": "You left 2 item(s) in your cart"})
    );
    assert_eq!(done["jobs"][0]["nodeKey"], "wait");
    assert_eq!(done["jobs"][0]["status"], "resolved");
}

/// The five provider examples, each sent one delivery signed as its provider signs
/// it (with `hookflow sign`'s code), and one unsigned.
#[tokio::test]
async fn provider_examples_answer_signed_deliveries_only() {
    use hookflow::model::SignatureConfig;
    let server = Server::start_with_env(
        &[
            example("github-push.json"),
            example("stripe-payment.json"),
            example("slack-command.json"),
            example("twilio-sms.json"),
            example("shopify-order.json"),
        ],
        &[],
        &[
            ("GITHUB_WEBHOOK_SECRET", "gh-example"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_example"),
            ("SLACK_SIGNING_SECRET", "slack-example"),
            ("TWILIO_AUTH_TOKEN", "twilio-example"),
            ("SHOPIFY_WEBHOOK_SECRET", "shopify-example"),
        ],
    );
    let now = chrono::Utc::now().timestamp();
    // (preset, secret, hook, content type, body, status, part of the answer)
    type Case<'a> = (&'a str, &'a str, &'a str, &'a str, &'a [u8], u16, &'a str);
    let cases: [Case; 5] = [
        ("github", "gh-example", "github-push-7d2c41", "application/json",
            br#"{"ref": "refs/heads/main", "after": "abc123", "repository": {"full_name": "acme/shop"}, "pusher": {"name": "ann"}}"#,
            202, "queued"),
        ("stripe", "whsec_example", "stripe-payment-3b9e07", "application/json",
            br#"{"id": "evt_9", "type": "payment_intent.succeeded", "data": {"object": {"amount_received": 1999}}}"#,
            200, r#"{"received":"evt_9","paid":1999}"#),
        ("slack", "slack-example", "slack-command-5e81aa", "application/x-www-form-urlencoded",
            b"command=%2Forder&text=two+pizzas&user_id=U42", 200,
            r#"{"response_type":"in_channel","text":"<@U42> ordered two pizzas"}"#),
        ("twilio", "twilio-example", "twilio-sms-0c6f19", "application/x-www-form-urlencoded",
            b"From=%2B15551234567&Body=Is+my+order+ready%3F", 200, "Thanks, we got: Is my order ready?"),
        ("shopify", "shopify-example", "shopify-order-91d3f5", "application/json",
            br##"{"name": "#1001", "total_price": "42.00", "line_items": [{}, {}]}"##, 200, ""),
    ];
    for (preset, secret, hook, content_type, body, status, answer) in cases {
        let url = server.hook_url(hook);
        let config: SignatureConfig =
            serde_json::from_value(json!({"preset": preset, "secret": "x"})).unwrap();
        let form: Vec<(String, String)> = if content_type.contains("form") {
            url_form(body)
        } else {
            Vec::new()
        };
        let headers =
            hookflow::webhook::signature::sign(&config, secret, body, &url, &form, now, "m")
                .unwrap();
        let unsigned = client()
            .post(&url)
            .header("content-type", content_type)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(unsigned.status(), 401, "{preset} unsigned");
        let mut request = client()
            .post(&url)
            .header("content-type", content_type)
            .body(body.to_vec());
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{preset}");
        let text = response.text().await.unwrap();
        assert!(text.contains(answer), "{preset}: {text}");
    }
    // The async ones ran (in the background: looked for until they are recorded):
    // the push asks for a deploy, the order is summarised.
    let deploy = server.wait_for_execution(&run_of(&server, "github-push"), "resolved");
    assert_eq!(
        deploy["output"],
        json!({"repository": "acme/shop", "commit": "abc123", "pusher": "ann", "delivery": null})
    );
    let order = server.wait_for_execution(&run_of(&server, "shopify-order"), "resolved");
    assert_eq!(
        order["jobs"][0]["result"],
        json!({"order": "#1001", "total": "42.00", "items": 2})
    );

    // Stripe retries an event it thinks was not received: answered as the first
    // time, and not run again.
    let event = br#"{"id": "evt_9", "type": "payment_intent.succeeded", "data": {"object": {"amount_received": 1999}}}"#;
    let (status, replayed, text) = signed_post(
        &server,
        "stripe",
        "whsec_example",
        "stripe-payment-3b9e07",
        event,
    )
    .await;
    assert_eq!((status, replayed), (200, true));
    assert_eq!(text, r#"{"received":"evt_9","paid":1999}"#);
    assert_eq!(server.executions(Some("stripe-payment")).len(), 1);
}

/// Posts `body` as JSON, signed for `preset`; the status, whether it was a replay,
/// and the answer.
async fn signed_post(
    server: &Server,
    preset: &str,
    secret: &str,
    hook: &str,
    body: &[u8],
) -> (u16, bool, String) {
    let config: hookflow::model::SignatureConfig = serde_json::from_value(
        json!({"preset": preset, "secret": "x", "header": "X-Hub-Signature-256", "prefix": "sha256="}),
    )
    .unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut request = client()
        .post(server.hook_url(hook))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in
        hookflow::webhook::signature::sign(&config, secret, body, "", &[], now, "m").unwrap()
    {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let replayed = response.headers().contains_key("idempotent-replayed");
    (
        response.status().as_u16(),
        replayed,
        response.text().await.unwrap(),
    )
}

/// Meta verifies the WhatsApp hook with a GET, then sends signed messages; a
/// message sent twice is read once.
#[tokio::test]
async fn the_whatsapp_example_answers_metas_check_and_reads_each_message_once() {
    let server = Server::start_with_env(
        &[example("whatsapp-message.json")],
        &[],
        &[
            ("META_VERIFY_TOKEN", "verify-me-42"),
            ("META_APP_SECRET", "meta-app-secret"),
        ],
    );
    let hook = "whatsapp-message-4f7a20";
    let check = client()
        .get(format!(
            "{}?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=verify-me-42",
            server.hook_url(hook)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), 200);
    assert_eq!(check.text().await.unwrap(), "1158201444");
    let message = br#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=","timestamp":"1749416383","text":{"body":"Does it come in another color?"},"type":"text"}]},"field":"messages"}]}]}"#;
    let first = signed_post(&server, "hmac", "meta-app-secret", hook, message).await;
    assert_eq!(first, (200, false, "EVENT_RECEIVED".to_string()));
    // Meta sends it again: it gets the first answer (its run was queued in the
    // same write as its claim), and nothing runs twice.
    let again = signed_post(&server, "hmac", "meta-app-secret", hook, message).await;
    assert_eq!(again, (200, true, "EVENT_RECEIVED".to_string()));
    let unsigned = client()
        .post(server.hook_url(hook))
        .header("content-type", "application/json")
        .body(message.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let run = server.wait_for_execution(&run_of(&server, "whatsapp-message"), "resolved");
    assert_eq!(
        run["output"],
        json!({"from": "16505551234", "name": "Sheena Nelson", "text": "Does it come in another color?"})
    );
    assert_eq!(server.executions(Some("whatsapp-message")).len(), 1);
}

/// The id of the one execution of `workflow`, once it is recorded (up to 15 s).
fn run_of(server: &Server, workflow: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(run) = server.executions(Some(workflow)).first() {
            return run["id"].as_str().unwrap().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "{workflow} never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn url_form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
