//! What checking a signature may cost, whatever a sender puts in its headers: each
//! secret's MAC is computed once and compared with every candidate (stripe.rs,
//! standard_webhooks.rs), a header is read up to [`MAX_HEADER_BYTES`] and carries at
//! most [`MAX_CANDIDATES`] signatures, and a MAC over a large body runs on a blocking
//! thread, never on one of the threads that answer requests.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request};

use super::{Failure, Signed, verify};
use crate::model::SignatureConfig;

/// The longest signature header read. A genuine one is far shorter: Stripe's
/// `t=...,v1=<64 hex>` with one `v1` per active secret, Standard Webhooks'
/// `v1,<44 base64>` per active secret, a generic HMAC-SHA512 in hex is 128.
pub const MAX_HEADER_BYTES: usize = 4096;

/// The most signatures a Stripe `v1=` list or a Standard Webhooks header may carry.
/// The official libraries read any number, but their senders put one per active
/// secret: two during a rotation, rarely three. A header with more is refused as
/// such (401 naming the cap), rather than its first few read, so that the sender
/// learns why.
pub const MAX_CANDIDATES: usize = 8;

/// Bodies up to this size are checked inline: HMAC-SHA256 of 64 KiB takes about
/// 0.2 ms; of 1 MiB, 2 to 4 ms, too long to hold a thread that answers requests.
pub const INLINE_BODY_BYTES: usize = 64 * 1024;

/// Refuses a header carrying more than [`MAX_CANDIDATES`] signatures.
pub(super) fn at_most_candidates(count: usize, what: &str) -> Result<(), Failure> {
    if count > MAX_CANDIDATES {
        return Err(Failure::Oversized(format!(
            "it carries {count} {what} signatures, at most {MAX_CANDIDATES} are read"
        )));
    }
    Ok(())
}

/// Refuses a header value longer than [`MAX_HEADER_BYTES`].
pub(super) fn at_most_header_bytes(name: &str, value: &[u8]) -> Result<(), Failure> {
    if value.len() > MAX_HEADER_BYTES {
        return Err(Failure::Oversized(format!(
            "{} is {} bytes long, at most {MAX_HEADER_BYTES} are read",
            name.to_ascii_lowercase(),
            value.len()
        )));
    }
    Ok(())
}

