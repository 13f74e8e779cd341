//! One contract for the `Store` and `Queue` ports, run against the embedded adapters
//! and against DynamoDB/SQS on moto, so the two cannot drift apart.

use std::sync::Arc;
use std::time::Duration;

use hookflow::app::{deploy, replay};
use hookflow::model::{
    Claim, ClaimCheck, ClaimOutcome, Cursor, Execution, ExecutionStatus, KeyedAccept, Paused,
    RunMessage, StoredAnswer, Wait, WorkflowDefinition,
};
use hookflow::ports::aws::{self, DynamoStore, SqsQueue};
use hookflow::ports::embedded::{Database, EmbeddedQueue, EmbeddedStore};
use hookflow::ports::{ExecutionFilter, Precondition, Queue, QueueError, Store, StoreError};
use hookflow_tests::{moto_endpoint, unique_name};
use serde_json::{Value, json};

struct Backend {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    /// Another worker on the same queue (another process).
    other: Arc<dyn Queue>,
    /// How long a received run stays with a worker that went silent: the embedded
    /// queue's lease, SQS's visibility timeout.
    lease: Duration,
    /// Whether the queue finds a run by its execution id (SQS cannot).
    peeks: bool,
    _dir: Option<tempfile::TempDir>,
}

const LEASE: Duration = Duration::from_secs(2);

async fn embedded() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let queue = |db| async { Arc::new(EmbeddedQueue::with_lease(db, LEASE).await.unwrap()) };
    Backend {
        store: Arc::new(EmbeddedStore::new(Arc::clone(&db))),
        queue: queue(Arc::clone(&db)).await,
        other: queue(db).await,
        lease: LEASE,
        peeks: true,
        _dir: Some(dir),
    }
}

async fn moto() -> Backend {
    moto_endpoint();
    let config = aws::load_config().await;
    let client = aws::client(&config);
    let table = unique_name("contract");
    aws::create_table(&client, &table).await.unwrap();
    let url = aws::create_queue(&client, &unique_name("contract"))
        .await
        .unwrap();
    // The queue's lease, set with the SDK (nothing in hookflow sets it).
    aws_sdk_sqs::Client::new(&config)
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            LEASE.as_secs().to_string(),
        )
        .send()
        .await
        .unwrap();
    let other = SqsQueue::new(aws::client(&config), &url);
    Backend {
        store: Arc::new(DynamoStore::new(
            Arc::clone(&client),
            table,
            Some(Duration::from_secs(86_400)),
        )),
        queue: Arc::new(SqsQueue::new(client, url)),
        other: Arc::new(other),
        lease: LEASE,
        peeks: false,
        _dir: None,
    }
}

fn definition(key: &str, hook: Option<&str>, value: i64) -> WorkflowDefinition {
    let mut doc = json!({"key": key, "trigger": {"type": "webhook"},
        "nodes": [{"key": "o", "type": "output", "config": {"value": value}}]});
    if let Some(h) = hook {
        doc["trigger"]["hookId"] = json!(h);
    }
    hookflow::validate::validate(&doc, &hookflow::nodes::builtin()).unwrap()
}

fn execution(id: &str, key: &str, status: ExecutionStatus) -> Execution {
    Execution {
        id: id.into(),
        workflow_key: key.into(),
        workflow_version: 1,
        status,
        context: json!({"body": {"n": 1}}),
        output: Value::Null,
        jobs: Vec::new(),
        created_at: "2026-11-28T00:00:00.000Z".into(),
        parent_execution_id: None,
        paused: None,
        attempts: 0,
        idempotency_key: None,
        replay_of: None,
        on_failure_of: None,
        budget: None,
        sealed: None,
        kept_as: Default::default(),
        finished_at: None,
    }
}

