//! `dynamodb`: one item read or written, or a query; items in and out as plain
//! JSON (see [`super::dynamo_json`]), never as attribute maps.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::dynamo_json::{attribute, attributes, plain_item};
use super::{AwsClients, Fields, Text, call_failure, check_number, finish, required, whole_number};
use crate::engine::{Checker, Node, NodeStop, RunContext, config};
use crate::model::NodeDefinition;

pub struct DynamoDb(pub Arc<AwsClients>);

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Operation {
    Get,
    Put,
    Update,
    Delete,
    Query,
}

/// `operation` and `tableName`; `key` (get, update, delete), `item` (put),
/// `updateExpression`, `conditionExpression` (put, update, delete),
/// `keyConditionExpression`, `indexName`, `limit`, `exclusiveStartKey` (query),
/// `projectionExpression` (get, query), `expressionAttributeNames`,
/// `expressionAttributeValues` (plain JSON),
/// `returnValues` (NONE, ALL_OLD, UPDATED_OLD, ALL_NEW, UPDATED_NEW); `ignoreFail`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DynamoConfig {
    operation: Operation,
    #[serde(default)]
    table_name: Text,
    #[serde(default)]
    key: Value,
    #[serde(default)]
    item: Value,
    #[serde(default)]
    update_expression: Option<Text>,
    #[serde(default)]
    condition_expression: Option<Text>,
    #[serde(default)]
    key_condition_expression: Option<Text>,
    #[serde(default)]
    projection_expression: Option<Text>,
    #[serde(default)]
    expression_attribute_names: Fields<Text>,
    #[serde(default)]
    expression_attribute_values: Fields<Value>,
    #[serde(default)]
    index_name: Option<Text>,
    #[serde(default)]
    limit: Value,
    #[serde(default)]
    exclusive_start_key: Value,
    #[serde(default)]
    return_values: Option<Text>,
    #[serde(default)]
    ignore_fail: bool,
}

const RETURN_VALUES: [&str; 5] = ["NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"];

#[async_trait]
impl Node for DynamoDb {
    type Config = DynamoConfig;

    fn name(&self) -> &'static str {
        "dynamodb"
    }

    fn check(&self, c: &DynamoConfig, at: &str, check: &mut Checker) {
        required(
            &c.table_name,
            "tableName",
            at,
            "the table's name or ARN",
            check,
        );
        let needs = |field: &str, present: bool, check: &mut Checker| {
            if !present {
                check.error(
                    format!("{at}.{field}"),
                    format!("is required for {:?}", c.operation).to_lowercase(),
                );
            }
        };
        match c.operation {
            Operation::Get | Operation::Delete => needs("key", !c.key.is_null(), check),
            Operation::Put => needs("item", !c.item.is_null(), check),
            Operation::Update => {
                needs("key", !c.key.is_null(), check);
                needs("updateExpression", c.update_expression.is_some(), check);
            }
            Operation::Query => needs(
                "keyConditionExpression",
                c.key_condition_expression.is_some(),
                check,
            ),
        }
        if let Some(r) = &c.return_values
            && !r.as_str().contains("{{")
            && !RETURN_VALUES.contains(&r.as_str())
        {
            check.error(
                format!("{at}.returnValues"),
                format!("must be one of {}", RETURN_VALUES.join(", ")),
            );
        }
        check_number(&c.limit, "limit", at, 1..=10_000, check);
        c.expression_attribute_names
            .check("expressionAttributeNames", at, check);
        c.expression_attribute_values
            .check("expressionAttributeValues", at, check);
    }

    /// Every string may be templated: the config as written is rendered, then
    /// read, each run.
    async fn run(
        &self,
        _: &DynamoConfig,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let c: DynamoConfig = config::parse(&cx.render(&node.config))?;
        finish(self.call(&c).await, c.ignore_fail)
    }
}

type Item = Map<String, Value>;

/// Plain JSON as an item (an object of attributes).
fn item_of(value: &Value, field: &str) -> Result<Item, Value> {
    match value {
        Value::Object(fields) => Ok(attributes(fields)),
        _ => Err(json!({
            "message": format!("{field} must be an object of attributes, not {value}"),
            "code": "InvalidParameter"
        })),
    }
}

