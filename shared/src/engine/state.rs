//! What a run knows while it runs: the trigger context, finished nodes' results,
//! loop scopes, the output and the jobs so far.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};

use super::budget::Budget;
use super::halt::{BranchOutcome, Decider, Halt, NodeStop};
use super::instance::Engine;
use super::layered::Layered;
use crate::lang::limits::json_len_up_to;
use crate::lang::path::{self, Segment};
use crate::lang::template::{self, Variables};
use crate::model::{
    Allowance, Cursor, ExecutionStatus, Job, JobStatus, KeptAs, NodeDefinition, Paused,
};
use crate::time::now_rfc3339;

/// Indexes of the jobs one parallel branch started (nested branches included).
pub(super) type Owned = Arc<Mutex<Vec<usize>>>;

pub struct RunState {
    execution_id: String,
    /// Read-only, so parallel branches share it rather than copy it.
    context: Arc<Value>,
    env: Arc<Value>,
    /// `$jobsMapByNodeKey`: node key → latest result.
    results: Layered,
    /// `$scopes`: node key → loop variables.
    scopes: Layered,
    output: Arc<Value>,
    /// Bytes of job results, logs and output the record keeps, with the parallel
    /// forks (see [`super::Limits::max_kept_bytes`]).
    kept: Arc<AtomicUsize>,
    /// Every job of the run in the order they started, shared with parallel forks so
    /// a job is one record wherever it runs (and survives a fork dropped by a
    /// timeout). A job's index here is its identity, also across a pause.
    jobs: Arc<Mutex<Vec<Job>>>,
    /// The job lists of the parallel branches this state runs in, outermost first:
    /// a job started here is listed in each, so a canceled branch finds all of its
    /// jobs, even those of nested branches that were dropped with it.
    lineage: Vec<Owned>,
    /// Shared with parallel forks and with the subflow runs this run waits for
    /// in process, so the limits count all of them; made at the walk's start
    /// unless the run was given one.
    budget: Option<Arc<Budget>>,
    /// Whether the budget is this run's own rather than its caller's.
    owns_budget: bool,
    /// Node runs a paused record from before budgets were kept counted.
    nodes_before: usize,
    /// Whether the workflow runs sync, and how deep in subflow calls.
    sync: bool,
    depth: usize,
    /// The failed execution whose failure workflow this run belongs to (see
    /// `Execution::on_failure_of`); the subflows it calls belong to it too.
    on_failure_of: Option<String>,
    /// How the run's records are kept (`trigger.redact`); the subflow runs it
    /// starts are kept so too.
    kept_as: KeptAs,
}

impl RunState {
    /// `env` is the object of exposed environment variables (`$env`).
    pub fn new(execution_id: impl Into<String>, context: Value, env: Arc<Value>) -> Self {
        Self {
            execution_id: execution_id.into(),
            context: Arc::new(context),
            env,
            results: Layered::default(),
            scopes: Layered::default(),
            output: Arc::new(Value::Null),
            kept: Arc::new(AtomicUsize::new(0)),
            jobs: Arc::new(Mutex::new(Vec::new())),
            lineage: Vec::new(),
            budget: None,
            owns_budget: true,
            nodes_before: 0,
            sync: false,
            depth: 0,
            on_failure_of: None,
            kept_as: KeptAs::default(),
        }
    }

    /// The state a paused run stopped in, from its record.
    pub fn resumed(
        execution_id: impl Into<String>,
        context: Value,
        env: Arc<Value>,
        output: Value,
        jobs: Vec<Job>,
        paused: &Paused,
    ) -> Self {
        let mut state = Self::new(execution_id, context, env);
        let kept = json_len_up_to(&output, usize::MAX) + jobs.iter().map(kept_by).sum::<usize>();
        state.kept = Arc::new(AtomicUsize::new(kept));
        state.output = Arc::new(output);
        state.jobs = Arc::new(Mutex::new(jobs));
        state.results = Layered::from_value(paused.results.clone());
        state.scopes = Layered::from_value(paused.scopes.clone());
        state.nodes_before = paused.node_runs;
        state
    }