async fn deploys_versions_and_finds_hooks(b: Backend) {
    let store = b.store.as_ref();
    let first = deploy::deploy(
        store,
        &hookflow::nodes::builtin(),
        definition("pay", Some("pay-hook"), 1),
    )
    .await
    .unwrap();
    assert!(first.changed);
    assert_eq!(first.workflow.version, 1);
    let again = deploy::deploy(
        store,
        &hookflow::nodes::builtin(),
        definition("pay", Some("pay-hook"), 1),
    )
    .await
    .unwrap();
    assert!(
        !again.changed,
        "an unchanged definition is not a new version"
    );
    assert_eq!(again.workflow.version, 1);
    let second = deploy::deploy(
        store,
        &hookflow::nodes::builtin(),
        definition("pay", Some("pay-hook"), 2),
    )
    .await
    .unwrap();
    assert_eq!(second.workflow.version, 2);

    let by_hook = store
        .workflow_by_hook("pay-hook")
        .await
        .unwrap()
        .expect("hook found");
    assert_eq!((by_hook.key.as_str(), by_hook.version), ("pay", 2));
    assert_eq!(
        store
            .current_workflow("pay")
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    let v1 = store.workflow_version("pay", 1).await.unwrap().unwrap();
    assert_eq!(v1.definition.nodes[0].config["value"], 1);
    assert!(store.workflow_version("pay", 3).await.unwrap().is_none());
    assert!(store.workflow_by_hook("nope").await.unwrap().is_none());
    assert!(store.current_workflow("nope").await.unwrap().is_none());

    // A generated hook id is kept for the key across versions.
    let generated = deploy::deploy(
        store,
        &hookflow::nodes::builtin(),
        definition("gen", None, 1),
    )
    .await
    .unwrap();
    assert_eq!(generated.workflow.hook_id.len(), 32);
    let next = deploy::deploy(
        store,
        &hookflow::nodes::builtin(),
        definition("gen", None, 2),
    )
    .await
    .unwrap();
    assert_eq!(next.workflow.hook_id, generated.workflow.hook_id);

    // Moving a key to a new hook id frees the old one.
    deploy::deploy(
        store,
        &hookflow::nodes::builtin(),
        definition("pay", Some("pay-hook-2"), 2),
    )
    .await
    .unwrap();
    assert!(store.workflow_by_hook("pay-hook").await.unwrap().is_none());
    assert_eq!(
        store
            .workflow_by_hook("pay-hook-2")
            .await
            .unwrap()
            .unwrap()
            .version,
        3
    );

    let keys: Vec<String> = store
        .list_workflows()
        .await
        .unwrap()
        .iter()
        .map(|w| w.key.clone())
        .collect();
    assert_eq!(keys, ["gen", "pay"]);
}

async fn refuses_taken_hooks_and_stale_versions(b: Backend) {
    let store = b.store.as_ref();
    deploy::deploy(
        store,
        &hookflow::nodes::builtin(),
        definition("a", Some("shared-hook"), 1),
    )
    .await
    .unwrap();
    let err = deploy::deploy(
        store,
        &hookflow::nodes::builtin(),
        definition("b", Some("shared-hook"), 1),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::HookTaken { .. }), "{err}");
    assert!(
        store.current_workflow("b").await.unwrap().is_none(),
        "nothing of b was written"
    );
    // Publishing a version that exists (a concurrent deploy) is refused.
    let current = store.current_workflow("a").await.unwrap().unwrap();
    let err = store.publish(&current).await.unwrap_err();
    assert!(matches!(err, StoreError::VersionConflict { .. }), "{err}");
}

