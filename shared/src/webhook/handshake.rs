//! `trigger.handshake` (inbound.md §4): the checks a sender makes before it sends
//! events, answered here in the shape each sender expects. No run starts and
//! nothing is recorded.

use bytes::Bytes;
use http::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::refusal::Refusal;
use super::reply;
use super::signature::mac;
use crate::model::{HandshakePreset, HmacAlgorithm};

/// The first value of query parameter `name` (decoded, `+` as a space).
fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A plain-text answer: the challenge echoed back. `nosniff`, so no browser ever
/// reads an echoed value as anything but text.
fn text(value: &str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(value.to_string()));
    reply::set_header(&mut response, "content-type", "text/plain");
    reply::set_header(&mut response, "x-content-type-options", "nosniff");
    response
}

fn hmac_sha256(secret: &str, message: &str) -> Vec<u8> {
    mac(
        HmacAlgorithm::Sha256,
        secret.as_bytes(),
        &[message.as_bytes()],
    )
}

/// Equal in constant time whatever the lengths (both sides hashed first).
fn same(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes())
        .ct_eq(&Sha256::digest(b.as_bytes()))
        .into()
}

/// What a GET handshake needs from the definition, resolved.
pub struct GetSecrets<'a> {
    /// `meta`: the configured verify token.
    pub verify_token: Option<&'a str>,
    /// `crc`: the consumer secret.
    pub secret: Option<&'a str>,
}

/// Answers a GET to a hook whose handshake is checked with a GET (`meta`,
/// `dropbox`, `crc`), or refuses a check that is not its sender's.
pub fn answer_get(
    preset: HandshakePreset,
    query: &str,
    secrets: GetSecrets,
) -> Result<Response<Bytes>, Refusal> {
    match preset {
        HandshakePreset::Meta => {
            let mode = query_param(query, "hub.mode");
            let token = query_param(query, "hub.verify_token");
            let challenge = query_param(query, "hub.challenge");
            match (mode.as_deref(), token, challenge, secrets.verify_token) {
                (Some("subscribe"), Some(token), Some(challenge), Some(expected))
                    if same(&token, expected) =>
                {
                    Ok(text(&challenge))
                }
                _ => Err(Refusal::NotSubscriptionCheck),
            }
        }
        HandshakePreset::Dropbox => match query_param(query, "challenge") {
            Some(challenge) => Ok(text(&challenge)),
            None => Err(Refusal::MissingCheckParameter("challenge")),
        },
        HandshakePreset::Crc => match (query_param(query, "crc_token"), secrets.secret) {
            (None, _) => Err(Refusal::MissingCheckParameter("crc_token")),
            (Some(token), _) if token.contains(CRC_SEPARATOR) => Err(Refusal::BracedCrcToken),
            (Some(_), None) => Err(Refusal::CrcUnkeyed),
            (Some(token), Some(secret)) => {
                use base64::Engine as _;
                let digest =
                    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret, &token));
                Ok(reply::json(
                    StatusCode::OK,
                    &json!({ "response_token": format!("sha256={digest}") }),
                ))
            }
        },
        // POST handshakes: a GET to their hook is a wrong method, answered earlier.
        HandshakePreset::Slack | HandshakePreset::Zoom | HandshakePreset::Msgraph => {
            Err(Refusal::MethodNotAllowed { get_too: false })
        }
    }
}

/// The byte that keeps a CRC answer from ever serving as a body signature (X
/// signs both with its one consumer secret): no `crc_token` holds it, and on a
/// hook with a `crc` handshake every accepted body starts with it (X's events are
/// JSON objects). Each preset's signed message contains the body, so it contains
/// this byte, and no token a CRC answers does: no answer is an HMAC of a message
/// any preset accepts.
const CRC_SEPARATOR: char = '{';

/// On a hook with a `crc` handshake, a signed body that is not a JSON object is
/// refused (see [`CRC_SEPARATOR`]), however well signed: its signature may be a
/// CRC answer.
pub fn check_signed_body(preset: HandshakePreset, body: &[u8]) -> Result<(), Refusal> {
    if preset == HandshakePreset::Crc && body.first() != Some(&(CRC_SEPARATOR as u8)) {
        return Err(Refusal::CrcBodyNotObject);
    }
    Ok(())
}

#[derive(Deserialize)]
struct SlackCheck {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
}

