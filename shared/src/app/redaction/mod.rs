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
use crate::model::{Execution, Keeper, KeptAs, RedactConfig, RedactMode, RunMessage, StoredAnswer};
pub use sealer::{Sealer, SealingKey};

/// What a masked value becomes.
pub const MASK: &str = "***";
/// What a kept context holds for `rawBody` when its hook redacts.
pub const RAW_BODY_NOT_KEPT: &str = "(not kept: this hook redacts values)";
/// Values shorter than this are replaced at their paths only: scrubbing every
/// "on" or "42" out of a record would destroy it.
pub const MIN_SCRUBBED_CHARS: usize = 4;

/// The values to scrub from a run's records, and what each becomes.
pub struct Redaction {
    paths: Vec<paths::RedactPath>,
    /// (real value, replacement): those searched for first, longest first, in the
    /// matcher's pattern order; then those replaced at their paths only.
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
    /// A subflow run's real output, for the caller that reads it from the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output: Option<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum RedactionError {
    #[error("trigger.redact: {0}")]
    Config(String),
    /// The sealing key could not be read: retrying may help.
    #[error("the sealing key is unavailable: {0}")]
    KeyUnavailable(String),
    /// Never with what it holds: serde's messages quote values.
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
        if config.mode == RedactMode::Hash && hash_key.is_none() {
            return Err(RedactionError::Config("mode \"hash\" needs a key".into()));
        }
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
        let values = found
            .into_iter()
            .map(|v| {
                let replacement = replace(&v);
                (v, replacement)
            })
            .collect();
        Self::of(parsed, values, key)
    }

    fn of(
        paths: Vec<paths::RedactPath>,
        mut values: Vec<(String, String)>,
        key: Arc<SealingKey>,
    ) -> Result<Self, RedactionError> {
        values.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        values.dedup_by(|a, b| a.0 == b.0);
        let searched = |v: &str| v.chars().count() >= MIN_SCRUBBED_CHARS;
        // Searched-for values first (still longest first): pattern i is values[i].
        let (long, short): (Vec<_>, Vec<_>) = values.into_iter().partition(|(v, _)| searched(v));
        // Fails closed: values that cannot be searched for refuse the delivery.
        let matcher = match long.is_empty() {
            true => None,
            false => Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(long.iter().map(|(v, _)| v))
                    .map_err(|e| {
                        RedactionError::Config(format!("the values cannot be searched for: {e}"))
                    })?,
            ),
        };
        Ok(Self {
            paths,
            values: long.into_iter().chain(short).collect(),
            matcher,
            key,
        })
    }

    /// The run's keeper, for its execution records.
    pub fn into_kept_as(self) -> KeptAs {
        KeptAs(Some(Arc::new(self)))
    }

    /// Every text in `value` (strings, numbers as JSON writes them, object keys)
    /// with the redacted values replaced.
    pub fn scrub(&self, value: &mut Value) {
        if let Some(change) = self.changer() {
            scrub_texts(value, &change);
        }
    }

    /// A text with the redacted values replaced, when it holds any.
    fn changer(&self) -> Option<impl Fn(&str) -> Option<String> + '_> {
        let matcher = self.matcher.as_ref()?;
        let replacements: Vec<&str> = self
            .values
            .iter()
            .take(matcher.patterns_len())
            .map(|(_, r)| r.as_str())
            .collect();
        Some(move |text: &str| {
            matcher
                .is_match(text)
                .then(|| matcher.replace_all(text, &replacements))
        })
    }

    /// An answer kept for duplicates (`trigger.idempotency`): its header values and
    /// its body (parsed when it is JSON, so escaped values are found too) scrubbed.
    pub fn scrub_answer(&self, answer: &mut StoredAnswer) {
        let Some(change) = self.changer() else {
            return;
        };
        for (_, value) in &mut answer.headers {
            if let Some(new) = change(value) {
                *value = new;
            }
        }
        match serde_json::from_slice::<Value>(&answer.body) {
            Ok(mut body) => {
                scrub_texts(&mut body, &change);
                answer.body = body.to_string().into_bytes();
            }
            Err(_) => {
                if let Some(new) = std::str::from_utf8(&answer.body).ok().and_then(&change) {
                    answer.body = new.into_bytes();
                }
            }
        }
    }

    /// A context as it may be kept: the values at the paths replaced (short ones
    /// too), the raw body dropped, and every text scrubbed.
    pub fn scrub_context(&self, context: &mut Value) {
        for path in &self.paths {
            path.replace(context, &|text| self.replacement(text));
        }
        // The body as received holds the values in its own encoding (form,
        // escaped JSON, base64), where they cannot all be found: not kept.
        if let Some(raw) = context.get_mut("rawBody") {
            *raw = Value::String(RAW_BODY_NOT_KEPT.into());
        }
        self.scrub(context);
    }

    fn replacement(&self, text: &str) -> String {
        self.values
            .iter()
            .find(|(v, _)| v == text)
            .map_or_else(|| MASK.to_string(), |(_, r)| r.clone())
    }

    fn seal(
        &self,
        context: &Value,
        paused: Option<Value>,
        output: Option<Value>,
    ) -> Result<String, String> {
        let sealed = Sealed {
            paths: self.paths.iter().map(|p| p.text.clone()).collect(),
            values: self.values.clone(),
            context: context.clone(),
            paused,
            output,
        };
        let text =
            serde_json::to_vec(&sealed).map_err(|_| "the run's state is not JSON".to_string())?;
        self.key.seal(&text)
    }

    /// An async run's message: its context redacted, the real one sealed.
    pub fn seal_message(&self, message: &mut RunMessage) -> Result<(), RedactionError> {
        let sealed = self
            .seal(&message.context, None, None)
            .map_err(RedactionError::Unsealable)?;
        message.sealed = Some(sealed);
        self.scrub_context(&mut message.context);
        Ok(())
    }
}