async fn records_executions_once_and_lists_newest_first(b: Backend) {
    let store = b.store.as_ref();
    let ids: Vec<String> = (0..3)
        .map(|_| hookflow::app::ids::new_execution_id())
        .collect();
    for id in &ids {
        assert!(
            store
                .insert_execution(&execution(id, "k1", ExecutionStatus::Started))
                .await
                .unwrap()
        );
    }
    assert!(
        !store
            .insert_execution(&execution(&ids[0], "k1", ExecutionStatus::Started))
            .await
            .unwrap()
    );
    let other = hookflow::app::ids::new_execution_id();
    store
        .insert_execution(&execution(&other, "k2", ExecutionStatus::Started))
        .await
        .unwrap();

    let mut done = execution(&ids[1], "k1", ExecutionStatus::Resolved);
    done.output = json!({"ok": true});
    store.save_execution(&done).await.unwrap();
    assert_eq!(store.execution(&ids[1]).await.unwrap().unwrap(), done);
    assert!(store.execution("missing").await.unwrap().is_none());

    let k1: Vec<String> = store
        .list_executions(Some("k1"), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(k1, [ids[2].clone(), ids[1].clone(), ids[0].clone()]);
    let two = store.list_executions(Some("k1"), 2).await.unwrap();
    assert_eq!(two.len(), 2);
    assert_eq!(two[0].id, ids[2]);
}

async fn a_finished_record_is_never_overwritten_by_a_late_delivery(b: Backend) {
    let store = b.store.as_ref();
    let id = hookflow::app::ids::new_execution_id();
    assert!(
        store
            .save_unless_finished(&execution(&id, "k", ExecutionStatus::Started))
            .await
            .unwrap()
    );
    let mut done = execution(&id, "k", ExecutionStatus::Resolved);
    done.output = json!("first");
    assert!(store.save_unless_finished(&done).await.unwrap());
    let mut late = execution(&id, "k", ExecutionStatus::Started);
    late.output = json!("late");
    assert!(!store.save_unless_finished(&late).await.unwrap());
    assert_eq!(store.execution(&id).await.unwrap().unwrap(), done);
}

async fn lists_all_executions_newest_first(b: Backend) {
    let store = b.store.as_ref();
    deploy::deploy(
        store,
        &hookflow::nodes::builtin(),
        definition("k1", None, 1),
    )
    .await
    .unwrap();
    deploy::deploy(
        store,
        &hookflow::nodes::builtin(),
        definition("k2", None, 1),
    )
    .await
    .unwrap();
    let mut ids = Vec::new();
    for key in ["k1", "k2", "k1"] {
        let id = hookflow::app::ids::new_execution_id();
        store
            .insert_execution(&execution(&id, key, ExecutionStatus::Resolved))
            .await
            .unwrap();
        ids.push(id);
    }
    let all: Vec<String> = store
        .list_executions(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(all, [ids[2].clone(), ids[1].clone(), ids[0].clone()]);
}

/// A UUIDv7 execution id created `ago` before now.
fn id_created(ago: Duration) -> String {
    let at = std::time::SystemTime::now() - ago;
    let since = at.duration_since(std::time::UNIX_EPOCH).unwrap();
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, since.as_secs(), since.subsec_nanos());
    uuid::Uuid::new_v7(ts).to_string()
}

const HOUR: Duration = Duration::from_secs(3_600);

/// Old and recent executions of two workflows: (old resolved, old failed, old
/// paused, old running, recent failed, recent resolved of k2).
async fn history(store: &dyn Store) -> [String; 6] {
    for key in ["k1", "k2"] {
        deploy::deploy(store, &hookflow::nodes::builtin(), definition(key, None, 1))
            .await
            .unwrap();
    }
    let ids = [
        id_created(3 * HOUR),
        id_created(3 * HOUR - Duration::from_secs(1)),
        id_created(3 * HOUR - Duration::from_secs(2)),
        id_created(3 * HOUR - Duration::from_secs(3)),
        id_created(Duration::from_secs(60)),
        id_created(Duration::from_secs(30)),
    ];
    let records = [
        execution(&ids[0], "k1", ExecutionStatus::Resolved),
        execution(&ids[1], "k1", ExecutionStatus::Failed),
        paused(&ids[2], "t"),
        execution(&ids[3], "k1", ExecutionStatus::Started),
        execution(&ids[4], "k1", ExecutionStatus::Failed),
        execution(&ids[5], "k2", ExecutionStatus::Resolved),
    ];
    for mut record in records {
        record.workflow_key = if record.id == ids[5] { "k2" } else { "k1" }.into();
        store.save_execution(&record).await.unwrap();
    }
    ids
}

async fn found(store: &dyn Store, filter: ExecutionFilter) -> Vec<String> {
    let mut ids: Vec<String> = store
        .find_executions(&filter, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let newest_first = ids.clone();
    ids.sort_by(|a, b| b.cmp(a));
    assert_eq!(newest_first, ids, "newest first");
    ids
}

async fn finds_executions_by_workflow_status_and_time(b: Backend) {
    let store = b.store.as_ref();
    let ids = history(store).await;
    let two_hours_ago = Some(chrono::Utc::now() - chrono::Duration::hours(2));
    let failed = Some(ExecutionStatus::Failed);
    let f = |workflow: Option<&str>, status, since, until| ExecutionFilter {
        workflow: workflow.map(str::to_string),
        status,
        since,
        until,
    };
    assert_eq!(
        found(store, f(Some("k1"), failed, two_hours_ago, None)).await,
        [ids[4].clone()]
    );
    assert_eq!(
        found(store, f(None, failed, None, None)).await,
        [ids[4].clone(), ids[1].clone()]
    );
    assert_eq!(
        found(store, f(None, None, None, two_hours_ago)).await,
        [
            ids[3].clone(),
            ids[2].clone(),
            ids[1].clone(),
            ids[0].clone()
        ]
    );
    assert_eq!(
        found(store, f(None, None, two_hours_ago, None)).await,
        [ids[5].clone(), ids[4].clone()]
    );
    assert_eq!(
        found(
            store,
            f(Some("k2"), Some(ExecutionStatus::Resolved), None, None)
        )
        .await,
        [ids[5].clone()]
    );
    assert!(
        found(store, f(Some("k2"), failed, None, None))
            .await
            .is_empty()
    );
    // Running and paused alike (DynamoDB's status index holds the paused only).
    assert_eq!(
        found(
            store,
            f(Some("k1"), Some(ExecutionStatus::Started), None, None)
        )
        .await,
        [ids[3].clone(), ids[2].clone()]
    );
    assert_eq!(
        found(
            store,
            f(Some("k1"), Some(ExecutionStatus::Resolved), None, None)
        )
        .await,
        [ids[0].clone()]
    );
    // A limit keeps the newest.
    let newest = store
        .find_executions(&f(Some("k1"), None, None, None), 2)
        .await
        .unwrap();
    assert_eq!(newest.len(), 2);
    assert_eq!(newest[0].id, ids[4]);
}

async fn prunes_finished_executions_and_never_a_live_one(b: Backend) {
    let store = b.store.as_ref();
    let ids = history(store).await;
    let old = ExecutionFilter {
        until: Some(chrono::Utc::now() - chrono::Duration::hours(1)),
        ..ExecutionFilter::default()
    };
    // In batches: one at a time, oldest first.
    assert_eq!(store.prune_executions(&old, 1).await.unwrap(), 1);
    assert!(store.execution(&ids[0]).await.unwrap().is_none());
    assert!(store.execution(&ids[1]).await.unwrap().is_some());
    assert_eq!(store.prune_executions(&old, 10).await.unwrap(), 1);
    assert_eq!(store.prune_executions(&old, 10).await.unwrap(), 0);
    // The paused and the running one stay, and so does everything recent.
    for id in &ids[2..] {
        assert!(
            store.execution(id).await.unwrap().is_some(),
            "{id} was pruned"
        );
    }
    // By status: only the recent failed run goes.
    let failed = ExecutionFilter {
        status: Some(ExecutionStatus::Failed),
        ..ExecutionFilter::default()
    };
    assert_eq!(
        hookflow::app::retention::prune(store, &failed)
            .await
            .unwrap(),
        1
    );
    assert!(store.execution(&ids[4]).await.unwrap().is_none());
    assert!(store.execution(&ids[5]).await.unwrap().is_some());
    // By a status read by time on DynamoDB: only that status goes.
    let resolved = ExecutionFilter {
        workflow: Some("k2".into()),
        status: Some(ExecutionStatus::Resolved),
        ..ExecutionFilter::default()
    };
    assert_eq!(store.prune_executions(&resolved, 10).await.unwrap(), 1);
    assert!(store.execution(&ids[5]).await.unwrap().is_none());
    for id in &ids[2..4] {
        assert!(
            store.execution(id).await.unwrap().is_some(),
            "{id} was pruned"
        );
    }
}

fn paused(id: &str, token: &str) -> Execution {
    let mut e = execution(id, "k", ExecutionStatus::Started);
    e.paused = Some(Paused {
        waits: vec![Wait::Until {
            node_key: "w".into(),
            until: "2026-11-28T00:01:00.000Z".into(),
        }],
        wake_at: Some("2026-11-28T00:01:00.000Z".into()),
        token: token.into(),
        cursor: Cursor {
            index: 0,
            job: 0,
            frame: json!({"until": "2026-11-28T00:01:00.000Z"}),
        },
        results: json!({}),
        scopes: json!({}),
        node_runs: 1,
        depth: 0,
    });
    e
}

/// A run is begun once: the first begin writes its record, and every later one
/// gets the record there instead, as it stands, in the same call.
async fn a_run_is_begun_once_and_later_begins_see_its_record(b: Backend) {
    let store = b.store;
    let id = unique_name("begin");
    // A context of 100 KB: a failed condition's reply that returns the record is
    // larger than an error reply usually is, and must still read as one.
    let started = Execution {
        context: json!({"body": "x".repeat(100_000)}),
        ..execution(&id, "k", ExecutionStatus::Started)
    };
    assert_eq!(store.begin_execution(&started).await.unwrap(), None);
    assert_eq!(
        store.execution(&id).await.unwrap().unwrap().status,
        ExecutionStatus::Started
    );
    let finished = Execution {
        output: json!("done"),
        ..started.clone()
    };
    let finished = Execution {
        status: ExecutionStatus::Resolved,
        ..finished
    };
    store.save_execution(&finished).await.unwrap();
    let held = store.begin_execution(&started).await.unwrap().unwrap();
    assert_eq!(held.context, started.context, "the record held, whole");
    assert_eq!(
        (held.status, held.output),
        (ExecutionStatus::Resolved, json!("done"))
    );
    assert_eq!(
        store.execution(&id).await.unwrap().unwrap().status,
        ExecutionStatus::Resolved
    );
    let paused_id = unique_name("begin");
    store
        .save_execution(&paused(&paused_id, "t1"))
        .await
        .unwrap();
    let held = store
        .begin_execution(&execution(&paused_id, "k", ExecutionStatus::Started))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.paused.map(|p| p.token), Some("t1".to_string()));
}

/// Every precondition over every state a record can be in: written exactly where
/// the table says, which is also what the rule itself (`Precondition::holds`) says,
/// and the record afterwards is the write's or the one held, whole.
async fn every_precondition_applies_exactly_where_its_rule_says(b: Backend) {
    let store = b.store;
    let states: [(&str, Option<Execution>); 5] = [
        ("none", None),
        (
            "running",
            Some(execution("_", "k", ExecutionStatus::Started)),
        ),
        ("paused on t1", Some(paused("_", "t1"))),
        ("paused on t2", Some(paused("_", "t2"))),
        (
            "resolved",
            Some(execution("_", "k", ExecutionStatus::Resolved)),
        ),
    ];
    let table: [(Precondition, [bool; 5]); 5] = [
        // none, running, paused on t1, paused on t2, resolved
        (Precondition::Absent, [true, false, false, false, false]),
        (Precondition::Always, [true, true, true, true, true]),
        (Precondition::Running, [true, true, false, false, false]),
        (
            Precondition::PausedOn("t1"),
            [false, false, true, false, false],
        ),
        (
            Precondition::PausedOn("t9"),
            [false, false, false, false, false],
        ),
    ];
    for (case, (when, expected)) in table.iter().enumerate() {
        for (state, ((name, held), applies)) in states.iter().zip(expected).enumerate() {
            let id = format!("pre-{case}-{state}-{}", unique_name("x"));
            let held = held.clone().map(|h| Execution {
                id: id.clone(),
                ..h
            });
            if let Some(held) = &held {
                assert!(
                    store
                        .write_execution(held, Precondition::Always)
                        .await
                        .unwrap()
                );
            }
            let write = Execution {
                output: json!("written"),
                ..execution(&id, "k", ExecutionStatus::Error)
            };
            let applied = store.write_execution(&write, *when).await.unwrap();
            assert_eq!(applied, *applies, "{when:?} over a record {name}");
            assert_eq!(
                when.holds(held.as_ref()),
                *applies,
                "the rule of {when:?} over {name}"
            );
            let now = store.execution(&id).await.unwrap();
            let expected_record = if applied { Some(&write) } else { held.as_ref() };
            assert_eq!(
                now.map(|e| (e.status, e.output, e.paused.map(|p| p.token))),
                expected_record.map(|e| (
                    e.status,
                    e.output.clone(),
                    e.paused.as_ref().map(|p| p.token.clone())
                )),
                "the record after {when:?} over {name}"
            );
        }
    }
}

/// What `maxPausedRuns` is checked against: a workflow's paused runs, counted up to
/// a bound, never fewer than there are; finished runs and other workflows' are not.
async fn counts_a_workflows_paused_runs_up_to_a_bound(b: Backend) {
    let store = b.store.as_ref();
    let key = hookflow_tests::unique_name("counted");
    for n in 0..3 {
        let mut e = paused(&hookflow::app::ids::new_execution_id(), &format!("t{n}"));
        e.workflow_key = key.clone();
        assert!(store.save_unless_finished(&e).await.unwrap());
    }
    let mut done = execution(
        &hookflow::app::ids::new_execution_id(),
        &key,
        ExecutionStatus::Resolved,
    );
    done.output = json!(1);
    store.save_execution(&done).await.unwrap();
    let other = paused(&hookflow::app::ids::new_execution_id(), "o");
    assert!(store.save_unless_finished(&other).await.unwrap());
    assert_eq!(store.count_paused(&key, 100).await.unwrap(), 3);
    assert_eq!(
        store.count_paused(&key, 2).await.unwrap(),
        2,
        "stops at the bound"
    );
    assert_eq!(store.count_paused("nobody", 10).await.unwrap(), 0);
}

async fn a_pause_is_resumed_by_one_wake_up_only(b: Backend) {
    let store = b.store.as_ref();
    let id = hookflow::app::ids::new_execution_id();
    assert!(
        store
            .save_unless_finished(&paused(&id, "t1"))
            .await
            .unwrap()
    );
    assert!(store.execution(&id).await.unwrap().unwrap().is_paused());
    // A late duplicate of the first delivery cannot roll the pause back.
    let rollback = execution(&id, "k", ExecutionStatus::Started);
    assert!(!store.save_unless_finished(&rollback).await.unwrap());
    // Two wake-ups of the same pause: the first to save wins (here it pauses again).
    let first = paused(&id, "t2");
    assert!(store.save_if_paused(&first, "t1").await.unwrap());
    let mut second = execution(&id, "k", ExecutionStatus::Resolved);
    second.output = json!("duplicate");
    assert!(!store.save_if_paused(&second, "t1").await.unwrap());
    assert_eq!(store.execution(&id).await.unwrap().unwrap(), first);
    // The new pause resumes with its own token, to a finished record.
    let done = execution(&id, "k", ExecutionStatus::Resolved);
    assert!(store.save_if_paused(&done, "t2").await.unwrap());
    assert!(!store.save_if_paused(&first, "t2").await.unwrap());
    assert_eq!(store.execution(&id).await.unwrap().unwrap(), done);
    // A record that never paused is not a pause to resume.
    let other = hookflow::app::ids::new_execution_id();
    assert!(
        !store
            .save_if_paused(&paused(&other, "t3"), "t3")
            .await
            .unwrap()
    );
}

async fn delays_a_run_until_its_time(b: Backend) {
    let queue = b.queue.as_ref();
    let started = std::time::Instant::now();
    queue
        .enqueue_after(&run("later"), Duration::from_secs(2))
        .await
        .unwrap();
    queue.enqueue(&run("now")).await.unwrap();
    let first = queue.receive(10, Duration::from_secs(1)).await.unwrap();
    let ids: Vec<String> = first
        .iter()
        .map(|d| {
            serde_json::from_str::<RunMessage>(&d.body)
                .unwrap()
                .execution_id
        })
        .collect();
    assert_eq!(ids, ["now"], "the delayed run waits");
    queue.ack(&first[0]).await.unwrap();
    let mut later = Vec::new();
    while later.is_empty() && started.elapsed() < Duration::from_secs(10) {
        later = queue.receive(10, Duration::from_secs(1)).await.unwrap();
    }
    assert_eq!(later.len(), 1, "delivered once its time came");
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "not before its time: {:?}",
        started.elapsed()
    );
    let message: RunMessage = serde_json::from_str(&later[0].body).unwrap();
    assert_eq!(message, run("later"));
    queue.ack(&later[0]).await.unwrap();
}

