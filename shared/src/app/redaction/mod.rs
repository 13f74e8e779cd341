//! `trigger.redact` at work: the values a delivery carries at the configured paths
//! are found once, when it is accepted, and every record of its run is scrubbed of
//! them wherever they appear (the context, job results and logs, the output, a
//! pause's state), as [`Redaction`] is the run's [`Keeper`]. The run's nodes see
//! the real values: the queued message and a paused record carry them sealed
//! (AES-256-GCM, [`sealer`]), never in the clear.

pub mod sealer;

use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lang::redact_path as paths;
use crate::model::{Execution, Keeper, KeptAs, RedactConfig, RedactMode, RunMessage};
pub use sealer::{Sealer, SealingKey};

/// What a masked value becomes.
pub const MASK: &str = "***";
/// Values shorter than this are replaced at their paths only: scrubbing every
/// "on" or "42" out of a record would destroy it.
pub const MIN_SCRUBBED_CHARS: usize = 4;

/// The values to scrub from a run's records, and what each becomes.
pub struct Redaction {
    paths: Vec<paths::RedactPath>,
    /// (real value, replacement), longest first.
    values: Vec<(String, String)>,
    matcher: Option<AhoCorasick>,
    key: Arc<SealingKey>,
}

/// What a seal holds: enough to rebuild the run's [`Redaction`] and go on with the
/// real values.
#[derive(Serialize, Deserialize)]
struct Sealed {
    paths: Vec<String>,
    values: Vec<(String, String)>,
    context: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    paused: Option<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum RedactionError {
    #[error("trigger.redact: {0}")]
    Config(String),
    /// The sealing key could not be read: retrying may help.
    #[error("the sealing key is unavailable: {0}")]
    KeyUnavailable(String),
    #[error("a sealed run state cannot be opened: {0}")]
    Unsealable(String),
}

impl Redaction {
    /// The redaction of a delivery whose `$context` is `context`: the values at the
    /// configured paths, replaced by `"***"` or, with `hash_key`, by their
    /// HMAC-SHA256.
    pub fn new(
        config: &RedactConfig,
        context: &Value,
        hash_key: Option<&[u8]>,
        key: Arc<SealingKey>,
    ) -> Result<Self, RedactionError> {
        let parsed = paths::parse_all(&config.paths).map_err(RedactionError::Config)?;
        let mut found = Vec::new();
        for path in &parsed {
            path.collect(context, &mut found);
        }
        let replace = |value: &str| match (config.mode, hash_key) {
            (RedactMode::Hash, Some(key)) => {
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key)
                    .expect("HMAC takes a key of any length");
                mac.update(value.as_bytes());
                format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
            }
            _ => MASK.to_string(),
        };
        if config.mode == RedactMode::Hash && hash_key.is_none() {
            return Err(RedactionError::Config("mode \"hash\" needs a key".into()));
        }
        let values = found
            .into_iter()
            .map(|v| {
                let replacement = replace(&v);
                (v, replacement)
            })
            .collect();
        Ok(Self::of(parsed, values, key))
    }