#[derive(Deserialize)]
struct ZoomCheck {
    event: String,
    payload: ZoomPayload,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZoomPayload {
    plain_token: String,
}

/// Whether a POST may be the sender's check: a quick look (a search of the body
/// for the check's name), so events pay no parse and a secret is read only for
/// checks; [`answer_post`] decides.
pub fn is_post_check(preset: HandshakePreset, query: &str, body: &[u8]) -> bool {
    let mentions = |word: &[u8]| memchr::memmem::find(body, word).is_some();
    match preset {
        HandshakePreset::Slack => mentions(b"url_verification"),
        HandshakePreset::Zoom => mentions(b"endpoint.url_validation"),
        HandshakePreset::Msgraph => query_param(query, "validationToken").is_some(),
        _ => false,
    }
}

/// Answers a POST that is the sender's check (`slack`, `zoom`, `msgraph`); `None`
/// for any other request, which goes on as an event. `secret` is Zoom's secret
/// token.
pub fn answer_post(
    preset: HandshakePreset,
    query: &str,
    body: &[u8],
    secret: Option<&str>,
) -> Option<Response<Bytes>> {
    if !is_post_check(preset, query, body) {
        return None;
    }
    match preset {
        HandshakePreset::Slack => {
            let check: SlackCheck = serde_json::from_slice(body).ok()?;
            (check.kind == "url_verification").then(|| text(&check.challenge))
        }
        HandshakePreset::Zoom => {
            let check: ZoomCheck = serde_json::from_slice(body).ok()?;
            if check.event != "endpoint.url_validation" {
                return None;
            }
            let token = check.payload.plain_token;
            let encrypted = hex::encode(hmac_sha256(secret?, &token));
            Some(reply::json(
                StatusCode::OK,
                &json!({ "plainToken": token, "encryptedToken": encrypted }),
            ))
        }
        HandshakePreset::Msgraph => query_param(query, "validationToken").map(|v| text(&v)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &Response<Bytes>) -> &str {
        std::str::from_utf8(r.body()).unwrap()
    }

    /// The values of Meta's Graph API webhooks guide ("Verification Requests").
    #[test]
    fn meta_echoes_the_challenge_for_its_token_only() {
        let secrets = || GetSecrets {
            verify_token: Some("meatyhamhock"),
            secret: None,
        };
        let ok = answer_get(
            HandshakePreset::Meta,
            "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock",
            secrets(),
        );
        let ok = ok.unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(body(&ok), "1158201444");
        assert_eq!(ok.headers()["content-type"], "text/plain");
        for query in [
            "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=wrong",
            "hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=meatyhamhock",
            "hub.mode=subscribe&hub.verify_token=meatyhamhock",
            "",
        ] {
            let refused = answer_get(HandshakePreset::Meta, query, secrets()).unwrap_err();
            assert_eq!(refused.status(), 403, "{query}");
        }
    }

    #[test]
    fn dropbox_echoes_with_nosniff() {
        let r = answer_get(
            HandshakePreset::Dropbox,
            "challenge=abc%20def",
            GetSecrets {
                verify_token: None,
                secret: None,
            },
        )
        .unwrap();
        assert_eq!(body(&r), "abc def");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    }

    #[test]
    fn slack_and_msgraph_echo_and_other_posts_go_on() {
        // Slack's Events API documentation example.
        let slack = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        let r = answer_post(HandshakePreset::Slack, "", slack, None).unwrap();
        assert_eq!(
            body(&r),
            "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
        );
        let event = br#"{"type":"event_callback","event":{"text":"url_verification"}}"#;
        assert!(answer_post(HandshakePreset::Slack, "", event, None).is_none());
        let graph = answer_post(
            HandshakePreset::Msgraph,
            "validationToken=Validation%3A+Testing+client+application+reachability",
            b"",
            None,
        )
        .unwrap();
        assert_eq!(
            body(&graph),
            "Validation: Testing client application reachability"
        );
        assert!(answer_post(HandshakePreset::Msgraph, "", b"{}", None).is_none());
    }

    /// Expected values computed apart, with Python's `hmac` module; the plain token
    /// is the one in Zoom's "Validate your webhook endpoint" example.
    #[test]
    fn zoom_and_crc_answer_with_the_hmac_of_the_token() {
        let zoom = br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
        let r = answer_post(HandshakePreset::Zoom, "", zoom, Some("zoom-secret-token")).unwrap();
        let answer: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(
            answer,
            json!({"plainToken": "qgg8vlvZRS6UYooatFL8Aw",
                   "encryptedToken": "d9e0d764a78494688ba3f2d5c0ed4ca311394b4834d959759213424d2df961e3"})
        );
        let crc = answer_get(
            HandshakePreset::Crc,
            "crc_token=crc-token-123",
            GetSecrets {
                verify_token: None,
                secret: Some("x-consumer-secret"),
            },
        )
        .unwrap();
        let answer: serde_json::Value = serde_json::from_slice(crc.body()).unwrap();
        assert_eq!(
            answer["response_token"],
            "sha256=YUsT0aLbF0VtFGcLCND1EU/aQP0sjPL19cPulVY7Wes="
        );
    }
    #[test]
    fn crc_answers_no_token_with_a_brace_and_nothing_without_its_own_secret() {
        let with = |secret| GetSecrets {
            verify_token: None,
            secret,
        };
        let braced = answer_get(
            HandshakePreset::Crc,
            "crc_token=%7B%22id%22%3A1%7D",
            with(Some("x-consumer-secret")),
        )
        .unwrap_err()
        .into_response();
        assert_eq!(braced.status(), 400);
        assert!(!body(&braced).contains("sha256="), "{}", body(&braced));
        let unkeyed = answer_get(HandshakePreset::Crc, "crc_token=abc", with(None))
            .unwrap_err()
            .into_response();
        assert_eq!(unkeyed.status(), 403);
        assert!(!body(&unkeyed).contains("sha256="));
    }

    #[test]
    fn a_crc_hook_accepts_only_signed_json_objects() {
        for refused in [&b""[..], b"[1]", b"abc", b" {}", b"\"{}\""] {
            let r = check_signed_body(HandshakePreset::Crc, refused).expect_err("refused");
            assert_eq!(r.status(), 401);
        }
        assert!(check_signed_body(HandshakePreset::Crc, br#"{"for_user_id":"1"}"#).is_ok());
        // Other hooks take any body their signature covers.
        assert!(check_signed_body(HandshakePreset::Zoom, b"abc").is_ok());
        assert!(check_signed_body(HandshakePreset::Meta, b"").is_ok());
    }
}
