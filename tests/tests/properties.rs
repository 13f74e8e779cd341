//! Property tests over hostile input: the query-string parser, variable paths and
//! templates, the definition validator, the engine with the data nodes, and the
//! webhook handler as a whole. Values come from `hookflow_tests::generators`.
//!
//! A panic inside a node does not fail a run by itself: the engine catches it and
//! records the node's job as `error` with "internal error (a bug)" in its message.
//! The properties treat that message as a failure, and name where the panic was
//! raised (a panic hook records each panic's location for the thread it ran on).
//!
//! Expressions nested a few hundred levels deep used to overflow the stack of
//! their parsers (JSONata `[[[...1]]]` past ~640 levels, JMESPath past ~1450,
//! JSONPath past ~780, calculations past ~2300): they are now refused past 64
//! levels before any parser sees them (`deep_expressions_are_refused_not_parsed`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Once};
use std::thread::ThreadId;

use bytes::Bytes;
use hookflow::engine::{Engine, Limits, Outcome, RunState};
use hookflow::lang::path::{self, Segment};
use hookflow::lang::{limits, qs, template};
use hookflow::model::{ExecutionStatus, Job, JobStatus, NodeDefinition};
use hookflow::wiring::{App, Settings};
use hookflow_tests::generators::{hostile_scalar, json_value, nested, scalar};
use hookflow_tests::{inproc, test_nodes};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------
// Panics and runs
// ---------------------------------------------------------------------------

/// The message the engine gives a node that panicked.
const PANIC_MARK: &str = "internal error (a bug)";

/// Every panic seen since the hook was installed, with the thread it ran on.
static PANICS: Mutex<Vec<(ThreadId, String)>> = Mutex::new(Vec::new());

/// Installs (once) a panic hook that notes each panic's message and location,
/// then hands over to the previous hook.
fn record_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            let message = hookflow::guard::message(info.payload());
            PANICS.lock().unwrap_or_else(|e| e.into_inner()).push((
                std::thread::current().id(),
                format!("{message} at {location}"),
            ));
            previous(info);
        }));
    });
}

/// The panics this thread raised since the last call.
fn take_panics() -> Vec<String> {
    let me = std::thread::current().id();
    let mut all = PANICS.lock().unwrap_or_else(|e| e.into_inner());
    let (mine, others) = all.drain(..).partition(|(thread, _)| *thread == me);
    *all = others;
    mine.into_iter().map(|(_, message)| message).collect()
}

thread_local! {
    /// One runtime per test thread, created once: every case runs on it.
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    /// The built-in node types and `test-panic`, which proves the detector works.
    static ENGINE: Engine = Engine::new(Arc::new(test_nodes::registry()), Limits::default());
}

/// What one run left behind.
#[derive(Debug)]
struct Run {
    outcome: Outcome,
    jobs: Vec<Job>,
    output: Value,
    panics: Vec<String>,
}

impl Run {
    fn job(&self, key: &str) -> Option<&Job> {
        self.jobs.iter().rev().find(|j| j.node_key == key)
    }
}

/// Runs `nodes` with `$context.body` = `body`.
fn run_nodes(nodes: Value, body: Value) -> Run {
    record_panics();
    take_panics();
    let nodes: Vec<NodeDefinition> = serde_json::from_value(nodes).expect("a node list");
    let context = json!({"headers": {}, "query": {}, "body": body});
    let mut state = RunState::new("e", context, Arc::new(json!({})));
    let outcome =
        RUNTIME.with(|rt| ENGINE.with(|engine| rt.block_on(engine.run(&nodes, &mut state))));
    let (_, output, jobs) = state.into_parts();
    Run {
        outcome,
        jobs,
        output,
        panics: take_panics(),
    }
}

/// No node panicked, every job is final unless the run paused, and the run ended
/// resolved, failed or error.
/// A config the validator refuses (an unknown engine, a step without a function)
/// never deploys; run anyway, its node errors naming it, and nothing else.
fn refused_config(job: &Job) -> bool {
    job.status == JobStatus::Error
        && job.result["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("the node's config is invalid"))
}

fn check_run(run: &Run) -> Result<(), TestCaseError> {
    for job in &run.jobs {
        let message = job
            .result
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        prop_assert!(
            !message.contains(PANIC_MARK),
            "node {:?} ({}) panicked: {}; raised at {:?}",
            job.node_key,
            job.node_type,
            message,
            run.panics
        );
    }
    if run.outcome.pause.is_some() {
        prop_assert_eq!(run.outcome.status, ExecutionStatus::Started);
        return Ok(());
    }
    prop_assert!(
        matches!(
            run.outcome.status,
            ExecutionStatus::Resolved | ExecutionStatus::Failed | ExecutionStatus::Error
        ),
        "outcome {:?}",
        run.outcome.status
    );
    for job in &run.jobs {
        prop_assert_ne!(
            job.status,
            JobStatus::Pending,
            "job {:?} is still pending after a run that did not pause",
            job.node_key
        );
    }
    Ok(())
}

/// A value a request may carry: any JSON value, hostile scalars, numeric text.
fn request_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => json_value(),
        2 => hostile_scalar(),
        1 => (-1_000_000i64..1_000_000).prop_map(|n| json!(n.to_string())),
        1 => (-1_000i64..1_000).prop_map(|n| json!(n)),
    ]
}

/// The detector itself: a node that panics on purpose is caught by the engine,
/// and `check_run` reports it with where it was raised.
#[test]
fn a_node_panic_is_detected() {
    let run = run_nodes(
        json!([{"key": "boom", "type": "test-panic", "config": {}}]),
        json!({}),
    );
    assert!(
        run.panics.iter().any(|p| p.contains("test_nodes.rs")),
        "{:?}",
        run.panics
    );
    let failure = check_run(&run).expect_err("a panic fails the property");
    assert!(failure.to_string().contains(PANIC_MARK), "{failure}");
}

// ---------------------------------------------------------------------------
// 1. Query strings
// ---------------------------------------------------------------------------

/// Text with the characters qs gives a meaning to, and any text.
fn query_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,64}",
        "[a-c0-9\\[\\]=&%+.]{0,64}",
        "(([a-c]|\\[[a-c0-9]{0,2}\\]){1,10}(=[a-z0-9%]{0,3})?&){0,8}",
        "(%[0-9A-Fa-f]{2}|%[g-z]?|[a-c=&\\[\\]]){0,40}",
        // Few names and many bracket groups: repeated keys, deep keys, mixes.
        "(a(\\[[ab0]?\\]){0,8}(=[xy]?)?&){1,6}",
        // A plain value, then one deep key twice: the deepest nesting qs makes.
        (
            prop::collection::vec(select(&["[a]", "[b]", "[0]", "[]"][..]), 0..9),
            "[xy]{0,1}"
        )
            .prop_map(|(groups, v)| {
                let key = format!("a{}", groups.concat());
                format!("a={v}&{key}=y&{key}=z")
            }),
    ]
}

/// Walks a value without recursion: every leaf must be a string or `true`.
fn qs_leaves_ok(value: &Value) -> bool {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => stack.extend(map.values()),
            Value::Array(items) => stack.extend(items.iter()),
            Value::String(_) | Value::Bool(true) => {}
            _ => return false,
        }
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn qs_parse_gives_a_shallow_object_of_strings(query in query_text()) {
        let parsed = qs::parse(&query);
        prop_assert!(parsed.is_object(), "{parsed}");
        // qs stops at 5 bracket groups: the root object, the parent key, 5 groups
        // and the rest of the key as one literal key make 7 levels. As in qs, a
        // repeated key makes its value an array (+1), and a plain value merged with
        // an object becomes an array of both (+1):
        // `a=x&a[b][c][d][e][f][g]=y&a[b][c][d][e][f][g]=z` gives
        // {"a":["x",{"b":{"c":{"d":{"e":{"f":{"[g]":["y","z"]}}}}}}]}, 9 levels.
        prop_assert!(limits::depth(&parsed) <= 9, "depth {} for {query:?}: {parsed}", limits::depth(&parsed));
        prop_assert!(qs_leaves_ok(&parsed), "{parsed}");
    }

    #[test]
    fn qs_parse_round_trips_simple_pairs(
        pairs in prop::collection::btree_map("[a-z]{1,8}", "[a-zA-Z0-9]{0,8}", 0..10)
    ) {
        let query = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let expected: Map<String, Value> = pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        prop_assert_eq!(qs::parse(&query), Value::Object(expected));
    }
}

