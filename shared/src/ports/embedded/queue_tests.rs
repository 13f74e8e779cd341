use super::*;
use serde_json::json;
use std::time::Instant;

fn run(n: usize) -> RunMessage {
    RunMessage {
        context: json!({"n": n}),
        wake: None,
        ..RunMessage::wake(&format!("run-{n:06}"), "")
    }
}

async fn open(dir: &tempfile::TempDir) -> EmbeddedQueue {
    EmbeddedQueue::open(Database::open(dir.path()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_backlog_is_delivered_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(&dir).await;
    for n in 0..100 {
        queue.enqueue(&run(n)).await.unwrap();
    }
    let mut seen = HashSet::new();
    loop {
        let batch = queue.receive(5, Duration::from_millis(200)).await.unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 5);
        for d in batch {
            assert!(seen.insert(d.receipt.clone()), "{} twice", d.receipt);
            queue.ack(&d).await.unwrap();
        }
    }
    assert_eq!(seen.len(), 100);
    assert_eq!(queue.depth().await.unwrap(), 0);
}

#[tokio::test]
async fn an_outage_wait_is_no_attempt_and_a_retry_is() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(&dir).await;
    queue.enqueue(&run(1)).await.unwrap();
    let first = queue.receive(1, Duration::from_secs(1)).await.unwrap();
    assert_eq!((first[0].attempt, first[0].waits), (1, 0));
    queue
        .back_off(&first[0], Duration::from_millis(20))
        .await
        .unwrap();
    let waited = queue.receive(1, Duration::from_secs(2)).await.unwrap();
    assert_eq!((waited[0].attempt, waited[0].waits), (1, 1));
    assert_eq!(waited[0].tries(), 1);
    queue
        .retry(&waited[0], Duration::from_millis(20))
        .await
        .unwrap();
    let retried = queue.receive(1, Duration::from_secs(2)).await.unwrap();
    assert_eq!(retried[0].attempt, 2);
    assert_eq!(retried[0].tries(), 2);
    drop(queue);
    // The waits are not written; the retry is, and so is the delivery the
    // restart cut off (its receiver went away holding it, as a died one does).
    let queue = open(&dir).await;
    let again = queue.receive(1, Duration::from_secs(1)).await.unwrap();
    assert_eq!((again[0].attempt, again[0].waits), (3, 0));
}

#[tokio::test]
async fn unsettled_runs_come_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let queue = open(&dir).await;
        queue.enqueue(&run(1)).await.unwrap();
        queue.enqueue(&run(2)).await.unwrap();
        let got = queue.receive(1, Duration::from_secs(1)).await.unwrap();
        queue.ack(&got[0]).await.unwrap();
        // Runs 2 and 3 are received and never settled.
        queue.enqueue(&run(3)).await.unwrap();
        let _taken = queue.receive(10, Duration::from_secs(1)).await.unwrap();
    }
    let queue = open(&dir).await;
    let again: Vec<(String, u32)> = queue
        .receive(10, Duration::from_secs(1))
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.receipt, d.attempt))
        .collect();
    // Each counts as delivered once already.
    assert_eq!(again, [("run-000002".into(), 2), ("run-000003".into(), 2)]);
}

/// Two workers on one file, as two processes would be: a run stays with the one
/// that renews its lease, however long it runs, and comes back to the other once
/// its worker died and its lease ran out.
#[tokio::test]
async fn a_held_run_stays_held_and_comes_back_when_its_worker_dies() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let lease = Duration::from_millis(300);
    let first = EmbeddedQueue::with_lease(Arc::clone(&db), lease)
        .await
        .unwrap();
    let other = EmbeddedQueue::with_lease(db, lease).await.unwrap();
    first.enqueue(&run(1)).await.unwrap();
    let taken = first.receive(1, Duration::from_secs(1)).await.unwrap();
    let leased = Instant::now();
    assert_eq!(taken.len(), 1);
    // Four leases long: renewed all along.
    let meanwhile = other.receive(1, lease * 4).await.unwrap();
    assert!(
        meanwhile.is_empty(),
        "taken from a live worker: {meanwhile:?}"
    );
    // The worker dies with it: no renewal, nothing settled or given back.
    first.timer.lock().unwrap().take().unwrap().abort();
    std::mem::forget(first);
    let died = Instant::now();
    let back = other.receive(1, Duration::from_secs(3)).await.unwrap();
    assert_eq!(back.len(), 1, "never came back");
    // Its first receiver died with it: this is its second delivery, as SQS counts.
    assert_eq!(
        (back[0].receipt.as_str(), back[0].attempt),
        ("run-000001", 2)
    );
    assert!(
        died.elapsed() <= lease + Duration::from_secs(1),
        "{:?}",
        died.elapsed()
    );
    assert!(leased.elapsed() >= lease * 4);
    other.ack(&back[0]).await.unwrap();
    assert_eq!(other.depth().await.unwrap(), 0);
}

