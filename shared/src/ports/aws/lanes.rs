//! Lane versions (`options.staleGuard`) on the DynamoDB table: `LANE#<lane id>` /
//! `VERSION`, with the version scaled to nanoseconds (`v`, a number: DynamoDB
//! compares 38 digits exactly), as the run had it (`versionJson`), and the run
//! that raised it (`runId`). One conditional update raises it or, refused,
//! returns what holds (`ReturnValuesOnConditionCheckFailure`): one call a run.

use serde_json::{Value, json};

use super::errors::{CONDITION_FAILED, backend};
use super::item::{self, get_n, get_s, n, s};
use crate::aws::SignedClient;
use crate::model::LaneVersion;
use crate::ports::StoreError;

pub async fn raise(
    client: &SignedClient,
    table: &str,
    lane: &str,
    version: &LaneVersion,
    execution_id: &str,
) -> Result<Option<Value>, StoreError> {
    let key = item::key(format!("LANE#{lane}"), "VERSION");
    let input = json!({
        "TableName": table,
        "Key": key,
        "UpdateExpression": "SET v = :v, versionJson = :json, runId = :run",
        "ConditionExpression": "attribute_not_exists(v) OR v < :v OR (v = :v AND runId = :run)",
        "ExpressionAttributeValues": {
            ":v": n(version.scaled),
            ":json": s(version.value.to_string()),
            ":run": s(execution_id),
        },
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    });
    match client.dynamodb("UpdateItem", &input).await {
        Ok(_) => Ok(None),
        Err(e) if e.code == CONDITION_FAILED => {
            let held = item::held(client, table, e, key).await?;
            let held = held.as_ref();
            let text = held.and_then(|h| get_s(h, "versionJson"));
            let value = match text {
                Some(text) => serde_json::from_str(text).unwrap_or(Value::String(text.into())),
                None => held
                    .and_then(|h| get_n(h, "v"))
                    .map_or(Value::Null, |v| Value::String(v.into())),
            };
            Ok(Some(value))
        }
        Err(e) => Err(backend(e)),
    }
}
