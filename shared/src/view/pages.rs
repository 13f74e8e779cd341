//! The viewer's pages, rendered on the server: HTML and CSS, no script, nothing
//! loaded from anywhere else. `maud` escapes every value it inserts.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;

use super::status::{NodeRuns, icon};
use super::svg::{anchor, graph};
use crate::engine::NodeRegistry;
use crate::model::{
    DeployedWorkflow, Execution, ExecutionStatus, SecretRef, Secrets, Wait, WorkflowDefinition,
};

/// The statuses an execution list may be filtered by, in the order shown.
pub const STATUSES: [ExecutionStatus; 7] = [
    ExecutionStatus::Started,
    ExecutionStatus::Resolved,
    ExecutionStatus::Failed,
    ExecutionStatus::Error,
    ExecutionStatus::Aborted,
    ExecutionStatus::Canceled,
    ExecutionStatus::Invalid,
];

/// Text shown of one JSON value at most; the rest is cut (a result may be a
/// whole HTTP response).
const SHOWN_BYTES: usize = 64 << 10;

/// Jobs listed on an execution's page at most (a long loop makes thousands).
const JOBS_SHOWN: usize = 300;

/// Seconds between reloads of a page that shows runs as they come.
const REFRESH_SECONDS: u32 = 5;
/// ... and of an execution still running or paused.
const REFRESH_RUNNING_SECONDS: u32 = 2;

/// A workflow as the first page lists it.
pub struct WorkflowRow {
    pub workflow: std::sync::Arc<DeployedWorkflow>,
    pub url: String,
    /// Executions by status among the newest `counted` ones.
    pub counts: BTreeMap<&'static str, usize>,
    pub counted: usize,
    /// Whether there were more than `counted` executions.
    pub more: bool,
}

/// The execution list's filters, as the form sends them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Filters {
    pub workflow: String,
    pub status: String,
    pub since: String,
}

