//! `script`: sandboxed JavaScript on QuickJS (`rquickjs`). `content` is the body of a
//! function whose `arguments` (`[{name, value}]`, values templated) are its
//! parameters; its return value, as JSON, is the node's result.
//!
//! The sandbox is QuickJS's core language only: no `require`, no file, network or
//! process access (the std/os modules are never loaded). Each run gets a fresh runtime
//! with a memory cap and an interrupt deadline, on a blocking thread so a busy script
//! never stalls the async workers. `console.log` lines go into the job's log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rquickjs::{CatchResultExt, Context, Function, Runtime};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::{Checker, Node, NodeStop, RunContext};
use crate::model::NodeDefinition;

mod budget;
pub use budget::{DEFAULT_TOTAL_MEMORY_BYTES, ScriptBudget, default_concurrency};

const DEFAULT_TIMEOUT_MS: u64 = 1_000;
const MAX_TIMEOUT_MS: u64 = 60_000;
/// The default memory cap of one script run.
pub const DEFAULT_MEMORY_BYTES: usize = 64 << 20;
/// `console.log` lines kept per run, and their total size (UTF-16 units), so a
/// chatty script does not bloat its execution record.
const MAX_LOG_LINES: usize = 1_000;
const MAX_LOG_BYTES: usize = 64 << 10;

/// `content` (a function body), `arguments: [{name, value}]` (values templated),
/// `timeout` (ms), `continue` (a failure becomes the result `{error}`).
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ScriptConfig {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    arguments: Vec<Argument>,
    #[serde(default = "default_timeout")]
    timeout: u64,
    #[serde(default, rename = "continue")]
    keep_going: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct Argument {
    name: String,
    #[serde(default)]
    value: Value,
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

pub struct Script {
    memory_bytes: usize,
    budget: ScriptBudget,
}

impl Script {
    pub fn new(memory_bytes: usize, budget: ScriptBudget) -> Self {
        Self {
            memory_bytes,
            budget,
        }
    }
}

/// What a script run produced.
#[derive(Debug, PartialEq)]
pub struct ScriptOutcome {
    pub result: Result<Value, String>,
    pub logs: Vec<String>,
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// Runs a script to its result (blocking: call it off the async threads).
pub fn run_script(
    content: &str,
    arguments: &[(String, Value)],
    timeout: Duration,
    memory_bytes: usize,
) -> ScriptOutcome {
    let never = Arc::new(AtomicBool::new(false));
    run_script_until(content, arguments, timeout, memory_bytes, never)
}

/// Runs a script until it ends, its `timeout` passes, or `stop` turns true (the
/// run it belongs to was dropped: a sync timeout, say), whichever comes first.
pub fn run_script_until(
    content: &str,
    arguments: &[(String, Value)],
    timeout: Duration,
    memory_bytes: usize,
    stop: Arc<AtomicBool>,
) -> ScriptOutcome {
    let fail = |message: String| ScriptOutcome {
        result: Err(message),
        logs: Vec::new(),
    };
    let runtime = match Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the script engine: {e}")),
    };
    runtime.set_memory_limit(memory_bytes);
    runtime.set_max_stack_size(1 << 20);
    let deadline = Instant::now() + timeout;
    let stopped = Arc::clone(&stop);
    runtime.set_interrupt_handler(Some(Box::new(move || {
        Instant::now() >= deadline || stop.load(Ordering::Relaxed)
    })));
    let context = match Context::full(&runtime) {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot start the script engine: {e}")),
    };
    let names: Vec<&str> = arguments.iter().map(|(n, _)| n.as_str()).collect();
    let values = Value::Array(arguments.iter().map(|(_, v)| v.clone()).collect()).to_string();
    // The glue keeps console.log lines and turns the result into JSON inside the sandbox.
    let source = format!(
        "(function (__hookflow_args) {{\n\
           const __hookflow_logs = []; let __hookflow_log_bytes = 0, __hookflow_dropped = 0;\n\
           globalThis.console = {{ log: (...a) => {{ const line = a.map(x => typeof x === 'string' ? x : JSON.stringify(x)).join(' ');\n\
             if (__hookflow_logs.length < {max_lines} && __hookflow_log_bytes + line.length <= {max_bytes}) {{ __hookflow_logs.push(line); __hookflow_log_bytes += line.length; }} else {{ __hookflow_dropped++; }} }} }};\n\
           console.info = console.warn = console.error = console.debug = console.log;\n\
           const __hookflow_result = (function ({names}) {{\n{content}\n}}).apply(null, __hookflow_args);\n\
           return JSON.stringify({{ result: __hookflow_result === undefined ? null : __hookflow_result, logs: __hookflow_logs, dropped: __hookflow_dropped }});\n\
         }})",
        names = names.join(", "),
        max_lines = MAX_LOG_LINES,
        max_bytes = MAX_LOG_BYTES,
    );
    let outcome = context.with(|ctx| -> Result<String, String> {
        let describe = |e: rquickjs::CaughtError<'_>| {
            // QuickJS throws a bare `null` when it cannot even allocate its error.
            let bare_null = matches!(&e, rquickjs::CaughtError::Value(v) if v.is_null());
            let text = e.to_string();
            if Instant::now() >= deadline || stopped.load(Ordering::Relaxed) {
                format!(
                    "the script ran longer than {} ms and was stopped",
                    timeout.as_millis()
                )
            } else if text.contains("out of memory")
                || text.contains("InternalError: out of memory")
            {
                format!(
                    "the script used more than {} MiB and was stopped",
                    memory_bytes >> 20
                )
            } else if bare_null {
                format!(
                    "the script threw null, or used more than {} MiB and was stopped",
                    memory_bytes >> 20
                )
            } else {
                text
            }
        };
        let glue: Function = ctx.eval(source.as_str()).catch(&ctx).map_err(describe)?;
        let args = ctx
            .json_parse(values.as_str())
            .catch(&ctx)
            .map_err(describe)?;
        glue.call::<_, String>((args,))
            .catch(&ctx)
            .map_err(describe)
    });
    match outcome {
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(mut v) => {
                let mut logs: Vec<String> =
                    serde_json::from_value(v["logs"].take()).unwrap_or_default();
                if let Some(dropped) = v["dropped"].as_u64().filter(|d| *d > 0) {
                    logs.push(format!(
                        "… {dropped} more lines were not kept (at most {MAX_LOG_LINES} lines, {} KiB)",
                        MAX_LOG_BYTES >> 10
                    ));
                }
                ScriptOutcome {
                    result: Ok(v["result"].take()),
                    logs,
                }
            }
            Err(e) => fail(format!("the script's result is not JSON: {e}")),
        },
        Err(message) => fail(message),
    }
}

