//! Flow control of async runs, declared in `options` (docs/workflows.md, "Lanes
//! and concurrency"): `lane` orders runs by a key and bounds how many of a key
//! run at once, `staleGuard` skips a run older than what its lane already ran,
//! and `concurrency` bounds a workflow's runs over all keys.
//!
//! What a delivery's lane is gets decided once, when it is accepted
//! ([`FlowTicket`], carried on its run's message), so every queue orders it the
//! same way whatever a worker later finds.

use chrono::DateTime;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The most runs of one key a lane may run at once.
pub const MAX_LANE_CONCURRENCY: u32 = 100;
/// The most runs of one workflow `options.concurrency` may allow at once (on
/// AWS their places share one item: a thousand fit it well).
pub const MAX_CONCURRENCY: u32 = 1_000;

/// `options.lane`: runs whose `key` renders equal start in the order their
/// deliveries were accepted, at most `concurrency` at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LaneConfig {
    /// A template over `$context` (`{{$context.body.customer}}`); empty: no lane.
    pub key: String,
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 100))]
    pub concurrency: u32,
}

fn one() -> u32 {
    1
}

/// `options.staleGuard`: a run whose `version` is not greater than the highest
/// one its lane already ran ends `resolved` as skipped, running no node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaleGuardConfig {
    /// A template over `$context` that renders a number or an RFC 3339 time.
    pub version: String,
}

/// `options.debounce`: deliveries of one key, each within `periodMs` of the one
/// before, make one run `periodMs` after the last (at most `maxWaitMs` after the
/// first), on the last one's context with `$context.debounce`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DebounceConfig {
    /// A template over `$context`; empty: the delivery runs on its own.
    pub key: String,
    #[schemars(range(min = 1, max = 3_600_000))]
    pub period_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86_400_000))]
    pub max_wait_ms: Option<u64>,
}

/// `options.batch`: deliveries of one key make one run when `maxSize` wait or
/// `timeoutMs` after the first, with `$context.batch` their contexts in accept
/// order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchConfig {
    /// A template over `$context`; empty: the delivery runs on its own.
    pub key: String,
    #[schemars(range(min = 1, max = 1000))]
    pub max_size: u32,
    #[schemars(range(min = 1, max = 3_600_000))]
    pub timeout_ms: u64,
}

/// The most deliveries one batch takes.
pub const MAX_BATCH_SIZE: u32 = 1000;
/// The longest `periodMs` and `timeoutMs`: an hour.
pub const MAX_GATHER_WAIT_MS: u64 = 3_600_000;
/// The longest `maxWaitMs`: a day.
pub const MAX_DEBOUNCE_WAIT_MS: u64 = 86_400_000;

/// How deliveries gather into one run: debounced (the last one runs) or batched
/// (all run together).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GatherKind {
    Debounce,
    Batch,
}

/// A delivery that gathers with others of its key, carried on its message (a
/// member), or the check of a gathering that may be due (a flush).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatherTicket {
    pub kind: GatherKind,
    /// The gathering's id: SHA-256 of the workflow, the kind and the key.
    pub group: String,
    /// On a flush: the gathering's generation (its run's execution id), and the
    /// time (unix ms) it was due to be checked, `None` when it filled up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush: Option<Flush>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flush {
    pub generation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<u64>,
}

/// An open gathering as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gathering {
    /// Its run's execution id, fixed when the first delivery joined.
    pub generation: String,
    /// The deliveries' execution ids, in the order they joined.
    pub members: Vec<String>,
    /// Unix milliseconds of the first and the last delivery's accept.
    pub first_at: u64,
    pub last_at: u64,
    /// When its check is due (unix ms): the one check chain that runs.
    pub flush_at: u64,
    /// Closed to deliveries: its run is being made.
    pub sealed: bool,
}

/// What a delivery's joining found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// Joined now; the gathering as it stands.
    Added(Gathering),
    /// Joined before (a redelivery).
    Already(Gathering),
    /// Full, or closed while its run is made: the delivery waits.
    Closed,
}

impl Gathering {
    /// When the gathering is due (unix ms), by its kind's rule.
    pub fn due_at(&self, kind: GatherKind, period_or_timeout: u64, max_wait: Option<u64>) -> u64 {
        match kind {
            GatherKind::Debounce => {
                let after_last = self.last_at.saturating_add(period_or_timeout);
                max_wait.map_or(after_last, |w| {
                    after_last.min(self.first_at.saturating_add(w))
                })
            }
            GatherKind::Batch => self.first_at.saturating_add(period_or_timeout),
        }
    }
}

/// The id of a gathering of `kind` with `key` in `workflow_key`.
pub fn group_id(workflow_key: &str, kind: GatherKind, key: &str) -> String {
    let kind = match kind {
        GatherKind::Debounce => "debounce",
        GatherKind::Batch => "batch",
    };
    lane_id(workflow_key, &format!("{kind}\0{key}"))
}

/// Where a run waits its turn: decided when its delivery is accepted and carried
/// on its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowTicket {
    /// The lane: the workflow's key and the rendered key, hashed (no sender text
    /// in queue or store keys, one fixed length: an SQS message group id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// How many runs of the lane may run at once.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub lane_concurrency: u32,
    /// `options.concurrency` when the delivery was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

