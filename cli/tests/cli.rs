//! The `hookflow` commands that need no server: validate and parse-sample.

use std::process::Command;

/// Runs this package's `hookflow` and returns (exit success, stdout, stderr).
fn hookflow(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(args)
        .output()
        .expect("run hookflow");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_lists_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"key": "k", "sync": true, "trigger": {"type": "webhook", "response": {"body": "x"}},
            "nodes": [{"key": "c", "type": "condition", "config": {"calculation": {"calculator": "same"}},
                       "branches": {"1": [{"key": "r", "type": "response", "config": {"statusCode": 700}}]}}]}"#,
    )
    .unwrap();
    let (ok, out, _) = hookflow(&["validate", bad.to_str().unwrap()]);
    assert!(!ok);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(out.contains("trigger.response: applies to async workflows only"));
    assert!(out.contains("nodes[0].config.calculation.calculator: unknown calculator \"same\""));
    assert!(out.contains("nodes[0].branches.1[0].config.statusCode: must be 200..=599"));
    assert!(lines.iter().all(|l| l.starts_with(bad.to_str().unwrap())));
}

#[test]
fn validate_rejects_a_delay_in_a_sync_workflow_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("waits.json");
    std::fs::write(
        &file,
        r#"{"key": "waits", "sync": true, "trigger": {"type": "webhook"}, "nodes": [
            {"key": "l", "type": "loop", "config": {"target": 2}, "branches": {"0": [
                {"key": "w", "type": "delay", "config": {"duration": 5, "unit": 0, "endStatus": 2}}
            ]}}]}"#,
    )
    .unwrap();
    let (ok, out, _) = hookflow(&["validate", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        out.contains("nodes[0].branches.0[0].type: \"delay\" nodes work in async workflows only"),
        "{out}"
    );
    assert!(
        out.contains("nodes[0].branches.0[0].config.unit: must be a whole number of milliseconds"),
        "{out}"
    );
    assert!(
        out.contains(
            "nodes[0].branches.0[0].config.endStatus: must be 1 (resolved) or -1 (failed)"
        ),
        "{out}"
    );
}

#[test]
fn validate_summarises_valid_files() {
    let (ok, out, err) = hookflow(&[
        "validate",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"),
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(
            "payment-callback.json: ok: payment-callback (sync, hook pay-3kq9x0v2m1, 3 nodes)"
        ),
        "{out}"
    );
    // The two examples that keep the product page's Basic password in the file are
    // warned of (a secret written in the definition).
    let warnings: Vec<&str> = out.lines().filter(|l| l.contains("warning:")).collect();
    assert_eq!(warnings.len(), 2, "{out}");
    assert!(
        warnings.iter().all(|w| w.contains(
            "trigger.basicAuthentication.password: the secret is written in the definition"
        )),
        "{out}"
    );
    assert_eq!(
        out.lines().count() - warnings.len(),
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"))
            .unwrap()
            .count()
    );
}

#[test]
fn validate_reports_broken_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.json");
    std::fs::write(&file, "{\"key\": ").unwrap();
    let (ok, out, _) = hookflow(&["validate", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(out.contains("not valid JSON"), "{out}");
}

#[test]
fn parse_sample_prints_paths() {
    let (ok, out, _) = hookflow(&["parse-sample", "--json", r#"{"a": 1, "b": {"c": 2}}"#]);
    assert!(ok);
    assert_eq!(out, "a\nb\nb.c\n");
    let (ok, out, _) = hookflow(&[
        "parse-sample",
        "--url",
        "http://localhost:13000/api/webhook:trigger/1hfmkioou0d?query[0][a]=1",
    ]);
    assert!(ok);
    assert_eq!(out, "query\nquery[0]\nquery[0].a\n");
    let (ok, _, err) = hookflow(&["parse-sample", "--json", "{nope"]);
    assert!(!ok);
    assert!(err.contains("not valid JSON"));
}

#[test]
fn executions_without_data_explain_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = hookflow(&[
        "executions",
        "list",
        "--data",
        dir.path().join("none").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("no hookflow data"), "{err}");
}

#[test]
fn validate_warns_of_a_sync_timeout_past_api_gateway_and_names_bad_types() {
    let dir = tempfile::tempdir().unwrap();
    let slow = dir.path().join("slow.json");
    std::fs::write(
        &slow,
        r#"{"key": "slow", "sync": true, "options": {"timeoutMs": 60000}, "trigger": {"type": "webhook"}}"#,
    )
    .unwrap();
    let (ok, out, _) = hookflow(&["validate", slow.to_str().unwrap()]);
    assert!(ok, "a warning does not refuse the definition: {out}");
    assert!(
        out.contains("warning: options.timeoutMs: 60000 ms is longer than API Gateway waits"),
        "{out}"
    );
    // Within 30 s: no warning.
    std::fs::write(
        &slow,
        r#"{"key": "slow", "sync": true, "options": {"timeoutMs": 20000}, "trigger": {"type": "webhook"}}"#,
    )
    .unwrap();
    let (ok, out, _) = hookflow(&["validate", slow.to_str().unwrap()]);
    assert!(ok && !out.contains("warning"), "{out}");
    // A config field of the wrong type is named by its path (typed configs).
    std::fs::write(
        &slow,
        r#"{"key": "t", "sync": true, "trigger": {"type": "webhook"},
            "nodes": [{"key": "m", "type": "json-variable-mapping", "config": {"dataSource": 1,
                "variables": [{"key": "a", "path": 5}]}}]}"#,
    )
    .unwrap();
    let (ok, out, _) = hookflow(&["validate", slow.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        out.contains(
            "nodes[0].config.variables[0].path: invalid type: integer `5`, expected a string"
        ),
        "{out}"
    );
}

#[test]
fn parse_sample_reads_form_bodies_and_sign_prints_a_senders_headers() {
    let (ok, out, _) = hookflow(&["parse-sample", "--form", "text=2+pizzas&items[0][sku]=a"]);
    assert!(ok);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["text", "items", "items[0]", "items[0].sku"]
    );
    // GitHub's documented example, signed.
    let (ok, out, err) = hookflow(&[
        "sign",
        "--preset",
        "github",
        "--secret",
        "It's a Secret to Everybody",
        "--body",
        "Hello, World!",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        "X-Hub-Signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
    let (ok, out, _) = hookflow(&[
        "sign", "--preset", "slack", "--secret", "s", "--body", "a=1",
    ]);
    assert!(
        ok && out.contains("X-Slack-Request-Timestamp: ") && out.contains("X-Slack-Signature: v0="),
        "{out}"
    );
    let (ok, _, err) = hookflow(&["sign", "--preset", "gitlab", "--secret", "s", "--body", "x"]);
    assert!(!ok && err.contains("not a preset"), "{err}");
}
