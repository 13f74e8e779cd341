//! hookflow's library: everything but the process edges.
//!
//! Layers, each using only those before it (`tests/tests/layers.rs` checks it):
//!
//! 1. [`time`], [`guard`], [`tls`], [`aws`]: clocks, panic guards, the TLS provider,
//!    the AWS configuration and SigV4-signed calls.
//! 2. [`model`]: workflow definitions, execution records, queue messages.
//! 3. [`lang`]: variable paths, templates, query strings, media types, value bounds.
//! 4. [`engine`]: the node trait and registry type, the checker of configs, the walk.
//! 5. [`nodes`]: one module per node type, and the built-in registry.
//! 6. [`validate`]: the rules of a whole definition.
//! 7. [`ports`]: the store and queue traits, with their AWS and embedded adapters.
//! 8. [`app`]: runs recorded as executions, the worker, wake-ups, subflows, deploys.
//! 9. [`webhook`]: an `http` request in, its answer out.
//! 10. [`wiring`]: all of it built once from a store, a queue and settings.
//! 11. [`view`]: pictures of workflows and runs, and the read-only viewer's pages.

pub mod app;
pub mod aws;
pub mod engine;
pub mod guard;
pub mod lang;
pub mod memory;
pub mod model;
pub mod nodes;
pub mod ports;
pub mod time;
pub mod tls;
#[cfg(feature = "authoring")]
pub mod validate;
#[cfg(feature = "authoring")]
pub mod view;
pub mod webhook;
pub mod wiring;
