//! The local HTTP server: hyper in front of the same [`WebhookService`] the webhook
//! Lambda runs, with graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use hookflow::webhook::{WebhookService, error_response};

/// Serves until `stop` resolves, then lets requests in flight finish (up to `grace`).
pub async fn serve(
    listener: TcpListener,
    service: Arc<WebhookService>,
    stop: impl Future<Output = ()>,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = Arc::clone(&service);
        let connection = http1::Builder::new().serve_connection(
            TokioIo::new(stream),
            service_fn(move |request| {
                let service = Arc::clone(&service);
                async move { Ok::<_, Infallible>(answer(&service, request).await) }
            }),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {grace:?} were cut off");
    }
}

async fn answer(
    service: &WebhookService,
    request: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, incoming) = request.into_parts();
    // Read at most one byte past the limit: enough for the service to answer 413
    // in its own order of checks, without holding an unbounded body in memory.
    let response = match read_up_to(incoming, service.max_body() + 1).await {
        Ok(bytes) => {
            service
                .handle(hyper::Request::from_parts(parts, Bytes::from(bytes)))
                .await
        }
        Err(e) => {
            let message = format!("cannot read the request body: {e}");
            error_response(hyper::StatusCode::BAD_REQUEST, &message)
        }
    };
    response.map(Full::new)
}

async fn read_up_to(mut body: Incoming, limit: usize) -> Result<Vec<u8>, hyper::Error> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            let room = limit - bytes.len();
            bytes.extend_from_slice(&data[..data.len().min(room)]);
            if bytes.len() >= limit {
                break;
            }
        }
    }
    Ok(bytes)
}
