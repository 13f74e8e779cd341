//! Sends calls of the builtins hookflow bounds to its own implementations.
//!
//! jsonata-rs binds its builtins at every evaluation, over anything registered
//! under the same name, so a bounded `$replace` cannot be registered as `replace`:
//! calls are renamed in the expression text instead, to a name nothing else uses.

/// The builtins whose calls are renamed: each can grow its output past what its
/// inputs hold (`$pad`, `$replace`, `$join`, `$string`), or runs a regex
/// (`$contains`, `$match`, `$split`, `$replace`) that must not backtrack.
pub const BOUNDED: [&str; 7] = [
    "pad", "replace", "join", "string", "contains", "match", "split",
];

/// The name a call of `builtin` is renamed to.
pub fn bounded_name(builtin: &str) -> String {
    format!("__hookflow_{builtin}")
}

/// The expression with every call of a [`BOUNDED`] builtin (outside string
/// literals and comments) renamed to its [`bounded_name`].
pub fn with_bounded_builtins(expression: &str) -> String {
    let mut out = String::with_capacity(expression.len());
    let mut rest = expression;
    while let Some(c) = rest.chars().next() {
        let skip = match c {
            '"' | '\'' | '`' => string_literal_len(rest, c),
            '/' if rest.starts_with("/*") => rest.find("*/").map_or(rest.len(), |end| end + 2),
            '$' => match builtin_at(&rest[1..]) {
                Some(name) => {
                    out.push('$');
                    out.push_str(&bounded_name(name));
                    rest = &rest[1 + name.len()..];
                    continue;
                }
                None => 1,
            },
            _ => c.len_utf8(),
        };
        out.push_str(&rest[..skip]);
        rest = &rest[skip..];
    }
    out
}

/// The bounded builtin whose whole name starts `text` (not `$padded`).
fn builtin_at(text: &str) -> Option<&'static str> {
    BOUNDED.into_iter().find(|name| {
        text.starts_with(name)
            && !text[name.len()..].starts_with(|n: char| n.is_alphanumeric() || n == '_')
    })
}

/// The length of the string literal at the start of `text`, quotes included (all
/// of `text` when it is not closed).
fn string_literal_len(text: &str, quote: char) -> usize {
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if c == quote => return i + c.len_utf8(),
            _ => {}
        }
    }
    text.len()
}

/// A bounded builtin the renaming did not reach (written where the scan cannot
/// see it, after a regex literal say, or passed as a value: `$map(xs, $string)`),
/// found in the parsed expression's tree. Such a use would be unbounded.
pub fn unbounded_use(ast_debug: &str) -> Option<&'static str> {
    BOUNDED
        .into_iter()
        .find(|name| ast_debug.contains(&format!("Var(\"{name}\")")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_calls_are_renamed() {
        assert_eq!(
            with_bounded_builtins("$pad(\"$pad(\", 1) & '$join' /* $split */ & $padded & $join(x)"),
            "$__hookflow_pad(\"$pad(\", 1) & '$join' /* $split */ & $padded & $__hookflow_join(x)"
        );
    }
}
