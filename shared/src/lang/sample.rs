//! Variable paths from a sample, as the product page's "parse" button makes them:
//! `{"a": 1, "b": {"c": 2}}` → `a`, `b`, `b.c`; `?query[0][a]=1` → `query`,
//! `query[0]`, `query[0].a`.

use serde_json::Value;

use crate::lang::qs;

/// Every path in a JSON value, parents before children, in document order.
pub fn json_paths(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(value, "", &mut out);
    out
}

/// Every path in the query string of a sample URL (or of a bare query).
pub fn url_paths(sample: &str) -> Vec<String> {
    json_paths(&qs::parse(query_part(sample)))
}

/// The query of `http://host/path?x=1#frag`, `?x=1` or `x=1`.
pub fn query_part(sample: &str) -> &str {
    let sample = sample.trim();
    let without_fragment = sample.split_once('#').map_or(sample, |(q, _)| q);
    match without_fragment.split_once('?') {
        Some((_, query)) => query,
        None if without_fragment.contains("://") => "",
        None => without_fragment,
    }
}

fn walk(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                out.push(path.clone());
                walk(child, &path, out);
            }
        }
        Value::Array(items) if !prefix.is_empty() => {
            for (i, child) in items.iter().enumerate() {
                let path = format!("{prefix}[{i}]");
                out.push(path.clone());
                walk(child, &path, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_sample_paths() {
        assert_eq!(
            json_paths(&json!({"a": 1, "b": {"c": 2}})),
            ["a", "b", "b.c"]
        );
        assert_eq!(
            json_paths(&json!({"items": [{"id": 1}], "n": null})),
            ["items", "items[0]", "items[0].id", "n"]
        );
        assert!(json_paths(&json!(5)).is_empty());
    }

    #[test]
    fn url_sample_paths() {
        assert_eq!(
            url_paths("?query[0][a]=1"),
            ["query", "query[0]", "query[0].a"]
        );
        assert_eq!(
            url_paths("http://localhost:13000/api/webhook:trigger/1hfmkioou0d?query=1#top"),
            ["query"]
        );
        assert_eq!(url_paths("a=1&b[c]=2"), ["a", "b", "b.c"]);
        assert!(url_paths("http://localhost/x").is_empty());
    }
}
