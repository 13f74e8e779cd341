//! JSONata's regex builtins on a linear-time engine (the `regex` crate).
//!
//! jsonata-rs matches with `regress`, a backtracking engine: `/^([a-z]+\s?)*$/` on
//! 30 characters of a request takes seconds, doubling with each character, inside
//! one builtin call that no time limit interrupts. Here every match runs in time
//! linear in the text; a pattern that needs backtracking (a backreference, a
//! lookaround) fails the expression with a message saying so.

use std::cell::RefCell;
use std::collections::HashMap;

use jsonata_rs::{ArrayFlags, Error, FunctionContext, Value as J};
use regex::{Captures, Regex, RegexBuilder};

use super::{MAX_STRING_BYTES, Out, delegate, too_big};

/// Compiled patterns kept per thread: a `$contains` mapped over 10,000 items
/// compiles its regex once.
const CACHED_PATTERNS: usize = 64;

/// The memory a compiled pattern may take (a request may send the pattern).
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

thread_local! {
    static COMPILED: RefCell<HashMap<(String, bool, bool), Regex>> = RefCell::new(HashMap::new());
}

/// The linear-time regex for a regex literal, or for a pattern string (`$match`
/// takes either).
fn linear(pattern: &J<'_>) -> Result<Option<Regex>, Error> {
    let (source, icase, multiline) = match pattern {
        J::Regex(literal) => {
            // regress shows its flags only through Debug.
            let flags = format!("{:?}", literal.get_regex());
            let flags = flags.rsplit("flags:").next().unwrap_or_default();
            (
                literal.as_pattern().to_string(),
                flags.contains("icase: true"),
                flags.contains("multiline: true"),
            )
        }
        J::String(_) => (pattern.as_str().into_owned(), false, false),
        _ => return Ok(None),
    };
    let key = (source, icase, multiline);
    if let Some(found) = COMPILED.with(|c| c.borrow().get(&key).cloned()) {
        return Ok(Some(found));
    }
    let compiled = RegexBuilder::new(&key.0)
        .case_insensitive(icase)
        .multi_line(multiline)
        .size_limit(PATTERN_SIZE_LIMIT)
        .dfa_size_limit(PATTERN_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            Error::D3137Error(format!(
                "the regex /{}/ cannot run on hookflow's linear-time regex engine (it has no \
                 backreferences or lookaround, and a pattern may compile to at most {} KiB): {e}",
                key.0,
                PATTERN_SIZE_LIMIT >> 10
            ))
        })?;
    COMPILED.with(|c| {
        let mut cache = c.borrow_mut();
        if cache.len() >= CACHED_PATTERNS {
            cache.clear();
        }
        cache.insert(key, compiled.clone());
    });
    Ok(Some(compiled))
}

/// The optional limit argument (a count of matches).
fn limit(arg: Option<&&J<'_>>) -> usize {
    match arg {
        Some(l) if l.is_number() && l.as_f64() >= 0.0 => l.as_f64() as usize,
        _ => usize::MAX,
    }
}

/// `$contains(str, pattern)`.
pub fn contains<'a>(cx: FunctionContext<'a, '_>, args: &[&'a J<'a>]) -> Out<'a> {
    match (args.first(), args.get(1)) {
        (Some(text), Some(pattern @ J::Regex(_))) if text.is_string() => {
            let regex = linear(pattern)?.expect("a regex literal");
            Ok(J::bool(regex.is_match(&text.as_str())))
        }
        _ => delegate(&cx, "contains", args),
    }
}

/// `$split(str, separator [, limit])`.
pub fn split<'a>(cx: FunctionContext<'a, '_>, args: &[&'a J<'a>]) -> Out<'a> {
    let (Some(text), Some(pattern @ J::Regex(_))) = (args.first(), args.get(1)) else {
        return delegate(&cx, "split", args);
    };
    if !text.is_string() {
        return delegate(&cx, "split", args);
    }
    let regex = linear(pattern)?.expect("a regex literal");
    let limit = limit(args.get(2));
    let text = text.as_str();
    let mut pieces = Vec::new();
    let mut last_end = 0;
    for m in regex.find_iter(&text) {
        if pieces.len() >= limit {
            break;
        }
        if m.start() > last_end {
            pieces.push(&text[last_end..m.start()]);
        }
        last_end = m.end();
    }
    if pieces.len() < limit {
        pieces.push(&text[last_end..]);
    }
    let out = J::array_with_capacity(cx.arena, pieces.len(), ArrayFlags::empty());
    for piece in pieces {
        out.push(J::string(cx.arena, piece));
    }
    Ok(out)
}

