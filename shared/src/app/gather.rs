//! Deliveries gathered into one run (`options.debounce`, `options.batch`;
//! model/flow.rs). Each delivery is a member: the worker records it (an
//! execution of its own, `started` while it waits) and joins it to its key's
//! open gathering; the first to join queues the gathering's check for when it
//! is due. A check that finds it not due yet moves it (one chain of checks
//! survives: the store moves it only from the time that check was for). A due
//! gathering is sealed (deliveries wait), its run queued under the gathering's
//! generation as execution id, its members recorded as taken by that run, and
//! it is closed. Every step is idempotent, and the check's message is settled
//! last: a process killed anywhere repeats the step it was in.

use serde_json::{Value, json};

use super::error::AppError;
use crate::app::idempotency::IdempotencyService;
use crate::model::{
    DeployedWorkflow, Execution, ExecutionStatus, FlowTicket, Flush, GatherKind, GatherTicket,
    Gathering, Joined, RunMessage,
};
use crate::ports::{Queue, Store, Telemetry};
use crate::time::now_rfc3339;

fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// The rule of a workflow's gathering of `kind`: its wait (`periodMs` or
/// `timeoutMs`), `maxWaitMs`, and `maxSize`.
struct Rule {
    wait: u64,
    max_wait: Option<u64>,
    max_size: Option<u32>,
}

impl Rule {
    fn of(workflow: &DeployedWorkflow, kind: GatherKind) -> Option<Self> {
        let options = &workflow.definition.options;
        match kind {
            // A debounce gathers at most as many as a batch: the last to fit
            // runs it (the gathering's list stays a bounded item).
            GatherKind::Debounce => options.debounce.as_ref().map(|d| Self {
                wait: d.period_ms,
                max_wait: d.max_wait_ms,
                max_size: Some(crate::model::MAX_BATCH_SIZE),
            }),
            GatherKind::Batch => options.batch.as_ref().map(|b| Self {
                wait: b.timeout_ms,
                max_wait: None,
                max_size: Some(b.max_size),
            }),
        }
    }

    fn due_at(&self, kind: GatherKind, gathering: &Gathering) -> u64 {
        gathering.due_at(kind, self.wait, self.max_wait)
    }

    fn full(&self, gathering: &Gathering) -> bool {
        self.max_size
            .is_some_and(|max| gathering.members.len() >= max as usize)
    }
}

/// The kind and key of a delivery to `workflow` accepted with `context`, when
/// it gathers: `None` runs it on its own (no gathering, or an empty key).
pub fn ticket(workflow: &DeployedWorkflow, context: &Value) -> Option<GatherTicket> {
    let options = &workflow.definition.options;
    let (kind, key) = match (&options.debounce, &options.batch) {
        (Some(debounce), _) => (GatherKind::Debounce, &debounce.key),
        (None, Some(batch)) => (GatherKind::Batch, &batch.key),
        (None, None) => return None,
    };
    let key = super::lanes::render_text(key, context).filter(|k| !k.is_empty())?;
    Some(GatherTicket {
        kind,
        group: crate::model::group_id(&workflow.key, kind, &key),
        flush: None,
    })
}

/// A gathering delivery's place in the queue: a lane of one per gathering, so
/// its deliveries join in the order they were accepted (a batch takes the
/// first `maxSize` accepted, and one that finds it full waits with those after
/// it behind).
pub fn member_lane(ticket: &GatherTicket) -> FlowTicket {
    FlowTicket {
        lane: Some(ticket.group.clone()),
        lane_concurrency: 1,
        concurrency: None,
    }
}

pub struct Gather<'a> {
    pub store: &'a std::sync::Arc<dyn Store>,
    pub queue: &'a dyn Queue,
    pub telemetry: &'a dyn Telemetry,
}

