//! The paths of `trigger.redact`: `body.customer.email`, `headers.x-api-key`,
//! `body.items[*].card` (`[*]`: every item), `body.lines[0].note`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
    Every,
}

#[derive(Debug, Clone)]
pub struct RedactPath {
    pub text: String,
    steps: Vec<Step>,
}

pub fn parse_all(texts: &[String]) -> Result<Vec<RedactPath>, String> {
    texts.iter().map(|t| parse(t)).collect()
}

pub fn parse(text: &str) -> Result<RedactPath, String> {
    let bad =
        || format!("{text:?} is not a path such as body.customer.email or body.items[*].card");
    let mut steps = Vec::new();
    for part in text.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        if name.is_empty() && (steps.is_empty() || rest.is_empty()) {
            return Err(bad());
        }
        if !name.is_empty() {
            steps.push(Step::Key(name.to_string()));
        }
        while !rest.is_empty() {
            let close = rest.find(']').ok_or_else(bad)?;
            let inside = &rest[1..close];
            steps.push(match inside {
                "*" => Step::Every,
                n => Step::Index(n.parse().map_err(|_| bad())?),
            });
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(bad());
            }
        }
    }
    Ok(RedactPath {
        text: text.to_string(),
        steps,
    })
}

impl RedactPath {
    /// The texts of every value at this path (the leaves of an object or array
    /// found there; numbers and booleans as JSON writes them).
    pub fn collect(&self, context: &Value, out: &mut Vec<String>) {
        for found in at(context, &self.steps) {
            leaves(found, out);
        }
    }

    /// Replaces every leaf at this path with `replacement` of its text.
    pub fn replace(&self, context: &mut Value, replacement: &dyn Fn(&str) -> String) {
        visit_mut(context, &self.steps, &mut |found| {
            replace_leaves(found, replacement)
        });
    }
}

fn at<'v>(value: &'v Value, steps: &[Step]) -> Vec<&'v Value> {
    let Some((step, rest)) = steps.split_first() else {
        return vec![value];
    };
    match (step, value) {
        (Step::Key(k), Value::Object(map)) => map.get(k).map(|v| at(v, rest)).unwrap_or_default(),
        (Step::Index(i), Value::Array(items)) => {
            items.get(*i).map(|v| at(v, rest)).unwrap_or_default()
        }
        (Step::Every, Value::Array(items)) => items.iter().flat_map(|v| at(v, rest)).collect(),
        _ => Vec::new(),
    }
}

fn visit_mut(value: &mut Value, steps: &[Step], f: &mut dyn FnMut(&mut Value)) {
    let Some((step, rest)) = steps.split_first() else {
        return f(value);
    };
    match (step, value) {
        (Step::Key(k), Value::Object(map)) => {
            if let Some(v) = map.get_mut(k) {
                visit_mut(v, rest, f);
            }
        }
        (Step::Index(i), Value::Array(items)) => {
            if let Some(v) = items.get_mut(*i) {
                visit_mut(v, rest, f);
            }
        }
        (Step::Every, Value::Array(items)) => {
            for v in items {
                visit_mut(v, rest, f);
            }
        }
        _ => {}
    }
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        _ => None,
    }
}

fn leaves(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| leaves(v, out)),
        Value::Object(map) => map.values().for_each(|v| leaves(v, out)),
        other => out.extend(text_of(other).filter(|t| !t.is_empty())),
    }
}

fn replace_leaves(value: &mut Value, replacement: &dyn Fn(&str) -> String) {
    match value {
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| replace_leaves(v, replacement)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|v| replace_leaves(v, replacement)),
        other => {
            if let Some(text) = text_of(other) {
                *other = Value::String(replacement(&text));
            }
        }
    }
}
