//! Gatherings (`options.debounce`, `options.batch`) on the DynamoDB table:
//! `GATHER#<group>` / `OPEN`, with `generation`, `members` (a list of execution
//! ids in the order they joined), `firstAt`, `lastAt` and `flushAt` (unix ms),
//! `sealed` once closed. A join is one conditional update that appends and
//! returns the gathering (or, refused, what holds); up to 1,000 ids fit an item.

use serde_json::{Value, json};

use super::errors::{CONDITION_FAILED, applied, backend};
use super::item::{self, Item, get_n, get_s, n, s};
use crate::aws::SignedClient;
use crate::model::{Gathering, Joined};
use crate::ports::StoreError;

fn key(group: &str) -> Item {
    item::key(format!("GATHER#{group}"), "OPEN")
}

fn number(item: &Item, name: &str) -> u64 {
    get_n(item, name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn read(item: &Item) -> Gathering {
    let members = item
        .get("members")
        .and_then(|m| m.get("L"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|v| v.get("S")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Gathering {
        generation: get_s(item, "generation").unwrap_or_default().to_string(),
        members,
        first_at: number(item, "firstAt"),
        last_at: number(item, "lastAt"),
        flush_at: number(item, "flushAt"),
        sealed: item.contains_key("sealed"),
    }
}

pub async fn join(
    client: &SignedClient,
    table: &str,
    (group, member): (&str, &str),
    now: u64,
    max: Option<u32>,
    (generation, flush_at): (&str, u64),
) -> Result<Joined, StoreError> {
    let input = json!({
        "TableName": table,
        "Key": key(group),
        "UpdateExpression": "SET members = list_append(if_not_exists(members, :none), :member), \
            firstAt = if_not_exists(firstAt, :now), lastAt = :now, \
            generation = if_not_exists(generation, :generation), \
            flushAt = if_not_exists(flushAt, :flush) ADD joined :one",
        "ConditionExpression": "attribute_not_exists(sealed) AND NOT contains(members, :id) \
            AND (attribute_not_exists(joined) OR joined < :max)",
        "ExpressionAttributeValues": {
            ":none": {"L": []},
            ":member": {"L": [s(member)]},
            ":id": s(member),
            ":now": n(now),
            ":generation": s(generation),
            ":flush": n(flush_at),
            ":one": n(1),
            ":max": n(max.unwrap_or(u32::MAX)),
        },
        "ReturnValues": "ALL_NEW",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    });
    match client.dynamodb("UpdateItem", &input).await {
        Ok(out) => {
            let made = out
                .get("Attributes")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            Ok(Joined::Added(read(&made)))
        }
        Err(e) if e.code == CONDITION_FAILED => {
            let held = item::held(client, table, e, key(group)).await?;
            Ok(match held.map(|h| read(&h)) {
                Some(held) if held.members.iter().any(|m| m == member) => Joined::Already(held),
                _ => Joined::Closed,
            })
        }
        Err(e) => Err(backend(e)),
    }
}

pub async fn gathering(
    client: &SignedClient,
    table: &str,
    group: &str,
) -> Result<Option<Gathering>, StoreError> {
    Ok(item::get(client, table, key(group))
        .await?
        .map(|i| read(&i)))
}

pub async fn reschedule(
    client: &SignedClient,
    table: &str,
    (group, generation): (&str, &str),
    from: u64,
    to: u64,
) -> Result<bool, StoreError> {
    let input = json!({
        "TableName": table,
        "Key": key(group),
        "UpdateExpression": "SET flushAt = :to",
        "ConditionExpression": "generation = :generation AND flushAt = :from AND attribute_not_exists(sealed)",
        "ExpressionAttributeValues": {":to": n(to), ":from": n(from), ":generation": s(generation)},
    });
    applied(client.dynamodb("UpdateItem", &input).await)
}

pub async fn seal(
    client: &SignedClient,
    table: &str,
    (group, generation): (&str, &str),
) -> Result<bool, StoreError> {
    let input = json!({
        "TableName": table,
        "Key": key(group),
        "UpdateExpression": "SET sealed = :yes",
        "ConditionExpression": "generation = :generation",
        "ExpressionAttributeValues": {":yes": {"BOOL": true}, ":generation": s(generation)},
    });
    applied(client.dynamodb("UpdateItem", &input).await)
}

pub async fn close(
    client: &SignedClient,
    table: &str,
    (group, generation): (&str, &str),
) -> Result<(), StoreError> {
    let input = json!({
        "TableName": table,
        "Key": key(group),
        "ConditionExpression": "generation = :generation",
        "ExpressionAttributeValues": {":generation": s(generation)},
    });
    applied(client.dynamodb("DeleteItem", &input).await).map(drop)
}
