use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::model::{Execution, ExecutionStatus, Job, JobStatus, RedactConfig, RedactMode};

fn key() -> Arc<SealingKey> {
    Arc::new(SealingKey::from_secret("test key"))
}

fn config(paths: &[&str], mode: RedactMode) -> RedactConfig {
    RedactConfig {
        paths: paths.iter().map(|p| p.to_string()).collect(),
        mode,
        key: None,
    }
}

/// A `"mask"` redaction of `paths` in [`context`].
fn masking(paths: &[&str]) -> Redaction {
    Redaction::new(&config(paths, RedactMode::Mask), &context(), None, key()).unwrap()
}

fn context() -> Value {
    json!({"headers": {"x-api-key": "k-123456"}, "query": {},
        "body": {"customer": {"email": "ana@example.com", "age": 7},
            "items": [{"card": "4242"}, {"card": "1881"}], "note": "ana@example.com wrote"}})
}

fn execution(redaction: Redaction) -> Execution {
    let mut e = Execution {
        id: "e-1".into(),
        workflow_key: "w".into(),
        workflow_version: 1,
        status: ExecutionStatus::Started,
        context: context(),
        output: Value::Null,
        jobs: Vec::new(),
        created_at: "t".into(),
        finished_at: None,
        parent_execution_id: None,
        paused: None,
        attempts: 0,
        idempotency_key: None,
        replay_of: None,
        on_failure_of: None,
        budget: None,
        sealed: None,
        kept_as: Default::default(),
    };
    e.output = json!({"to": "mail ana@example.com now"});
    e.jobs.push(Job {
        node_key: "n".into(),
        node_type: "output".into(),
        status: JobStatus::Resolved,
        result: json!(["k-123456", {"deep": "x ana@example.com y"}]),
        started_at: "t".into(),
        finished_at: None,
        log: vec!["sent to ana@example.com".into()],
        attempts: 0,
    });
    e.status = ExecutionStatus::Resolved;
    e.kept_as = redaction.into_kept_as();
    e
}

#[test]
fn masked_values_are_gone_from_every_part_of_the_record_and_the_run_keeps_them() {
    let paths = [
        "body.customer.email",
        "headers.x-api-key",
        "body.items[*].card",
    ];
    let r = masking(&paths);
    let e = execution(r);
    let kept = e.kept().unwrap().into_owned();
    let text = serde_json::to_string(&kept).unwrap();
    for secret in ["ana@example.com", "k-123456", "4242", "1881"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert_eq!(kept.context["body"]["items"][0]["card"], "***");
    assert_eq!(kept.context["body"]["note"], "*** wrote");
    assert_eq!(kept.output["to"], "mail *** now");
    assert_eq!(kept.jobs[0].log[0], "sent to ***");
    // Not redacted, and in memory untouched.
    assert_eq!(kept.context["body"]["customer"]["age"], 7);
    assert_eq!(e.context["body"]["customer"]["email"], "ana@example.com");
    // Nothing to resume: nothing sealed.
    assert!(kept.sealed.is_none());
}

#[test]
fn hashed_values_are_their_hmac_so_equal_values_correlate() {
    let mut c = config(&["body.customer.email"], RedactMode::Hash);
    c.key = Some(crate::model::SecretRef::Plain("k".into()));
    let r = Redaction::new(&c, &context(), Some(b"k"), key()).unwrap();
    let kept = execution(r).kept().unwrap().into_owned();
    // HMAC-SHA256("k", "ana@example.com"), by Python's hmac module.
    let expected = "hmac-sha256:375b7390511afcd85180b359fac2caf8fcbf39481dc97de3599ddca83d9bfa36";
    let got = kept.context["body"]["customer"]["email"].as_str().unwrap();
    assert_eq!(got, expected);
    assert_eq!(kept.context["body"]["note"], format!("{got} wrote"));
}

#[test]
fn a_paused_run_keeps_its_real_state_sealed_and_goes_on_with_it() {
    let r = masking(&["body.customer.email"]);
    let mut e = execution(r);
    e.status = ExecutionStatus::Started;
    e.paused = Some(crate::model::Paused {
        waits: Vec::new(),
        wake_at: None,
        token: "t".into(),
        cursor: crate::model::Cursor {
            index: 1,
            job: 1,
            frame: json!({"v": "ana@example.com"}),
        },
        results: json!({"n": "ana@example.com"}),
        scopes: json!({}),
        node_runs: 1,
        depth: 0,
    });
    let mut kept = e.kept().unwrap().into_owned();
    let text = serde_json::to_string(&kept).unwrap();
    assert!(!text.contains("ana@example.com"), "{text}");
    reopen(&mut kept, key()).unwrap();
    assert_eq!(kept.context, e.context);
    assert_eq!(kept.paused, e.paused);
    assert!(kept.kept_as.0.is_some() && kept.sealed.is_none());
    // Another key cannot open it.
    let mut again = e.kept().unwrap().into_owned();
    let other = Arc::new(SealingKey::from_secret("another"));
    assert!(reopen(&mut again, other).is_err());
}

#[test]
fn short_values_are_replaced_at_their_paths_only() {
    let r = masking(&["body.customer.age"]);
    let kept = execution(r).kept().unwrap().into_owned();
    assert_eq!(kept.context["body"]["customer"]["age"], "***");
    assert_eq!(kept.context["body"]["items"][0]["card"], "4242");
}

#[test]
fn bad_paths_are_refused() {
    for bad in ["", "body..a", "body.items[x]", "body.items[0", "[0]"] {
        assert!(paths::parse(bad).is_err(), "{bad}");
    }
    assert!(paths::parse("body.items[*].card").is_ok());
}

#[test]
fn numbers_object_keys_raw_bodies_and_kept_answers_are_scrubbed_too() {
    let context = json!({"body": {"phone": 15551234567_u64, "card": "4242424242424242"},
        "rawBody": "{\"phone\":15551234567,\"card\":\"4242\\u0034242424242424\"}"});
    let config = config(&["body.phone", "body.card"], RedactMode::Mask);
    let r = Redaction::new(&config, &context, None, key()).unwrap();
    let mut copied =
        json!({"15551234567": "a key", "n": 15551234567_u64, "note": "card 4242424242424242"});
    r.scrub(&mut copied);
    assert_eq!(
        copied,
        json!({"***": "a key", "n": "***", "note": "card ***"})
    );
    let mut kept_context = context.clone();
    r.scrub_context(&mut kept_context);
    assert_eq!(kept_context["rawBody"], RAW_BODY_NOT_KEPT);
    assert_eq!(kept_context["body"]["phone"], "***");
    let mut answer = crate::model::StoredAnswer {
        status: 200,
        headers: vec![("x-card".into(), "4242424242424242".into())],
        // JSON escapes hide the value from a plain text search.
        body: br#"{"card":"4242\u003424242424242"}"#.to_vec(),
    };
    r.scrub_answer(&mut answer);
    assert_eq!(answer.headers[0].1, "***");
    assert_eq!(answer.body, br#"{"card":"***"}"#.to_vec());
}

#[test]
fn a_subflow_runs_output_is_sealed_for_its_caller() {
    let r = masking(&["body.customer.email"]);
    let mut e = execution(r);
    e.parent_execution_id = Some("parent".into());
    let kept = e.kept().unwrap().into_owned();
    assert_eq!(kept.output["to"], "mail *** now");
    let opened = open(kept.sealed.as_deref().unwrap(), key()).unwrap();
    assert_eq!(opened.output.unwrap()["to"], "mail ana@example.com now");
}
