//! What a body costs once parsed, for the body-memory budget.
//!
//! A body is held as bytes while it is read, then as the JSON value (or form
//! fields) it parses into while its run goes on: a 1 MiB JSON array of small
//! numbers holds 36 MiB as `serde_json::Value`s (each value 72 bytes with
//! `preserve_order`, in vectors grown by doubling) and peaks at 54 MiB while it
//! parses. Counting raw bytes let 100 such bodies at once take 1 GB with the
//! default 32 MiB budget.

/// Bytes a value slot costs: a 72-byte `Value`, with room for a vector's growth.
const PER_VALUE: usize = 112;
/// Bytes an object entry costs on top of its value: its key, hash index and an
/// index map's spare room (a one-key object takes ~440 bytes in all).
const PER_ENTRY: usize = 320;

/// An estimate (on the high side) of the bytes `body` takes once parsed, read in
/// one pass without parsing: each `,`, `[` and `{` outside strings starts a value,
/// each `:` an object entry (each `&` a form field). Measured against
/// serde_json's own allocations in `tests::the_estimate_is_never_below_what_parsing_takes`.
pub fn parsed_cost(body: &[u8]) -> usize {
    let mut values = 1usize;
    let mut entries = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b',' | b'[' | b'{' => values += 1,
            b':' | b'&' => entries += 1,
            _ => {}
        }
    }
    body.len()
        .saturating_add(values.saturating_mul(PER_VALUE))
        .saturating_add(entries.saturating_mul(PER_ENTRY))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The factors are serde_json's peak allocations per input byte, measured
    /// with a counting allocator (`Value` is 72 bytes with `preserve_order`).
    #[test]
    fn the_estimate_is_never_below_what_parsing_takes() {
        let n = 1 << 20;
        // Peak bytes per input byte, as measured with a counting allocator.
        let cases = [
            (format!("[{}1]", "1,".repeat(n / 2 - 1)), 54),
            (format!("[{}[]]", "[],".repeat(n / 3 - 1)), 54),
            (
                format!("[{}{{\"a\":1}}]", "{\"a\":1},".repeat(n / 8 - 1)),
                55,
            ),
            (format!("\"{}\"", "x".repeat(n - 2)), 1),
        ];
        for (body, factor) in cases {
            let cost = parsed_cost(body.as_bytes());
            assert!(
                cost >= body.len() * factor,
                "{} bytes: estimated {cost}, parsing takes ~{}",
                body.len(),
                body.len() * factor
            );
            // And not wildly above it: a budget charged this still admits bodies.
            assert!(cost <= body.len() * factor * 2 + 2, "{cost}");
        }
        // Commas and colons inside strings are text, not values.
        let text = format!("\"{}\"", ",:[{".repeat(1000));
        assert_eq!(parsed_cost(text.as_bytes()), text.len() + PER_VALUE);
        let escaped = br#"["a\",b", 1]"#;
        assert_eq!(parsed_cost(escaped), escaped.len() + 3 * PER_VALUE);
    }
}