// ---------------------------------------------------------------------------
// 2. Paths and templates
// ---------------------------------------------------------------------------

fn plain_key() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_$-]{1,8}"
}

/// Text with template syntax in it, and any text.
fn template_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,48}",
        "(\\{\\{|\\}\\}|\\$context|\\$jobsMapByNodeKey|\\$scopes|\\$system|\\$env|\\.|\\[|\\]|[a-z0-9 \"'_$])*",
    ]
}

fn context_vars(context: Value) -> Map<String, Value> {
    let mut vars = Map::new();
    vars.insert("$context".into(), context);
    vars
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn path_parse_never_panics(text in template_text()) {
        if let Some(segments) = path::parse(&text) {
            prop_assert!(!segments.is_empty());
        }
    }

    #[test]
    fn path_parse_gives_plain_keys_back(keys in prop::collection::vec(plain_key(), 1..7), value in json_value()) {
        let parsed = path::parse(&keys.join("."));
        let expected: Vec<Segment> = keys.iter().cloned().map(Segment::Key).collect();
        prop_assert_eq!(parsed.as_ref(), Some(&expected));
        // And following them into a document built along them finds the value.
        let mut doc = value.clone();
        for key in keys.iter().rev() {
            let mut map = Map::new();
            map.insert(key.clone(), doc);
            doc = Value::Object(map);
        }
        prop_assert_eq!(path::get(&doc, &expected), Some(&value));
    }

    #[test]
    fn render_str_never_panics(text in template_text(), context in json_value()) {
        let vars = context_vars(context);
        let rendered = template::render_str(&text, &vars);
        if !text.contains("{{") {
            prop_assert_eq!(rendered, Value::String(text));
        }
    }

    #[test]
    fn whole_reference_renders_the_value_itself(
        value in json_value(),
        padding in prop_oneof![Just(""), Just(" "), Just("  ")],
    ) {
        let vars = context_vars(json!({"a": {"b": value.clone()}}));
        let rendered = template::render_str(&format!("{{{{{padding}$context.a.b{padding}}}}}"), &vars);
        prop_assert_eq!(rendered, value);
    }
}

// ---------------------------------------------------------------------------
// 3. The definition validator
// ---------------------------------------------------------------------------

