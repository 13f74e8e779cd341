//! Operating hookflow after a failure (issue 12): finding runs by status and time,
//! pruning old ones by hand and by retention, beside live traffic, end to end
//! through the `hookflow` binary on the embedded store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookflow::model::{Cursor, Execution, ExecutionStatus, Paused, Wait};
use hookflow::ports::ExecutionStore;
use hookflow::ports::embedded::{Database, EmbeddedStore};
use hookflow_tests::{Server, client, hookflow, replayed_ids};
use serde_json::{Value, json};

fn flows() -> Vec<Value> {
    vec![
        json!({"key": "ok", "sync": true, "trigger": {"type": "webhook", "hookId": "ok-hook"},
            "nodes": [{"key": "r", "type": "response", "config": {"statusCode": 200, "body": "fine"}}]}),
        json!({"key": "bad", "sync": true, "trigger": {"type": "webhook", "hookId": "bad-hook"},
            "nodes": [{"key": "stop", "type": "end", "config": {"endStatus": -1}}]}),
        json!({"key": "later", "trigger": {"type": "webhook", "hookId": "later-hook"},
            "nodes": [{"key": "o", "type": "output", "config": {"value": "{{$context.body.n}}"}}]}),
    ]
}

/// A UUIDv7 execution id created `ago` before now.
fn id_created(ago: Duration) -> String {
    let since = (std::time::SystemTime::now() - ago)
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, since.as_secs(), since.subsec_nanos());
    uuid::Uuid::new_v7(ts).to_string()
}

fn record(id: String, key: &str, status: ExecutionStatus) -> Execution {
    Execution {
        id,
        workflow_key: key.into(),
        workflow_version: 1,
        status,
        context: json!({"body": {"seeded": true}}),
        output: Value::Null,
        jobs: Vec::new(),
        created_at: "2026-11-01T00:00:00.000Z".into(),
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
    }
}

/// Writes `finished` resolved executions of workflow `ok` created ten days ago, and
/// one execution paused since then, into a server's data; returns the paused id.
async fn seed_old(server: &Server, finished: usize) -> String {
    let db = Database::open(&server.data_dir()).unwrap();
    let store = EmbeddedStore::new(Arc::clone(&db));
    let ten_days = Duration::from_secs(10 * 86_400);
    let writes = (0..finished).map(|_| {
        let store = store.clone();
        async move {
            let e = record(id_created(ten_days), "ok", ExecutionStatus::Resolved);
            store.save_execution(&e).await.unwrap();
        }
    });
    futures_util::future::join_all(writes).await;
    let mut paused = record(id_created(ten_days), "later", ExecutionStatus::Started);
    paused.paused = Some(Paused {
        waits: vec![Wait::Until {
            node_key: "w".into(),
            until: "2027-01-01T00:00:00.000Z".into(),
        }],
        wake_at: Some("2027-01-01T00:00:00.000Z".into()),
        token: "t".into(),
        cursor: Cursor {
            index: 0,
            job: 0,
            frame: json!({}),
        },
        results: json!({}),
        scopes: json!({}),
        node_runs: 1,
        depth: 0,
    });
    store.save_execution(&paused).await.unwrap();
    paused.id
}

fn list(server: &Server, args: &[&str]) -> Vec<Value> {
    let data = server.data_dir();
    let mut all = vec!["executions", "list", "--json", "--limit", "100000"];
    all.extend_from_slice(args);
    all.extend(["--data", data.to_str().unwrap()]);
    let (ok, out, err) = hookflow(&all);
    assert!(ok, "executions list {args:?} failed: {err}");
    serde_json::from_str(&out).unwrap()
}