/// An item DynamoDB returned (`Item`, `Attributes`, `LastEvaluatedKey`) as plain
/// JSON; `missing` when the reply has none.
fn json_of(item: Option<&Value>, missing: Value) -> Result<Value, Value> {
    let Some(item) = item else {
        return Ok(missing);
    };
    item.as_object()
        .and_then(plain_item)
        .map(Value::Object)
        .ok_or_else(|| {
            json!({"message": "an item DynamoDB returned does not read as JSON", "code": "Unreadable"})
        })
}

/// A field of the request, when the node's config gives it.
fn set(input: &mut Value, field: &str, text: &Option<Text>) {
    if let Some(t) = text {
        input[field] = json!(t.0);
    }
}

impl DynamoDb {
    async fn call(&self, c: &DynamoConfig) -> Result<Value, Value> {
        let client = self.0.signed().await?;
        let table = c.table_name.as_str();
        let mut input = json!({ "TableName": table });
        let names = c
            .expression_attribute_names
            .rendered("expressionAttributeNames")?;
        if !names.is_empty() {
            let names: Map<String, Value> =
                names.iter().map(|(k, v)| (k.clone(), json!(v.0))).collect();
            input["ExpressionAttributeNames"] = Value::Object(names);
        }
        let values = c
            .expression_attribute_values
            .rendered("expressionAttributeValues")?;
        if !values.is_empty() && c.operation != Operation::Get {
            let values: Map<String, Value> = values
                .iter()
                .map(|(k, v)| (k.clone(), attribute(v)))
                .collect();
            input["ExpressionAttributeValues"] = Value::Object(values);
        }
        match c.operation {
            Operation::Get | Operation::Query => {
                set(&mut input, "ProjectionExpression", &c.projection_expression)
            }
            Operation::Put | Operation::Update | Operation::Delete => {
                set(&mut input, "ConditionExpression", &c.condition_expression);
                set(&mut input, "ReturnValues", &c.return_values);
            }
        }
        let operation = match c.operation {
            Operation::Get => {
                input["Key"] = Value::Object(item_of(&c.key, "key")?);
                "GetItem"
            }
            Operation::Put => {
                input["Item"] = Value::Object(item_of(&c.item, "item")?);
                "PutItem"
            }
            Operation::Update => {
                input["Key"] = Value::Object(item_of(&c.key, "key")?);
                set(&mut input, "UpdateExpression", &c.update_expression);
                if c.return_values.is_none() {
                    input["ReturnValues"] = json!("ALL_NEW");
                }
                "UpdateItem"
            }
            Operation::Delete => {
                input["Key"] = Value::Object(item_of(&c.key, "key")?);
                "DeleteItem"
            }
            Operation::Query => {
                set(&mut input, "IndexName", &c.index_name);
                set(
                    &mut input,
                    "KeyConditionExpression",
                    &c.key_condition_expression,
                );
                if let Some(limit) = whole_number(&c.limit, "limit", 1..=10_000)? {
                    input["Limit"] = json!(limit);
                }
                if !c.exclusive_start_key.is_null() {
                    let start = item_of(&c.exclusive_start_key, "exclusiveStartKey")?;
                    input["ExclusiveStartKey"] = Value::Object(start);
                }
                "Query"
            }
        };
        let resource = format!("table {table}");
        let out = client
            .dynamodb(operation, &input)
            .await
            .map_err(|e| call_failure(&format!("{operation} on"), &resource, &e))?;
        match c.operation {
            Operation::Get => json_of(out.get("Item"), Value::Null),
            Operation::Put | Operation::Update | Operation::Delete => {
                json_of(out.get("Attributes"), json!({}))
            }
            Operation::Query => {
                let items = out.get("Items").and_then(Value::as_array);
                let items = items
                    .into_iter()
                    .flatten()
                    .map(|i| json_of(Some(i), Value::Null))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(json!({
                    "items": items,
                    "lastEvaluatedKey": json_of(out.get("LastEvaluatedKey"), Value::Null)?,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_must_be_an_object() {
        assert!(item_of(&json!({"pk": "a", "n": 1}), "item").is_ok());
        let failure = item_of(&json!("pk"), "item").unwrap_err();
        assert_eq!(failure["code"], "InvalidParameter");
    }
}
