//! Node configs as typed structs: the definition validator and the run read the
//! same struct, so what validation accepts is exactly what a run understands.
//!
//! Fields that may hold `{{ }}` templates stay JSON values until the run renders
//! them; everything else has its own type.

use std::sync::LazyLock;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::check::{Checker, join};
use super::halt::NodeStop;

/// Reads a node's config for validation. A field that does not read as its type
/// is reported with its JSON path; `None` then, and the node's own rules are not
/// checked until it reads.
pub fn read<T: DeserializeOwned>(config: &Value, at: &str, check: &mut Checker) -> Option<T> {
    let config = if config.is_null() { &EMPTY } else { config };
    match serde_path_to_error::deserialize::<_, T>(config) {
        Ok(typed) => Some(typed),
        Err(e) => {
            let path = e.path().to_string();
            let at = if path == "." {
                at.to_string()
            } else {
                join(at, &path)
            };
            check.error(at, e.into_inner().to_string());
            None
        }
    }
}

/// Reads a node's config for a run. Deployed definitions were validated, so a
/// config that does not read (a record edited by hand) errors the node.
pub fn parse<T: DeserializeOwned>(config: &Value) -> Result<T, NodeStop> {
    let config = if config.is_null() { &EMPTY } else { config };
    T::deserialize(config)
        .map_err(|e| NodeStop::Error(format!("the node's config is invalid: {e}")))
}

/// An absent config reads as `{}`.
static EMPTY: LazyLock<Value> = LazyLock::new(|| Value::Object(serde_json::Map::new()));

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::engine::Problem;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Sample {
        #[serde(default)]
        status_code: Option<u16>,
        #[serde(default)]
        headers: Vec<Pair>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Pair {
        name: String,
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named_by_its_path() {
        let mut problems: Vec<Problem> = Vec::new();
        let mut check = Checker::new(&mut problems);
        let bad = json!({"statusCode": 200, "headers": [{"name": "a"}, {"name": 5}]});
        assert_eq!(read::<Sample>(&bad, "nodes[0].config", &mut check), None);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "nodes[0].config.headers[1].name");
        assert!(
            problems[0].message.contains("expected a string"),
            "{}",
            problems[0]
        );
        let mut check = Checker::new(&mut problems);
        let good = read::<Sample>(&Value::Null, "c", &mut check).unwrap();
        assert_eq!(
            good,
            Sample {
                status_code: None,
                headers: vec![]
            }
        );
        assert!(parse::<Sample>(&json!({"statusCode": "x"})).is_err());
    }
}
