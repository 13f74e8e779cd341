//! `stripe`, as the official Python library's `WebhookSignature.verify_header`
//! (stripe 16.1.0) verifies it.

use super::{Failure, Signed, any_secret, cost, header, mac, same_text};
use crate::model::HmacAlgorithm;

pub(super) fn verify(
    secrets: &[&str],
    request: &Signed<'_>,
    tolerance: i64,
) -> Result<(), Failure> {
    let (at, candidates) = parse(header(request.headers, "stripe-signature")?)?;
    // Stripe refuses a timestamp older than the tolerance only: one ahead of the
    // receiver's clock is accepted (it is inside the MAC, so only Stripe can set it).
    if at < request.now.saturating_sub(tolerance) {
        return Err(Failure::StaleTimestamp);
    }
    let ts = at.to_string();
    // One MAC per secret, compared with each candidate: never one per candidate.
    any_secret(secrets, |key| {
        let raw = mac(
            HmacAlgorithm::Sha256,
            key,
            &[ts.as_bytes(), b".", request.body],
        );
        let expected = hex::encode(raw);
        candidates
            .iter()
            .fold(false, |found, sig| same_text(&expected, sig) | found)
    })
}

/// `t=<unix>,v1=<hex>,...`: items split on `,`, each on its first `=`s (no
/// trimming: ` t=` is another key); the first `t` is the timestamp (an integer,
/// signed in its canonical form), every `v1` a candidate compared as text. A `t`
/// or `v1` item without `=` makes the whole header unreadable.
fn parse(value: &str) -> Result<(i64, Vec<&str>), Failure> {
    let mut at = None;
    let mut candidates = Vec::new();
    for item in value.split(',') {
        let mut parts = item.splitn(3, '=');
        let key = parts.next().unwrap_or("");
        if key != "t" && key != "v1" {
            continue;
        }
        let value = parts
            .next()
            .ok_or_else(|| Failure::BadFormat(format!("{key} without a value")))?;
        if key == "v1" {
            candidates.push(value);
        } else if at.is_none() {
            at = Some(value);
        }
    }
    let at = at
        .ok_or_else(|| Failure::BadFormat("no t=".into()))?
        .trim()
        .parse()
        .map_err(|_| Failure::BadFormat("the timestamp is not a number".into()))?;
    if candidates.is_empty() {
        return Err(Failure::BadFormat("no v1= signature".into()));
    }
    cost::at_most_candidates(candidates.len(), "v1=")?;
    Ok((at, candidates))
}
