//! JSONata (`jsonata-rs`) under a memory budget.
//!
//! jsonata-rs keeps its values in a `bumpalo` arena: the arena gets an allocation
//! limit, past which it panics "out of memory" (caught here: the expression fails
//! naming the budget) instead of growing until the process aborts. The builtins
//! that build strings on the heap outside the arena are replaced by bounded ones
//! (see `bounded`), and its regex builtins by linear-time ones (see `regex`).

mod bounded;
mod regex;
mod rename;

use serde_json::Value;

use crate::lang::limits;

/// What one evaluation's arena may hold: the request's values, once parsed, and
/// all the expression makes from them.
pub const MEMORY_BUDGET_BYTES: usize = 64 << 20;
/// The longest string a builtin may make (the bound of a node's result).
pub const MAX_STRING_BYTES: usize = limits::MAX_RESULT_BYTES;
/// JSONata may recurse; these bound one evaluation.
const MAX_DEPTH: usize = 200;
const TIME_LIMIT_MS: usize = 1000;

/// What a builtin of `bounded` or `regex` returns.
type Out<'a> = Result<&'a jsonata_rs::Value<'a>, jsonata_rs::Error>;

/// The error of a builtin whose result would pass [`MAX_STRING_BYTES`].
fn too_big(builtin: &str) -> jsonata_rs::Error {
    jsonata_rs::Error::D3137Error(format!(
        "${builtin}: the result would be more than {} MiB, the bound of a string an \
         expression makes",
        MAX_STRING_BYTES >> 20
    ))
}

/// Calls jsonata-rs's own `builtin` (or whatever the expression bound to its name).
fn delegate<'a>(
    cx: &jsonata_rs::FunctionContext<'a, '_>,
    builtin: &str,
    args: &[&'a jsonata_rs::Value<'a>],
) -> Out<'a> {
    let original = cx
        .frame
        .lookup(builtin)
        .ok_or_else(|| jsonata_rs::Error::D3137Error(format!("${builtin} is not available")))?;
    cx.evaluate_function(original, args)
}

/// Evaluates `expression` on `source`; with `compile_only`, only checks that it
/// parses and uses its builtins where they can be bounded.
pub fn evaluate(expression: &str, source: &Value, compile_only: bool) -> Result<Value, String> {
    let arena = bumpalo::Bump::new();
    arena.set_allocation_limit(Some(MEMORY_BUDGET_BYTES));
    let expression = rename::with_bounded_builtins(expression);
    // jsonata-rs panics on syntax it parses but does not implement (the `%`
    // parent operator): that is an expression it cannot run, not a bug to fail
    // the run with.
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        jsonata_rs::JsonAta::new(&expression, &arena)
    }))
    .map_err(|_| {
        "not a JSONata expression hookflow can run: it uses syntax the engine does \
         not implement (such as the % parent operator)"
            .to_string()
    })?
    .map_err(|e| format!("not a JSONata expression: {e}"))?;
    // Fail closed: a bounded builtin the renaming did not reach would run unbounded.
    if let Some(name) = rename::unbounded_use(&format!("{:?}", parsed.ast())) {
        return Err(format!(
            "${name} is written where hookflow cannot bound it (passed as a value, or after \
             a regex literal); call it plainly, as ${name}(...)"
        ));
    }
    bounded::register(&parsed);
    if compile_only {
        return Ok(Value::Null);
    }
    let input = source.to_string();
    // A panic inside is the arena's budget running out, or jsonata-rs failing on
    // an input (a range whose bounds overflow, such as `[-$x..$x]` with x = 1e300):
    // either fails the node with its message, as any error of the expression does.
    let result = crate::guard::catch_sync(|| {
        let result =
            parsed.evaluate_timeboxed(Some(&input), Some(MAX_DEPTH), Some(TIME_LIMIT_MS))?;
        if bounded::json_len_up_to(result, MAX_STRING_BYTES) > MAX_STRING_BYTES {
            return Err(jsonata_rs::Error::D3137Error(format!(
                "the result is more than {} MiB, the bound of a node's result",
                MAX_STRING_BYTES >> 20
            )));
        }
        Ok((!result.is_undefined()).then(|| result.serialize(false)))
    })
    .map_err(|panic| past_budget(&panic))?
    .map_err(|e| e.to_string())?;
    match result {
        None => Ok(Value::Null),
        Some(text) => serde_json::from_str(&text).map_err(|e| e.to_string()),
    }
}

/// The message of a panic out of an evaluation.
fn past_budget(panic: &str) -> String {
    if panic.contains("out of memory") || panic.contains("allocation error") {
        format!(
            "the JSONata expression went past its memory budget of {} MiB",
            MEMORY_BUDGET_BYTES >> 20
        )
    } else {
        format!("the JSONata expression failed on this input: {panic}")
    }
}

#[cfg(test)]
mod tests;
