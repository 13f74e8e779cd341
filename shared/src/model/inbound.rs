//! What part 2 of the spec adds to a trigger: secrets by reference and signature
//! checks (`trigger.signature`). Field names are the contract (inbound.md §1–2).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A configured secret: the value itself (accepted; `validate` warns, since it then
/// sits in the definition and its store) or where to read it when first needed.
/// Debug output never shows a value.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SecretRef {
    Env {
        env: String,
    },
    Ssm {
        ssm: String,
    },
    SecretsManager {
        #[serde(rename = "secretsManager")]
        secrets_manager: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    Plain(String),
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain(_) => f.write_str("SecretRef::Plain(<redacted>)"),
            other => f.write_str(&other.describe()),
        }
    }
}

impl SecretRef {
    /// Where the value comes from, for messages: never the value.
    pub fn describe(&self) -> String {
        match self {
            Self::Env { env } => format!("environment variable {env}"),
            Self::Ssm { ssm } => format!("SSM parameter {ssm}"),
            Self::SecretsManager {
                secrets_manager,
                key: Some(key),
            } => format!("Secrets Manager secret {secrets_manager} (field {key})"),
            Self::SecretsManager {
                secrets_manager, ..
            } => format!("Secrets Manager secret {secrets_manager}"),
            Self::Plain(_) => "a value written in the definition".to_string(),
        }
    }
}

/// One secret, or several (rotation: any of them verifies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Secrets {
    One(SecretRef),
    Many(Vec<SecretRef>),
}

impl Secrets {
    pub fn refs(&self) -> &[SecretRef] {
        match self {
            Self::One(one) => std::slice::from_ref(one),
            Self::Many(many) => many,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SignaturePreset {
    Github,
    Stripe,
    Slack,
    Shopify,
    StandardWebhooks,
    Twilio,
    Hmac,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    Hex,
    Base64,
}

/// `trigger.signature`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignatureConfig {
    pub preset: SignaturePreset,
    pub secret: Secrets,
    /// How far a signed timestamp may be from now, either way (default 300 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_seconds: Option<u64>,
    /// `twilio`: the URL Twilio was given, when the received one differs (a proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// `hmac`: the header carrying the signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<HmacAlgorithm>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<SignatureEncoding>,
    /// `hmac`: text before the signature in its header (`sha256=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// `hmac`: a header with the signing time (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// `hmac` with a timestamp: what is signed, with `{timestamp}` and `{body}`
    /// (default `{timestamp}.{body}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_payload: Option<String>,
}

/// Timestamped schemes accept this much clock difference by default.
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;

impl SignatureConfig {
    pub fn tolerance(&self) -> u64 {
        self.tolerance_seconds.unwrap_or(DEFAULT_TOLERANCE_SECONDS)
    }
}

/// `trigger.handshake`: an endpoint check a sender makes before it sends events,
/// answered by hookflow itself (inbound.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HandshakePreset {
    /// Facebook, Instagram, WhatsApp: `GET ?hub.mode=subscribe&hub.verify_token&hub.challenge`.
    Meta,
    /// POST `{"type": "url_verification", "challenge"}`.
    Slack,
    /// POST `{"event": "endpoint.url_validation", "payload": {"plainToken"}}`.
    Zoom,
    /// Microsoft Graph: POST `?validationToken=`.
    Msgraph,
    /// `GET ?challenge=`.
    Dropbox,
    /// X (Twitter) account activity: `GET ?crc_token=`.
    Crc,
}

impl HandshakePreset {
    /// Whether the sender checks with a GET (answered before Basic auth) rather
    /// than a POST (answered once the body is read and its signature checked).
    pub fn is_get(self) -> bool {
        matches!(self, Self::Meta | Self::Dropbox | Self::Crc)
    }

    /// Whether the answer is an HMAC of the sender's token under a secret.
    pub fn needs_secret(self) -> bool {
        matches!(self, Self::Zoom | Self::Crc)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HandshakeConfig {
    pub preset: HandshakePreset,
    /// `meta`: the token typed into the app's webhook settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_token: Option<SecretRef>,
    /// `zoom`: the app's secret token; when absent, the first
    /// `trigger.signature.secret` (a zoom check is answered only once that
    /// signature passed). `crc`: the consumer secret, required (never the
    /// signature's: a CRC is an unsigned GET anyone may send).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretRef>,
}

/// `trigger.idempotency` (inbound.md §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdempotencyConfig {
    /// A template over `$context`; absent = the signature preset's delivery id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

/// An `allowIps` entry: a CIDR block, or one address as its own block.
pub fn parse_block(entry: &str) -> Option<ipnet::IpNet> {
    let entry = entry.trim();
    entry.parse::<ipnet::IpNet>().ok().or_else(|| {
        entry
            .parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

/// A day, as the spec says: longer than any sender's retry window that matters.
pub const DEFAULT_IDEMPOTENCY_TTL_SECONDS: u64 = 86_400;

impl IdempotencyConfig {
    pub fn ttl(&self) -> u64 {
        self.ttl_seconds.unwrap_or(DEFAULT_IDEMPOTENCY_TTL_SECONDS)
    }
}

/// `trigger.rateLimit`: requests per second per hook, per process, with a burst.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    pub per_second: f64,
    /// How many may come at once after a quiet spell (default: one second's worth,
    /// at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

impl RateLimit {
    pub fn burst(&self) -> f64 {
        match self.burst {
            Some(b) => f64::from(b.max(1)),
            None => self.per_second.ceil().max(1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_read_and_write_back_as_written() {
        for doc in [
            json!("plain"),
            json!({"env": "STRIPE_SECRET"}),
            json!({"ssm": "/hookflow/stripe"}),
            json!({"secretsManager": "arn:aws:secretsmanager:eu-west-1:1:secret:s", "key": "github"}),
            json!({"secretsManager": "s"}),
        ] {
            let read: SecretRef = serde_json::from_value(doc.clone()).unwrap();
            assert_eq!(serde_json::to_value(&read).unwrap(), doc);
        }
        let plain: SecretRef = serde_json::from_value(json!("hunter2")).unwrap();
        assert!(!format!("{plain:?}").contains("hunter2"));
    }

    #[test]
    fn a_signature_config_reads_presets_and_lists() {
        let config: SignatureConfig = serde_json::from_value(json!({
            "preset": "standard-webhooks",
            "secret": [{"env": "NEW"}, {"env": "OLD"}],
        }))
        .unwrap();
        assert_eq!(config.preset, SignaturePreset::StandardWebhooks);
        assert_eq!(config.secret.refs().len(), 2);
        assert_eq!(config.tolerance(), 300);
    }
}