/// Verifies `request` (whose Twilio-signed `url` and `form` the caller has read)
/// against `config` with the resolved `secrets`: inline for a small body, else on a
/// blocking thread.
pub async fn verify_request(
    config: &SignatureConfig,
    secrets: Vec<Arc<str>>,
    request: &Request<Bytes>,
    url: String,
    form: Vec<(String, String)>,
    now: i64,
) -> Result<(), Failure> {
    if request.body().len() <= INLINE_BODY_BYTES {
        let signed = Signed {
            headers: request.headers(),
            body: request.body(),
            url: &url,
            form: &form,
            now,
        };
        return verify(config, &secrets, &signed);
    }
    // Owned copies for the blocking thread: the body is shared, not copied.
    let (config, headers, body): (SignatureConfig, HeaderMap, Bytes) = (
        config.clone(),
        request.headers().clone(),
        request.body().clone(),
    );
    let checked = tokio::task::spawn_blocking(move || {
        let signed = Signed {
            headers: &headers,
            body: &body,
            url: &url,
            form: &form,
            now,
        };
        verify(&config, &secrets, &signed)
    })
    .await;
    match checked {
        Ok(checked) => checked,
        // A panic stays a panic: the request's guard answers it.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => panic!("the signature check was cancelled: the runtime is shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use http::{HeaderName, HeaderValue};
    use serde_json::json;

    use super::*;
    use crate::webhook::signature::sign;

    const NOW: i64 = 1_700_000_000;
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn config(preset: &str) -> SignatureConfig {
        serde_json::from_value(json!({"preset": preset, "secret": "x"})).unwrap()
    }

    fn request(body: &[u8], pairs: &[(&str, String)]) -> Request<Bytes> {
        let mut request = Request::new(Bytes::copy_from_slice(body));
        for (name, value) in pairs {
            request.headers_mut().append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        request
    }

    fn check(preset: &str, body: &[u8], pairs: &[(&str, String)]) -> Result<(), Failure> {
        let request = request(body, pairs);
        let signed = Signed {
            headers: request.headers(),
            body: request.body(),
            url: "",
            form: &[],
            now: NOW,
        };
        verify(&config(preset), &[SECRET], &signed)
    }

    /// What the sender's official signer puts in its headers for `body`.
    fn genuine(preset: &str, body: &[u8]) -> Vec<(String, String)> {
        sign(&config(preset), SECRET, body, "", &[], NOW, "msg_1").unwrap()
    }

    /// Stripe's header with `junk` wrong `v1=` entries before the genuine one.
    fn stripe_header(body: &[u8], junk: &str, count: usize) -> Vec<(&'static str, String)> {
        let signed = genuine("stripe", body).remove(0).1;
        let (t, v1) = signed.split_once(',').unwrap();
        let junk = format!("v1={junk},").repeat(count);
        vec![("stripe-signature", format!("{t},{junk}{v1}"))]
    }

    /// Standard Webhooks' headers with `count` wrong tokens before the genuine one.
    fn standard_headers(body: &[u8], junk: &str, count: usize) -> Vec<(&'static str, String)> {
        let signed = genuine("standard-webhooks", body);
        let junk = format!("{junk} ").repeat(count);
        vec![
            ("webhook-id", signed[0].1.clone()),
            ("webhook-timestamp", signed[1].1.clone()),
            ("webhook-signature", format!("{junk}{}", signed[2].1)),
        ]
    }

    fn is_oversized(checked: &Result<(), Failure>) -> bool {
        matches!(checked, Err(f) if f.class() == "oversized header")
    }

    #[test]
    fn six_thousand_candidates_are_refused_as_oversized() {
        let body = br#"{"id":"evt_1"}"#;
        let stripe = check("stripe", body, &stripe_header(body, "", 6000));
        assert!(is_oversized(&stripe), "{stripe:?}");
        let standard = check(
            "standard-webhooks",
            body,
            &standard_headers(body, "v1,", 6000),
        );
        assert!(is_oversized(&standard), "{standard:?}");
    }

    #[test]
    fn more_than_eight_candidates_are_refused_naming_the_cap() {
        let body = br#"{"id":"evt_1"}"#;
        let wrong_hex = "00".repeat(32);
        // Nine candidates, the genuine one last: a header well under 4 KiB.
        let stripe = check("stripe", body, &stripe_header(body, &wrong_hex, 8));
        let message = stripe.as_ref().unwrap_err().to_string();
        assert!(is_oversized(&stripe), "{stripe:?}");
        assert!(message.contains("9 v1= signatures, at most 8"), "{message}");
        let wrong_b64 = format!("v1,{}", "A".repeat(43));
        let standard = check(
            "standard-webhooks",
            body,
            &standard_headers(body, &wrong_b64, 8),
        );
        assert!(is_oversized(&standard), "{standard:?}");
    }

    #[test]
    fn a_genuine_signature_among_eight_candidates_verifies() {
        let body = br#"{"id":"evt_1"}"#;
        let wrong_hex = "00".repeat(32);
        assert_eq!(
            check("stripe", body, &stripe_header(body, &wrong_hex, 7)),
            Ok(())
        );
        let wrong_b64 = format!("v1,{}", "A".repeat(43));
        assert_eq!(
            check(
                "standard-webhooks",
                body,
                &standard_headers(body, &wrong_b64, 7)
            ),
            Ok(())
        );
        // Eight wrong ones are eight mismatches, not an oversized header.
        let eight_wrong = format!("t={NOW},{}", format!("v1={wrong_hex},").repeat(8));
        let eight_wrong = eight_wrong.trim_end_matches(',').to_string();
        assert_eq!(
            check("stripe", body, &[("stripe-signature", eight_wrong)]),
            Err(Failure::Mismatch)
        );
    }

    #[test]
    fn a_header_past_4_kib_is_refused_before_any_mac() {
        let body = b"Hello, World!";
        let long = format!("sha256={}", "00".repeat(2100));
        let github = check("github", body, &[("x-hub-signature-256", long)]);
        assert!(is_oversized(&github), "{github:?}");
        let padded = format!("{}{}", "x=1,".repeat(1100), stripe_header(body, "", 0)[0].1);
        let stripe = check("stripe", body, &[("stripe-signature", padded)]);
        assert!(is_oversized(&stripe), "{stripe:?}");
    }

    #[tokio::test]
    async fn a_large_body_is_checked_off_the_thread_that_answers() {
        let body = vec![b'x'; 1 << 20];
        let pairs = stripe_header(&body, "", 0);
        let delivery = request(&body, &pairs);
        let secrets: Vec<Arc<str>> = vec![SECRET.into()];
        let stripe = config("stripe");
        // On this single-threaded runtime, the other task runs before the check
        // completes only if the check let go of the thread while its MAC ran.
        // Inline, that never happens; off the thread, it does unless this thread
        // was descheduled for the whole MAC (a loaded machine): one try in five
        // is enough to tell.
        let mut let_go = false;
        for _ in 0..5 {
            let other_ran = Cell::new(false);
            let ((checked, other_ran_first), ()) = tokio::join!(
                async {
                    let checked = verify_request(
                        &stripe,
                        secrets.clone(),
                        &delivery,
                        String::new(),
                        vec![],
                        NOW,
                    )
                    .await;
                    (checked, other_ran.get())
                },
                async { other_ran.set(true) },
            );
            assert_eq!(checked, Ok(()));
            let_go |= other_ran_first;
        }
        assert!(
            let_go,
            "the MAC of a 1 MiB body ran on the answering thread"
        );

        let hostile = request(&body, &stripe_header(&body, "", 6000));
        let refused = verify_request(&stripe, secrets, &hostile, String::new(), vec![], NOW).await;
        assert!(is_oversized(&refused), "{refused:?}");
    }
}
