//! The graph walk: a list of nodes runs top to bottom; a branching node runs its
//! branches through [`super::RunContext::run_branch`], and the walk continues after
//! it once they are done. A halt anywhere ends the whole execution.

use std::future::Future;
use std::pin::Pin;

use serde_json::{Value, json};

use super::halt::{Halt, NodeStop, Pause, Reply};
use super::instance::Engine;
use super::node::NodeType;
use super::retry::{self, RetryFrame};
use super::state::{RunContext, RunState};
use crate::lang::limits;
use crate::model::{Cursor, ExecutionStatus, JobStatus, NodeDefinition, Wait};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: ExecutionStatus,
    /// Set when a response node answered (sync workflows).
    pub reply: Option<Reply>,
    /// Set when the run paused (status `started`): where, and what it waits for.
    pub pause: Option<Pause>,
}

impl Engine {
    /// Runs a workflow's main line to its end, or to a pause.
    pub async fn run(&self, nodes: &[NodeDefinition], state: &mut RunState) -> Outcome {
        state.ensure_budget(&self.limits);
        Outcome::of(self.run_nodes_from(nodes, state, None).await)
    }

    /// Goes on with a paused run from where it stopped.
    pub async fn resume(
        &self,
        nodes: &[NodeDefinition],
        state: &mut RunState,
        cursor: Cursor,
    ) -> Outcome {
        state.ensure_budget(&self.limits);
        Outcome::of(self.run_nodes_from(nodes, state, Some(cursor)).await)
    }

    /// Runs a list of nodes, from the start or from a paused node; boxed because
    /// branches recurse through it.
    pub(super) fn run_nodes_from<'a>(
        &'a self,
        nodes: &'a [NodeDefinition],
        state: &'a mut RunState,
        resume: Option<Cursor>,
    ) -> BoxFuture<'a, Result<(), Halt>> {
        Box::pin(async move {
            if let Some(cursor) = &resume
                && !nodes
                    .get(cursor.index)
                    .is_some_and(|n| state.is_pending_job_of(cursor.job, &n.key))
            {
                // Its position only: a cursor's frame holds the run's values.
                tracing::error!(
                    index = cursor.index,
                    job = cursor.job,
                    "a paused run's position does not match its workflow"
                );
                return Err(Halt::terminal(ExecutionStatus::Error, None));
            }
            let first = resume.as_ref().map_or(0, |c| c.index);
            let mut resume = resume;
            for (index, node) in nodes.iter().enumerate().skip(first) {
                // Lets a timeout around the run fire even when no node ever waits.
                tokio::task::consume_budget().await;
                let Some(kind) = self.registry.get(&node.kind) else {
                    let message = format!("unknown node type {:?}", node.kind);
                    return Err(state.error_job(node, message, false));
                };
                // Attempts made before this one: a retry that waited paused the run.
                let mut attempts = 0;
                let (job, result) = match resume.take() {
                    Some(cursor) => match RetryFrame::read(&cursor.frame) {
                        // A wait between attempts is over: the next attempt.
                        Some(retry) => {
                            if let Err(spent) = state.take_node(&self.limits) {
                                return Err(self.too_many_runs_on(cursor.job, state, spent));
                            }
                            attempts = retry.attempts;
                            let result = self.attempt(kind.as_ref(), node, state, cursor.job);
                            (cursor.job, result.await)
                        }
                        // The paused node: counted and its job started before the
                        // pause. On a node with `retry`, the attempt that paused was
                        // counted then, and this goes on with it.
                        None => {
                            attempts = state.job_attempts(cursor.job).saturating_sub(1);
                            let mut cx = RunContext {
                                engine: self,
                                state: &mut *state,
                                job: cursor.job,
                            };
                            let resumed = kind.resume(node, &mut cx, cursor.frame);
                            (cursor.job, crate::guard::catch(resumed).await)
                        }
                    },
                    None => {
                        if let Err(spent) = state.take_node(&self.limits) {
                            return Err(state.error_job(node, spent, true));
                        }
                        let job = state.start_job(node);
                        (job, self.attempt(kind.as_ref(), node, state, job).await)
                    }
                };
                let mut result = result;
                loop {
                    attempts += 1;
                    // A panic (a bug) fails this node's job with the panic's message
                    // and ends the execution as `error`, whatever a loop or parallel
                    // node around it would do with an ordinary failure; never retried.
                    let outcome = match result {
                        Ok(outcome) => outcome,
                        Err(panic) => {
                            let message =
                                format!("the node failed on an internal error (a bug): {panic}");
                            let mut halt = state.stop_job(job, NodeStop::Error(message));
                            halt.terminal = true;
                            return Err(halt);
                        }
                    };
                    // Judged on what the node did, before the size bounds: a call
                    // that succeeded with too large a result is not made again.
                    let failure = node.retry.as_ref().and_then(|policy| {
                        retry::retried(&outcome).filter(|_| attempts < policy.max_attempts)
                    });
                    let outcome = within_bounds(outcome);
                    let Some(policy) = &node.retry else {
                        result = Ok(outcome);
                        break;
                    };
                    let Some(failure) = failure else {
                        state.note_attempt(job, attempts, None);
                        result = Ok(outcome);
                        break;
                    };
                    let wait = retry::wait_before(policy, attempts + 1);
                    state.note_attempt(job, attempts, Some(failure));
                    if !state.is_sync() && wait >= retry::PAUSE_FROM {
                        let until = chrono::Utc::now()
                            + chrono::Duration::from_std(wait).unwrap_or_default();
                        let waits = vec![Wait::Until {
                            node_key: node.key.clone(),
                            until: until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        }];
                        let frame = RetryFrame { attempts }.to_value();
                        return Err(Halt::paused(Cursor { index, job, frame }, waits));
                    }
                    tokio::time::sleep(wait).await;
                    if let Err(spent) = state.take_node(&self.limits) {
                        return Err(self.too_many_runs_on(job, state, spent));
                    }
                    result = self.attempt(kind.as_ref(), node, state, job).await;
                }
                let Ok(result) = result else {
                    unreachable!("a panic returned above");
                };
                // A failure's result is kept too: a loop going on past failed
                // iterations must not grow the record without bound either.
                if let Ok(value) | Err(NodeStop::Fail(value)) = &result
                    && let Err(spent) = state.keeps(job, value, &self.limits)
                {
                    return Err(self.too_many_runs_on(job, state, spent));
                }
                match result {
                    Ok(value) => state.finish_job(job, JobStatus::Resolved, value),
                    Err(NodeStop::Pause { frame, waits }) => {
                        let cursor = Cursor { index, job, frame };
                        return Err(Halt::paused(cursor, waits));
                    }
                    Err(NodeStop::Halted(halt)) if halt.is_paused() => {
                        let message =
                            format!("a {} node cannot wait inside its branches", node.kind);
                        return Err(state.stop_job(job, NodeStop::Error(message)));
                    }
                    Err(stop) => return Err(state.stop_job(job, stop)),
                }
            }
            Ok(())
        })
    }
}

