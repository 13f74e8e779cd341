//! Replay marks on the DynamoDB table: `EX#<original id>` / `REPLAY`, beside the
//! execution's own item, with `replayId`, `originalId`, and `expiresAt` (the
//! table's TTL) when the store keeps executions for a time.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::KeysAndAttributes;

use super::dynamo::{applied, backend};
use super::item::{self, Item, get_s, n, s};
use crate::ports::StoreError;

const SK: &str = "REPLAY";
/// BatchGetItem takes at most 100 keys.
const BATCH: usize = 100;

fn key(original: &str) -> Item {
    Item::from([
        ("pk".to_string(), s(item::execution_pk(original))),
        ("sk".to_string(), s(SK)),
    ])
}

pub async fn mark(
    client: &Client,
    table: &str,
    retention: Option<Duration>,
    (original, replay): (&str, &str),
    first_only: bool,
) -> Result<bool, StoreError> {
    let mut mark = key(original);
    mark.insert("originalId".into(), s(original));
    mark.insert("replayId".into(), s(replay));
    if let Some(keep) = retention {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        mark.insert("expiresAt".into(), n((now + keep).as_secs()));
    }
    let put = client.put_item().table_name(table).set_item(Some(mark));
    let put = if first_only {
        put.condition_expression("attribute_not_exists(pk)")
    } else {
        put
    };
    applied(put.send().await)
}

pub async fn unmark(
    client: &Client,
    table: &str,
    original: &str,
    replay: &str,
) -> Result<(), StoreError> {
    let result = client
        .delete_item()
        .table_name(table)
        .set_key(Some(key(original)))
        .condition_expression("replayId = :replay")
        .expression_attribute_values(":replay", s(replay))
        .send()
        .await;
    // Not applied: marked again by another replay meanwhile, and that mark stands.
    applied(result).map(drop)
}

pub async fn marked(
    client: &Client,
    table: &str,
    originals: &[String],
) -> Result<HashSet<String>, StoreError> {
    let mut found = HashSet::new();
    for chunk in originals.chunks(BATCH) {
        let mut keys: Vec<Item> = chunk.iter().map(|id| key(id)).collect();
        // What the table leaves unprocessed (throttled) is asked again.
        while !keys.is_empty() {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .projection_expression("originalId")
                .build()
                .map_err(|e| StoreError::unavailable_by("building a request", e))?;
            let out = client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(backend)?;
            let items = out.responses.and_then(|mut r| r.remove(table));
            found.extend(
                items
                    .into_iter()
                    .flatten()
                    .filter_map(|i| get_s(&i, "originalId").map(str::to_string)),
            );
            keys = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(table))
                .map(|k| k.keys)
                .unwrap_or_default();
        }
    }
    Ok(found)
}
