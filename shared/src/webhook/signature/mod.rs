//! `trigger.signature` (inbound.md §2): each preset's header, signed bytes and
//! encoding, verified over the exact bytes received as its provider's official
//! library verifies them (named in each preset's code and in docs/workflows.md),
//! compared in constant time, against every configured secret (rotation), at a
//! bounded cost (cost.rs).

mod cost;
mod sign;
mod standard_webhooks;
mod stripe;
mod twilio;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::model::{HmacAlgorithm, SignatureConfig, SignatureEncoding, SignaturePreset};

pub use cost::{INLINE_BODY_BYTES, MAX_CANDIDATES, MAX_HEADER_BYTES, verify_request};
pub use sign::sign;
pub use twilio::json_url as twilio_json_url;

/// Why a signature was refused: the class is logged, the message (`Display`)
/// answered. Neither ever holds a secret or an expected value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("the signature header {0} is missing")]
    MissingHeader(String),
    #[error("the signature is malformed: {0}")]
    BadFormat(String),
    #[error("the signature's timestamp is outside the accepted window")]
    StaleTimestamp,
    #[error("the signature does not match")]
    Mismatch,
    /// A header past a cost cap (cost.rs): refused before any MAC.
    #[error("the signature header is too large: {0}")]
    Oversized(String),
}

impl Failure {
    pub fn class(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing header",
            Self::BadFormat(_) => "bad format",
            Self::StaleTimestamp => "stale timestamp",
            Self::Mismatch => "mismatch",
            Self::Oversized(_) => "oversized header",
        }
    }
}

/// A request as a signature sees it.
pub struct Signed<'a> {
    pub headers: &'a HeaderMap,
    /// The exact bytes received.
    pub body: &'a [u8],
    /// The URL as received (scheme, host, path, query): Twilio signs it.
    pub url: &'a str,
    /// Form fields in the order received (Twilio signs them sorted).
    pub form: &'a [(String, String)],
    /// Now, in unix seconds.
    pub now: i64,
}

/// Verifies `request` against `config` with the resolved `secrets` (any may match).
pub fn verify<S: AsRef<str>>(
    config: &SignatureConfig,
    secrets: &[S],
    request: &Signed<'_>,
) -> Result<(), Failure> {
    let tolerance = i64::try_from(config.tolerance()).unwrap_or(i64::MAX);
    // An empty secret would let anyone sign; the official libraries refuse one.
    let secrets: Vec<&str> = secrets
        .iter()
        .map(AsRef::as_ref)
        .filter(|s| !s.trim().is_empty())
        .collect();
    let sha256 = HmacAlgorithm::Sha256;
    match config.preset {
        SignaturePreset::Github => {
            // @octokit/webhooks-methods 6.0.0 `verify`: `sha256=<lowercase hex>`
            // compared as text; an empty payload is refused.
            let value = header(request.headers, "x-hub-signature-256")?;
            value
                .strip_prefix("sha256=")
                .filter(|sig| hex::decode(sig).is_ok())
                .ok_or_else(|| Failure::BadFormat("expected sha256=<hex>".into()))?;
            non_empty(request.body)?;
            any_secret(&secrets, |key| {
                let raw = mac(sha256, key, &[request.body]);
                same_text(&format!("sha256={}", hex::encode(raw)), value)
            })
        }
        SignaturePreset::Shopify => {
            // @shopify/shopify-api 15.0.0 `webhooks.validate`: the events header
            // first, base64 compared as text, an empty body refused.
            let value = header(request.headers, "shopify-hmac-sha256")
                .or_else(|_| header(request.headers, "x-shopify-hmac-sha256"))?;
            non_empty(request.body)?;
            any_secret(&secrets, |key| {
                same_text(&STANDARD.encode(mac(sha256, key, &[request.body])), value)
            })
        }
        SignaturePreset::Stripe => stripe::verify(&secrets, request, tolerance),
        SignaturePreset::Slack => {
            // slack_sdk 3.48.0 `SignatureVerifier.is_valid`: the timestamp signed as
            // received, `v0=<hex>` compared as text.
            let value = header(request.headers, "x-slack-signature")?;
            let ts = header(request.headers, "x-slack-request-timestamp")?;
            fresh(ts, request.now, tolerance)?;
            if !value.starts_with("v0=") {
                return Err(Failure::BadFormat("expected v0=<hex>".into()));
            }
            any_secret(&secrets, |key| {
                let raw = mac(sha256, key, &[b"v0:", ts.as_bytes(), b":", request.body]);
                same_text(&format!("v0={}", hex::encode(raw)), value)
            })
        }
        SignaturePreset::StandardWebhooks => {
            standard_webhooks::verify(&secrets, request, tolerance)
        }
        SignaturePreset::Twilio => twilio::verify(config, &secrets, request),
        SignaturePreset::Hmac => {
            let name = config.header.as_deref().unwrap_or("x-signature");
            let mut value = header(request.headers, name)?;
            if let Some(prefix) = config.prefix.as_deref() {
                value = value
                    .strip_prefix(prefix)
                    .ok_or_else(|| Failure::BadFormat(format!("expected {prefix}<signature>")))?;
            }
            let sig = decode(value, config.encoding.unwrap_or(SignatureEncoding::Hex))?;
            let algorithm = config.algorithm.unwrap_or(HmacAlgorithm::Sha256);
            let signed: Vec<u8> = match config.timestamp_header.as_deref() {
                None => request.body.to_vec(),
                Some(ts_header) => {
                    let ts = header(request.headers, ts_header)?;
                    fresh(ts, request.now, tolerance)?;
                    fill_payload(generic_payload(config), ts, request.body)
                }
            };
            any_secret(&secrets, |key| {
                mac(algorithm, key, &[&signed]).ct_eq(&sig).into()
            })
        }
    }
}

