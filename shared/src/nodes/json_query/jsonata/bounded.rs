//! The builtins jsonata-rs builds on the heap outside its arena, so the arena's
//! memory budget does not see them: each checks the size of what it would make
//! before making it, then leaves the work to jsonata-rs's own builtin.

use jsonata_rs::{Error, FunctionContext, Value as J};

use super::{MAX_STRING_BYTES, Out, delegate, regex, too_big};

/// Registers every bounded builtin under its renamed name.
pub fn register(parsed: &jsonata_rs::JsonAta<'_>) {
    use super::rename::bounded_name as name;
    parsed.register_function(&name("pad"), 3, pad);
    parsed.register_function(&name("replace"), 4, replace);
    parsed.register_function(&name("join"), 2, join);
    parsed.register_function(&name("string"), 1, string);
    parsed.register_function(&name("contains"), 2, regex::contains);
    parsed.register_function(&name("match"), 2, regex::find_all);
    parsed.register_function(&name("split"), 3, regex::split);
}

/// `$replace(str, pattern, replacement [, limit])`: a string pattern's result is
/// sized exactly before it is built; a regex runs on the linear-time engine.
fn replace<'a>(cx: FunctionContext<'a, '_>, args: &[&'a J<'a>]) -> Out<'a> {
    if matches!(args.get(1), Some(J::Regex(_))) {
        return regex::replace(cx, args);
    }
    if let (Some(text), Some(pattern), Some(replacement)) = (args.first(), args.get(1), args.get(2))
        && text.is_string()
        && pattern.is_string()
        && replacement.is_string()
        && !pattern.as_str().is_empty()
    {
        let limit = match args.get(3) {
            Some(l) if l.is_number() && l.as_f64() >= 0.0 => l.as_f64() as usize,
            _ => usize::MAX,
        };
        let (text, pattern) = (text.as_str(), pattern.as_str());
        let found = text.matches(pattern.as_ref()).take(limit).count();
        let size = (text.len() - found * pattern.len())
            .saturating_add(found.saturating_mul(replacement.as_str().len()));
        if size > MAX_STRING_BYTES {
            return Err(too_big("replace"));
        }
    }
    delegate(&cx, "replace", args)
}

/// `$join(strings [, separator])`, sized before it is built: the same long string
/// may stand a million times in an array that costs the arena only its pointers.
fn join<'a>(cx: FunctionContext<'a, '_>, args: &[&'a J<'a>]) -> Out<'a> {
    if let Some(items) = args.first()
        && items.is_array()
    {
        let separator = args
            .get(1)
            .filter(|s| s.is_string())
            .map_or(0, |s| s.as_str().len());
        let mut size = separator.saturating_mul(items.len().saturating_sub(1));
        for item in items.members() {
            size = size.saturating_add(if item.is_string() {
                item.as_str().len()
            } else {
                0
            });
            if size > MAX_STRING_BYTES {
                return Err(too_big("join"));
            }
        }
    }
    delegate(&cx, "join", args)
}

/// `$string(value [, prettify])`: a value made of shared parts (`[$a, $a]`
/// nested) costs the arena little and its text exponentially more.
fn string<'a>(cx: FunctionContext<'a, '_>, args: &[&'a J<'a>]) -> Out<'a> {
    let value = args.first().copied().unwrap_or(cx.input);
    // Prettified text adds indentation: counted at twice the compact size.
    if json_len_up_to(value, MAX_STRING_BYTES) > MAX_STRING_BYTES / 2 {
        return Err(too_big("string"));
    }
    delegate(&cx, "string", args)
}

/// About the length of `value` as JSON text, stopping past `cap`; a range counts
/// its items without making them.
pub fn json_len_up_to<'a>(value: &'a J<'a>, cap: usize) -> usize {
    let mut total = 0usize;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        total = total.saturating_add(match v {
            J::Range(_) => v.len().saturating_mul(12),
            J::String(_) => v.as_str().len() + 2,
            J::Number(_) => 24,
            _ if v.is_array() => {
                stack.extend(v.members());
                v.len() + 2
            }
            J::Object(map) => {
                stack.extend(map.values().copied());
                map.keys().map(|k| k.len() + 4).sum::<usize>() + 2
            }
            _ => 5,
        });
        if total > cap {
            break;
        }
    }
    total
}

/// The widest `$pad` may make a string. jsonata-rs's own `$pad` builds any width
/// it is given, and a width from a request (`$pad(x, $.n)` with n = 1e15) would
/// take all the memory there is.
const MAX_PAD_WIDTH: f64 = 1_048_576.0;

/// JSONata's `$pad(str, width [, char])`: pads on the right for a positive width,
/// on the left for a negative one, with `char` (a space by default) repeated.
fn pad<'a>(cx: FunctionContext<'a, '_>, args: &[&'a J<'a>]) -> Out<'a> {
    let (Some(text), Some(width)) = (args.first(), args.get(1)) else {
        return Ok(J::undefined());
    };
    if !text.is_string() || !width.is_number() {
        return Ok(J::undefined());
    }
    let width = width.as_f64().round();
    if !width.is_finite() || width.abs() > MAX_PAD_WIDTH {
        return Err(Error::D3137Error(format!(
            "$pad: the width {width} is more than {MAX_PAD_WIDTH}"
        )));
    }
    let text = text.as_str();
    let fill = args
        .get(2)
        .map(|c| c.as_str().into_owned())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| " ".to_string());
    // Within the bound above: the cast is exact.
    let missing = (width.abs() as usize).saturating_sub(text.chars().count());
    let padding: String = fill.chars().cycle().take(missing).collect();
    let padded = if width > 0.0 {
        format!("{text}{padding}")
    } else {
        format!("{padding}{text}")
    };
    Ok(J::string(cx.arena, &padded))
}
