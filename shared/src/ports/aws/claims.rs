//! Idempotency claims on the DynamoDB table: one conditional `PutItem` claims a key
//! and, when it is held, returns the holder in the same call
//! (`ReturnValuesOnConditionCheckFailure`), so a replay costs no second read.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::dynamo::backend;
use super::item::{self, Item, get_s, n, s};
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
    Item::from([
        ("pk".to_string(), s(item::claim_pk(workflow_key, key_hash))),
        ("sk".to_string(), s("CLAIM")),
    ])
}

fn claim_item(claim: &Claim) -> Result<Item, StoreError> {
    let record = serde_json::to_string(claim).map_err(StoreError::unencodable)?;
    let mut item = claim_key(claim);
    item.insert("executionId".into(), s(&claim.execution_id));
    item.insert("expiresAt".into(), n(claim.expires_at));
    item.insert("leaseUntil".into(), n(claim.lease_until));
    if claim.answer.is_some() {
        item.insert("answered".into(), AttributeValue::Bool(true));
    }
    if claim.pending {
        item.insert("pending".into(), AttributeValue::Bool(true));
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
    if let Some(lease) = found.get("leaseUntil").and_then(|v| v.as_n().ok()) {
        claim.lease_until = lease.parse().unwrap_or(claim.lease_until);
    }
    Ok(claim)
}

pub async fn claim(
    client: &Client,
    table: &str,
    claim: &Claim,
    now: u64,
) -> Result<ClaimOutcome, StoreError> {
    let result = client
        .put_item()
        .table_name(table)
        .set_item(Some(claim_item(claim)?))
        .condition_expression(FREE)
        .expression_attribute_values(":now", n(now))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await;
    match result {
        Ok(_) => Ok(ClaimOutcome::Claimed),
        Err(SdkError::ServiceError(e)) => match e.into_err() {
            PutItemError::ConditionalCheckFailedException(held) => match held.item {
                Some(found) => Ok(ClaimOutcome::Held(read_claim(&found)?)),
                // An endpoint that does not return the item: read it.
                None => holder(client, table, claim).await,
            },
            other => Err(backend(other)),
        },
        Err(e) => Err(backend(e)),
    }
}

async fn holder(client: &Client, table: &str, claim: &Claim) -> Result<ClaimOutcome, StoreError> {
    let found = client
        .get_item()
        .table_name(table)
        .set_key(Some(claim_key(claim)))
        .consistent_read(true)
        .send()
        .await
        .map_err(backend)?
        .item;
    match found {
        Some(found) => Ok(ClaimOutcome::Held(read_claim(&found)?)),
        None => Err(StoreError::unavailable(
            "the claim changed while it was read; retry",
        )),
    }
}

pub async fn settle(client: &Client, table: &str, claim: &Claim) -> Result<(), StoreError> {
    let result = client
        .put_item()
        .table_name(table)
        .set_item(Some(claim_item(claim)?))
        .condition_expression("executionId = :id")
        .expression_attribute_values(":id", s(&claim.execution_id))
        .send()
        .await;
    ignore_lost(result)
}

pub async fn release(client: &Client, table: &str, claim: &Claim) -> Result<(), StoreError> {
    let result = client
        .delete_item()
        .table_name(table)
        .set_key(Some(claim_key(claim)))
        .condition_expression("executionId = :id")
        .expression_attribute_values(":id", s(&claim.execution_id))
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(()),
        Err(e) => Err(backend(e)),
    }
}

/// Renews a pending claim's lease for a duplicate that re-queues its run
/// ([`crate::ports::Store::retake_claim`]): one conditional `UpdateItem`.
pub async fn retake(
    client: &Client,
    table: &str,
    claim: &Claim,
    lease_was: u64,
) -> Result<bool, StoreError> {
    let result = client
        .update_item()
        .table_name(table)
        .set_key(Some(claim_key(claim)))
        .update_expression("SET leaseUntil = :lease")
        .condition_expression(
            "executionId = :id AND attribute_exists(pending) AND leaseUntil = :was",
        )
        .expression_attribute_values(":id", s(&claim.execution_id))
        .expression_attribute_values(":lease", n(claim.lease_until))
        .expression_attribute_values(":was", n(lease_was))
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
            Ok(false)
        }
        Err(e) => Err(backend(e)),
    }
}

/// Confirms the claim on `key` for `copy` of run `execution_id`
/// ([`Claim::check_copy`] as a condition): one conditional `UpdateItem` that
/// removes `pending` and names the copy, and otherwise returns the claim in the
/// same call.
pub async fn confirm(
    client: &Client,
    table: &str,
    workflow_key: &str,
    key: &str,
    execution_id: &str,
    copy: Option<&str>,
) -> Result<ClaimCheck, StoreError> {
    let update = client
        .update_item()
        .table_name(table)
        .set_key(Some(key_of(workflow_key, &key_hash(key))))
        .expression_attribute_values(":id", s(execution_id))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    let update = match copy {
        Some(copy) => update
            .update_expression("REMOVE pending SET confirmedBy = if_not_exists(confirmedBy, :copy)")
            .condition_expression(
                "executionId = :id AND (attribute_exists(pending) \
                 OR attribute_not_exists(confirmedBy) OR confirmedBy = :copy)",
            )
            .expression_attribute_values(":copy", s(copy)),
        // Queued before copies had ids: the only copy.
        None => update
            .update_expression("REMOVE pending")
            .condition_expression("executionId = :id"),
    };
    match update.send().await {
        Ok(_) => Ok(ClaimCheck::Ours),
        Err(SdkError::ServiceError(e)) => match e.into_err() {
            UpdateItemError::ConditionalCheckFailedException(held) => {
                let found = match held.item {
                    Some(found) => Some(found),
                    // No claim, or an endpoint that does not return the item: read it.
                    None => {
                        client
                            .get_item()
                            .table_name(table)
                            .set_key(Some(key_of(workflow_key, &key_hash(key))))
                            .consistent_read(true)
                            .send()
                            .await
                            .map_err(backend)?
                            .item
                    }
                };
                Ok(match found {
                    Some(found) => read_claim(&found)?.check_copy(execution_id, copy),
                    None => ClaimCheck::Gone,
                })
            }
            other => Err(backend(other)),
        },
        Err(e) => Err(backend(e)),
    }
}

/// A claim taken over by another request meanwhile is theirs: nothing to do.
fn ignore_lost<T>(
    result: Result<T, SdkError<PutItemError, aws_sdk_dynamodb::config::http::HttpResponse>>,
) -> Result<(), StoreError> {
    match result {
        Ok(_) => Ok(()),
        Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(()),
        Err(e) => Err(backend(e)),
    }
}
