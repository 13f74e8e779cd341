//! The trigger context (spec section 4): declared headers, the query string parsed
//! like `qs`, and the JSON body.

use bytes::Bytes;
use http::Request;
use serde_json::{Map, Value};

use crate::lang::limits;
use crate::lang::media::is_json_type;
use crate::lang::qs;
use crate::model::TriggerDefinition;

/// Builds `$context` from a request; `Err` is the message of a 400.
pub fn trigger_context(
    request: &Request<Bytes>,
    trigger: &TriggerDefinition,
) -> Result<Value, String> {
    let mut headers = Map::new();
    for declared in &trigger.request.headers {
        let name = declared.key.to_ascii_lowercase();
        let values: Vec<String> = request
            .headers()
            .get_all(name.as_str())
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if !values.is_empty() {
            headers.insert(name, Value::String(values.join(", ")));
        }
    }
    let query = qs::parse(request.uri().query().unwrap_or(""));
    let body = parse_body(request)?;
    let mut context = Map::new();
    context.insert("headers".into(), Value::Object(headers));
    context.insert("query".into(), query);
    context.insert("body".into(), body);
    Ok(Value::Object(context))
}

fn parse_body(request: &Request<Bytes>) -> Result<Value, String> {
    let bytes: &[u8] = request.body().as_ref();
    let is_json = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_json_type);
    if !is_json || bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    let body: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    // The body is kept in the run's record and message; past this depth they could
    // not be read back (see `limits`).
    if limits::depth(&body) > limits::MAX_DEPTH {
        return Err(format!(
            "the body is nested deeper than {} levels",
            limits::MAX_DEPTH
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HeaderDeclaration, RequestDeclarations};
    use serde_json::json;

    fn trigger(headers: &[&str]) -> TriggerDefinition {
        TriggerDefinition {
            kind: "webhook".into(),
            hook_id: None,
            basic_authentication: None,
            request: RequestDeclarations {
                headers: headers
                    .iter()
                    .map(|h| HeaderDeclaration { key: h.to_string() })
                    .collect(),
                ..Default::default()
            },
            response: None,
        }
    }

    fn request(uri: &str, content_type: Option<&str>, body: &str) -> Request<Bytes> {
        let mut b = Request::builder()
            .method("POST")
            .uri(uri)
            .header("Authorization", "Basic c2VjcmV0")
            .header("X-Request-Id", "r-1")
            .header("X-Multi", "a")
            .header("X-Multi", "b");
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        b.body(Bytes::from(body.to_string())).unwrap()
    }

    #[test]
    fn only_declared_headers_are_exposed() {
        let req = request("/x?a=1", None, "");
        let ctx =
            trigger_context(&req, &trigger(&["X-Request-Id", "x-multi", "x-missing"])).unwrap();
        assert_eq!(
            ctx["headers"],
            json!({"x-request-id": "r-1", "x-multi": "a, b"})
        );
        assert_eq!(ctx["query"], json!({"a": "1"}));
        assert_eq!(ctx["body"], Value::Null);
        assert!(!ctx.to_string().contains("c2VjcmV0"));
    }

    #[test]
    fn json_bodies_by_content_type() {
        let t = trigger(&[]);
        for ct in [
            "application/json",
            "application/json; charset=utf-8",
            "application/vnd.api+json",
            "Application/JSON",
        ] {
            let ctx = trigger_context(&request("/x", Some(ct), r#"{"a":[1]}"#), &t).unwrap();
            assert_eq!(ctx["body"], json!({"a": [1]}), "{ct}");
        }
        for ct in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
        ] {
            let ctx = trigger_context(&request("/x", ct, "a=1"), &t).unwrap();
            assert_eq!(ctx["body"], Value::Null);
        }
        let ctx = trigger_context(&request("/x", Some("application/json"), " "), &t).unwrap();
        assert_eq!(ctx["body"], Value::Null);
        let err =
            trigger_context(&request("/x", Some("application/json"), "{oops"), &t).unwrap_err();
        assert!(err.starts_with("the body is not valid JSON"));
    }
}
