//! `trigger.signature` (inbound.md §2): each preset's header, signed bytes and
//! encoding, verified over the exact bytes received, in constant time (the MAC
//! crates' `verify_slice`), against every configured secret (rotation).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::model::{HmacAlgorithm, SignatureConfig, SignatureEncoding, SignaturePreset};

/// Why a signature was refused: the class is logged, the message answered. Neither
/// ever holds a secret or an expected value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    MissingHeader(String),
    BadFormat(String),
    StaleTimestamp,
    Mismatch,
}

impl Failure {
    pub fn class(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing header",
            Self::BadFormat(_) => "bad format",
            Self::StaleTimestamp => "stale timestamp",
            Self::Mismatch => "mismatch",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::MissingHeader(name) => format!("the signature header {name} is missing"),
            Self::BadFormat(what) => format!("the signature is malformed: {what}"),
            Self::StaleTimestamp => {
                "the signature's timestamp is outside the accepted window".to_string()
            }
            Self::Mismatch => "the signature does not match".to_string(),
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
    let fresh = |ts: &str| -> Result<Vec<u8>, Failure> {
        let at: i64 = ts
            .trim()
            .parse()
            .map_err(|_| Failure::BadFormat("the timestamp is not a number".into()))?;
        if request.now.abs_diff(at) > tolerance.unsigned_abs() {
            return Err(Failure::StaleTimestamp);
        }
        Ok(ts.trim().as_bytes().to_vec())
    };
    match config.preset {
        SignaturePreset::Github => {
            let value = header(request.headers, "x-hub-signature-256")?;
            let hex_sig = value
                .strip_prefix("sha256=")
                .ok_or_else(|| Failure::BadFormat("expected sha256=<hex>".into()))?;
            let sig = decode(hex_sig, SignatureEncoding::Hex)?;
            any_secret(secrets, |key| {
                matches(HmacAlgorithm::Sha256, key, &[request.body], &sig)
            })
        }
        SignaturePreset::Shopify => {
            let sig = decode(
                header(request.headers, "x-shopify-hmac-sha256")?,
                SignatureEncoding::Base64,
            )?;
            any_secret(secrets, |key| {
                matches(HmacAlgorithm::Sha256, key, &[request.body], &sig)
            })
        }
        SignaturePreset::Stripe => {
            let value = header(request.headers, "stripe-signature")?;
            let mut timestamp = None;
            let mut candidates = Vec::new();
            for part in value.split(',') {
                match part.trim().split_once('=') {
                    Some(("t", t)) => timestamp = Some(t),
                    Some(("v1", sig)) => candidates.push(decode(sig, SignatureEncoding::Hex)?),
                    _ => {}
                }
            }
            let ts = fresh(timestamp.ok_or_else(|| Failure::BadFormat("no t=".into()))?)?;
            if candidates.is_empty() {
                return Err(Failure::BadFormat("no v1= signature".into()));
            }
            any_secret(secrets, |key| {
                candidates
                    .iter()
                    .any(|sig| matches(HmacAlgorithm::Sha256, key, &[&ts, b".", request.body], sig))
            })
        }
        SignaturePreset::Slack => {
            let value = header(request.headers, "x-slack-signature")?;
            let ts = fresh(header(request.headers, "x-slack-request-timestamp")?)?;
            let sig = decode(
                value
                    .strip_prefix("v0=")
                    .ok_or_else(|| Failure::BadFormat("expected v0=<hex>".into()))?,
                SignatureEncoding::Hex,
            )?;
            any_secret(secrets, |key| {
                matches(
                    HmacAlgorithm::Sha256,
                    key,
                    &[b"v0:", &ts, b":", request.body],
                    &sig,
                )
            })
        }
        SignaturePreset::StandardWebhooks => {
            let id = header(request.headers, "webhook-id")?;
            let ts = fresh(header(request.headers, "webhook-timestamp")?)?;
            let value = header(request.headers, "webhook-signature")?;
            let candidates: Vec<Vec<u8>> = value
                .split_whitespace()
                .filter_map(|s| s.strip_prefix("v1,"))
                .map(|sig| decode(sig, SignatureEncoding::Base64))
                .collect::<Result<_, _>>()?;
            if candidates.is_empty() {
                return Err(Failure::BadFormat("no v1,<base64> signature".into()));
            }
            let keys: Vec<Vec<u8>> = secrets
                .iter()
                .map(|s| standard_webhooks_key(s.as_ref()))
                .collect::<Result<_, _>>()?;
            let signed: [&[u8]; 5] = [id.as_bytes(), b".", &ts, b".", request.body];
            let found = keys.iter().any(|key| {
                candidates
                    .iter()
                    .any(|sig| matches(HmacAlgorithm::Sha256, key, &signed, sig))
            });
            if found {
                Ok(())
            } else {
                Err(Failure::Mismatch)
            }
        }
        SignaturePreset::Twilio => {
            let sig = decode(
                header(request.headers, "x-twilio-signature")?,
                SignatureEncoding::Base64,
            )?;
            let url = config.public_url.as_deref().unwrap_or(request.url);
            let signed = twilio_signed(url, request.form);
            any_secret(secrets, |key| {
                matches(HmacAlgorithm::Sha1, key, &signed, &sig)
            })
        }
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
                    let ts = fresh(header(request.headers, ts_header)?)?;
                    let ts = String::from_utf8_lossy(&ts).into_owned();
                    let format = config
                        .signed_payload
                        .as_deref()
                        .unwrap_or("{timestamp}.{body}");
                    fill_payload(format, &ts, request.body)
                }
            };
            any_secret(secrets, |key| matches(algorithm, key, &[&signed], &sig))
        }
    }
}

