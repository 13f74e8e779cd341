//! [`Store`] on one DynamoDB table (see [`super::item`] for its shape).

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::errors::{CONDITION_FAILED, applied, backend};
use super::item::{self, Item, get_s, n, s, take_item};
use super::objects::{self, Objects};
use crate::aws::{CallError, SignedClient};
use crate::model::{
    Claim, ClaimCheck, ClaimOutcome, DeployedWorkflow, Execution, ExecutionStatus, Gathering,
    Joined, LaneVersion,
};
use crate::ports::{
    ClaimStore, ExecutionFilter, ExecutionStore, Gathers, LaneVersions, Precondition, ReplayMarks,
    StoreError, WorkflowStore,
};

/// Executions by workflow, sorted by id (time): `gsi1pk`, `gsi1sk`.
const GSI: &str = "gsi1";
/// Executions by workflow and status, sorted by id: `gsi2pk`, `gsi1sk`. Sparse:
/// it holds the runs looked for by status (failures, `invalid`, paused ones), not
/// resolved or running ones, which are found by time (`gsi1`) and filtered. Each
/// run then writes one index entry at its end, and none at its begin: two write
/// units fewer per async run (see [`indexed_by_status`]).
const STATUS_GSI: &str = "gsi2";

#[derive(Clone)]
pub struct DynamoStore {
    client: Arc<SignedClient>,
    table: String,
    /// How long executions are kept (TTL); `None` keeps them forever.
    retention: Option<Duration>,
    /// Where records too large for an item go whole; without it they are trimmed
    /// to fit (see [`item::execution_record`]).
    objects: Option<Objects>,
}

/// Whether a record in `status` has an entry in the status index: not a resolved
/// run (most runs, rarely looked for by status), nor a running one (every run is,
/// briefly); a paused one is (`count_paused` counts them).
fn indexed_by_status(status: ExecutionStatus, paused: bool) -> bool {
    match status {
        ExecutionStatus::Resolved => false,
        ExecutionStatus::Started => paused,
        _ => true,
    }
}

fn decode<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    let text = item::record_text(item)?.ok_or_else(|| StoreError::Unreadable {
        what: "item without a record".into(),
        source: None,
    })?;
    serde_json::from_str(&text).map_err(|e| StoreError::unreadable("record", e))
}

