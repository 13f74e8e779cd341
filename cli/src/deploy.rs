//! `hookflow deploy --table NAME FILE_OR_DIR...`: validate and write definitions to the
//! DynamoDB table of a deployed stack (a new version only where one changed).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use hookflow::app::deploy::{self, webhook_path};
use hookflow::ports::aws::{self, DynamoStore};

#[derive(clap::Args)]
pub struct DeployArgs {
    /// The stack's DynamoDB table (the `TableName` output of the SAM stack).
    #[arg(long, env = "HOOKFLOW_TABLE")]
    table: String,
    /// Definition files, or directories of *.json files.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

pub fn run(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let registry = hookflow::nodes::builtin();
    let definitions = match deploy::load_all(&args.paths, &registry) {
        Ok(defs) => defs,
        Err(problems) => {
            for p in problems {
                print!("{p}");
            }
            eprintln!("error: nothing was deployed; fix the definitions above first");
            return Ok(ExitCode::FAILURE);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let config = aws::load_config().await;
        let store = DynamoStore::new(aws::client(&config), &args.table, None);
        for definition in definitions {
            let key = definition.key.clone();
            let done = deploy::deploy(&store, &registry, definition)
                .await
                .with_context(|| format!("cannot deploy {key:?} to table {}", args.table))?;
            let w = &done.workflow;
            println!(
                "{} v{} {}  POST {}",
                w.key,
                w.version,
                if done.changed {
                    "deployed"
                } else {
                    "unchanged"
                },
                webhook_path(&w.hook_id)
            );
            for warning in hookflow::validate::warnings(&w.definition) {
                eprintln!("{} v{}: warning: {warning}", w.key, w.version);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `hookflow init-local-aws`: creates the table, queue and claim-check bucket on a
/// local AWS-compatible endpoint (moto, LocalStack), for running the Lambdas or
/// `hookflow deploy` locally.
#[derive(clap::Args)]
pub struct InitLocalArgs {
    #[arg(long, default_value = "hookflow")]
    table: String,
    #[arg(long, default_value = "hookflow-runs")]
    queue: String,
    /// The FIFO queue of runs on a lane (options.lane); `.fifo` is added.
    #[arg(long, default_value = "hookflow-lanes")]
    lane_queue: String,
    #[arg(long, default_value = "hookflow-objects")]
    bucket: String,
    /// The Secrets Manager secret runs that redact are sealed with (made with a
    /// random key when missing).
    #[arg(long, default_value = "hookflow-sealing-key")]
    sealing_secret: String,
}

pub fn init_local(args: InitLocalArgs) -> anyhow::Result<ExitCode> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    anyhow::ensure!(
        !endpoint.is_empty(),
        "AWS_ENDPOINT_URL is not set; on AWS the SAM template creates the table and queue"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let config = aws::load_config().await;
        let client = aws::client(&config);
        aws::create_table(&client, &args.table).await?;
        let url = aws::create_queue(&client, &args.queue).await?;
        let lanes = format!("{}.fifo", args.lane_queue.trim_end_matches(".fifo"));
        let lane_url = aws::create_lane_queue(&client, &lanes).await?;
        aws::create_bucket(&client, &args.bucket).await?;
        let sealing = aws::create_secret(&client, &args.sealing_secret).await?;
        println!("HOOKFLOW_TABLE={}", args.table);
        println!("HOOKFLOW_QUEUE_URL={url}");
        println!("HOOKFLOW_LANE_QUEUE_URL={lane_url}");
        println!("HOOKFLOW_BUCKET={}", args.bucket);
        println!("HOOKFLOW_SEALING_SECRET={sealing}");
        Ok(ExitCode::SUCCESS)
    })
}