impl FlowTicket {
    /// The ticket of a delivery to `workflow_key` with its lane's key rendered
    /// (`None`: no lane, as an empty key) and `options.concurrency`; `None`
    /// when nothing bounds its run.
    pub fn of(
        workflow_key: &str,
        lane: Option<(&LaneConfig, Option<String>)>,
        concurrency: Option<u32>,
    ) -> Option<Self> {
        let lane = lane.and_then(|(config, key)| {
            let key = key.filter(|k| !k.is_empty())?;
            Some((lane_id(workflow_key, &key), config.concurrency.max(1)))
        });
        if lane.is_none() && concurrency.is_none() {
            return None;
        }
        let (lane, lane_concurrency) = match lane {
            Some((id, n)) => (Some(id), n),
            None => (None, 1),
        };
        Some(Self {
            lane,
            lane_concurrency,
            concurrency,
        })
    }
}

/// The id of `key`'s lane in `workflow_key`: SHA-256 of both, hex.
pub fn lane_id(workflow_key: &str, key: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(workflow_key.as_bytes());
    hash.update([0]);
    hash.update(key.as_bytes());
    hex::encode(hash.finalize())
}

/// A `staleGuard` version: a number, or an RFC 3339 time, on one scale
/// (nanoseconds; a number counts as seconds, so a unix time and an RFC 3339
/// time of the same instant are equal).
#[derive(Debug, Clone, PartialEq)]
pub struct LaneVersion {
    /// As the run's context had it: what a skipped run's output shows.
    pub value: Value,
    pub scaled: i128,
}

impl LaneVersion {
    const SCALE: i128 = 1_000_000_000;

    /// `value` as a version: a JSON number, or a text holding a number or an
    /// RFC 3339 time.
    pub fn of(value: &Value) -> Result<Self, String> {
        let scaled = match value {
            Value::Number(n) => scale_number(n.as_i64(), n.as_u64(), n.as_f64()),
            Value::String(s) => scale_text(s.trim()),
            _ => None,
        };
        match scaled {
            Some(scaled) => Ok(Self {
                value: value.clone(),
                scaled,
            }),
            // Not quoted: a sender's text.
            None => Err(format!(
                "options.staleGuard.version rendered {}, which is neither a number nor an RFC 3339 time",
                kind_of(value)
            )),
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number out of range",
        Value::String(_) => "a text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn scale_number(int: Option<i64>, uint: Option<u64>, float: Option<f64>) -> Option<i128> {
    match (int, uint, float) {
        (Some(i), _, _) => Some(i128::from(i) * LaneVersion::SCALE),
        (_, Some(u), _) => Some(i128::from(u) * LaneVersion::SCALE),
        (_, _, Some(f)) if f.is_finite() && f.abs() < 1e28 => {
            // Within i128 once scaled; whole nanoseconds.
            Some((f * 1e9).round() as i128)
        }
        _ => None,
    }
}

fn scale_text(text: &str) -> Option<i128> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(
            i128::from(time.timestamp()) * LaneVersion::SCALE
                + i128::from(time.timestamp_subsec_nanos()),
        );
    }
    if let Ok(i) = text.parse::<i64>() {
        return scale_number(Some(i), None, None);
    }
    text.parse::<f64>()
        .ok()
        .and_then(|f| scale_number(None, None, Some(f)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn numbers_and_times_are_versions_on_one_scale() {
        let scaled = |v: Value| LaneVersion::of(&v).map(|v| v.scaled);
        assert!(scaled(json!(1002)).unwrap() > scaled(json!(1001)).unwrap());
        assert!(scaled(json!("1002")).unwrap() > scaled(json!(1001.5)).unwrap());
        assert_eq!(
            scaled(json!("2024-01-01T00:00:00Z")).unwrap(),
            scaled(json!(1_704_067_200)).unwrap()
        );
        assert!(
            scaled(json!("2024-01-01T00:00:00.000000001+00:00")).unwrap()
                > scaled(json!("2024-01-01T01:00:00+01:00")).unwrap()
        );
        assert!(scaled(json!(u64::MAX)).unwrap() > scaled(json!(i64::MAX)).unwrap());
        for bad in [json!(null), json!("yesterday"), json!({}), json!(true)] {
            assert!(scaled(bad).is_err());
        }
    }

    #[test]
    fn a_ticket_names_its_lane_by_workflow_and_key() {
        let lane = LaneConfig {
            key: "{{$context.body.customer}}".into(),
            concurrency: 3,
        };
        let ticket = FlowTicket::of("orders", Some((&lane, Some("cus_1".into()))), None).unwrap();
        assert_eq!(
            ticket.lane.as_deref(),
            Some(lane_id("orders", "cus_1").as_str())
        );
        assert_eq!(ticket.lane_concurrency, 3);
        assert_ne!(lane_id("orders", "cus_1"), lane_id("refunds", "cus_1"));
        // An empty key means no lane; with no concurrency either, no ticket.
        assert_eq!(
            FlowTicket::of("orders", Some((&lane, Some(String::new()))), None),
            None
        );
        let bounded = FlowTicket::of("orders", Some((&lane, None)), Some(5)).unwrap();
        assert_eq!((bounded.lane, bounded.concurrency), (None, Some(5)));
    }
}
