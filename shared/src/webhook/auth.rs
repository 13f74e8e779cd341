//! HTTP Basic authentication, compared in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether the request carries exactly the configured credentials. Both sides are
/// hashed first, so the comparison takes the same time whatever the lengths.
pub fn basic_matches(headers: &HeaderMap, username: &str, password: &str) -> bool {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(token.trim())
        })
        .and_then(|token| STANDARD.decode(token).ok())
        .unwrap_or_default();
    let wanted = format!("{username}:{password}");
    let a = Sha256::digest(&presented);
    let b = Sha256::digest(wanted.as_bytes());
    let equal: bool = a.ct_eq(&b).into();
    equal && !presented.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_str(value).unwrap());
        h
    }

    fn matches(h: &HeaderMap) -> bool {
        basic_matches(h, "acme", "s3cret")
    }

    #[test]
    fn accepts_only_the_right_pair() {
        let good = format!("Basic {}", STANDARD.encode("acme:s3cret"));
        assert!(matches(&headers(&good)));
        assert!(matches(&headers(&good.replace("Basic", "basic"))));
        for bad in ["acme:wrong", "acme:s3cret ", "other:s3cret", "acme", ""] {
            let h = headers(&format!("Basic {}", STANDARD.encode(bad)));
            assert!(!matches(&h), "{bad}");
        }
        assert!(!matches(&headers("Bearer abc")));
        assert!(!matches(&headers("Basic %%%")));
        assert!(!matches(&HeaderMap::new()));
    }
}
