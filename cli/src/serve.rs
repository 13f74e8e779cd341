//! `hookflow serve`: the webhook endpoint on localhost with an embedded durable store
//! and an in-process worker.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hookflow::app::deploy::{self, webhook_path};
use hookflow::app::{retention, worker};
use hookflow::model::SecretRef;
use hookflow::nodes::NodeSettings;
use hookflow::nodes::request::guard::NetworkPolicy;
use hookflow::ports::aws::{self, DynamoStore, SqsQueue};
use hookflow::ports::embedded::{Database, EmbeddedQueue, EmbeddedStore};
use hookflow::ports::{Queue, Store, Telemetry};
use hookflow::webhook::MAX_BODY_CEILING;
use hookflow::wiring::{App, SealingSource, Settings};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::http_server::{self, ConnectionFlags, Limits};
use crate::metrics::Metrics;
use crate::ui::Mounted;
use hookflow::view::Viewer;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// A directory of workflow definitions (*.json); each is deployed as a new
    /// version when it changed.
    #[arg(long)]
    workflows: Option<PathBuf>,
    /// Where the embedded store keeps workflows, executions and queued runs.
    #[arg(long, default_value = ".hookflow")]
    data: PathBuf,
    /// With AWS_ENDPOINT_URL set: the DynamoDB table to use (created when missing).
    #[arg(long, env = "HOOKFLOW_TABLE", default_value = "hookflow")]
    table: String,
    /// With AWS_ENDPOINT_URL set: the SQS queue name to use (created when missing).
    #[arg(long, default_value = "hookflow-runs")]
    queue: String,
    /// With AWS_ENDPOINT_URL set: the S3 bucket records and contexts too large for
    /// DynamoDB and SQS go to (created when missing); without it they are trimmed.
    #[arg(long, env = "HOOKFLOW_BUCKET")]
    bucket: Option<String>,
    /// The Secrets Manager secret runs of workflows that redact are sealed with
    /// (`trigger.redact`); without it, a key kept in the data directory
    /// (`sealing.key`, made on first start) on the embedded store.
    #[arg(long, env = "HOOKFLOW_SEALING_SECRET")]
    sealing_secret: Option<String>,
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: String,
    /// Environment variables workflows may read as `$env.NAME` (comma-separated).
    #[arg(
        long = "expose-env",
        env = "HOOKFLOW_EXPOSED_ENV",
        value_delimiter = ','
    )]
    expose_env: Vec<String>,
    /// The largest body any hook may take, in bytes: each takes its
    /// `trigger.request.maxBodyBytes` (default 1 MiB) up to this.
    #[arg(long, default_value_t = MAX_BODY_CEILING)]
    max_body: usize,
    /// Let HTTP request nodes reach loopback addresses (local services in development).
    #[arg(long)]
    allow_loopback_requests: bool,
    /// Let HTTP request nodes reach private network ranges (10/8, 172.16/12, 192.168/16, ...).
    /// Cloud metadata and link-local addresses are refused always.
    #[arg(long)]
    allow_private_requests: bool,
    /// Async runs executed at once; 0 accepts and queues runs without running them
    /// (they run at the next start with workers).
    #[arg(long, default_value_t = 16)]
    workers: usize,
    #[command(flatten)]
    connections: ConnectionFlags,
    /// Memory for request bodies being read, over all requests, in MiB; past it a
    /// request gets 503 with Retry-After.
    #[arg(long, default_value_t = Limits::default().max_body_memory >> 20)]
    max_body_memory_mb: usize,
    /// Seconds a request may take to send its body (answered 408 past it).
    #[arg(long, default_value_t = Limits::default().body_timeout.as_secs())]
    body_timeout: u64,
    /// Days finished executions are kept (pruned in the background every hour);
    /// 0 keeps everything. Running and paused executions are never pruned.
    #[arg(long, env = "HOOKFLOW_RETENTION_DAYS", default_value_t = 30)]
    retention_days: u64,
    /// Answer `GET /metrics` to any caller, not only to loopback ones: its labels
    /// name hook ids, the secret part of the webhook URLs.
    #[arg(long)]
    metrics_public: bool,
    /// Serve no viewer at `/ui`.
    #[arg(long)]
    no_ui: bool,
    /// Answer `/ui` to any caller under any host name, not only to loopback ones:
    /// its pages show trigger contexts, results and webhook URLs.
    #[arg(long)]
    ui_public: bool,
}