/// A document shaped like a definition: a key, a webhook trigger, nodes of known
/// types with any config.
fn definition_like() -> impl Strategy<Value = Value> {
    let names = hookflow::nodes::builtin().names();
    let config = prop_oneof![
        3 => json_value(),
        2 => Just(json!({})),
        1 => json_value().prop_map(|v| json!({"value": v})),
        1 => json_value().prop_map(|v| json!({"target": v})),
        1 => (json_value(), json_value())
            .prop_map(|(a, b)| json!({"calculation": {"calculator": "equal", "operands": [a, b]}})),
    ];
    let node = (select(names), "[a-z]{1,3}", config)
        .prop_map(|(kind, key, config)| json!({"key": key, "type": kind, "config": config}));
    (
        prop_oneof![4 => "[A-Za-z0-9._-]{1,12}", 1 => "\\PC{0,8}"],
        prop::option::of(any::<bool>()),
        prop::option::of(prop_oneof![Just(json!("hook-1")), json_value()]),
        prop::collection::vec(node, 0..5),
    )
        .prop_map(|(key, sync, hook_id, nodes)| {
            let mut doc = json!({"key": key, "trigger": {"type": "webhook"}, "nodes": nodes});
            if let Some(sync) = sync {
                doc["sync"] = json!(sync);
            }
            if let Some(hook_id) = hook_id {
                doc["trigger"]["hookId"] = hook_id;
            }
            doc
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn validate_never_panics_on_any_value(doc in json_value()) {
        let registry = hookflow::nodes::builtin();
        let _ = hookflow::validate::validate(&doc, &registry);
    }

    #[test]
    fn a_valid_definition_validates_again_the_same(doc in definition_like()) {
        let registry = hookflow::nodes::builtin();
        if let Ok(def) = hookflow::validate::validate(&doc, &registry) {
            let again = serde_json::to_value(&def).expect("a definition serialises");
            match hookflow::validate::validate(&again, &registry) {
                Ok(def2) => prop_assert_eq!(def2, def),
                Err(problems) => {
                    return Err(TestCaseError::fail(format!("{again} no longer validates: {problems:?}")));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 4. The engine and the nodes
// ---------------------------------------------------------------------------

const CALCULATORS: &[&str] = &[
    "equal",
    "notEqual",
    "gt",
    "gte",
    "lt",
    "lte",
    "==",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "includes",
    "notIncludes",
    "startsWith",
    "notStartsWith",
    "endsWith",
    "notEndsWith",
];

/// A basic-engine calculation over `$context.body.a` / `.b` and literals.
fn calculation() -> impl Strategy<Value = Value> {
    let operand = prop_oneof![
        3 => select(&["{{$context.body.a}}", "{{$context.body.b}}", "x{{$context.body.a}}"][..])
            .prop_map(|s| json!(s)),
        1 => scalar(),
    ];
    let leaf = (
        prop_oneof![6 => select(CALCULATORS).prop_map(|c| json!(c)), 1 => Just(json!("")), 1 => Just(Value::Null)],
        prop::collection::vec(operand, 0..3),
    )
        .prop_map(|(calculator, operands)| json!({"calculator": calculator, "operands": operands}));
    leaf.prop_recursive(3, 16, 4, |inner| {
        (
            prop_oneof![Just(json!("and")), Just(json!("or")), Just(Value::Null)],
            prop::collection::vec(inner, 0..4),
        )
            .prop_map(|(kind, calculations)| json!({"group": {"type": kind, "calculations": calculations}}))
    })
}

fn condition(key: &str, calculator: &str, a: &str, b: &str) -> Value {
    json!({"key": key, "type": "condition", "config": {
        "calculation": {"calculator": calculator, "operands": [a, b]}}})
}

fn bool_result(run: &Run, key: &str) -> Result<bool, TestCaseError> {
    let job = run.job(key);
    prop_assert!(job.is_some(), "no job {key}");
    let job = job.unwrap();
    prop_assert_eq!(job.status, JobStatus::Resolved, "{}: {}", key, job.result);
    let result = job.result.as_bool();
    prop_assert!(result.is_some(), "{key}: {}", job.result);
    Ok(result.unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn condition_with_every_calculator(
        calculator in select(CALCULATORS),
        a in request_value(),
        b in request_value(),
        reject in any::<bool>(),
    ) {
        let nodes = json!([
            {"key": "c", "type": "condition", "config": {"rejectOnFalse": reject, "calculation":
                {"calculator": calculator, "operands": ["{{$context.body.a}}", "{{$context.body.b}}"]}},
             "branches": {
                "1": [{"key": "yes", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.c}}"}}],
                "0": [{"key": "no", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.c}}"}}]}}
        ]);
        let run = run_nodes(nodes, json!({"a": a, "b": b}));
        check_run(&run)?;
        let c = run.job("c").expect("the condition ran");
        if reject && c.status == JobStatus::Failed {
            prop_assert_eq!(&c.result, &json!(false));
        } else {
            prop_assert_eq!(c.status, JobStatus::Resolved);
            prop_assert_eq!(&run.output, &c.result);
        }
    }

    #[test]
    fn calculator_laws(a in request_value(), b in request_value()) {
        let (va, vb) = ("{{$context.body.a}}", "{{$context.body.b}}");
        let mut nodes = vec![
            condition("eq_self", "equal", va, va),
            condition("eqeq_self", "==", va, va),
            condition("ne_self", "notEqual", va, va),
            condition("gt_ab", "gt", va, vb),
            condition("lt_ba", "lt", vb, va),
            condition("gte_ab", "gte", va, vb),
            condition("lte_ba", "lte", vb, va),
        ];
        let pairs = [
            ("equal", "notEqual"),
            ("==", "!="),
            ("includes", "notIncludes"),
            ("startsWith", "notStartsWith"),
            ("endsWith", "notEndsWith"),
        ];
        for (i, (yes, no)) in pairs.iter().enumerate() {
            nodes.push(condition(&format!("yes{i}"), yes, va, vb));
            nodes.push(condition(&format!("no{i}"), no, va, vb));
        }
        let run = run_nodes(Value::Array(nodes), json!({"a": a, "b": b}));
        check_run(&run)?;
        prop_assert!(bool_result(&run, "eq_self")?, "equal(a, a) is false");
        prop_assert!(bool_result(&run, "eqeq_self")?, "== (a, a) is false");
        prop_assert!(!bool_result(&run, "ne_self")?, "notEqual(a, a) is true");
        prop_assert_eq!(bool_result(&run, "gt_ab")?, bool_result(&run, "lt_ba")?);
        prop_assert_eq!(bool_result(&run, "gte_ab")?, bool_result(&run, "lte_ba")?);
        for (i, pair) in pairs.iter().enumerate() {
            prop_assert_ne!(
                bool_result(&run, &format!("yes{i}"))?,
                bool_result(&run, &format!("no{i}"))?,
                "{:?} and its negation agree", pair
            );
        }
    }

    #[test]
    fn nested_calculations_and_multi_conditions(
        calc in calculation(),
        conditions in prop::collection::vec(calculation(), 0..4),
        continue_on_no_match in any::<bool>(),
        a in request_value(),
        b in request_value(),
    ) {
        let branches: Map<String, Value> = (0..=conditions.len())
            .map(|i| (i.to_string(), json!([{"key": format!("took{i}"), "type": "output", "config": {"value": i}}])))
            .collect();
        let conditions: Vec<Value> = conditions.into_iter().map(|c| json!({"calculation": c})).collect();
        let nodes = json!([
            {"key": "c", "type": "condition", "config": {"calculation": calc}},
            {"key": "m", "type": "multi-conditions",
             "config": {"conditions": conditions, "continueOnNoMatch": continue_on_no_match},
             "branches": branches}
        ]);
        let run = run_nodes(nodes, json!({"a": a, "b": b}));
        check_run(&run)?;
    }
}

// --- calculation ------------------------------------------------------------

const MATH_FUNCTIONS: &[&str] = &[
    "abs", "sqrt", "cbrt", "exp", "floor", "ceil", "sign", "sin", "cos", "tan", "log", "log10",
    "pow", "mod", "round", "min", "max", "sum", "mean",
];

const FORMULA_FUNCTIONS: &[&str] = &[
    "ABS",
    "SQRT",
    "INT",
    "FLOOR",
    "CEILING",
    "POWER",
    "MOD",
    "ROUND",
    "SUM",
    "PRODUCT",
    "AVERAGE",
    "MIN",
    "MAX",
    "COUNT",
    "IF",
    "AND",
    "OR",
    "NOT",
    "CONCATENATE",
    "LEN",
    "UPPER",
    "LOWER",
    "TRIM",
    "LEFT",
    "RIGHT",
];

const OPERATORS: &[&str] = &[
    "+", "-", "*", "/", "%", "^", "==", "!=", "<", "<=", ">", ">=", "&&", "||",
];

/// An expression built from `functions`, the operators, references to the
/// request's values and literals.
fn expression(functions: &'static [&'static str]) -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        3 => Just("{{$context.body.v}}".to_string()),
        2 => Just("{{$context.body.w}}".to_string()),
        1 => Just("{{ $context.body.missing }}".to_string()),
        2 => any::<i32>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:?}")),
        1 => "[a-zA-Z0-9 ]{0,6}".prop_map(|s| format!("\"{s}\"")),
        1 => select(&["true", "false", "0", "1e308", "0.1"][..]).prop_map(String::from),
    ];
    leaf.prop_recursive(4, 32, 4, move |inner| {
        prop_oneof![
            3 => (select(functions), prop::collection::vec(inner.clone(), 0..4))
                .prop_map(|(f, args)| format!("{f}({})", args.join(", "))),
            3 => (inner.clone(), select(OPERATORS), inner.clone())
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            1 => inner.clone().prop_map(|a| format!("({a})")),
            1 => inner.clone().prop_map(|a| format!("!{a}")),
            1 => inner.prop_map(|a| format!("-{a}")),
        ]
    })
}

fn any_expression() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        3 => expression(MATH_FUNCTIONS).prop_map(|e| ("math.js".to_string(), e)),
        3 => expression(FORMULA_FUNCTIONS).prop_map(|e| ("formula.js".to_string(), e)),
        1 => (
            select(&["math.js", "formula.js", "other"][..]),
            prop_oneof!["\\PC{0,40}", "[0-9a-zA-Z(),+*/%^<>=!&|\" .{}$_-]{0,40}"],
        )
            .prop_map(|(engine, e)| (engine.to_string(), e)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn calculation_expressions((engine, expr) in any_expression(), v in request_value(), w in request_value()) {
        let nodes = json!([
            {"key": "calc", "type": "calculation", "config": {"engine": engine, "expression": expr}}
        ]);
        let run = run_nodes(nodes, json!({"v": v, "w": w}));
        check_run(&run)?;
        let job = run.job("calc").expect("the calculation ran");
        prop_assert!(
            matches!(job.status, JobStatus::Resolved | JobStatus::Failed) || refused_config(job),
            "{:?}: {}", job.status, job.result
        );
    }
}

// --- dateCalculation ----------------------------------------------------------

const DATE_FUNCTIONS: &[&str] = &[
    "add",
    "subtract",
    "diff",
    "get",
    "startOfTime",
    "endOfTime",
    "isLeapYear",
    "format",
    "transDuration",
    "toTimestamp",
    "tsToDate",
    "changeTimezone",
    "now",
];

const UNITS: &[&str] = &[
    "year",
    "quarter",
    "month",
    "week",
    "day",
    "date",
    "hour",
    "minute",
    "second",
    "millisecond",
    "years",
    "days",
    "y",
    "Q",
    "M",
    "w",
    "d",
    "D",
    "h",
    "m",
    "s",
    "ms",
    "fortnight",
    "",
];

const TIMEZONES: &[&str] = &[
    "UTC",
    "Asia/Tokyo",
    "America/New_York",
    "Pacific/Kiritimati",
    "Mars/Olympus_Mons",
];

const FORMAT_TOKENS: &[&str] = &[
    "YYYY",
    "YY",
    "MMMM",
    "MMM",
    "MM",
    "M",
    "DD",
    "D",
    "Do",
    "d",
    "dd",
    "ddd",
    "dddd",
    "HH",
    "H",
    "hh",
    "h",
    "mm",
    "m",
    "ss",
    "s",
    "SSS",
    "Z",
    "ZZ",
    "A",
    "a",
    "X",
    "x",
    "Q",
    "W",
    "[literal]",
    "[",
    "]",
    " ",
    "-",
    ":",
    "/",
    "T",
];

/// Years where dates are ordinary, and near the ends of what chrono holds.
fn year() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => 1i64..=9999,
        1 => -10_000i64..=10_000,
        1 => 261_900i64..=262_200,
        1 => -262_200i64..=-261_900,
    ]
}

fn year_text(year: i64, signed: bool) -> String {
    if signed || !(0..=9999).contains(&year) {
        format!("{year:+05}")
    } else {
        format!("{year:04}")
    }
}

/// A date as text in each accepted form (and some near misses).
fn date_text() -> impl Strategy<Value = String> {
    date_text_in(year(), true)
}

/// A date as text in a year of `years`, written with a sign sometimes when
/// `signed` (always past 9999).
fn date_text_in(years: impl Strategy<Value = i64>, signed: bool) -> impl Strategy<Value = String> {
    (
        years,
        any::<bool>().prop_map(move |s| s && signed),
        1u32..=13,
        0u32..=32,
        (
            0u32..=24,
            0u32..=60,
            prop_oneof![4 => 0u32..60, 1 => Just(60)],
            0u32..1000,
        ),
        0usize..6,
    )
        .prop_map(|(y, signed, mo, d, (h, mi, s, ms), form)| {
            let date = format!("{}-{mo:02}-{d:02}", year_text(y, signed));
            match form {
                0 => date,
                1 => format!("{date}T{h:02}:{mi:02}:{s:02}Z"),
                2 => format!("{date}T{h:02}:{mi:02}:{s:02}.{ms:03}+09:00"),
                3 => format!("{date} {h:02}:{mi:02}"),
                4 => format!("{date}T{h:02}:{mi:02}"),
                _ => format!("{date} {h:02}:{mi:02}:{s:02}.{ms:03}"),
            }
        })
}

/// Millisecond timestamps, most within chrono's range, some just past it.
fn timestamp() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (-8_300_000_000_000_000i64..=8_300_000_000_000_000).prop_map(|ms| json!(ms)),
        1 => any::<i64>().prop_map(|ms| json!(ms)),
        1 => (-8.3e15f64..8.3e15).prop_map(|ms| json!(ms)),
        1 => (-8_300_000_000_000_000i64..=8_300_000_000_000_000).prop_map(|ms| json!(ms.to_string())),
    ]
}

fn date_input() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => hostile_scalar(),
        1 => scalar(),
        4 => date_text().prop_map(Value::String),
        2 => timestamp(),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => (-100i64..100).prop_map(|n| json!(n)),
        1 => any::<i32>().prop_map(|n| json!(n)),
        1 => any::<i64>().prop_map(|n| json!(n)),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        1 => select(&[1e12, 1e13, 1e15, 1e18, 9.5e18, 1e300, -1e12, -1e15][..]).prop_map(|f| json!(f)),
        2 => hostile_scalar(),
        1 => (-1000i64..1000).prop_map(|n| json!(n.to_string())),
    ]
}

