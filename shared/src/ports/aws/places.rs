//! `options.concurrency` on AWS: the places of a workflow's runs in flight, one
//! item per workflow on the table (`GATE#<workflow>` / `PLACES`) holding a map of
//! execution id to the unix time its place lapses. SQS cannot bound what Lambda
//! takes from it, so the worker takes a place before a run starts and frees it
//! once the run is recorded; a place whose worker died lapses (after the
//! longest a worker may run), and the run's redelivery takes its own place again.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::errors::{CONDITION_FAILED, backend};
use super::item::{self, n};
use crate::aws::SignedClient;
use crate::ports::StoreError;

/// How long a place holds without being freed: a worker's longest run (15
/// minutes) and a minute more.
pub const PLACE_LEASE_SECONDS: u64 = 16 * 60;

#[derive(Clone)]
pub struct Places {
    client: std::sync::Arc<SignedClient>,
    table: String,
    /// Workflows whose item this process made sure of: made once, then only
    /// updated (an update of a map that is not there is refused).
    made: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl Places {
    pub fn new(client: std::sync::Arc<SignedClient>, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            made: Default::default(),
        }
    }

    fn is_made(&self, workflow: &str) -> bool {
        self.made
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(workflow)
    }

    /// Makes the workflow's item with no place held, unless it is there.
    async fn make(&self, workflow: &str) -> Result<(), StoreError> {
        let mut made = Self::key(workflow);
        made.insert("holders".into(), json!({"M": {}}));
        let put = json!({"TableName": self.table, "Item": made,
            "ConditionExpression": "attribute_not_exists(pk)"});
        match self.client.dynamodb("PutItem", &put).await {
            Ok(_) => {}
            Err(e) if e.code == CONDITION_FAILED => {}
            Err(e) => return Err(backend(e)),
        }
        self.made
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(workflow.to_string());
        Ok(())
    }

    fn key(workflow: &str) -> item::Item {
        item::key(format!("GATE#{workflow}"), "PLACES")
    }

    /// Takes one of `limit` places of `workflow` for `holder` (or renews the one
    /// it holds): `false` when all are held.
    pub async fn take(&self, workflow: &str, holder: &str, limit: u32) -> Result<bool, StoreError> {
        if !self.is_made(workflow) {
            self.make(workflow).await?;
        }
        // Twice at most: again after lapsed places were cleared.
        for _ in 0..2 {
            let input = json!({
                "TableName": self.table,
                "Key": Self::key(workflow),
                "UpdateExpression": "SET holders.#h = :until",
                "ConditionExpression": "attribute_exists(holders.#h) OR size(holders) < :limit",
                "ExpressionAttributeNames": {"#h": holder},
                "ExpressionAttributeValues": {":until": n(now() + PLACE_LEASE_SECONDS), ":limit": n(limit)},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            });
            match self.client.dynamodb("UpdateItem", &input).await {
                Ok(_) => return Ok(true),
                Err(e) if e.code == CONDITION_FAILED => {
                    let held =
                        item::held(&self.client, &self.table, e, Self::key(workflow)).await?;
                    let Some(held) = held else {
                        // Deleted meanwhile: made again.
                        self.make(workflow).await?;
                        continue;
                    };
                    let holders = held
                        .get("holders")
                        .and_then(|h| h.get("M")?.as_object().cloned())
                        .unwrap_or_default();
                    if !self.clear_lapsed(workflow, &holders).await? {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(backend(e)),
            }
        }
        Ok(false)
    }

    /// Removes the places that lapsed, each only if it still holds the time read:
    /// `false` when none had.
    async fn clear_lapsed(
        &self,
        workflow: &str,
        holders: &Map<String, Value>,
    ) -> Result<bool, StoreError> {
        let now = now();
        let lapsed: Vec<(&String, &Value)> = holders
            .iter()
            .filter(|(_, until)| {
                until
                    .get("N")
                    .and_then(Value::as_str)
                    .and_then(|t| t.parse::<u64>().ok())
                    .is_none_or(|t| t <= now)
            })
            .take(50)
            .collect();
        if lapsed.is_empty() {
            return Ok(false);
        }
        let mut names = Map::new();
        let mut values = Map::new();
        let mut removes = Vec::new();
        let mut conditions = Vec::new();
        for (i, (holder, until)) in lapsed.iter().enumerate() {
            names.insert(format!("#l{i}"), json!(holder));
            values.insert(format!(":l{i}"), (*until).clone());
            removes.push(format!("holders.#l{i}"));
            conditions.push(format!("holders.#l{i} = :l{i}"));
        }
        let input = json!({
            "TableName": self.table,
            "Key": Self::key(workflow),
            "UpdateExpression": format!("REMOVE {}", removes.join(", ")),
            "ConditionExpression": conditions.join(" AND "),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        });
        match self.client.dynamodb("UpdateItem", &input).await {
            Ok(_) => Ok(true),
            // Renewed or cleared meanwhile: looked at again by the next take.
            Err(e) if e.code == CONDITION_FAILED => Ok(true),
            Err(e) => Err(backend(e)),
        }
    }

    /// Frees `holder`'s place.
    pub async fn free(&self, workflow: &str, holder: &str) -> Result<(), StoreError> {
        let input = json!({
            "TableName": self.table,
            "Key": Self::key(workflow),
            "UpdateExpression": "REMOVE holders.#h",
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeNames": {"#h": holder},
        });
        match self.client.dynamodb("UpdateItem", &input).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == CONDITION_FAILED => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }
}
