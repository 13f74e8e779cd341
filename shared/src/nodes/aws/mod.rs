//! Nodes that hand a run's data on to AWS: an event on an EventBridge bus, a
//! message on SQS or SNS, an item in DynamoDB, an object in S3, an email through
//! SES, another Lambda. One module per type; what they share lives here.
//!
//! One client is made once per process, when a node first calls AWS, from the
//! standard AWS environment: region, credentials and `AWS_ENDPOINT_URL` (moto, LocalStack), so
//! `hookflow serve` and the Lambdas run the same nodes. Every AWS error fails the
//! node with `{message, code}` naming the resource, so `ignoreFail` and `retry`
//! apply to it.

mod dynamo_json;
mod dynamodb;
mod eventbridge;
mod lambda;
mod s3;
mod ses;
mod sns;
mod sqs;

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::aws::SdkConfig;
use crate::engine::{Checker, NodeRegistry, NodeStop};

pub use dynamodb::DynamoDb;
pub use eventbridge::EventBridge;
pub use lambda::Lambda;
pub use s3::S3;
pub use ses::Ses;
pub use sns::Sns;
pub use sqs::Sqs;

/// How long one AWS call may take, retries included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The AWS configuration and the client the nodes call through, made when first
/// needed.
#[derive(Default)]
pub struct AwsClients {
    config: OnceCell<Option<SdkConfig>>,
    /// Every service is called without its SDK crate (see the workspace's
    /// Cargo.toml).
    signed: OnceCell<crate::aws::SignedClient>,
}

impl AwsClients {
    /// The standard AWS configuration, or a failure saying how to give one.
    async fn config(&self) -> Result<&SdkConfig, Value> {
        let loaded = self
            .config
            .get_or_init(|| async {
                let config = crate::aws::load_config().await;
                crate::aws::region(&config).is_some().then_some(config)
            })
            .await;
        loaded.as_ref().ok_or_else(|| {
            let e = crate::aws::CallError::not_configured();
            json!({"message": e.message, "code": e.code})
        })
    }

    /// The client every node's calls go through.
    async fn signed(&self) -> Result<&crate::aws::SignedClient, Value> {
        let config = self.config().await?;
        Ok(self
            .signed
            .get_or_init(|| async { crate::aws::SignedClient::new(config.clone(), CALL_TIMEOUT) })
            .await)
    }
}

/// Registers the AWS node types, sharing one set of clients.
pub fn register(registry: &mut NodeRegistry, max_result_bytes: usize) {
    let clients = Arc::new(AwsClients::default());
    registry.register(EventBridge(Arc::clone(&clients)));
    registry.register(Sqs(Arc::clone(&clients)));
    registry.register(Sns(Arc::clone(&clients)));
    registry.register(DynamoDb(Arc::clone(&clients)));
    registry.register(S3 {
        clients: Arc::clone(&clients),
        max_result_bytes,
    });
    registry.register(Ses(Arc::clone(&clients)));
    registry.register(Lambda {
        clients,
        max_result_bytes,
    });
}

/// An AWS error as a node's failure: what was asked of which resource, AWS's
/// message and its error code.
fn call_failure(action: &str, resource: &str, error: &crate::aws::CallError) -> Value {
    json!({"message": format!("{action} {resource}: {}", error.message), "code": error.code})
}

/// The node's answer: its result, or its failure (a result when `ignoreFail`).
fn finish(outcome: Result<Value, Value>, ignore_fail: bool) -> Result<Value, NodeStop> {
    match outcome {
        Ok(result) => Ok(result),
        Err(failure) if ignore_fail => Ok(failure),
        Err(failure) => Err(NodeStop::Fail(failure)),
    }
}

/// A text field: a string, or a number or boolean a template rendered (an id).
#[derive(Debug, Clone, Default, PartialEq, JsonSchema)]
#[schemars(transparent)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Self(s)),
            Value::Number(n) => Ok(Self(crate::lang::number::text(&n))),
            Value::Bool(b) => Ok(Self(b.to_string())),
            Value::Null => Ok(Self::default()),
            other => Err(serde::de::Error::custom(format!(
                "expected text, found {}",
                kind_of(&other)
            ))),
        }
    }
}

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A field that must be there (it may be a template).
fn required(value: &Text, field: &str, at: &str, what: &str, check: &mut Checker) {
    if value.is_empty() {
        check.error(format!("{at}.{field}"), format!("is required: {what}"));
    }
}