fn statuses(executions: &[Value]) -> Vec<(String, String)> {
    executions
        .iter()
        .map(|e| {
            (
                e["workflowKey"].as_str().unwrap().to_string(),
                e["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn prune(server: &Server, args: &[&str]) -> String {
    let data = server.data_dir();
    let mut all = vec!["executions", "prune"];
    all.extend_from_slice(args);
    all.extend(["--data", data.to_str().unwrap()]);
    let (ok, out, err) = hookflow(&all);
    assert!(ok, "executions prune {args:?} failed: {err}");
    out
}

#[tokio::test]
async fn lists_by_status_and_time_and_prunes_from_the_command_line() {
    let server = Server::start(&flows());
    let paused = seed_old(&server, 3).await;
    let http = client();
    for hook in ["ok-hook", "bad-hook", "ok-hook"] {
        let answer = http.post(server.hook_url(hook)).send().await.unwrap();
        assert!(answer.status().as_u16() < 600);
    }

    let failed = list(&server, &["--status", "failed"]);
    assert_eq!(statuses(&failed), [("bad".into(), "failed".into())]);
    let recent = list(&server, &["--since", "1h"]);
    assert_eq!(recent.len(), 3);
    assert!(
        recent
            .iter()
            .all(|e| e["context"]["body"]["seeded"].is_null())
    );
    let old = list(&server, &["--until", "1d"]);
    assert_eq!(old.len(), 4, "three old finished runs and the paused one");
    let old_ok = list(
        &server,
        &["--until", "1d", "--workflow", "ok", "--status", "resolved"],
    );
    assert_eq!(old_ok.len(), 3);
    let window = list(
        &server,
        &["--since", "11d", "--until", "9d", "--status", "started"],
    );
    assert_eq!(window.len(), 1);
    assert_eq!(window[0]["id"], paused.as_str());
    // RFC 3339 works as well as a duration; a wrong status or time says why.
    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    assert_eq!(list(&server, &["--since", &since]).len(), 3);
    let (ok, _, err) = hookflow(&["executions", "list", "--status", "done"]);
    assert!(!ok && err.contains("not a status"), "{err}");
    let (ok, _, err) = hookflow(&["executions", "list", "--since", "yesterday"]);
    assert!(
        !ok && err.contains("--since") && err.contains("RFC 3339"),
        "{err}"
    );

    // Text output for people, too.
    let data = server.data_dir();
    let (ok, text, _) = hookflow(&[
        "executions",
        "list",
        "--status",
        "failed",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(ok && text.contains("bad") && text.contains("failed") && !text.contains("resolved"));

    let out = prune(&server, &["--older-than", "7d"]);
    assert!(out.starts_with("pruned 3 execution(s)"), "{out}");
    let left = list(&server, &[]);
    assert_eq!(left.len(), 4, "the three recent runs and the paused one");
    assert!(left.iter().any(|e| e["id"] == paused.as_str()));
    let out = prune(&server, &["--older-than", "0s", "--status", "failed"]);
    assert!(out.starts_with("pruned 1 execution(s)"), "{out}");
    assert_eq!(statuses(&list(&server, &["--workflow", "ok"])).len(), 2);
}

#[tokio::test]
async fn a_prune_beside_live_traffic_loses_no_run() {
    let server = Server::start(&flows());
    let paused = seed_old(&server, 5_000).await;
    let data = server.data_dir().to_str().unwrap().to_string();
    // Sync and async runs before, while and after the prune deletes.
    let http = client();
    let mut sent = 0;
    let mut pruning = None;
    let began = Instant::now();
    while pruning
        .as_ref()
        .is_none_or(|p: &std::thread::JoinHandle<_>| !p.is_finished())
        || sent < 400
    {
        if sent == 64 {
            let data = data.clone();
            pruning = Some(std::thread::spawn(move || {
                let began = Instant::now();
                let out = hookflow(&["executions", "prune", "--older-than", "7d", "--data", &data]);
                (out, began.elapsed())
            }));
        }
        let batch = (0..16).map(|i| {
            let http = http.clone();
            let url = server.hook_url(if i % 2 == 0 { "ok-hook" } else { "later-hook" });
            async move {
                let answer = http.post(url).json(&json!({"n": i})).send().await.unwrap();
                answer.status().as_u16()
            }
        });
        for status in futures_util::future::join_all(batch).await {
            assert_eq!(status, 200);
        }
        sent += 16;
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the prune never ended"
        );
    }
    let ((ok, out, err), took) = pruning.unwrap().join().unwrap();
    assert!(ok, "{err}");
    assert!(out.starts_with("pruned 5000 execution(s)"), "{out}");
    eprintln!("pruned 5000 beside {sent} requests in {took:?}");

    // Every run answered is recorded and finished; the paused one stays.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let all = list(&server, &[]);
        let live: Vec<&Value> = all.iter().filter(|e| e["id"] != paused.as_str()).collect();
        let done = live.iter().filter(|e| e["status"] == "resolved").count();
        if live.len() == sent && done == sent {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {sent} runs recorded, {done} resolved",
            live.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(list(&server, &["--status", "started"]).len(), 1);
}

#[tokio::test]
async fn serve_prunes_past_its_retention_in_the_background() {
    let server = Server::start_with(&flows(), &["--retention-days", "7"]);
    let paused = seed_old(&server, 50).await;
    let ok = client()
        .post(server.hook_url("ok-hook"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // The first pass runs 5 s after the start, then every hour.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = list(&server, &[]);
        if left.len() == 2 {
            assert!(left.iter().any(|e| e["id"] == paused.as_str()));
            assert!(
                left.iter()
                    .any(|e| e["workflowKey"] == "ok" && e["status"] == "resolved")
            );
            break;
        }
        assert!(Instant::now() < deadline, "{} executions left", left.len());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn retention_zero_keeps_everything() {
    let server = Server::start_with(&flows(), &["--retention-days", "0"]);
    seed_old(&server, 5).await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(list(&server, &[]).len(), 6);
}

fn workflows(server: &Server, args: &[&str]) -> (bool, String, String) {
    let data = server.data_dir();
    let mut all = vec!["workflows"];
    all.extend_from_slice(args);
    all.extend(["--data", data.to_str().unwrap()]);
    hookflow(&all)
}

/// Posts to a hook until it answers `status` (the hook cache holds a workflow up
/// to 5 s); returns how long that took.
async fn until_answered(server: &Server, hook: &str, status: u16) -> Duration {
    let began = Instant::now();
    loop {
        let answer = client().post(server.hook_url(hook)).send().await.unwrap();
        if answer.status().as_u16() == status {
            return began.elapsed();
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{hook} still answers {}",
            answer.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_workflow_is_switched_off_and_on_without_editing_its_file() {
    let mut server = Server::start(&flows());
    let (ok, out, _) = workflows(&server, &["list", "--json"]);
    assert!(ok);
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    let keys: Vec<&str> = listed.iter().map(|w| w["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["bad", "later", "ok"]);
    assert!(
        listed
            .iter()
            .all(|w| w["enabled"] == true && w["version"] == 1)
    );
    assert_eq!(listed[2]["path"], "/api/webhook:trigger/ok-hook");
    until_answered(&server, "ok-hook", 200).await;

    let (ok, out, err) = workflows(&server, &["disable", "ok"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("ok v2 disabled"), "{out}");
    let took = until_answered(&server, "ok-hook", 404).await;
    assert!(took < Duration::from_secs(7), "took {took:?}");
    let (_, out, _) = workflows(&server, &["disable", "ok"]);
    assert!(out.contains("disabled already"), "{out}");

    // History: version 2 is the switch, with who made it.
    let (_, out, _) = workflows(&server, &["list", "--json"]);
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    let ok_flow = listed.iter().find(|w| w["key"] == "ok").unwrap();
    assert_eq!(ok_flow["enabled"], false);
    assert_eq!(ok_flow["version"], 2);
    assert!(
        ok_flow["switchedBy"]
            .as_str()
            .unwrap()
            .contains("hookflow workflows disable")
    );
    let (_, text, _) = workflows(&server, &["list"]);
    assert!(
        text.contains("disabled") && text.contains("switched by"),
        "{text}"
    );

    // A restart deploys the unchanged file: the switch holds.
    server.restart_with(&[]);
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.contains("ok v2") && l.contains("disabled")),
        "{:?}",
        server.banner
    );
    assert!(until_answered(&server, "ok-hook", 404).await < Duration::from_millis(100));

    let (ok, out, _) = workflows(&server, &["enable", "ok"]);
    assert!(ok && out.starts_with("ok v3 enabled"), "{out}");
    until_answered(&server, "ok-hook", 200).await;
    let runs = list(&server, &["--workflow", "ok"]);
    let versions: Vec<u64> = runs
        .iter()
        .map(|e| e["workflowVersion"].as_u64().unwrap())
        .collect();
    assert_eq!(versions.first(), Some(&3));
    assert_eq!(versions.last(), Some(&1));
    assert!(!versions.contains(&2), "nothing ran while it was off");

    let (ok, _, err) = workflows(&server, &["disable", "nope"]);
    assert!(!ok && err.contains("no workflow \"nope\""), "{err}");
}

/// A payment handler whose first version has a bug: it fails every run.
fn payment(fixed: bool) -> Value {
    let node = if fixed {
        json!({"key": "book", "type": "output", "config": {"value": "booked {{$context.body.order}}"}})
    } else {
        json!({"key": "book", "type": "end", "config": {"endStatus": -1}})
    };
    json!({"key": "payment", "sync": true, "trigger": {"type": "webhook", "hookId": "pay-hook"},
        "nodes": [node]})
}

fn replay(server: &Server, args: &[&str]) -> (bool, String, String) {
    let data = server.data_dir();
    let mut all = vec!["executions", "replay"];
    all.extend_from_slice(args);
    all.extend(["--data", data.to_str().unwrap()]);
    hookflow(&all)
}

async fn wait_for(server: &Server, id: &str, status: &str, within: Duration) -> Value {
    let began = Instant::now();
    loop {
        if let Some(e) = server.execution(id).filter(|e| e["status"] == status) {
            return e;
        }
        assert!(
            began.elapsed() < within,
            "{id} not {status} within {within:?}: {:?}",
            server.execution(id)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn failed_runs_are_replayed_after_the_fix_and_resolve() {
    let mut server = Server::start(&[payment(false)]);
    let http = client();
    for order in ["A-1", "A-2", "A-3"] {
        let answer = http
            .post(server.hook_url("pay-hook"))
            .json(&json!({"order": order}))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_server_error() || answer.status().is_success());
    }
    let failed = list(&server, &["--status", "failed"]);
    assert_eq!(failed.len(), 3);
    let first = failed.last().unwrap()["id"].as_str().unwrap().to_string();

    // The fix is deployed; the serve process keeps running meanwhile.
    server.write_workflow(&payment(true));
    server.restart_with(&[]);
    let (ok, out, err) = replay(&server, &[&first]);
    assert!(ok, "{err}");
    let new = replayed_ids(&out);
    assert_eq!(new.len(), 1, "{out}");
    assert!(out.contains("(payment v2)"), "{out}");
    let began = Instant::now();
    let run = wait_for(&server, &new[0], "resolved", Duration::from_secs(5)).await;
    eprintln!("a replay ran {:?} after it was queued", began.elapsed());
    assert!(began.elapsed() < Duration::from_secs(3));
    assert_eq!(run["replayOf"], first.as_str());
    assert_eq!(run["workflowVersion"], 2);
    assert_eq!(run["context"], server.execution(&first).unwrap()["context"]);
    assert_eq!(run["jobs"][0]["result"], "booked A-1");
    let (_, shown, _) = hookflow(&[
        "executions",
        "show",
        &new[0],
        "--data",
        server.data_dir().to_str().unwrap(),
    ]);
    assert!(shown.contains(&format!("Replay of {first}")), "{shown}");

    // Pinned to the version that ran, it fails as it did.
    let (ok, out, _) = replay(&server, &[&first, "--same-version"]);
    assert!(ok && out.contains("(payment v1)"), "{out}");
    wait_for(
        &server,
        &replayed_ids(&out)[0],
        "failed",
        Duration::from_secs(5),
    )
    .await;

    // Bulk: every failed original of the last hour not replayed before (A-2, A-3),
    // oldest first; A-1 was replayed, the pinned replay is no original.
    let bulk = [
        "--workflow",
        "payment",
        "--status",
        "failed",
        "--since",
        "1h",
    ];
    let (ok, out, err) = replay(&server, &bulk);
    assert!(ok, "{err}");
    assert!(out.contains("left 1 replayed before"), "{out}");
    assert!(out.contains("left 1 started by another run"), "{out}");
    assert!(
        out.contains("2 replay(s) queued, 0 refused, of 2 selected"),
        "{out}"
    );
    let ids = replayed_ids(&out);
    let orders: Vec<String> = ids
        .iter()
        .map(|id| {
            let run = server.execution(id).unwrap();
            run["context"]["body"]["order"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(orders, ["A-2", "A-3"], "oldest first");
    for id in &ids {
        wait_for(&server, id, "resolved", Duration::from_secs(5)).await;
    }
    let resolved = list(&server, &["--workflow", "payment", "--status", "resolved"]);
    let mut orders: Vec<&str> = resolved
        .iter()
        .map(|e| e["context"]["body"]["order"].as_str().unwrap())
        .collect();
    orders.sort();
    assert_eq!(orders, ["A-1", "A-2", "A-3"]);
    // The same bulk replay again runs nothing twice; --again does, with --limit.
    let (_, out, _) = replay(&server, &bulk);
    assert!(
        out.contains("0 replay(s) queued, 0 refused, of 0 selected"),
        "{out}"
    );
    let mut again = bulk.to_vec();
    again.extend(["--again", "--limit", "2"]);
    let (_, out, _) = replay(&server, &again);
    assert!(
        out.contains("2 replay(s) queued") && out.contains("1 more match past --limit 2"),
        "{out}"
    );

    // What cannot be replayed says why.
    let (ok, _, err) = replay(&server, &["no-such-id"]);
    assert!(!ok && err.contains("no execution"), "{err}");
    let (ok, _, err) = replay(&server, &[]);
    assert!(!ok && err.contains("--workflow"), "{err}");
    workflows(&server, &["disable", "payment"]);
    let (ok, _, err) = replay(&server, &[&first]);
    assert!(!ok && err.contains("disabled"), "{err}");
}

#[tokio::test]
async fn replays_queue_while_serve_is_down_and_run_at_its_start() {
    let mut server = Server::start(&[payment(true)]);
    let answer = client()
        .post(server.hook_url("pay-hook"))
        .json(&json!({"order": "B-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let original = list(&server, &[])[0]["id"].as_str().unwrap().to_string();
    server.stop();
    let (ok, out, err) = replay(&server, &[&original]);
    assert!(ok, "{err}");
    let new = replayed_ids(&out);
    // Queued, not started: `show` tells so.
    assert_eq!(server.execution(&new[0]).unwrap()["status"], "queued");
    server.restart_with(&[]);
    let run = wait_for(&server, &new[0], "resolved", Duration::from_secs(5)).await;
    assert_eq!(run["replayOf"], original.as_str());
}

#[tokio::test]
async fn a_bulk_replay_run_twice_while_the_first_batch_is_queued_replays_nothing_twice() {
    let mut server = Server::start(&[payment(true)]);
    for order in ["C-1", "C-2", "C-3"] {
        let answer = client()
            .post(server.hook_url("pay-hook"))
            .json(&json!({"order": order}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    // No worker: the replays stay queued, unrecorded, until serve starts again.
    server.stop();
    let bulk = ["--workflow", "payment", "--since", "1h"];
    let (ok, out, err) = replay(&server, &bulk);
    assert!(ok, "{err}");
    assert!(
        out.contains("3 replay(s) queued, 0 refused, of 3 selected"),
        "{out}"
    );
    let first = replayed_ids(&out);
    for id in &first {
        assert_eq!(server.execution(id).unwrap()["status"], "queued");
    }
    let (ok, out, err) = replay(&server, &bulk);
    assert!(ok, "{err}");
    assert!(out.contains("left 3 replayed before"), "{out}");
    assert!(
        out.contains("0 replay(s) queued, 0 refused, of 0 selected"),
        "{out}"
    );
    // A single replay is marked too; --again still replays everything.
    let original = list(&server, &["--workflow", "payment"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, out, _) = replay(&server, &[&original]);
    assert!(ok && replayed_ids(&out).len() == 1, "{out}");
    let mut again = bulk.to_vec();
    again.push("--again");
    let (_, out, _) = replay(&server, &again);
    assert!(out.contains("3 replay(s) queued"), "{out}");

    // Once serve runs them: 3 originals and 3 + 1 + 3 replays, each once.
    server.restart_with(&[]);
    let began = Instant::now();
    while list(&server, &["--workflow", "payment", "--status", "resolved"]).len() < 10 {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{:?}",
            list(&server, &[])
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, out, _) = replay(&server, &bulk);
    assert!(
        out.contains("0 replay(s) queued, 0 refused, of 0 selected"),
        "{out}"
    );
    assert_eq!(list(&server, &[]).len(), 10);
}
