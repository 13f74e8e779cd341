//! The accept loop of every local server (`hookflow serve`, `hookflow ui`): a cap
//! on open connections (503 past it), a pause when accepting fails (out of file
//! descriptors, most often, where retrying at once would spin a core), each
//! connection's header and idle timeouts, and a graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use hookflow::webhook::SourceIp;

use super::conn::{ConnState, TimedIo};
use super::limits::Limits;

/// Connections refused with a 503 at once; past this many more are closed unanswered.
const REFUSALS_AT_ONCE: usize = 256;

/// A connection's read buffer at most, which bounds a request head (nginx allows
/// 32 KB of header lines by default; Node 16 KB).
const READ_BUFFER: usize = 32 << 10;

/// How long the loop waits after a failed accept: failures are mostly the
/// descriptor limit, which only closing connections (their timeouts) cures.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How often freed memory is handed back to the system (see `hookflow::memory`).
const RELEASE_EVERY: Duration = Duration::from_secs(10);

/// What a server answers; the caller's address is in the request's [`SourceIp`].
pub trait Answer: Send + Sync + 'static {
    fn answer(
        &self,
        request: hyper::Request<Incoming>,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send;
}

/// Serves `answer` until `stop` resolves, then lets requests in flight finish (up
/// to `grace`).
pub async fn serve_with<A: Answer>(
    listener: TcpListener,
    answer: Arc<A>,
    limits: Limits,
    stop: impl Future<Output = ()>,
    grace: Duration,
) {
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
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
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
                    let (answer, state) = (Arc::clone(&answer), Arc::clone(&state));
                    move |mut request: hyper::Request<Incoming>| {
                        let answer = Arc::clone(&answer);
                        let in_service = state.request();
                        // `trigger.allowIps` and the viewer judge the connection's
                        // peer, never a header the caller writes.
                        request.extensions_mut().insert(SourceIp(peer.ip()));
                        async move {
                            let response = answer.answer(request).await;
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
