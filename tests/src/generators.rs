//! Generators for the property tests, shared by the end-to-end suite's test files
//! (they live in this crate, which nothing that ships depends on).
//!
//! Values are the kind a hostile caller sends: numbers at and past every integer
//! and float bound, NaN and Infinity spelt as text, `-0`, dates that are not
//! dates, long strings, deep nesting.

use proptest::prelude::*;
use serde_json::{Map, Number, Value, json};

/// Numbers and number-like text at the edges of every conversion, as a fixed
/// list (the end-to-end suite sends each one to every node type).
pub fn hostile_values() -> Vec<Value> {
    vec![
        json!(1e300),
        json!(-1e300),
        json!(f64::MAX),
        json!(f64::MIN_POSITIVE),
        json!(9_223_372_036_854_775_807_i64),
        json!(-9_223_372_036_854_775_807_i64 - 1),
        json!(18_446_744_073_709_551_615_u64),
        json!(9.223_372_036_854_776e18),
        json!(1e15),
        json!(-0.0),
        json!(0.5),
        json!("NaN"),
        json!("Infinity"),
        json!("-Infinity"),
        json!("-0"),
        json!("1e400"),
        json!("9999999999999999999999"),
        json!("1000000000000000"),
        json!("2024-02-30"),
        json!("275760-09-13T00:00:00Z"),
        json!("-271821-04-20"),
        json!("not a date"),
        json!(""),
        json!(" "),
        json!("{{$context}}"),
        json!("\u{0}\u{1f}\"\\\r\n"),
        Value::String("é".repeat(4_000)),
    ]
}

/// One of [`hostile_values`].
pub fn hostile_scalar() -> impl Strategy<Value = Value> {
    prop::sample::select(hostile_values())
}

/// Any JSON scalar, hostile ones included.
pub fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => hostile_scalar(),
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => any::<i64>().prop_map(|i| json!(i)),
        2 => any::<f64>().prop_filter_map("finite", Number::from_f64).prop_map(Value::Number),
        2 => "\\PC{0,24}".prop_map(Value::String),
    ]
}

/// Any JSON value up to a few levels deep.
pub fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z$_]{0,6}", inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A value nested `levels` deep (`[[[...]]]`), built without recursion.
pub fn nested(levels: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..levels {
        value = Value::Array(vec![value]);
    }
    value
}
