//! The process's one TLS crypto provider: rustls on ring, for the request node's
//! client, the SigV4-signed calls and the CLI's aws-config alike (see the
//! workspace's Cargo.toml for why ring rather than aws-lc).

use std::sync::Once;

/// Installs ring as rustls' process-wide provider; reqwest reads it when a client
/// is built (and refuses to build one without it). Idempotent.
pub fn install() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // Another provider installed first (by an embedding program) is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
