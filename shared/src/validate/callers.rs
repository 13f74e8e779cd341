//! Rules for handshakes, duplicates and who may call (inbound.md §4–6):
//! `trigger.handshake`, `trigger.idempotency`, `trigger.allowIps`,
//! `trigger.rateLimit`.

use serde_json::{Map, Value};

use super::Checker;
use super::inbound::check_secret;
use crate::model::parse_block;

/// Signature presets whose sender puts a delivery id on every delivery.
const KEYED_PRESETS: [&str; 6] = [
    "github",
    "stripe",
    "shopify",
    "standard-webhooks",
    "slack",
    "twilio",
];
/// Thirty days: longer than any sender retries a delivery.
const MAX_TTL_SECONDS: u64 = 30 * 86_400;
const MAX_RATE: f64 = 1_000_000.0;

pub fn check(trigger: &Map<String, Value>, check: &mut Checker) {
    let signature_preset = trigger
        .get("signature")
        .and_then(|s| s.get("preset"))
        .and_then(Value::as_str);
    if let Some(handshake) = trigger.get("handshake") {
        check_handshake(handshake, signature_preset.is_some(), check);
    }
    if let Some(idempotency) = trigger.get("idempotency") {
        check_idempotency(idempotency, signature_preset, check);
    }
    if let Some(list) = trigger.get("allowIps") {
        check_allow_ips(list, check);
    }
    if let Some(limit) = trigger.get("rateLimit") {
        check_rate_limit(limit, check);
    }
}

fn check_handshake(handshake: &Value, has_signature: bool, check: &mut Checker) {
    let at = "trigger.handshake";
    let Some(map) = handshake.as_object() else {
        return;
    };
    let preset = map.get("preset").and_then(Value::as_str);
    match (preset, map.get("verifyToken")) {
        (Some("meta"), token) => check_secret(token, &format!("{at}.verifyToken"), check),
        (_, Some(_)) => check.error(
            format!("{at}.verifyToken"),
            "applies to the meta preset only",
        ),
        _ => {}
    }
    let signs = matches!(preset, Some("zoom" | "crc"));
    match map.get("secret") {
        Some(secret) if signs => check_secret(Some(secret), &format!("{at}.secret"), check),
        Some(_) => check.error(
            format!("{at}.secret"),
            "applies to the zoom and crc presets only",
        ),
        // The CRC is an unsigned GET: answered with a secret that signs bodies,
        // it would sign any text a caller sends.
        None if preset == Some("crc") => check.error(
            format!("{at}.secret"),
            "is required for crc (X's consumer secret), written here: the signature's secret is never used to answer a check anyone can send",
        ),
        None => {}
    }
    // Zoom's check is answered only once its signature is verified; without one
    // anyone could have a text of their choice signed with the app's secret token.
    if preset == Some("zoom") && !has_signature {
        check.error(
            "trigger.signature",
            "is required with a zoom handshake (Zoom signs its check too: hmac, header x-zm-signature, prefix \"v0=\", timestampHeader x-zm-request-timestamp, signedPayload \"v0:{timestamp}:{body}\"); a check is answered only once its signature is verified",
        );
    }
}

fn check_idempotency(idempotency: &Value, signature_preset: Option<&str>, check: &mut Checker) {
    let at = "trigger.idempotency";
    let Some(map) = idempotency.as_object() else {
        return;
    };
    match map.get("key") {
        Some(Value::String(key)) if !key.trim().is_empty() => {}
        Some(_) => check.error(
            format!("{at}.key"),
            "must be a non-empty template, e.g. \"{{$context.headers.x-delivery-id}}\"",
        ),
        None if signature_preset.is_some_and(|p| KEYED_PRESETS.contains(&p)) => {}
        None => check.error(
            format!("{at}.key"),
            format!(
                "is required unless trigger.signature uses a preset with a delivery id ({})",
                KEYED_PRESETS.join(", ")
            ),
        ),
    }
    check.optional_whole(
        idempotency,
        "ttlSeconds",
        at,
        1..=MAX_TTL_SECONDS,
        "seconds",
    );
}

fn check_allow_ips(list: &Value, check: &mut Checker) {
    let at = "trigger.allowIps";
    let Some(items) = list.as_array() else {
        check.error(
            at,
            "must be a list of CIDR blocks, e.g. [\"192.30.252.0/22\"]",
        );
        return;
    };
    if items.is_empty() {
        check.error(
            at,
            "must list at least one block (leave it out to allow anyone)",
        );
    }
    for (i, item) in items.iter().enumerate() {
        if item.as_str().and_then(parse_block).is_none() {
            check.error(
                format!("{at}[{i}]"),
                "must be an IPv4 or IPv6 address or CIDR block, e.g. \"2001:db8::/32\"",
            );
        }
    }
}

