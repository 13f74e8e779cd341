//! The built-in node types, one module each, written as [`crate::engine::Node`]s
//! (a typed config and what a node of the type does); [`builtin`] registers them
//! all. Adding a type is its module and its line in [`builtin_with`]: the
//! engine, validation, the schema, the viewer and deploys ask the registry.

pub mod aws;
mod basic;
mod calculation;
mod condition;
mod date_calculation;
mod delay;
mod end;
mod json_query;
mod json_variable_mapping;
mod loop_node;
mod multi_conditions;
mod output;
mod parallel;
pub mod request;
mod response;
pub mod script;
mod subflow;
mod variable;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::{BranchFrame, NodeRegistry, NodeStop, RunContext, read_frame};
use crate::model::NodeDefinition;

/// The state of a node that runs one chosen branch (condition, multi-conditions)
/// while that branch waits: which branch it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ChosenBranch {
    branch: String,
}

/// Runs the chosen branch; a pause in it is the node's pause.
async fn run_chosen_branch(
    node: &NodeDefinition,
    cx: &mut RunContext<'_>,
    branch: &str,
) -> Result<(), NodeStop> {
    cx.run_branch(node, branch).await.map_err(|halt| {
        halt.pause_with(ChosenBranch {
            branch: branch.to_string(),
        })
    })
}

/// Goes on with a node that runs one chosen branch and paused in it. The node's
/// result is the one it set before running the branch.
async fn resume_chosen_branch(
    node: &NodeDefinition,
    cx: &mut RunContext<'_>,
    frame: Value,
) -> Result<Value, NodeStop> {
    let BranchFrame {
        state: ChosenBranch { branch },
        inner,
    } = read_frame(frame)?;
    cx.resume_branch(node, &branch, inner)
        .await
        .map_err(|halt| halt.pause_with(ChosenBranch { branch }))?;
    Ok(cx.result())
}

/// What a deployment decides for its node types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSettings {
    /// Where HTTP nodes may connect beyond the public internet.
    pub network: request::guard::NetworkPolicy,
    pub max_response_bytes: usize,
    /// The memory cap of one script run.
    pub script_memory_bytes: usize,
    /// Scripts running at once in the process, and the memory their caps may add
    /// up to; past either a script waits (up to its timeout) for room.
    pub script_concurrency: usize,
    pub script_total_memory_bytes: usize,
}

impl Default for NodeSettings {
    fn default() -> Self {
        Self {
            network: request::guard::NetworkPolicy::default(),
            max_response_bytes: request::DEFAULT_MAX_RESPONSE_BYTES,
            script_memory_bytes: script::DEFAULT_MEMORY_BYTES,
            script_concurrency: script::default_concurrency(),
            script_total_memory_bytes: script::DEFAULT_TOTAL_MEMORY_BYTES,
        }
    }
}

/// Every built-in node type, with the default network policy (HTTP nodes reach
/// public addresses only).
pub fn builtin() -> NodeRegistry {
    builtin_with(&NodeSettings::default())
}

/// Every built-in node type, configured for a deployment.
pub fn builtin_with(settings: &NodeSettings) -> NodeRegistry {
    let mut registry = NodeRegistry::empty();
    registry.register(condition::Condition);
    registry.register(response::Response);
    registry.register(end::End);
    registry.register(output::Output);
    registry.register(calculation::Calculation);
    registry.register(request::Request::new(
        settings.network,
        settings.max_response_bytes,
    ));
    registry.register(json_query::JsonQuery);
    registry.register(date_calculation::DateCalculation);
    registry.register(json_variable_mapping::JsonVariableMapping);
    registry.register(script::Script::new(
        settings.script_memory_bytes,
        script::ScriptBudget::new(
            settings.script_concurrency,
            settings.script_total_memory_bytes,
        ),
    ));
    registry.register(multi_conditions::MultiConditions);
    registry.register(loop_node::Loop);
    registry.register(parallel::Parallel);
    registry.register(variable::Variable);
    registry.register(subflow::Subflow);
    registry.register(delay::Delay);
    aws::register(&mut registry, settings.max_response_bytes);
    registry
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Runs small node graphs through the real engine.

    use std::sync::Arc;

    use serde_json::{Value, json};

    use crate::app::runner::Runner;
    use crate::engine::NodeRegistry;
    use crate::engine::{Engine, Limits, Outcome, RunState};
    use crate::model::{DeployedWorkflow, Execution, Job, NodeDefinition};
    use crate::time::now_rfc3339;

    pub async fn run(nodes: Value, context: Value) -> (Outcome, Vec<Job>, Value) {
        run_with(nodes, context, Limits::default()).await
    }

    pub async fn run_with(
        nodes: Value,
        context: Value,
        limits: Limits,
    ) -> (Outcome, Vec<Job>, Value) {
        run_on(crate::nodes::builtin(), nodes, context, limits).await
    }

    pub async fn run_on(
        registry: NodeRegistry,
        nodes: Value,
        context: Value,
        limits: Limits,
    ) -> (Outcome, Vec<Job>, Value) {
        let nodes: Vec<NodeDefinition> = serde_json::from_value(nodes).expect("node list");
        let engine = Engine::new(Arc::new(registry), limits);
        let mut state = RunState::new("exec-1", context, Arc::new(json!({"REGION": "eu"})));
        let outcome = engine.run(&nodes, &mut state).await;
        let (_, output, jobs) = state.into_parts();
        (outcome, jobs, output)
    }

    /// Runs an async workflow of `nodes` through the runner; each time it pauses,
    /// its record goes through JSON (as a store keeps it), the test waits until the
    /// wake-up time, and the run resumes from the record alone. Returns the final
    /// record and the record at each pause.
    pub async fn run_pausing(nodes: Value, context: Value) -> (Execution, Vec<Execution>) {
        let definition = serde_json::from_value(json!({
            "key": "t", "trigger": {"type": "webhook"}, "nodes": nodes
        }))
        .expect("definition");
        let workflow = DeployedWorkflow {
            key: "t".into(),
            version: 1,
            hook_id: "h".into(),
            definition,
            deployed_at: now_rfc3339(),
            switched_by: None,
        };
        let engine = Arc::new(Engine::new(
            Arc::new(crate::nodes::builtin()),
            Limits::default(),
        ));
        let runner = Runner::new(engine, Arc::new(json!({})));
        let started = Runner::started(&workflow, "exec-1", context, now_rfc3339());
        let mut execution = runner.run(started, &workflow, None).await.execution;
        let mut pauses = Vec::new();
        while let Some(paused) = execution.paused.clone() {
            assert!(pauses.len() < 20, "the run keeps pausing");
            let text = serde_json::to_string(&execution).expect("record");
            pauses.push(execution);
            if let Some(at) = &paused.wake_at {
                tokio::time::sleep(crate::app::wakeups::until(at)).await;
            }
            let record: Execution = serde_json::from_str(&text).expect("record");
            execution = runner.resume(record, &workflow).await.execution;
        }
        (execution, pauses)
    }

    pub fn trail(jobs: &[Job]) -> Vec<(String, &'static str)> {
        jobs.iter()
            .map(|j| (j.node_key.clone(), j.status.as_str()))
            .collect()
    }
}