fn unit() -> impl Strategy<Value = Value> {
    prop_oneof![6 => select(UNITS).prop_map(|u| json!(u)), 1 => scalar()]
}

fn format_pattern() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop::collection::vec(select(FORMAT_TOKENS), 0..8).prop_map(|t| json!(t.concat())),
        1 => "\\PC{0,16}".prop_map(|s| json!(s)),
        1 => scalar(),
    ]
}

fn date_step() -> impl Strategy<Value = Value> {
    (
        prop_oneof![8 => select(DATE_FUNCTIONS).prop_map(|f| json!(f)), 1 => scalar()],
        prop::option::of(number()),
        prop::option::of(unit()),
        prop::option::of(date_input()),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
        prop::option::of(format_pattern()),
        prop::option::of(unit()),
        prop::option::of(unit()),
        prop::option::of(prop_oneof![4 => select(TIMEZONES).prop_map(|t| json!(t)), 1 => scalar()]),
    )
        .prop_map(
            |(function, number, unit, date, is_abs, round, format, before, after, timezone)| {
                let mut args = Map::new();
                let fields = [
                    ("number", number),
                    ("unit", unit),
                    ("date", date),
                    ("isAbs", is_abs.map(Value::Bool)),
                    ("round", round.map(Value::Bool)),
                    ("format", format),
                    ("unitBefore", before),
                    ("unitAfter", after),
                    ("timezone", timezone),
                ];
                for (name, value) in fields {
                    if let Some(value) = value {
                        args.insert(name.to_string(), value);
                    }
                }
                json!({"function": function, "arguments": args})
            },
        )
}

fn date_node(key: &str, input: Value, steps: Value) -> Value {
    json!({"key": key, "type": "dateCalculation", "config": {"input": input, "steps": steps}})
}

