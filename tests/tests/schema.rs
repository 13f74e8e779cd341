//! `hookflow schema`: a JSON Schema (draft 2020-12) of definitions that every
//! example meets, that refuses what `hookflow validate` refuses for typos and wrong
//! types, and that is the file committed under docs/ (which the examples name).

use std::path::{Path, PathBuf};

use hookflow_tests::hookflow;
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn printed_schema() -> Value {
    let (ok, out, err) = hookflow(&["schema"]);
    assert!(ok, "{err}");
    serde_json::from_str(&out).expect("hookflow schema prints JSON")
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&printed_schema()).expect("a valid 2020-12 schema")
}

fn examples() -> Vec<(PathBuf, Value)> {
    let mut found: Vec<_> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let doc = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            (p, doc)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[test]
fn the_committed_schema_is_the_printed_one() {
    let committed: Value =
        serde_json::from_slice(&std::fs::read(root().join("docs/hookflow.schema.json")).unwrap())
            .unwrap();
    assert!(
        committed == printed_schema(),
        "docs/hookflow.schema.json is stale: run `hookflow schema > docs/hookflow.schema.json`"
    );
    assert_eq!(
        committed["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
}

#[test]
fn every_example_names_the_schema_and_meets_it() {
    let validator = validator();
    let examples = examples();
    assert!(examples.len() >= 10);
    for (path, doc) in examples {
        assert_eq!(doc["$schema"], "../docs/hookflow.schema.json", "{path:?}");
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{}: {e}", e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{path:?}: {errors:#?}");
    }
}

/// Each mistake, made on a valid definition, is refused by the schema and by
/// `hookflow validate` alike.
#[test]
fn typos_and_wrong_types_are_refused_by_the_schema_and_the_loader() {
    let validator = validator();
    let valid = json!({
        "$schema": "../docs/hookflow.schema.json",
        "key": "t", "sync": true,
        "trigger": {"type": "webhook", "hookId": "t-1", "basicAuthentication": false},
        "nodes": [
            {"key": "c", "type": "condition", "config": {"calculation": {"calculator": "equal", "operands": [1, 1]}},
             "branches": {"1": [{"key": "r", "type": "response", "config": {"statusCode": 201}}]}},
            {"key": "l", "type": "loop", "config": {"target": [1], "condition": false}},
            {"key": "d", "type": "dateCalculation", "config": {"input": "2026-01-01", "inputType": null, "steps": []}}
        ]
    });
    assert!(
        validator.is_valid(&valid),
        "{:?}",
        validator
            .iter_errors(&valid)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    assert_validates(&valid, true);

    let mistakes: [(&str, &str, Value); 10] = [
        ("a misspelt root field", "/enabeld", json!(true)),
        ("sync as a string", "/sync", json!("yes")),
        ("another trigger type", "/trigger/type", json!("cron")),
        ("a hook id with a slash", "/trigger/hookId", json!("a/b")),
        (
            "a misspelt password field",
            "/trigger/basicAuthentication",
            json!({"username": "u", "pasword": "p"}),
        ),
        ("an unknown node type", "/nodes/0/type", json!("condtion")),
        (
            "a misspelt node field",
            "/nodes/0/retyr",
            json!({"maxAttempts": 2}),
        ),
        (
            "a misspelt config field in a branch",
            "/nodes/0/branches/1/0/config/statusCod",
            json!(200),
        ),
        (
            "a status code as a string",
            "/nodes/0/branches/1/0/config/statusCode",
            json!("200"),
        ),
        (
            "a loop checkpoint as a string",
            "/nodes/1/config/condition",
            json!({"checkpoint": "before"}),
        ),
    ];
    for (what, pointer, value) in mistakes {
        let mut doc = valid.clone();
        set(&mut doc, pointer, value);
        assert!(
            !validator.is_valid(&doc),
            "the schema accepts {what}: {doc}"
        );
        assert_validates(&doc, false);
    }
}

/// Sets the value at a JSON pointer, creating the last field.
fn set(doc: &mut Value, pointer: &str, value: Value) {
    let (parent, field) = pointer.rsplit_once('/').unwrap();
    let parent = doc.pointer_mut(parent).expect("parent exists");
    match parent {
        Value::Object(map) => {
            map.insert(field.to_string(), value);
        }
        Value::Array(items) => items[field.parse::<usize>().unwrap()] = value,
        _ => panic!("{pointer}"),
    }
}

fn assert_validates(doc: &Value, expected: bool) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.json");
    std::fs::write(&file, serde_json::to_vec(doc).unwrap()).unwrap();
    let (ok, out, err) = hookflow(&["validate", file.to_str().unwrap()]);
    assert_eq!(ok, expected, "hookflow validate on {doc}:\n{out}{err}");
}

/// What the schema accepts, the loader accepts: `null` where a field is optional
/// reads as absent, and fields the hand-written checks know (a header's `alias`).
#[test]
fn what_the_schema_accepts_the_loader_accepts() {
    let validator = validator();
    let doc = json!({
        "key": "t", "title": null, "description": null, "sync": false,
        "options": {"timeoutMs": null, "onFailure": null},
        "trigger": {"type": "webhook", "hookId": null, "basicAuthentication": null,
            "request": {"headers": [{"key": "x-id", "alias": "Request id"}], "body": [{"key": "a", "alias": null}]},
            "response": null, "signature": null, "handshake": null, "idempotency": null, "rateLimit": null},
        "nodes": [
            {"key": "o", "type": "output", "title": null, "config": {"value": 1}, "retry": null},
            {"key": "v", "type": "variable", "config": {"target": null, "value": 2}}
        ]
    });
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_validates(&doc, true);
}