/// A data directory from before the lease table: its queued runs and wake-ups are
/// delivered as they were due.
#[tokio::test]
async fn a_file_from_before_the_lease_table_keeps_its_runs() {
    let dir = tempfile::tempdir().unwrap();
    let wake = RunMessage::wake("P", "later");
    {
        let conn = Connection::open(dir.path().join("hookflow.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE queue (id TEXT PRIMARY KEY, body TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE delayed (id TEXT PRIMARY KEY, body TEXT NOT NULL, available_at INTEGER NOT NULL);",
        )
        .unwrap();
        let body = |m: &RunMessage| serde_json::to_string(m).unwrap();
        conn.execute(
            "INSERT INTO queue (id, body, attempts) VALUES ('run-000001', ?1, 1)",
            [body(&run(1))],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO delayed VALUES ('run-000002', ?1, 0), ('P/wake/x', ?2, ?3)",
            params![body(&run(2)), body(&wake), now_ms() + 60_000],
        )
        .unwrap();
    }
    let queue = open(&dir).await;
    let got = queue.receive(10, Duration::from_secs(1)).await.unwrap();
    let got: Vec<(&str, u32)> = got
        .iter()
        .map(|d| (d.receipt.as_str(), d.attempt))
        .collect();
    assert_eq!(got, [("run-000001", 2), ("run-000002", 1)]);
    assert_eq!(queue.delayed().await.unwrap(), 1);
}

/// The CPU time of this thread, where a current-thread test runtime runs the timer.
fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given, nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// A queue with nothing to do waits: its timer wakes a few times a second, it
/// does not spin (it did once nothing had been held for a renewal's time: 50 ms of
/// CPU in this second, against 5).
#[tokio::test]
async fn an_idle_queue_takes_no_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let queue = EmbeddedQueue::with_lease(db, Duration::from_millis(300))
        .await
        .unwrap();
    queue.enqueue(&run(1)).await.unwrap();
    let taken = queue.receive(1, Duration::from_secs(1)).await.unwrap();
    queue.ack(&taken[0]).await.unwrap();
    let before = thread_cpu();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let spent = thread_cpu() - before;
    assert!(
        spent < Duration::from_millis(20),
        "{spent:?} of CPU in 1 s idle"
    );
}

fn laned(n: usize, lane: &str, lane_concurrency: u32, concurrency: Option<u32>) -> RunMessage {
    RunMessage {
        workflow_key: "orders".into(),
        flow: Some(FlowTicket {
            lane: Some(lane.into()),
            lane_concurrency,
            concurrency,
        }),
        ..run(n)
    }
}

fn numbers(batch: &[Delivery]) -> Vec<u64> {
    let mut out: Vec<u64> = batch
        .iter()
        .map(|d| {
            let run: RunMessage = serde_json::from_str(&d.body).unwrap();
            run.context["n"].as_u64().unwrap()
        })
        .collect();
    out.sort_unstable();
    out
}

#[tokio::test]
async fn a_lane_hands_out_its_runs_in_order_within_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(&dir).await;
    // Queued out of id order: the lane's order is the order they were queued.
    for (n, lane) in [(5, "a"), (3, "a"), (9, "b"), (1, "a"), (7, "b"), (2, "c")] {
        let limit = if lane == "b" { 2 } else { 1 };
        queue.enqueue(&laned(n, lane, limit, None)).await.unwrap();
    }
    let wait = Duration::from_millis(50);
    let first = queue.receive(10, wait).await.unwrap();
    // One per lane a receive: a's first, b's first, c's.
    assert_eq!(numbers(&first), [2, 5, 9]);
    let second = queue.receive(10, wait).await.unwrap();
    // a is at its limit; b takes its second.
    assert_eq!(numbers(&second), [7]);
    assert!(queue.receive(10, wait).await.unwrap().is_empty());
    // a's first put back (an outage): it still comes before a's second.
    let a5 = first.iter().find(|d| d.body.contains("\"n\":5")).unwrap();
    queue.back_off(a5, Duration::from_millis(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = queue.receive(10, wait).await.unwrap();
    assert_eq!(numbers(&again), [5]);
    queue.ack(&again[0]).await.unwrap();
    assert_eq!(numbers(&queue.receive(10, wait).await.unwrap()), [3]);
    assert_eq!(queue.lane_backlog().await.unwrap(), [("orders".into(), 1)]);
}

#[tokio::test]
async fn a_workflow_runs_at_most_its_concurrency_over_all_lanes() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(&dir).await;
    for n in 0..6 {
        let lane = format!("lane-{n}");
        queue.enqueue(&laned(n, &lane, 1, Some(2))).await.unwrap();
    }
    let wait = Duration::from_millis(50);
    let first = queue.receive(10, wait).await.unwrap();
    assert_eq!(first.len(), 2);
    assert!(queue.receive(10, wait).await.unwrap().is_empty());
    queue.ack(&first[0]).await.unwrap();
    assert_eq!(queue.receive(10, wait).await.unwrap().len(), 1);
    // A lease that ran out (its process died) frees its place.
    let dir = tempfile::tempdir().unwrap();
    let short = EmbeddedQueue::with_lease(
        Database::open(dir.path()).unwrap(),
        Duration::from_millis(30),
    )
    .await
    .unwrap();
    short.enqueue(&laned(1, "x", 1, None)).await.unwrap();
    short.enqueue(&laned(2, "x", 1, None)).await.unwrap();
    let held = short.receive(10, wait).await.unwrap();
    assert_eq!(numbers(&held), [1]);
    // Forgotten, as a dead process would: renewed no more.
    short.shared.holding().held.clear();
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(numbers(&short.receive(10, wait).await.unwrap()), [1]);
}
