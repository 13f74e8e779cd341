//! Idempotency claims on the DynamoDB table: one conditional `PutItem` claims a key
//! and, when it is held, returns the holder in the same call
//! (`ReturnValuesOnConditionCheckFailure`), so a replay costs no second read.

use serde_json::json;

use super::errors::{CONDITION_FAILED, applied, backend};
use super::item::{self, Item, flag, get_n, get_s, n, s};
use crate::aws::SignedClient;
use crate::model::{Claim, ClaimCheck, ClaimOutcome, key_hash};
use crate::ports::StoreError;

/// A claim the table no longer holds (expired, or its lease ran out with no
/// answer) may be taken: [`Claim::holds_at`] as a condition.
const FREE: &str = "attribute_not_exists(pk) OR expiresAt <= :now \
                    OR (attribute_not_exists(answered) AND leaseUntil <= :now)";

fn claim_key(claim: &Claim) -> Item {
    key_of(&claim.workflow_key, &claim.key_hash())
}

fn key_of(workflow_key: &str, key_hash: &str) -> Item {
    item::key(item::claim_pk(workflow_key, key_hash), "CLAIM")
}

fn claim_item(claim: &Claim) -> Result<Item, StoreError> {
    let record = serde_json::to_string(claim).map_err(StoreError::unencodable)?;
    let mut item = claim_key(claim);
    item.insert("executionId".into(), s(&claim.execution_id));
    item.insert("expiresAt".into(), n(claim.expires_at));
    item.insert("leaseUntil".into(), n(claim.lease_until));
    if claim.answer.is_some() {
        item.insert("answered".into(), flag());
    }
    if claim.pending {
        item.insert("pending".into(), flag());
    }
    item.insert("record".into(), s(record));
    Ok(item)
}

/// A claim item as a [`Claim`]: whether it is pending is the `pending`
/// attribute's to say, which the worker's confirmation removes.
fn read_claim(found: &Item) -> Result<Claim, StoreError> {
    let text = get_s(found, "record").ok_or_else(|| StoreError::Unreadable {
        what: "claim item without a record".into(),
        source: None,
    })?;
    let mut claim: Claim =
        serde_json::from_str(text).map_err(|e| StoreError::unreadable("claim", e))?;
    claim.pending = found.contains_key("pending");
    claim.confirmed_by = get_s(found, "confirmedBy").map(str::to_string);
    // Renewed by a retake, which leaves the record as it was written.
    if let Some(lease) = get_n(found, "leaseUntil") {
        claim.lease_until = lease.parse().unwrap_or(claim.lease_until);
    }
    Ok(claim)
}

pub async fn claim(
    client: &SignedClient,
    table: &str,
    claim: &Claim,
    now: u64,
) -> Result<ClaimOutcome, StoreError> {
    let input = json!({
        "TableName": table,
        "Item": claim_item(claim)?,
        "ConditionExpression": FREE,
        "ExpressionAttributeValues": {":now": n(now)},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    });
    match client.dynamodb("PutItem", &input).await {
        Ok(_) => Ok(ClaimOutcome::Claimed),
        Err(e) if e.code == CONDITION_FAILED => {
            match item::held(client, table, e, claim_key(claim)).await? {
                Some(found) => Ok(ClaimOutcome::Held(read_claim(&found)?)),
                None => Err(StoreError::unavailable(
                    "the claim changed while it was read; retry",
                )),
            }
        }
        Err(e) => Err(backend(e)),
    }
}

/// A claim taken over by another request meanwhile is theirs: nothing to do.
pub async fn settle(client: &SignedClient, table: &str, claim: &Claim) -> Result<(), StoreError> {
    let input = json!({
        "TableName": table,
        "Item": claim_item(claim)?,
        "ConditionExpression": "executionId = :id",
        "ExpressionAttributeValues": {":id": s(&claim.execution_id)},
    });
    applied(client.dynamodb("PutItem", &input).await).map(drop)
}

pub async fn release(client: &SignedClient, table: &str, claim: &Claim) -> Result<(), StoreError> {
    let input = json!({
        "TableName": table,
        "Key": claim_key(claim),
        "ConditionExpression": "executionId = :id",
        "ExpressionAttributeValues": {":id": s(&claim.execution_id)},
    });
    applied(client.dynamodb("DeleteItem", &input).await).map(drop)
}

/// Renews a pending claim's lease for a duplicate that re-queues its run
/// ([`crate::ports::Store::retake_claim`]): one conditional `UpdateItem`.
pub async fn retake(
    client: &SignedClient,
    table: &str,
    claim: &Claim,
    lease_was: u64,
) -> Result<bool, StoreError> {
    let input = json!({
        "TableName": table,
        "Key": claim_key(claim),
        "UpdateExpression": "SET leaseUntil = :lease",
        "ConditionExpression":
            "executionId = :id AND attribute_exists(pending) AND leaseUntil = :was",
        "ExpressionAttributeValues": {
            ":id": s(&claim.execution_id),
            ":lease": n(claim.lease_until),
            ":was": n(lease_was),
        },
    });
    applied(client.dynamodb("UpdateItem", &input).await)
}

/// Confirms the claim on `key` for `copy` of run `execution_id`
/// ([`Claim::check_copy`] as a condition): one conditional `UpdateItem` that
/// removes `pending` and names the copy, and otherwise returns the claim in the
/// same call.
pub async fn confirm(
    client: &SignedClient,
    table: &str,
    workflow_key: &str,
    key: &str,
    execution_id: &str,
    copy: &str,
) -> Result<ClaimCheck, StoreError> {
    let input = json!({
        "TableName": table,
        "Key": key_of(workflow_key, &key_hash(key)),
        "UpdateExpression": "REMOVE pending SET confirmedBy = if_not_exists(confirmedBy, :copy)",
        "ConditionExpression": "executionId = :id AND (attribute_exists(pending) \
            OR attribute_not_exists(confirmedBy) OR confirmedBy = :copy)",
        "ExpressionAttributeValues": {":id": s(execution_id), ":copy": s(copy)},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    });
    match client.dynamodb("UpdateItem", &input).await {
        Ok(_) => Ok(ClaimCheck::Ours),
        // No claim, or one that is not this copy's.
        Err(e) if e.code == CONDITION_FAILED => {
            let key = key_of(workflow_key, &key_hash(key));
            Ok(match item::held(client, table, e, key).await? {
                Some(found) => read_claim(&found)?.check_copy(execution_id, copy),
                None => ClaimCheck::Gone,
            })
        }
        Err(e) => Err(backend(e)),
    }
}