/// The result of a resolved job, `None` when it did not resolve.
fn resolved(run: &Run, key: &str) -> Option<Value> {
    run.job(key)
        .filter(|j| j.status == JobStatus::Resolved)
        .map(|j| j.result.clone())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn date_calculation_steps(
        v in date_input(),
        literal in any::<bool>(),
        input_type in prop::option::of(prop_oneof![Just(json!("date")), Just(json!("number")), scalar()]),
        steps in prop::collection::vec(date_step(), 0..5),
    ) {
        let input = if literal { v.clone() } else { json!("{{$context.body.v}}") };
        let mut node = date_node("date", input, Value::Array(steps));
        if let Some(input_type) = input_type {
            node["config"]["inputType"] = input_type;
        }
        let run = run_nodes(json!([node]), json!({"v": v}));
        check_run(&run)?;
        let job = run.job("date").expect("the node ran");
        prop_assert!(
            matches!(job.status, JobStatus::Resolved | JobStatus::Failed) || refused_config(job),
            "{:?}: {}", job.status, job.result
        );
    }

    #[test]
    fn adding_then_subtracting_days_gives_the_date_back(
        date in prop_oneof![date_text().prop_map(Value::String), timestamp()],
        days in prop_oneof![
            3 => -1_000i64..1_000,
            1 => any::<i32>().prop_map(i64::from),
            1 => -200_000_000i64..200_000_000,
        ],
        as_text in any::<bool>(),
        unit in select(&["day", "days", "d", "date", "D", "week", "hour"][..]),
    ) {
        let number = if as_text { json!(days.to_string()) } else { json!(days) };
        let step = |function: &str| json!({"function": function, "arguments": {"number": number, "unit": unit}});
        let nodes = json!([
            date_node("base", json!("{{$context.body.v}}"), json!([])),
            date_node("both", json!("{{$context.body.v}}"), json!([step("add"), step("subtract")])),
        ]);
        let run = run_nodes(nodes, json!({"v": date}));
        check_run(&run)?;
        let chained = json!([
            date_node("added", json!("{{$context.body.v}}"), json!([step("add")])),
            date_node("back", json!("{{$jobsMapByNodeKey.added}}"), json!([step("subtract")])),
        ]);
        let chain = run_nodes(chained, json!({"v": date}));
        check_run(&chain)?;
        if let Some(base) = resolved(&run, "base") {
            if let Some(both) = resolved(&run, "both") {
                prop_assert_eq!(&both, &base, "add then subtract {} {} in one node", days, unit);
            }
            if let (Some(_), Some(back)) = (resolved(&chain, "added"), resolved(&chain, "back")) {
                prop_assert_eq!(&back, &base, "add then subtract {} {} in two nodes", days, unit);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// "A date result is ISO 8601", and ISO 8601 is what `input` reads: a date the
    /// node gave is a date to the next node, in every year the node can reach.
    #[test]
    fn a_date_result_reads_back_as_the_same_date(
        date in prop_oneof![date_text().prop_map(Value::String), timestamp()],
    ) {
        let nodes = json!([
            date_node("given", json!("{{$context.body.v}}"), json!([])),
            date_node("again", json!("{{$jobsMapByNodeKey.given}}"), json!([])),
        ]);
        let run = run_nodes(nodes, json!({"v": date}));
        check_run(&run)?;
        if let Some(given) = resolved(&run, "given") {
            let again = run.job("again").expect("the next node ran");
            prop_assert_eq!(again.status, JobStatus::Resolved, "{} does not read back: {}", given, again.result);
            prop_assert_eq!(&again.result, &given);
        }
    }

    /// The same in another time zone: the text names the same instant.
    #[test]
    fn a_date_in_a_time_zone_reads_back_as_the_same_instant(
        // Years 1..=9999 only: those the node reads back in UTC.
        date in prop_oneof![
            date_text_in(1i64..=9999, false).prop_map(Value::String),
            (-62_135_596_800_000i64..253_402_300_799_000).prop_map(|ms| json!(ms)),
        ],
        timezone in select(&TIMEZONES[..4]),
    ) {
        let nodes = json!([
            date_node("utc", json!("{{$context.body.v}}"), json!([])),
            date_node("given", json!("{{$context.body.v}}"),
                json!([{"function": "changeTimezone", "arguments": {"timezone": timezone}}])),
            date_node("again", json!("{{$jobsMapByNodeKey.given}}"), json!([])),
        ]);
        let run = run_nodes(nodes, json!({"v": date}));
        check_run(&run)?;
        if let (Some(utc), Some(given)) = (resolved(&run, "utc"), resolved(&run, "given")) {
            let again = run.job("again").expect("the next node ran");
            prop_assert_eq!(again.status, JobStatus::Resolved, "{} does not read back: {}", given, again.result);
            prop_assert_eq!(&again.result, &utc, "{} in {} was given as {}", utc, timezone, given);
        }
    }
}

// --- json-query -----------------------------------------------------------------

const JMESPATH: &[&str] = &[
    "@",
    "a",
    "a.b",
    "c[0]",
    "[*]",
    "[0]",
    "[-1]",
    "*.a",
    "[::-1]",
    "[1:10:0]",
    "[0:9223372036854775807:9223372036854775807]",
    "length(@)",
    "keys(@)",
    "values(@)",
    "sort(@)",
    "reverse(@)",
    "max(@)",
    "min(@)",
    "sum(@)",
    "avg(@)",
    "abs(a)",
    "floor(a)",
    "ceil(a)",
    "to_number(a)",
    "to_string(@)",
    "to_array(@)",
    "type(@)",
    "not_null(a, b, c)",
    "join(',', @)",
    "contains(@, 'x')",
    "starts_with(a, 'x')",
    "ends_with(a, '')",
    "merge(@, @)",
    "sort_by(@, &a)",
    "max_by(@, &a)",
    "map(&a, @)",
    "[?a > `1`]",
    "[?a == b]",
    "@ | [0] | [0]",
    "a || b && c",
    "!a",
    "{x: a, y: b}",
    "[a, b, c]",
];

const JSONPATH: &[&str] = &[
    "$",
    "$.a",
    "$.a.b",
    "$.c[0]",
    "$..*",
    "$..a",
    "$[*]",
    "$[0]",
    "$[-1]",
    "$[0:10:2]",
    "$[::-1]",
    "$[1:0:-1]",
    "$[0:9223372036854775807:1]",
    "$[-9007199254740991:9007199254740991:9007199254740991]",
    "$['a','b']",
    "$[?@.a > 1]",
    "$[?@ == @]",
    "$[?@.a == $.b]",
    "$[?length(@) > 1]",
    "$[?count(@.*) > 0]",
    "$[?value(@..a) == 1]",
    "$[?match(@, '[a-z]+')]",
    "$[?search(@, '(a|b)*c')]",
    "$[?match(@, '(a*)*b')]",
    "$.a[?@ > 1e300]",
];

const JSONATA: &[&str] = &[
    "$",
    "a",
    "a.b",
    "c[0]",
    "*",
    "**",
    "$[0]",
    "$[-1]",
    "$count($)",
    "$sum(a)",
    "$sum(c)",
    "$max(c)",
    "$average(c)",
    "$string($)",
    "$string(a)",
    "$number(a)",
    "$keys($)",
    "$sort(c)",
    "$reverse(c)",
    "$distinct(c)",
    "$length($string($))",
    "$uppercase($string(a))",
    "$substring($string(a), 1, 3)",
    "$substring($string(a), a)",
    "$split($string($), \"a\")",
    "$join([\"a\", \"b\"], \",\")",
    "$replace($string($), \"a\", \"b\")",
    "$match($string($), /a+/)",
    "$contains($string($), /a/)",
    "$map([1, 2, 3], function($x) { $x * 2 })",
    "$filter(c, function($x) { $x })",
    "$reduce([1, 2, 3], function($a, $b) { $a + $b })",
    "$each($, function($v, $k) { $k })",
    "$spread($)",
    "$merge([$, $])",
    "$type($)",
    "$exists(a)",
    "$boolean($)",
    "$not($)",
    "$abs(a)",
    "$floor(a)",
    "$ceil(a)",
    "$round(a, 2)",
    "$round(a, b)",
    "$power(2, a)",
    "$power(a, b)",
    "$sqrt(a)",
    "$formatNumber(a, '#,##0.00')",
    "$formatBase(a, 2)",
    "$formatBase(a, b)",
    "$formatInteger(a, 'w')",
    "$toMillis($string(a))",
    "$fromMillis(a)",
    "$now()",
    "$millis()",
    "$base64encode($string($))",
    "$base64decode($string(a))",
    "$zip(c, c)",
    "$append($, $)",
    "$lookup($, \"a\")",
    "$single([1])",
    "$string(a) & $string(b)",
    "a ? b : c",
    "a = b",
    "a + b",
    "a - b",
    "a * b",
    "a / b",
    "a % b",
    "-a",
    "[1..10]",
    "[a..b]",
    "[0..a]",
    "$count([a..b])",
    "$sum([1..a])",
    "$sum([1..10000])",
    "$x := 5",
    "($f := function($x) { $x > 0 ? $f($x - 1) : 0 }; $f(150))",
    "($f := function($x) { $f($x) }; $f(1))",
    // A width from the request: jsonata-rs's own `$pad` allocates any width up
    // front, and 1e15 aborted the process ("memory allocation of 999999999999999
    // bytes failed"); the node now routes `$pad` to a bounded version.
    "$pad(\"x\", a)",
    "$pad(\"x\", b, \"é\")",
    "$pad($string(a), -5, \"ab\")",
];

/// Integers at the ends of what a range or a width can take.
fn edge_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => hostile_scalar(),
        1 => select(vec![
            json!(i64::MIN), json!(i64::MAX), json!(-1e300), json!(1e300), json!(-1), json!(0),
            json!(1), json!(1000), json!(10_000_001), json!(-10_000_001), json!(1e15), json!(-1e15),
            json!(4_611_686_018_427_387_904_i64), json!(-4_611_686_018_427_387_904_i64),
        ]),
    ]
}

/// Expressions whose literals come from the request's hostile values.
fn jsonata_with_literals() -> impl Strategy<Value = String> {
    (edge_number(), edge_number(), 0usize..4).prop_map(|(a, b, form)| match form {
        0 => format!("[{a}..{b}]"),
        1 => format!("$sum([1..{a}])"),
        2 => format!("$count([{a}..{b}])"),
        _ => format!("$round({a}, 2) + $floor({b})"),
    })
}

fn query_case() -> impl Strategy<Value = (String, String)> {
    let known = |engine: &'static str, list: &'static [&'static str]| {
        select(list).prop_map(move |e| (engine.to_string(), e.to_string()))
    };
    prop_oneof![
        3 => known("jmespath", JMESPATH),
        3 => known("jsonpath", JSONPATH),
        4 => known("jsonata", JSONATA),
        2 => jsonata_with_literals().prop_map(|e| ("jsonata".to_string(), e)),
        2 => (
            select(&["jmespath", "jsonpath", "jsonata", "xpath"][..]),
            prop_oneof!["\\PC{0,30}", "[a-c$@.*\\[\\]?()=<>!&|:'\" 0-9-]{0,30}"],
        )
            .prop_map(|(engine, e)| (engine.to_string(), e)),
    ]
}

fn query_source() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => json_value(),
        1 => hostile_scalar(),
        2 => (edge_number(), edge_number(), prop::collection::vec(request_value(), 0..6))
            .prop_map(|(a, b, c)| json!({"a": a, "b": b, "c": c})),
        1 => (request_value(), request_value(), prop::collection::vec(request_value(), 0..6))
            .prop_map(|(a, b, c)| json!({"a": a, "b": b, "c": c})),
    ]
}

fn model() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (
            prop_oneof![
                3 => select(&["a", "a.b", "c[0]", "[0]", "x y", "", "a..b"][..]).prop_map(|p| json!(p)),
                1 => scalar(),
            ],
            prop::option::of("[a-z]{0,4}"),
        )
            .prop_map(|(path, alias)| json!({"path": path, "alias": alias})),
        0..4,
    )
    .prop_map(Value::Array)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn json_query_on_any_source(
        (engine, expr) in query_case(),
        source in query_source(),
        model in prop::option::of(model()),
    ) {
        let mut node = json!({"key": "q", "type": "json-query",
            "config": {"engine": engine, "source": "{{$context.body.v}}", "expression": expr}});
        if let Some(model) = model {
            node["config"]["model"] = model;
        }
        let run = run_nodes(json!([node]), json!({"v": source}));
        check_run(&run)?;
        let job = run.job("q").expect("the query ran");
        prop_assert!(
            matches!(job.status, JobStatus::Resolved | JobStatus::Failed) || refused_config(job),
            "{:?}: {}", job.status, job.result
        );
    }
}

/// Integers for range bounds: small ones (a range that fits), and ones whose
/// difference does not fit in 64 bits.
fn range_bound() -> impl Strategy<Value = i64> {
    prop_oneof![
        2 => -10i64..10,
        2 => select(vec![i64::MIN, i64::MAX, -(1 << 62), 1 << 62, -(1 << 40), 1 << 40]),
        1 => any::<i64>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    /// A range whose bounds come from the request either is made or fails, and
    /// never panics past the node. jsonata-rs computes its size as `b - a + 1` in
    /// 64 bits; with overflow checks (on in every profile of this workspace) that
    /// panics, and the node catches it and fails. Without them the size wraps,
    /// passes the 1e7 check and the range is made: `$sum([a..b])` with a = -2^62,
    /// b = 2^62 ran out of memory in a release build without overflow checks.
    #[test]
    fn jsonata_ranges_with_request_bounds(
        a in range_bound(),
        b in range_bound(),
        expression in select(&["[a..b]", "$count([a..b])", "$sum([a..b])", "[a..b][0]"][..]),
    ) {
        let nodes = json!([{"key": "q", "type": "json-query", "config": {
            "engine": "jsonata", "source": "{{$context.body}}", "expression": expression}}]);
        let run = run_nodes(nodes, json!({"a": a, "b": b}));
        check_run(&run)?;
        let job = run.job("q").expect("the query ran");
        let size = i128::from(b) - i128::from(a) + 1;
        if expression == "$count([a..b])" && (1..=10_000_000).contains(&size) {
            prop_assert_eq!(&job.result, &json!(size));
        }
        if size > 10_000_000 {
            prop_assert_eq!(job.status, JobStatus::Failed, "[{}..{}]: {}", a, b, job.result);
        } else {
            prop_assert_eq!(job.status, JobStatus::Resolved, "[{}..{}]: {}", a, b, job.result);
        }
    }
}

// --- loop, variable, output, json-variable-mapping ---------------------------------

fn loop_target() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => hostile_scalar(),
        2 => json_value(),
        2 => prop::collection::vec(scalar(), 0..20).prop_map(Value::Array),
        2 => (-5i64..40).prop_map(|n| json!(n)),
        1 => (-5i64..40).prop_map(|n| json!(n.to_string())),
        1 => select(vec![json!(1000), json!(1001), json!("1000"), json!("1001"), json!(999.9), json!(-1), json!(" 7 "), json!("+3")]),
    ]
}

