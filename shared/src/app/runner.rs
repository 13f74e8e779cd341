//! Runs one workflow version to an execution record. Shared by the sync webhook path
//! and the async worker, so both record executions the same way.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::engine::{Budget, Engine, Outcome, Reply, RunState};
use crate::model::{DeployedWorkflow, Execution, ExecutionStatus, Paused};
use crate::time::now_rfc3339;

/// A finished (or aborted) run.
#[derive(Debug)]
pub struct Finished {
    pub execution: Execution,
    /// What a response node answered, if one ran.
    pub reply: Option<Reply>,
    pub timed_out: bool,
}

pub struct Runner {
    engine: Arc<Engine>,
    /// `$env`: only the variables the deployment exposes.
    env: Arc<Value>,
}

impl Runner {
    pub fn new(engine: Arc<Engine>, env: Arc<Value>) -> Self {
        Self { engine, env }
    }

    /// A new execution record in the `started` state.
    pub fn started(
        workflow: &DeployedWorkflow,
        id: &str,
        context: Value,
        created_at: String,
    ) -> Execution {
        Execution {
            id: id.to_string(),
            workflow_key: workflow.key.clone(),
            workflow_version: workflow.version,
            status: ExecutionStatus::Started,
            context,
            output: Value::Null,
            jobs: Vec::new(),
            created_at,
            finished_at: None,
            parent_execution_id: None,
            paused: None,
            attempts: 0,
            idempotency_key: None,
            replay_of: None,
            on_failure_of: None,
            budget: None,
            sealed: None,
            kept_as: Default::default(),
        }
    }

    /// Runs the workflow; past `timeout` the run is dropped where it stands and
    /// recorded as aborted.
    pub async fn run(
        &self,
        execution: Execution,
        workflow: &DeployedWorkflow,
        timeout: Option<Duration>,
    ) -> Finished {
        let state = RunState::new(execution.id.clone(), Value::Null, Arc::clone(&self.env));
        self.walk(execution, workflow, timeout, 0, state).await
    }

    /// Runs a workflow called by a `subflow` node `depth` levels down, spending
    /// its caller's `budget`.
    pub async fn run_at_depth(
        &self,
        execution: Execution,
        workflow: &DeployedWorkflow,
        depth: usize,
        budget: Arc<Budget>,
    ) -> Finished {
        let state = RunState::new(execution.id.clone(), Value::Null, Arc::clone(&self.env))
            .sharing_budget(budget);
        self.walk(execution, workflow, None, depth, state).await
    }

    async fn walk(
        &self,
        mut execution: Execution,
        workflow: &DeployedWorkflow,
        timeout: Option<Duration>,
        depth: usize,
        state: RunState,
    ) -> Finished {
        let context = std::mem::take(&mut execution.context);
        let mut state = state
            .with_context(context)
            .with_call(workflow.definition.sync, depth)
            .with_failure_of(execution.on_failure_of.clone())
            .with_kept_as(execution.kept_as.clone());
        let nodes = &workflow.definition.nodes;
        let walk = guarded(self.engine.run(nodes, &mut state));
        let ended = match timeout {
            Some(limit) => tokio::time::timeout(limit, walk)
                .await
                .unwrap_or(Err(Stopped::TimedOut)),
            None => walk.await,
        };
        finish(execution, workflow, state, ended)
    }

    /// Goes on with a paused execution (its record, `paused` set) from where it
    /// stopped; it may finish or pause again.
    pub async fn resume(&self, mut execution: Execution, workflow: &DeployedWorkflow) -> Finished {
        let Some(paused) = execution.paused.take() else {
            return Finished {
                execution,
                reply: None,
                timed_out: false,
            };
        };
        let mut state = RunState::resumed(
            execution.id.clone(),
            std::mem::take(&mut execution.context),
            Arc::clone(&self.env),
            std::mem::take(&mut execution.output),
            std::mem::take(&mut execution.jobs),
            &paused,
        )
        .with_call(workflow.definition.sync, paused.depth)
        .with_failure_of(execution.on_failure_of.clone())
        .with_kept_as(execution.kept_as.clone());
        // Kept in the record: a subflow run that paused took a share along.
        if let Some(allowance) = execution.budget {
            let share = execution.parent_execution_id.is_some();
            let budget = Budget::from_allowance(allowance, self.engine.limits(), share);
            state = state.with_budget(Arc::new(budget));
        }
        let nodes = &workflow.definition.nodes;
        let walk = self.engine.resume(nodes, &mut state, paused.cursor);
        let ended = guarded(walk).await;
        finish(execution, workflow, state, ended)
    }
}

/// Why a walk stopped before it ended on its own.
enum Stopped {
    TimedOut,
    /// A panic outside any node (a bug in the engine itself), with its message.
    Panicked(String),
}

async fn guarded(walk: impl Future<Output = Outcome>) -> Result<Outcome, Stopped> {
    crate::guard::catch(walk).await.map_err(Stopped::Panicked)
}

/// Writes how the run ended (or paused) into its record. Out of time, its pending
/// jobs are recorded as aborted; on a panic, the execution is recorded as `error`
/// with the panic's message.
fn finish(
    mut execution: Execution,
    workflow: &DeployedWorkflow,
    mut state: RunState,
    ended: Result<Outcome, Stopped>,
) -> Finished {
    let timed_out = matches!(ended, Err(Stopped::TimedOut));
    let (status, reply, pause) = match ended {
        Ok(o) => (o.status, o.reply, o.pause),
        Err(Stopped::TimedOut) => {
            state.abort_pending();
            (ExecutionStatus::Aborted, None, None)
        }
        Err(Stopped::Panicked(panic)) => {
            state.error_pending(&panic);
            state.set_output(serde_json::json!({
                "error": format!("the run failed on an internal error (a bug): {panic}")
            }));
            (ExecutionStatus::Error, None, None)
        }
    };
    let paused = pause.map(|pause| Paused {
        wake_at: Paused::earliest_until(&pause.waits),
        waits: pause.waits,
        token: uuid::Uuid::new_v4().simple().to_string(),
        cursor: pause.cursor,
        results: state.results(),
        scopes: state.scopes(),
        node_runs: state.node_runs(),
        depth: state.depth(),
    });
    // Kept while the run waits, and once it ran on a budget its record kept (its
    // caller reads what a subflow run left of its share).
    if paused.is_some() || execution.budget.is_some() {
        execution.budget = state.own_budget();
    }
    let (context, output, jobs) = state.into_parts();
    execution.context = context;
    execution.output = output;
    execution.jobs = jobs;
    execution.status = status;
    execution.paused = paused;
    execution.finished_at = None;
    if execution.paused.is_some() && workflow.definition.sync {
        // Validation keeps waiting nodes out of sync workflows; never hang a request.
        execution.paused = None;
        execution.status = ExecutionStatus::Error;
        execution.output = serde_json::json!({ "error": "a sync workflow cannot wait" });
    }
    if execution.status.is_final() {
        let now = now_rfc3339();
        // A finished execution has no job still running: one left pending (a branch
        // dropped when a node panicked) ended with the run.
        execution.cancel_pending_jobs(&now);
        execution.finished_at = Some(now);
    }
    Finished {
        execution,
        reply,
        timed_out,
    }
}
