//! hookflow's library: everything but the process edges.
//!
//! The engine ([`engine`]) and the node types ([`nodes`]) know nothing of HTTP or AWS;
//! [`webhook`] turns an HTTP request into a run and its answer; [`ports`] holds the
//! store and queue traits with their adapters; [`worker`] runs what the queue delivers.

pub mod app;
pub mod deploy;
pub mod engine;
pub mod model;
pub mod nodes;
pub mod path;
pub mod ports;
pub mod qs;
pub mod run;
pub mod sample;
pub mod subflows;
pub mod template;
pub mod time;
pub mod validate;
pub mod wakeups;
pub mod webhook;
pub mod worker;
