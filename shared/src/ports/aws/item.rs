//! Item shapes of the hookflow table and the 400 KB item limit.
//!
//! One table, keys `pk`/`sk`:
//! - `WF#<key>` / `V#<version>`: one workflow version (`record`: JSON).
//! - `WF#<key>` / `CURRENT`: the current version's number, hook id and record.
//! - `HOOK#<hookId>` / `HOOK`: the hook's workflow key and its current record, so the
//!   webhook's lookup is one `GetItem`.
//! - `EX#<id>` / `EX`: an execution (`record`, `recordZ`: the record deflated, or
//!   `recordAt`: the key of the
//!   claim-check object holding a record too large for the item), with `gsi1pk = WFEX#<key>` and
//!   `gsi1sk = <id>` (UUIDv7, time-ordered) for listing a workflow's executions newest
//!   first, and `expiresAt` (epoch seconds) for TTL retention.
//! - `CLAIM#<workflow key>#<sha256 of the idempotency key>` / `CLAIM`: a claimed
//!   idempotency key (`record`: the claim with its answer as JSON), with
//!   `executionId`, `leaseUntil`, `answered` (present once the answer is kept) for
//!   conditions, and `expiresAt` (the table's TTL attribute) when its claim ends.
//! - `EX#<id>` / `REPLAY`: a replay of that execution was queued (`replayId`); see
//!   `replays.rs`.

use serde_json::{Map, Value, json};

use super::errors::backend;
use crate::aws::{CallError, SignedClient};
use crate::model::{Execution, ExecutionStatus, JobStatus};
use crate::ports::StoreError;

/// An item in DynamoDB JSON, as the service's JSON protocol carries it:
/// `{"pk": {"S": "EX#..."}, "expiresAt": {"N": "1764..."}}`.
pub type Item = Map<String, Value>;

/// DynamoDB's item limit is 400 KB; this leaves room for keys and attribute names.
pub const MAX_RECORD_BYTES: usize = 380_000;

/// Records from this many bytes on are kept deflated (`recordZ`, binary) when that
/// is smaller. JSON deflates to a third to a half, and DynamoDB bills a write per KB
/// of item: a small delivery's record of 1.2 KB costs 1 write unit instead of 2.
const DEFLATE_FROM: usize = 200;

/// The attribute holding a record's JSON text: `record` (a string), or `recordZ`
/// (binary: the text deflated) when that is smaller.
pub fn record_attribute(text: String) -> (&'static str, Value) {
    use base64::Engine as _;
    if text.len() >= DEFLATE_FROM {
        let packed = miniz_oxide::deflate::compress_to_vec(text.as_bytes(), 6);
        if packed.len() < text.len() {
            let packed = base64::engine::general_purpose::STANDARD.encode(packed);
            return ("recordZ", json!({ "B": packed }));
        }
    }
    ("record", s(text))
}

/// The JSON text an item's [`record_attribute`] holds; `None` when it has none.
pub fn record_text(item: &Item) -> Result<Option<std::borrow::Cow<'_, str>>, StoreError> {
    use base64::Engine as _;
    if let Some(text) = get_s(item, "record") {
        return Ok(Some(std::borrow::Cow::Borrowed(text)));
    }
    let Some(packed) = item.get("recordZ").and_then(|v| v.get("B")?.as_str()) else {
        return Ok(None);
    };
    let packed = base64::engine::general_purpose::STANDARD
        .decode(packed)
        .map_err(|e| StoreError::unreadable("recordZ", e))?;
    // No record kept in an item is larger than an item: a bound on what inflates.
    let text = miniz_oxide::inflate::decompress_to_vec_with_limit(&packed, 400 * 1024)
        .map_err(|e| StoreError::unreadable("recordZ", InflateError(e.status)))?;
    String::from_utf8(text)
        .map(|t| Some(std::borrow::Cow::Owned(t)))
        .map_err(|e| StoreError::unreadable("recordZ", e))
}

/// A `recordZ` that does not inflate (to at most an item's size).
#[derive(Debug, thiserror::Error)]
#[error("the record does not inflate: {0:?}")]
struct InflateError(miniz_oxide::inflate::TINFLStatus);

