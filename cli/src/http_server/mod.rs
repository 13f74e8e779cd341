//! The local HTTP server: hyper in front of the same [`WebhookService`] the webhook
//! Lambda runs, with graceful shutdown and bounds on what callers may hold
//! (connections, body memory, time; see [`Limits`]).

mod conn;
mod fds;
mod limits;
mod parsed;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use hookflow::webhook::{SourceIp, WebhookService, declared_length, error_response};

use crate::metrics::{self, Metrics};
use crate::ui::Mounted;
use hookflow::view::Viewer;

use conn::{ConnState, TimedIo};
pub use fds::connection_cap;
pub use limits::Limits;
use limits::{BodyBudget, Reserved};

/// Bytes of an unwanted body (a request answered before its body was read) read
/// and thrown away so the answer reaches a client still sending; past this the
/// connection is closed instead.
const DISCARD_AT_MOST: u64 = 8 << 20;

/// Connections refused with a 503 at once; past this many more are closed unanswered.
const REFUSALS_AT_ONCE: usize = 256;

/// A connection's read buffer at most, which bounds a request head (nginx allows
/// 32 KB of header lines by default; Node 16 KB).
const READ_BUFFER: usize = 32 << 10;

/// How often freed memory is handed back to the system (see `hookflow::memory`).
const RELEASE_EVERY: Duration = Duration::from_secs(10);

struct Shared {
    service: Arc<WebhookService>,
    /// Answers `GET /metrics` when set.
    metrics: Option<Arc<Metrics>>,
    /// Answers `/ui` when set.
    viewer: Option<Arc<Mounted>>,
    limits: Limits,
    budget: BodyBudget,
}

/// Serves until `stop` resolves, then lets requests in flight finish (up to `grace`).
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
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    let graceful = GracefulShutdown::new();
    let releaser = tokio::spawn(async {
        let mut every = tokio::time::interval(RELEASE_EVERY);
        loop {
            every.tick().await;
            let _ = tokio::task::spawn_blocking(hookflow::memory::release_free).await;
        }
    });
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most often: idle timeouts free some.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(slot) = Arc::clone(&connections).try_acquire_owned() else {
            if let Ok(refusal) = Arc::clone(&refusals).try_acquire_owned() {
                tokio::spawn(async move {
                    refuse_busy(stream).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let state = ConnState::new();
        let connection = http1::Builder::new()
            // A client may shut its write side after the request and still wait
            // for the answer.
            .half_close(true)
            // Each connection's read buffer, and so the largest request head: hyper's
            // default (about 400 KB) times a thousand slow uploads is 400 MB.
            .max_buf_size(READ_BUFFER)
            .serve_connection(
                TokioIo::new(TimedIo::new(stream, Arc::clone(&state))),
                service_fn({
                    let (shared, state) = (Arc::clone(&shared), Arc::clone(&state));
                    move |mut request: hyper::Request<Incoming>| {
                        let shared = Arc::clone(&shared);
                        let in_service = state.request();
                        // `trigger.allowIps` judges the connection's peer, never a
                        // header the caller writes.
                        request.extensions_mut().insert(SourceIp(peer.ip()));
                        async move {
                            let response = answer(&shared, request).await;
                            drop(in_service);
                            Ok::<_, Infallible>(response)
                        }
                    }
                }),
            );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            tokio::select! {
                ended = connection => {
                    if let Err(e) = ended {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                () = state.expired(&limits) => {
                    tracing::debug!("closed a connection that outstayed its header or idle timeout");
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    releaser.abort();
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {grace:?} were cut off");
    }
}

/// The answer to a connection past `max_connections`: 503 with `Retry-After`,
/// then closed (after a short look at what the client sends, so the answer is not
/// lost to a reset).
async fn refuse_busy(mut stream: TcpStream) {
    const BODY: &str = r#"{"error":"the server is at its connection limit; retry later"}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // Whatever the client already sent is read (not waited for): closing with
        // unread bytes would reset the connection and lose the answer.
        let mut sink = [0u8; 4096];
        for _ in 0..16 {
            match stream.try_read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
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
    let limit = shared.service.max_body() + 1;
    let mut reserved = BodyBudget::empty();
    // A declared length is reserved whole up front; a chunked body as it comes.
    let declared = declared_length(&parts.headers);
    if let Some(n) = declared {
        let n = usize::try_from(n).unwrap_or(usize::MAX).min(limit);
        if !shared.budget.reserve(&mut reserved, n) {
            discard(incoming, &parts.headers, shared.limits.body_timeout);
            return busy().map(Full::new);
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
        Ok(Ok(bytes)) if !shared.budget.reserve_parsed(&mut reserved, &bytes) => busy(),
        Ok(Ok(bytes)) => {
            shared
                .service
                .complete(admitted, hyper::Request::from_parts(parts, bytes))
                .await
        }
        Ok(Err(ReadError::Busy)) => busy(),
        Ok(Err(ReadError::Body(e))) => {
            let message = format!("cannot read the request body: {e}");
            error_response(StatusCode::BAD_REQUEST, &message)
        }
        Err(_) => {
            let message = format!(
                "the request body did not arrive within {} s",
                shared.limits.body_timeout.as_secs()
            );
            error_response(StatusCode::REQUEST_TIMEOUT, &message)
        }
    };
    drop(reserved);
    response.map(Full::new)
}

fn busy() -> Response<Bytes> {
    let mut response = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server holds as many request bodies as it may; retry later",
    );
    response.headers_mut().insert(
        hyper::header::RETRY_AFTER,
        hyper::header::HeaderValue::from_static("1"),
    );
    response
}

/// Reads and drops a body nobody will use, in the background, so a client still
/// sending gets the answer rather than a reset; a body declared past
/// [`DISCARD_AT_MOST`] is not read at all (the connection closes after the answer).
fn discard(mut body: Incoming, headers: &hyper::HeaderMap, within: Duration) {
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
