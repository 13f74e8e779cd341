//! `twilio`, as the official Python library's `RequestValidator.validate` (twilio
//! 9.13.0) verifies it: form bodies are signed with the URL, any other body through
//! the `bodySHA256` query parameter Twilio adds to the URL.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use super::{Failure, Signed, header, mac, same_text};
use crate::lang::media;
use crate::model::{HmacAlgorithm, SignatureConfig};

const BODY_HASH: &str = "bodySHA256";
/// Twilio's SharedKey signatures name their algorithm here
/// (`key=<id>,algorithm=HMAC_SHA256`); without it the Auth Token signs with SHA-1.
const SETTINGS_HEADER: &str = "x-twilio-webhooks-signature-settings";

pub(super) fn verify(
    config: &SignatureConfig,
    secrets: &[&str],
    request: &Signed<'_>,
) -> Result<(), Failure> {
    let received = header(request.headers, "x-twilio-signature")?;
    let algorithm = algorithm(request)?;
    let is_form = request
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(media::is_form_type);
    let url = signed_url(config.public_url.as_deref(), request.url, is_form);
    let params: &[(String, String)] = if is_form {
        request.form
    } else {
        // Any other body is signed through its hash in the URL; the URL alone is
        // signed. Without that hash the body would be unauthenticated (the library
        // fails on it too), so only an empty body may come without one.
        match query_value(&url, BODY_HASH) {
            Some(hash) => {
                let actual = hex::encode(Sha256::digest(request.body));
                if !same_text(&actual, &hash) {
                    return Err(Failure::Mismatch);
                }
            }
            None if request.body.is_empty() => {}
            None => {
                return Err(Failure::BadFormat(format!(
                    "a body that is not a form needs the {BODY_HASH} query parameter Twilio adds"
                )));
            }
        }
        &[]
    };
    let variants = port_variants(&url);
    let found = secrets.iter().fold(false, |found, secret| {
        let key = secret.as_bytes();
        variants.iter().fold(found, |found, url| {
            same_text(&signature(algorithm, key, url, params), received) | found
        })
    });
    if found {
        Ok(())
    } else {
        Err(Failure::Mismatch)
    }
}

/// base64 HMAC(token, url + each name and value): names sorted, and each name's
/// values sorted, a repeated name=value pair counted once (the library's
/// `sorted(set(...))`).
pub(super) fn signature(
    algorithm: HmacAlgorithm,
    key: &[u8],
    url: &str,
    params: &[(String, String)],
) -> String {
    let mut fields: Vec<&(String, String)> = params.iter().collect();
    fields.sort();
    fields.dedup();
    let mut signed: Vec<&[u8]> = vec![url.as_bytes()];
    for (name, value) in fields {
        signed.push(name.as_bytes());
        signed.push(value.as_bytes());
    }
    STANDARD.encode(mac(algorithm, key, &signed))
}

/// The URL Twilio calls for a JSON body: the configured one with the body's hash
/// appended (`hookflow sign --json`).
pub fn json_url(url: &str, body: &[u8]) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    let hash = hex::encode(Sha256::digest(body));
    format!("{url}{separator}{BODY_HASH}={hash}")
}

fn algorithm(request: &Signed<'_>) -> Result<HmacAlgorithm, Failure> {
    let settings = request
        .headers
        .get(SETTINGS_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let named = settings.split(',').find_map(|part| {
        let (name, value) = part.split_once('=')?;
        (name.trim() == "algorithm" && !value.trim().is_empty()).then(|| value.trim())
    });
    match named.map(str::to_ascii_uppercase).as_deref() {
        None | Some("HMAC_SHA1") => Ok(HmacAlgorithm::Sha1),
        Some("HMAC_SHA256") => Ok(HmacAlgorithm::Sha256),
        Some(_) => Err(Failure::BadFormat(format!(
            "{SETTINGS_HEADER} names an algorithm hookflow does not know"
        ))),
    }
}

/// The URL signed: `publicUrl` when set (behind a proxy), with the received
/// `bodySHA256` appended for a body that is not a form, since Twilio adds it to the
/// URL it was given; else the URL as received.
fn signed_url(public_url: Option<&str>, received: &str, is_form: bool) -> String {
    match public_url {
        None => received.to_string(),
        Some(public) => match query_value(received, BODY_HASH) {
            Some(hash) if !is_form && query_value(public, BODY_HASH).is_none() => {
                let separator = if public.contains('?') { '&' } else { '?' };
                format!("{public}{separator}{BODY_HASH}={hash}")
            }
            _ => public.to_string(),
        },
    }
}

/// The first non-empty value of `name` in the URL's query, decoded (Python's
/// `parse_qs`, which drops blank values).
fn query_value(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(n, v)| n == name && !v.is_empty())
        .map(|(_, v)| v.into_owned())
}

/// The library accepts a signature over the URL without its port or with the
/// scheme's default one (443 for https, else 80), "since signature generation on
/// Twilio's side is inconsistent". Like its `geturl()`, an empty `?` is dropped and
/// the scheme lowercased.
fn port_variants(url: &str) -> Vec<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return vec![url.to_string()];
    };
    let scheme = scheme.to_ascii_lowercase();
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let tail = tail.strip_suffix('?').unwrap_or(tail);
    let host_start = authority.rfind('@').map_or(0, |at| at + 1);
    let host_port = &authority[host_start..];
    let port_at = match host_port.rfind(']') {
        Some(bracket) => host_port[bracket..].find(':').map(|i| bracket + i),
        None => host_port.rfind(':'),
    }
    .filter(|&colon| {
        let port = &host_port[colon + 1..];
        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
    });
    let without = &authority[..host_start + port_at.unwrap_or(host_port.len())];
    let default_port = if scheme == "https" { 443 } else { 80 };
    let with = match port_at {
        Some(_) => authority.to_string(),
        None => format!("{authority}:{default_port}"),
    };
    vec![
        format!("{scheme}://{without}{tail}"),
        format!("{scheme}://{with}{tail}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_tried_without_and_with_the_port() {
        for (url, expected) in [
            (
                "https://h.example/x?a=1",
                ["https://h.example/x?a=1", "https://h.example:443/x?a=1"],
            ),
            (
                "https://h.example:443/x",
                ["https://h.example/x", "https://h.example:443/x"],
            ),
            (
                "http://h.example:8080",
                ["http://h.example", "http://h.example:8080"],
            ),
            (
                "HTTP://h.example/x?",
                ["http://h.example/x", "http://h.example:80/x"],
            ),
            (
                "https://u:p@[::1]:9/x",
                ["https://u:p@[::1]/x", "https://u:p@[::1]:9/x"],
            ),
        ] {
            assert_eq!(port_variants(url), expected, "{url}");
        }
    }

    #[test]
    fn the_body_hash_is_appended_to_the_public_url_for_other_bodies_only() {
        let received = "http://10.0.0.5/x?bodySHA256=ab";
        let public = Some("https://hooks.example/sms");
        assert_eq!(
            signed_url(public, received, false),
            "https://hooks.example/sms?bodySHA256=ab"
        );
        assert_eq!(
            signed_url(public, received, true),
            "https://hooks.example/sms"
        );
        assert_eq!(
            signed_url(Some("https://hooks.example/sms?k=1"), received, false),
            "https://hooks.example/sms?k=1&bodySHA256=ab"
        );
        assert_eq!(signed_url(None, received, false), received);
    }
}
