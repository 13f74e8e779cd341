//! Plain JSON to and from DynamoDB JSON (`{"S": "text"}`, `{"N": "42"}`, ...), the
//! form DynamoDB's JSON protocol carries items in: the `dynamodb` node takes and
//! gives plain JSON, never attribute maps.

use serde_json::{Map, Number, Value, json};

/// A plain JSON value as an attribute: objects as maps, arrays as lists (never
/// sets), numbers as DynamoDB's decimal text.
pub fn attribute(value: &Value) -> Value {
    match value {
        Value::Null => json!({"NULL": true}),
        Value::Bool(b) => json!({ "BOOL": b }),
        Value::Number(n) => json!({"N": n.to_string()}),
        Value::String(s) => json!({ "S": s }),
        Value::Array(items) => json!({"L": items.iter().map(attribute).collect::<Vec<_>>()}),
        Value::Object(fields) => json!({ "M": attributes(fields) }),
    }
}

/// A plain JSON object as an item (or a map's attributes).
pub fn attributes(fields: &Map<String, Value>) -> Map<String, Value> {
    fields
        .iter()
        .map(|(k, v)| (k.clone(), attribute(v)))
        .collect()
}

/// An attribute as plain JSON: binary values (which JSON has no type for) as the
/// base64 text DynamoDB JSON already gives them in, sets as lists. `None` for
/// what is not an attribute.
pub fn plain(attribute: &Value) -> Option<Value> {
    let (kind, value) = attribute.as_object()?.iter().next()?;
    let list = |read: fn(&Value) -> Option<Value>| -> Option<Value> {
        value.as_array()?.iter().map(read).collect()
    };
    Some(match kind.as_str() {
        "S" | "B" => value.as_str().map(|s| Value::String(s.to_string()))?,
        "N" => number(value)?,
        "BOOL" => Value::Bool(value.as_bool()?),
        "NULL" => Value::Null,
        "SS" | "BS" => list(|v| v.as_str().map(|s| Value::String(s.to_string())))?,
        "NS" => list(number)?,
        "L" => list(plain)?,
        "M" => Value::Object(plain_item(value.as_object()?)?),
        _ => return None,
    })
}

/// An item (or a map) as a plain JSON object.
pub fn plain_item(item: &Map<String, Value>) -> Option<Map<String, Value>> {
    item.iter()
        .map(|(k, v)| Some((k.clone(), plain(v)?)))
        .collect()
}

/// DynamoDB's decimal text as a JSON number; beyond what a JSON number holds
/// (38 digits), as the text.
fn number(value: &Value) -> Option<Value> {
    let text = value.as_str()?;
    Some(match text.parse::<Number>() {
        Ok(n) => Value::Number(n),
        Err(_) => Value::String(text.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_read_as_plain_json_with_binaries_as_base64() {
        let item = json!({
            "id": {"S": "A-1"},
            "total": {"N": "42.5"},
            "count": {"N": "12"},
            "raw": {"B": "/wAB"},
            "keys": {"BS": ["aw=="]},
            "tags": {"SS": ["a"]},
            "sizes": {"NS": ["1", "2.5"]},
            "lines": {"L": [{"M": {"sig": {"B": "cw=="}, "ok": {"BOOL": true}}}]},
            "gone": {"NULL": true},
        });
        assert_eq!(
            Value::Object(plain_item(item.as_object().unwrap()).unwrap()),
            json!({"id": "A-1", "total": 42.5, "count": 12, "raw": "/wAB", "keys": ["aw=="],
                   "tags": ["a"], "sizes": [1, 2.5], "lines": [{"sig": "cw==", "ok": true}],
                   "gone": null})
        );
        assert_eq!(plain(&json!({"X": 1})), None);
        assert_eq!(plain(&json!("text")), None);
    }

    #[test]
    fn plain_json_writes_as_attributes_and_reads_back() {
        let value = json!({"pk": "a", "n": 1, "f": -2.5, "b": false, "none": null,
                           "list": [1, "x", [true]], "map": {"deep": {"er": "y"}}});
        let item = attributes(value.as_object().unwrap());
        assert_eq!(item["n"], json!({"N": "1"}));
        assert_eq!(
            item["list"],
            json!({"L": [{"N": "1"}, {"S": "x"}, {"L": [{"BOOL": true}]}]})
        );
        assert_eq!(item["none"], json!({"NULL": true}));
        assert_eq!(Value::Object(plain_item(&item).unwrap()), value);
    }
}
