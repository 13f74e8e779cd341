//! Variable paths: `a.b`, `a[0].b`, `a.0`, `a["x y"]`.
//!
//! One parser serves templates, declared request paths and sample parsing, so the
//! three agree on what a path means.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object key (or, on an array, a decimal index written with a dot: `a.0`).
    Key(String),
    /// A bracketed index: `a[0]`.
    Index(usize),
}

/// Splits a path into segments. Returns `None` for a malformed path
/// (empty segment, unclosed bracket).
pub fn parse(path: &str) -> Option<Vec<Segment>> {
    let mut segments = Vec::new();
    let mut chars = path.trim().chars().peekable();
    let mut current = String::new();
    let mut after_bracket = false;
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if current.is_empty() && !after_bracket {
                    return None;
                }
                if !current.is_empty() {
                    segments.push(Segment::Key(std::mem::take(&mut current)));
                }
                after_bracket = false;
                chars.peek()?;
            }
            '[' => {
                if !current.is_empty() {
                    segments.push(Segment::Key(std::mem::take(&mut current)));
                } else if segments.is_empty() && !after_bracket {
                    return None;
                }
                let mut inner = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == ']' {
                        closed = true;
                        break;
                    }
                    inner.push(c);
                }
                if !closed {
                    return None;
                }
                segments.push(bracket_segment(inner.trim())?);
                after_bracket = true;
            }
            _ => {
                if after_bracket {
                    return None;
                }
                current.push(c);
            }
        }
    }
    if !current.is_empty() {
        segments.push(Segment::Key(current));
    }
    (!segments.is_empty()).then_some(segments)
}

fn bracket_segment(inner: &str) -> Option<Segment> {
    if let Ok(i) = inner.parse::<usize>() {
        return Some(Segment::Index(i));
    }
    let quoted = (inner.starts_with('"') && inner.ends_with('"'))
        || (inner.starts_with('\'') && inner.ends_with('\''));
    if quoted && inner.len() >= 2 {
        return Some(Segment::Key(inner[1..inner.len() - 1].to_string()));
    }
    // lodash's `get` reads `a[b]` as `a.b`; so do we.
    (!inner.is_empty()).then(|| Segment::Key(inner.to_string()))
}

/// Follows segments into a JSON value; a missing step is `None`, never an error.
pub fn get<'v>(value: &'v Value, segments: &[Segment]) -> Option<&'v Value> {
    segments.iter().try_fold(value, |v, seg| match (v, seg) {
        (Value::Object(map), Segment::Key(k)) => map.get(k),
        (Value::Object(map), Segment::Index(i)) => map.get(&i.to_string()),
        (Value::Array(items), Segment::Index(i)) => items.get(*i),
        (Value::Array(items), Segment::Key(k)) => {
            k.parse::<usize>().ok().and_then(|i| items.get(i))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(path: &str) -> Vec<Segment> {
        parse(path).unwrap()
    }

    #[test]
    fn parses_dots_brackets_and_quotes() {
        assert_eq!(
            keys("a.b[0].c"),
            vec![
                Segment::Key("a".into()),
                Segment::Key("b".into()),
                Segment::Index(0),
                Segment::Key("c".into())
            ]
        );
        assert_eq!(keys("query[0][a]")[2], Segment::Key("a".into()));
        assert_eq!(keys("a[\"x y\"]")[1], Segment::Key("x y".into()));
        assert_eq!(
            keys("$context.body"),
            vec![Segment::Key("$context".into()), Segment::Key("body".into())]
        );
    }

    #[test]
    fn rejects_malformed_paths() {
        for bad in ["", "a..b", ".a", "a.", "a[0", "[0]", "a[]", "a[0]b"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn gets_values_and_misses_quietly() {
        let v = json!({"a": {"b": [10, {"c": "x"}]}});
        assert_eq!(get(&v, &keys("a.b[1].c")), Some(&json!("x")));
        assert_eq!(get(&v, &keys("a.b.0")), Some(&json!(10)));
        assert_eq!(get(&v, &keys("a.b[5]")), None);
        assert_eq!(get(&v, &keys("a.z.y")), None);
        assert_eq!(get(&v, &keys("a.b[0].c")), None);
    }
}
