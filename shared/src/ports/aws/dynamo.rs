//! [`Store`] on one DynamoDB table (see [`super::item`] for its shape).

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, Delete, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    Projection, ProjectionType, Put, ScalarAttributeType, TimeToLiveSpecification,
    TransactWriteItem,
};

use super::item::{self, Item, get_s, n, s};
use crate::model::{Claim, ClaimCheck, ClaimOutcome, DeployedWorkflow, Execution, ExecutionStatus};
use crate::ports::{ExecutionFilter, Precondition, Store, StoreError};

/// Executions by workflow, sorted by id (time): `gsi1pk`, `gsi1sk`.
const GSI: &str = "gsi1";
/// Executions by workflow and status, sorted by id: `gsi2pk`, `gsi1sk`.
const STATUS_GSI: &str = "gsi2";

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// How long executions are kept (TTL); `None` keeps them forever.
    retention: Option<Duration>,
}

/// DynamoDB's answers to a request it will refuse again, whenever it is sent: a
/// request it cannot take (an item over 400 KB, a value it does not accept) or an
/// item collection at its 10 GB limit. Throttling, timeouts and 5xx are passing.
const REFUSED_FOR_GOOD: &[&str] = &[
    "ValidationException",
    "ItemCollectionSizeLimitExceededException",
    "SerializationException",
];

pub(super) fn backend<E>(e: E) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let reason = DisplayErrorContext(&e).to_string();
    if e.code()
        .is_some_and(|code| REFUSED_FOR_GOOD.contains(&code))
    {
        StoreError::Rejected {
            reason,
            source: Some(Box::new(e)),
        }
    } else {
        StoreError::unavailable_by(reason, e)
    }
}

fn decode<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    let text = get_s(item, "record").ok_or_else(|| StoreError::Unreadable {
        what: "item without a record".into(),
        source: None,
    })?;
    serde_json::from_str(text).map_err(|e| StoreError::unreadable("record", e))
}

