//! `hookflow executions list|show|prune`: read and prune recorded executions.

use std::process::ExitCode;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use hookflow::app::replay::{self, ReplayError};
use hookflow::app::retention;
use hookflow::model::{Execution, ExecutionStatus, RunMessage, Wait};
use hookflow::ports::embedded::EmbeddedQueue;
use hookflow::ports::{ExecutionFilter, Queue};
use serde_json::Value;

use crate::source::{Source, open, open_queue};

#[derive(clap::Subcommand)]
pub enum ExecutionsCommand {
    /// Executions, newest first.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON (an array of execution records, jobs included).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        source: Source,
    },
    /// Runs an execution again with the same trigger context, as a new async
    /// execution (`replayOf` names the original); or every execution the filters
    /// select, oldest first.
    Replay {
        /// The execution to replay; without it, the filters select them.
        id: Option<String>,
        #[command(flatten)]
        filter: FilterArgs,
        /// Run on the version that ran the original, not the current one.
        #[arg(long)]
        same_version: bool,
        /// At most this many (with filters), oldest first.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// With filters: replay executions replayed before as well.
        #[arg(long)]
        again: bool,
        /// With --table: the stack's run queue (its RunQueueUrl output).
        #[arg(long, env = "HOOKFLOW_QUEUE_URL")]
        queue_url: Option<String>,
        #[command(flatten)]
        source: Source,
    },
    /// Deletes finished executions older than a time (running and paused ones stay).
    Prune {
        /// Delete those created longer ago than this (10m, 2h, 7d) or before an
        /// RFC 3339 time.
        #[arg(long, value_name = "AGE")]
        older_than: String,
        /// Only executions of this workflow key.
        #[arg(long)]
        workflow: Option<String>,
        /// Only executions in this status (resolved, failed, error, aborted, canceled, invalid).
        #[arg(long, value_parser = parse_status)]
        status: Option<ExecutionStatus>,
        #[command(flatten)]
        source: Source,
    },
    /// One execution with its jobs.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        source: Source,
    },
}

/// Which executions to list.
#[derive(clap::Args)]
pub struct FilterArgs {
    /// Only executions of this workflow key.
    #[arg(long)]
    workflow: Option<String>,
    /// Only executions in this status (started, resolved, failed, error, aborted, canceled, invalid).
    #[arg(long, value_parser = parse_status)]
    status: Option<ExecutionStatus>,
    /// Only those created since then: a time back from now (10m, 2h, 7d) or RFC 3339.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only those created until then: a time back from now (10m, 2h, 7d) or RFC 3339.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
}

impl FilterArgs {
    pub fn filter(&self) -> anyhow::Result<ExecutionFilter> {
        let now = Utc::now();
        let at = |text: &Option<String>, flag: &str| {
            text.as_deref()
                .map(|t| hookflow::time::parse_instant(t, now))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
        };
        Ok(ExecutionFilter {
            workflow: self.workflow.clone(),
            status: self.status,
            since: at(&self.since, "since")?,
            until: at(&self.until, "until")?,
        })
    }
}

fn parse_status(text: &str) -> Result<ExecutionStatus, String> {
    serde_json::from_value(Value::String(text.to_ascii_lowercase())).map_err(|_| {
        format!(
            "{text:?} is not a status: started, resolved, failed, error, aborted, canceled or invalid"
        )
    })
}

