//! Each builtin or construct that can grow its output past its inputs, with
//! sender-sized inputs: the expression fails naming its bound, where before it
//! took GBs (or aborted the process). The regex cases run on backtracking-hostile
//! input and answer, where before they ran for longer than the universe.

use serde_json::{Value, json};

use super::evaluate;

fn failure(expression: &str, source: &Value) -> String {
    match evaluate(expression, source, false) {
        Ok(v) => panic!("{expression} answered {}", limit_shown(&v)),
        Err(message) => message,
    }
}

fn limit_shown(v: &Value) -> String {
    v.to_string().chars().take(200).collect()
}

/// 360 KB of `<x>` and a 40 KB replacement: 4.8 GB if built.
fn markers() -> Value {
    json!({"t": "<x>".repeat(120_000), "v": "y".repeat(40_000)})
}

#[test]
fn replace_with_a_string_pattern_is_sized_before_it_is_built() {
    let message = failure("$replace(t, \"<x>\", v)", &markers());
    assert!(
        message.contains("$replace: the result would be more than 8 MiB"),
        "{message}"
    );
    // Within the bound it replaces as jsonata-rs does.
    let small = json!({"t": "a<x>b<x>", "v": "-"});
    assert_eq!(
        evaluate("$replace(t, \"<x>\", v)", &small, false),
        Ok(json!("a-b-"))
    );
    assert_eq!(
        evaluate("$replace(t, \"<x>\", v, 1)", &small, false),
        Ok(json!("a-b<x>"))
    );
}

#[test]
fn replace_with_a_regex_stops_at_the_bound() {
    let message = failure("$replace(t, /<x>/, v)", &markers());
    assert!(
        message.contains("$replace: the result would be more than 8 MiB"),
        "{message}"
    );
    let message = failure("$replace(t, /<x>/, function($m) { $$.v })", &markers());
    assert!(
        message.contains("$replace: the result would be more than 8 MiB"),
        "{message}"
    );
    let small = json!({"t": "ab12cd345"});
    assert_eq!(
        evaluate(
            "$replace(t, /([a-z]+)(\\d+)/, \"[$2:$1]$$\")",
            &small,
            false
        ),
        Ok(json!("[12:ab]$[345:cd]$"))
    );
    assert_eq!(
        evaluate(
            "$replace(t, /\\d+/, function($m) { $string($length($m.match)) })",
            &small,
            false
        ),
        Ok(json!("ab2cd3"))
    );
}

#[test]
fn join_of_one_string_repeated_is_sized_before_it_is_built() {
    let source = json!({"t": "x".repeat(100_000)});
    let message = failure("$join([1..1000].($$.t), \",\")", &source);
    assert!(
        message.contains("$join: the result would be more than 8 MiB"),
        "{message}"
    );
    assert_eq!(
        evaluate("$join([\"a\", \"b\"], \",\")", &source, false),
        Ok(json!("a,b"))
    );
}

/// `[$a, $a]` nested 8 times over a 100 KB body: 25 MB of text from pointers.
const SHARED_PARTS: &str = "($a := [$, $]; $b := [$a, $a]; $c := [$b, $b]; $d := [$c, $c]; $e := [$d, $d]; \
     $f := [$e, $e]; $g := [$f, $f]; $h := [$g, $g]; ";

#[test]
fn text_of_shared_parts_is_sized_before_it_is_written() {
    let source = json!({"t": "x".repeat(100_000)});
    let message = failure(&format!("{SHARED_PARTS} $string($h))"), &source);
    assert!(
        message.contains("$string: the result would be more than 8 MiB"),
        "{message}"
    );
    let message = failure(&format!("{SHARED_PARTS} $h)"), &source);
    assert!(
        message.contains("the result is more than 8 MiB"),
        "{message}"
    );
    assert_eq!(
        evaluate("$string([1, \"a\"])", &source, false),
        Ok(json!("[1,\"a\"]"))
    );
}

#[test]
fn a_range_from_the_request_stops_at_the_memory_budget() {
    // Materialised (an array constructor copies it): 10^7 values in the arena.
    let message = failure("$count([[1..n]][0].($ + 1))", &json!({"n": 10_000_000}));
    assert!(message.contains("memory budget of 64 MiB"), "{message}");
    assert_eq!(
        evaluate("$count([1..n])", &json!({"n": 1000}), false),
        Ok(json!(1000))
    );
}