pub fn index(
    workflows: &[WorkflowRow],
    executions: &[Execution],
    filters: &Filters,
    problem: Option<&str>,
) -> Markup {
    page(
        "hookflow",
        Some(REFRESH_SECONDS),
        html! {
            h1 { "Workflows" }
            @if workflows.is_empty() {
                p.muted { "No workflow is deployed." }
            } @else {
                table.list #workflows {
                    thead { tr {
                        th { "key" } th { "title" } th { "mode" } th { "enabled" }
                        th { "version" } th { "webhook URL" } th { "executions" }
                    } }
                    tbody {
                        @for row in workflows {
                            @let w = &row.workflow;
                            tr data-workflow=(w.key) {
                                td { a href=(workflow_href(&w.key)) { (w.key) } }
                                td { (w.definition.title.as_deref().unwrap_or("")) }
                                td { (mode(&w.definition)) }
                                td { (if w.definition.enabled { "yes" } else { "no" }) }
                                td { "v" (w.version) }
                                td { code.url { (row.url) } }
                                td.counts {
                                    @for (status, count) in &row.counts {
                                        span.badge data-status=(status) { (icon(status)) " " (count) " " (status) }
                                        " "
                                    }
                                    @if row.more { span.muted { "(of the last " (row.counted) ")" } }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Recent executions" }
            form.filters method="get" action="/ui" {
                label { "workflow " select name="workflow" {
                    option value="" { "any" }
                    @for row in workflows {
                        option value=(row.workflow.key) selected[filters.workflow == row.workflow.key] { (row.workflow.key) }
                    }
                } }
                label { "status " select name="status" {
                    option value="" { "any" }
                    @for status in STATUSES {
                        option value=(status.as_str()) selected[filters.status == status.as_str()] { (status.as_str()) }
                    }
                } }
                label { "since " input type="text" name="since" value=(filters.since)
                    placeholder="10m, 2h, 7d or RFC 3339" size="22"; }
                button type="submit" { "filter" }
            }
            @if let Some(problem) = problem {
                p.problem role="alert" { (problem) }
            }
            (execution_list(executions, true))
        },
    )
}

pub fn workflow_page(
    types: &NodeRegistry,
    current: &DeployedWorkflow,
    url: &str,
    versions: &[std::sync::Arc<DeployedWorkflow>],
    executions: &[Execution],
) -> Markup {
    let d = &current.definition;
    page(
        &format!("{} · hookflow", current.key),
        Some(REFRESH_SECONDS),
        html! {
            p.crumbs { a href="/ui" { "workflows" } " / " (current.key) }
            h1 { (d.title.as_deref().unwrap_or(&current.key)) }
            dl.facts {
                dt { "key" } dd { code { (current.key) } }
                dt { "mode" } dd { (mode(d)) }
                dt { "enabled" } dd { (if d.enabled { "yes" } else { "no" }) }
                dt { "version" } dd { "v" (current.version) " deployed " (current.deployed_at) }
                dt { "webhook URL" } dd { code.url { (url) } }
            }
            section.graph-box { (graph(types, &d.nodes, None)) }
            details {
                summary { "definition (JSON)" }
                pre #definition { (shown(&serde_json::to_value(without_plain_secrets(d)).unwrap_or(Value::Null))) }
            }
            h2 { "Versions" }
            table.list #versions {
                thead { tr { th { "version" } th { "deployed" } th { "enabled" } th { "switched by" } } }
                tbody {
                    @for v in versions {
                        tr data-version=(v.version) {
                            td { "v" (v.version) }
                            td { (v.deployed_at) }
                            td { (if v.definition.enabled { "yes" } else { "no" }) }
                            td { (v.switched_by.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
            h2 { "Executions" }
            (execution_list(executions, false))
        },
    )
}

pub fn execution_page(
    types: &NodeRegistry,
    execution: &Execution,
    workflow: Option<&DeployedWorkflow>,
) -> Markup {
    let runs = NodeRuns::of(execution);
    // Each node's first job carries the anchor its graph node links to.
    let mut first_jobs: HashMap<&str, usize> = HashMap::new();
    for (i, job) in execution.jobs.iter().enumerate() {
        first_jobs.entry(job.node_key.as_str()).or_insert(i);
    }
    let running = execution.status == ExecutionStatus::Started;
    let status = execution.status.as_str();
    page(
        &format!("{} · hookflow", execution.id),
        running.then_some(REFRESH_RUNNING_SECONDS),
        html! {
            p.crumbs {
                a href="/ui" { "workflows" } " / "
                a href=(workflow_href(&execution.workflow_key)) { (execution.workflow_key) }
                " / " (execution.id)
            }
            h1 {
                span.badge.big data-status=(status) { (icon(status)) " " (status) }
                " execution of " (execution.workflow_key) " v" (execution.workflow_version)
            }
            dl.facts {
                dt { "id" } dd { code { (execution.id) } }
                dt { "started" } dd { (execution.created_at) }
                dt { "finished" } dd {
                    @match &execution.finished_at {
                        Some(at) => { (at) " (" (duration(&execution.created_at, Some(at))) ")" }
                        None => { "not yet" }
                    }
                }
                @if let Some(parent) = &execution.parent_execution_id {
                    dt { "called by" } dd { a href=(execution_href(parent)) { (parent) } }
                }
                @if let Some(original) = &execution.replay_of {
                    dt { "replay of" } dd { a href=(execution_href(original)) { (original) } }
                }
                @if let Some(failed) = &execution.on_failure_of {
                    dt { "started by the failure of" } dd { a href=(execution_href(failed)) { (failed) } }
                }
                @if execution.attempts > 1 {
                    dt { "deliveries" } dd { (execution.attempts) }
                }
            }
            @if let Some(paused) = &execution.paused {
                section.paused #paused {
                    h2 { "‖ Paused" }
                    ul {
                        @for wait in &paused.waits {
                            li { (waiting_for(wait)) }
                        }
                    }
                    @if let Some(at) = &paused.wake_at {
                        p { "Wakes up at " (at) "." }
                    }
                }
            }
            div.run {
                section.graph-box {
                    @match workflow {
                        Some(w) => { (graph(types, &w.definition.nodes, Some(&runs))) }
                        None => { p.problem { "Version " (execution.workflow_version) " of " (execution.workflow_key) " is no longer stored, so its graph cannot be drawn; the jobs are listed beside." } }
                    }
                    (legend())
                }
                section.jobs {
                    h2 { "Jobs" }
                    @if execution.jobs.is_empty() { p.muted { "No node ran." } }
                    @if execution.jobs.len() > JOBS_SHOWN {
                        p.muted #jobs-cut { "The first " (JOBS_SHOWN) " of " (execution.jobs.len()) " jobs; `hookflow executions show "  (execution.id) " --json` has them all." }
                    }
                    @for (i, job) in execution.jobs.iter().take(JOBS_SHOWN).enumerate() {
                        @let first = first_jobs.get(job.node_key.as_str()) == Some(&i);
                        @let status = job.status.as_str();
                        article.job id=[first.then(|| anchor(&job.node_key))]
                            data-node=(job.node_key) data-status=(status) {
                            h3 {
                                span.badge data-status=(status) { (icon(status)) " " (status) }
                                " " (job.node_key) " " small.muted { (job.node_type) }
                            }
                            p.muted {
                                "started " (job.started_at)
                                @if let Some(done) = &job.finished_at { " · took " (duration(&job.started_at, Some(done))) }
                                @if job.attempts > 1 { " · " (job.attempts) " attempts" }
                            }
                            @let failed = matches!(status, "failed" | "error" | "aborted");
                            @let message = failed.then(|| job.result.get("message").and_then(Value::as_str)).flatten();
                            @if let Some(message) = message {
                                p.error { "error: " (message) }
                            }
                            @if !job.result.is_null() {
                                details open[i < 8] {
                                    summary { (if failed { "error detail" } else { "result" }) }
                                    pre.result { (shown(&job.result)) }
                                }
                            }
                            @if !job.log.is_empty() {
                                details {
                                    summary { "log (" (job.log.len()) " lines)" }
                                    pre.log { @for line in &job.log { (line) "\n" } }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Trigger context" }
            pre #context { (shown(&execution.context)) }
            @if !execution.output.is_null() {
                h2 { "Output" }
                pre #output { (shown(&execution.output)) }
            }
        },
    )
}

pub fn not_found(what: &str) -> Markup {
    page(
        "not found · hookflow",
        None,
        html! {
            p.crumbs { a href="/ui" { "workflows" } }
            h1 { "Not found" }
            p { (what) }
        },
    )
}

fn execution_list(executions: &[Execution], with_workflow: bool) -> Markup {
    html! {
        @if executions.is_empty() {
            p.muted #no-executions { "No execution yet." }
        } @else {
            table.list #executions {
                thead { tr {
                    th { "execution" }
                    @if with_workflow { th { "workflow" } }
                    th { "version" } th { "status" } th { "started" } th { "took" } th { "" }
                } }
                tbody {
                    @for e in executions {
                        @let status = e.status.as_str();
                        tr data-execution=(e.id) data-status=(status) {
                            td { a href=(execution_href(&e.id)) { code { (e.id) } } }
                            @if with_workflow {
                                td { a href=(workflow_href(&e.workflow_key)) { (e.workflow_key) } }
                            }
                            td { "v" (e.workflow_version) }
                            td { span.badge data-status=(status) { (icon(status)) " " (status) }
                                @if e.is_paused() { " " span.muted { "paused" } } }
                            td { (e.created_at) }
                            td { (e.finished_at.as_deref().map(|at| duration(&e.created_at, Some(at))).unwrap_or_default()) }
                            td.muted {
                                @if e.replay_of.is_some() { "replay " }
                                @if e.on_failure_of.is_some() { "failure alert " }
                                @if e.parent_execution_id.is_some() { "subflow " }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn legend() -> Markup {
    html! {
        p.legend {
            @for status in ["resolved", "failed", "error", "pending", "aborted", "skipped"] {
                span.badge data-status=(status) { (icon(status)) " " (status) } " "
            }
        }
    }
}

fn waiting_for(wait: &Wait) -> Markup {
    match wait {
        Wait::Until { node_key, until } => html! {
            "node " code { (node_key) } " waits until " (until)
        },
        Wait::Execution {
            node_key,
            execution_id,
        } => html! {
            "node " code { (node_key) } " waits for execution "
            a href=(execution_href(execution_id)) { (execution_id) } " to finish"
        },
    }
}

/// A definition with every secret written in it replaced (a reference to the
/// environment, SSM or Secrets Manager says where, never what, and stays).
fn without_plain_secrets(definition: &WorkflowDefinition) -> WorkflowDefinition {
    fn hide(secret: &mut SecretRef) {
        if let SecretRef::Plain(value) = secret {
            *value = REDACTED.to_string();
        }
    }
    let mut shown = definition.clone();
    let trigger = &mut shown.trigger;
    if let Some(auth) = &mut trigger.basic_authentication {
        hide(&mut auth.password);
    }
    if let Some(signature) = &mut trigger.signature {
        match &mut signature.secret {
            Secrets::One(one) => hide(one),
            Secrets::Many(many) => many.iter_mut().for_each(hide),
        }
    }
    if let Some(handshake) = &mut trigger.handshake {
        handshake.verify_token.iter_mut().for_each(hide);
        handshake.secret.iter_mut().for_each(hide);
    }
    shown
}

/// What a secret written in a definition shows as.
const REDACTED: &str = "<redacted>";

fn mode(definition: &WorkflowDefinition) -> &'static str {
    if definition.sync { "sync" } else { "async" }
}

pub fn workflow_href(key: &str) -> String {
    format!("/ui/workflows/{}", encode(key))
}

pub fn execution_href(id: &str) -> String {
    format!("/ui/executions/{}", encode(id))
}

fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Milliseconds or seconds between two record times.
fn duration(from: &str, to: Option<&str>) -> String {
    let parse = |t: &str| DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&Utc));
    match (parse(from), to.map(parse)) {
        (Ok(from), Some(Ok(to))) => {
            let ms = (to - from).num_milliseconds().max(0);
            if ms < 10_000 {
                format!("{ms} ms")
            } else {
                format!("{:.1} s", ms as f64 / 1000.0)
            }
        }
        _ => String::new(),
    }
}

/// A JSON value as indented text, cut at [`SHOWN_BYTES`].
fn shown(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    if text.len() > SHOWN_BYTES {
        let total = text.len();
        let mut cut = SHOWN_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(&format!(
            "\n… ({total} bytes in all; the rest is not shown)"
        ));
    }
    text
}

fn page(title: &str, refresh: Option<u32>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(seconds) = refresh {
                    meta http-equiv="refresh" content=(seconds);
                }
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header { a.brand href="/ui" { "hookflow" } span.muted { " executions viewer (read-only)" } }
                main { (body) }
            }
        }
    }
}

const CSS: &str = include_str!("viewer.css");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_and_durations_read() {
        let big = Value::String("é".repeat(SHOWN_BYTES));
        let text = shown(&big);
        assert!(text.len() < SHOWN_BYTES + 100);
        assert!(text.ends_with("the rest is not shown)"));
        assert_eq!(
            duration("2026-01-01T00:00:00.000Z", Some("2026-01-01T00:00:00.250Z")),
            "250 ms"
        );
        assert_eq!(
            duration("2026-01-01T00:00:00Z", Some("2026-01-01T00:00:12.5Z")),
            "12.5 s"
        );
        assert_eq!(execution_href("a/b"), "/ui/executions/a%2Fb");
    }

    #[test]
    fn a_value_from_a_request_is_text_never_markup() {
        let page = not_found("<img src=x onerror=alert(1)>").into_string();
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(!page.contains("<img"));
    }
}