/// A conditional write's answer: `false` when the condition did not hold.
pub(super) fn applied<T, E>(
    result: Result<T, SdkError<E, HttpResponse>>,
) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(e))
            if e.err().code() == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(backend(e)),
    }
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::unavailable_by("building a request", e)
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>, retention: Option<Duration>) -> Self {
        Self {
            client,
            table: table.into(),
            retention,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        Ok(out.item)
    }

    fn execution_item(&self, execution: &Execution) -> Item {
        let record = item::execution_record(execution);
        let mut item = Item::new();
        item.insert("pk".into(), s(item::execution_pk(&execution.id)));
        item.insert("sk".into(), s("EX"));
        item.insert(
            "gsi1pk".into(),
            s(item::executions_gsi_pk(&execution.workflow_key)),
        );
        item.insert("gsi1sk".into(), s(&execution.id));
        // From the record as written: one too large to pause is written as an error.
        item.insert("status".into(), s(record.status.as_str()));
        item.insert(
            "gsi2pk".into(),
            s(item::status_gsi_pk(&execution.workflow_key, record.status)),
        );
        match &record.pause_token {
            // Top level, so a resume can be made conditional on it. No expiry while
            // paused: a wait may outlast the retention; the final save sets it.
            Some(token) => {
                item.insert("pauseToken".into(), s(token));
            }
            None => {
                if let Some(keep) = self.retention {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default();
                    item.insert("expiresAt".into(), n((now + keep).as_secs()));
                }
            }
        }
        item.insert("record".into(), s(record.text));
        item
    }

    fn put_execution(&self, execution: &Execution) -> PutItemFluentBuilder {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.execution_item(execution)))
    }

    /// One page of a workflow's execution ids in the filter's window, from the
    /// index that answers the filter: by status when it has one.
    async fn query_ids(
        &self,
        key: &str,
        filter: &ExecutionFilter,
        newest_first: bool,
        limit: usize,
        start: Option<Item>,
    ) -> Result<(Vec<String>, Option<Item>), StoreError> {
        let (index, pk) = match filter.status {
            Some(status) => (STATUS_GSI, ("gsi2pk", item::status_gsi_pk(key, status))),
            None => (GSI, ("gsi1pk", item::executions_gsi_pk(key))),
        };
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#pk = :p AND gsi1sk BETWEEN :lo AND :hi")
            .expression_attribute_names("#pk", pk.0)
            .expression_attribute_values(":p", s(pk.1))
            .expression_attribute_values(":lo", s(filter.lowest_id()))
            .expression_attribute_values(":hi", s(filter.highest_id()))
            .scan_index_forward(!newest_first)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX).max(1))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(backend)?;
        let ids = page
            .items()
            .iter()
            .filter_map(|found| get_s(found, "gsi1sk").map(str::to_string))
            .collect();
        Ok((ids, page.last_evaluated_key))
    }

    /// A workflow's executions matching the filter, newest first.
    async fn query_executions(
        &self,
        key: &str,
        filter: &ExecutionFilter,
        limit: usize,
    ) -> Result<Vec<Execution>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        while out.len() < limit {
            let (ids, next) = self
                .query_ids(key, filter, true, limit - out.len(), start)
                .await?;
            // The indexes project keys only; read each record from the table, and
            // check it again (an index is eventually consistent).
            for id in ids {
                if let Some(e) = self.execution(&id).await?
                    && filter.matches(&e.id, &e.workflow_key, e.status)
                {
                    out.push(e);
                }
            }
            start = next;
            if start.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// The keys whose executions a filter selects.
    async fn workflow_keys(&self, filter: &ExecutionFilter) -> Result<Vec<String>, StoreError> {
        Ok(match &filter.workflow {
            Some(key) => vec![key.clone()],
            None => self
                .list_workflows()
                .await?
                .iter()
                .map(|w| w.key.clone())
                .collect(),
        })
    }

    /// Deletes one execution unless it is started (running or paused): `false` then.
    async fn delete_finished(&self, id: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(item::execution_pk(id)))
            .key("sk", s("EX"))
            .condition_expression("attribute_exists(pk) AND #status <> :started")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":started", s(ExecutionStatus::Started.as_str()))
            .send()
            .await;
        applied(result)
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn current_workflow(
        &self,
        key: &str,
    ) -> Result<Option<Arc<DeployedWorkflow>>, StoreError> {
        match self.get(item::workflow_pk(key), "CURRENT").await? {
            Some(found) => decode(&found).map(|w| Some(Arc::new(w))),
            None => Ok(None),
        }
    }

    async fn workflow_version(
        &self,
        key: &str,
        version: u32,
    ) -> Result<Option<Arc<DeployedWorkflow>>, StoreError> {
        match self
            .get(item::workflow_pk(key), &item::version_sk(version))
            .await?
        {
            Some(found) => decode(&found).map(|w| Some(Arc::new(w))),
            None => Ok(None),
        }
    }

    async fn workflow_by_hook(
        &self,
        hook_id: &str,
    ) -> Result<Option<Arc<DeployedWorkflow>>, StoreError> {
        match self.get(item::hook_pk(hook_id), "HOOK").await? {
            Some(found) => decode(&found).map(|w| Some(Arc::new(w))),
            None => Ok(None),
        }
    }

    async fn list_workflows(&self) -> Result<Vec<Arc<DeployedWorkflow>>, StoreError> {
        // Deploys are rare and workflows few: a filtered scan of the pointers is fine
        // for the CLI (the webhook never lists).
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :c")
                .expression_attribute_values(":c", s("CURRENT"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend)?;
            for found in page.items() {
                out.push(Arc::new(decode(found)?));
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        out.sort_by(|a: &Arc<DeployedWorkflow>, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn publish(&self, workflow: &DeployedWorkflow) -> Result<(), StoreError> {
        let record = serde_json::to_string(workflow).map_err(StoreError::unencodable)?;
        let previous = self.current_workflow(&workflow.key).await?;
        let pk = item::workflow_pk(&workflow.key);
        let put = |pk: String,
                   sk: String,
                   condition: Option<&str>|
         -> Result<TransactWriteItem, StoreError> {
            let mut p = Put::builder()
                .table_name(&self.table)
                .item("pk", s(pk))
                .item("sk", s(sk))
                .item("record", s(&record))
                .item("workflowKey", s(&workflow.key))
                .item("version", n(workflow.version));
            if let Some(c) = condition {
                p = p
                    .condition_expression(c)
                    .expression_attribute_values(":key", s(&workflow.key));
            }
            Ok(TransactWriteItem::builder()
                .put(p.build().map_err(build_error)?)
                .build())
        };
        let mut items = vec![
            // The version must be new: a concurrent deploy of the same key loses.
            put(
                pk.clone(),
                item::version_sk(workflow.version),
                Some("attribute_not_exists(pk) AND :key = :key"),
            )?,
            put(pk, "CURRENT".into(), None)?,
            // The hook id must be free or already this key's.
            put(
                item::hook_pk(&workflow.hook_id),
                "HOOK".into(),
                Some("attribute_not_exists(pk) OR workflowKey = :key"),
            )?,
        ];
        if let Some(old) = previous.filter(|p| p.hook_id != workflow.hook_id) {
            let delete = Delete::builder()
                .table_name(&self.table)
                .key("pk", s(item::hook_pk(&old.hook_id)))
                .key("sk", s("HOOK"))
                .build()
                .map_err(build_error)?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_transaction_canceled_exception() => {
                let reasons: Vec<String> = match e.err() {
                    TransactWriteItemsError::TransactionCanceledException(t) => t
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().unwrap_or("").to_string())
                        .collect(),
                    _ => Vec::new(),
                };
                if reasons
                    .first()
                    .is_some_and(|c| c == "ConditionalCheckFailed")
                {
                    Err(StoreError::VersionConflict {
                        key: workflow.key.clone(),
                        version: workflow.version,
                    })
                } else {
                    let owner = self
                        .get(item::hook_pk(&workflow.hook_id), "HOOK")
                        .await?
                        .and_then(|i| get_s(&i, "workflowKey").map(str::to_string))
                        .unwrap_or_else(|| "another workflow".into());
                    Err(StoreError::HookTaken {
                        hook_id: workflow.hook_id.clone(),
                        owner,
                    })
                }
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn write_execution(
        &self,
        execution: &Execution,
        when: Precondition<'_>,
    ) -> Result<bool, StoreError> {
        // The precondition as a ConditionExpression, checked with the write.
        let put = self.put_execution(execution);
        let put = match when {
            Precondition::Always => return put.send().await.map(|_| true).map_err(backend),
            Precondition::Absent => put.condition_expression("attribute_not_exists(pk)"),
            Precondition::Running => put
                .condition_expression(
                    "attribute_not_exists(pk) OR (#status = :started AND attribute_not_exists(pauseToken))",
                )
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":started", s("started")),
            Precondition::PausedOn(token) => put
                .condition_expression("pauseToken = :token")
                .expression_attribute_values(":token", s(token)),
        };
        applied(put.send().await)
    }

    fn as_written<'a>(&self, execution: &'a Execution) -> Cow<'a, Execution> {
        if execution.paused.is_none() {
            return Cow::Borrowed(execution);
        }
        let record = item::execution_record(execution);
        match serde_json::from_str(&record.text) {
            Ok(written) if record.pause_token.is_none() => Cow::Owned(written),
            _ => Cow::Borrowed(execution),
        }
    }

    async fn execution(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        match self.get(item::execution_pk(id), "EX").await? {
            Some(found) => decode(&found).map(Some),
            None => Ok(None),
        }
    }

    async fn find_executions(
        &self,
        filter: &ExecutionFilter,
        limit: usize,
    ) -> Result<Vec<Execution>, StoreError> {
        // All workflows: the newest of each, merged. No index with one hot key.
        let mut all = Vec::new();
        for key in self.workflow_keys(filter).await? {
            all.extend(self.query_executions(&key, filter, limit).await?);
        }
        all.sort_by(|a, b| b.id.cmp(&a.id));
        all.truncate(limit);
        Ok(all)
    }

    /// The workflow's `started` executions (paused, or running): its status index
    /// holds no pause mark. One Query of keys only, counted by DynamoDB (about 1
    /// read unit per 40 runs, so ~250 for 10,000), stopped at `up_to`.
    async fn count_paused(&self, workflow_key: &str, up_to: usize) -> Result<usize, StoreError> {
        let pk = item::status_gsi_pk(workflow_key, ExecutionStatus::Started);
        let mut counted = 0;
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(STATUS_GSI)
                .key_condition_expression("gsi2pk = :p")
                .expression_attribute_values(":p", s(&pk))
                .select(aws_sdk_dynamodb::types::Select::Count)
                .limit(i32::try_from(up_to - counted).unwrap_or(i32::MAX).max(1))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend)?;
            counted += usize::try_from(page.count).unwrap_or(0);
            start = page.last_evaluated_key;
            if start.is_none() || counted >= up_to {
                return Ok(counted);
            }
        }
    }

    async fn prune_executions(
        &self,
        filter: &ExecutionFilter,
        max: usize,
    ) -> Result<usize, StoreError> {
        let mut deleted = 0;
        for key in self.workflow_keys(filter).await? {
            let mut start = None;
            // Oldest first, page by page, until `max` are gone or none is left.
            while deleted < max {
                let (ids, next) = self.query_ids(&key, filter, false, 100, start).await?;
                let outcomes = futures_util::future::join_all(
                    ids.iter()
                        .take(max - deleted)
                        .map(|id| self.delete_finished(id)),
                )
                .await;
                for outcome in outcomes {
                    deleted += usize::from(outcome?);
                }
                start = next;
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(deleted)
    }

    async fn claim(&self, claim: &Claim, now: u64) -> Result<ClaimOutcome, StoreError> {
        super::claims::claim(&self.client, &self.table, claim, now).await
    }

    async fn settle_claim(&self, claim: &Claim) -> Result<(), StoreError> {
        super::claims::settle(&self.client, &self.table, claim).await
    }

    async fn release_claim(&self, claim: &Claim) -> Result<(), StoreError> {
        super::claims::release(&self.client, &self.table, claim).await
    }

    async fn retake_claim(&self, claim: &Claim, lease_was: u64) -> Result<bool, StoreError> {
        super::claims::retake(&self.client, &self.table, claim, lease_was).await
    }

    async fn confirm_claim(
        &self,
        workflow_key: &str,
        key: &str,
        execution_id: &str,
        copy: Option<&str>,
    ) -> Result<ClaimCheck, StoreError> {
        super::claims::confirm(
            &self.client,
            &self.table,
            workflow_key,
            key,
            execution_id,
            copy,
        )
        .await
    }

    async fn mark_replay(
        &self,
        original: &str,
        replay: &str,
        first_only: bool,
    ) -> Result<bool, StoreError> {
        let ids = (original, replay);
        super::replays::mark(&self.client, &self.table, self.retention, ids, first_only).await
    }

    async fn unmark_replay(&self, original: &str, replay: &str) -> Result<(), StoreError> {
        super::replays::unmark(&self.client, &self.table, original, replay).await
    }

    async fn replays_marked(&self, originals: &[String]) -> Result<HashSet<String>, StoreError> {
        super::replays::marked(&self.client, &self.table, originals).await
    }
}

/// Creates the table (for local endpoints and tests; on AWS the SAM template does it).
/// An existing table is left as it is.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(build_error)
    };
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build_error)
    };
    // Both indexes sort by id (time) and project keys only.
    let index = |name: &str, hash: &str| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(hash, KeyType::Hash)?)
            .key_schema(key("gsi1sk", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            )
            .build()
            .map_err(build_error)
    };
    let result = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("sk")?)
        .attribute_definitions(attr("gsi1pk")?)
        .attribute_definitions(attr("gsi1sk")?)
        .attribute_definitions(attr("gsi2pk")?)
        .global_secondary_indexes(index(GSI, "gsi1pk")?)
        .global_secondary_indexes(index(STATUS_GSI, "gsi2pk")?)
        .send()
        .await;
    match result {
        Ok(_) => {}
        Err(SdkError::ServiceError(e)) if e.err().is_resource_in_use_exception() => return Ok(()),
        Err(e) => return Err(backend(e)),
    }
    let ttl = TimeToLiveSpecification::builder()
        .attribute_name("expiresAt")
        .enabled(true)
        .build()
        .map_err(build_error)?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(backend)?;
    Ok(())
}
