//! Every way the endpoint turns a request down, as one type: each refusal knows
//! its status, its message (its `Display`) and the headers it adds, and
//! [`Refusal::into_response`] is the one place any becomes HTTP (axum's
//! `define_rejection!` gives each rejection its status and body the same way).
//! The checks return `Result<_, Refusal>`, so what a check decides stays
//! separate from how it is answered.

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::json;

use super::reply;
use super::signature::Failure;
use crate::model::Mismatch;
use crate::ports::StoreError;
use crate::ports::secrets::SecretError;

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("no such endpoint; webhooks are POST /api/webhook:trigger/{{hookId}}")]
    NoSuchEndpoint,
    /// No enabled workflow has the hook (or the id is one none could have).
    #[error("no enabled workflow has this webhook")]
    UnknownHook,
    /// `get_too`: the hook's sender checks it with a GET, which is allowed too.
    #[error("{}", if *get_too {
        "this hook accepts POST, and GET for its sender's check"
    } else {
        "webhooks accept POST only"
    })]
    MethodNotAllowed { get_too: bool },
    #[error("the webhook store is unavailable; retry later")]
    StoreUnavailable(#[source] StoreError),
    #[error("this hook does not accept requests from this address")]
    AddressNotAllowed,
    /// `trigger.rateLimit`: the caller's bucket is empty for `wait`.
    #[error("this hook's rate limit is reached; retry later")]
    RateLimited { wait: Duration },
    #[error("missing or wrong credentials")]
    BadCredentials,
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The connection failed while the body was read (`hookflow serve`).
    #[error("cannot read the request body: {0}")]
    BodyUnreadable(String),
    /// The body did not arrive within the server's body timeout.
    #[error("the request body did not arrive within {} s", limit.as_secs())]
    BodyTimedOut { limit: Duration },
    /// The server holds as many request bodies as its memory budget allows.
    #[error("the server holds as many request bodies as it may; retry later")]
    Busy,
    /// A configured secret cannot be read; `at` says where it is configured,
    /// never its value.
    #[error("the secret at {at} cannot be read now; retry later")]
    SecretUnavailable {
        at: String,
        #[source]
        source: SecretError,
    },
    /// Its message never holds a secret nor an expected value.
    #[error(transparent)]
    BadSignature(Failure),
    /// A signed body on a `crc` hook that is not a JSON object (see
    /// `handshake::check_signed_body`).
    #[error(
        "on a hook with a crc handshake only JSON objects are accepted: the body must start with '{{'"
    )]
    CrcBodyNotObject,
    #[error(
        "a zoom check is answered only on a hook that checks Zoom's signature (trigger.signature)"
    )]
    ZoomUnsigned,
    #[error("not a subscription check with this hook's verify token")]
    NotSubscriptionCheck,
    #[error("a GET to this hook is its sender's check and needs ?{0}=")]
    MissingCheckParameter(&'static str),
    #[error("a crc_token never contains '{{': X's never do, and every body this hook accepts does")]
    BracedCrcToken,
    #[error(
        "this hook's crc handshake has no trigger.handshake.secret of its own, so it answers no check"
    )]
    CrcUnkeyed,
    /// The body does not read as its content type says (the message says how).
    #[error("{0}")]
    BadBody(String),
    /// The body does not match `trigger.schema`: its first mismatch, with where
    /// in the body and in the schema.
    #[error("{}", .0.error)]
    BodyMismatch(Mismatch),
    #[error("the idempotency store is unavailable; retry later")]
    ClaimsUnavailable(#[source] StoreError),
    #[error("this delivery is being answered now; retry later")]
    InProgress { execution_id: String },
    /// The run could not be queued; `retry_after` (seconds) when a keyed
    /// delivery's claim makes a retry wait.
    #[error("the run could not be queued; retry later")]
    NotQueued { retry_after: Option<u64> },
    /// Queueing a keyed run did not end within its bound (it may yet land).
    #[error("the run could not be queued in time; retry later")]
    NotQueuedInTime { retry_after: u64 },
    #[error("the run could not be recorded; retry later")]
    NotRecorded,
    /// The store refused a sync run's record for good; `reason` names why.
    #[error("{reason}")]
    RecordRefused {
        reason: String,
        execution_id: String,
    },
    #[error("the workflow did not answer within {} ms", limit.as_millis())]
    TimedOut {
        limit: Duration,
        execution_id: String,
    },
    #[error("the request failed on an internal error")]
    Internal,
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoSuchEndpoint | Self::UnknownHook => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::AddressNotAllowed | Self::NotSubscriptionCheck | Self::CrcUnkeyed => {
                StatusCode::FORBIDDEN
            }
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::BadCredentials
            | Self::BadSignature(_)
            | Self::CrcBodyNotObject
            | Self::ZoomUnsigned => StatusCode::UNAUTHORIZED,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MissingCheckParameter(_)
            | Self::BracedCrcToken
            | Self::BadBody(_)
            | Self::BodyUnreadable(_) => StatusCode::BAD_REQUEST,
            Self::BodyTimedOut { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::BodyMismatch(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::InProgress { .. } => StatusCode::CONFLICT,
            Self::StoreUnavailable(_)
            | Self::SecretUnavailable { .. }
            | Self::ClaimsUnavailable(_)
            | Self::NotQueued { .. }
            | Self::NotQueuedInTime { .. }
            | Self::NotRecorded
            | Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::RecordRefused { .. } | Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TimedOut { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The headers a refusal adds to its JSON answer: how long to wait, which
    /// methods, which credentials.
    fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::MethodNotAllowed { get_too } => {
                let allow = if *get_too { "GET, POST" } else { "POST" };
                vec![("allow", allow.into())]
            }
            Self::RateLimited { wait } => {
                // Whole seconds, at least one: a client waiting 0 s would only be
                // refused again.
                let seconds = wait.as_secs_f64().ceil().max(1.0);
                vec![("retry-after", format!("{seconds}"))]
            }
            Self::BadCredentials => vec![("www-authenticate", "Basic realm=\"hookflow\"".into())],
            Self::InProgress { .. } | Self::Busy => vec![("retry-after", "1".into())],
            Self::NotQueued {
                retry_after: Some(seconds),
            }
            | Self::NotQueuedInTime {
                retry_after: seconds,
            } => vec![("retry-after", seconds.to_string())],
            _ => Vec::new(),
        }
    }

    /// The execution a refusal is about, named in its answer so the caller can
    /// look it up.
    fn execution_id(&self) -> Option<&str> {
        match self {
            Self::InProgress { execution_id }
            | Self::RecordRefused { execution_id, .. }
            | Self::TimedOut { execution_id, .. } => Some(execution_id),
            _ => None,
        }
    }

    /// `{"error": <message>}` (with `executionId` when it names one, and
    /// `instancePath` and `schemaPath` on a body mismatch), its status and its
    /// headers.
    pub fn into_response(self) -> Response<Bytes> {
        let message = self.to_string();
        let body = match (&self, self.execution_id()) {
            (Self::BodyMismatch(m), _) => json!(m),
            (_, Some(id)) => json!({ "error": message, "executionId": id }),
            (_, None) => json!({ "error": message }),
        };
        let mut response = reply::json(self.status(), &body);
        for (name, value) in self.headers() {
            reply::set_header(&mut response, name, &value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(refusal: Refusal) -> (u16, serde_json::Value, http::HeaderMap) {
        let response = refusal.into_response();
        let body = serde_json::from_slice(response.body()).unwrap();
        (response.status().as_u16(), body, response.headers().clone())
    }

    #[test]
    fn each_refusal_answers_its_status_message_and_headers() {
        let (status, body, headers) = answer(Refusal::MethodNotAllowed { get_too: true });
        assert_eq!(status, 405);
        assert_eq!(
            body,
            json!({"error": "this hook accepts POST, and GET for its sender's check"})
        );
        assert_eq!(headers["allow"], "GET, POST");
        let (status, _, headers) = answer(Refusal::RateLimited {
            wait: Duration::from_millis(1_200),
        });
        assert_eq!(status, 429);
        assert_eq!(headers["retry-after"], "2");
        let (_, _, headers) = answer(Refusal::RateLimited {
            wait: Duration::ZERO,
        });
        assert_eq!(headers["retry-after"], "1");
        let (status, body, headers) = answer(Refusal::InProgress {
            execution_id: "e-1".into(),
        });
        assert_eq!(status, 409);
        assert_eq!(
            body,
            json!({"error": "this delivery is being answered now; retry later", "executionId": "e-1"})
        );
        assert_eq!(headers["retry-after"], "1");
        let (status, body, _) = answer(Refusal::TimedOut {
            limit: Duration::from_millis(250),
            execution_id: "e-2".into(),
        });
        assert_eq!(status, 504);
        assert_eq!(
            body["error"], "the workflow did not answer within 250 ms",
            "{body}"
        );
        let mismatch = Mismatch {
            error: "\"x\" is not of type \"integer\"".into(),
            instance_path: "/id".into(),
            schema_path: "/properties/id/type".into(),
        };
        let (status, body, _) = answer(Refusal::BodyMismatch(mismatch));
        assert_eq!(status, 422);
        assert_eq!(
            body,
            json!({"error": "\"x\" is not of type \"integer\"", "instancePath": "/id", "schemaPath": "/properties/id/type"})
        );
        let (status, body, headers) = answer(Refusal::TooLarge { limit: 10 });
        assert_eq!(status, 413);
        assert_eq!(body["error"], "the request body is larger than 10 bytes");
        // Every refusal is a guarded JSON answer.
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(
            answer(Refusal::NotQueued { retry_after: None })
                .2
                .get("retry-after"),
            None
        );
    }
}