/// The items of a `Query` or `Scan` page.
fn page_items(page: &Value) -> impl Iterator<Item = &Item> {
    page.get("Items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

impl DynamoStore {
    pub fn new(
        client: Arc<SignedClient>,
        table: impl Into<String>,
        retention: Option<Duration>,
    ) -> Self {
        Self {
            client,
            table: table.into(),
            retention,
            objects: None,
        }
    }

    /// Keeps records too large for an item whole, in `objects`.
    pub fn with_objects(mut self, objects: Objects) -> Self {
        self.objects = Some(objects);
        self
    }

    pub fn client(&self) -> &Arc<SignedClient> {
        &self.client
    }

    async fn call(&self, operation: &str, input: Value) -> Result<Value, CallError> {
        self.client.dynamodb(operation, &input).await
    }

    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        item::get(&self.client, &self.table, item::key(pk, sk)).await
    }

    /// An execution's item, and the key of the object its record went to when the
    /// item cannot hold it (written before the item, which points to it).
    async fn execution_item(
        &self,
        execution: &Execution,
    ) -> Result<(Item, Option<String>), StoreError> {
        let text = serde_json::to_string(execution).map_err(StoreError::unencodable)?;
        let (record, object) = match &self.objects {
            Some(objects) if text.len() > item::MAX_RECORD_BYTES => {
                let key = objects::record_key(&execution.id, execution.paused.is_some());
                objects.put(&key, text).await?;
                (item::Record::of(execution, String::new()), Some(key))
            }
            _ => (item::fit(execution, text), None),
        };
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
        if indexed_by_status(record.status, record.pause_token.is_some()) {
            item.insert(
                "gsi2pk".into(),
                s(item::status_gsi_pk(&execution.workflow_key, record.status)),
            );
        }
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
        match &object {
            Some(key) => item.insert("recordAt".into(), s(key)),
            None => {
                let (name, value) = item::record_attribute(record.text);
                item.insert(name.into(), value)
            }
        };
        Ok((item, object))
    }

    /// A `PutItem` of the execution, with what a caller adds (a condition), and
    /// the object its record went to, if it did.
    async fn put_execution(
        &self,
        execution: &Execution,
    ) -> Result<(Value, Option<String>), StoreError> {
        let execution = &*crate::ports::kept(execution)?;
        let (item, object) = self.execution_item(execution).await?;
        let mut put = json!({"TableName": self.table, "Item": item});
        if self.objects.is_some() {
            // The item replaced comes back (no read units), so the object it
            // pointed to can go.
            put["ReturnValues"] = json!("ALL_OLD");
        }
        Ok((put, object))
    }

    /// Puts an execution's item. After a write that succeeded, the replaced item's
    /// object is deleted. After one whose condition failed, the object written for
    /// it is, unless the item there points to it: a retried attempt fails its
    /// condition on the write of the attempt before it, which did apply. Any other
    /// failure may have applied too, so its object stays (the lifecycle or a prune
    /// removes it if nothing points to it).
    async fn put_item(&self, mut put: Value, object: Option<String>) -> Result<Value, CallError> {
        if self.objects.is_some() && put.get("ConditionExpression").is_some() {
            put["ReturnValuesOnConditionCheckFailure"] = json!("ALL_OLD");
        }
        let result = self.call("PutItem", put).await;
        let Some(objects) = &self.objects else {
            return result;
        };
        let pointed = |item: Option<&Value>| {
            item.and_then(Value::as_object)
                .and_then(|o| get_s(o, "recordAt"))
                .map(str::to_string)
        };
        match &result {
            Ok(reply) => {
                if let Some(old) = pointed(reply.get("Attributes"))
                    && Some(&old) != object.as_ref()
                {
                    objects.discard(&old).await;
                }
            }
            Err(e) if e.code == CONDITION_FAILED => {
                let held = pointed(e.details.as_deref().and_then(|d| d.get("Item")));
                if let Some(ours) = &object
                    && held.as_ref() != Some(ours)
                {
                    objects.discard(ours).await;
                }
            }
            Err(_) => {}
        }
        result
    }

    /// An execution from its item, its record read from the object the item
    /// points to when it has one; `None` for an item past its retention whose
    /// object the bucket's lifecycle removed first (DynamoDB's TTL deletes late).
    async fn execution_of(&self, found: &Item) -> Result<Option<Execution>, StoreError> {
        let mut found = Cow::Borrowed(found);
        // A write may replace the item and delete the object between the two reads:
        // the item read again points to the new one.
        for _ in 0..3 {
            let Some(key) = get_s(&found, "recordAt") else {
                return decode(&found).map(Some);
            };
            let Some(objects) = &self.objects else {
                return Err(StoreError::Unreadable {
                    what: format!(
                        "record at {key}: no claim-check bucket is configured (HOOKFLOW_BUCKET)"
                    ),
                    source: None,
                });
            };
            if let Some(text) = objects.get(key).await? {
                return serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|e| StoreError::unreadable("record", e));
            }
            if item::get_n(&found, "expiresAt")
                .and_then(|at| at.parse::<i64>().ok())
                .is_some_and(|at| at <= crate::time::unix_seconds())
            {
                return Ok(None);
            }
            let Some(pk) = get_s(&found, "pk").map(str::to_string) else {
                break;
            };
            match self.get(pk, "EX").await? {
                Some(again) if get_s(&again, "recordAt") != Some(key) => {
                    found = Cow::Owned(again);
                }
                Some(_) => break,
                None => return Ok(None),
            }
        }
        Err(StoreError::unavailable(
            "an execution's record object is missing; it is read again later",
        ))
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
        // A status the sparse index does not hold whole: by time, then filtered
        // (query_executions checks each record against the filter).
        let (index, pk) = match filter.status {
            Some(status) if indexed_by_status(status, false) => {
                (STATUS_GSI, ("gsi2pk", item::status_gsi_pk(key, status)))
            }
            _ => (GSI, ("gsi1pk", item::executions_gsi_pk(key))),
        };
        let mut input = json!({
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": "#pk = :p AND gsi1sk BETWEEN :lo AND :hi",
            "ExpressionAttributeNames": {"#pk": pk.0},
            "ExpressionAttributeValues": {
                ":p": s(pk.1),
                ":lo": s(filter.lowest_id()),
                ":hi": s(filter.highest_id()),
            },
            "ScanIndexForward": !newest_first,
            "Limit": limit.clamp(1, i32::MAX as usize),
        });
        if let Some(start) = start {
            input["ExclusiveStartKey"] = Value::Object(start);
        }
        let mut page = self.call("Query", input).await.map_err(backend)?;
        let ids = page_items(&page)
            .filter_map(|found| get_s(found, "gsi1sk").map(str::to_string))
            .collect();
        Ok((ids, take_item(&mut page, "LastEvaluatedKey")))
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
    /// Its objects in the claim-check bucket go with it.
    /// With `status`, only one in that status (the ids may come from the index by
    /// time, which holds every status).
    async fn delete_finished(
        &self,
        id: &str,
        status: Option<ExecutionStatus>,
    ) -> Result<bool, StoreError> {
        let mut input = json!({
            "TableName": self.table,
            "Key": {"pk": s(item::execution_pk(id)), "sk": s("EX")},
            "ConditionExpression": "attribute_exists(pk) AND #status <> :started",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":started": s(ExecutionStatus::Started.as_str())},
            "ReturnValues": "ALL_OLD",
        });
        if let Some(status) = status {
            input["ConditionExpression"] =
                json!("attribute_exists(pk) AND #status <> :started AND #status = :wanted");
            input["ExpressionAttributeValues"][":wanted"] = s(status.as_str());
        }
        let result = self.call("DeleteItem", input).await;
        if let (Ok(reply), Some(objects)) = (&result, &self.objects) {
            if let Some(key) = reply
                .get("Attributes")
                .and_then(Value::as_object)
                .and_then(|old| get_s(old, "recordAt"))
            {
                objects.discard(key).await;
            }
            // A context that came by the queue, if the worker did not delete it.
            objects.discard(&objects::message_key(id)).await;
        }
        applied(result)
    }
}

