//! `standard-webhooks` (Svix, Clerk, Resend, ...), as the official Python libraries
//! `standardwebhooks` 1.3.0 and `svix` 2.9.1 verify it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{Failure, Signed, cost, mac, same_text};
use crate::model::HmacAlgorithm;

/// `svix`'s `Webhook.verify` reads each `svix-*` header first and falls back to its
/// `webhook-*` name, one header at a time: a present `svix-*` header wins even when
/// empty (and is then refused as missing).
const HEADERS: [(&str, &str); 3] = [
    ("svix-id", "webhook-id"),
    ("svix-timestamp", "webhook-timestamp"),
    ("svix-signature", "webhook-signature"),
];

pub(super) fn verify(
    secrets: &[&str],
    request: &Signed<'_>,
    tolerance: i64,
) -> Result<(), Failure> {
    let [id, timestamp, signatures] = HEADERS.map(|(svix, standard)| {
        let (name, value) = match request.headers.get(svix) {
            Some(value) => (svix, value),
            None => (
                standard,
                request
                    .headers
                    .get(standard)
                    .ok_or_else(|| missing(svix, standard))?,
            ),
        };
        cost::at_most_header_bytes(name, value.as_bytes())?;
        Some(value.to_str().map(str::trim).unwrap_or(""))
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing(svix, standard))
    });
    let (id, timestamp, signatures) = (id?, timestamp?, signatures?);
    let signed_at = timestamp_seconds(timestamp, request.now, tolerance)?;
    // The library splits on single spaces and compares whole `v1,<base64>` texts:
    // each token is a candidate, whatever it holds.
    let candidates: Vec<&str> = signatures.split(' ').collect();
    cost::at_most_candidates(candidates.len(), "space-separated")?;
    let keys: Vec<Vec<u8>> = secrets.iter().map(|s| key(s)).collect::<Result<_, _>>()?;
    // Every key and candidate is tried (no early exit): the time taken does not
    // tell which one matched. One MAC per key, compared with each candidate.
    let found = keys.iter().fold(false, |found, key| {
        let expected = signature(key, id, signed_at, request.body);
        candidates.iter().fold(found, |found, candidate| {
            same_text(&expected, candidate) | found
        })
    });
    if found {
        Ok(())
    } else {
        Err(Failure::Mismatch)
    }
}

fn missing(svix: &str, standard: &str) -> Failure {
    Failure::MissingHeader(format!("{standard} (or {svix})"))
}

/// `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`.
pub(super) fn signature(key: &[u8], id: &str, signed_at: i64, body: &[u8]) -> String {
    let ts = signed_at.to_string();
    let raw = mac(
        HmacAlgorithm::Sha256,
        key,
        &[id.as_bytes(), b".", ts.as_bytes(), b".", body],
    );
    format!("v1,{}", STANDARD.encode(raw))
}

/// The library reads the timestamp as a float (`1614265330.5` is accepted), checks
/// it against now ± the tolerance, and signs its floor as an integer.
fn timestamp_seconds(text: &str, now: i64, tolerance: i64) -> Result<i64, Failure> {
    let at: f64 = text
        .parse()
        .ok()
        .filter(|t: &f64| t.is_finite())
        .ok_or_else(|| Failure::BadFormat("the timestamp is not a number".into()))?;
    let (now, tolerance) = (now as f64, tolerance as f64);
    if at < now - tolerance || at > now + tolerance {
        return Err(Failure::StaleTimestamp);
    }
    Ok(at.floor() as i64)
}

/// The key inside `whsec_<base64>`. The library decodes `<secret without the
/// prefix>==` with Python's lenient `base64.b64decode`, so a secret without its
/// padding is accepted; an empty key is refused.
pub(super) fn key(secret: &str) -> Result<Vec<u8>, Failure> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    python_b64decode(&format!("{encoded}=="))
        .filter(|key| !key.is_empty())
        .ok_or_else(|| {
            Failure::BadFormat(
                "the configured secret is not whsec_<base64> (a configuration error)".into(),
            )
        })
}

/// CPython's `binascii.a2b_base64` in its default (non-strict) mode, which
/// `base64.b64decode` runs: bytes outside the standard alphabet are skipped, a
/// complete padding ends the input, leftover low bits are dropped, and a last group
/// of one character is an error (as is any non-ASCII text).
fn python_b64decode(text: &str) -> Option<Vec<u8>> {
    if !text.is_ascii() {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut quad, mut left, mut pads) = (0u8, 0u8, 0u8);
    for c in text.bytes() {
        if c == b'=' {
            if quad >= 2 {
                pads += 1;
                if quad + pads >= 4 {
                    return Some(out);
                }
            }
            continue;
        }
        let Some(v) = sextet(c) else { continue };
        pads = 0;
        match quad {
            0 => left = v,
            1 => {
                out.push((left << 2) | (v >> 4));
                left = v & 0x0f;
            }
            2 => {
                out.push((left << 4) | (v >> 2));
                left = v & 0x03;
            }
            _ => out.push((left << 6) | v),
        }
        quad = (quad + 1) % 4;
    }
    (quad == 0).then_some(out)
}

fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_decode_as_pythons_b64decode_does() {
        // Each expected value is what `standardwebhooks.Webhook(secret)._whsecret`
        // holds in the Python library (1.3.0), as hex; None where it raises.
        let cases: [(&str, Option<&str>); 11] = [
            (
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                Some("31f290f6bf06298aab4f08d43c3f082cf648a362da2da4b0"),
            ),
            ("whsec_aGVsbG8", Some("68656c6c6f")),
            ("whsec_aGVsbG8=", Some("68656c6c6f")),
            ("whsec_aGVsbA", Some("68656c6c")),
            ("whsec_aGVsbG8\n", Some("68656c6c6f")),
            ("aGVsbG8", Some("68656c6c6f")),
            ("whsec_aGV-sbG8", Some("68656c6c6f")),
            ("whsec_aGVsbG9", Some("68656c6c6f")),
            ("whsec_aGVsb", None),
            ("whsec_", None),
            ("whsec_é", None),
        ];
        for (secret, expected) in cases {
            assert_eq!(
                key(secret).ok().map(hex::encode).as_deref(),
                expected,
                "{secret:?}"
            );
        }
    }
}