    fn of(
        paths: Vec<paths::RedactPath>,
        mut values: Vec<(String, String)>,
        key: Arc<SealingKey>,
    ) -> Self {
        values.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        values.dedup_by(|a, b| a.0 == b.0);
        let scrubbed: Vec<&str> = values
            .iter()
            .map(|(v, _)| v.as_str())
            .filter(|v| v.chars().count() >= MIN_SCRUBBED_CHARS)
            .collect();
        let matcher = (!scrubbed.is_empty())
            .then(|| {
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&scrubbed)
                    .ok()
            })
            .flatten();
        // The matcher's pattern ids index `scrubbed`; keep only those values'
        // replacements in that order after the path-only ones.
        let (long, short): (Vec<_>, Vec<_>) = values
            .into_iter()
            .partition(|(v, _)| v.chars().count() >= MIN_SCRUBBED_CHARS);
        let values = long.into_iter().chain(short).collect();
        Self {
            paths,
            values,
            matcher,
            key,
        }
    }

    /// The run's keeper, for its execution records.
    pub fn into_kept_as(self) -> KeptAs {
        KeptAs(Some(Arc::new(self)))
    }

    /// Every text in `value` with the redacted values replaced.
    pub fn scrub(&self, value: &mut Value) {
        let Some(matcher) = &self.matcher else {
            return;
        };
        let replacements: Vec<&str> = self
            .values
            .iter()
            .take(matcher.patterns_len())
            .map(|(_, r)| r.as_str())
            .collect();
        scrub_texts(value, &|text: &str| {
            matcher
                .is_match(text)
                .then(|| matcher.replace_all(text, &replacements))
        });
    }

    /// A body as it may be kept (a kept answer): scrubbed when it is text.
    pub fn scrub_bytes(&self, bytes: &mut Vec<u8>) {
        if let Ok(text) = std::str::from_utf8(bytes) {
            let mut value = Value::String(text.to_string());
            self.scrub(&mut value);
            if let Value::String(scrubbed) = value {
                *bytes = scrubbed.into_bytes();
            }
        }
    }

    /// A context as it may be kept: the values at the paths replaced (short ones
    /// too), and every text scrubbed.
    pub fn scrub_context(&self, context: &mut Value) {
        for path in &self.paths {
            path.replace(context, &|text| self.replacement(text));
        }
        self.scrub(context);
    }

    fn replacement(&self, text: &str) -> String {
        self.values
            .iter()
            .find(|(v, _)| v == text)
            .map_or_else(|| MASK.to_string(), |(_, r)| r.clone())
    }

    fn sealed(&self, context: &Value, paused: Option<Value>) -> Result<String, String> {
        let sealed = Sealed {
            paths: self.paths.iter().map(|p| p.text.clone()).collect(),
            values: self.values.clone(),
            context: context.clone(),
            paused,
        };
        let text = serde_json::to_vec(&sealed).map_err(|e| e.to_string())?;
        self.key.seal(&text)
    }

    /// An async run's message: its context redacted, the real one sealed.
    pub fn seal_message(&self, message: &mut RunMessage) -> Result<(), RedactionError> {
        message.sealed = Some(
            self.sealed(&message.context, None)
                .map_err(RedactionError::Unsealable)?,
        );
        self.scrub_context(&mut message.context);
        Ok(())
    }
}

impl Keeper for Redaction {
    fn kept(&self, execution: &Execution) -> Result<Execution, String> {
        let mut kept = execution.clone();
        kept.kept_as = KeptAs::default();
        // A run that waits resumes from its record: its real state goes sealed.
        kept.sealed = match &execution.paused {
            Some(paused) => Some(self.sealed(
                &execution.context,
                Some(serde_json::to_value(paused).map_err(|e| e.to_string())?),
            )?),
            None => None,
        };
        self.scrub_context(&mut kept.context);
        self.scrub(&mut kept.output);
        for job in &mut kept.jobs {
            self.scrub(&mut job.result);
            for line in &mut job.log {
                let mut text = Value::String(std::mem::take(line));
                self.scrub(&mut text);
                *line = match text {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
            }
        }
        if let Some(paused) = &mut kept.paused {
            self.scrub(&mut paused.results);
            self.scrub(&mut paused.scopes);
            self.scrub(&mut paused.cursor.frame);
        }
        Ok(kept)
    }
}

/// Opens what a sealed message or record holds, with the key it was sealed with.
pub struct Opened {
    pub context: Value,
    pub paused: Option<Value>,
    pub kept_as: KeptAs,
}

/// Opens `sealed` (a message's or a paused record's).
pub fn open(sealed: &str, key: Arc<SealingKey>) -> Result<Opened, RedactionError> {
    let text = key.open(sealed).map_err(RedactionError::Unsealable)?;
    let sealed: Sealed =
        serde_json::from_slice(&text).map_err(|e| RedactionError::Unsealable(e.to_string()))?;
    let paths = paths::parse_all(&sealed.paths).map_err(RedactionError::Unsealable)?;
    Ok(Opened {
        context: sealed.context,
        paused: sealed.paused,
        kept_as: Redaction::of(paths, sealed.values, key).into_kept_as(),
    })
}

/// A paused record of a run that redacts, as it goes on: its real context and
/// state back from the seal, and its keeper again.
pub fn reopen(execution: &mut Execution, key: Arc<SealingKey>) -> Result<(), RedactionError> {
    let Some(sealed) = execution.sealed.take() else {
        return Ok(());
    };
    let opened = open(&sealed, key)?;
    execution.context = opened.context;
    if let Some(paused) = opened.paused {
        execution.paused = Some(
            serde_json::from_value(paused)
                .map_err(|e| RedactionError::Unsealable(e.to_string()))?,
        );
    }
    execution.kept_as = opened.kept_as;
    Ok(())
}

/// Replaces each string in `value` (object keys are left alone) for which `change`
/// gives a new text.
fn scrub_texts(value: &mut Value, change: &dyn Fn(&str) -> Option<String>) {
    match value {
        Value::String(text) => {
            if let Some(new) = change(text) {
                *text = new;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| scrub_texts(v, change)),
        Value::Object(map) => map.values_mut().for_each(|v| scrub_texts(v, change)),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
