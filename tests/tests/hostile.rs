//! Hostile values against every node type, sync and async, on a real `hookflow
//! serve`: numbers at every bound, NaN and Infinity as text, `-0`, dates that are
//! not dates, long strings and deep arrays, each put where a node reads
//! `{{$context.body.v}}`. The server answers every request, keeps answering, and
//! leaves no async run `started`.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use hookflow_tests::generators::{hostile_values, nested};
use hookflow_tests::{Server, client, hookflow};
use serde_json::{Value, json};

const V: &str = "{{$context.body.v}}";

/// Nodes that read the value, one list per node type.
fn node_cases() -> BTreeMap<&'static str, Value> {
    let out = |key: &str| json!({"key": key, "type": "output", "config": {"value": V}});
    let calc = |key: &str, engine: &str, expression: String| json!({"key": key, "type": "calculation", "config": {"engine": engine, "expression": expression}});
    let date = |key: &str, function: &str, arguments: Value| json!({"key": key, "type": "dateCalculation", "config": {"input": V, "steps": [{"function": function, "arguments": arguments}]}});
    BTreeMap::from([
        (
            "condition",
            json!([{"key": "c", "type": "condition", "config": {"calculation":
            {"calculator": "gt", "operands": [V, 1]}}, "branches": {"1": [out("yes")], "0": [out("no")]}}]),
        ),
        (
            "multi-conditions",
            json!([{"key": "m", "type": "multi-conditions", "config": {"continueOnNoMatch": true,
            "conditions": [{"calculation": {"calculator": "startsWith", "operands": [V, "N"]}},
                           {"calculation": {"calculator": "includes", "operands": [[1, "x"], V]}}]},
            "branches": {"1": [out("first")], "2": [out("second")]}}]),
        ),
        (
            "loop",
            json!([{"key": "l", "type": "loop", "config": {"target": V, "exit": 2},
            "branches": {"0": [{"key": "each", "type": "output", "config": {"value": "{{$scopes.l.item}}"}}]}}]),
        ),
        (
            "parallel",
            json!([{"key": "p", "type": "parallel", "config": {"mode": "allSettled"}, "branches": {
            "0": [out("left")], "1": [calc("right", "math.js", format!("{V} * 2"))]}}]),
        ),
        (
            "variable",
            json!([
            {"key": "acc", "type": "variable", "config": {"target": null, "value": V}},
            {"key": "set", "type": "variable", "config": {"target": "acc", "value": ["{{$jobsMapByNodeKey.acc}}", V]}}]),
        ),
        (
            "calculation",
            json!([
                calc(
                    "math",
                    "math.js",
                    format!("{V} * 2 + sqrt({V}) + round({V}, {V}) + pow({V}, {V}) % {V}")
                ),
                calc(
                    "formula",
                    "formula.js",
                    format!(
                        "CONCATENATE({V}, 0, LEFT(\"abc\", {V}), ROUND({V}, {V}), MOD({V}, {V}), LEN({V}))"
                    )
                ),
                calc(
                    "sum",
                    "formula.js",
                    format!("SUM({V}, {V}) + AVERAGE({V}) + IF({V} > 1, 1, 0)")
                )
            ]),
        ),
        (
            "dateCalculation",
            json!([
            date("add-days", "add", json!({"number": V, "unit": "day"})),
            date("add-ms", "subtract", json!({"number": V, "unit": "millisecond"})),
            date("add-years", "add", json!({"number": V, "unit": "year"})),
            date("start-week", "startOfTime", json!({"unit": "week"})),
            date("end-year", "endOfTime", json!({"unit": "year"})),
            date("diff", "diff", json!({"date": V, "unit": "month"})),
            date("format", "format", json!({"format": "YYYY-MM-DD dddd Do [W]W Q X x"})),
            date("tz", "changeTimezone", json!({"timezone": "Pacific/Kiritimati"})),
            {"key": "from-number", "type": "dateCalculation", "config": {"input": V, "inputType": "number", "steps": [
                {"function": "transDuration", "arguments": {"unitBefore": "week", "unitAfter": "millisecond"}},
                {"function": "tsToDate", "arguments": {"unit": "second"}},
                {"function": "add", "arguments": {"number": V, "unit": "quarter"}}]}}]),
        ),
        (
            "json-query",
            json!([
            {"key": "jmes", "type": "json-query", "config": {"engine": "jmespath", "source": {"v": V}, "expression": "v"}},
            {"key": "path", "type": "json-query", "config": {"engine": "jsonpath", "source": {"v": V}, "expression": "$..v"}},
            {"key": "range", "type": "json-query", "config": {"engine": "jsonata", "source": {"v": V}, "expression": "$count([v..v]) & $string(v)"}},
            {"key": "span", "type": "json-query", "config": {"engine": "jsonata", "source": {"v": V}, "expression": "$count([-v..v])"}},
            {"key": "pad", "type": "json-query", "config": {"engine": "jsonata", "source": {"v": V}, "expression": "$pad('x', v)"}}]),
        ),
        (
            "json-variable-mapping",
            json!([{"key": "map", "type": "json-variable-mapping", "config": {
            "dataSource": V, "variables": [{"key": "first", "path": "0"}, {"key": "deep", "path": "a.b[3]"}]}}]),
        ),
        (
            "script",
            json!([{"key": "js", "type": "script", "config": {
            "content": "return [v, typeof v, String(v).length, JSON.stringify(v), Number(v) * 2, new Date(v).getTime()];",
            "arguments": [{"name": "v", "value": V}]}}]),
        ),
        (
            "request",
            json!([{"key": "call", "type": "request", "config": {"url": V, "method": "POST", "data": {"v": V}, "timeout": 500}}]),
        ),
        (
            "end",
            json!([out("before"), {"key": "stop", "type": "end", "config": {"endStatus": 1}}]),
        ),
        ("output", json!([out("o")])),
        (
            "subflow",
            json!([{"key": "call", "type": "subflow", "config": {"workflow": "child", "context": {"v": V}}}]),
        ),
    ])
}