    /// Runs under a budget of its own, kept in its record (a resumed run).
    pub fn with_budget(mut self, budget: Arc<Budget>) -> Self {
        self.budget = Some(budget);
        self.owns_budget = true;
        self
    }

    /// Spends its caller's budget (a subflow run working in its caller's process).
    pub fn sharing_budget(mut self, budget: Arc<Budget>) -> Self {
        self.budget = Some(budget);
        self.owns_budget = false;
        self
    }

    /// Gives the run its budget at the walk's start, unless it has one.
    pub(super) fn ensure_budget(&mut self, limits: &super::Limits) {
        if self.budget.is_none() {
            let budget = Budget::new(limits);
            budget.add_nodes_used(self.nodes_before);
            self.budget = Some(Arc::new(budget));
        }
    }

    /// The budget as this run's record keeps it; `None` when it spends its caller's.
    pub fn own_budget(&self) -> Option<Allowance> {
        self.budget
            .as_ref()
            .filter(|_| self.owns_budget)
            .map(|b| b.allowance())
    }

    /// The budget this run spends, for a subflow run it starts.
    pub(super) fn budget(&self) -> Option<Arc<Budget>> {
        self.budget.clone()
    }

    /// Sets `$context` (a state made before its context was at hand).
    pub fn with_context(mut self, context: Value) -> Self {
        self.context = Arc::new(context);
        self
    }

    /// Marks the run as sync or async, at a subflow call depth.
    pub fn with_call(mut self, sync: bool, depth: usize) -> Self {
        self.sync = sync;
        self.depth = depth;
        self
    }

    /// Marks the run as one a failure workflow's run started (or that run itself).
    pub fn with_failure_of(mut self, failed: Option<String>) -> Self {
        self.on_failure_of = failed;
        self
    }

    /// Keeps the subflow runs this run starts as its own records are kept.
    pub fn with_kept_as(mut self, kept_as: KeptAs) -> Self {
        self.kept_as = kept_as;
        self
    }

    pub fn output(&self) -> &Value {
        &self.output
    }

    /// `$jobsMapByNodeKey` as it stands (a copy, for a record).
    pub fn results(&self) -> Value {
        self.results.to_value()
    }

    /// `$scopes` as it stands (a copy, for a record).
    pub fn scopes(&self) -> Value {
        self.scopes.to_value()
    }

    /// Node runs so far, of the run and the subflow runs sharing its budget.
    pub fn node_runs(&self) -> usize {
        self.budget
            .as_ref()
            .map_or(self.nodes_before, |b| b.allowance().nodes_used)
    }

    pub fn depth(&self) -> usize {
        self.depth
    }

    fn lock_jobs(&self) -> MutexGuard<'_, Vec<Job>> {
        // A panic while the lock was held leaves plain data behind; keep going.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the recorded pieces over once the run is over.
    pub fn into_parts(self) -> (Value, Value, Vec<Job>) {
        let jobs = std::mem::take(&mut *self.lock_jobs());
        // Forks are gone by now: no copy is made.
        let context = Arc::try_unwrap(self.context).unwrap_or_else(|c| (*c).clone());
        let output = Arc::try_unwrap(self.output).unwrap_or_else(|o| (*o).clone());
        (context, output, jobs)
    }

    /// Marks jobs still pending (a timed-out run) as aborted.
    pub fn abort_pending(&mut self) {
        let now = now_rfc3339();
        for job in self
            .lock_jobs()
            .iter_mut()
            .filter(|j| j.status == JobStatus::Pending)
        {
            job.status = JobStatus::Aborted;
            job.finished_at = Some(now.clone());
        }
    }