/// A value sent as text: a string as it is, a number as a template writes it,
/// an object or list as JSON.
fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => crate::lang::number::text(n),
        other => other.to_string(),
    }
}

/// `messageAttributes` for SQS and SNS: each value's data type (`Number` for
/// numbers, `String` otherwise) and its text, by name.
fn message_attributes(
    fields: &Fields<Value>,
) -> Result<BTreeMap<String, (&'static str, String)>, Value> {
    Ok(fields
        .rendered("messageAttributes")?
        .iter()
        .map(|(name, value)| {
            let data_type = if value.is_number() {
                "Number"
            } else {
                "String"
            };
            (name.clone(), (data_type, as_text(value)))
        })
        .collect())
}

/// A message's content as text; one that rendered to nothing fails the node
/// rather than sending the word `null`.
fn content_text(value: &Value, field: &str) -> Result<String, Value> {
    match value {
        Value::Null => Err(json!({
            "message": format!("{field} rendered to null: nothing to send"),
            "code": "InvalidParameter"
        })),
        other => Ok(as_text(other)),
    }
}

/// A list of texts: written as a list, or as one text (an address, or one
/// `{{ }}` template that renders to the whole list).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Texts(pub Vec<String>);

impl<'de> Deserialize<'de> for Texts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(Self::default()),
            Value::Array(items) => items
                .into_iter()
                .filter(|item| !item.is_null())
                .map(|item| Text::deserialize(item).map(|t| t.0))
                .collect::<Result<_, _>>()
                .map(Self)
                .map_err(serde::de::Error::custom),
            one => Text::deserialize(one)
                .map(|t| Self(vec![t.0]))
                .map_err(|e| serde::de::Error::custom(format!("{e} or a list of texts"))),
        }
    }
}

impl JsonSchema for Texts {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Texts".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let one = generator.subschema_for::<Text>();
        schemars::json_schema!({ "anyOf": [one, { "type": "array", "items": one }] })
    }
}

impl Texts {
    fn or_none(&self) -> Option<Vec<String>> {
        (!self.0.is_empty()).then(|| self.0.clone())
    }
}

/// Named values (`{name: value}`), or one `{{ }}` template that renders to them.
#[derive(Debug, Clone, PartialEq)]
pub struct Fields<V> {
    pub map: BTreeMap<String, V>,
    /// Written as a template; after rendering, text that is not a map of fields.
    template: Option<String>,
}

impl<V> Default for Fields<V> {
    fn default() -> Self {
        Self {
            map: BTreeMap::new(),
            template: None,
        }
    }
}

impl<'de, V: serde::de::DeserializeOwned> Deserialize<'de> for Fields<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(Self::default()),
            Value::String(template) => Ok(Self {
                map: BTreeMap::new(),
                template: Some(template),
            }),
            Value::Object(map) => map
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    V::deserialize(v)
                        .map(|v| (k.clone(), v))
                        .map_err(|e| serde::de::Error::custom(format!("{k}: {e}")))
                })
                .collect::<Result<_, _>>()
                .map(|map| Self {
                    map,
                    template: None,
                }),
            other => Err(serde::de::Error::custom(format!(
                "expected an object of named values, found {}",
                kind_of(&other)
            ))),
        }
    }
}

impl<V: JsonSchema> JsonSchema for Fields<V> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Fields_{}", V::schema_name()).into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let value = generator.subschema_for::<V>();
        schemars::json_schema!({
            "anyOf": [
                { "type": "object", "additionalProperties": value },
                { "type": "string", "pattern": "\\{\\{" }
            ]
        })
    }
}

impl<V> Fields<V> {
    /// The named values of a rendered config; text there means the template
    /// rendered to something else.
    fn rendered(&self, field: &str) -> Result<&BTreeMap<String, V>, Value> {
        match &self.template {
            None => Ok(&self.map),
            Some(text) => Err(json!({
                "message": format!("{field} must render to an object of named values, not the text {text:?}"),
                "code": "InvalidParameter"
            })),
        }
    }

