//! Each preset against its provider's own published example where there is one
//! (GitHub, Slack, Standard Webhooks, Twilio), and against signatures made here:
//! valid, tampered body, wrong secret, missing or malformed header, stale and
//! future timestamps, rotation.

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;

use super::*;

fn config(doc: serde_json::Value) -> SignatureConfig {
    serde_json::from_value(doc).unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    h
}

fn check(
    config: &SignatureConfig,
    secrets: &[&str],
    pairs: &[(&str, &str)],
    body: &[u8],
    now: i64,
) -> Result<(), Failure> {
    let secrets: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
    let h = headers(pairs);
    verify(
        config,
        &secrets,
        &Signed {
            headers: &h,
            body,
            url: "http://127.0.0.1:3000/api/webhook:trigger/x",
            form: &[],
            now,
        },
    )
}

#[test]
fn github_documented_example() {
    // docs.github.com, "Validating webhook deliveries": the test values.
    let c = config(json!({"preset": "github", "secret": "x"}));
    let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let secret = "It's a Secret to Everybody";
    let h = [("X-Hub-Signature-256", sig)];
    assert_eq!(check(&c, &[secret], &h, b"Hello, World!", 0), Ok(()));
    assert_eq!(
        check(&c, &[secret], &h, b"Hello, World?", 0),
        Err(Failure::Mismatch)
    );
    assert_eq!(
        check(&c, &["wrong"], &h, b"Hello, World!", 0),
        Err(Failure::Mismatch)
    );
    // Rotation: the old secret still listed.
    assert_eq!(check(&c, &["new", secret], &h, b"Hello, World!", 0), Ok(()));
    assert_eq!(
        check(&c, &[secret], &[], b"Hello, World!", 0),
        Err(Failure::MissingHeader("x-hub-signature-256".into()))
    );
    for bad in ["757107ea", "sha1=757107ea", "sha256=zz"] {
        let got = check(
            &c,
            &[secret],
            &[("X-Hub-Signature-256", bad)],
            b"Hello, World!",
            0,
        );
        assert!(matches!(got, Err(Failure::BadFormat(_))), "{bad}: {got:?}");
    }
}

#[test]
fn slack_documented_example() {
    // api.slack.com, "Verifying requests from Slack": the worked example.
    let c = config(json!({"preset": "slack", "secret": "x"}));
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    let h = [
        ("X-Slack-Request-Timestamp", "1531420618"),
        (
            "X-Slack-Signature",
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        ),
    ];
    assert_eq!(check(&c, &[secret], &h, body, 1_531_420_618 + 60), Ok(()));
    // Five minutes and one second late, or early: stale.
    assert_eq!(
        check(&c, &[secret], &h, body, 1_531_420_618 + 301),
        Err(Failure::StaleTimestamp)
    );
    assert_eq!(
        check(&c, &[secret], &h, body, 1_531_420_618 - 301),
        Err(Failure::StaleTimestamp)
    );
    let mut tampered = body.to_vec();
    tampered[6] = b'X';
    assert_eq!(
        check(&c, &[secret], &h, &tampered, 1_531_420_618),
        Err(Failure::Mismatch)
    );
    // A wider window, configured.
    let wide = config(json!({"preset": "slack", "secret": "x", "toleranceSeconds": 3600}));
    assert_eq!(
        check(&wide, &[secret], &h, body, 1_531_420_618 + 3000),
        Ok(())
    );
}

