//! How a definition's problems are reported: each with its JSON path. The
//! definition validator walks the document; each node type checks its own config
//! through the same [`Checker`].

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

use crate::lang::path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Collects problems; node types use it to check their config.
pub struct Checker<'a> {
    problems: &'a mut Vec<Problem>,
    /// Every node of the workflow by key (branches included), for rules that look
    /// across nodes.
    nodes: HashMap<String, Value>,
}

impl<'a> Checker<'a> {
    pub fn new(problems: &'a mut Vec<Problem>) -> Self {
        Self {
            problems,
            nodes: HashMap::new(),
        }
    }

    /// The workflow's node with this key, as written.
    pub fn node(&self, key: &str) -> Option<&Value> {
        self.nodes.get(key)
    }

    pub fn error(&mut self, path: impl AsRef<str>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.as_ref().to_string(),
            message: message.into(),
        });
    }

    /// Sets every node of the workflow by key (branches included).
    pub fn set_nodes(&mut self, nodes: HashMap<String, Value>) {
        self.nodes = nodes;
    }

    /// The keys of every node of the workflow.
    pub fn node_keys(&self) -> impl Iterator<Item = &String> {
        self.nodes.keys()
    }

    pub fn optional_bool(&mut self, object: &Value, field: &str, at: &str) {
        if object.get(field).is_some_and(|v| !v.is_boolean()) {
            self.error(join(at, field), "must be true or false");
        }
    }

    /// An optional whole number of `unit` within `range`.
    pub fn optional_whole(
        &mut self,
        object: &Value,
        field: &str,
        at: &str,
        range: std::ops::RangeInclusive<u64>,
        unit: &str,
    ) {
        if let Some(v) = object.get(field)
            && !v.as_u64().is_some_and(|n| range.contains(&n))
        {
            self.error(
                join(at, field),
                format!(
                    "must be a whole number of {unit}, {}..={}",
                    range.start(),
                    range.end()
                ),
            );
        }
    }

    /// An HTTP status a workflow may answer with (absent means 200).
    pub fn status_code(&mut self, value: Option<&Value>, at: &str) {
        match value {
            None => {}
            Some(v) if v.as_u64().is_some_and(|c| (200..=599).contains(&c)) => {}
            Some(_) => self.error(at, "must be 200..=599"),
        }
    }

    /// `[{name, value}]` HTTP headers.
    pub fn name_values(&mut self, value: Option<&Value>, at: &str) {
        let Some(value) = value else { return };
        let Some(items) = value.as_array() else {
            self.error(at, "must be an array of {name, value}");
            return;
        };
        for (i, item) in items.iter().enumerate() {
            if let Some(map) = item.as_object() {
                for field in map
                    .keys()
                    .filter(|k| !matches!(k.as_str(), "name" | "value"))
                {
                    self.error(
                        format!("{at}[{i}].{field}"),
                        "unknown field; expected one of name, value",
                    );
                }
            }
            match item.get("name").and_then(Value::as_str) {
                Some(name) if is_header_name(name) => {}
                Some(_) => self.error(format!("{at}[{i}].name"), "is not a valid header name"),
                None => self.error(format!("{at}[{i}].name"), "is required"),
            }
            if item
                .get("value")
                .is_some_and(|v| v.is_object() || v.is_array())
            {
                self.error(format!("{at}[{i}].value"), "must be text");
            }
        }
    }
}

/// A string that is a well-formed variable path (`a.b[0]`).
pub fn is_path(value: Option<&Value>) -> bool {
    value
        .and_then(Value::as_str)
        .and_then(path::parse)
        .is_some()
}

/// RFC 9110 token characters.
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `at.field`, or `field` at the root.
pub fn join(at: &str, field: &str) -> String {
    if at.is_empty() {
        field.to_string()
    } else {
        format!("{at}.{field}")
    }
}