/// The iterations the documentation promises for a target, `None` past the cap.
fn expected_iterations(target: &Value) -> Option<usize> {
    const CAP: f64 = 1000.0;
    let count = match target {
        Value::Number(n) => n.as_f64(),
        // Whole-number text of any length is a count (past u64, past the cap).
        Value::String(s)
            if !s.trim().is_empty() && s.trim().bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.trim().parse::<f64>().ok()
        }
        _ => None,
    };
    match (target, count) {
        (_, Some(n)) => {
            let whole = n.max(0.0).floor();
            (whole <= CAP).then_some(whole as usize)
        }
        (Value::Array(items), None) => (items.len() <= CAP as usize).then_some(items.len()),
        _ => Some(1),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn loop_runs_its_body_once_per_item(target in loop_target(), literal in any::<bool>()) {
        let config_target = if literal { target.clone() } else { json!("{{$context.body.v}}") };
        let nodes = json!([
            {"key": "count", "type": "variable", "config": {"target": null, "value": 0}},
            {"key": "l", "type": "loop", "config": {"target": config_target}, "branches": {"0": [
                {"key": "seen", "type": "output", "config": {"value": "{{$scopes.l}}"}},
                {"key": "bump", "type": "variable", "config": {"target": "count", "value": "{{$scopes.l.index}}"}}
            ]}}
        ]);
        let run = run_nodes(nodes, json!({"v": target}));
        check_run(&run)?;
        // A literal target is rendered too: a string holding `{{...}}` is not what
        // the request sent.
        let target = if literal {
            let context = json!({"headers": {}, "query": {}, "body": {"v": target.clone()}});
            template::render(&target, &context_vars(context))
        } else {
            target
        };
        let job = run.job("l").expect("the loop ran");
        match expected_iterations(&target) {
            Some(n) => {
                prop_assert_eq!(job.status, JobStatus::Resolved, "{}", job.result);
                prop_assert_eq!(&job.result, &json!({"looped": n, "done": n, "broken": false}));
                let bodies = run.jobs.iter().filter(|j| j.node_key == "seen").count();
                prop_assert_eq!(bodies, n);
            }
            None => {
                prop_assert_eq!(job.status, JobStatus::Failed, "{}", job.result);
                prop_assert!(job.result.to_string().contains("the limit is 1000"), "{}", job.result);
            }
        }
    }

    #[test]
    fn loop_conditions_and_exits(
        target in loop_target(),
        exit in prop_oneof![Just(json!(0)), Just(json!(1)), Just(json!(2)), scalar()],
        checkpoint in prop_oneof![Just(json!(0)), Just(json!(1)), scalar()],
        continue_on_false in any::<bool>(),
        calc in calculation(),
        with_condition in any::<bool>(),
    ) {
        let mut config = json!({"target": "{{$context.body.v}}", "exit": exit});
        if with_condition {
            config["condition"] = json!({"checkpoint": checkpoint, "continueOnFalse": continue_on_false, "calculation": calc});
        }
        let nodes = json!([
            {"key": "l", "type": "loop", "config": config, "branches": {"0": [
                {"key": "double", "type": "calculation", "config": {"expression": "{{$scopes.l.item}} * 2"}},
                {"key": "inner", "type": "loop", "config": {"target": "{{$scopes.l.index}}"}, "branches": {"0": [
                    {"key": "pair", "type": "output", "config": {"value": ["{{$scopes.l.item}}", "{{$scopes.inner.item}}"]}}
                ]}}
            ]}},
            {"key": "after", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.l}}"}}
        ]);
        let run = run_nodes(nodes, json!({"v": target, "a": 1, "b": "x"}));
        check_run(&run)?;
    }

    #[test]
    fn variables_output_and_mapping(
        v in request_value(),
        w in request_value(),
        variables in prop::collection::vec(
            (
                "[a-c]{1,2}",
                prop_oneof![
                    2 => prop::collection::vec(plain_key(), 1..4).prop_map(|k| k.join(".")),
                    1 => select(&["a", "a.b", "c[0]", "[0]", "0", "a[\"x y\"]", "a..b", ""][..]).prop_map(String::from),
                    1 => "\\PC{0,10}",
                ],
            ),
            0..5,
        ),
        as_text in any::<bool>(),
    ) {
        let text = v.to_string();
        let source = if as_text { "{{$context.body.t}}" } else { "{{$context.body.v}}" };
        let mapped: Vec<Value> = variables.iter().map(|(k, p)| json!({"key": k, "path": p})).collect();
        let nodes = json!([
            {"key": "decl", "type": "variable", "config": {"target": null, "value": "{{$context.body.v}}"}},
            {"key": "first", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.decl}}"}},
            {"key": "set", "type": "variable", "config": {"target": "decl", "value": "{{$context.body.w}}"}},
            {"key": "second", "type": "output", "config": {"value": {"now": "{{$jobsMapByNodeKey.decl}}", "text": "v={{$context.body.v}}"}}},
            {"key": "map", "type": "json-variable-mapping", "config": {"dataSource": source, "variables": mapped}}
        ]);
        let run = run_nodes(nodes, json!({"v": v, "w": w, "t": text}));
        check_run(&run)?;
        prop_assert_eq!(resolved(&run, "first"), Some(v.clone()));
        prop_assert_eq!(resolved(&run, "second").map(|s| s["now"].clone()), Some(w.clone()));
        prop_assert_eq!(&run.output["now"], &w);
        // What the mapping reads: the value, or the JSON it holds as text.
        let raw = if as_text { Value::String(text) } else { v };
        let data = match &raw {
            Value::String(s) => serde_json::from_str(s).unwrap_or(raw.clone()),
            _ => raw.clone(),
        };
        let mut expected = Map::new();
        for (key, p) in &variables {
            let value = path::parse(p)
                .and_then(|s| path::get(&data, &s).cloned())
                .unwrap_or(Value::Null);
            expected.insert(key.clone(), value);
        }
        prop_assert_eq!(resolved(&run, "map"), Some(Value::Object(expected)));
    }
}

// --- any node graph -------------------------------------------------------------

/// Every built-in type but those that reach the network.
fn safe_node_types() -> Vec<&'static str> {
    hookflow::nodes::builtin()
        .names()
        .into_iter()
        .filter(|n| *n != "request")
        .collect()
}

