//! `trigger.redact`: the values a delivery carries at some paths are scrubbed from
//! everything hookflow keeps of its run (records, objects, the viewer, the CLI,
//! failure workflows' contexts), while the run's nodes work with the real ones.
//!
//! This module holds the configuration and the handle an execution carries while it
//! runs ([`KeptAs`]); the scrubbing and sealing live in `app::redaction`, and every
//! store applies [`Execution::kept`] to what it writes.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Execution, SecretRef};

/// `{"paths": ["body.customer.email", "body.items[*].card"], "mode": "mask"}`, or
/// `"mode": "hash"` with `"key"` (HMAC-SHA256, so equal values stay correlatable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedactConfig {
    /// Paths in `$context` (`body.a.b`, `headers.x-api-key`, `body.items[*].card`).
    pub paths: Vec<String>,
    #[serde(default)]
    pub mode: RedactMode,
    /// The HMAC key of `"hash"` (a secret reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<SecretRef>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RedactMode {
    /// Each value becomes `"***"`.
    #[default]
    Mask,
    /// Each value becomes `"hmac-sha256:<hex>"` under `key`.
    Hash,
}

/// What a store writes of an execution whose values are redacted: the execution
/// scrubbed, and while it waits, its real state sealed.
pub trait Keeper: Send + Sync {
    fn kept(&self, execution: &Execution) -> Result<Execution, String>;
}

/// The [`Keeper`] of a run in memory; never serialized, and not part of what
/// records compare by.
#[derive(Clone, Default)]
pub struct KeptAs(pub Option<Arc<dyn Keeper>>);

impl PartialEq for KeptAs {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for KeptAs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Some(_) => "KeptAs(redacted)",
            None => "KeptAs(whole)",
        })
    }
}

impl Execution {
    /// The execution as a store may keep it: itself, or for a run whose trigger
    /// redacts, scrubbed (and its real state sealed while it waits).
    pub fn kept(&self) -> Result<Cow<'_, Execution>, String> {
        match &self.kept_as.0 {
            None => Ok(Cow::Borrowed(self)),
            Some(keeper) => keeper.kept(self).map(Cow::Owned),
        }
    }
}
