//! Panic guards. A panic is a bug, never something a caller's request may cause on
//! purpose; when one happens anyway it must cost one node, one run or one request,
//! not the process. Release builds unwind (`panic = "unwind"`), and every node run,
//! every run, every request and every queued delivery goes through [`catch`].

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

/// Runs `future`; a panic inside it comes back as `Err(message)`.
///
/// Unwind safety is asserted: what a guarded future leaves behind after a panic is
/// plain data (locks are taken with `unwrap_or_else(into_inner)`), and every caller
/// records the panic as a failure rather than trusting that data.
pub async fn catch<F: Future>(future: F) -> Result<F::Output, String> {
    AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .map_err(|payload| message(payload.as_ref()))
}

/// Runs a closure; a panic inside it comes back as `Err(message)`.
pub fn catch_sync<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| message(payload.as_ref()))
}

/// The text a panic was raised with.
pub fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Reports panics through `tracing` (JSON on Lambda) with where they happened,
/// instead of the default hook's plain text on stderr. Binaries call it once.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(
            panic = %message(info.payload()),
            location,
            "a bug was caught: the node, run or request it happened in fails, nothing else"
        );
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_its_message() {
        let caught = catch(async { panic!("boom {}", 7) }).await;
        assert_eq!(caught, Err::<(), _>("boom 7".to_string()));
        assert_eq!(catch(async { 5 }).await, Ok(5));
        let caught = catch_sync(|| -> u8 { panic!("plain") });
        assert_eq!(caught, Err("plain".to_string()));
    }
}