fn run(id: &str) -> RunMessage {
    RunMessage {
        execution_id: id.into(),
        workflow_key: "k".into(),
        workflow_version: 1,
        context: json!({"body": {"id": id}}),
        accepted_at: "2026-11-28T00:00:00.000Z".into(),
        wake: None,
        after: None,
        idempotency_key: None,
        replay_of: None,
        on_failure_of: None,
        copy_id: None,
        context_at: None,
        gather: None,
        flow: None,
        sealed: None,
        sent_once: true,
    }
}

async fn delivers_acks_and_retries(b: Backend) {
    let queue = b.queue.as_ref();
    assert!(
        queue
            .receive(10, Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty()
    );
    queue.enqueue(&run("r1")).await.unwrap();
    let got = queue.receive(10, Duration::from_secs(2)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attempt, 1);
    let message: RunMessage = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(message, run("r1"));

    // Retried: delivered again, one attempt later.
    queue.retry(&got[0], Duration::ZERO).await.unwrap();
    let again = queue.receive(10, Duration::from_secs(3)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 2);
    assert_eq!(again[0].body, got[0].body);

    // Acked: never delivered again.
    queue.ack(&again[0]).await.unwrap();
    assert!(
        queue
            .receive(10, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );
}

/// A run received by a worker that then died (its process, where an embedded
/// queue renews its leases, ended) goes to another worker once its lease runs
/// out, and not before.
async fn a_run_whose_worker_died_comes_back_when_its_lease_runs_out(b: Backend) {
    b.queue.enqueue(&run("orphan")).await.unwrap();
    let dying = Arc::clone(&b.queue);
    let received = std::time::Instant::now();
    // The worker's own runtime: ending it stops everything the worker did.
    let taken = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(dying.receive(10, Duration::from_secs(3)))
    })
    .join()
    .unwrap()
    .unwrap();
    assert_eq!(taken.len(), 1);
    let early = b.other.receive(10, b.lease / 2).await.unwrap();
    assert!(
        early.is_empty(),
        "taken before its lease ran out: {early:?}"
    );
    let mut back = Vec::new();
    while back.is_empty() && received.elapsed() < b.lease + Duration::from_secs(10) {
        back = b.other.receive(10, Duration::from_secs(1)).await.unwrap();
    }
    assert_eq!(back.len(), 1, "never came back");
    assert!(received.elapsed() >= b.lease, "{:?}", received.elapsed());
    assert_eq!(back[0].body, taken[0].body);
    b.other.ack(&back[0]).await.unwrap();
}