#[test]
fn standard_webhooks_documented_example() {
    // standardwebhooks.com / Svix's documentation: the example message.
    let c = config(json!({"preset": "standard-webhooks", "secret": "x"}));
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let body = br#"{"test": 2432232314}"#;
    let h = [
        ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
        ("webhook-timestamp", "1614265330"),
        (
            "webhook-signature",
            "v1,bm9ldHRoZXNpZ25hdHVyZQ== v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
    ];
    assert_eq!(check(&c, &[secret], &h, body, 1_614_265_330), Ok(()));
    assert_eq!(
        check(&c, &[secret], &h, br#"{"test": 2432232315}"#, 1_614_265_330),
        Err(Failure::Mismatch)
    );
    assert_eq!(
        check(&c, &[secret], &h, body, 1_614_265_330 + 3600),
        Err(Failure::StaleTimestamp)
    );
    let wrong_id = [("webhook-id", "msg_other"), h[1], h[2]];
    assert_eq!(
        check(&c, &[secret], &wrong_id, body, 1_614_265_330),
        Err(Failure::Mismatch)
    );
    assert!(matches!(
        check(&c, &["not base64!"], &h, body, 1_614_265_330),
        Err(Failure::BadFormat(_))
    ));
}

#[test]
fn twilio_documented_example() {
    // twilio.com/docs/usage/security: auth token 12345, this URL and these fields.
    let c = config(json!({"preset": "twilio", "secret": "x"}));
    let form: Vec<(String, String)> = [
        ("To", "+18005551212"),
        ("CallSid", "CA1234567890ABCDE"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("Caller", "+12349013030"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    let h = headers(&[
        ("X-Twilio-Signature", "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ]);
    let run = |c: &SignatureConfig, url: &str, form: &[(String, String)]| {
        verify(
            c,
            &["12345".to_string()],
            &Signed {
                headers: &h,
                body: b"",
                url,
                form,
                now: 0,
            },
        )
    };
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    assert_eq!(run(&c, url, &form), Ok(()));
    assert_eq!(
        run(&c, "http://mycompany.com/myapp.php?foo=1&bar=2", &form),
        Err(Failure::Mismatch)
    );
    let mut tampered = form.clone();
    tampered[2].1 = "9999".into();
    assert_eq!(run(&c, url, &tampered), Err(Failure::Mismatch));
    // Behind a proxy: the URL Twilio was given, configured.
    let proxied = config(json!({"preset": "twilio", "secret": "x", "publicUrl": url}));
    assert_eq!(run(&proxied, "http://10.0.0.5:3000/x", &form), Ok(()));
}

#[test]
fn stripe_and_shopify_signed_here() {
    let now = 1_700_000_000;
    let body = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
    let stripe = config(json!({"preset": "stripe", "secret": "whsec_test"}));
    let signed = sign(&stripe, "whsec_test", body, "", &[], now, "").unwrap();
    let value = signed[0].1.clone();
    let h = [("Stripe-Signature", value.as_str())];
    assert_eq!(check(&stripe, &["whsec_test"], &h, body, now + 10), Ok(()));
    assert_eq!(
        check(&stripe, &["whsec_other"], &h, body, now),
        Err(Failure::Mismatch)
    );
    assert_eq!(
        check(&stripe, &["whsec_test"], &h, b"{}", now),
        Err(Failure::Mismatch)
    );
    assert_eq!(
        check(&stripe, &["whsec_test"], &h, body, now + 301),
        Err(Failure::StaleTimestamp)
    );
    // Signed ahead of this clock: accepted, as Stripe's libraries accept it.
    assert_eq!(
        check(&stripe, &["whsec_test"], &h, body, now - 3600),
        Ok(())
    );
    // Stripe lists one v1 per active secret during a roll: any may match.
    let rolled = format!(
        "t={now},v1={},{}",
        "00".repeat(32),
        value.split(',').nth(1).unwrap()
    );
    assert_eq!(
        check(
            &stripe,
            &["whsec_test"],
            &[("Stripe-Signature", &rolled)],
            body,
            now
        ),
        Ok(())
    );
    for bad in [
        format!("v1={}", "00".repeat(32)),
        format!("t={now}"),
        "garbage".to_string(),
    ] {
        let got = check(
            &stripe,
            &["whsec_test"],
            &[("Stripe-Signature", &bad)],
            body,
            now,
        );
        assert!(matches!(got, Err(Failure::BadFormat(_))), "{bad}: {got:?}");
    }

    let shopify = config(json!({"preset": "shopify", "secret": "shpss"}));
    let signed = sign(&shopify, "shpss", body, "", &[], now, "").unwrap();
    let h = [("X-Shopify-Hmac-Sha256", signed[0].1.as_str())];
    assert_eq!(check(&shopify, &["shpss"], &h, body, now), Ok(()));
    assert_eq!(
        check(&shopify, &["other"], &h, body, now),
        Err(Failure::Mismatch)
    );
    assert_eq!(
        check(&shopify, &["shpss"], &h, b"x", now),
        Err(Failure::Mismatch)
    );
}

#[test]
fn generic_hmac_with_every_option() {
    let now = 1_700_000_000;
    let body = b"payload";
    for doc in [
        json!({"preset": "hmac", "secret": "s", "header": "X-Sig"}),
        json!({"preset": "hmac", "secret": "s", "header": "X-Sig", "algorithm": "sha1", "encoding": "base64"}),
        json!({"preset": "hmac", "secret": "s", "header": "X-Sig", "algorithm": "sha512", "prefix": "sha512="}),
        json!({"preset": "hmac", "secret": "s", "header": "X-Sig", "timestampHeader": "X-Ts"}),
        json!({"preset": "hmac", "secret": "s", "header": "X-Sig", "timestampHeader": "X-Ts", "signedPayload": "v0:{timestamp}:{body}"}),
    ] {
        let c = config(doc.clone());
        let signed = sign(&c, "s", body, "", &[], now, "").unwrap();
        let pairs: Vec<(&str, &str)> = signed
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(check(&c, &["s"], &pairs, body, now), Ok(()), "{doc}");
        assert_eq!(
            check(&c, &["t"], &pairs, body, now),
            Err(Failure::Mismatch),
            "{doc}"
        );
        assert_eq!(
            check(&c, &["s"], &pairs, b"other", now),
            Err(Failure::Mismatch),
            "{doc}"
        );
        if c.timestamp_header.is_some() {
            assert_eq!(
                check(&c, &["s"], &pairs, body, now + 1000),
                Err(Failure::StaleTimestamp)
            );
        }
    }
    // The Slack scheme written as a generic one verifies Slack's own example.
    let slack_as_hmac = config(
        json!({"preset": "hmac", "secret": "x", "header": "X-Slack-Signature",
        "prefix": "v0=", "timestampHeader": "X-Slack-Request-Timestamp", "signedPayload": "v0:{timestamp}:{body}"}),
    );
    let h = [
        ("X-Slack-Request-Timestamp", "1531420618"),
        (
            "X-Slack-Signature",
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        ),
    ];
    let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    assert_eq!(
        check(
            &slack_as_hmac,
            &["8f742231b10e8888abcd99yyyzzz85a5"],
            &h,
            body,
            1_531_420_618
        ),
        Ok(())
    );
}

#[test]
fn failures_never_hold_a_secret_or_an_expected_value() {
    let c = config(json!({"preset": "github", "secret": "x"}));
    let secret = "It's a Secret to Everybody";
    let expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    for pairs in [
        vec![],
        vec![("X-Hub-Signature-256", "sha256=00")],
        vec![("X-Hub-Signature-256", "nope")],
    ] {
        let failure = check(&c, &[secret], &pairs, b"Hello, World!", 0).unwrap_err();
        let text = format!("{} {} {failure:?}", failure.class(), failure);
        assert!(!text.contains(secret) && !text.contains(expected), "{text}");
    }
}