fn node_graph() -> impl Strategy<Value = Value> {
    let names = safe_node_types();
    let leaf = (select(names.clone()), "[a-e]{1,2}", json_value())
        .prop_map(|(kind, key, config)| json!([{"key": key, "type": kind, "config": config}]));
    leaf.prop_recursive(3, 12, 4, move |inner| {
        (
            select(names.clone()),
            "[a-e]{1,2}",
            json_value(),
            prop::collection::btree_map(select(&["0", "1", "2", "x"][..]), inner.clone(), 0..3),
            inner,
        )
            .prop_map(|(kind, key, config, branches, rest)| {
                let branches: BTreeMap<&str, Value> = branches;
                let mut nodes =
                    vec![json!({"key": key, "type": kind, "config": config, "branches": branches})];
                nodes.extend(rest.as_array().cloned().unwrap_or_default());
                Value::Array(nodes)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_graph_of_nodes_with_any_config(nodes in node_graph(), body in json_value()) {
        // Validation and runs read the same typed configs: a graph that validates
        // never meets a config its run cannot read.
        let doc = json!({"key": "g", "trigger": {"type": "webhook"}, "nodes": nodes.clone()});
        let valid = hookflow::validate::validate(&doc, &hookflow::nodes::builtin()).is_ok();
        let run = run_nodes(nodes, body);
        check_run(&run)?;
        if valid {
            for job in &run.jobs {
                prop_assert!(!refused_config(job), "{}: {}", job.node_key, job.result);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 5. The webhook handler
// ---------------------------------------------------------------------------

const SYNC_HOOK: &str = "sync-hook";
const HOOKS: &[&str] = &[
    SYNC_HOOK,
    "async-hook",
    "auth-hook",
    "off-hook",
    "inbound-hook",
];
/// The boundary the generated multipart bodies use (content types name it, or not).
const BOUNDARY: &str = "XyZ-b0undary";
/// `user:pass`, base64.
const GOOD_CREDENTIALS: &str = "Basic dXNlcjpwYXNz";

fn webhook_workflows() -> Vec<Value> {
    vec![
        json!({"key": "sync-flow", "sync": true,
        "trigger": {"type": "webhook", "hookId": SYNC_HOOK,
            "request": {"headers": [{"key": "x-token"}, {"key": "Content-Type"}]}},
        "nodes": [
            {"key": "map", "type": "json-variable-mapping", "config": {"dataSource": "{{$context.body}}",
                "variables": [{"key": "n", "path": "n"}, {"key": "first", "path": "items[0]"}]}},
            {"key": "check", "type": "condition", "config": {"calculation":
                {"calculator": "gt", "operands": ["{{$jobsMapByNodeKey.map.n}}", 0]}},
             "branches": {"1": [{"key": "double", "type": "calculation",
                "config": {"expression": "{{$jobsMapByNodeKey.map.n}} * 2"}}]}},
            {"key": "each", "type": "loop", "config": {"target": "{{$context.query.items}}", "exit": 2},
             "branches": {"0": [{"key": "item", "type": "output", "config": {"value": "{{$scopes.each.item}}"}}]}},
            {"key": "when", "type": "condition", "config": {"calculation":
                {"calculator": "notEqual", "operands": ["{{$context.query.date}}", null]}},
             "branches": {"1": [{"key": "due", "type": "dateCalculation", "config": {
                "input": "{{$context.query.date}}",
                "steps": [{"function": "add", "arguments": {"number": "{{$context.query.days}}", "unit": "day"}}]}}]}},
            {"key": "reply", "type": "response", "config": {"statusCode": 200,
                "headers": [{"name": "x-echo", "value": "{{$context.query.h}}"}],
                "body": {"id": "{{$system.executionId}}", "query": "{{$context.query}}",
                         "body": "{{$context.body}}", "headers": "{{$context.headers}}"}}}
        ]}),
        json!({"key": "async-flow",
            "trigger": {"type": "webhook", "hookId": "async-hook",
                "response": {"statusCode": 202,
                    "headers": [{"name": "x-execution", "value": "{{$system.executionId}}"},
                                {"name": "x-echo", "value": "{{$context.query.h}}"}],
                    "body": {"id": "{{$system.executionId}}", "query": "{{$context.query}}", "echo": "{{$context.body.echo}}"}}},
            "nodes": [{"key": "out", "type": "output", "config": {"value": "{{$context.body}}"}}]}),
        json!({"key": "auth-flow", "sync": true,
            "trigger": {"type": "webhook", "hookId": "auth-hook",
                "basicAuthentication": {"username": "user", "password": "pass"}},
            "nodes": [{"key": "reply", "type": "response", "config": {
                "body": {"id": "{{$system.executionId}}", "body": "{{$context.body}}"}}}]}),
        json!({"key": "off-flow", "enabled": false, "trigger": {"type": "webhook", "hookId": "off-hook"}}),
        // Part 2's trigger fields: a GET handshake, a key from the body, the raw
        // body and files beside the parsed one.
        json!({"key": "inbound-flow", "sync": true,
            "trigger": {"type": "webhook", "hookId": "inbound-hook",
                "handshake": {"preset": "meta", "verifyToken": "tok"},
                "idempotency": {"key": "{{$context.body.n}}", "ttlSeconds": 60},
                "request": {"rawBody": true}},
            "nodes": [{"key": "reply", "type": "response", "config": {
                "body": {"body": "{{$context.body}}", "files": "{{$context.files}}", "raw": "{{$context.rawBody}}"}}}]}),
    ]
}

struct WebhookFixture {
    runtime: tokio::runtime::Runtime,
    app: App,
    _dir: tempfile::TempDir,
}

thread_local! {
    static WEBHOOK: RefCell<Option<WebhookFixture>> = const { RefCell::new(None) };
}

#[derive(Debug, Clone)]
enum Body {
    Bytes(Vec<u8>),
    Json(Value),
    Nested(usize),
    /// One byte past the default 1 MiB limit.
    TooLarge,
}

impl Body {
    fn bytes(&self) -> Bytes {
        match self {
            Body::Bytes(b) => Bytes::from(b.clone()),
            Body::Json(v) => Bytes::from(v.to_string()),
            Body::Nested(n) => Bytes::from(nested(*n).to_string()),
            Body::TooLarge => Bytes::from(vec![b' '; hookflow::webhook::DEFAULT_MAX_BODY + 1]),
        }
    }
}

#[derive(Debug, Clone)]
struct Attempt {
    method: String,
    uri: String,
    headers: Vec<(String, Vec<u8>)>,
    content_type: Option<String>,
    body: Body,
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => Just("POST".to_string()),
        3 => select(&["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"][..]).prop_map(String::from),
        1 => "[A-Z]{1,8}",
        1 => "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}",
    ]
}

fn uri() -> impl Strategy<Value = String> {
    let id = prop_oneof![
        2 => "[A-Za-z0-9_-]{1,24}",
        1 => "(%[0-9A-Fa-f]{2}|%[g-z]?|[a-z]){1,16}",
        1 => (1usize..5000).prop_map(|n| "x".repeat(n)),
        1 => "\\PC{0,16}".prop_map(|s| percent_encode(&s)),
        1 => "\\PC{0,16}",
    ];
    let prefix = prop_oneof![
        4 => Just("/api/webhook:trigger/"),
        1 => Just("/api/webhook%3Atrigger/"),
        1 => Just("/api/webhook%3atrigger/"),
        1 => Just("/api/webhook:trigger"),
        1 => Just("/"),
        1 => Just("/api/other/"),
    ];
    let suffix = prop_oneof![3 => Just(""), 1 => Just("/"), 1 => Just("/extra"), 1 => Just("//")];
    let query = prop::option::of(prop_oneof![
        3 => query_text().prop_map(|q| percent_encode_query(&q)),
        1 => Just("items=3&date=2024-01-31&days=30&h=ok".to_string()),
        1 => (loop_target(), date_input(), number())
            .prop_map(|(items, date, days)| format!(
                "items={}&date={}&days={}",
                percent_encode(&scalar_text(&items)),
                percent_encode(&scalar_text(&date)),
                percent_encode(&scalar_text(&days))
            )),
        1 => "\\PC{0,20}".prop_map(|h| format!("h={}", percent_encode(&h))),
    ]);
    let with_query = |path: String, query: Option<String>| match query {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    prop_oneof![
        // The real hooks, as clients write them.
        8 => (select(HOOKS), query.clone())
            .prop_map(move |(hook, query)| with_query(format!("/api/webhook:trigger/{hook}"), query)),
        // Near misses and junk around them.
        4 => (prefix, prop_oneof![1 => select(HOOKS).prop_map(String::from), 2 => id], suffix, query)
            .prop_map(move |(prefix, id, suffix, query)| with_query(format!("{prefix}{id}{suffix}"), query)),
        1 => "\\PC{0,40}",
        1 => "/[ -~]{0,40}",
    ]
}

/// A query string as a URI may carry it: characters outside the safe set encoded.
fn percent_encode_query(query: &str) -> String {
    query
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "=&[]%+.-_".contains(c) {
                c.to_string()
            } else {
                percent_encode(&c.to_string())
            }
        })
        .collect()
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn header() -> impl Strategy<Value = (String, Vec<u8>)> {
    let name = prop_oneof![
        4 => "[a-z0-9-]{1,16}",
        2 => select(&["x-token", "X-Token", "authorization", "cookie", "content-length",
                      "transfer-encoding", "host", "accept", "content-type"][..]).prop_map(String::from),
        1 => "\\PC{1,8}",
    ];
    let value = prop_oneof![
        4 => "[ -~]{0,40}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..40),
        1 => Just(GOOD_CREDENTIALS.as_bytes().to_vec()),
        1 => "Basic [A-Za-z0-9+/=]{0,24}".prop_map(String::into_bytes),
    ];
    (name, value)
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => select(&["application/json", "application/json; charset=utf-8", "application/vnd.api+json",
                      "application/x-www-form-urlencoded", "text/plain"][..])
            .prop_map(|t| Some(t.to_string())),
        2 => select(&["multipart/form-data; boundary=XyZ-b0undary", "multipart/form-data; boundary=\"XyZ-b0undary\"",
                      "multipart/form-data", "multipart/form-data; boundary=", "multipart/mixed; boundary=XyZ-b0undary",
                      "text/xml; charset=latin1", "application/soap+xml", "application/x-www-form-urlencoded; charset=utf-8"][..])
            .prop_map(|t| Some(t.to_string())),
        2 => Just(None),
        1 => "[a-z/+;= -]{0,30}".prop_map(Some),
    ]
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..256).prop_map(Body::Bytes),
        4 => json_value().prop_map(Body::Json),
        2 => (request_value(), prop::collection::vec(request_value(), 0..4), request_value())
            .prop_map(|(n, items, echo)| Body::Json(json!({"n": n, "items": items, "echo": echo}))),
        2 => (0usize..=200).prop_map(Body::Nested),
        1 => query_text().prop_map(|q| Body::Bytes(q.into_bytes())),
        2 => multipart_body().prop_map(Body::Bytes),
        1 => Just(Body::TooLarge),
        1 => Just(Body::Bytes(Vec::new())),
    ]
}

/// A multipart body over [`BOUNDARY`]: fields and files with names in `qs` style
/// (some repeated, some odd), raw bytes as content, then cut short or left whole.
fn multipart_body() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        3 => "[a-z]{1,6}",
        1 => "[a-z]{1,4}\\[[a-z0-9]{0,3}\\]",
        1 => "\\PC{0,8}",
    ];
    let part = (
        name,
        prop::option::of("[A-Za-z0-9 ._-]{0,12}"),
        prop::option::of(select(
            &["text/plain", "application/octet-stream", "image/png", ""][..],
        )),
        prop::collection::vec(any::<u8>(), 0..64),
    );
    (
        prop::collection::vec(part, 0..5),
        prop::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(|(parts, cut)| {
            let mut body = Vec::new();
            for (name, filename, content_type, content) in parts {
                body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
                let mut disposition = format!("Content-Disposition: form-data; name=\"{name}\"");
                if let Some(file) = filename {
                    disposition.push_str(&format!("; filename=\"{file}\""));
                }
                body.extend_from_slice(disposition.as_bytes());
                body.extend_from_slice(b"\r\n");
                if let Some(t) = content_type {
                    body.extend_from_slice(format!("Content-Type: {t}\r\n").as_bytes());
                }
                body.extend_from_slice(b"\r\n");
                body.extend_from_slice(&content);
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
            if let Some(cut) = cut {
                body.truncate(cut.index(body.len() + 1));
            }
            body
        })
}

fn attempt() -> impl Strategy<Value = Attempt> {
    (
        method(),
        uri(),
        prop::collection::vec(header(), 0..6),
        content_type(),
        body(),
    )
        .prop_map(|(method, uri, headers, content_type, body)| Attempt {
            method,
            uri,
            headers,
            content_type,
            body,
        })
}

fn build(attempt: &Attempt) -> Option<http::Request<Bytes>> {
    let mut builder = http::Request::builder()
        .method(attempt.method.as_str())
        .uri(attempt.uri.as_str());
    // A name or value the `http` crate refuses is left out, not the whole request.
    for (name, value) in &attempt.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(value),
        ) {
            builder = builder.header(name, value);
        }
    }
    if let Some(content_type) = &attempt.content_type {
        builder = builder.header("content-type", content_type.as_str());
    }
    builder.body(attempt.body.bytes()).ok()
}

/// No job of a recorded execution panicked.
fn check_execution(
    fixture: &WebhookFixture,
    id: &str,
    panics: &[String],
) -> Result<(), TestCaseError> {
    let execution = fixture
        .runtime
        .block_on(fixture.app.store.execution(id))
        .map_err(|e| TestCaseError::fail(format!("cannot read execution {id}: {e}")))?;
    let Some(execution) = execution else {
        return Err(TestCaseError::fail(format!(
            "execution {id} was not recorded"
        )));
    };
    for job in &execution.jobs {
        prop_assert!(
            !job.result.to_string().contains(PANIC_MARK),
            "node {:?} of execution {} panicked: {}; raised at {:?}",
            job.node_key,
            id,
            job.result,
            panics
        );
    }
    Ok(())
}

fn check_attempt(fixture: &WebhookFixture, attempt: &Attempt) -> Result<(), TestCaseError> {
    let Some(request) = build(attempt) else {
        return Ok(());
    };
    take_panics();
    let response = fixture
        .runtime
        .block_on(fixture.app.webhook.handle(request));
    let panics = take_panics();
    let status = response.status().as_u16();
    let body: Value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    prop_assert!(
        panics.is_empty(),
        "panics: {panics:?}; answer {status} {body}"
    );
    prop_assert!(
        [200, 202, 400, 401, 403, 404, 405, 409, 413, 500].contains(&status),
        "status {status}: {body}"
    );
    if status == 500 {
        let id = body["executionId"].as_str();
        prop_assert!(id.is_some(), "a 500 without an execution: {body}");
        prop_assert!(
            matches!(body["status"].as_str(), Some("failed" | "error")),
            "a 500 for a run that did not fail: {body}"
        );
        check_execution(fixture, id.unwrap_or_default(), &panics)?;
    }
    if status == 200
        && let Some(id) = body["id"].as_str()
    {
        check_execution(fixture, id, &panics)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Called by [`webhook_handler_answers_every_request`], which sets the app up.
    fn webhook_answers(attempt in attempt()) {
        WEBHOOK.with(|fixture| {
            let fixture = fixture.borrow();
            check_attempt(fixture.as_ref().expect("the webhook fixture"), &attempt)
        })?;
    }
}

#[test]
fn webhook_handler_answers_every_request() {
    record_panics();
    let dir = tempfile::tempdir().expect("a temp dir");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let app = runtime.block_on(inproc::app(
        dir.path(),
        &webhook_workflows(),
        &Settings::default(),
        None,
    ));
    WEBHOOK.with(|fixture| {
        *fixture.borrow_mut() = Some(WebhookFixture {
            runtime,
            app,
            _dir: dir,
        })
    });

    webhook_answers();

    let fixture = WEBHOOK
        .with(|fixture| fixture.borrow_mut().take())
        .expect("the webhook fixture");
    let (status, body) = fixture.runtime.block_on(inproc::post_json(
        &fixture.app,
        SYNC_HOOK,
        &json!({"n": 1, "items": ["a"]}),
    ));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["body"], json!({"n": 1, "items": ["a"]}));
}

#[test]
fn deep_expressions_are_refused_not_parsed() {
    let registry = hookflow::nodes::builtin();
    let deep = |open: &str, inner: &str, close: &str| {
        format!("{}{inner}{}", open.repeat(2000), close.repeat(2000))
    };
    let cases = [
        (
            "json-query",
            json!({"engine": "jsonata", "source": 1, "expression": deep("[", "1", "]")}),
        ),
        (
            "json-query",
            json!({"engine": "jmespath", "source": 1, "expression": deep("[", "a", "]")}),
        ),
        (
            "json-query",
            json!({"engine": "jsonpath", "source": 1, "expression": format!("$[?{}]", deep("(", "1==1", ")"))}),
        ),
        ("calculation", json!({"expression": deep("abs(", "1", ")")})),
    ];
    for (kind, config) in cases {
        let doc = json!({"key": "deep", "trigger": {"type": "webhook"},
            "nodes": [{"key": "q", "type": kind, "config": config}]});
        let problems = hookflow::validate::validate(&doc, &registry).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "nodes[0].config.expression");
        assert!(
            problems[0].message.contains("deeper than 64"),
            "{}",
            problems[0]
        );
    }
}