pub fn run(command: ExecutionsCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match command {
            ExecutionsCommand::List {
                filter,
                limit,
                json,
                source,
            } => {
                let filter = filter.filter()?;
                let (store, db) = open(&source).await?;
                let executions = store.find_executions(&filter, limit).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&executions)?);
                } else {
                    print_list(&executions);
                    if let Some(db) = db
                        && filter == ExecutionFilter::default()
                    {
                        let waiting = EmbeddedQueue::open(db).await?.waiting_runs().await?;
                        if waiting > 0 {
                            println!("{waiting} accepted run(s) queued, not started yet (`executions show ID` tells of one)");
                        }
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            ExecutionsCommand::Replay {
                id,
                filter,
                same_version,
                limit,
                again,
                queue_url,
                source,
            } => {
                let selection = filter.filter()?;
                anyhow::ensure!(
                    id.is_none() != (selection == ExecutionFilter::default()),
                    "give an execution id, or filters that select several (--workflow, --status, --since, --until), not both"
                );
                let (store, db) = open(&source).await?;
                let queue = open_queue(&source, db, queue_url.as_deref()).await?;
                let originals = match &id {
                    Some(id) => match store.execution(id).await? {
                        Some(e) => vec![e],
                        None => {
                            eprintln!("error: no execution {id:?}");
                            return Ok(ExitCode::FAILURE);
                        }
                    },
                    None => {
                        let chosen = replay::select(store.as_ref(), &selection, limit, again).await?;
                        if chosen.replayed_before > 0 {
                            println!("left {} replayed before (--again replays them too)", chosen.replayed_before);
                        }
                        if chosen.not_originals > 0 {
                            println!("left {} started by another run (subflow children, failure workflow runs, replays)", chosen.not_originals);
                        }
                        if chosen.more > 0 {
                            println!("{} more match past --limit {limit}: run this again for them", chosen.more);
                        }
                        chosen.originals
                    }
                };
                // A bulk replay without --again replays what another one, running
                // at the same time, has not.
                let once = id.is_none() && !again;
                let (mut queued, mut refused, mut meanwhile) = (0, 0, 0);
                for original in &originals {
                    match replay::replay(store.as_ref(), queue.as_ref(), original, same_version, once)
                        .await
                    {
                        Ok(run) => {
                            queued += 1;
                            println!(
                                "replayed {} as {} ({} v{})",
                                original.id, run.execution_id, run.workflow_key, run.workflow_version
                            );
                            if let Some(m) = &run.invalid {
                                println!(
                                    "  recorded invalid: the body still does not match trigger.schema: {} (instancePath {:?}, schemaPath {:?})",
                                    m.error, m.instance_path, m.schema_path
                                );
                            }
                        }
                        Err(e @ (ReplayError::Store(_) | ReplayError::Queue(_))) => {
                            return Err(e.into());
                        }
                        Err(ReplayError::ReplayedMeanwhile(_)) => meanwhile += 1,
                        Err(e) => {
                            refused += 1;
                            eprintln!("not replayed {}: {e}", original.id);
                        }
                    }
                }
                if meanwhile > 0 {
                    println!("left {meanwhile} another replay queued meanwhile");
                }
                if id.is_none() {
                    println!("{queued} replay(s) queued, {refused} refused, of {} selected", originals.len());
                }
                Ok(if refused > 0 && queued == 0 {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                })
            }
            ExecutionsCommand::Prune {
                older_than,
                workflow,
                status,
                source,
            } => {
                let until = hookflow::time::parse_instant(&older_than, Utc::now())
                    .map_err(|e| anyhow::anyhow!("--older-than: {e}"))?;
                let filter = ExecutionFilter {
                    workflow,
                    status,
                    until: Some(until),
                    since: None,
                };
                let (store, _db) = open(&source).await?;
                let began = Instant::now();
                let deleted = retention::prune(store.as_ref(), &filter).await?;
                let seconds = began.elapsed().as_secs_f64();
                println!(
                    "pruned {deleted} execution(s) created before {} in {seconds:.1} s",
                    until.to_rfc3339_opts(SecondsFormat::Secs, true)
                );
                Ok(ExitCode::SUCCESS)
            }
            ExecutionsCommand::Show { id, json, source } => {
                let (store, db) = open(&source).await?;
                let Some(execution) = store.execution(&id).await? else {
                    // Accepted and waiting for a worker: no record yet, but not unknown.
                    if let Some(db) = db
                        && let Some(run) = EmbeddedQueue::open(db).await?.peek(&id).await?
                    {
                        print_queued(&run, json)?;
                        return Ok(ExitCode::SUCCESS);
                    }
                    eprintln!("error: no execution {id:?}");
                    return Ok(ExitCode::FAILURE);
                };
                if json {
                    println!("{}", serde_json::to_string_pretty(&execution)?);
                } else {
                    print_one(&execution);
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// A run accepted and queued, that no worker has started: status `queued`.
fn print_queued(run: &RunMessage, json: bool) -> anyhow::Result<()> {
    if json {
        let record = serde_json::json!({
            "id": run.execution_id,
            "workflowKey": run.workflow_key,
            "workflowVersion": run.workflow_version,
            "status": "queued",
            "context": run.context,
            "createdAt": run.accepted_at,
            "jobs": [],
        });
        println!("{}", serde_json::to_string_pretty(&record)?);
        return Ok(());
    }
    println!("Execution  {}", run.execution_id);
    println!("Workflow   {} v{}", run.workflow_key, run.workflow_version);
    println!("Status     queued (accepted, waiting for a worker; nothing ran yet)");
    if let Some(key) = &run.idempotency_key {
        println!("Key        {key} (idempotency)");
    }
    println!("Created    {}", run.accepted_at);
    println!();
    println!("Context");
    println!("{}", indent(&run.context));
    Ok(())
}

fn duration(from: &str, to: Option<&str>) -> String {
    let parse = |s: &str| DateTime::parse_from_rfc3339(s).ok();
    match (parse(from), to.and_then(parse)) {
        (Some(a), Some(b)) => format!("{} ms", (b - a).num_milliseconds()),
        _ => "-".into(),
    }
}

fn print_list(executions: &[Execution]) {
    if executions.is_empty() {
        println!("no executions");
        return;
    }
    let key_width = executions
        .iter()
        .map(|e| e.workflow_key.len())
        .max()
        .unwrap_or(8)
        .max(8);
    println!(
        "{:<36}  {:<key_width$}  {:>4}  {:<9}  {:<24}  DURATION",
        "ID", "WORKFLOW", "VER", "STATUS", "CREATED"
    );
    for e in executions {
        println!(
            "{:<36}  {:<key_width$}  {:>4}  {:<9}  {:<24}  {}",
            e.id,
            e.workflow_key,
            e.workflow_version,
            status(e),
            e.created_at,
            duration(&e.created_at, e.finished_at.as_deref()),
        );
    }
}

fn print_one(e: &Execution) {
    println!("Execution  {}", e.id);
    println!("Workflow   {} v{}", e.workflow_key, e.workflow_version);
    println!("Status     {}", status(e));
    if let Some(paused) = &e.paused {
        for (i, wait) in paused.waits.iter().enumerate() {
            let label = if i == 0 { "Waiting" } else { "" };
            println!("{label:<10} {}", describe(wait));
        }
    }
    if let Some(parent) = &e.parent_execution_id {
        println!("Parent     {parent} (called as a subflow)");
    }
    if let Some(original) = &e.replay_of {
        println!("Replay of {original}");
    }
    if let Some(key) = &e.idempotency_key {
        println!("Key        {key} (idempotency: its duplicates are answered as it was)");
    }
    println!("Created    {}", e.created_at);
    match &e.finished_at {
        Some(f) => println!("Finished   {f} ({})", duration(&e.created_at, Some(f))),
        None => println!("Finished   -"),
    }
    println!();
    if e.jobs.is_empty() {
        println!("Jobs       none");
    } else {
        let key_width = e
            .jobs
            .iter()
            .map(|j| j.node_key.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let type_width = e
            .jobs
            .iter()
            .map(|j| j.node_type.len())
            .max()
            .unwrap_or(4)
            .max(4);
        println!("Jobs");
        println!(
            "  {:>3}  {:<key_width$}  {:<type_width$}  {:<9}  {:>8}  RESULT",
            "#", "NODE", "TYPE", "STATUS", "TIME"
        );
        for (i, j) in e.jobs.iter().enumerate() {
            println!(
                "  {:>3}  {:<key_width$}  {:<type_width$}  {:<9}  {:>8}  {}",
                i + 1,
                j.node_key,
                j.node_type,
                j.status.as_str(),
                duration(&j.started_at, j.finished_at.as_deref()),
                short(&j.result),
            );
        }
    }
    println!();
    println!("Context");
    println!("{}", indent(&e.context));
    println!("Output");
    println!("{}", indent(&e.output));
}

/// The status, with `paused` for a started execution that waits.
fn status(e: &Execution) -> &'static str {
    if e.is_paused() {
        "paused"
    } else {
        e.status.as_str()
    }
}

/// One thing a paused execution waits for, and until when.
fn describe(wait: &Wait) -> String {
    match wait {
        Wait::Until { node_key, until } => {
            let left = DateTime::parse_from_rfc3339(until)
                .map(|t| (t.with_timezone(&Utc) - Utc::now()).num_milliseconds())
                .unwrap_or(0);
            let when = if left > 0 {
                format!("in {}", human(left))
            } else {
                "due now".into()
            };
            format!("delay {node_key:?} until {until} ({when})")
        }
        Wait::Execution {
            node_key,
            execution_id,
        } => format!("subflow {node_key:?} until execution {execution_id} finishes"),
    }
}

fn human(ms: i64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 120_000 {
        format!("{} s", ms / 1_000)
    } else if ms < 7_200_000 {
        format!("{} min", ms / 60_000)
    } else if ms < 172_800_000 {
        format!("{} h", ms / 3_600_000)
    } else {
        format!("{} days", ms / 86_400_000)
    }
}

fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(59).collect::<String>())
    } else {
        text
    }
}

fn indent(v: &Value) -> String {
    serde_json::to_string_pretty(v)
        .unwrap_or_default()
        .lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