    /// Marks jobs still pending (a run stopped by an internal error) as `error`.
    pub fn error_pending(&mut self, message: &str) {
        let now = now_rfc3339();
        for job in self
            .lock_jobs()
            .iter_mut()
            .filter(|j| j.status == JobStatus::Pending)
        {
            job.status = JobStatus::Error;
            job.result = json!({ "message": message });
            job.finished_at = Some(now.clone());
        }
    }

    /// Sets the execution's output.
    pub fn set_output(&mut self, output: Value) {
        self.charge(
            json_len_up_to(&output, usize::MAX),
            json_len_up_to(&self.output, usize::MAX),
        );
        self.output = Arc::new(output);
    }

    /// Counts `added` bytes kept in place of `dropped`.
    fn charge(&self, added: usize, dropped: usize) {
        let _ = self
            .kept
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |kept| {
                Some((kept + added).saturating_sub(dropped))
            });
    }

    /// Whether the record may keep `result` as a job's result, within
    /// [`super::Limits::max_kept_bytes`]; why not, past it.
    pub(super) fn keeps(
        &self,
        index: usize,
        result: &Value,
        limits: &super::Limits,
    ) -> Result<(), String> {
        let cap = limits.max_kept_bytes;
        let dropped = json_len_up_to(&self.lock_jobs()[index].result, usize::MAX);
        let added = json_len_up_to(result, cap.saturating_add(1));
        let kept = self.kept.load(Ordering::Relaxed);
        if (kept + added).saturating_sub(dropped) > cap {
            return Err(format!(
                "the run's results exceed {} (the bytes an execution may keep: results, logs and output)",
                super::budget::in_units(cap)
            ));
        }
        Ok(())
    }

    /// Bytes the record keeps of results, logs and output so far.
    pub fn kept_bytes(&self) -> usize {
        self.kept.load(Ordering::Relaxed)
    }

    /// Counts one more node run against the budget; why not, once it is spent.
    pub(super) fn take_node(&mut self, limits: &super::Limits) -> Result<(), String> {
        self.ensure_budget(limits);
        match &self.budget {
            Some(budget) => budget.take_node(),
            None => Ok(()),
        }
    }

    pub(super) fn start_job(&mut self, node: &NodeDefinition) -> usize {
        let index = {
            let mut jobs = self.lock_jobs();
            jobs.push(Job {
                node_key: node.key.clone(),
                node_type: node.kind.clone(),
                status: JobStatus::Pending,
                result: Value::Null,
                started_at: now_rfc3339(),
                finished_at: None,
                log: Vec::new(),
                attempts: 0,
            });
            jobs.len() - 1
        };
        for owned in &self.lineage {
            owned.lock().unwrap_or_else(|e| e.into_inner()).push(index);
        }
        index
    }

    fn set_job_result(&mut self, index: usize, result: Value) {
        let added = json_len_up_to(&result, usize::MAX);
        let (key, dropped) = {
            let mut jobs = self.lock_jobs();
            let dropped = json_len_up_to(&jobs[index].result, usize::MAX);
            jobs[index].result = result.clone();
            (jobs[index].node_key.clone(), dropped)
        };
        self.charge(added, dropped);
        self.results.insert(key, result);
    }

    /// Records an attempt of a node with `retry`: how many runs so far, and
    /// (while it waits for the next) the failure that made it retry.
    pub(super) fn note_attempt(&mut self, index: usize, attempts: u32, failure: Option<Value>) {
        if let Some(failure) = failure {
            self.set_job_result(index, failure);
        }
        self.lock_jobs()[index].attempts = attempts;
    }

    /// How many times a job's node ran so far (0 on a node without `retry`).
    pub(super) fn job_attempts(&self, index: usize) -> u32 {
        self.lock_jobs().get(index).map_or(0, |j| j.attempts)
    }

    /// Whether a caller waits for this run (a sync workflow, or a subflow of one).
    pub(super) fn is_sync(&self) -> bool {
        self.sync
    }

    /// A job's result as it stands.
    pub(super) fn job_result(&self, index: usize) -> Value {
        self.lock_jobs()[index].result.clone()
    }

    pub(super) fn log(&mut self, index: usize, line: String) {
        self.charge(line.len() + 3, 0);
        self.lock_jobs()[index].log.push(line);
    }

    pub(super) fn finish_job(&mut self, index: usize, status: JobStatus, result: Value) {
        self.set_job_result(index, result);
        let mut jobs = self.lock_jobs();
        let job = &mut jobs[index];
        job.status = status;
        job.finished_at = Some(now_rfc3339());
    }

    /// Records how a node stopped and turns it into the halt that ends the run.
    /// A pause is not a stop: the walk turns [`NodeStop::Pause`] into a paused halt.
    pub(super) fn stop_job(&mut self, index: usize, stop: NodeStop) -> Halt {
        let (status, result, halt) = match stop {
            NodeStop::Fail(result) => (
                JobStatus::Failed,
                Some(result),
                Halt::new(ExecutionStatus::Failed),
            ),
            NodeStop::Error(message) => (
                JobStatus::Error,
                Some(json!({ "message": message })),
                Halt::new(ExecutionStatus::Error),
            ),
            NodeStop::End { resolved } => {
                let (job, exec) = if resolved {
                    (JobStatus::Resolved, ExecutionStatus::Resolved)
                } else {
                    (JobStatus::Failed, ExecutionStatus::Failed)
                };
                (job, Some(Value::Null), Halt::terminal(exec, None))
            }
            NodeStop::Respond(reply) => {
                let result = serde_json::to_value(&reply).unwrap_or(Value::Null);
                let halt = Halt::terminal(ExecutionStatus::Resolved, Some(reply));
                (JobStatus::Resolved, Some(result), halt)
            }
            NodeStop::Halted(halt) => (halt.job_status(), None, halt),
            // The walk turns a pause into a paused halt before it gets here; a pause
            // reaching this point has no position to resume from.
            NodeStop::Pause { .. } => (
                JobStatus::Error,
                Some(json!({ "message": "the node paused where a run cannot wait" })),
                Halt::new(ExecutionStatus::Error),
            ),
        };
        let result = result.unwrap_or_else(|| self.job_result(index));
        self.finish_job(index, status, result);
        halt
    }

    /// Records a node that could not even start (unknown type, a limit reached).
    pub(super) fn error_job(
        &mut self,
        node: &NodeDefinition,
        message: String,
        terminal: bool,
    ) -> Halt {
        let index = self.start_job(node);
        let mut halt = self.stop_job(index, NodeStop::Error(message));
        halt.terminal = terminal;
        halt
    }

    /// A copy for one parallel branch: the same variables and job list; the jobs it
    /// starts are also listed in `owned`.
    /// Nothing but the branch's own writes is copied: the context, the variables
    /// seen so far and the output are shared.
    pub(super) fn fork(&mut self, owned: Owned) -> RunState {
        let mut lineage = self.lineage.clone();
        lineage.push(owned);
        RunState {
            execution_id: self.execution_id.clone(),
            context: Arc::clone(&self.context),
            env: Arc::clone(&self.env),
            results: self.results.fork(),
            scopes: self.scopes.fork(),
            output: Arc::clone(&self.output),
            kept: Arc::clone(&self.kept),
            jobs: Arc::clone(&self.jobs),
            lineage,
            budget: self.budget.clone(),
            owns_budget: self.owns_budget,
            nodes_before: self.nodes_before,
            sync: self.sync,
            depth: self.depth,
            on_failure_of: self.on_failure_of.clone(),
            kept_as: self.kept_as.clone(),
        }
    }

    /// Takes a finished, paused or canceled branch back: its results and output
    /// over ours. A branch's changes are the keys whose value differs from what it
    /// saw at its fork (a node's own result, or a variable assigned).
    pub(super) fn join(&mut self, branch: RunState) {
        for (key, value) in branch.results.changes() {
            self.results.insert(key, value);
        }
        if !Arc::ptr_eq(&branch.output, &self.output) && !branch.output.is_null() {
            self.output = branch.output;
        }
    }

    /// Whether a resume cursor points at a pending job of this node (a record that
    /// was edited or damaged must not resume somewhere else).
    pub(super) fn is_pending_job_of(&self, index: usize, node_key: &str) -> bool {
        self.lock_jobs()
            .get(index)
            .is_some_and(|j| j.status == JobStatus::Pending && j.node_key == node_key)
    }

    /// Replaces `$jobsMapByNodeKey` (a parallel branch resuming with its own view).
    pub(super) fn set_results(&mut self, results: Value) {
        self.results = Layered::from_value(results);
    }

    /// The jobs of `owned` still pending.
    pub(super) fn pending_of(&self, owned: &Owned) -> Vec<usize> {
        let jobs = self.lock_jobs();
        owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .filter(|&i| jobs.get(i).is_some_and(|j| j.status == JobStatus::Pending))
            .collect()
    }

    /// Records the jobs of a branch that no longer matters, still pending, as `canceled`.
    pub(super) fn cancel_pending(&mut self, owned: &Owned) {
        let pending = self.pending_of(owned);
        let now = now_rfc3339();
        let mut jobs = self.lock_jobs();
        for i in pending {
            jobs[i].status = JobStatus::Canceled;
            jobs[i].finished_at = Some(now.clone());
        }
    }

    /// Sets (or, with `None`, removes) the loop variables of a loop node.
    pub(super) fn set_scope(&mut self, key: &str, scope: Option<Value>) {
        match scope {
            Some(v) => self.scopes.insert(key.to_string(), v),
            None => self.scopes.remove(key),
        }
    }

    /// Writes a value as another node's result (a `variable` node assigning).
    pub(super) fn assign_result(&mut self, key: &str, value: Value) {
        self.results.insert(key.to_string(), value);
    }
}

