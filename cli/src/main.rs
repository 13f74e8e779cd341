//! `hookflow`: run webhook workflows locally, validate definitions, read executions.

mod deploy;
mod dlq;
mod executions;
mod graph;
mod http_server;
mod local_caller;
mod metrics;
mod serve;
mod sign;
mod source;
mod ui;
mod validate;
mod workflows;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hookflow",
    version,
    about = "Webhook-triggered workflows, locally and on AWS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the webhook endpoint locally, with an embedded store and worker.
    Serve(serve::ServeArgs),
    /// Validate definitions and deploy them to a stack's DynamoDB table.
    Deploy(deploy::DeployArgs),
    /// Create the table and queue on a local AWS endpoint (AWS_ENDPOINT_URL).
    InitLocalAws(deploy::InitLocalArgs),
    /// Check workflow definition files; every problem is listed with its JSON path.
    Validate {
        /// Definition files or directories of *.json files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List deployed workflows; enable or disable one without editing its file.
    Workflows {
        #[command(subcommand)]
        command: workflows::WorkflowsCommand,
    },
    /// The runs in a stack's dead-letter queue; move them back to its run queue.
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
    /// Read, replay and prune recorded executions.
    Executions {
        #[command(subcommand)]
        command: executions::ExecutionsCommand,
    },
    /// Print the variable paths of a sample JSON body, form body or URL, like the
    /// "parse" button.
    ParseSample {
        /// A sample JSON body.
        #[arg(long, conflicts_with_all = ["url", "form"], required_unless_present_any = ["url", "form"])]
        json: Option<String>,
        /// A sample URL, or just its query string.
        #[arg(long, conflicts_with = "form")]
        url: Option<String>,
        /// A sample form body (application/x-www-form-urlencoded): `a=1&b[c]=2`.
        #[arg(long)]
        form: Option<String>,
    },
    /// Serve the read-only executions viewer alone, over a data directory or a
    /// deployed stack's table (`hookflow serve` has it at /ui already).
    Ui(ui::UiArgs),
    /// Print a workflow as a Mermaid flowchart; with --execution, the path it took.
    Graph(graph::GraphArgs),
    /// Print the JSON Schema (draft 2020-12) of workflow definitions, for editors.
    Schema,
    /// Print the signature headers a sender would send with a body (simulate a
    /// signed delivery with curl).
    Sign(sign::SignArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Deploy(args) => deploy::run(args),
        Command::InitLocalAws(args) => deploy::init_local(args),
        Command::Validate { files } => validate::run(&files),
        Command::Workflows { command } => workflows::run(command),
        Command::Dlq { command } => dlq::run(command),
        Command::Executions { command } => executions::run(command),
        Command::ParseSample { json, url, form } => parse_sample(json, url, form),
        Command::Sign(args) => sign::run(args),
        Command::Ui(args) => ui::run(args),
        Command::Graph(args) => graph::run(args),
        Command::Schema => schema(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn schema() -> anyhow::Result<ExitCode> {
    let schema = hookflow::validate::definition_schema(&hookflow::nodes::builtin());
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(ExitCode::SUCCESS)
}

fn parse_sample(
    json: Option<String>,
    url: Option<String>,
    form: Option<String>,
) -> anyhow::Result<ExitCode> {
    let paths = match (json, url.or_else(|| form.map(|f| format!("?{f}")))) {
        (Some(json), _) => {
            let value: serde_json::Value = serde_json::from_str(&json)
                .map_err(|e| anyhow::anyhow!("the sample is not valid JSON: {e}"))?;
            hookflow::lang::sample::json_paths(&value)
        }
        (None, Some(url)) => hookflow::lang::sample::url_paths(&url),
        (None, None) => unreachable!("clap requires one of --json, --url and --form"),
    };
    for path in paths {
        println!("{path}");
    }
    Ok(ExitCode::SUCCESS)
}