/// What `executions show` tells of an accepted run that has no record yet: the
/// queue finds it by its execution id while it waits or runs, until it is settled;
/// a queue that cannot search says so rather than finding nothing.
async fn finds_a_queued_run_by_its_id_until_it_is_settled(b: Backend) {
    let queue = b.queue.as_ref();
    queue.enqueue(&run("waiting")).await.unwrap();
    if !b.peeks {
        let refused = queue.peek("waiting").await;
        assert!(
            matches!(refused, Err(QueueError::Unsupported(_))),
            "{refused:?}"
        );
        return;
    }
    assert_eq!(queue.peek("waiting").await.unwrap(), Some(run("waiting")));
    assert_eq!(queue.peek("unknown").await.unwrap(), None);
    let taken = queue.receive(10, Duration::from_secs(2)).await.unwrap();
    assert_eq!(queue.peek("waiting").await.unwrap(), Some(run("waiting")));
    queue.ack(&taken[0]).await.unwrap();
    assert_eq!(queue.peek("waiting").await.unwrap(), None);
}

fn claim(workflow: &str, id: &str, now: u64) -> Claim {
    Claim {
        workflow_key: workflow.into(),
        key: "evt_1PqRsT".into(),
        execution_id: id.into(),
        expires_at: now + 60,
        lease_until: now + 10,
        answer: None,
        pending: false,
        confirmed_by: None,
    }
}

