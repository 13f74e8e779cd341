//! `dynamodb`: one item read or written, or a query; items in and out as plain
//! JSON (`serde_dynamo`), never as AttributeValue maps.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use base64::Engine as _;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_attribute_value, to_item};
use serde_json::{Value, json};

use super::{AwsClients, Fields, Text, check_number, failure, finish, required, whole_number};
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

type Item = HashMap<String, AttributeValue>;

/// Plain JSON as an item (an object of attributes).
fn item_of(value: &Value, field: &str) -> Result<Item, Value> {
    if !value.is_object() {
        return Err(json!({
            "message": format!("{field} must be an object of attributes, not {value}"),
            "code": "InvalidParameter"
        }));
    }
    to_item(value)
        .map_err(|e| json!({"message": format!("{field}: {e}"), "code": "InvalidParameter"}))
}

/// An item as plain JSON: binary attributes (which JSON has no type for) as
/// base64 text, sets as lists.
fn json_of(item: &Item) -> Result<Value, Value> {
    let plain: Item = item.iter().map(|(k, v)| (k.clone(), plain(v))).collect();
    from_item::<Value>(plain).map_err(|e| {
        json!({"message": format!("an item DynamoDB returned does not read as JSON: {e}"), "code": "Unreadable"})
    })
}

/// Binary values as base64 strings, at any depth.
fn plain(value: &AttributeValue) -> AttributeValue {
    let base64 = |blob: &aws_sdk_dynamodb::primitives::Blob| {
        base64::engine::general_purpose::STANDARD.encode(blob.as_ref())
    };
    match value {
        AttributeValue::B(blob) => AttributeValue::S(base64(blob)),
        AttributeValue::Bs(blobs) => AttributeValue::Ss(blobs.iter().map(base64).collect()),
        AttributeValue::L(items) => AttributeValue::L(items.iter().map(plain).collect()),
        AttributeValue::M(map) => {
            AttributeValue::M(map.iter().map(|(k, v)| (k.clone(), plain(v))).collect())
        }
        other => other.clone(),
    }
}

/// The attributes a write returned (`returnValues`), `{}` when none.
fn returned(attributes: Option<&Item>) -> Result<Value, Value> {
    attributes.map_or_else(|| Ok(json!({})), json_of)
}

impl DynamoDb {
    async fn call(&self, c: &DynamoConfig) -> Result<Value, Value> {
        let client = self
            .0
            .client(&self.0.dynamodb, aws_sdk_dynamodb::Client::new)
            .await?;
        let table = c.table_name.as_str();
        let resource = format!("table {table}");
        let names = c
            .expression_attribute_names
            .rendered("expressionAttributeNames")?;
        let names: Option<HashMap<String, String>> = (!names.is_empty()).then(|| {
            names
                .iter()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect()
        });
        let mut values = HashMap::new();
        for (name, value) in c
            .expression_attribute_values
            .rendered("expressionAttributeValues")?
        {
            let attribute = to_attribute_value(value).map_err(
                |e| json!({"message": format!("expressionAttributeValues.{name}: {e}"), "code": "InvalidParameter"}),
            )?;
            values.insert(name.clone(), attribute);
        }
        let values = (!values.is_empty()).then_some(values);
        let returning = c
            .return_values
            .as_ref()
            .map(|r| ReturnValue::from(r.as_str()));
        let text = |t: &Option<Text>| t.as_ref().map(|t| t.0.clone());
        match c.operation {
            Operation::Get => {
                let out = client
                    .get_item()
                    .table_name(table)
                    .set_key(Some(item_of(&c.key, "key")?))
                    .set_projection_expression(text(&c.projection_expression))
                    .set_expression_attribute_names(names)
                    .send()
                    .await
                    .map_err(|e| failure("GetItem on", &resource, &e))?;
                out.item().map_or(Ok(Value::Null), json_of)
            }
            Operation::Put => {
                let out = client
                    .put_item()
                    .table_name(table)
                    .set_item(Some(item_of(&c.item, "item")?))
                    .set_condition_expression(text(&c.condition_expression))
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .set_return_values(returning)
                    .send()
                    .await
                    .map_err(|e| failure("PutItem on", &resource, &e))?;
                returned(out.attributes())
            }
            Operation::Update => {
                let out = client
                    .update_item()
                    .table_name(table)
                    .set_key(Some(item_of(&c.key, "key")?))
                    .set_update_expression(text(&c.update_expression))
                    .set_condition_expression(text(&c.condition_expression))
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .return_values(returning.unwrap_or(ReturnValue::AllNew))
                    .send()
                    .await
                    .map_err(|e| failure("UpdateItem on", &resource, &e))?;
                returned(out.attributes())
            }
            Operation::Delete => {
                let out = client
                    .delete_item()
                    .table_name(table)
                    .set_key(Some(item_of(&c.key, "key")?))
                    .set_condition_expression(text(&c.condition_expression))
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .set_return_values(returning)
                    .send()
                    .await
                    .map_err(|e| failure("DeleteItem on", &resource, &e))?;
                returned(out.attributes())
            }
            Operation::Query => {
                let limit = whole_number(&c.limit, "limit", 1..=10_000)?;
                let start = if c.exclusive_start_key.is_null() {
                    None
                } else {
                    Some(item_of(&c.exclusive_start_key, "exclusiveStartKey")?)
                };
                let out = client
                    .query()
                    .table_name(table)
                    .set_index_name(text(&c.index_name))
                    .set_key_condition_expression(text(&c.key_condition_expression))
                    .set_projection_expression(text(&c.projection_expression))
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .set_limit(limit.map(|l| l as i32))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| failure("Query on", &resource, &e))?;
                let items = out
                    .items()
                    .iter()
                    .map(json_of)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(json!({
                    "items": items,
                    "lastEvaluatedKey": out.last_evaluated_key().map_or(Ok(Value::Null), json_of)?,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_read_as_plain_json_with_binaries_as_base64() {
        let blob = |b: &[u8]| aws_sdk_dynamodb::primitives::Blob::new(b.to_vec());
        let item: Item = HashMap::from([
            ("id".to_string(), AttributeValue::S("A-1".into())),
            ("total".to_string(), AttributeValue::N("42.5".into())),
            ("raw".to_string(), AttributeValue::B(blob(&[0xff, 0, 1]))),
            ("keys".to_string(), AttributeValue::Bs(vec![blob(b"k")])),
            ("tags".to_string(), AttributeValue::Ss(vec!["a".into()])),
            (
                "lines".to_string(),
                AttributeValue::L(vec![AttributeValue::M(HashMap::from([(
                    "sig".to_string(),
                    AttributeValue::B(blob(b"s")),
                )]))]),
            ),
            ("gone".to_string(), AttributeValue::Null(true)),
        ]);
        assert_eq!(
            json_of(&item).unwrap(),
            json!({"id": "A-1", "total": 42.5, "raw": "/wAB", "keys": ["aw=="], "tags": ["a"],
                   "lines": [{"sig": "cw=="}], "gone": null})
        );
    }

    #[test]
    fn an_item_must_be_an_object() {
        assert!(item_of(&json!({"pk": "a", "n": 1}), "item").is_ok());
        let failure = item_of(&json!("pk"), "item").unwrap_err();
        assert_eq!(failure["code"], "InvalidParameter");
    }
}
