//! The local HTTP server: hyper in front of the same [`WebhookService`] the webhook
//! Lambda runs, with graceful shutdown and bounds on what callers may hold
//! (connections, body memory, time; see [`Limits`]). `hookflow ui` runs the same
//! accept loop ([`serve_with`]) in front of the viewer alone.

mod accept;
mod conn;
mod fds;
mod limits;
mod parsed;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Response;
use hyper::body::Incoming;
use tokio::net::TcpListener;

use hookflow::webhook::{Refusal, SourceIp, WebhookService, declared_length};

use crate::metrics::{self, Metrics};
use crate::ui::Mounted;
use hookflow::view::Viewer;

pub use accept::{Answer, serve_with};
pub use fds::connection_cap;
use limits::{BodyBudget, Reserved};
pub use limits::{ConnectionFlags, Limits};

/// Bytes of an unwanted body (a request answered before its body was read) read
/// and thrown away so the answer reaches a client still sending; past this the
/// connection is closed instead.
const DISCARD_AT_MOST: u64 = 8 << 20;

struct Shared {
    service: Arc<WebhookService>,
    /// Answers `GET /metrics` when set.
    metrics: Option<Arc<Metrics>>,
    /// Answers `/ui` when set.
    viewer: Option<Arc<Mounted>>,
    limits: Limits,
    budget: BodyBudget,
}

/// Serves the webhooks (and `/metrics`, `/ui` when given) until `stop` resolves,
/// then lets requests in flight finish (up to `grace`).
pub async fn serve(
    listener: TcpListener,
    service: Arc<WebhookService>,
    metrics: Option<Arc<Metrics>>,
    viewer: Option<Arc<Mounted>>,
    limits: Limits,
    stop: impl Future<Output = ()>,
    grace: Duration,
) {
    let shared = Arc::new(Shared {
        service,
        metrics,
        viewer,
        limits,
        budget: BodyBudget::new(limits.max_body_memory),
    });
    serve_with(listener, shared, limits, stop, grace).await;
}

impl Answer for Shared {
    fn answer(
        &self,
        request: hyper::Request<Incoming>,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send {
        answer(self, request)
    }
}

async fn answer(shared: &Shared, request: hyper::Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, incoming) = request.into_parts();
    if parts.uri.path() == "/metrics"
        && parts.method == hyper::Method::GET
        && let Some(metrics) = &shared.metrics
        && metrics.readable_from(
            parts.extensions.get::<SourceIp>().map(|ip| ip.0),
            &parts.headers,
        )
    {
        let mut response = Response::new(Full::new(Bytes::from(metrics.render().await)));
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(metrics::CONTENT_TYPE),
        );
        return response;
    }
    if let Some(viewer) = &shared.viewer
        && Viewer::serves(parts.uri.path())
    {
        discard(incoming, &parts.headers, shared.limits.body_timeout);
        let peer = parts.extensions.get::<SourceIp>().map(|ip| ip.0);
        return viewer.answer(peer, &parts).await;
    }
    let admitted = match shared.service.admit(&parts).await {
        Ok(admitted) => admitted,
        Err(refused) => {
            discard(incoming, &parts.headers, shared.limits.body_timeout);
            return refused.map(Full::new);
        }
    };
    let limit = admitted.max_body() + 1;
    let mut reserved = BodyBudget::empty();
    // A declared length is reserved whole up front; a chunked body as it comes.
    let declared = declared_length(&parts.headers);
    if let Some(n) = declared {
        let n = usize::try_from(n).unwrap_or(usize::MAX).min(limit);
        if !shared.budget.reserve(&mut reserved, n) {
            discard(incoming, &parts.headers, shared.limits.body_timeout);
            return Refusal::Busy.into_response().map(Full::new);
        }
    }
    let read = tokio::time::timeout(
        shared.limits.body_timeout,
        read_up_to(
            incoming,
            limit,
            declared.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX).min(limit)),
            declared
                .is_none()
                .then_some((&shared.budget, &mut reserved)),
        ),
    )
    .await;
    let response = match read {
        // What the body becomes once parsed is held while it runs too.
        Ok(Ok(bytes)) if !shared.budget.reserve_parsed(&mut reserved, &bytes) => {
            Refusal::Busy.into_response()
        }
        Ok(Ok(bytes)) => {
            shared
                .service
                .complete(admitted, hyper::Request::from_parts(parts, bytes))
                .await
        }
        Ok(Err(ReadError::Busy)) => Refusal::Busy.into_response(),
        Ok(Err(ReadError::Body(e))) => Refusal::BodyUnreadable(e.to_string()).into_response(),
        Err(_) => Refusal::BodyTimedOut {
            limit: shared.limits.body_timeout,
        }
        .into_response(),
    };
    drop(reserved);
    response.map(Full::new)
}

/// Reads and drops a body nobody will use, in the background, so a client still
/// sending gets the answer rather than a reset; a body declared past
/// [`DISCARD_AT_MOST`] is not read at all (the connection closes after the answer).
pub fn discard(mut body: Incoming, headers: &hyper::HeaderMap, within: Duration) {
    if hyper::body::Body::is_end_stream(&body)
        || declared_length(headers).is_some_and(|n| n > DISCARD_AT_MOST)
    {
        return;
    }
    tokio::spawn(tokio::time::timeout(within, async move {
        let mut seen: u64 = 0;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen > DISCARD_AT_MOST {
                break;
            }
        }
    }));
}

enum ReadError {
    Busy,
    Body(hyper::Error),
}

/// Reads at most `limit` bytes (one past the service's limit is enough for it to
/// answer 413 in its own order of checks). With `budget`, memory is reserved frame
/// by frame (a body of unknown length).
async fn read_up_to(
    mut body: Incoming,
    limit: usize,
    capacity: usize,
    mut budget: Option<(&BodyBudget, &mut Reserved)>,
) -> Result<Bytes, ReadError> {
    let mut bytes = Vec::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ReadError::Body)?;
        if let Some(data) = frame.data_ref() {
            let take = data.len().min(limit - bytes.len());
            if let Some((budget, reserved)) = budget.as_mut()
                && !budget.reserve(reserved, take)
            {
                return Err(ReadError::Busy);
            }
            bytes.extend_from_slice(&data[..take]);
            if bytes.len() >= limit {
                break;
            }
        }
    }
    Ok(Bytes::from(bytes))
}