    /// At validation: text must be a template.
    fn check(&self, field: &str, at: &str, check: &mut Checker) {
        if self.template.as_ref().is_some_and(|t| !t.contains("{{")) {
            check.error(
                format!("{at}.{field}"),
                "must be an object of named values (or one {{ }} template)",
            );
        }
    }
}

/// A whole number a template may have rendered as text.
fn whole_number(
    value: &Value,
    field: &str,
    range: RangeInclusive<u64>,
) -> Result<Option<u64>, Value> {
    let number = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_u64(),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match number {
        Some(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(json!({
            "message": format!(
                "{field} must be a whole number from {} to {}, not {value}",
                range.start(),
                range.end()
            ),
            "code": "InvalidParameter"
        })),
    }
}

/// Checks a number field at validation: a whole number in range, or a template.
fn check_number(
    value: &Value,
    field: &str,
    at: &str,
    range: RangeInclusive<u64>,
    check: &mut Checker,
) {
    let ok = match value {
        Value::Null => true,
        Value::String(s) => s.contains("{{"),
        Value::Number(n) => n.as_u64().is_some_and(|n| range.contains(&n)),
        _ => false,
    };
    if !ok {
        check.error(
            format!("{at}.{field}"),
            format!(
                "must be a whole number from {} to {} (or a template)",
                range.start(),
                range.end()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Problem;

    #[test]
    fn a_list_of_texts_may_be_one_text_or_one_template() {
        let read = |v: Value| serde_json::from_value::<Texts>(v).map(|t| t.0);
        assert_eq!(read(json!("a@example.com")).unwrap(), ["a@example.com"]);
        assert_eq!(
            read(json!("{{$context.body.to}}")).unwrap(),
            ["{{$context.body.to}}"]
        );
        assert_eq!(
            read(json!(["a", 7, null, true])).unwrap(),
            ["a", "7", "true"]
        );
        assert_eq!(read(Value::Null).unwrap(), Vec::<String>::new());
        assert!(read(json!({"a": 1})).is_err());
        assert!(read(json!([["nested"]])).is_err());
    }

    #[test]
    fn named_values_may_be_one_template_and_nulls_are_left_out() {
        let fields: Fields<Value> = serde_json::from_value(json!({"a": 1, "b": null})).unwrap();
        assert_eq!(
            fields.rendered("x").unwrap(),
            &BTreeMap::from([("a".to_string(), json!(1))])
        );

        let template: Fields<Value> = serde_json::from_value(json!("{{$context.body}}")).unwrap();
        let mut problems: Vec<Problem> = Vec::new();
        template.check(
            "messageAttributes",
            "nodes[0].config",
            &mut Checker::new(&mut problems),
        );
        assert!(problems.is_empty(), "{problems:?}");
        // A template that rendered to text, not to named values, fails the node.
        let failure = template.rendered("messageAttributes").unwrap_err();
        assert_eq!(failure["code"], "InvalidParameter");

        let text: Fields<Value> = serde_json::from_value(json!("kind=order")).unwrap();
        text.check(
            "messageAttributes",
            "nodes[0].config",
            &mut Checker::new(&mut problems),
        );
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "nodes[0].config.messageAttributes");
        assert!(serde_json::from_value::<Fields<Value>>(json!([1])).is_err());
    }

    #[test]
    fn numbers_read_as_templates_write_them() {
        let text = |v: Value| serde_json::from_value::<Text>(v).unwrap().0;
        assert_eq!(text(json!(1e21)), "1e+21");
        assert_eq!(text(json!(42)), "42");
        assert_eq!(as_text(&json!(0.5)), "0.5");
        assert_eq!(as_text(&json!({"a": 1})), r#"{"a":1}"#);
        assert!(content_text(&Value::Null, "messageBody").is_err());
    }

    #[test]
    fn whole_numbers_are_bounded() {
        assert_eq!(
            whole_number(&json!("15"), "delaySeconds", 0..=900).unwrap(),
            Some(15)
        );
        assert_eq!(whole_number(&Value::Null, "limit", 1..=10).unwrap(), None);
        assert!(whole_number(&json!(0), "limit", 1..=10).is_err());
        assert!(whole_number(&json!(901), "delaySeconds", 0..=900).is_err());
        assert!(whole_number(&json!(-1), "delaySeconds", 0..=900).is_err());
        assert!(whole_number(&json!(1.5), "delaySeconds", 0..=900).is_err());
    }
}
