//! `hookflow dlq list|redrive`: the runs in a stack's dead-letter queue, and moving
//! them back to its run queue once the cause is fixed.

use std::process::ExitCode;

use hookflow::ports::aws::{self, dlq};
use serde_json::json;

#[derive(clap::Subcommand)]
pub enum DlqCommand {
    /// What is in the dead-letter queue: workflow, execution id, receive count, age.
    List {
        /// The dead-letter queue (the stack's DeadLetterQueueUrl output).
        #[arg(long, env = "HOOKFLOW_DLQ_URL")]
        dlq_url: String,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        max: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Moves messages back to the run queue, each deleted from the dead-letter
    /// queue only after it was sent.
    Redrive {
        #[arg(long, env = "HOOKFLOW_DLQ_URL")]
        dlq_url: String,
        /// The run queue (the stack's RunQueueUrl output).
        #[arg(long, env = "HOOKFLOW_QUEUE_URL")]
        queue_url: String,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        max: usize,
    },
}

pub fn run(command: DlqCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let config = aws::load_config().await;
        let client = aws::client(&config);
        match command {
            DlqCommand::List { dlq_url, max, json } => {
                let runs = dlq::list(&client, &dlq_url, max).await?;
                if json {
                    let rows: Vec<_> = runs
                        .iter()
                        .map(|r| {
                            json!({
                                "messageId": r.message_id,
                                "workflow": r.workflow_key,
                                "executionId": r.execution_id,
                                "wake": r.wake,
                                "receiveCount": r.receive_count,
                                "ageSeconds": r.age.as_secs(),
                            })
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    print_list(&runs);
                }
                Ok(ExitCode::SUCCESS)
            }
            DlqCommand::Redrive {
                dlq_url,
                queue_url,
                max,
            } => {
                let done = dlq::redrive(&client, &dlq_url, &queue_url, max).await?;
                println!(
                    "moved {} message(s) back to the run queue{}",
                    done.moved,
                    if done.failed > 0 {
                        format!(
                            "; {} could not be moved and stay in the dead-letter queue",
                            done.failed
                        )
                    } else {
                        String::new()
                    }
                );
                Ok(if done.failed > 0 {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                })
            }
        }
    })
}

fn print_list(runs: &[dlq::DeadRun]) {
    if runs.is_empty() {
        println!("the dead-letter queue is empty");
        return;
    }
    println!(
        "{:<36}  {:<24}  {:>8}  {:>10}  MESSAGE",
        "EXECUTION", "WORKFLOW", "RECEIVES", "AGE"
    );
    for r in runs {
        let workflow = match (&r.workflow_key, r.wake) {
            (_, true) => "(wake-up)".to_string(),
            (Some(key), false) => key.clone(),
            (None, false) => "(not a run)".to_string(),
        };
        println!(
            "{:<36}  {:<24}  {:>8}  {:>10}  {}",
            r.execution_id.as_deref().unwrap_or("-"),
            workflow,
            r.receive_count,
            age(r.age.as_secs()),
            r.message_id,
        );
    }
}

/// `42s`, `7m`, `3h`, `2d`.
fn age(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}