fn held_by(outcome: ClaimOutcome) -> Claim {
    match outcome {
        ClaimOutcome::Held(holder) => holder,
        ClaimOutcome::Claimed => panic!("claimed a key that is held"),
    }
}

async fn claims_a_key_once_and_returns_its_holder(b: Backend) {
    let store = b.store;
    let now = 1_000;
    assert_eq!(
        store.claim(&claim("w", "a", now), now).await.unwrap(),
        ClaimOutcome::Claimed
    );
    let holder = held_by(store.claim(&claim("w", "b", now), now).await.unwrap());
    assert_eq!((holder.execution_id.as_str(), holder.answer), ("a", None));
    // The same key on another workflow is another claim.
    assert_eq!(
        store.claim(&claim("v", "c", now), now).await.unwrap(),
        ClaimOutcome::Claimed
    );
    // The holder keeps its answer; duplicates then get it, past the lease too.
    let answer = StoredAnswer {
        status: 201,
        headers: vec![("x-order".into(), "9".into())],
        body: vec![0, 1, 255],
    };
    let mut settled = claim("w", "a", now);
    settled.answer = Some(answer.clone());
    store.settle_claim(&settled).await.unwrap();
    // A request that lost its claim cannot settle or release it.
    let mut stranger = claim("w", "z", now);
    stranger.answer = Some(StoredAnswer {
        status: 500,
        headers: vec![],
        body: vec![],
    });
    store.settle_claim(&stranger).await.unwrap();
    store.release_claim(&stranger).await.unwrap();
    let later = now + 30;
    let holder = held_by(store.claim(&claim("w", "d", later), later).await.unwrap());
    assert_eq!(holder.execution_id, "a");
    assert_eq!(holder.answer, Some(answer));
    // Once it expires, the key is free again.
    let expired = now + 60;
    assert_eq!(
        store
            .claim(&claim("w", "e", expired), expired)
            .await
            .unwrap(),
        ClaimOutcome::Claimed
    );
}

async fn an_unanswered_claim_ends_with_its_lease_and_a_released_one_at_once(b: Backend) {
    let store = b.store;
    let now = 2_000;
    assert_eq!(
        store.claim(&claim("w", "a", now), now).await.unwrap(),
        ClaimOutcome::Claimed
    );
    let within = now + 9;
    held_by(store.claim(&claim("w", "b", within), within).await.unwrap());
    // Its run's process is gone: after the lease another request takes over.
    let after = now + 10;
    assert_eq!(
        store.claim(&claim("w", "c", after), after).await.unwrap(),
        ClaimOutcome::Claimed
    );
    store.release_claim(&claim("w", "c", after)).await.unwrap();
    assert_eq!(
        store.claim(&claim("w", "d", after), after).await.unwrap(),
        ClaimOutcome::Claimed
    );
}

async fn concurrent_claims_of_one_key_let_exactly_one_through(b: Backend) {
    let now = 3_000;
    let tries = (0..16).map(|i| {
        let store = Arc::clone(&b.store);
        tokio::spawn(async move { store.claim(&claim("w", &format!("r{i}"), now), now).await })
    });
    let mut claimed = 0;
    for outcome in futures_util::future::join_all(tries).await {
        if outcome.unwrap().unwrap() == ClaimOutcome::Claimed {
            claimed += 1;
        }
    }
    assert_eq!(claimed, 1);
}

