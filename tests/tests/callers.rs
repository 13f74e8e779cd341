//! Handshakes and who may call, on a real `hookflow serve` (inbound.md §4 and §6):
//! each sender's check answered in its shape with no run recorded, allowlists on
//! the peer address (IPv4 and IPv6, never `X-Forwarded-For`), the rate limiter's
//! burst and refill, and the order of the checks.

use std::time::Duration;

use hookflow::model::SignatureConfig;
use hookflow::webhook::signature::sign;
use hookflow_tests::{Server, client};
use serde_json::{Value, json};

const META_TOKEN: &str = "meatyhamhock";
const ZOOM_SECRET: &str = "zoom-secret-token";
const X_SECRET: &str = "x-consumer-secret";
const SLACK_SECRET: &str = "slack-signing-secret-1c9e";

fn ok_response() -> Value {
    json!([{"key": "ok", "type": "response", "config": {"statusCode": 200, "body": {"ran": true}}}])
}

fn workflows() -> Vec<Value> {
    vec![
        json!({"key": "whatsapp", "trigger": {"type": "webhook", "hookId": "wa",
            "handshake": {"preset": "meta", "verifyToken": {"env": "META_TOKEN"}}},
            "nodes": [{"key": "msg", "type": "output", "config": {"value": "{{$context.body.entry}}"}}]}),
        json!({"key": "dropbox", "trigger": {"type": "webhook", "hookId": "dbx",
            "handshake": {"preset": "dropbox"}}}),
        json!({"key": "x-activity", "trigger": {"type": "webhook", "hookId": "crc",
            "handshake": {"preset": "crc", "secret": {"env": "X_SECRET"}}}}),
        json!({"key": "slack-events", "trigger": {"type": "webhook", "hookId": "slack",
            "signature": {"preset": "slack", "secret": {"env": "SLACK_SECRET"}},
            "handshake": {"preset": "slack"}}}),
        // Zoom signs its check too, and it is answered only once that passed.
        json!({"key": "zoom", "trigger": {"type": "webhook", "hookId": "zoom",
            "signature": zoom_signature(),
            "handshake": {"preset": "zoom", "secret": {"env": "ZOOM_SECRET"}}}}),
        json!({"key": "graph", "trigger": {"type": "webhook", "hookId": "graph",
            "handshake": {"preset": "msgraph"}}}),
        json!({"key": "loopback-only", "sync": true, "trigger": {"type": "webhook", "hookId": "local",
            "allowIps": ["127.0.0.0/8"]}, "nodes": ok_response()}),
        json!({"key": "github-only", "sync": true, "trigger": {"type": "webhook", "hookId": "gh-ips",
            "allowIps": ["192.30.252.0/22", "2001:db8::/32"],
            "basicAuthentication": {"username": "u", "password": {"env": "META_TOKEN"}}},
            "nodes": ok_response()}),
        json!({"key": "limited", "sync": true, "trigger": {"type": "webhook", "hookId": "limited",
            "rateLimit": {"perSecond": 2, "burst": 3}}, "nodes": ok_response()}),
    ]
}

/// Zoom's scheme: `x-zm-signature: v0=hex(HMAC-SHA256(secret, "v0:{ts}:{body}"))`.
fn zoom_signature() -> Value {
    json!({"preset": "hmac", "header": "x-zm-signature", "prefix": "v0=",
        "timestampHeader": "x-zm-request-timestamp", "signedPayload": "v0:{timestamp}:{body}",
        "secret": {"env": "ZOOM_SECRET"}})
}

