//! The bound on text a `dateCalculation` reads (a format, a date, a zone, a unit,
//! a number written as text). Real ones are tens of characters; the bound keeps
//! what a sender's text costs the node, and what its messages repeat back, small.

use serde_json::Value;

/// Characters of one text value a step reads, at most.
pub const MAX_TEXT_CHARS: usize = 1_000;

/// `text` itself when within [`MAX_TEXT_CHARS`], else a message naming `what` and
/// the bound.
pub fn bounded<'a>(what: &str, text: &'a str) -> Result<&'a str, String> {
    // Bytes are never fewer than characters: most text is judged without counting.
    if text.len() <= MAX_TEXT_CHARS {
        return Ok(text);
    }
    let chars = text.chars().count();
    if chars <= MAX_TEXT_CHARS {
        return Ok(text);
    }
    Err(format!(
        "{what} is {chars} characters long; dateCalculation reads at most {MAX_TEXT_CHARS}"
    ))
}

/// The argument `name` (rendered to `value`) when it is text (checked against the
/// bound), `None` when it is absent or not text.
pub fn text_arg<'a>(value: &'a Value, name: &str) -> Result<Option<&'a str>, String> {
    value.as_str().map(|text| bounded(name, text)).transpose()
}