fn accepted() -> StoredAnswer {
    StoredAnswer {
        status: 202,
        headers: vec![],
        body: b"queued".to_vec(),
    }
}

async fn a_pending_claim_stands_only_once_its_worker_confirms_it(b: Backend) {
    let store = b.store;
    let now = 4_000;
    let pending = Claim {
        pending: true,
        answer: Some(accepted()),
        ..claim("w", "a", now)
    };
    assert_eq!(
        store.claim(&pending, now).await.unwrap(),
        ClaimOutcome::Claimed
    );
    // Within its lease a duplicate waits, and never gets the kept answer.
    let held = held_by(
        store
            .claim(&claim("w", "b", now + 1), now + 1)
            .await
            .unwrap(),
    );
    assert!(held.pending);
    assert_eq!(held.answer_at(now + 1), None);
    assert_eq!(held.answer_at(now + 30), None);
    // Past it, no worker confirmed: the key stays the first run's, unconfirmed.
    let after = now + 10;
    let held = held_by(store.claim(&claim("w", "c", after), after).await.unwrap());
    assert_eq!(held.execution_id, "a");
    assert!(held.unconfirmed_at(after));
    // One duplicate renews its lease to queue the run again; a second one,
    // which read the same lease, is refused.
    let renewed = Claim {
        lease_until: after + 10,
        ..pending.clone()
    };
    assert!(store.retake_claim(&renewed, now + 10).await.unwrap());
    assert!(!store.retake_claim(&renewed, now + 10).await.unwrap());
    let held = held_by(store.claim(&claim("w", "d", after), after).await.unwrap());
    assert_eq!(
        (held.execution_id.as_str(), held.lease_until),
        ("a", after + 10)
    );
    assert!(held.pending && !held.unconfirmed_at(after));
    // The first copy of the run its worker takes confirms the claim; another
    // copy is dropped; a redelivery of the first runs on.
    let (key, run) = ("evt_1PqRsT", "a");
    let confirm = |copy: &'static str| store.confirm_claim("w", key, run, copy);
    assert_eq!(confirm("copy-2").await.unwrap(), ClaimCheck::Ours);
    assert_eq!(confirm("copy-1").await.unwrap(), ClaimCheck::OtherCopy);
    assert_eq!(confirm("copy-2").await.unwrap(), ClaimCheck::Ours);
    // Confirmed, it is re-queued no more.
    assert!(!store.retake_claim(&renewed, after + 10).await.unwrap());
    let holder = held_by(
        store
            .claim(&claim("w", "e", after + 30), after + 30)
            .await
            .unwrap(),
    );
    assert!(!holder.pending);
    assert_eq!(holder.answer_at(after + 30), Some(&accepted()));
    // Another execution's run is not this claim's.
    assert_eq!(
        store.confirm_claim("w", key, "z", "copy-3").await.unwrap(),
        ClaimCheck::HeldBy("a".into())
    );
    // The one copy of a run is confirmed, and stays its run's.
    let other = Claim {
        key: "evt_other".into(),
        ..pending.clone()
    };
    assert_eq!(
        store.claim(&other, now).await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store
            .confirm_claim("w", "evt_other", "a", "copy-1")
            .await
            .unwrap(),
        ClaimCheck::Ours
    );
    assert_eq!(
        store
            .confirm_claim("w", "evt_other", "a", "copy-1")
            .await
            .unwrap(),
        ClaimCheck::Ours
    );
    assert_eq!(
        store
            .confirm_claim("w", "evt_none", "a", "copy-1")
            .await
            .unwrap(),
        ClaimCheck::Gone
    );
}

async fn a_keyed_accept_never_keeps_a_claim_without_its_run(b: Backend) {
    let (store, queue) = (b.store, b.queue);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let first = Claim {
        answer: Some(accepted()),
        ..claim("k", "a", now)
    };
    let message = RunMessage {
        idempotency_key: Some(first.key.clone()),
        ..run("a")
    };
    match store.claim_run(&first, &message, now).await.unwrap() {
        // One step: the run is queued, and its answer stands at once.
        KeyedAccept::Queued => {
            let holder = match store.claim_run(&claim("k", "b", now), &run("b"), now).await {
                Ok(KeyedAccept::Held(holder)) => holder,
                other => panic!("a duplicate was not held: {other:?}"),
            };
            assert_eq!(holder.execution_id, "a");
            assert_eq!(holder.answer_at(now), Some(&accepted()));
        }
        // Two steps: the claim is pending until the run's worker confirms it.
        KeyedAccept::Claimed => {
            match store.claim(&claim("k", "b", now), now).await.unwrap() {
                ClaimOutcome::Held(holder) => assert!(holder.pending),
                ClaimOutcome::Claimed => panic!("a duplicate took a fresh pending claim"),
            }
            queue.enqueue(&message).await.unwrap();
        }
        KeyedAccept::Held(holder) => panic!("a free key was held by {holder:?}"),
    }
    let delivered = queue.receive(10, Duration::from_secs(5)).await.unwrap();
    assert_eq!(delivered.len(), 1, "the keyed run was not delivered");
    let body: RunMessage = serde_json::from_str(&delivered[0].body).unwrap();
    assert_eq!(body.execution_id, "a");
    assert_eq!(
        store
            .confirm_claim("k", &first.key, "a", "copy-1")
            .await
            .unwrap(),
        ClaimCheck::Ours
    );
    let holder = held_by(store.claim(&claim("k", "c", now), now).await.unwrap());
    assert!(!holder.pending);
}

