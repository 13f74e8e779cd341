//! `hookflow workflows list|enable|disable`: what is deployed, and switching a
//! workflow off (and on again) without editing its file.

use std::process::ExitCode;

use hookflow::app::deploy::{self, webhook_path};
use hookflow::model::DeployedWorkflow;
use serde_json::json;

use crate::source::{Source, open};

#[derive(clap::Subcommand)]
pub enum WorkflowsCommand {
    /// Every workflow's current version.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        source: Source,
    },
    /// Turns a workflow on: its hook runs it again (within the hook cache TTL).
    Enable {
        key: String,
        #[command(flatten)]
        source: Source,
    },
    /// Turns a workflow off: its hook answers 404 (within the hook cache TTL)
    /// until it is enabled again, or its file changes in anything but `enabled`
    /// and is deployed.
    Disable {
        key: String,
        #[command(flatten)]
        source: Source,
    },
}

pub fn run(command: WorkflowsCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match command {
            WorkflowsCommand::List { json, source } => {
                let (store, _db) = open(&source).await?;
                let mut workflows = store.list_workflows().await?;
                workflows.sort_by(|a, b| a.key.cmp(&b.key));
                if json {
                    let rows: Vec<_> = workflows.iter().map(|w| summary(w)).collect();
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    print_list(&workflows);
                }
                Ok(ExitCode::SUCCESS)
            }
            WorkflowsCommand::Enable { key, source } => switch(&key, true, &source).await,
            WorkflowsCommand::Disable { key, source } => switch(&key, false, &source).await,
        }
    })
}

async fn switch(key: &str, enabled: bool, source: &Source) -> anyhow::Result<ExitCode> {
    let (store, _db) = open(source).await?;
    let verb = if enabled { "enable" } else { "disable" };
    let by = format!("{} with `hookflow workflows {verb}`", operator());
    let Some(done) = deploy::switch(store.as_ref(), key, enabled, &by).await? else {
        eprintln!("error: no workflow {key:?} (`hookflow workflows list` shows them)");
        return Ok(ExitCode::FAILURE);
    };
    let w = &done.workflow;
    let state = if enabled { "enabled" } else { "disabled" };
    if done.changed {
        println!(
            "{} v{} {state}; hooks see it within the hook cache TTL (5 s by default)",
            w.key, w.version
        );
    } else {
        println!("{} v{} is {state} already", w.key, w.version);
    }
    Ok(ExitCode::SUCCESS)
}

/// `user@host` of whoever runs the command, as far as the environment tells.
fn operator() -> String {
    let user = ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "someone".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    match host {
        Some(host) => format!("{user}@{host}"),
        None => user,
    }
}

fn summary(w: &DeployedWorkflow) -> serde_json::Value {
    json!({
        "key": w.key,
        "title": w.definition.title,
        "version": w.version,
        "enabled": w.definition.enabled,
        "sync": w.definition.sync,
        "hookId": w.hook_id,
        "path": webhook_path(&w.hook_id),
        "deployedAt": w.deployed_at,
        "switchedBy": w.switched_by,
    })
}

fn print_list(workflows: &[std::sync::Arc<DeployedWorkflow>]) {
    if workflows.is_empty() {
        println!(
            "no workflows (deploy some with `hookflow serve --workflows DIR` or `hookflow deploy`)"
        );
        return;
    }
    let key_width = workflows
        .iter()
        .map(|w| w.key.len())
        .max()
        .unwrap_or(3)
        .max(3);
    println!(
        "{:<key_width$}  {:>4}  {:<8}  {:<5}  {:<24}  PATH",
        "KEY", "VER", "STATE", "MODE", "DEPLOYED"
    );
    for w in workflows {
        println!(
            "{:<key_width$}  {:>4}  {:<8}  {:<5}  {:<24}  {}{}",
            w.key,
            w.version,
            if w.definition.enabled {
                "enabled"
            } else {
                "disabled"
            },
            if w.definition.sync { "sync" } else { "async" },
            w.deployed_at,
            webhook_path(&w.hook_id),
            w.switched_by
                .as_deref()
                .map(|by| format!("  (switched by {by})"))
                .unwrap_or_default(),
        );
    }
}