#[test]
fn regexes_match_in_linear_time() {
    // 40 characters and a mismatch at the end: 2^40 steps for a backtracking engine.
    let source = json!({"name": format!("{}!", "a".repeat(40))});
    let evil = "/^([a-zA-Z0-9]+\\s?)*$/";
    assert_eq!(
        evaluate(&format!("$contains(name, {evil})"), &source, false),
        Ok(json!(false))
    );
    assert_eq!(
        evaluate(&format!("$match(name, {evil})"), &source, false),
        Ok(json!([]))
    );
    assert_eq!(
        evaluate(&format!("$replace(name, {evil}, \"z\")"), &source, false),
        Ok(source["name"].clone())
    );
    assert_eq!(
        evaluate(&format!("$split(name, {evil})"), &source, false),
        Ok(json!([source["name"]]))
    );
    // A pattern string from the request is compiled by the same engine.
    let sent = json!({"name": source["name"], "p": "^([a-zA-Z0-9]+\\s?)*$"});
    assert_eq!(evaluate("$match(name, p)", &sent, false), Ok(json!([])));
}

#[test]
fn regex_builtins_answer_as_before() {
    let source = json!({"s": "Ab1 ab22 AB333"});
    assert_eq!(
        evaluate("$contains(s, /b2/)", &source, false),
        Ok(json!(true))
    );
    assert_eq!(
        evaluate("$contains(s, /ZZ/i)", &source, false),
        Ok(json!(false))
    );
    assert_eq!(
        evaluate("$contains(s, \"ab\")", &source, false),
        Ok(json!(true))
    );
    assert_eq!(
        evaluate("$match(s, /a(b)(\\d+)/i)", &source, false),
        Ok(json!([
            {"match": "Ab1", "index": 0, "groups": ["b", "1"]},
            {"match": "ab22", "index": 1, "groups": ["b", "22"]},
            {"match": "AB333", "index": 2, "groups": ["B", "333"]}
        ]))
    );
    assert_eq!(
        evaluate("$split(s, /\\s+/)", &source, false),
        Ok(json!(["Ab1", "ab22", "AB333"]))
    );
    assert_eq!(
        evaluate("$split(s, /\\s+/, 2)", &source, false),
        Ok(json!(["Ab1", "ab22"]))
    );
    assert_eq!(
        evaluate("$split(s, \" \")", &source, false),
        Ok(json!(["Ab1", "ab22", "AB333"]))
    );
}

#[test]
fn a_regex_that_needs_backtracking_fails_clearly() {
    let message = failure("$contains(s, /(a)\\1/)", &json!({"s": "aa"}));
    assert!(message.contains("linear-time regex engine"), "{message}");
}

#[test]
fn a_bounded_builtin_passed_as_a_value_stays_bounded() {
    assert_eq!(
        evaluate("$map([\"a\", 1], $string)", &Value::Null, false),
        Ok(json!(["a", "1"]))
    );
    // After a regex literal holding a quote the scan cannot tell: refused.
    let message = evaluate("$match('a', /'/) & $string(x) & 'b'", &Value::Null, true).unwrap_err();
    assert!(
        message.contains("$string is written where hookflow cannot bound it"),
        "{message}"
    );
}

/// Arrays of references to one 100 KB string, eight deep: a few KB of arena, and
/// 8^6 × 100 KB = 26 GB once written out by `&` (jsonata-rs wrote it on the heap
/// until the process aborted; vendor/jsonata-rs/PATCHES.md).
const NESTED: &str = "($a := [t]; $b := [$a,$a,$a,$a,$a,$a,$a,$a]; $c := [$b,$b,$b,$b,$b,$b,$b,$b]; \
     $d := [$c,$c,$c,$c,$c,$c,$c,$c]; $e := [$d,$d,$d,$d,$d,$d,$d,$d]; \
     $f := [$e,$e,$e,$e,$e,$e,$e,$e]; $g := [$f,$f,$f,$f,$f,$f,$f,$f]; ";

#[test]
fn concatenation_of_shared_references_stops_at_the_bound() {
    let source = json!({"t": "x".repeat(100_000)});
    for tail in ["\"\" & $g)", "$g & \"\")", "$g & $g)"] {
        let message = failure(&format!("{NESTED}{tail}"), &source);
        assert!(
            message.contains("more than 16 MiB, the bound of one value's text"),
            "{tail}: {message}"
        );
    }
    // `&` still writes arrays and objects out as JSONata does.
    assert_eq!(
        evaluate("\"n=\" & [1, {\"a\": \"b\"}]", &json!({}), false),
        Ok(json!("n=[1,{\"a\":\"b\"}]"))
    );
}

#[test]
fn a_huge_value_in_an_error_message_is_cut_short() {
    let source = json!({"t": "x".repeat(100_000)});
    // Negating an array fails naming it: its text is cut.
    let message = failure(&format!("{NESTED}-$g)"), &source);
    assert!(message.len() < 20_000, "{} bytes", message.len());
    assert!(message.contains("…"), "{message}");
}