#[async_trait]
impl Node for Script {
    type Config = ScriptConfig;

    fn name(&self) -> &'static str {
        "script"
    }

    fn check(&self, c: &ScriptConfig, at: &str, check: &mut Checker) {
        if c.content.is_none() {
            check.error(
                format!("{at}.content"),
                "is required: the body of a JavaScript function",
            );
        }
        for (i, a) in c.arguments.iter().enumerate() {
            if !is_identifier(&a.name) {
                check.error(
                    format!("{at}.arguments[{i}].name"),
                    "must be a JavaScript identifier",
                );
            }
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&c.timeout) {
            check.error(
                format!("{at}.timeout"),
                format!("must be 1..={MAX_TIMEOUT_MS} (ms)"),
            );
        }
    }

    async fn run(
        &self,
        c: &ScriptConfig,
        _node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let arguments: Vec<(String, Value)> = c
            .arguments
            .iter()
            .map(|a| (a.name.clone(), cx.render(&a.value)))
            .collect();
        let content = c.content.clone().unwrap_or_default();
        let timeout = Duration::from_millis(c.timeout);
        let memory = self.memory_bytes;
        let room = match self.budget.enter(memory, timeout).await {
            Ok(room) => room,
            Err(message) if c.keep_going => return Ok(json!({ "error": message })),
            Err(message) => return Err(NodeStop::Fail(json!({ "message": message }))),
        };
        // Dropped with this run (a sync timeout): the script stops then too, instead
        // of burning a thread until its own timeout.
        let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
        let flag = Arc::clone(&stop.0);
        let outcome = tokio::task::spawn_blocking(move || {
            let outcome = run_script_until(&content, &arguments, timeout, memory, flag);
            // The runtime is gone: its heap (up to the cap) goes back to the system
            // rather than staying in this blocking thread's arena.
            crate::memory::release_free();
            outcome
        })
        .await
        .map_err(|e| NodeStop::Error(format!("the script engine failed: {e}")))?;
        drop(room);
        for line in outcome.logs {
            cx.log(line);
        }
        match outcome.result {
            Ok(value) => Ok(value),
            Err(message) if c.keep_going => Ok(json!({ "error": message })),
            Err(message) => Err(NodeStop::Fail(json!({ "message": message }))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ExecutionStatus;
    use crate::nodes::test_support::run;

    fn script(content: &str, args: &[(&str, Value)]) -> ScriptOutcome {
        let args: Vec<(String, Value)> = args
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect();
        run_script(content, &args, Duration::from_millis(500), 16 << 20)
    }

    #[test]
    fn returns_json_and_sees_its_arguments() {
        let out = script(
            "return { total: price * qty, name: customer.name.toUpperCase() };",
            &[
                ("price", json!(2.5)),
                ("qty", json!(4)),
                ("customer", json!({"name": "ann"})),
            ],
        );
        assert_eq!(out.result, Ok(json!({"total": 10, "name": "ANN"})));
        assert_eq!(script("", &[]).result, Ok(Value::Null));
        assert_eq!(
            script("return [1, 'a', null, true];", &[]).result,
            Ok(json!([1, "a", null, true]))
        );
    }

    #[test]
    fn console_log_lines_are_kept() {
        let out = script(
            "console.log('hello', 42, {a: 1}); console.warn('careful'); return 1;",
            &[],
        );
        assert_eq!(out.logs, ["hello 42 {\"a\":1}", "careful"]);
    }

    #[test]
    fn no_file_network_or_process_access() {
        for probe in [
            "return typeof require",
            "return typeof process",
            "return typeof fetch",
            "return typeof std",
            "return typeof os",
            "return typeof XMLHttpRequest",
        ] {
            assert_eq!(script(probe, &[]).result, Ok(json!("undefined")), "{probe}");
        }
        // Module loading is not configured: importing the std or os modules fails.
        assert!(
            script("return import('os').then(() => 'loaded')", &[])
                .result
                .is_ok_and(|v| v != json!("loaded"))
        );
    }

    #[test]
    fn an_infinite_loop_stops_at_the_timeout() {
        let started = Instant::now();
        let out = run_script("while (true) {}", &[], Duration::from_millis(200), 16 << 20);
        assert!(started.elapsed() < Duration::from_secs(2));
        let message = out.result.unwrap_err();
        assert!(message.contains("longer than 200 ms"), "{message}");
    }

    #[test]
    fn a_memory_bomb_stops_at_the_cap() {
        let started = Instant::now();
        let out = run_script(
            "let a = []; while (true) { a.push('x'.repeat(1024 * 1024)); }",
            &[],
            Duration::from_secs(5),
            16 << 20,
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let message = out.result.unwrap_err();
        assert!(message.contains("more than 16 MiB"), "{message}");
    }

    #[test]
    fn deep_recursion_is_a_javascript_error_not_a_crash() {
        for deep in [
            "function f(n) { return f(n + 1) + 1; } return f(0);",
            "let a = []; for (let i = 0; i < 2e4; i++) a = [a]; return JSON.stringify(a).length;",
            "const f = (o) => ({ o: f(o) }); return f(1);",
        ] {
            let message = script(deep, &[]).result.unwrap_err();
            assert!(
                message.contains("Maximum call stack size exceeded")
                    || message.contains("stack overflow"),
                "{deep}: {message}"
            );
            assert!(message.len() < 4096, "a short message: {message}");
        }
        // Deep, but within the stack: a result too deep to keep is refused by name.
        let out = script(
            "let a = 1; for (let i = 0; i < 500; i++) a = [a]; return a;",
            &[],
        );
        let message = out.result.unwrap_err();
        assert!(message.contains("recursion limit"), "{message}");
    }

    #[test]
    fn a_structure_too_big_for_memory_is_named_as_such() {
        let out = script(
            "let a = []; for (let i = 0; i < 1e7; i++) a = [a]; return 1;",
            &[],
        );
        let message = out.result.unwrap_err();
        assert!(message.contains("more than 16 MiB"), "{message}");
    }

    #[test]
    fn console_output_is_kept_within_bounds() {
        let out = script(
            "for (let i = 0; i < 20000; i++) console.log('line', i); return 1;",
            &[],
        );
        assert_eq!(out.result, Ok(json!(1)));
        assert_eq!(out.logs.len(), MAX_LOG_LINES + 1);
        assert_eq!(
            out.logs.last().unwrap(),
            "… 19000 more lines were not kept (at most 1000 lines, 64 KiB)"
        );
    }

    #[test]
    fn a_stopped_run_stops_its_script() {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let started = Instant::now();
        let handle = std::thread::spawn(move || {
            run_script_until(
                "while (true) {}",
                &[],
                Duration::from_secs(30),
                16 << 20,
                flag,
            )
        });
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        let out = handle.join().unwrap();
        assert!(out.result.unwrap_err().contains("was stopped"));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "stopped well before its 30 s"
        );
    }

    #[test]
    fn errors_are_reported() {
        let message = script("throw new Error('boom')", &[]).result.unwrap_err();
        assert!(message.contains("boom"), "{message}");
        let message = script("return (", &[]).result.unwrap_err();
        assert!(
            message.to_lowercase().contains("syntax") || message.contains("expect"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn results_flow_on_and_failures_fail_unless_continue() {
        let nodes = json!([
            {"key": "s", "type": "script", "config": {"content": "console.log('n is', n); return n * 2;",
                "arguments": [{"name": "n", "value": "{{$context.n}}"}]}},
            {"key": "out", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.s}}"}}
        ]);
        let (outcome, jobs, output) = run(nodes, json!({"n": 21})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved, "{jobs:?}");
        assert_eq!(output, json!(42));
        assert_eq!(jobs[0].log, ["n is 21"]);

        let failing = |keep_going: bool| json!([{"key": "s", "type": "script", "config": {"content": "throw new Error('nope')", "continue": keep_going}}]);
        let (outcome, jobs, _) = run(failing(false), json!({})).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed);
        assert!(jobs[0].result["message"].as_str().unwrap().contains("nope"));
        let (outcome, jobs, _) = run(failing(true), json!({})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        assert!(jobs[0].result["error"].as_str().unwrap().contains("nope"));
    }
}
