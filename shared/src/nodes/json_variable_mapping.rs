//! `json-variable-mapping`: turns an untyped JSON value into named fields that later
//! nodes read as `$jobsMapByNodeKey.<node>.<key>`.

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::engine::{Checker, NodeStop, NodeType, RunContext, is_path};
use crate::lang::path;
use crate::model::NodeDefinition;

pub struct JsonVariableMapping;

#[async_trait]
impl NodeType for JsonVariableMapping {
    fn name(&self) -> &'static str {
        "json-variable-mapping"
    }

    fn validate(&self, config: &Value, at: &str, check: &mut Checker) {
        if config.get("dataSource").is_none() {
            check.error(
                format!("{at}.dataSource"),
                "is required (usually a {{variable}})",
            );
        }
        let Some(variables) = config.get("variables").and_then(Value::as_array) else {
            check.error(
                format!("{at}.variables"),
                "is required: an array of {key, path}",
            );
            return;
        };
        let mut keys = std::collections::HashSet::new();
        for (i, v) in variables.iter().enumerate() {
            match v.get("key").and_then(Value::as_str) {
                Some(k) if !k.is_empty() => {
                    if !keys.insert(k) {
                        check.error(
                            format!("{at}.variables[{i}].key"),
                            format!("{k:?} is declared twice"),
                        );
                    }
                }
                _ => check.error(format!("{at}.variables[{i}].key"), "is required"),
            }
            if !is_path(v.get("path")) {
                check.error(
                    format!("{at}.variables[{i}].path"),
                    "must be a path such as a.b[0]",
                );
            }
        }
    }

    async fn run(&self, node: &NodeDefinition, cx: &mut RunContext<'_>) -> Result<Value, NodeStop> {
        let mut data = cx.render(node.config.get("dataSource").unwrap_or(&Value::Null));
        // A JSON document that arrived as text (a form field, a header) is parsed first.
        if let Value::String(text) = &data
            && let Ok(parsed) = serde_json::from_str::<Value>(text)
        {
            data = parsed;
        }
        let mut out = Map::new();
        for v in node
            .config
            .get("variables")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(key), Some(p)) = (
                v.get("key").and_then(Value::as_str),
                v.get("path").and_then(Value::as_str),
            ) else {
                continue;
            };
            let value = path::parse(p)
                .and_then(|s| path::get(&data, &s).cloned())
                .unwrap_or(Value::Null);
            out.insert(key.to_string(), value);
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
