//! Which idempotency key a delivery carries (`trigger.idempotency`): rendered
//! from its template, or the delivery id its signature preset's sender sends.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::lang::{number, template};
use crate::model::{IdempotencyConfig, SignaturePreset, TriggerDefinition};

/// Keys longer than this are kept as their SHA-256 (`sha256:<hex>`), so a key
/// rendered from a large value stays small in records and stores.
const MAX_KEY_BYTES: usize = 512;
const HASHED: &str = "sha256:";
/// Marks a raw key that starts like a hashed one (or like a marked one), so no
/// key a caller sends can equal the hash of another (see [`stored_key`]).
const RAW: &str = "raw:";

/// The delivery's idempotency key, or `None` to run it without one (no
/// `idempotency` configured, or a key that renders empty).
pub fn key_of(
    trigger: &TriggerDefinition,
    headers: &http::HeaderMap,
    body: &[u8],
    context: &Value,
) -> Option<String> {
    let config: &IdempotencyConfig = trigger.idempotency.as_ref()?;
    let key = match &config.key {
        Some(template) => rendered(template, context),
        None => preset_key(trigger.signature.as_ref()?.preset, headers, body, context)?,
    };
    let key = key.trim();
    if key.is_empty() {
        return None;
    }
    // A hook that redacts may key on a redacted value: the key is kept (in the
    // claim, the message, the record) as its SHA-256 only.
    Some(match trigger.redact {
        Some(_) => format!("{HASHED}{}", hex::encode(Sha256::digest(key))),
        None => stored_key(key),
    })
}

/// The key as claimed: a long one as `sha256:<hex>`, a raw one as itself, or as
/// `raw:<key>` when it starts with `sha256:` or `raw:`. So raw and hashed keys
/// never meet (a short key written as a long one's hash does not get its answer),
/// and any other key is claimed as before: only claims taken earlier for a
/// literal `sha256:…` or `raw:…` key are not found again (their retry runs once).
fn stored_key(key: &str) -> String {
    if key.len() > MAX_KEY_BYTES {
        format!("{HASHED}{}", hex::encode(Sha256::digest(key)))
    } else if key.starts_with(HASHED) || key.starts_with(RAW) {
        format!("{RAW}{key}")
    } else {
        key.to_string()
    }
}

fn rendered(key: &str, context: &Value) -> String {
    let mut vars = Map::new();
    vars.insert("$context".into(), context.clone());
    text(&template::render_str(key, &vars))
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => number::text(n),
        other => other.to_string(),
    }
}

/// The delivery id each signature preset's sender puts on a delivery (and keeps
/// on its retries).
fn preset_key(
    preset: SignaturePreset,
    headers: &http::HeaderMap,
    body: &[u8],
    context: &Value,
) -> Option<String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    match preset {
        SignaturePreset::Github => header("x-github-delivery"),
        SignaturePreset::Stripe => Some(text(context.pointer("/body/id")?)),
        // Read from the header the signature check read (the newer name first).
        SignaturePreset::Shopify => {
            header("shopify-webhook-id").or_else(|| header("x-shopify-webhook-id"))
        }
        SignaturePreset::StandardWebhooks => header("svix-id").or_else(|| header("webhook-id")),
        // Slack sends no delivery id: a retry repeats the timestamp and the body.
        SignaturePreset::Slack => header("x-slack-request-timestamp")
            .map(|ts| format!("{ts}:{}", hex::encode(Sha256::digest(body)))),
        SignaturePreset::Twilio => header("i-twilio-idempotency-token"),
        SignaturePreset::Hmac => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Secrets, SignatureConfig};
    use serde_json::json;

    fn trigger(key: Option<&str>, preset: Option<SignaturePreset>) -> TriggerDefinition {
        serde_json::from_value::<TriggerDefinition>(json!({"type": "webhook"}))
            .map(|mut t| {
                t.idempotency = Some(IdempotencyConfig {
                    key: key.map(str::to_string),
                    ttl_seconds: None,
                });
                t.signature = preset.map(|preset| SignatureConfig {
                    preset,
                    secret: Secrets::One(crate::model::SecretRef::Plain("s".into())),
                    tolerance_seconds: None,
                    public_url: None,
                    header: None,
                    algorithm: None,
                    encoding: None,
                    prefix: None,
                    timestamp_header: None,
                    signed_payload: None,
                });
                t
            })
            .unwrap()
    }

    #[test]
    fn keys_come_from_the_template_or_the_preset() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-github-delivery", "72d3162e".parse().unwrap());
        headers.insert("x-slack-request-timestamp", "1531420618".parse().unwrap());
        let context = json!({"body": {"id": "evt_1", "n": 7}, "headers": {"x-id": " a "}});
        let key = |t: &TriggerDefinition| key_of(t, &headers, b"{}", &context);
        assert_eq!(
            key(&trigger(Some("{{$context.headers.x-id}}"), None)).as_deref(),
            Some("a")
        );
        assert_eq!(
            key(&trigger(Some("n-{{$context.body.n}}"), None)).as_deref(),
            Some("n-7")
        );
        assert_eq!(key(&trigger(Some("{{$context.body.none}}"), None)), None);
        assert_eq!(
            key(&trigger(None, Some(SignaturePreset::Github))).as_deref(),
            Some("72d3162e")
        );
        assert_eq!(
            key(&trigger(None, Some(SignaturePreset::Stripe))).as_deref(),
            Some("evt_1")
        );
        assert!(
            key(&trigger(None, Some(SignaturePreset::Slack)))
                .unwrap()
                .starts_with("1531420618:44136fa355b3678a")
        );
        assert_eq!(key(&trigger(None, Some(SignaturePreset::Shopify))), None);
        // Svix's and Shopify's own names, first, as their signatures are read.
        let mut named = http::HeaderMap::new();
        named.insert("svix-id", "msg_2Kx".parse().unwrap());
        named.insert("webhook-id", "msg_other".parse().unwrap());
        named.insert("shopify-webhook-id", "b54557e4".parse().unwrap());
        let by = |preset| key_of(&trigger(None, Some(preset)), &named, b"{}", &context);
        assert_eq!(
            by(SignaturePreset::StandardWebhooks).as_deref(),
            Some("msg_2Kx")
        );
        assert_eq!(by(SignaturePreset::Shopify).as_deref(), Some("b54557e4"));
        let long = json!({"body": {"id": "x".repeat(600)}});
        let hashed = key_of(
            &trigger(None, Some(SignaturePreset::Stripe)),
            &headers,
            b"",
            &long,
        );
        assert!(hashed.unwrap().starts_with("sha256:"));
    }

    #[test]
    fn raw_keys_never_equal_hashed_ones() {
        let long = "x".repeat(MAX_KEY_BYTES + 1);
        let hashed = stored_key(&long);
        assert_eq!(
            hashed,
            format!("sha256:{}", hex::encode(Sha256::digest(&long)))
        );
        assert_eq!(stored_key(&hashed), format!("raw:{hashed}"));
        assert_eq!(stored_key("raw:a"), "raw:raw:a");
        assert_ne!(stored_key("raw:a"), stored_key("a"));
        assert_eq!(
            stored_key("evt_1"),
            "evt_1",
            "other keys are kept as they were"
        );
        assert_eq!(stored_key(&"y".repeat(MAX_KEY_BYTES)).len(), MAX_KEY_BYTES);
    }
}
