//! Replay marks on the DynamoDB table: `EX#<original id>` / `REPLAY`, beside the
//! execution's own item, with `replayId`, `originalId`, and `expiresAt` (the
//! table's TTL) when the store keeps executions for a time.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::errors::{applied, backend};
use super::item::{self, Item, get_s, n, s};
use crate::aws::SignedClient;
use crate::ports::StoreError;

const SK: &str = "REPLAY";
/// BatchGetItem takes at most 100 keys.
const BATCH: usize = 100;

fn key(original: &str) -> Item {
    item::key(item::execution_pk(original), SK)
}

pub async fn mark(
    client: &SignedClient,
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
    let mut put = json!({"TableName": table, "Item": mark});
    if first_only {
        put["ConditionExpression"] = json!("attribute_not_exists(pk)");
    }
    applied(client.dynamodb("PutItem", &put).await)
}

pub async fn unmark(
    client: &SignedClient,
    table: &str,
    original: &str,
    replay: &str,
) -> Result<(), StoreError> {
    let input = json!({
        "TableName": table,
        "Key": key(original),
        "ConditionExpression": "replayId = :replay",
        "ExpressionAttributeValues": {":replay": s(replay)},
    });
    let result = client.dynamodb("DeleteItem", &input).await;
    // Not applied: marked again by another replay meanwhile, and that mark stands.
    applied(result).map(drop)
}

pub async fn marked(
    client: &SignedClient,
    table: &str,
    originals: &[String],
) -> Result<HashSet<String>, StoreError> {
    let mut found = HashSet::new();
    for chunk in originals.chunks(BATCH) {
        let mut keys: Vec<Value> = chunk.iter().map(|id| Value::Object(key(id))).collect();
        // What the table leaves unprocessed (throttled) is asked again.
        while !keys.is_empty() {
            let input = json!({"RequestItems": {table: {
                "Keys": keys,
                "ConsistentRead": true,
                "ProjectionExpression": "originalId",
            }}});
            let mut out = client
                .dynamodb("BatchGetItem", &input)
                .await
                .map_err(backend)?;
            let items = out["Responses"][table].as_array().into_iter().flatten();
            found.extend(
                items
                    .filter_map(Value::as_object)
                    .filter_map(|i| get_s(i, "originalId").map(str::to_string)),
            );
            keys = match out["UnprocessedKeys"][table]["Keys"].take() {
                Value::Array(keys) => keys,
                _ => Vec::new(),
            };
        }
    }
    Ok(found)
}
