//! HTTP answers: JSON errors, response-node replies and async trigger responses.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use serde_json::{Map, Value, json};

use crate::engine::Reply;
use crate::lang::template;
use crate::model::TriggerResponse;

/// What every answer of the webhook endpoint tells a browser, unless the workflow
/// set the header itself: the endpoint shares its origin with the viewer (`/ui`),
/// so a body echoing what a caller sent must never be sniffed into HTML nor run
/// as a page of that origin (`sandbox` gives it an opaque origin of its own).
const BROWSER_GUARDS: [(&str, &str); 2] = [
    ("x-content-type-options", "nosniff"),
    ("content-security-policy", "sandbox"),
];

fn guard(response: &mut Response<Bytes>) {
    for (name, value) in BROWSER_GUARDS {
        if !response.headers().contains_key(name) {
            response
                .headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
    }
}

/// Sets a header of an endpoint answer. Every answer built in this module, by
/// the handshakes and by the idempotency replays sets one (its content type at
/// least), so this is where each gets the [`BROWSER_GUARDS`] it lacks.
pub fn set_header(response: &mut Response<Bytes>, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, v);
    }
    guard(response);
}

pub fn json(status: StatusCode, body: &Value) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(body.to_string()));
    *response.status_mut() = status;
    set_header(&mut response, "content-type", "application/json");
    response
}

/// A workflow-chosen answer. A JSON string is sent as text, anything else as JSON,
/// unless the workflow set `Content-Type` itself.
pub fn from_reply(reply: &Reply) -> Response<Bytes> {
    let status = StatusCode::from_u16(reply.status_code).unwrap_or(StatusCode::OK);
    let (text, default_type) = match &reply.body {
        Value::String(s) => (s.clone(), "text/plain; charset=utf-8"),
        other => (other.to_string(), "application/json"),
    };
    let mut response = Response::new(Bytes::from(text));
    *response.status_mut() = status;
    for (name, value) in &reply.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                response.headers_mut().append(n, v);
            }
            _ => {
                tracing::warn!(header = %name, "skipping a response header that is not valid HTTP")
            }
        }
    }
    if !response.headers().contains_key("content-type") {
        set_header(&mut response, "content-type", default_type);
    }
    guard(&mut response);
    response
}

/// The configured immediate answer of an async workflow; its templates may read
/// `$context` and `$system.executionId`.
pub fn trigger_response(
    configured: &TriggerResponse,
    context: &Value,
    execution_id: &str,
) -> Response<Bytes> {
    let mut vars = Map::new();
    vars.insert("$context".into(), context.clone());
    vars.insert(
        "$system".into(),
        json!({ "executionId": execution_id, "now": crate::time::now_rfc3339() }),
    );
    let render_text = |v: &Value| match template::render(v, &vars) {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let reply = Reply {
        status_code: configured.status_code,
        headers: configured
            .headers
            .iter()
            .map(|h| (h.name.clone(), render_text(&h.value)))
            .collect(),
        body: template::render(&configured.body, &vars),
    };
    from_reply(&reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NameValue;

    fn content_type(r: &Response<Bytes>) -> &str {
        r.headers()["content-type"].to_str().unwrap()
    }

    #[test]
    fn strings_are_text_and_the_rest_json() {
        let text = from_reply(&Reply {
            status_code: 201,
            headers: vec![],
            body: json!("ok"),
        });
        assert_eq!(text.status(), 201);
        assert_eq!(content_type(&text), "text/plain; charset=utf-8");
        assert_eq!(text.body().as_ref(), b"ok");
        let obj = from_reply(&Reply {
            status_code: 200,
            headers: vec![],
            body: json!({"a": 1}),
        });
        assert_eq!(content_type(&obj), "application/json");
        assert_eq!(obj.body().as_ref(), br#"{"a":1}"#);
        let set = from_reply(&Reply {
            status_code: 200,
            headers: vec![("Content-Type".into(), "application/xml".into())],
            body: json!("<a/>"),
        });
        assert_eq!(content_type(&set), "application/xml");
        assert_eq!(set.body().as_ref(), b"<a/>");
    }

    #[test]
    fn trigger_response_reads_the_context() {
        let configured = TriggerResponse {
            status_code: 202,
            headers: vec![NameValue {
                name: "X-Order".into(),
                value: json!("{{$context.body.id}}"),
            }],
            body: json!({"accepted": "{{$context.body.id}}", "execution": "{{$system.executionId}}"}),
        };
        let r = trigger_response(&configured, &json!({"body": {"id": 9}}), "e-1");
        assert_eq!(r.status(), 202);
        assert_eq!(r.headers()["x-order"], "9");
        assert_eq!(r.body().as_ref(), br#"{"accepted":9,"execution":"e-1"}"#);
    }

    fn guards(r: &Response<Bytes>) -> (Vec<&str>, Vec<&str>) {
        let all = |name: &str| {
            r.headers()
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect::<Vec<_>>()
        };
        (
            all("x-content-type-options"),
            all("content-security-policy"),
        )
    }

    #[test]
    fn every_answer_is_sandboxed_unless_the_workflow_says_otherwise() {
        let html = from_reply(&Reply {
            status_code: 200,
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: json!("<script>fetch('/ui')</script>"),
        });
        assert_eq!(guards(&html), (vec!["nosniff"], vec!["sandbox"]));
        assert_eq!(
            guards(&json(StatusCode::UNAUTHORIZED, &json!({"error": "no"}))),
            (vec!["nosniff"], vec!["sandbox"])
        );
        let own = from_reply(&Reply {
            status_code: 200,
            headers: vec![
                (
                    "Content-Security-Policy".into(),
                    "default-src 'self'".into(),
                ),
                ("X-Content-Type-Options".into(), "nosniff".into()),
            ],
            body: json!("<p>hi</p>"),
        });
        assert_eq!(guards(&own), (vec!["nosniff"], vec!["default-src 'self'"]));
    }
}