/// Three failed runs of `rp`, deployed, created a minute ago.
async fn failed_runs(store: &dyn Store) -> Vec<Execution> {
    deploy::deploy(
        store,
        &hookflow::nodes::builtin(),
        definition("rp", None, 1),
    )
    .await
    .unwrap();
    let mut runs = Vec::new();
    for i in 0..3u64 {
        let id = id_created(Duration::from_secs(60 - i));
        let run = execution(&id, "rp", ExecutionStatus::Failed);
        store.save_execution(&run).await.unwrap();
        runs.push(run);
    }
    runs
}

async fn a_replay_is_marked_when_queued_not_when_recorded(b: Backend) {
    let (store, queue) = (b.store.as_ref(), b.queue.as_ref());
    let runs = failed_runs(store).await;
    let filter = ExecutionFilter {
        workflow: Some("rp".into()),
        ..ExecutionFilter::default()
    };
    let chosen = replay::select(store, &filter, 100, false).await.unwrap();
    assert_eq!(chosen.originals.len(), 3);
    for original in &chosen.originals {
        replay::replay(store, queue, original, false, true)
            .await
            .unwrap();
    }
    // Nothing took the replays from the queue: none is recorded, all are marked.
    assert_eq!(
        store.list_executions(Some("rp"), 10).await.unwrap().len(),
        3
    );
    let again = replay::select(store, &filter, 100, false).await.unwrap();
    assert_eq!((again.originals.len(), again.replayed_before), (0, 3));
    // A bulk replay that selected it before the mark was written leaves it.
    let late = replay::replay(store, queue, &runs[0], false, true).await;
    assert!(
        matches!(late, Err(replay::ReplayError::ReplayedMeanwhile(ref id)) if *id == runs[0].id),
        "{late:?}"
    );
    // `--again` and single replays mark over an earlier mark.
    replay::replay(store, queue, &runs[0], false, false)
        .await
        .unwrap();
    let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    assert_eq!(store.replays_marked(&ids).await.unwrap().len(), 3);
    let all = replay::select(store, &filter, 100, true).await.unwrap();
    assert_eq!(all.originals.len(), 3);
    assert_eq!(
        queue
            .receive(10, Duration::from_secs(1))
            .await
            .unwrap()
            .len(),
        4
    );
}

async fn a_replay_mark_is_taken_back_only_by_its_own_replay(b: Backend) {
    let store = b.store.as_ref();
    let runs = failed_runs(store).await;
    let (one, two) = (&runs[0].id, &runs[1].id);
    assert!(store.mark_replay(one, "r1", true).await.unwrap());
    assert!(!store.mark_replay(one, "r2", true).await.unwrap());
    assert!(store.mark_replay(two, "r3", true).await.unwrap());
    // Another replay's mark stays; the replay's own goes.
    store.unmark_replay(one, "r2").await.unwrap();
    let ids = [one.clone(), two.clone(), "unknown".into()];
    let marked = store.replays_marked(&ids).await.unwrap();
    assert_eq!(marked.len(), 2, "{marked:?}");
    store.unmark_replay(one, "r1").await.unwrap();
    let marked = store.replays_marked(&ids).await.unwrap();
    assert_eq!(
        marked.into_iter().collect::<Vec<_>>(),
        std::slice::from_ref(two)
    );
    assert!(store.mark_replay(one, "r4", true).await.unwrap());
    // More ids than one DynamoDB batch takes.
    let many: Vec<String> = (0..250)
        .map(|i| format!("none-{i}"))
        .chain(ids.clone())
        .collect();
    assert_eq!(store.replays_marked(&many).await.unwrap().len(), 2);
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod embedded_adapters {
            $( #[tokio::test] async fn $name() { super::$name(super::embedded().await).await } )*
        }
        mod aws_adapters_on_moto {
            $( #[tokio::test] async fn $name() { super::$name(super::moto().await).await } )*
        }
    };
}

contract!(
    claims_a_key_once_and_returns_its_holder,
    a_pending_claim_stands_only_once_its_worker_confirms_it,
    a_keyed_accept_never_keeps_a_claim_without_its_run,
    an_unanswered_claim_ends_with_its_lease_and_a_released_one_at_once,
    concurrent_claims_of_one_key_let_exactly_one_through,
    deploys_versions_and_finds_hooks,
    refuses_taken_hooks_and_stale_versions,
    records_executions_once_and_lists_newest_first,
    a_finished_record_is_never_overwritten_by_a_late_delivery,
    every_precondition_applies_exactly_where_its_rule_says,
    a_run_is_begun_once_and_later_begins_see_its_record,
    lists_all_executions_newest_first,
    finds_executions_by_workflow_status_and_time,
    prunes_finished_executions_and_never_a_live_one,
    delivers_acks_and_retries,
    a_run_whose_worker_died_comes_back_when_its_lease_runs_out,
    finds_a_queued_run_by_its_id_until_it_is_settled,
    a_pause_is_resumed_by_one_wake_up_only,
    counts_a_workflows_paused_runs_up_to_a_bound,
    delays_a_run_until_its_time,
    a_replay_is_marked_when_queued_not_when_recorded,
    a_replay_mark_is_taken_back_only_by_its_own_replay,
);
