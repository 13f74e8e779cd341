//! `hookflow`: run webhook workflows locally, validate definitions, read executions.

mod deploy;
mod executions;
mod http_server;
mod serve;
mod validate;

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
    /// Read recorded executions.
    Executions {
        #[command(subcommand)]
        command: executions::ExecutionsCommand,
    },
    /// Print the variable paths of a sample JSON body or URL, like the "parse" button.
    ParseSample {
        /// A sample JSON body.
        #[arg(long, conflicts_with = "url", required_unless_present = "url")]
        json: Option<String>,
        /// A sample URL, or just its query string.
        #[arg(long)]
        url: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Deploy(args) => deploy::run(args),
        Command::InitLocalAws(args) => deploy::init_local(args),
        Command::Validate { files } => validate::run(&files),
        Command::Executions { command } => executions::run(command),
        Command::ParseSample { json, url } => parse_sample(json, url),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse_sample(json: Option<String>, url: Option<String>) -> anyhow::Result<ExitCode> {
    let paths = match (json, url) {
        (Some(json), _) => {
            let value: serde_json::Value = serde_json::from_str(&json)
                .map_err(|e| anyhow::anyhow!("the sample is not valid JSON: {e}"))?;
            hookflow::lang::sample::json_paths(&value)
        }
        (None, Some(url)) => hookflow::lang::sample::url_paths(&url),
        (None, None) => unreachable!("clap requires one of --json and --url"),
    };
    for path in paths {
        println!("{path}");
    }
    Ok(ExitCode::SUCCESS)
}
