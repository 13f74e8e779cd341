//! The whole app in this process on the embedded store: for tests that drive the
//! webhook service, the worker and subflows one call at a time.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use hookflow::app::deploy;
use hookflow::model::Job;
use hookflow::ports::Queue;
use hookflow::ports::embedded::{Database, EmbeddedQueue, EmbeddedStore};
use hookflow::wiring::{App, Settings};
use serde_json::Value;

/// The app on a fresh embedded store in `dir`, on `queue` (the embedded queue when
/// `None`), with `workflows` deployed.
pub async fn app(
    dir: &Path,
    workflows: &[Value],
    settings: &Settings,
    queue: Option<Arc<dyn Queue>>,
) -> App {
    let db = Database::open(dir).expect("database");
    let store = Arc::new(EmbeddedStore::new(Arc::clone(&db)));
    let queue = match queue {
        Some(q) => q,
        None => Arc::new(EmbeddedQueue::open(db).await.expect("queue")),
    };
    let app = App::new(store, queue, settings);
    for w in workflows {
        let def = hookflow::validate::validate(w, &app.node_types).expect("valid");
        deploy::deploy(app.store.as_ref(), &app.node_types, def)
            .await
            .expect("deploy");
    }
    app
}

/// A JSON POST to a hook, as the webhook service sees it.
pub fn post(path_and_query: &str, body: &str) -> http::Request<Bytes> {
    http::Request::builder()
        .method("POST")
        .uri(path_and_query)
        .header("content-type", "application/json")
        .body(Bytes::from(body.to_string()))
        .expect("request")
}

/// POSTs `body` to a hook and returns the status and the JSON answer (null when
/// the answer is not JSON).
pub async fn post_json(app: &App, hook: &str, body: &Value) -> (u16, Value) {
    let request = post(&format!("/api/webhook:trigger/{hook}"), &body.to_string());
    let response = app.webhook.handle(request).await;
    (
        response.status().as_u16(),
        serde_json::from_slice(response.body()).unwrap_or(Value::Null),
    )
}

/// `(node key, job status)` of each job, in order.
pub fn trail(jobs: &[Job]) -> Vec<(String, &'static str)> {
    jobs.iter()
        .map(|j| (j.node_key.clone(), j.status.as_str()))
        .collect()
}