impl Keeper for Redaction {
    fn kept(&self, execution: &Execution) -> Result<Execution, String> {
        let mut kept = execution.clone();
        kept.kept_as = KeptAs::default();
        // What is read back with the real values sealed: a paused run's state (it
        // resumes from its record), a subflow run's output (its caller reads it
        // from the record once it finishes after a pause).
        let paused = match &execution.paused {
            Some(paused) => Some(
                serde_json::to_value(paused).map_err(|_| "the pause is not JSON".to_string())?,
            ),
            None => None,
        };
        let output = (execution.parent_execution_id.is_some() && execution.status.is_final())
            .then(|| execution.output.clone());
        kept.sealed = match paused.is_some() || output.is_some() {
            true => Some(self.seal(&execution.context, paused, output)?),
            false => None,
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

/// What a sealed message or record holds, opened.
pub struct Opened {
    pub context: Value,
    pub paused: Option<Value>,
    pub output: Option<Value>,
    pub kept_as: KeptAs,
}

/// Opens `sealed` (a message's or a record's) with the key it was sealed with.
pub fn open(sealed: &str, key: Arc<SealingKey>) -> Result<Opened, RedactionError> {
    let text = key.open(sealed).map_err(RedactionError::Unsealable)?;
    // No error text from here on: serde's would quote the real values.
    let unreadable = || RedactionError::Unsealable("what it holds is not a run's state".into());
    let sealed: Sealed = serde_json::from_slice(&text).map_err(|_| unreadable())?;
    let paths = paths::parse_all(&sealed.paths).map_err(|_| unreadable())?;
    Ok(Opened {
        context: sealed.context,
        paused: sealed.paused,
        output: sealed.output,
        kept_as: Redaction::of(paths, sealed.values, key)?.into_kept_as(),
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
        execution.paused = Some(serde_json::from_value(paused).map_err(|_| {
            RedactionError::Unsealable("what it holds is not a paused run's state".into())
        })?);
    }
    execution.kept_as = opened.kept_as;
    Ok(())
}

/// Replaces each text in `value` for which `change` gives a new one: strings,
/// numbers (as JSON writes them; a changed one becomes a string) and object keys.
fn scrub_texts(value: &mut Value, change: &dyn Fn(&str) -> Option<String>) {
    match value {
        Value::String(text) => {
            if let Some(new) = change(text) {
                *text = new;
            }
        }
        Value::Number(n) => {
            if let Some(new) = change(&n.to_string()) {
                *value = Value::String(new);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| scrub_texts(v, change)),
        Value::Object(map) => {
            if map.keys().any(|k| change(k).is_some()) {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(k, v)| (change(&k).unwrap_or(k), v))
                    .collect();
            }
            map.values_mut().for_each(|v| scrub_texts(v, change));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
