//! One connection's clock: how long it may wait for a request head, and how long it
//! may sit idle between requests. hyper's own header timeout also runs while a
//! kept-alive connection waits, so it cannot tell the two apart; this does, from
//! the bytes the connection reads and the requests the service sees.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::limits::Limits;

const NEVER: u64 = u64::MAX;

pub struct ConnState {
    opened: Instant,
    /// Requests inside the service (reading a body, running, answering).
    in_service: AtomicUsize,
    /// Milliseconds after `opened` when the first byte of the next request head came.
    head_started: AtomicU64,
    /// Milliseconds after `opened` when the last request was answered.
    last_answer: AtomicU64,
    /// The deadline moved earlier (a head started): look again.
    changed: Notify,
}

impl ConnState {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            in_service: AtomicUsize::new(0),
            head_started: AtomicU64::new(NEVER),
            last_answer: AtomicU64::new(NEVER),
            changed: Notify::new(),
        })
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NEVER - 1)
    }

    fn bytes_read(&self) {
        if self.in_service.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == NEVER
        {
            self.head_started
                .store(self.elapsed_ms(), Ordering::Relaxed);
            self.changed.notify_one();
        }
    }

    /// A request reached the service; its end is marked when the guard drops.
    pub fn request(self: &Arc<Self>) -> InService {
        self.in_service.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(NEVER, Ordering::Relaxed);
        InService(Arc::clone(self))
    }

    /// When this connection must be closed, if nothing happens before; `None` while
    /// a request is in the service (its body read and its run have their own limits).
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.in_service.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let at = |ms: u64, after: Duration| self.opened + Duration::from_millis(ms) + after;
        let head = self.head_started.load(Ordering::Relaxed);
        let answered = self.last_answer.load(Ordering::Relaxed);
        Some(if head != NEVER {
            at(head, limits.header_timeout)
        } else if answered != NEVER {
            at(answered, limits.idle_timeout)
        } else {
            // A connection that never sent a request head in time.
            at(0, limits.header_timeout)
        })
    }

    /// Resolves when the connection has outstayed its head or idle timeout.
    pub async fn expired(&self, limits: &Limits) {
        loop {
            let changed = self.changed.notified();
            match self.deadline(limits) {
                Some(at) if at <= Instant::now() => return,
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = changed => {}
                    }
                }
                None => {
                    let recheck = limits.header_timeout.min(limits.idle_timeout);
                    tokio::select! {
                        () = tokio::time::sleep(recheck) => {}
                        () = changed => {}
                    }
                }
            }
        }
    }
}

/// Marks a request answered when dropped.
pub struct InService(Arc<ConnState>);

impl Drop for InService {
    fn drop(&mut self) {
        let state = &self.0;
        state
            .last_answer
            .store(state.elapsed_ms(), Ordering::Relaxed);
        state.in_service.fetch_sub(1, Ordering::Relaxed);
        state.changed.notify_one();
    }
}

/// A stream that tells its [`ConnState`] when bytes arrive.
pub struct TimedIo<S> {
    inner: S,
    state: Arc<ConnState>,
}

impl<S> TimedIo<S> {
    pub fn new(inner: S, state: Arc<ConnState>) -> Self {
        Self { inner, state }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.bytes_read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