impl Gather<'_> {
    /// A delivery joins its gathering; `context` is its real one.
    pub async fn member(
        &self,
        workflow: &DeployedWorkflow,
        message: &RunMessage,
        ticket: &GatherTicket,
        context: Value,
    ) -> Result<(), AppError> {
        let Some(rule) = Rule::of(workflow, ticket.kind) else {
            return Err(AppError::NotYet(
                "the workflow no longer gathers this delivery",
            ));
        };
        // A keyed duplicate's copy that is not the one that runs adds nothing.
        if let Some(key) = &message.idempotency_key
            && !IdempotencyService::new(self.store.clone())
                .run_stands(message, key, workflow.definition.idempotency_ttl())
                .await?
        {
            return Ok(());
        }
        let mut member = crate::app::runner::Runner::started(
            workflow,
            &message.execution_id,
            context,
            message.accepted_at.clone(),
        );
        member.idempotency_key = message.idempotency_key.clone();
        member.output = json!({ "waiting": waiting_for(ticket.kind) });
        if !self.store.insert_execution(&member).await?
            && self
                .store
                .execution(&message.execution_id)
                .await?
                .is_some_and(|held| held.status.is_final())
        {
            // Taken by a run already (its gathering closed since): delivered
            // again, it joins no other.
            return Ok(());
        }
        let now = now_ms();
        let generation = crate::app::ids::new_execution_id();
        let joined = self
            .store
            .join(
                &ticket.group,
                &message.execution_id,
                now,
                rule.max_size,
                &generation,
                now.saturating_add(rule.wait),
            )
            .await?;
        let (gathering, added) = match joined {
            Joined::Added(g) => (g, true),
            Joined::Already(g) => (g, false),
            Joined::Closed => {
                return Err(AppError::Busy(
                    "its gathering is full or being run; the delivery joins the next",
                ));
            }
        };
        let flush = |at: Option<u64>| Flush {
            generation: gathering.generation.clone(),
            at,
        };
        if rule.full(&gathering) {
            self.check(message, ticket, flush(None), 0).await?;
        } else if !added || gathering.members.len() == 1 {
            // The first to join starts the chain of checks; a redelivered one
            // starts it again (its first try may have died before it did).
            let wait = gathering.flush_at.saturating_sub(now);
            self.check(message, ticket, flush(Some(gathering.flush_at)), wait)
                .await?;
        }
        Ok(())
    }

    /// Queues a check of the gathering in `wait` ms.
    async fn check(
        &self,
        message: &RunMessage,
        ticket: &GatherTicket,
        flush: Flush,
        wait: u64,
    ) -> Result<(), AppError> {
        let check = RunMessage {
            execution_id: flush.generation.clone(),
            context: Value::Null,
            idempotency_key: None,
            copy_id: None,
            context_at: None,
            sealed: None,
            flow: None,
            gather: Some(GatherTicket {
                flush: Some(flush),
                ..ticket.clone()
            }),
            ..message.clone()
        };
        let delay = std::time::Duration::from_millis(wait);
        self.queue.enqueue_after(&check, delay).await?;
        Ok(())
    }

    /// A check of a gathering: not due, moved; due, its run made.
    pub async fn flush(
        &self,
        workflow: &DeployedWorkflow,
        message: &RunMessage,
        ticket: &GatherTicket,
        flush: &Flush,
    ) -> Result<(), AppError> {
        let Some(rule) = Rule::of(workflow, ticket.kind) else {
            return Err(AppError::NotYet("the workflow no longer gathers"));
        };
        let gathering = match self.store.gathering(&ticket.group).await? {
            Some(g) if g.generation == flush.generation => g,
            // Its run was made and it closed: a check delivered again.
            _ => return Ok(()),
        };
        if !gathering.sealed {
            let now = now_ms();
            let due_at = rule.due_at(ticket.kind, &gathering);
            if now < due_at && !rule.full(&gathering) {
                // Only the chain's own check moves it, or any check once the
                // chain's time has passed (its check was lost); others end here.
                let ours = flush.at == Some(gathering.flush_at) || gathering.flush_at <= now;
                if ours {
                    // The next check is queued before the time moves: killed in
                    // between, this check comes again and does both again.
                    let next = Flush {
                        generation: flush.generation.clone(),
                        at: Some(due_at),
                    };
                    self.check(message, ticket, next, due_at - now).await?;
                    self.store
                        .reschedule(&ticket.group, &flush.generation, gathering.flush_at, due_at)
                        .await?;
                }
                return Ok(());
            }
            if !self.store.seal(&ticket.group, &flush.generation).await? {
                return Ok(());
            }
        }
        let sealed = match self.store.gathering(&ticket.group).await? {
            Some(g) if g.generation == flush.generation => g,
            _ => return Ok(()),
        };
        self.run(workflow, message, ticket, &sealed).await?;
        self.store.close(&ticket.group, &flush.generation).await?;
        Ok(())
    }

    /// Queues the sealed gathering's run and records its members as taken.
    async fn run(
        &self,
        workflow: &DeployedWorkflow,
        message: &RunMessage,
        ticket: &GatherTicket,
        gathering: &Gathering,
    ) -> Result<(), AppError> {
        // In the order they joined: their lane's, the order they were accepted.
        let mut members = Vec::with_capacity(gathering.members.len());
        for id in &gathering.members {
            if let Some(member) = self.store.execution(id).await? {
                members.push(member);
            }
        }
        let Some(last) = members.last() else {
            return Ok(());
        };
        let mut context = last.context.clone();
        let count = members.len();
        let (first_at, last_at) = (members[0].created_at.clone(), last.created_at.clone());
        if let Value::Object(map) = &mut context {
            match ticket.kind {
                GatherKind::Debounce => {
                    map.insert(
                        "debounce".into(),
                        json!({"count": count, "firstAt": first_at, "lastAt": last_at}),
                    );
                }
                GatherKind::Batch => {
                    let contexts = members.iter().map(|m| m.context.clone()).collect();
                    map.insert("batch".into(), Value::Array(contexts));
                }
            }
        }
        let run = RunMessage {
            execution_id: gathering.generation.clone(),
            workflow_key: workflow.key.clone(),
            workflow_version: workflow.version,
            accepted_at: now_rfc3339(),
            flow: super::lanes::ticket(workflow, &context),
            context,
            wake: None,
            after: None,
            idempotency_key: None,
            replay_of: None,
            on_failure_of: None,
            copy_id: None,
            context_at: None,
            sealed: None,
            gather: None,
            sent_once: false,
        };
        self.queue.enqueue(&run).await?;
        let kind = kind_name(ticket.kind);
        for (position, member) in members.into_iter().enumerate() {
            if member.status.is_final() {
                continue;
            }
            let taken = Execution {
                status: ExecutionStatus::Resolved,
                output: json!({ kind: {"into": gathering.generation, "position": position + 1, "of": count} }),
                finished_at: Some(now_rfc3339()),
                ..member
            };
            self.store.save_execution(&taken).await?;
        }
        self.telemetry.gathered(&workflow.key, kind, count);
        tracing::info!(execution_id = %gathering.generation, count, kind, hook = %message.workflow_key, "a gathering's run is queued");
        Ok(())
    }
}

fn waiting_for(kind: GatherKind) -> &'static str {
    match kind {
        GatherKind::Debounce => "debounce",
        GatherKind::Batch => "batch",
    }
}

fn kind_name(kind: GatherKind) -> &'static str {
    match kind {
        GatherKind::Debounce => "debounced",
        GatherKind::Batch => "batched",
    }
}