fn start() -> Server {
    Server::start_with_env(
        &workflows(),
        &[],
        &[
            ("META_TOKEN", META_TOKEN),
            ("ZOOM_SECRET", ZOOM_SECRET),
            ("X_SECRET", X_SECRET),
            ("SLACK_SECRET", SLACK_SECRET),
        ],
    )
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.unwrap();
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

async fn get(url: &str) -> Answer {
    send(client().get(url)).await
}

async fn post_json(url: &str, body: &str, headers: &[(String, String)]) -> Answer {
    let mut request = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    send(request).await
}

fn header<'a>(answer: &'a Answer, name: &str) -> &'a str {
    answer.headers.get(name).map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn each_senders_check_is_answered_in_its_shape_and_starts_nothing() {
    let server = start();

    // Meta (the values of its Graph API webhooks guide).
    let wa = server.hook_url("wa");
    let ok = get(&format!(
        "{wa}?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={META_TOKEN}"
    ))
    .await;
    assert_eq!((ok.status, ok.body.as_str()), (200, "1158201444"));
    assert_eq!(header(&ok, "content-type"), "text/plain");
    let wrong = get(&format!(
        "{wa}?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=nope"
    ))
    .await;
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    assert!(!wrong.body.contains("1158201444"));
    assert_eq!(get(&wa).await.status, 403);
    // The events themselves still come as POSTs and run.
    let event = post_json(&wa, r#"{"entry": [{"id": "1"}]}"#, &[]).await;
    assert_eq!(event.status, 200, "{}", event.body);

    // Dropbox.
    let dbx = get(&format!(
        "{}?challenge=dbx-challenge-77",
        server.hook_url("dbx")
    ))
    .await;
    assert_eq!((dbx.status, dbx.body.as_str()), (200, "dbx-challenge-77"));
    assert_eq!(header(&dbx, "x-content-type-options"), "nosniff");
    assert_eq!(get(&server.hook_url("dbx")).await.status, 400);

    // X's CRC (expected value computed apart with Python's hmac).
    let crc = get(&format!(
        "{}?crc_token=crc-token-123",
        server.hook_url("crc")
    ))
    .await;
    assert_eq!(crc.status, 200);
    let token: Value = serde_json::from_str(&crc.body).unwrap();
    assert_eq!(
        token,
        json!({"response_token": "sha256=YUsT0aLbF0VtFGcLCND1EU/aQP0sjPL19cPulVY7Wes="})
    );

    // Slack's url_verification (its Events API example), signed: its signature is
    // checked first.
    let slack = server.hook_url("slack");
    let check = r#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let config: SignatureConfig =
        serde_json::from_value(json!({"preset": "slack", "secret": "x"})).unwrap();
    let now = chrono::Utc::now().timestamp();
    let signed = sign(&config, SLACK_SECRET, check.as_bytes(), "", &[], now, "").unwrap();
    let answer = post_json(&slack, check, &signed).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    );
    assert_eq!(post_json(&slack, check, &[]).await.status, 401);
    // A GET to a hook whose sender checks with a POST is the wrong method.
    assert_eq!(get(&slack).await.status, 405);

    // Zoom, signed as Zoom signs it.
    let check = r#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
    let config: SignatureConfig = serde_json::from_value(zoom_signature()).unwrap();
    let signed = sign(&config, ZOOM_SECRET, check.as_bytes(), "", &[], now, "").unwrap();
    let zoom = post_json(&server.hook_url("zoom"), check, &signed).await;
    assert_eq!(zoom.status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&zoom.body).unwrap(),
        json!({"plainToken": "qgg8vlvZRS6UYooatFL8Aw",
               "encryptedToken": "d9e0d764a78494688ba3f2d5c0ed4ca311394b4834d959759213424d2df961e3"})
    );

    // Microsoft Graph.
    let graph = send(
        client()
            .post(format!(
                "{}?validationToken=Validation%3A+Testing+client+application+reachability",
                server.hook_url("graph")
            ))
            .header("content-type", "text/plain"),
    )
    .await;
    assert_eq!(
        (graph.status, graph.body.as_str()),
        (200, "Validation: Testing client application reachability")
    );
    assert_eq!(header(&graph, "content-type"), "text/plain");

    // Of all that, only the WhatsApp event ran.
    for key in ["dropbox", "x-activity", "slack-events", "zoom", "graph"] {
        assert_eq!(server.executions(Some(key)), Vec::<Value>::new(), "{key}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while server.executions(Some("whatsapp")).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the event never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.executions(Some("whatsapp")).len(), 1);
}

#[tokio::test]
async fn allowlists_judge_the_peer_address_and_checks_come_in_the_specs_order() {
    let server = start();
    let local = post_json(&server.hook_url("local"), "{}", &[]).await;
    assert_eq!(local.status, 200, "{}", local.body);

    // 127.0.0.1 is not GitHub's, whatever the caller writes in X-Forwarded-For.
    let gh = server.hook_url("gh-ips");
    for spoof in ["192.30.252.1", "192.30.252.1, 10.0.0.1"] {
        let refused = post_json(&gh, "{}", &[("x-forwarded-for".into(), spoof.into())]).await;
        assert_eq!(refused.status, 403, "{}", refused.body);
    }
    // 403 for the address comes before 401 for the credentials it lacks...
    assert_eq!(post_json(&gh, "{}", &[]).await.status, 403);
    // ...and after 405 and 404.
    assert_eq!(send(client().put(&gh)).await.status, 405);
    assert_eq!(
        post_json(&server.hook_url("no-such-hook"), "{}", &[])
            .await
            .status,
        404
    );
    assert_eq!(server.executions(Some("github-only")), Vec::<Value>::new());
}

#[tokio::test]
async fn ipv6_peers_are_judged_by_their_own_blocks() {
    let workflows = vec![
        json!({"key": "v6-loopback", "sync": true, "trigger": {"type": "webhook", "hookId": "v6",
            "allowIps": ["::1/128"]}, "nodes": ok_response()}),
        json!({"key": "v6-elsewhere", "sync": true, "trigger": {"type": "webhook", "hookId": "elsewhere",
            "allowIps": ["2001:db8::/32", "127.0.0.1"]}, "nodes": ok_response()}),
    ];
    let server = Server::start_with(&workflows, &["--addr", "[::1]:0"]);
    assert!(server.hook_url("v6").starts_with("http://[::1]:"));
    assert_eq!(
        post_json(&server.hook_url("v6"), "{}", &[]).await.status,
        200
    );
    let refused = post_json(
        &server.hook_url("elsewhere"),
        "{}",
        &[("x-forwarded-for".into(), "2001:db8::1".into())],
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
}

#[tokio::test]
async fn ipv4_mapped_entries_and_dual_stack_peers_are_judged_as_ipv4() {
    let hook = |key: &str, allow: Value| {
        json!({"key": key, "sync": true, "trigger": {"type": "webhook", "hookId": key,
            "allowIps": allow}, "nodes": ok_response()})
    };
    let workflows = vec![
        hook("mapped", json!(["::ffff:127.0.0.1"])),
        hook("mapped-block", json!(["::ffff:127.0.0.0/104"])),
        hook("mapped-elsewhere", json!(["::ffff:203.0.113.0/120"])),
        hook("plain", json!(["127.0.0.1"])),
    ];
    // A dual-stack socket: an IPv4 caller's peer reads `::ffff:127.0.0.1` there.
    let server = Server::start_with(&workflows, &["--addr", "[::]:0"]);
    let over_ipv4 = |key: &str| server.hook_url(key).replacen("[::]", "127.0.0.1", 1);
    for (key, status) in [
        ("mapped", 200),
        ("mapped-block", 200),
        ("plain", 200),
        ("mapped-elsewhere", 403),
    ] {
        let answer = post_json(&over_ipv4(key), "{}", &[]).await;
        assert_eq!(answer.status, status, "{key}: {}", answer.body);
    }
}

#[tokio::test]
async fn the_rate_limit_allows_its_burst_then_refills_at_its_rate() {
    let server = start();
    let url = server.hook_url("limited");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(post_json(&url, "{}", &[]).await);
    }
    let codes: Vec<u16> = statuses.iter().map(|a| a.status).collect();
    assert_eq!(&codes[..3], &[200, 200, 200], "{codes:?}");
    let limited = statuses.iter().find(|a| a.status == 429).expect("no 429");
    assert_eq!(header(limited, "retry-after"), "1");
    assert!(limited.body.contains("rate limit"), "{}", limited.body);
    // At 2 per second, a token is back within half a second.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(post_json(&url, "{}", &[]).await.status, 200);
    // Other hooks are not limited by this one's bucket.
    assert_eq!(
        post_json(&server.hook_url("local"), "{}", &[]).await.status,
        200
    );
}

/// Callers that fail Basic auth or the signature never spend the hook's rate
/// limit (issue 23, item 10): a flood of them from one address leaves the real
/// sender, from another, its whole burst; the flooding address itself is cut off
/// (429) before its bodies are read.
#[tokio::test]
async fn failed_callers_never_spend_the_real_senders_rate_limit() {
    let limit = json!({"perSecond": 0.2, "burst": 2});
    let workflows = vec![
        json!({"key": "signed-limited", "sync": true, "trigger": {"type": "webhook", "hookId": "signed-limited",
            "signature": {"preset": "github", "secret": {"env": "SLACK_SECRET"}}, "rateLimit": limit},
            "nodes": ok_response()}),
        json!({"key": "password-limited", "sync": true, "trigger": {"type": "webhook", "hookId": "password-limited",
            "basicAuthentication": {"username": "u", "password": {"env": "META_TOKEN"}}, "rateLimit": limit},
            "nodes": ok_response()}),
    ];
    let server = Server::start_with_env(
        &workflows,
        &[],
        &[("SLACK_SECRET", SLACK_SECRET), ("META_TOKEN", META_TOKEN)],
    );
    let signed_url = server.hook_url("signed-limited");
    let password_url = server.hook_url("password-limited");
    let body = r#"{"action":"opened"}"#;
    let github: SignatureConfig =
        serde_json::from_value(json!({"preset": "github", "secret": "x"})).unwrap();
    let good_signature = sign(&github, SLACK_SECRET, body.as_bytes(), "", &[], 0, "").unwrap();

    // The attacker, from another loopback address (the server listens on 127.0.0.1).
    let _ = client();
    let attacker = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut answers = Vec::new();
    for _ in 0..20 {
        let forged = attacker
            .post(&signed_url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", format!("sha256={}", "0".repeat(64)))
            .body(body)
            .send()
            .await
            .unwrap();
        answers.push(forged.status().as_u16());
        let guessed = attacker
            .post(&password_url)
            .basic_auth("u", Some("guess"))
            .body("{}")
            .send()
            .await
            .unwrap();
        answers.push(guessed.status().as_u16());
    }
    assert!(
        answers.iter().all(|s| [401, 429].contains(s)),
        "{answers:?}"
    );
    assert_eq!(answers[..4], [401, 401, 401, 401], "{answers:?}");
    assert_eq!(answers[answers.len() - 2..], [429, 429], "{answers:?}");

    // The real sender still has its whole burst on both hooks.
    for _ in 0..2 {
        let delivered = post_json(&signed_url, body, &good_signature).await;
        assert_eq!(delivered.status, 200, "{}", delivered.body);
        let logged_in = send(
            client()
                .post(&password_url)
                .basic_auth("u", Some(META_TOKEN))
                .body("{}"),
        )
        .await;
        assert_eq!(logged_in.status, 200, "{}", logged_in.body);
    }
    // Past it, the real sender is limited as configured.
    assert_eq!(
        post_json(&signed_url, body, &good_signature).await.status,
        429
    );
    assert_eq!(server.executions(Some("signed-limited")).len(), 2);
    assert_eq!(server.executions(Some("password-limited")).len(), 2);
}
