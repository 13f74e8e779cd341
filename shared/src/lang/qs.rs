//! Query strings parsed the way Node's `qs` does (NocoBase parses webhook queries with it).
//!
//! Percent-decoding is the `percent-encoding` crate's; no Rust crate reproduces qs's
//! bracket nesting, duplicate-key arrays and array/object merging into a JSON value, so
//! that part follows qs v6's `parse`, `merge` and `compact` step by step, with its
//! defaults: depth 5, arrayLimit 20, parameterLimit 1000, no dot notation. Values stay
//! strings.

use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

const DEPTH: usize = 5;
const ARRAY_LIMIT: usize = 20;
const PARAMETER_LIMIT: usize = 1000;

/// A value under construction: arrays may have holes until the final compaction.
#[derive(Debug, Clone)]
enum Qv {
    Str(String),
    /// What qs stores when a plain value is merged into an object: `{value: true}`.
    True,
    Arr(Vec<Option<Qv>>),
    Obj(Vec<(String, Qv)>),
}

impl Qv {
    fn is_container(&self) -> bool {
        matches!(self, Qv::Arr(_) | Qv::Obj(_))
    }
}

/// Parses a raw query string (without the leading `?`) into a JSON object.
pub fn parse(query: &str) -> Value {
    let pairs = query
        .split('&')
        .take(PARAMETER_LIMIT)
        .filter(|part| !part.is_empty())
        .map(|part| {
            // qs splits at `]=` first so that `a[b=c]=d` keeps `=` inside the brackets.
            let split_at = match part.find("]=") {
                Some(p) => Some(p + 1),
                None => part.find('='),
            };
            match split_at {
                Some(p) => (decode(&part[..p]), decode(&part[p + 1..])),
                None => (decode(part), String::new()),
            }
        });
    from_pairs(pairs)
}

/// Builds the object qs would from names and values already decoded (the text
/// fields of a multipart body, say): brackets nest, repeated names make arrays.
pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Value {
    let mut grouped: Vec<(String, Qv)> = Vec::new();
    for (key, value) in pairs.into_iter().take(PARAMETER_LIMIT) {
        if key.is_empty() {
            continue;
        }
        match grouped.iter_mut().find(|(k, _)| *k == key) {
            Some((_, existing)) => combine(existing, Qv::Str(value)),
            None => grouped.push((key, Qv::Str(value))),
        }
    }
    let mut result = Qv::Obj(Vec::new());
    for (key, value) in grouped {
        let nested = parse_key(&key, value);
        result = merge(result, nested);
    }
    to_json(result)
}

fn decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// `[].concat(a, b)` for a repeated key.
fn combine(existing: &mut Qv, value: Qv) {
    match existing {
        Qv::Arr(items) => items.push(Some(value)),
        other => {
            let first = std::mem::replace(other, Qv::True);
            *other = Qv::Arr(vec![Some(first), Some(value)]);
        }
    }
}

/// Splits `a[b][0]` into `a`, `[b]`, `[0]` and builds the nested value from the leaf up.
fn parse_key(key: &str, leaf: Qv) -> Qv {
    let groups = bracket_groups(key);
    let parent_end = groups.first().map_or(key.len(), |(start, _)| *start);
    let mut chain: Vec<String> = Vec::new();
    if parent_end > 0 {
        chain.push(key[..parent_end].to_string());
    }
    for (start, end) in groups.iter().take(DEPTH) {
        chain.push(key[*start..*end].to_string());
    }
    if let Some((start, _)) = groups.get(DEPTH) {
        // Past the depth limit the rest of the key is one literal segment.
        chain.push(format!("[{}]", &key[*start..]));
    }

    let mut value = leaf;
    for root in chain.iter().rev() {
        value = if root == "[]" {
            match value {
                Qv::Arr(items) => Qv::Arr(items),
                other => Qv::Arr(vec![Some(other)]),
            }
        } else {
            let bracketed = root.starts_with('[') && root.ends_with(']') && root.len() >= 2;
            let clean = if bracketed {
                &root[1..root.len() - 1]
            } else {
                root.as_str()
            };
            match array_index(clean) {
                Some(index) if bracketed => {
                    let mut items = vec![None; index + 1];
                    items[index] = Some(value);
                    Qv::Arr(items)
                }
                _ if clean == "__proto__" => Qv::Obj(Vec::new()),
                _ => Qv::Obj(vec![(clean.to_string(), value)]),
            }
        };
    }
    value
}

