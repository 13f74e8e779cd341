//! The viewer's routes over any [`Store`]: `hookflow serve` mounts it on its own
//! address, `hookflow ui --table` over a stack's DynamoDB table. It is never part
//! of the webhook Lambda.
//!
//! Read-only: GET (and HEAD) only, and every page says the browser may load nothing
//! from elsewhere and run no script (Content-Security-Policy), so even a value
//! that slipped past escaping could not act.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, Uri, header};
use maud::Markup;

use super::pages::{self, Filters, STATUSES, WorkflowRow};
use crate::app::deploy::webhook_path;
use crate::engine::NodeRegistry;
use crate::model::ExecutionStatus;
use crate::ports::{ExecutionFilter, Store, StoreError};

/// Where the viewer lives on a server's address.
pub const PREFIX: &str = "/ui";

/// Executions listed on a page.
const LISTED: usize = 50;
/// Executions per workflow counted by status on the first page.
const COUNTED: usize = 50;
/// Versions listed on a workflow's page.
const VERSIONS: u32 = 20;

const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; \
                      form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub struct Viewer {
    store: Arc<dyn Store>,
    /// The node types the pictures ask how a node's branches read.
    types: Arc<NodeRegistry>,
    /// Prepended to a hook's path to show its full URL (`http://127.0.0.1:3000`).
    webhook_base: String,
}

impl Viewer {
    pub fn new(
        store: Arc<dyn Store>,
        types: Arc<NodeRegistry>,
        webhook_base: impl Into<String>,
    ) -> Self {
        Self {
            store,
            types,
            webhook_base: webhook_base.into().trim_end_matches('/').to_string(),
        }
    }

    /// Whether a request path is the viewer's.
    pub fn serves(path: &str) -> bool {
        path == PREFIX || path.starts_with("/ui/")
    }

    pub async fn answer(&self, method: &Method, uri: &Uri) -> Response<Bytes> {
        if method != Method::GET && method != Method::HEAD {
            let mut response = html(
                StatusCode::METHOD_NOT_ALLOWED,
                pages::not_found("The viewer is read-only: GET only."),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let rest = uri.path().strip_prefix(PREFIX).unwrap_or_default();
        let segments: Vec<String> = rest
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let answered = match segments.as_slice() {
            [] => self.index(uri.query().unwrap_or_default()).await,
            [kind, key] if kind == "workflows" => self.workflow(key).await,
            [kind, id] if kind == "executions" => self.execution(id).await,
            _ => Ok(not_found("There is no such page in the viewer.")),
        };
        let mut response = answered.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the viewer could not read the store");
            html(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::not_found(&format!("The store could not be read: {e}")),
            )
        });
        if method == Method::HEAD {
            *response.body_mut() = Bytes::new();
        }
        response
    }

    async fn index(&self, query: &str) -> Result<Response<Bytes>, StoreError> {
        let (filters, filter, problem) = read_filters(query);
        let workflows = self.store.list_workflows().await?;
        let mut rows = Vec::with_capacity(workflows.len());
        for workflow in workflows {
            let recent = self
                .store
                .list_executions(Some(&workflow.key), COUNTED + 1)
                .await?;
            let mut counts = BTreeMap::new();
            for e in recent.iter().take(COUNTED) {
                *counts.entry(e.status.as_str()).or_insert(0) += 1;
            }
            rows.push(WorkflowRow {
                url: format!("{}{}", self.webhook_base, webhook_path(&workflow.hook_id)),
                workflow,
                counts,
                counted: COUNTED,
                more: recent.len() > COUNTED,
            });
        }
        let executions = self.store.find_executions(&filter, LISTED).await?;
        let status = if problem.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        Ok(html(
            status,
            pages::index(&rows, &executions, &filters, problem.as_deref()),
        ))
    }

    async fn workflow(&self, key: &str) -> Result<Response<Bytes>, StoreError> {
        let Some(current) = self.store.current_workflow(key).await? else {
            return Ok(not_found(&format!("No workflow has the key {key:?}.")));
        };
        let mut versions = Vec::new();
        let oldest = current.version.saturating_sub(VERSIONS - 1).max(1);
        for version in (oldest..=current.version).rev() {
            if let Some(v) = self.store.workflow_version(key, version).await? {
                versions.push(v);
            }
        }
        let executions = self.store.list_executions(Some(key), LISTED).await?;
        let url = format!("{}{}", self.webhook_base, webhook_path(&current.hook_id));
        Ok(html(
            StatusCode::OK,
            pages::workflow_page(&self.types, &current, &url, &versions, &executions),
        ))
    }

    async fn execution(&self, id: &str) -> Result<Response<Bytes>, StoreError> {
        let Some(execution) = self.store.execution(id).await? else {
            return Ok(not_found(&format!("No execution has the id {id:?}.")));
        };
        let workflow = self
            .store
            .workflow_version(&execution.workflow_key, execution.workflow_version)
            .await?;
        Ok(html(
            StatusCode::OK,
            pages::execution_page(&self.types, &execution, workflow.as_deref()),
        ))
    }
}

/// The form's filters, the store filter they make, and what was wrong with them.
fn read_filters(query: &str) -> (Filters, ExecutionFilter, Option<String>) {
    let mut filters = Filters::default();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let value = value.trim().to_string();
        match &*name {
            "workflow" => filters.workflow = value,
            "status" => filters.status = value,
            "since" => filters.since = value,
            _ => {}
        }
    }
    let mut filter = ExecutionFilter::default();
    let mut problems = Vec::new();
    if !filters.workflow.is_empty() {
        filter.workflow = Some(filters.workflow.clone());
    }
    if !filters.status.is_empty() {
        match STATUSES.iter().find(|s| s.as_str() == filters.status) {
            Some(status) => filter.status = Some(*status),
            None => problems.push(format!(
                "status {:?} is not one of {}",
                filters.status,
                STATUSES.map(ExecutionStatus::as_str).join(", ")
            )),
        }
    }
    if !filters.since.is_empty() {
        match crate::time::parse_instant(&filters.since, chrono::Utc::now()) {
            Ok(since) => filter.since = Some(since),
            Err(e) => problems.push(format!("since: {e}")),
        }
    }
    let problem = (!problems.is_empty()).then(|| problems.join("; "));
    (filters, filter, problem)
}

fn not_found(what: &str) -> Response<Bytes> {
    html(StatusCode::NOT_FOUND, pages::not_found(what))
}

fn html(status: StatusCode, page: Markup) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(page.into_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Pages name webhook URLs, whose hook ids are secrets: never in a Referer.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_read_from_the_form() {
        let (filters, filter, problem) = read_filters("workflow=pay&status=failed&since=2h");
        assert_eq!(problem, None);
        assert_eq!(filters.workflow, "pay");
        assert_eq!(filter.status, Some(ExecutionStatus::Failed));
        assert!(filter.since.is_some());
        let (_, filter, problem) = read_filters("status=nope&since=yesterday");
        let problem = problem.unwrap();
        assert!(problem.contains("status \"nope\""), "{problem}");
        assert!(problem.contains("since:"), "{problem}");
        assert_eq!(filter, ExecutionFilter::default());
    }
}