fn workflow(kind: &str, sync: bool, mut nodes: Value) -> Value {
    let mode = if sync { "sync" } else { "async" };
    let key = format!("{kind}-{mode}");
    if kind == "subflow" {
        nodes[0]["config"]["workflow"] = json!(format!("child-{mode}"));
    }
    let mut flow = json!({"key": key, "sync": sync, "trigger": {"type": "webhook", "hookId": key}, "nodes": nodes});
    if !sync {
        flow["trigger"]["response"] =
            json!({"statusCode": 202, "body": {"id": "{{$system.executionId}}"}});
    }
    flow
}

fn workflows() -> Vec<Value> {
    let mut all = Vec::new();
    for (kind, nodes) in node_cases() {
        all.push(workflow(kind, true, nodes.clone()));
        all.push(workflow(kind, false, nodes));
    }
    let child_nodes =
        json!([{"key": "o", "type": "output", "config": {"value": "{{$context.v}}"}}]);
    all.push(json!({"key": "child-sync", "sync": true, "trigger": {"type": "webhook"}, "nodes": child_nodes}));
    all.push(json!({"key": "child-async", "trigger": {"type": "webhook"}, "nodes": child_nodes}));
    // Waits on a delay of the value, and on a response carrying it.
    let delay = json!([{"key": "wait", "type": "delay", "config": {"duration": V, "unit": 100}}]);
    all.push(workflow("delay", false, delay));
    let response = json!([{"key": "answer", "type": "response", "config": {"statusCode": 200,
        "headers": [{"name": "X-V", "value": V}], "body": {"v": V}}}]);
    all.push(workflow("response", true, response));
    all
}

fn bodies() -> Vec<Value> {
    let mut bodies: Vec<Value> = hostile_values()
        .into_iter()
        .map(|v| json!({"v": v}))
        .collect();
    bodies.push(json!({"v": nested(60)}));
    bodies.push(json!({"v": "x".repeat(300_000)}));
    bodies.push(json!({"v": [1, "2", null, {"a": {"b": [0, 1, 2, 3]}}]}));
    bodies.push(json!({}));
    bodies
}

#[tokio::test]
async fn every_node_type_answers_every_hostile_value() {
    let flows = workflows();
    let dir = tempfile::tempdir().unwrap();
    for flow in &flows {
        let file = dir
            .path()
            .join(format!("{}.json", flow["key"].as_str().unwrap()));
        std::fs::write(file, flow.to_string()).unwrap();
    }
    let (ok, out, err) = hookflow(&["validate", dir.path().to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let server = Server::start(&flows);
    let hooks: Vec<(String, bool)> = flows
        .iter()
        .filter_map(|f| {
            Some((
                f["trigger"]["hookId"].as_str()?.to_string(),
                f["sync"] == true,
            ))
        })
        .collect();
    let http = client();
    let mut calls = Vec::new();
    for body in bodies() {
        for (hook, sync) in &hooks {
            calls.push((hook.clone(), *sync, body.clone()));
        }
    }
    let answers: Vec<(String, bool, u16, Value)> = futures_util::stream::iter(calls)
        .map(|(hook, sync, body)| {
            let request = http.post(server.hook_url(&hook)).json(&body);
            async move {
                let response = request
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{hook} did not answer {}: {e}", short(&body)));
                let status = response.status().as_u16();
                let text = response.text().await.unwrap();
                let answer = serde_json::from_str(&text).unwrap_or(json!(text));
                (hook, sync, status, answer)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;

    let mut started = Vec::new();
    for (hook, sync, status, answer) in &answers {
        if *sync {
            // A sync run answers from its workflow, or 500 naming the execution of a
            // run that failed; never anything else.
            match status {
                200 => {}
                500 => assert!(answer["executionId"].is_string(), "{hook}: {answer}"),
                other => panic!("{hook}: status {other}: {answer}"),
            }
        } else {
            assert_eq!(*status, 202, "{hook}: {answer}");
            started.push(answer["id"].as_str().unwrap().to_string());
        }
    }
    assert!(started.len() > 300, "{} async runs", started.len());

    // Every async run ends (delays here are at most a few seconds), and no node
    // of any run failed on a bug: every failure is a node's own clear error.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let records = loop {
        let records = server.executions(None);
        let unfinished = records.iter().filter(|e| e["status"] == "started").count();
        let seen = started
            .iter()
            .filter(|id| records.iter().any(|e| e["id"] == json!(id)))
            .count();
        if unfinished == 0 && seen == started.len() {
            break records;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{unfinished} runs still started, {seen} of {} recorded",
            started.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    for record in &records {
        assert!(
            !record.to_string().contains("internal error (a bug)"),
            "{}: a node panicked: {}",
            record["workflowKey"],
            short(record)
        );
    }

    // And it still answers.
    let r = http
        .post(server.hook_url("output-sync"))
        .json(&json!({"v": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    text.chars().take(600).collect()
}