/// `[...]` groups without nested brackets, as qs's `/(\[[^[\]]*])/g` finds them.
fn bracket_groups(key: &str) -> Vec<(usize, usize)> {
    let bytes = key.as_bytes();
    let mut groups = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'[' {
            match bytes[i + 1..].iter().position(|&b| b == b'[' || b == b']') {
                Some(off) if bytes[i + 1 + off] == b']' => {
                    groups.push((i, i + 2 + off));
                    i += 2 + off;
                    continue;
                }
                Some(off) => {
                    i += 1 + off;
                    continue;
                }
                None => break,
            }
        }
        i += 1;
    }
    groups
}

/// A canonical decimal index within qs's array limit.
fn array_index(s: &str) -> Option<usize> {
    let index: usize = s.parse().ok()?;
    (index.to_string() == s && index <= ARRAY_LIMIT).then_some(index)
}

/// qs's `utils.merge`.
fn merge(target: Qv, source: Qv) -> Qv {
    match (target, source) {
        (target, Qv::Str(s)) if s.is_empty() => target,
        (Qv::Arr(mut items), source @ (Qv::Str(_) | Qv::True)) => {
            items.push(Some(source));
            Qv::Arr(items)
        }
        (Qv::Obj(mut entries), Qv::Str(s)) => {
            set(&mut entries, s, Qv::True);
            Qv::Obj(entries)
        }
        (target @ Qv::Obj(_), Qv::True) => target,
        (target, source @ (Qv::Str(_) | Qv::True)) => Qv::Arr(vec![Some(target), Some(source)]),
        (target @ (Qv::Str(_) | Qv::True), Qv::Arr(items)) => {
            let mut all = vec![Some(target)];
            all.extend(items);
            Qv::Arr(all)
        }
        (target @ (Qv::Str(_) | Qv::True), source @ Qv::Obj(_)) => {
            Qv::Arr(vec![Some(target), Some(source)])
        }
        (Qv::Arr(mut items), Qv::Arr(source)) => {
            for (i, item) in source.into_iter().enumerate() {
                let Some(item) = item else { continue };
                match items.get_mut(i) {
                    Some(Some(existing)) if existing.is_container() && item.is_container() => {
                        let current = std::mem::replace(existing, Qv::True);
                        *existing = merge(current, item);
                    }
                    Some(Some(_)) => items.push(Some(item)),
                    Some(slot @ None) => *slot = Some(item),
                    None => {
                        items.resize(i, None);
                        items.push(Some(item));
                    }
                }
            }
            Qv::Arr(items)
        }
        (Qv::Arr(items), source @ Qv::Obj(_)) => merge(Qv::Obj(array_to_entries(items)), source),
        (Qv::Obj(entries), Qv::Arr(items)) => {
            merge(Qv::Obj(entries), Qv::Obj(array_to_entries(items)))
        }
        (Qv::Obj(mut entries), Qv::Obj(source)) => {
            for (key, value) in source {
                match entries.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, existing)) => {
                        let current = std::mem::replace(existing, Qv::True);
                        *existing = merge(current, value);
                    }
                    None => entries.push((key, value)),
                }
            }
            Qv::Obj(entries)
        }
    }
}

fn set(entries: &mut Vec<(String, Qv)>, key: String, value: Qv) {
    match entries.iter_mut().find(|(k, _)| *k == key) {
        Some((_, existing)) => *existing = value,
        None => entries.push((key, value)),
    }
}

fn array_to_entries(items: Vec<Option<Qv>>) -> Vec<(String, Qv)> {
    items
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| item.map(|v| (i.to_string(), v)))
        .collect()
}

