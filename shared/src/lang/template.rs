//! Templates (spec section 5): `{{ path }}` references inside config strings.
//!
//! A string that is exactly one reference takes the referenced JSON value as it is;
//! any other string interpolates each reference as text (missing or null → "").

use serde_json::{Map, Value};

use crate::lang::path::{self, Segment};

/// The variable roots a template may name.
pub const ROOTS: [&str; 5] = [
    "$context",
    "$jobsMapByNodeKey",
    "$scopes",
    "$system",
    "$env",
];

/// Looks a variable path up. Implemented by the engine's run state and by the
/// webhook's response rendering.
pub trait Variables {
    /// The value at `path` (segments after the root), or `None` when missing.
    fn lookup(&self, root: &str, path: &[Segment]) -> Option<Value>;
}

/// Variables held in one JSON object keyed by root name (`{"$context": ...}`).
impl Variables for Map<String, Value> {
    fn lookup(&self, root: &str, path: &[Segment]) -> Option<Value> {
        self.get(root).and_then(|v| path::get(v, path)).cloned()
    }
}

/// One piece of a template string.
#[derive(Debug, PartialEq)]
enum Piece<'a> {
    Text(&'a str),
    Reference(&'a str),
}

fn pieces(s: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open + 2..].find("}}") else {
            break;
        };
        if open > 0 {
            out.push(Piece::Text(&rest[..open]));
        }
        out.push(Piece::Reference(rest[open + 2..open + 2 + close].trim()));
        rest = &rest[open + 2 + close + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

/// Every reference inside a string, trimmed (for validation).
pub fn references(s: &str) -> Vec<&str> {
    pieces(s)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Reference(r) => Some(r),
            Piece::Text(_) => None,
        })
        .collect()
}

/// Resolves one reference (`$context.body.a`) to a value; unknown roots and missing
/// paths are `null`.
pub fn resolve(reference: &str, vars: &dyn Variables) -> Value {
    let Some(segments) = path::parse(reference) else {
        return Value::Null;
    };
    let (root, rest) = segments.split_first().expect("parse never returns empty");
    match root {
        Segment::Key(root) => vars.lookup(root, rest).unwrap_or(Value::Null),
        Segment::Index(_) => Value::Null,
    }
}

/// Renders one string.
pub fn render_str(s: &str, vars: &dyn Variables) -> Value {
    if !s.contains("{{") {
        return Value::String(s.to_string());
    }
    let parts = pieces(s);
    if let [Piece::Reference(r)] = parts.as_slice() {
        return resolve(r, vars);
    }
    let mut out = String::with_capacity(s.len());
    for part in parts {
        match part {
            Piece::Text(t) => out.push_str(t),
            Piece::Reference(r) => push_as_text(&mut out, &resolve(r, vars)),
        }
    }
    Value::String(out)
}

fn push_as_text(out: &mut String, v: &Value) {
    match v {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        Value::Number(n) => out.push_str(&super::number::text(n)),
        other => out.push_str(&other.to_string()),
    }
}

/// Renders every string inside a JSON value (object keys stay as written).
pub fn render(value: &Value, vars: &dyn Variables) -> Value {
    match value {
        Value::String(s) => render_str(s, vars),
        Value::Array(items) => Value::Array(items.iter().map(|v| render(v, vars)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), render(v, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> Map<String, Value> {
        json!({
            "$context": {"body": {"order": {"id": 42, "tags": ["a", "b"]}, "status": "paid", "none": null, "ok": true}},
            "$jobsMapByNodeKey": {"calc": 3.5},
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn whole_value_reference_keeps_the_json_type() {
        let v = vars();
        assert_eq!(
            render_str("{{$context.body.order}}", &v),
            json!({"id": 42, "tags": ["a", "b"]})
        );
        assert_eq!(render_str("{{ $context.body.order.id }}", &v), json!(42));
        assert_eq!(render_str("{{$context.body.ok}}", &v), json!(true));
        assert_eq!(render_str("{{$jobsMapByNodeKey.calc}}", &v), json!(3.5));
        assert_eq!(
            render_str("{{$context.body.order.tags[1]}}", &v),
            json!("b")
        );
    }

    #[test]
    fn missing_whole_value_is_null() {
        let v = vars();
        assert_eq!(
            render_str("{{$context.body.nothing.here}}", &v),
            Value::Null
        );
        assert_eq!(render_str("{{$unknown.x}}", &v), Value::Null);
        assert_eq!(render_str("{{ not a path [ }}", &v), Value::Null);
    }

    #[test]
    fn interpolation_prints_each_kind() {
        let v = vars();
        assert_eq!(
            render_str(
                "order {{$context.body.order.id}} is {{$context.body.status}}",
                &v
            ),
            json!("order 42 is paid")
        );
        assert_eq!(
            render_str("tags={{$context.body.order.tags}}", &v),
            json!("tags=[\"a\",\"b\"]")
        );
        assert_eq!(
            render_str("[{{$context.body.none}}|{{$context.nope}}]", &v),
            json!("[|]")
        );
        assert_eq!(
            render_str("ok={{$context.body.ok}} x={{$jobsMapByNodeKey.calc}}", &v),
            json!("ok=true x=3.5")
        );
        assert_eq!(render_str(" {{$context.body.order.id}}", &v), json!(" 42"));
    }

    #[test]
    fn numbers_interpolate_as_javascript_writes_them() {
        let body: Value =
            serde_json::from_str(r#"{"z": -0, "big": 1e16, "huge": 1e21, "half": 0.5}"#).unwrap();
        let mut v = Map::new();
        v.insert("$context".into(), json!({ "body": body }));
        assert_eq!(
            render_str(
                "{{$context.body.z}}|{{$context.body.big}}|{{$context.body.huge}}|{{$context.body.half}}",
                &v
            ),
            json!("0|10000000000000000|1e+21|0.5")
        );
    }

    #[test]
    fn text_without_references_and_unclosed_braces_stay_as_written() {
        let v = vars();
        assert_eq!(render_str("plain", &v), json!("plain"));
        assert_eq!(render_str("{{ open", &v), json!("{{ open"));
        assert_eq!(
            render_str("a {{$context.body.status}} {{ b", &v),
            json!("a paid {{ b")
        );
    }

    #[test]
    fn renders_nested_values() {
        let v = vars();
        let config = json!({"a": ["{{$context.body.order.id}}", {"b": "id-{{$context.body.order.id}}"}], "n": 1});
        assert_eq!(
            render(&config, &v),
            json!({"a": [42, {"b": "id-42"}], "n": 1})
        );
    }

    #[test]
    fn lists_references() {
        assert_eq!(
            references("a {{ $context.x }} b {{$env.Y}}"),
            vec!["$context.x", "$env.Y"]
        );
    }
}