/// Bytes a job keeps in the record: its result and its log.
fn kept_by(job: &Job) -> usize {
    json_len_up_to(&job.result, usize::MAX) + job.log.iter().map(|l| l.len() + 3).sum::<usize>()
}

impl Variables for RunState {
    fn lookup(&self, root: &str, path: &[Segment]) -> Option<Value> {
        let base = match root {
            "$context" => self.context.as_ref(),
            "$jobsMapByNodeKey" => return self.results.lookup(path),
            "$scopes" => return self.scopes.lookup(path),
            "$env" => self.env.as_ref(),
            "$system" => return self.system(path),
            _ => return None,
        };
        path::get(base, path).cloned()
    }
}

impl RunState {
    fn system(&self, path: &[Segment]) -> Option<Value> {
        let system = json!({ "now": now_rfc3339(), "executionId": self.execution_id });
        path::get(&system, path).cloned()
    }
}

/// A node's view of the run while it runs.
pub struct RunContext<'a> {
    pub(super) engine: &'a Engine,
    pub(super) state: &'a mut RunState,
    pub(super) job: usize,
}

impl RunContext<'_> {
    /// Renders templates inside a config value against the run's variables.
    pub fn render(&self, value: &Value) -> Value {
        template::render(value, &*self.state)
    }

    /// The value of one variable path (`$context.body.id`); missing is null.
    pub fn resolve(&self, reference: &str) -> Value {
        template::resolve(reference, &*self.state)
    }

    /// Sets this node's result before it finishes, so its own branches can read it.
    pub fn set_result(&mut self, result: Value) {
        self.state.set_job_result(self.job, result);
    }

    /// This node's result as it stands (set before it paused, for one).
    pub fn result(&self) -> Value {
        self.state.job_result(self.job)
    }

    /// Adds a line to this node's log.
    pub fn log(&mut self, line: String) {
        self.state.log(self.job, line);
    }

    /// Sets the execution's output.
    pub fn set_output(&mut self, output: Value) {
        self.state.set_output(output);
    }

    /// Sets the loop variables `$scopes.<this node>` (or removes them with `None`).
    pub fn set_scope(&mut self, key: &str, scope: Option<Value>) {
        self.state.set_scope(key, scope);
    }

    /// Overwrites another node's result, as later `$jobsMapByNodeKey` reads see it.
    pub fn assign_result(&mut self, key: &str, value: Value) {
        self.state.assign_result(key, value);
    }

    /// How a child execution that paused stands now: `None` while it still waits.
    pub async fn subflow_outcome(
        &self,
        execution_id: &str,
    ) -> Result<Option<super::SubflowResult>, super::SubflowError> {
        let subflows = self
            .engine
            .subflows()
            .ok_or(super::SubflowError::NotConfigured)?;
        let outcome = subflows.outcome(execution_id).await?;
        // A child that paused took a share of this run's budget: what it left
        // comes back once it ended.
        if let Some(left) = outcome.as_ref().and_then(|o| o.left.as_ref())
            && let Some(budget) = &self.state.budget
        {
            budget.give_back(left);
        }
        Ok(outcome)
    }

    /// Why the budget of the run (and its subflow runs) stopped it, once it did.
    pub fn budget_spent(&self) -> Option<String> {
        let budget = self.state.budget.as_ref()?;
        budget.spent().map(str::to_string)
    }

    /// Runs another workflow as a child of this execution.
    pub async fn call_subflow(
        &self,
        workflow_key: &str,
        context: Value,
    ) -> Result<super::SubflowResult, super::SubflowError> {
        let subflows = self
            .engine
            .subflows()
            .ok_or(super::SubflowError::NotConfigured)?;
        let limits = self.engine.limits();
        let budget = self
            .state
            .budget()
            .unwrap_or_else(|| Arc::new(Budget::new(limits)));
        subflows
            .call(super::SubflowCall {
                workflow_key: workflow_key.to_string(),
                context,
                parent_execution_id: self.state.execution_id.clone(),
                parent_sync: self.state.sync,
                parent_depth: self.state.depth,
                parent_on_failure_of: self.state.on_failure_of.clone(),
                parent_kept_as: self.state.kept_as.clone(),
                budget,
            })
            .await
    }

    /// The engine's limits (loop iteration cap, ...).
    pub fn limits(&self) -> &super::Limits {
        self.engine.limits()
    }

    /// Runs several of the node's branches concurrently, or (with the `frame` a
    /// pause saved) goes on with them; see [`super::Engine::run_parallel`].
    pub async fn run_branches_concurrently(
        &mut self,
        node: &NodeDefinition,
        indexes: &[String],
        decide: Decider<'_>,
        resume: Option<super::ParallelFrame>,
    ) -> Result<Vec<BranchOutcome>, NodeStop> {
        self.engine
            .run_parallel(node, indexes, self.state, decide, resume)
            .await
    }

    /// Goes on with a branch that paused, from where it stood (a
    /// [`super::BranchFrame`]'s `inner`).
    pub async fn resume_branch(
        &mut self,
        node: &NodeDefinition,
        index: &str,
        cursor: Cursor,
    ) -> Result<(), Halt> {
        match node.branch(index) {
            Some(nodes) => {
                self.engine
                    .run_nodes_from(nodes, self.state, Some(cursor))
                    .await
            }
            None => Ok(()),
        }
    }

    /// Runs one of the node's branches to its end (a missing branch is empty).
    pub async fn run_branch(&mut self, node: &NodeDefinition, index: &str) -> Result<(), Halt> {
        match node.branch(index) {
            Some(nodes) => self.engine.run_nodes_from(nodes, self.state, None).await,
            None => Ok(()),
        }
    }
}