#[async_trait]
impl WorkflowStore for DynamoStore {
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
            let mut input = json!({
                "TableName": self.table,
                "FilterExpression": "sk = :c",
                "ExpressionAttributeValues": {":c": s("CURRENT")},
            });
            if let Some(start) = start {
                input["ExclusiveStartKey"] = Value::Object(start);
            }
            let mut page = self.call("Scan", input).await.map_err(backend)?;
            for found in page_items(&page) {
                out.push(Arc::new(decode(found)?));
            }
            start = take_item(&mut page, "LastEvaluatedKey");
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
        let put = |pk: String, sk: String, condition: Option<&str>| {
            let mut put = json!({
                "TableName": self.table,
                "Item": {
                    "pk": s(pk),
                    "sk": s(sk),
                    "record": s(&record),
                    "workflowKey": s(&workflow.key),
                    "version": n(workflow.version),
                },
            });
            if let Some(c) = condition {
                put["ConditionExpression"] = json!(c);
                put["ExpressionAttributeValues"] = json!({":key": s(&workflow.key)});
            }
            json!({ "Put": put })
        };
        let mut items = vec![
            // The version must be new: a concurrent deploy of the same key loses.
            put(
                pk.clone(),
                item::version_sk(workflow.version),
                Some("attribute_not_exists(pk) AND :key = :key"),
            ),
            put(pk, "CURRENT".into(), None),
            // The hook id must be free or already this key's.
            put(
                item::hook_pk(&workflow.hook_id),
                "HOOK".into(),
                Some("attribute_not_exists(pk) OR workflowKey = :key"),
            ),
        ];
        if let Some(old) = previous.filter(|p| p.hook_id != workflow.hook_id) {
            items.push(json!({"Delete": {
                "TableName": self.table,
                "Key": {"pk": s(item::hook_pk(&old.hook_id)), "sk": s("HOOK")},
            }}));
        }
        let result = self
            .call("TransactWriteItems", json!({ "TransactItems": items }))
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code == "TransactionCanceledException" => {
                if first_cancellation(&e) == Some("ConditionalCheckFailed") {
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
}

#[async_trait]
impl ExecutionStore for DynamoStore {
    async fn write_execution(
        &self,
        execution: &Execution,
        when: Precondition<'_>,
    ) -> Result<bool, StoreError> {
        // The precondition as a ConditionExpression, checked with the write.
        let (mut put, object) = self.put_execution(execution).await?;
        match when {
            Precondition::Always => {
                return self
                    .put_item(put, object)
                    .await
                    .map(|_| true)
                    .map_err(backend);
            }
            Precondition::Absent => {
                put["ConditionExpression"] = json!("attribute_not_exists(pk)");
            }
            Precondition::Running => {
                put["ConditionExpression"] = json!(
                    "attribute_not_exists(pk) OR (#status = :started AND attribute_not_exists(pauseToken))"
                );
                put["ExpressionAttributeNames"] = json!({"#status": "status"});
                put["ExpressionAttributeValues"] = json!({":started": s("started")});
            }
            Precondition::PausedOn(token) => {
                put["ConditionExpression"] = json!("pauseToken = :token");
                put["ExpressionAttributeValues"] = json!({":token": s(token)});
            }
        }
        applied(self.put_item(put, object).await)
    }

    fn as_written<'a>(&self, execution: &'a Execution) -> Cow<'a, Execution> {
        // A claim-check bucket keeps every record whole.
        if execution.paused.is_none() || self.objects.is_some() {
            return Cow::Borrowed(execution);
        }
        // Decided on what is written: a run that redacts adds its sealed state.
        let Ok(kept) = crate::ports::kept(execution) else {
            return Cow::Borrowed(execution);
        };
        let record = item::execution_record(&kept);
        match serde_json::from_str::<Execution>(&record.text) {
            // Already as kept (redacted, if the run redacts): written as it is.
            Ok(written) if record.pause_token.is_none() => Cow::Owned(written),
            _ => Cow::Borrowed(execution),
        }
    }