/// `$match(str, pattern [, limit])`: `[{match, index, groups}]`, `index` counting
/// matches as jsonata-rs does.
pub fn find_all<'a>(cx: FunctionContext<'a, '_>, args: &[&'a J<'a>]) -> Out<'a> {
    let (Some(text), Some(pattern)) = (args.first(), args.get(1)) else {
        return delegate(&cx, "match", args);
    };
    let Some(regex) = linear(pattern)? else {
        return delegate(&cx, "match", args);
    };
    if !text.is_string() {
        return delegate(&cx, "match", args);
    }
    let text = text.as_str();
    let out = J::array(cx.arena, ArrayFlags::empty());
    for (i, captures) in regex
        .captures_iter(&text)
        .take(limit(args.get(2)))
        .enumerate()
    {
        out.push(match_object(&cx, &captures, i));
    }
    Ok(out)
}

fn match_object<'a>(
    cx: &FunctionContext<'a, '_>,
    captures: &Captures<'_>,
    index: usize,
) -> &'a J<'a> {
    let groups = J::array(cx.arena, ArrayFlags::empty());
    for group in captures.iter().skip(1).flatten() {
        groups.push(J::string(cx.arena, group.as_str()));
    }
    let object = J::object(cx.arena);
    object.insert("match", J::string(cx.arena, &captures[0]));
    object.insert("index", J::number(cx.arena, index as f64));
    object.insert("groups", groups);
    object
}

/// `$replace(str, regex, replacement [, limit])`, with a string replacement
/// (`$1` naming a group, `$$` a dollar) or a function of the match; the result
/// is checked against [`MAX_STRING_BYTES`] as it grows.
pub fn replace<'a>(cx: FunctionContext<'a, '_>, args: &[&'a J<'a>]) -> Out<'a> {
    let (Some(text), Some(pattern), Some(replacement)) = (args.first(), args.get(1), args.get(2))
    else {
        return delegate(&cx, "replace", args);
    };
    if !text.is_string() {
        return delegate(&cx, "replace", args);
    }
    let regex = linear(pattern)?.expect("a regex literal");
    let text = text.as_str();
    let mut out = String::new();
    let mut last_end = 0;
    for (i, captures) in regex
        .captures_iter(&text)
        .take(limit(args.get(3)))
        .enumerate()
    {
        let whole = captures.get(0).expect("group 0 is the match");
        if whole.is_empty() {
            return Err(Error::D1004ZeroLengthMatch(cx.char_index));
        }
        out.push_str(&text[last_end..whole.start()]);
        if replacement.is_string() {
            substitute(&replacement.as_str(), &captures, &mut out);
        } else if replacement.is_function() {
            let made = cx.evaluate_function(replacement, &[match_object(&cx, &captures, i)])?;
            let made = cx.trampoline_evaluate_value(made)?;
            if !made.is_string() {
                return Err(Error::D3012InvalidReplacementType(cx.char_index));
            }
            out.push_str(&made.as_str());
        } else {
            return Err(Error::T0410ArgumentNotValid(
                cx.char_index,
                3,
                "replace".into(),
            ));
        }
        if out.len() > MAX_STRING_BYTES {
            return Err(too_big("replace"));
        }
        last_end = whole.end();
    }
    out.push_str(&text[last_end..]);
    if out.len() > MAX_STRING_BYTES {
        return Err(too_big("replace"));
    }
    Ok(J::string(cx.arena, &out))
}

/// Writes `replacement` with `$$` as `$` and `$N` as group N: the longest run of
/// digits naming a group, as JSONata reads `$12` with one group as group 1 then `2`.
fn substitute(replacement: &str, captures: &Captures<'_>, out: &mut String) {
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some('$') => {
                chars.next();
                out.push('$');
            }
            Some(d) if d.is_ascii_digit() => {
                chars.next();
                let mut group = d.to_digit(10).unwrap_or(0) as usize;
                while let Some(next) = chars.peek().and_then(|n| n.to_digit(10)) {
                    let longer = group * 10 + next as usize;
                    if longer >= captures.len() {
                        break;
                    }
                    group = longer;
                    chars.next();
                }
                if let Some(m) = captures.get(group) {
                    out.push_str(m.as_str());
                }
            }
            _ => out.push('$'),
        }
    }
}
