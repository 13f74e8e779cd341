//! The first answer to a keyed delivery as kept for its duplicates, and given
//! again byte for byte.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use serde_json::json;

use super::super::reply;
use crate::model::StoredAnswer;

/// An answer larger than this is not kept whole: a DynamoDB item holds 400 KB, and
/// the body is kept as base64 (4/3 of it) beside the headers. Duplicates get a
/// small JSON answer naming the execution instead.
const MAX_KEPT_BODY: usize = 200 * 1024;
const MAX_KEPT_HEADERS: usize = 16 * 1024;

/// The answer as kept for duplicates.
pub fn keep(response: &Response<Bytes>, execution_id: &str) -> StoredAnswer {
    let header_bytes: usize = response
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if response.body().len() > MAX_KEPT_BODY || header_bytes > MAX_KEPT_HEADERS {
        let body = json!({
            "error": "the first answer to this delivery was too large to keep",
            "executionId": execution_id,
        });
        return StoredAnswer {
            status: response.status().as_u16(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        };
    }
    StoredAnswer {
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
            })
            .collect(),
        body: response.body().to_vec(),
    }
}

/// The kept answer again, marked `Idempotent-Replayed: true`.
pub fn replay(answer: &StoredAnswer) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(answer.body.clone()));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    for (name, value) in &answer.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(n, v);
        }
    }
    reply::set_header(&mut response, "idempotent-replayed", "true");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_answer_replays_byte_for_byte_and_says_so() {
        let mut first = Response::new(Bytes::from_static(b"\x00ok\xff"));
        *first.status_mut() = StatusCode::CREATED;
        first
            .headers_mut()
            .insert("x-order", HeaderValue::from_static("9"));
        let again = replay(&keep(&first, "e"));
        assert_eq!(again.status(), 201);
        assert_eq!(again.headers()["x-order"], "9");
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(again.body(), first.body());
    }
}
