//! `json-variable-mapping`: turns an untyped JSON value into named fields that later
//! nodes read as `$jobsMapByNodeKey.<node>.<key>`.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::engine::{Checker, Node, NodeStop, RunContext};
use crate::lang::path;
use crate::model::NodeDefinition;

pub struct JsonVariableMapping;

/// `dataSource` (templated; JSON text is parsed) and `variables: [{key, path}]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingConfig {
    #[serde(default)]
    data_source: Option<Value>,
    #[serde(default)]
    variables: Option<Vec<Mapped>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct Mapped {
    #[serde(default)]
    key: String,
    #[serde(default)]
    path: String,
}

#[async_trait]
impl Node for JsonVariableMapping {
    type Config = MappingConfig;

    fn name(&self) -> &'static str {
        "json-variable-mapping"
    }

    fn check(&self, c: &MappingConfig, at: &str, check: &mut Checker) {
        if c.data_source.is_none() {
            check.error(
                format!("{at}.dataSource"),
                "is required (usually a {{variable}})",
            );
        }
        let Some(variables) = &c.variables else {
            check.error(
                format!("{at}.variables"),
                "is required: an array of {key, path}",
            );
            return;
        };
        let mut keys = std::collections::HashSet::new();
        for (i, v) in variables.iter().enumerate() {
            if v.key.is_empty() {
                check.error(format!("{at}.variables[{i}].key"), "is required");
            } else if !keys.insert(v.key.as_str()) {
                check.error(
                    format!("{at}.variables[{i}].key"),
                    format!("{:?} is declared twice", v.key),
                );
            }
            if path::parse(&v.path).is_none() {
                check.error(
                    format!("{at}.variables[{i}].path"),
                    "must be a path such as a.b[0]",
                );
            }
        }
    }

    async fn run(
        &self,
        c: &MappingConfig,
        _node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let mut data = cx.render(c.data_source.as_ref().unwrap_or(&Value::Null));
        // A JSON document that arrived as text (a form field, a header) is parsed first.
        if let Value::String(text) = &data
            && let Ok(parsed) = serde_json::from_str::<Value>(text)
        {
            data = parsed;
        }
        let mut out = Map::new();
        for v in c.variables.iter().flatten() {
            let value = path::parse(&v.path)
                .and_then(|s| path::get(&data, &s).cloned())
                .unwrap_or(Value::Null);
            out.insert(v.key.clone(), value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::model::ExecutionStatus;
    use crate::nodes::test_support::run;

    #[tokio::test]
    async fn maps_paths_to_named_fields() {
        let nodes = json!([
            {"key": "m", "type": "json-variable-mapping", "config": {"dataSource": "{{$context.body.payload}}",
                "variables": [{"key": "event", "path": "type"}, {"key": "firstItem", "path": "items[0].sku"}, {"key": "missing", "path": "x.y"}]}},
            {"key": "out", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.m.event}}/{{$jobsMapByNodeKey.m.firstItem}}"}}
        ]);
        let body =
            json!({"payload": "{\"type\": \"order.paid\", \"items\": [{\"sku\": \"S-1\"}]}"});
        let (outcome, jobs, output) = run(nodes, json!({"body": body})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        assert_eq!(
            jobs[0].result,
            json!({"event": "order.paid", "firstItem": "S-1", "missing": null})
        );
        assert_eq!(output, json!("order.paid/S-1"));
    }
}