/// An integer timestamp within `tolerance` of `now`, either way.
fn fresh(ts: &str, now: i64, tolerance: i64) -> Result<i64, Failure> {
    let at: i64 = ts
        .parse()
        .map_err(|_| Failure::BadFormat("the timestamp is not a number".into()))?;
    if now.abs_diff(at) > tolerance.unsigned_abs() {
        return Err(Failure::StaleTimestamp);
    }
    Ok(at)
}

fn non_empty(body: &[u8]) -> Result<(), Failure> {
    if body.is_empty() {
        return Err(Failure::BadFormat("the body is empty".into()));
    }
    Ok(())
}

/// The generic preset's `signedPayload` (default `{timestamp}.{body}`).
fn generic_payload(config: &SignatureConfig) -> &str {
    config
        .signed_payload
        .as_deref()
        .unwrap_or("{timestamp}.{body}")
}

/// `signedPayload` with `{timestamp}` and `{body}` filled in (the body as bytes,
/// so it need not be text).
fn fill_payload(format: &str, ts: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(format.len() + body.len());
    for (i, piece) in format.split("{body}").enumerate() {
        if i > 0 {
            out.extend_from_slice(body);
        }
        out.extend_from_slice(piece.replace("{timestamp}", ts).as_bytes());
    }
    out
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, Failure> {
    let value = headers
        .get(name)
        .ok_or_else(|| Failure::MissingHeader(name.to_ascii_lowercase()))?;
    cost::at_most_header_bytes(name, value.as_bytes())?;
    value
        .to_str()
        .map(str::trim)
        .map_err(|_| Failure::BadFormat(format!("{name} is not text")))
}

fn decode(text: &str, encoding: SignatureEncoding) -> Result<Vec<u8>, Failure> {
    match encoding {
        SignatureEncoding::Hex => {
            hex::decode(text.trim()).map_err(|_| Failure::BadFormat("not hexadecimal".into()))
        }
        SignatureEncoding::Base64 => STANDARD
            .decode(text.trim())
            .map_err(|_| Failure::BadFormat("not base64".into())),
    }
}

fn any_secret(secrets: &[&str], check: impl Fn(&[u8]) -> bool) -> Result<(), Failure> {
    // Every secret is tried (no early exit), so the time taken does not tell
    // which one matched.
    let found = secrets
        .iter()
        .fold(false, |found, secret| check(secret.as_bytes()) | found);
    if found {
        Ok(())
    } else {
        Err(Failure::Mismatch)
    }
}

/// HMAC(key, parts...) with `algorithm`.
pub(crate) fn mac(algorithm: HmacAlgorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }
    match algorithm {
        HmacAlgorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, parts),
        HmacAlgorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, parts),
        HmacAlgorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, parts),
    }
}

/// Whether an expected signature equals a received one, as the official libraries
/// compare them: as text (so `ABC` is not `abc`), in constant time for texts of
/// equal length (a signature's length is public).
fn same_text(expected: &str, received: &str) -> bool {
    expected.as_bytes().ct_eq(received.as_bytes()).into()
}

#[cfg(test)]
mod tests;