    async fn begin_execution(
        &self,
        execution: &Execution,
    ) -> Result<Option<Execution>, StoreError> {
        let (mut put, object) = self.put_execution(execution).await?;
        put["ConditionExpression"] = json!("attribute_not_exists(pk)");
        put["ReturnValuesOnConditionCheckFailure"] = json!("ALL_OLD");
        match self.put_item(put, object).await {
            Ok(_) => Ok(None),
            Err(e) if e.code == CONDITION_FAILED => {
                let key = item::key(item::execution_pk(&execution.id), "EX");
                match item::held(&self.client, &self.table, e, key).await? {
                    Some(found) => match self.execution_of(&found).await? {
                        Some(execution) => Ok(Some(execution)),
                        None => Err(StoreError::unavailable(
                            "the execution record expired while it was read; retry",
                        )),
                    },
                    None => Err(StoreError::unavailable(
                        "the execution record changed while it was read; retry",
                    )),
                }
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn execution(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        match self.get(item::execution_pk(id), "EX").await? {
            Some(found) => self.execution_of(&found).await,
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
            let mut input = json!({
                "TableName": self.table,
                "IndexName": STATUS_GSI,
                "KeyConditionExpression": "gsi2pk = :p",
                "ExpressionAttributeValues": {":p": s(&pk)},
                "Select": "COUNT",
                "Limit": (up_to - counted).clamp(1, i32::MAX as usize),
            });
            if let Some(start) = start {
                input["ExclusiveStartKey"] = Value::Object(start);
            }
            let mut page = self.call("Query", input).await.map_err(backend)?;
            counted += page.get("Count").and_then(Value::as_u64).unwrap_or(0) as usize;
            start = take_item(&mut page, "LastEvaluatedKey");
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
                        .map(|id| self.delete_finished(id, filter.status)),
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
}

#[async_trait]
impl ClaimStore for DynamoStore {
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
        copy: &str,
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
}

#[async_trait]
impl ReplayMarks for DynamoStore {
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

#[async_trait]
impl Gathers for DynamoStore {
    async fn join(
        &self,
        group: &str,
        member: &str,
        now: u64,
        max: Option<u32>,
        generation: &str,
        flush_at: u64,
    ) -> Result<Joined, StoreError> {
        let ids = (group, member);
        super::gathers::join(
            &self.client,
            &self.table,
            ids,
            now,
            max,
            (generation, flush_at),
        )
        .await
    }

    async fn gathering(&self, group: &str) -> Result<Option<Gathering>, StoreError> {
        super::gathers::gathering(&self.client, &self.table, group).await
    }

    async fn reschedule(
        &self,
        group: &str,
        generation: &str,
        from: u64,
        to: u64,
    ) -> Result<bool, StoreError> {
        let ids = (group, generation);
        super::gathers::reschedule(&self.client, &self.table, ids, from, to).await
    }

    async fn seal(&self, group: &str, generation: &str) -> Result<bool, StoreError> {
        super::gathers::seal(&self.client, &self.table, (group, generation)).await
    }

    async fn close(&self, group: &str, generation: &str) -> Result<(), StoreError> {
        super::gathers::close(&self.client, &self.table, (group, generation)).await
    }
}

#[async_trait]
impl LaneVersions for DynamoStore {
    async fn raise_lane_version(
        &self,
        lane: &str,
        version: &LaneVersion,
        execution_id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        super::lanes::raise(&self.client, &self.table, lane, version, execution_id).await
    }
}

/// The reason DynamoDB gave for cancelling a transaction's first item
/// (`ConditionalCheckFailed`, `None`, ...): from `CancellationReasons`, or from the
/// message, which lists them too (`... reasons [ConditionalCheckFailed, None]`).
fn first_cancellation(e: &CallError) -> Option<&str> {
    let listed = e
        .details
        .as_ref()
        .and_then(|d| d.get("CancellationReasons")?.get(0)?.get("Code")?.as_str());
    listed.or_else(|| {
        let reasons = e.message.rsplit_once('[')?.1;
        reasons.split([',', ']']).next().map(str::trim)
    })
}

/// Creates the table (for local endpoints and tests; on AWS the SAM template does it).
/// An existing table is left as it is.
pub async fn create_table(client: &SignedClient, table: &str) -> Result<(), StoreError> {
    let key = |name: &str, kind: &str| json!({"AttributeName": name, "KeyType": kind});
    let attr = |name: &str| json!({"AttributeName": name, "AttributeType": "S"});
    // Both indexes sort by id (time) and project keys only.
    let index = |name: &str, hash: &str| {
        json!({
            "IndexName": name,
            "KeySchema": [key(hash, "HASH"), key("gsi1sk", "RANGE")],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        })
    };
    let input = json!({
        "TableName": table,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [key("pk", "HASH"), key("sk", "RANGE")],
        "AttributeDefinitions": (["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk"].map(attr)),
        "GlobalSecondaryIndexes": [index(GSI, "gsi1pk"), index(STATUS_GSI, "gsi2pk")],
    });
    match client.dynamodb("CreateTable", &input).await {
        Ok(_) => {}
        Err(e) if e.code == "ResourceInUseException" => return Ok(()),
        Err(e) => return Err(backend(e)),
    }
    let ttl = json!({
        "TableName": table,
        "TimeToLiveSpecification": {"AttributeName": "expiresAt", "Enabled": true},
    });
    client
        .dynamodb("UpdateTimeToLive", &ttl)
        .await
        .map_err(backend)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_transaction_names_its_first_reason() {
        let mut e = CallError::new(
            "TransactionCanceledException",
            "Transaction cancelled, please refer cancellation reasons for specific reasons \
             [ConditionalCheckFailed, None, None]",
        );
        assert_eq!(first_cancellation(&e), Some("ConditionalCheckFailed"));
        e.details = Some(Box::new(json!({"CancellationReasons": [
            {"Code": "None"}, {"Code": "ConditionalCheckFailed"}
        ]})));
        assert_eq!(first_cancellation(&e), Some("None"));
        assert_eq!(first_cancellation(&CallError::new("X", "no list")), None);
    }
}