/// What Twilio signs: the URL, then each form field's name and value, sorted.
fn twilio_signed<'a>(url: &'a str, form: &'a [(String, String)]) -> Vec<&'a [u8]> {
    let mut fields: Vec<&(String, String)> = form.iter().collect();
    fields.sort();
    let mut signed: Vec<&[u8]> = vec![url.as_bytes()];
    for (name, value) in fields {
        signed.push(name.as_bytes());
        signed.push(value.as_bytes());
    }
    signed
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

/// A Standard Webhooks secret is `whsec_<base64 key>`; the key is the decoded bytes.
fn standard_webhooks_key(secret: &str) -> Result<Vec<u8>, Failure> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD.decode(encoded).map_err(|_| {
        Failure::BadFormat(
            "the configured secret is not whsec_<base64> (a configuration error)".into(),
        )
    })
}

fn any_secret<S: AsRef<str>>(secrets: &[S], check: impl Fn(&[u8]) -> bool) -> Result<(), Failure> {
    // Every secret is tried (no early exit), so the time taken does not tell
    // which one matched.
    let found = secrets.iter().fold(false, |found, secret| {
        check(secret.as_ref().as_bytes()) | found
    });
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

/// Whether HMAC(key, parts...) equals `expected`, compared in constant time (the
/// length of a MAC is public; its bytes are compared without an early exit).
fn matches(algorithm: HmacAlgorithm, key: &[u8], parts: &[&[u8]], expected: &[u8]) -> bool {
    mac(algorithm, key, parts).ct_eq(expected).into()
}

/// The signature a sender would put in its header(s) for `body`: for `hookflow
/// sign` and tests. Returns header name/value pairs.
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
            let key = standard_webhooks_key(secret).map_err(|f| f.message())?;
            let sig = mac(
                sha256,
                &key,
                &[message_id.as_bytes(), b".", ts.as_bytes(), b".", body],
            );
            vec![
                ("webhook-id".into(), message_id.into()),
                ("webhook-timestamp".into(), ts.clone()),
                (
                    "webhook-signature".into(),
                    format!("v1,{}", STANDARD.encode(sig)),
                ),
            ]
        }
        SignaturePreset::Twilio => {
            let url = config.public_url.as_deref().unwrap_or(url);
            let signed = twilio_signed(url, form);
            vec![(
                "X-Twilio-Signature".into(),
                STANDARD.encode(mac(HmacAlgorithm::Sha1, key, &signed)),
            )]
        }
        SignaturePreset::Hmac => {
            let algorithm = config.algorithm.unwrap_or(HmacAlgorithm::Sha256);
            let mut headers = Vec::new();
            let signed = match config.timestamp_header.as_deref() {
                None => body.to_vec(),
                Some(name) => {
                    headers.push((name.to_string(), ts.clone()));
                    let format = config
                        .signed_payload
                        .as_deref()
                        .unwrap_or("{timestamp}.{body}");
                    fill_payload(format, &ts, body)
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

#[cfg(test)]
mod tests;