/// Converts to JSON, dropping array holes as qs's `compact` does.
fn to_json(v: Qv) -> Value {
    match v {
        Qv::Str(s) => Value::String(s),
        Qv::True => Value::Bool(true),
        Qv::Arr(items) => Value::Array(items.into_iter().flatten().map(to_json).collect()),
        Qv::Obj(entries) => Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| (k, to_json(v)))
                .collect::<Map<_, _>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use serde_json::json;

    #[test]
    fn spec_examples() {
        assert_eq!(parse("a=1"), json!({"a": "1"}));
        assert_eq!(parse("a=1&a=2"), json!({"a": ["1", "2"]}));
        assert_eq!(parse("a[]=1&a[]=2"), json!({"a": ["1", "2"]}));
        assert_eq!(parse("query[0][a]=1"), json!({"query": [{"a": "1"}]}));
        assert_eq!(parse("a[b][c]=x"), json!({"a": {"b": {"c": "x"}}}));
        assert_eq!(parse("a"), json!({"a": ""}));
    }

    #[test]
    fn decodes_percent_and_plus() {
        assert_eq!(
            parse("q=hello+world%21&e=%E2%9C%93"),
            json!({"q": "hello world!", "e": "✓"})
        );
        assert_eq!(parse("a%5Bb%5D=1"), json!({"a": {"b": "1"}}));
        assert_eq!(parse("a=%zz"), json!({"a": "%zz"}));
        assert_eq!(parse("plus=%2B"), json!({"plus": "+"}));
    }

    #[test]
    fn empty_values_and_empty_parts() {
        assert_eq!(parse(""), json!({}));
        assert_eq!(parse("a=&b="), json!({"a": "", "b": ""}));
        assert_eq!(parse("&&a=1&&"), json!({"a": "1"}));
        assert_eq!(parse("=x"), json!({}));
        assert_eq!(parse("a[]="), json!({"a": [""]}));
        assert_eq!(parse("a=b=c"), json!({"a": "b=c"}));
    }

    #[test]
    fn indexed_arrays_compact_and_respect_the_limit() {
        assert_eq!(parse("a[1]=b&a[3]=c"), json!({"a": ["b", "c"]}));
        assert_eq!(parse("a[1]=b&a[0]=c"), json!({"a": ["c", "b"]}));
        assert_eq!(parse("a[20]=x"), json!({"a": ["x"]}));
        assert_eq!(parse("a[21]=x"), json!({"a": {"21": "x"}}));
        assert_eq!(parse("a[01]=x"), json!({"a": {"01": "x"}}));
        assert_eq!(parse("a[-1]=x"), json!({"a": {"-1": "x"}}));
    }

    #[test]
    fn mixed_arrays_and_objects() {
        assert_eq!(parse("a[0]=b&a[c]=d"), json!({"a": {"0": "b", "c": "d"}}));
        assert_eq!(parse("a[]=b&a[c]=d"), json!({"a": {"0": "b", "c": "d"}}));
        assert_eq!(parse("a=b&a[]=c"), json!({"a": ["b", "c"]}));
        assert_eq!(parse("a[]=b&a=c"), json!({"a": ["b", "c"]}));
        assert_eq!(parse("a[b]=c&a=d"), json!({"a": {"b": "c", "d": true}}));
        assert_eq!(
            parse("query[0][a]=1&query[0][b]=2&query[1][a]=3"),
            json!({"query": [{"a": "1", "b": "2"}, {"a": "3"}]})
        );
        assert_eq!(
            parse("a[][b]=1&a[][b]=2"),
            json!({"a": [{"b": ["1", "2"]}]})
        );
    }

    #[test]
    fn deep_nesting_stops_at_depth_five() {
        assert_eq!(
            parse("a[b][c][d][e][f][g][h]=i"),
            json!({"a": {"b": {"c": {"d": {"e": {"f": {"[g][h]": "i"}}}}}}})
        );
        assert_eq!(
            parse("a[b][c][d][e][f]=x"),
            json!({"a": {"b": {"c": {"d": {"e": {"f": "x"}}}}}})
        );
    }

    #[test]
    fn odd_brackets() {
        assert_eq!(parse("[a]=b"), json!({"a": "b"}));
        assert_eq!(parse("a[b=c]=d"), json!({"a": {"b=c": "d"}}));
        assert_eq!(parse("a[=x"), json!({"a[": "x"}));
        assert_eq!(parse("__proto__[x]=1&b=2"), json!({"b": "2"}));
    }
}