pub fn s(value: impl Into<String>) -> Value {
    json!({ "S": value.into() })
}

/// A number, which DynamoDB JSON writes as text.
pub fn n(value: impl ToString) -> Value {
    json!({ "N": value.to_string() })
}

pub fn flag() -> Value {
    json!({ "BOOL": true })
}

pub fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.get("S")?.as_str()
}

pub fn get_n<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.get("N")?.as_str()
}

/// An object of a reply (`Item`, `LastEvaluatedKey`) as an item, when it has one.
pub fn take_item(reply: &mut Value, field: &str) -> Option<Item> {
    match reply.get_mut(field)?.take() {
        Value::Object(item) => Some(item),
        _ => None,
    }
}

/// An item's key: `pk` and `sk`.
pub fn key(pk: String, sk: &str) -> Item {
    Item::from_iter([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

/// The item at `key`, read consistently (one `GetItem`).
pub async fn get(
    client: &SignedClient,
    table: &str,
    key: Item,
) -> Result<Option<Item>, StoreError> {
    let input = json!({"TableName": table, "Key": key, "ConsistentRead": true});
    let mut out = client.dynamodb("GetItem", &input).await.map_err(backend)?;
    Ok(take_item(&mut out, "Item"))
}

/// The item a failed condition returned (`ReturnValuesOnConditionCheckFailure`),
/// or, from an endpoint that does not return it, the item as it is now.
pub async fn held(
    client: &SignedClient,
    table: &str,
    failed: CallError,
    key: Item,
) -> Result<Option<Item>, StoreError> {
    match failed.details.and_then(|d| match *d {
        Value::Object(mut reply) => match reply.remove("Item") {
            Some(Value::Object(found)) => Some(found),
            _ => None,
        },
        _ => None,
    }) {
        Some(found) => Ok(Some(found)),
        None => get(client, table, key).await,
    }
}

pub fn workflow_pk(key: &str) -> String {
    format!("WF#{key}")
}

pub fn version_sk(version: u32) -> String {
    format!("V#{version:010}")
}

pub fn hook_pk(hook_id: &str) -> String {
    format!("HOOK#{hook_id}")
}

pub fn execution_pk(id: &str) -> String {
    format!("EX#{id}")
}

pub fn claim_pk(workflow_key: &str, key_hash: &str) -> String {
    format!("CLAIM#{workflow_key}#{key_hash}")
}

pub fn executions_gsi_pk(key: &str) -> String {
    format!("WFEX#{key}")
}

/// The executions of one workflow in one status (index `gsi2`, sorted by id).
pub fn status_gsi_pk(key: &str, status: ExecutionStatus) -> String {
    format!("WFST#{key}#{}", status.as_str())
}

/// The execution as JSON text that fits in one item: job results (largest first)
/// and then the context are replaced by `{"truncated": true, "bytes": N}` until it fits.
/// A record is never refused for its size. (With a claim-check bucket, a record too
/// large for its item goes there whole instead: see `objects.rs`.)
pub fn execution_record(execution: &Execution) -> Record {
    fit(
        execution,
        serde_json::to_string(execution).unwrap_or_default(),
    )
}

/// [`execution_record`] of an execution already written as JSON `text`.
pub fn fit(execution: &Execution, text: String) -> Record {
    if text.len() <= MAX_RECORD_BYTES {
        return Record::of(execution, text);
    }
    let mut trimmed = execution.clone();
    let mut sizes: Vec<(usize, usize)> = trimmed
        .jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.result.to_string().len(), i))
        .collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    let mut total = text.len();
    for (size, i) in sizes {
        if total <= MAX_RECORD_BYTES || size < 64 {
            break;
        }
        trimmed.jobs[i].result = marker(size);
        total -= size.saturating_sub(48);
    }
    let mut text = serde_json::to_string(&trimmed).unwrap_or_default();
    if text.len() > MAX_RECORD_BYTES && trimmed.paused.is_some() {
        // A pause must keep its context, output, jobs and state whole to resume
        // exactly; one that cannot fit ends here, recorded as an error.
        trimmed.paused = None;
        // What was sealed to resume with goes too: nothing resumes this.
        trimmed.sealed = None;
        trimmed.status = ExecutionStatus::Error;
        for job in trimmed
            .jobs
            .iter_mut()
            .filter(|j| j.status == JobStatus::Pending)
        {
            job.status = JobStatus::Error;
        }
        trimmed.finished_at = Some(crate::time::now_rfc3339());
        trimmed.output = json!({
            "error": format!("the paused run's state is {} bytes, more than one record holds", text.len())
        });
        text = serde_json::to_string(&trimmed).unwrap_or_default();
    }
    for field in ["context", "output"] {
        if text.len() <= MAX_RECORD_BYTES {
            break;
        }
        let value = if field == "context" {
            &mut trimmed.context
        } else {
            &mut trimmed.output
        };
        *value = marker(value.to_string().len());
        text = serde_json::to_string(&trimmed).unwrap_or_default();
    }
    if text.len() > MAX_RECORD_BYTES {
        // Thousands of small jobs: keep the first ones and say how many were dropped.
        let keep = trimmed.jobs.len() * MAX_RECORD_BYTES / text.len();
        let dropped = trimmed.jobs.len() - keep;
        trimmed.jobs.truncate(keep.saturating_sub(1));
        trimmed.output =
            json!({ "truncated": true, "droppedJobs": dropped, "output": trimmed.output });
        text = serde_json::to_string(&trimmed).unwrap_or_default();
    }
    Record::of(&trimmed, text)
}

/// An execution as written: its JSON text, and the status and pause token of that
/// text (a pause too large to keep is written as an error).
pub struct Record {
    pub text: String,
    pub status: ExecutionStatus,
    pub pause_token: Option<String>,
}

impl Record {
    pub fn of(execution: &Execution, text: String) -> Self {
        Self {
            text,
            status: execution.status,
            pause_token: execution.paused.as_ref().map(|p| p.token.clone()),
        }
    }
}

fn marker(bytes: usize) -> Value {
    json!({ "truncated": true, "bytes": bytes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ExecutionStatus, Job, JobStatus};

    fn execution(results: Vec<Value>) -> Execution {
        Execution {
            id: "e".into(),
            workflow_key: "k".into(),
            workflow_version: 1,
            status: ExecutionStatus::Resolved,
            context: json!({"body": "small"}),
            output: Value::Null,
            jobs: results
                .into_iter()
                .enumerate()
                .map(|(i, result)| Job {
                    node_key: format!("n{i}"),
                    node_type: "output".into(),
                    status: JobStatus::Resolved,
                    result,
                    started_at: "t".into(),
                    finished_at: Some("t".into()),
                    log: Vec::new(),
                    attempts: 0,
                })
                .collect(),
            created_at: "t".into(),
            parent_execution_id: None,
            paused: None,
            finished_at: Some("t".into()),
            attempts: 0,
            idempotency_key: None,
            replay_of: None,
            on_failure_of: None,
            budget: None,
            sealed: None,
            kept_as: Default::default(),
        }
    }

    #[test]
    fn small_records_are_untouched() {
        let e = execution(vec![json!("a"), json!({"b": 1})]);
        assert_eq!(
            execution_record(&e).text,
            serde_json::to_string(&e).unwrap()
        );
    }

    #[test]
    fn large_job_results_become_markers() {
        let big = json!("x".repeat(300_000));
        let e = execution(vec![json!("keep"), big.clone(), big]);
        let text = execution_record(&e).text;
        assert!(text.len() <= MAX_RECORD_BYTES);
        let back: Execution = serde_json::from_str(&text).unwrap();
        assert_eq!(back.jobs[0].result, json!("keep"));
        assert_eq!(back.jobs.len(), 3);
        assert!(
            back.jobs
                .iter()
                .filter(|j| j.result["truncated"] == true)
                .count()
                >= 1
        );
    }

    #[test]
    fn huge_context_and_many_jobs_still_fit() {
        let mut e = execution((0..20_000).map(|i| json!(i)).collect());
        e.context = json!("y".repeat(500_000));
        let text = execution_record(&e).text;
        assert!(text.len() <= MAX_RECORD_BYTES, "{}", text.len());
        let back: Execution = serde_json::from_str(&text).unwrap();
        assert_eq!(back.context["truncated"], true);
    }

    fn paused(e: &mut Execution, results: Value) {
        e.status = ExecutionStatus::Started;
        e.finished_at = None;
        e.paused = Some(crate::model::Paused {
            waits: Vec::new(),
            wake_at: None,
            token: "t".into(),
            cursor: crate::model::Cursor {
                index: 1,
                job: 1,
                frame: json!({"until": "2026-11-28T00:00:00.000Z"}),
            },
            results,
            scopes: json!({}),
            node_runs: 2,
            depth: 0,
        });
    }

    #[test]
    fn a_pause_loses_only_job_results_it_does_not_need() {
        // Resuming reads `paused.results`, never the jobs' results: those may shrink.
        let mut e = execution(vec![json!("x".repeat(400_000)), json!("keep")]);
        paused(&mut e, json!({"n0": "small"}));
        let back: Execution = serde_json::from_str(&execution_record(&e).text).unwrap();
        assert_eq!(back.paused, e.paused);
        assert_eq!(
            (back.context.clone(), back.jobs.len()),
            (e.context.clone(), 2)
        );
        assert_eq!(back.jobs[0].result["truncated"], true);
    }

    #[test]
    fn a_pause_too_large_to_resume_exactly_is_recorded_as_an_error() {
        let mut e = execution(vec![json!("a")]);
        paused(&mut e, json!({"n0": "z".repeat(400_000)}));
        let record = execution_record(&e);
        assert_eq!(
            (record.status, record.pause_token),
            (ExecutionStatus::Error, None)
        );
        let text = record.text;
        assert!(text.len() <= MAX_RECORD_BYTES);
        let back: Execution = serde_json::from_str(&text).unwrap();
        assert!(back.paused.is_none());
        assert_eq!(back.status, ExecutionStatus::Error);
        assert!(
            back.output["error"]
                .as_str()
                .unwrap()
                .contains("paused run's state")
        );
    }

    fn packed(bytes: &[u8]) -> Item {
        use base64::Engine as _;
        let packed = miniz_oxide::deflate::compress_to_vec(bytes, 6);
        let packed = base64::engine::general_purpose::STANDARD.encode(packed);
        Item::from_iter([("recordZ".to_string(), json!({ "B": packed }))])
    }

    /// A record is kept deflated when that is smaller, and reads back whole.
    #[test]
    fn a_record_is_kept_deflated_and_reads_back_whole() {
        let text = serde_json::to_string(&execution(vec![json!({"n": "x".repeat(500)})])).unwrap();
        let (name, value) = record_attribute(text.clone());
        assert_eq!(name, "recordZ");
        let item = Item::from_iter([(name.to_string(), value)]);
        assert_eq!(record_text(&item).unwrap().as_deref(), Some(text.as_str()));
        // Small ones stay text.
        assert_eq!(record_attribute("{}".into()).0, "record");
    }

    /// What an item's `recordZ` holds is read with bounds: a deflate bomb (1 MB of
    /// zeros in about a KB), bytes that are no deflate, base64 that is not, and
    /// text that is not UTF-8 are each refused as unreadable, never inflated whole.
    #[test]
    fn a_hostile_record_z_is_refused_unread() {
        let refused = |item: &Item| match record_text(item) {
            Err(StoreError::Unreadable { what, .. }) => what,
            other => panic!("not refused: {:?}", other.map(|t| t.map(|t| t.len()))),
        };
        let bomb = packed(&vec![0u8; 1 << 20]);
        assert!(bomb["recordZ"]["B"].as_str().unwrap().len() < 4_096);
        assert_eq!(refused(&bomb), "recordZ");
        let noise = Item::from_iter([("recordZ".to_string(), json!({"B": "bm90IGRlZmxhdGU="}))]);
        assert_eq!(refused(&noise), "recordZ");
        let not_base64 = Item::from_iter([("recordZ".to_string(), json!({"B": "%%%"}))]);
        assert_eq!(refused(&not_base64), "recordZ");
        assert_eq!(refused(&packed(&[0xff, 0xfe, 0x00])), "recordZ");
        assert!(record_text(&Item::new()).unwrap().is_none());
    }
}
