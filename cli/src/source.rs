//! Where the CLI reads and writes: the embedded store of a `hookflow serve` data
//! directory, or a deployed stack's DynamoDB table.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use hookflow::ports::aws::{self, DEFAULT_MAX_MESSAGE_BYTES, DynamoStore, Objects, SqsQueue};
use hookflow::ports::embedded::{Database, EmbeddedQueue, EmbeddedStore};
use hookflow::ports::{Queue, Store};

/// Which store a command reads and writes.
#[derive(clap::Args)]
pub struct Source {
    /// The embedded store's directory (as given to `hookflow serve --data`).
    #[arg(long, default_value = ".hookflow")]
    pub data: PathBuf,
    /// A deployed stack's DynamoDB table instead of the embedded store.
    #[arg(long, env = "HOOKFLOW_TABLE")]
    pub table: Option<String>,
    /// With --table: the stack's claim-check bucket (its ClaimCheckBucketName
    /// output), where records and contexts too large for DynamoDB and SQS are.
    #[arg(long, env = "HOOKFLOW_BUCKET")]
    pub bucket: Option<String>,
}

impl Source {
    /// The claim-check bucket's objects, through `client`, when one is named.
    fn objects(&self, client: &Arc<aws::SignedClient>) -> Option<Objects> {
        let bucket = self.bucket.as_deref()?;
        Some(Objects::new(Arc::clone(client), bucket))
    }
}

/// The store, and the embedded database when that is where it lives (its queue
/// tells of accepted runs not started yet; SQS cannot be searched by id).
pub async fn open(source: &Source) -> anyhow::Result<(Arc<dyn Store>, Option<Arc<Database>>)> {
    if let Some(table) = &source.table {
        let client = aws::client(&aws::load_config().await);
        let mut store = DynamoStore::new(Arc::clone(&client), table, None);
        if let Some(objects) = source.objects(&client) {
            store = store.with_objects(objects);
        }
        return Ok((Arc::new(store), None));
    }
    let data = source.data.as_path();
    anyhow::ensure!(
        data.join("hookflow.db").exists(),
        "no hookflow data in {} (start `hookflow serve --data {}` first)",
        data.display(),
        data.display()
    );
    let db = Database::open(data)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("cannot open {}", data.display()))?;
    Ok((Arc::new(EmbeddedStore::new(Arc::clone(&db))), Some(db)))
}

/// The queue runs go to: the embedded one beside the store (a `hookflow serve` on
/// that data picks new rows up within a second), or the stack's SQS queue.
pub async fn open_queue(
    source: &Source,
    db: Option<Arc<Database>>,
    queue_url: Option<&str>,
) -> anyhow::Result<Arc<dyn Queue>> {
    if let Some(db) = db {
        return Ok(Arc::new(EmbeddedQueue::open(db).await?));
    }
    let Some(url) = queue_url else {
        anyhow::bail!(
            "with --table {}, name the run queue with --queue-url (or HOOKFLOW_QUEUE_URL): the stack's RunQueueUrl output",
            source.table.as_deref().unwrap_or_default()
        );
    };
    let client = aws::client(&aws::load_config().await);
    let mut queue = SqsQueue::new(Arc::clone(&client), url);
    if let Some(objects) = source.objects(&client) {
        // Whatever the queue's own limit, messages of SQS's default size pass.
        queue = queue.with_objects(objects, DEFAULT_MAX_MESSAGE_BYTES);
    }
    Ok(Arc::new(queue))
}