impl ServeArgs {
    fn retention(&self) -> Option<Duration> {
        (self.retention_days > 0)
            .then(|| Duration::from_secs(self.retention_days.saturating_mul(86_400)))
    }

    fn limits(&self) -> Limits {
        Limits {
            max_body_memory: self.max_body_memory_mb.saturating_mul(1 << 20),
            body_timeout: Duration::from_secs(self.body_timeout.max(1)),
            ..self.connections.limits()
        }
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "hookflow=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    hookflow::guard::install_panic_hook();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args))
}

/// The runtime async runs work on, apart from the one that answers requests, with
/// as many threads as the machine has cores.
fn runs_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .thread_name("hookflow-runs")
        .enable_all()
        .build()
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let registry = hookflow::nodes::builtin();
    let definitions = match &args.workflows {
        Some(dir) => match deploy::load_all(std::slice::from_ref(dir), &registry) {
            Ok(defs) => defs,
            Err(problems) => {
                for p in problems {
                    eprint!("{p}");
                }
                eprintln!("error: fix the workflow definitions above, then start again");
                return Ok(ExitCode::FAILURE);
            }
        },
        None => Vec::new(),
    };

    let backend = open_backend(&args).await?;
    let sealing = match &args.sealing_secret {
        Some(secret) => SealingSource::Secret(SecretRef::SecretsManager {
            secrets_manager: secret.clone(),
            key: None,
        }),
        None if backend.embedded => SealingSource::Key(
            hookflow::ports::embedded::sealing_key(&args.data)
                .with_context(|| format!("cannot keep a sealing key in {}", args.data.display()))?
                .into(),
        ),
        None => SealingSource::None,
    };
    let settings = Settings {
        sealing,
        exposed_env: args.expose_env.clone(),
        body_ceiling: args.max_body,
        nodes: NodeSettings {
            network: NetworkPolicy {
                allow_loopback: args.allow_loopback_requests,
                allow_private: args.allow_private_requests,
            },
            ..NodeSettings::default()
        },
        ..Settings::default()
    };
    let metrics = Arc::new(Metrics::new(
        backend.embedded_queue.clone(),
        args.metrics_public,
    ));
    let telemetry: Arc<dyn Telemetry> = metrics.clone();
    let app = App::with_telemetry(backend.store, backend.queue, &settings, telemetry);

    let mut deployed = Vec::new();
    for definition in definitions {
        let key = definition.key.clone();
        let result = deploy::deploy(app.store.as_ref(), &app.node_types, definition)
            .await
            .with_context(|| format!("cannot deploy {key:?}"))?;
        deployed.push(result);
    }