impl Engine {
    /// One run of a node on its job, a panic caught.
    async fn attempt(
        &self,
        kind: &dyn NodeType,
        node: &NodeDefinition,
        state: &mut RunState,
        job: usize,
    ) -> Result<Result<Value, NodeStop>, String> {
        let mut cx = RunContext {
            engine: self,
            state,
            job,
        };
        crate::guard::catch(kind.run(node, &mut cx)).await
    }

    /// The budget spent by another attempt of a started job: it ends the run, as
    /// everywhere else.
    fn too_many_runs_on(&self, job: usize, state: &mut RunState, spent: String) -> Halt {
        let mut halt = state.stop_job(job, NodeStop::Error(spent));
        halt.terminal = true;
        halt
    }
}

/// Every result is kept in the record, a failure's too: bounded in depth and
/// size, so no request can make one the record cannot hold or read back.
fn within_bounds(result: Result<Value, NodeStop>) -> Result<Value, NodeStop> {
    let refused = |message: String| NodeStop::Fail(json!({ "message": message }));
    match result {
        Ok(value) => match limits::check_result(&value) {
            None => Ok(value),
            Some(problem) => Err(refused(problem)),
        },
        Err(NodeStop::Fail(value)) => match limits::check_result(&value) {
            None => Err(NodeStop::Fail(value)),
            Some(problem) => Err(refused(format!("the node failed, and {problem}"))),
        },
        Err(NodeStop::Respond(reply)) => match limits::check_result(&reply.body) {
            None => Err(NodeStop::Respond(reply)),
            Some(problem) => Err(NodeStop::Error(format!("the response body: {problem}"))),
        },
        Err(NodeStop::Error(message)) if message.len() > limits::MAX_MESSAGE_BYTES => {
            Err(NodeStop::Error(limits::shorten(&message)))
        }
        other => other,
    }
}

impl Outcome {
    fn of(walk: Result<(), Halt>) -> Self {
        match walk {
            Ok(()) => Outcome {
                status: ExecutionStatus::Resolved,
                reply: None,
                pause: None,
            },
            Err(halt) => Outcome {
                status: halt.status,
                reply: halt.reply,
                pause: halt.pause.map(|p| *p),
            },
        }
    }
}
