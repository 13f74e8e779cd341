//! The headers a sender would add to a body: for `hookflow sign` and tests, checked
//! against the official libraries by tests/tests/official_sdks.rs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{fill_payload, generic_payload, mac, standard_webhooks, twilio};
use crate::model::{HmacAlgorithm, SignatureConfig, SignatureEncoding, SignaturePreset};

/// The signature a sender would put in its header(s) for `body`, as header
/// name/value pairs. Twilio signs `url` (or `publicUrl`) with `form`; for a JSON
/// body pass [`super::twilio_json_url`] as `url` and no form.
pub fn sign(
    config: &SignatureConfig,
    secret: &str,
    body: &[u8],
    url: &str,
    form: &[(String, String)],
    now: i64,
    message_id: &str,
) -> Result<Vec<(String, String)>, String> {
    let key = secret.as_bytes();
    let ts = now.to_string();
    let sha256 = HmacAlgorithm::Sha256;
    Ok(match config.preset {
        SignaturePreset::Github => vec![(
            "X-Hub-Signature-256".into(),
            format!("sha256={}", hex::encode(mac(sha256, key, &[body]))),
        )],
        SignaturePreset::Shopify => vec![(
            "X-Shopify-Hmac-Sha256".into(),
            STANDARD.encode(mac(sha256, key, &[body])),
        )],
        SignaturePreset::Stripe => vec![(
            "Stripe-Signature".into(),
            format!(
                "t={ts},v1={}",
                hex::encode(mac(sha256, key, &[ts.as_bytes(), b".", body]))
            ),
        )],
        SignaturePreset::Slack => vec![
            ("X-Slack-Request-Timestamp".into(), ts.clone()),
            (
                "X-Slack-Signature".into(),
                format!(
                    "v0={}",
                    hex::encode(mac(sha256, key, &[b"v0:", ts.as_bytes(), b":", body]))
                ),
            ),
        ],
        SignaturePreset::StandardWebhooks => {
            let key = standard_webhooks::key(secret).map_err(|f| f.to_string())?;
            vec![
                ("webhook-id".into(), message_id.into()),
                ("webhook-timestamp".into(), ts.clone()),
                (
                    "webhook-signature".into(),
                    standard_webhooks::signature(&key, message_id, now, body),
                ),
            ]
        }
        SignaturePreset::Twilio => {
            let url = config.public_url.as_deref().unwrap_or(url);
            vec![(
                "X-Twilio-Signature".into(),
                twilio::signature(HmacAlgorithm::Sha1, key, url, form),
            )]
        }
        SignaturePreset::Hmac => {
            let algorithm = config.algorithm.unwrap_or(HmacAlgorithm::Sha256);
            let mut headers = Vec::new();
            let signed = match config.timestamp_header.as_deref() {
                None => body.to_vec(),
                Some(name) => {
                    headers.push((name.to_string(), ts.clone()));
                    fill_payload(generic_payload(config), &ts, body)
                }
            };
            let raw = mac(algorithm, key, &[&signed]);
            let encoded = match config.encoding.unwrap_or(SignatureEncoding::Hex) {
                SignatureEncoding::Hex => hex::encode(raw),
                SignatureEncoding::Base64 => STANDARD.encode(raw),
            };
            let prefix = config.prefix.clone().unwrap_or_default();
            headers.push((
                config
                    .header
                    .clone()
                    .unwrap_or_else(|| "X-Signature".into()),
                format!("{prefix}{encoded}"),
            ));
            headers
        }
    })
}