    let listener = TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("hookflow listening on {base} ({})", backend.description);
    let viewer = (!args.no_ui).then(|| {
        Arc::new(Mounted {
            viewer: Viewer::new(
                Arc::clone(&app.store),
                Arc::clone(&app.node_types),
                base.clone(),
            ),
            public: args.ui_public,
        })
    });
    if viewer.is_some() {
        println!("  viewer: {base}/ui");
    }
    for d in &deployed {
        let w = &d.workflow;
        println!(
            "  POST {base}{}  {} v{}{} ({}{})",
            webhook_path(&w.hook_id),
            w.key,
            w.version,
            if d.changed { " deployed" } else { "" },
            if w.definition.sync { "sync" } else { "async" },
            if w.definition.enabled {
                ""
            } else {
                ", disabled"
            },
        );
    }
    if backend.waiting > 0 {
        let waiting = backend.waiting;
        println!("  resuming {waiting} queued run(s) from the last start");
    }
    if backend.delayed > 0 {
        let delayed = backend.delayed;
        println!("  {delayed} paused execution(s) wait for a delay");
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    // Async runs work on threads of their own: a run's CPU-heavy steps (rendering
    // a large context, writing its record) never hold a thread that answers
    // requests, so queued work cannot starve the hooks (the OS shares the cores).
    let runs_runtime = if args.workers > 0 {
        Some(runs_runtime().context("cannot start the runtime for async runs")?)
    } else {
        None
    };
    let worker_loop = runs_runtime.as_ref().map(|runtime| {
        runtime.spawn(worker::run_queue(
            Arc::clone(&app.worker),
            Arc::clone(&app.queue),
            args.workers,
            stop_rx.clone(),
            Duration::from_secs(10),
        ))
    });
    // DynamoDB keeps its own retention (TTL on each finished record).
    let retention = match (args.retention(), backend.embedded) {
        (Some(keep), true) => Some(tokio::spawn(retention::keep_for(
            Arc::clone(&app.store),
            keep,
            stop_rx.clone(),
        ))),
        _ => None,
    };
    if worker_loop.is_none() {
        println!("  workers: 0 (async runs are queued, not run, until a start with workers)");
    }
    http_server::serve(
        listener,
        Arc::clone(&app.webhook),
        Some(metrics),
        viewer,
        args.limits(),
        shutdown_signal(),
        Duration::from_secs(30),
    )
    .await;
    let _ = stop_tx.send(true);
    if let Some(worker_loop) = worker_loop {
        let _ = worker_loop.await;
    }
    if let Some(runtime) = runs_runtime {
        // Its loop has ended: whatever is left (idle pooled connections) goes.
        runtime.shutdown_background();
    }
    if let Some(retention) = retention {
        let _ = retention.await;
    }
    println!("hookflow stopped; queued runs stay queued for the next start");
    Ok(ExitCode::SUCCESS)
}

/// Where workflows, executions and queued runs live.
struct Backend {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    /// Runs left queued by an earlier process, and wake-ups not due yet (embedded only).
    waiting: usize,
    delayed: usize,
    description: String,
    embedded: bool,
    /// The embedded queue, whose depth `/metrics` reads.
    embedded_queue: Option<Arc<EmbeddedQueue>>,
}

/// The embedded store, or, when `AWS_ENDPOINT_URL` points at an AWS-compatible
/// endpoint (moto, LocalStack), DynamoDB and SQS there (created when missing).
async fn open_backend(args: &ServeArgs) -> anyhow::Result<Backend> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    if endpoint.is_empty() {
        let db = Database::open(&args.data).map_err(anyhow::Error::msg)?;
        let store = Arc::new(EmbeddedStore::new(Arc::clone(&db)));
        let queue = Arc::new(EmbeddedQueue::open(db).await?);
        let waiting = queue.depth().await?;
        let delayed = queue.delayed().await?;
        return Ok(Backend {
            store,
            queue: queue.clone(),
            embedded_queue: Some(queue),
            waiting,
            delayed,
            description: format!("data in {}", args.data.display()),
            embedded: true,
        });
    }
    let config = aws::load_config().await;
    let client = aws::client(&config);
    aws::create_table(&client, &args.table)
        .await
        .with_context(|| format!("cannot prepare table {} at {endpoint}", args.table))?;
    let queue_url = aws::create_queue(&client, &args.queue)
        .await
        .with_context(|| format!("cannot prepare queue {} at {endpoint}", args.queue))?;
    let mut store = DynamoStore::new(Arc::clone(&client), &args.table, args.retention());
    let mut queue = SqsQueue::new(Arc::clone(&client), queue_url);
    if let Some(bucket) = &args.bucket {
        aws::create_bucket(&client, bucket)
            .await
            .with_context(|| format!("cannot prepare bucket {bucket} at {endpoint}"))?;
        let objects = aws::Objects::new(client, bucket);
        store = store.with_objects(objects.clone());
        queue = queue.with_objects(objects, aws::DEFAULT_MAX_MESSAGE_BYTES);
    }
    Ok(Backend {
        store: Arc::new(store),
        queue: Arc::new(queue),
        waiting: 0,
        delayed: 0,
        description: format!(
            "DynamoDB table {} and SQS queue {} at {endpoint}",
            args.table, args.queue
        ),
        embedded: false,
        embedded_queue: None,
    })
}

/// Ctrl-C, or SIGTERM from a process manager.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
