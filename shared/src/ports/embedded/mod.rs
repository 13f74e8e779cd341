//! The embedded adapters: one SQLite file (WAL, fsync'd by its writer after each
//! commit, db.rs) holds workflows,
//! executions and the queue, so `hookflow serve` needs nothing installed and a
//! restart loses nothing.
//!
//! Why SQLite: it is durable on power loss, and its WAL lets `hookflow executions`
//! read the file while a server writes it (redb and sled lock the file to one
//! process). Every write goes through one writer thread that commits whatever has
//! queued up in one transaction: concurrent requests share one fsync (group commit).

mod claims;
mod db;
mod gathers;
mod lanes;
mod queue;
mod replays;
mod sealing;
mod store;

pub use db::Database;
pub use queue::EmbeddedQueue;
pub use sealing::{SEALING_KEY_FILE, sealing_key};
pub use store::EmbeddedStore;