fn check_rate_limit(limit: &Value, check: &mut Checker) {
    let at = "trigger.rateLimit";
    let Some(map) = limit.as_object() else {
        return;
    };
    if !map
        .get("perSecond")
        .and_then(Value::as_f64)
        .is_some_and(|r| r > 0.0 && r <= MAX_RATE)
    {
        check.error(
            format!("{at}.perSecond"),
            format!("is required: a number of requests per second, above 0 and at most {MAX_RATE}"),
        );
    }
    check.optional_whole(limit, "burst", at, 1..=MAX_RATE as u64, "requests");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::validate::inbound::tests::problems;

    /// Zoom's scheme: `x-zm-signature: v0=hex(HMAC-SHA256(secret, "v0:{ts}:{body}"))`.
    fn zoom_signature() -> serde_json::Value {
        json!({"preset": "hmac", "header": "x-zm-signature", "prefix": "v0=",
            "timestampHeader": "x-zm-request-timestamp", "signedPayload": "v0:{timestamp}:{body}",
            "secret": {"env": "ZOOM_SECRET"}})
    }

    #[test]
    fn good_settings_are_accepted() {
        for extra in [
            json!({"handshake": {"preset": "meta", "verifyToken": {"env": "META_TOKEN"}}}),
            json!({"handshake": {"preset": "dropbox"}}),
            json!({"handshake": {"preset": "zoom", "secret": {"env": "ZOOM_SECRET"}}, "signature": zoom_signature()}),
            json!({"handshake": {"preset": "zoom"}, "signature": zoom_signature()}),
            json!({"handshake": {"preset": "crc", "secret": {"env": "X"}}}),
            // X's own case: one consumer secret for the CRC and the signature.
            json!({"handshake": {"preset": "crc", "secret": {"env": "X"}}, "signature": {"preset": "hmac",
                "header": "x-twitter-webhooks-signature", "encoding": "base64", "prefix": "sha256=", "secret": {"env": "X"}}}),
            json!({"idempotency": {"key": "{{$context.headers.x-id}}", "ttlSeconds": 60}}),
            json!({"idempotency": {}, "signature": {"preset": "stripe", "secret": {"env": "S"}}}),
            json!({"allowIps": ["192.30.252.0/22", "2001:db8::/32", "10.0.0.1"]}),
            json!({"rateLimit": {"perSecond": 0.5}}),
            json!({"rateLimit": {"perSecond": 50, "burst": 100}}),
        ] {
            assert_eq!(problems(extra.clone()), Vec::<String>::new(), "{extra}");
        }
    }

    #[test]
    fn wrong_settings_are_named_by_path() {
        let cases = [
            (
                json!({"handshake": {"preset": "facebook"}}),
                "trigger.handshake.preset",
            ),
            (
                json!({"handshake": {"preset": "meta"}}),
                "trigger.handshake.verifyToken",
            ),
            (
                json!({"handshake": {"preset": "zoom"}}),
                "trigger.signature: is required with a zoom handshake",
            ),
            (
                json!({"handshake": {"preset": "zoom", "secret": {"env": "ZOOM_SECRET"}}}),
                "trigger.signature: is required with a zoom handshake",
            ),
            (
                json!({"handshake": {"preset": "crc"}}),
                "trigger.handshake.secret: is required for crc",
            ),
            (
                json!({"handshake": {"preset": "crc"}, "signature": {"preset": "hmac", "header": "x-sig", "secret": {"env": "S"}}}),
                "trigger.handshake.secret: is required for crc",
            ),
            (
                json!({"handshake": {"preset": "slack", "secret": "x"}}),
                "trigger.handshake.secret",
            ),
            (
                json!({"handshake": {"preset": "dropbox", "verifyToken": "x"}}),
                "trigger.handshake.verifyToken",
            ),
            (json!({"idempotency": {}}), "trigger.idempotency.key"),
            (
                json!({"idempotency": {"key": ""}}),
                "trigger.idempotency.key",
            ),
            (
                json!({"idempotency": {"key": "k", "ttlSeconds": 0}}),
                "trigger.idempotency.ttlSeconds",
            ),
            (
                json!({"idempotency": {"key": "k", "ttl": 5}}),
                "trigger.idempotency.ttl",
            ),
            (json!({"allowIps": ["300.1.1.1/8"]}), "trigger.allowIps[0]"),
            (json!({"allowIps": []}), "trigger.allowIps"),
            (
                json!({"rateLimit": {"perSecond": 0}}),
                "trigger.rateLimit.perSecond",
            ),
            (
                json!({"rateLimit": {"perSecond": 5, "burst": 0}}),
                "trigger.rateLimit.burst",
            ),
        ];
        for (extra, path) in cases {
            let found = problems(extra.clone());
            assert!(
                found.iter().any(|f| f.starts_with(path)),
                "{extra}: {path} not in {found:?}"
            );
        }
    }
}
