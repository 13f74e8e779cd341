//! Numbers as text, the way JavaScript writes them (`String(n)`): what NocoBase's
//! templates and formula.js produce, so `-0` is `0`, `1e16` is
//! `10000000000000000`, and `1e21` is `1e+21`. `ryu-js` implements exactly
//! ECMAScript's Number::toString.

use serde_json::Number;

/// A float as JavaScript prints it (`NaN` and `Infinity` included, for callers
/// that can meet them).
pub fn float_text(f: f64) -> String {
    ryu_js::Buffer::new().format(f).to_string()
}

/// A JSON number as JavaScript prints it.
pub fn text(n: &Number) -> String {
    if n.is_f64() {
        n.as_f64().map_or_else(|| n.to_string(), float_text)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_javascript() {
        for (f, js) in [
            (-0.0, "0"),
            (0.0, "0"),
            (1.5, "1.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e16, "10000000000000000"),
            (1e21, "1e+21"),
            (1e300, "1e+300"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (-2.5, "-2.5"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
        ] {
            assert_eq!(float_text(f), js, "{f}");
        }
        let parsed: serde_json::Value =
            serde_json::from_str("[-0, 7, -3, 1.0, 18446744073709551615]").unwrap();
        let texts: Vec<String> = parsed
            .as_array()
            .unwrap()
            .iter()
            .map(|v| text(v.as_number().unwrap()))
            .collect();
        assert_eq!(texts, ["0", "7", "-3", "1", "18446744073709551615"]);
    }
}
