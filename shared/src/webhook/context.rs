//! The trigger context (spec section 4, inbound.md §3): declared headers, the query
//! string parsed like `qs`, and the body by its content type (JSON, form,
//! multipart with its files, text), with the raw body when asked for.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::Request;
use serde_json::{Map, Value, json};

use crate::lang::{limits, media, qs};
use crate::model::TriggerDefinition;

/// Builds `$context` from a request; `Err` is the message of a 400.
pub async fn trigger_context(
    request: &Request<Bytes>,
    trigger: &TriggerDefinition,
) -> Result<Value, String> {
    let mut headers = Map::new();
    for declared in &trigger.request.headers {
        let name = declared.key.to_ascii_lowercase();
        if is_checked_credential(trigger, &name) {
            continue;
        }
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
    let (body, files) = parse_body(request).await?;
    let mut context = Map::new();
    context.insert("headers".into(), Value::Object(headers));
    context.insert("query".into(), query);
    context.insert("body".into(), body);
    if let Some(files) = files {
        context.insert("files".into(), files);
    }
    if trigger.request.raw_body {
        let bytes = request.body();
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                context.insert("rawBody".into(), Value::String(text.to_string()));
            }
            Err(_) => {
                context.insert("rawBody".into(), Value::String(STANDARD.encode(bytes)));
                context.insert("rawBodyEncoding".into(), Value::String("base64".into()));
            }
        }
    }
    Ok(Value::Object(context))
}

/// A header carrying the credentials hookflow itself checks: never put in the
/// context, which every execution records (`validate` refuses declaring it; this
/// covers definitions stored before it did). Signatures need no such rule, as
/// every preset's header carries a MAC, never its secret.
fn is_checked_credential(trigger: &TriggerDefinition, name: &str) -> bool {
    trigger.basic_authentication.is_some() && name == "authorization"
}

fn content_type(request: &Request<Bytes>) -> &str {
    request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// `$context.body` by content type (inbound.md §3), and `$context.files` for a
/// multipart body.
async fn parse_body(request: &Request<Bytes>) -> Result<(Value, Option<Value>), String> {
    let bytes: &[u8] = request.body().as_ref();
    let content_type = content_type(request);
    if media::is_json_type(content_type) {
        return parse_json(bytes).map(|v| (v, None));
    }
    if media::is_form_type(content_type) {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| "the form body is not valid UTF-8".to_string())?;
        return Ok((qs::parse(text), None));
    }
    if media::is_multipart_type(content_type) {
        return parse_multipart(content_type, request.body().clone())
            .await
            .map(|(fields, files)| (fields, Some(files)));
    }
    if media::is_text_type(content_type) {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| "the text body is not valid UTF-8".to_string())?;
        return Ok((Value::String(text.to_string()), None));
    }
    Ok((Value::Null, None))
}

fn parse_json(bytes: &[u8]) -> Result<Value, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
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

/// Text fields as an object (names by `qs` rules), files as
/// `[{field, filename, contentType, size, contentBase64}]`. The `multer` crate
/// reads the parts (boundaries, headers, transfer rules).
async fn parse_multipart(content_type: &str, body: Bytes) -> Result<(Value, Value), String> {
    let broken = |e: multer::Error| format!("the multipart body is broken: {e}");
    let boundary = multer::parse_boundary(content_type).map_err(broken)?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut fields = Vec::new();
    let mut files = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(broken)? {
        let name = field.name().unwrap_or_default().to_string();
        let filename = field.file_name().map(str::to_string);
        let part_type = field.content_type().map(ToString::to_string);
        let data = field.bytes().await.map_err(broken)?;
        match filename {
            Some(filename) => files.push(json!({
                "field": name,
                "filename": filename,
                "contentType": part_type,
                "size": data.len(),
                "contentBase64": STANDARD.encode(&data),
            })),
            None => {
                let text = String::from_utf8(data.to_vec())
                    .map_err(|_| format!("the multipart field {name:?} is not valid UTF-8 text"))?;
                fields.push((name, text));
            }
        }
    }
    Ok((qs::from_pairs(fields), Value::Array(files)))
}

/// A form body's fields as sent, decoded (`+` is a space), in order: what Twilio
/// signs. Empty when the body is not a form.
pub fn form_fields(request: &Request<Bytes>) -> Vec<(String, String)> {
    if !media::is_form_type(content_type(request)) {
        return Vec::new();
    }
    url::form_urlencoded::parse(request.body())
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// The URL as the sender addressed it: the scheme API Gateway or a proxy reports
/// (`X-Forwarded-Proto`, else `http`), the `Host`, the path and the query.
pub fn received_url(request: &Request<Bytes>) -> String {
    let headers = request.headers();
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("http");
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    format!("{scheme}://{host}{path}")
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
                    .map(|h| HeaderDeclaration {
                        key: h.to_string(),
                        alias: None,
                    })
                    .collect(),
                ..Default::default()
            },
            response: None,
            signature: None,
            handshake: None,
            idempotency: None,
            allow_ips: Vec::new(),
            rate_limit: None,
            redact: None,
            schema: None,
            on_invalid: Default::default(),
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

    #[tokio::test]
    async fn only_declared_headers_are_exposed() {
        let req = request("/x?a=1", None, "");
        let ctx = trigger_context(&req, &trigger(&["X-Request-Id", "x-multi", "x-missing"]))
            .await
            .unwrap();
        assert_eq!(
            ctx["headers"],
            json!({"x-request-id": "r-1", "x-multi": "a, b"})
        );
        assert_eq!(ctx["query"], json!({"a": "1"}));
        assert_eq!(ctx["body"], Value::Null);
        assert!(!ctx.to_string().contains("c2VjcmV0"));
    }

    #[tokio::test]
    async fn basic_credentials_stay_out_even_when_declared() {
        let mut t = trigger(&["Authorization", "x-request-id"]);
        let req = request("/x", None, "");
        let without_auth = trigger_context(&req, &t).await.unwrap();
        assert_eq!(without_auth["headers"]["authorization"], "Basic c2VjcmV0");
        t.basic_authentication = Some(crate::model::BasicAuth {
            username: "u".into(),
            password: crate::model::SecretRef::Plain("p".into()),
        });
        let ctx = trigger_context(&req, &t).await.unwrap();
        assert_eq!(ctx["headers"], json!({"x-request-id": "r-1"}));
    }

    #[tokio::test]
    async fn json_bodies_by_content_type() {
        let t = trigger(&[]);
        for ct in [
            "application/json",
            "application/json; charset=utf-8",
            "application/vnd.api+json",
            "Application/JSON",
        ] {
            let ctx = trigger_context(&request("/x", Some(ct), r#"{"a":[1]}"#), &t)
                .await
                .unwrap();
            assert_eq!(ctx["body"], json!({"a": [1]}), "{ct}");
        }
        for ct in [None, Some("application/octet-stream"), Some("image/png")] {
            let ctx = trigger_context(&request("/x", ct, "a=1"), &t)
                .await
                .unwrap();
            assert_eq!(ctx["body"], Value::Null);
        }
        let ctx = trigger_context(&request("/x", Some("application/json"), " "), &t)
            .await
            .unwrap();
        assert_eq!(ctx["body"], Value::Null);
        let err = trigger_context(&request("/x", Some("application/json"), "{oops"), &t)
            .await
            .unwrap_err();
        assert!(err.starts_with("the body is not valid JSON"));
    }

    #[tokio::test]
    async fn form_text_and_xml_bodies() {
        let t = trigger(&[]);
        let form = "command=%2Forder&text=2+pizzas&items[0][sku]=a&items[1][sku]=b&tag=x&tag=y";
        let ctx = trigger_context(
            &request("/x", Some("application/x-www-form-urlencoded"), form),
            &t,
        )
        .await
        .unwrap();
        assert_eq!(
            ctx["body"],
            json!({"command": "/order", "text": "2 pizzas", "items": [{"sku": "a"}, {"sku": "b"}], "tag": ["x", "y"]})
        );
        for ct in [
            "text/plain; charset=utf-8",
            "application/xml",
            "application/atom+xml",
            "text/csv",
        ] {
            let ctx = trigger_context(&request("/x", Some(ct), "<a>1</a>"), &t)
                .await
                .unwrap();
            assert_eq!(ctx["body"], json!("<a>1</a>"), "{ct}");
        }
        let bad = Request::builder()
            .method("POST")
            .uri("/x")
            .header("content-type", "text/plain")
            .body(Bytes::from_static(b"\xff\xfe"))
            .unwrap();
        assert!(
            trigger_context(&bad, &t)
                .await
                .unwrap_err()
                .contains("not valid UTF-8")
        );
    }

    #[tokio::test]
    async fn multipart_fields_and_files() {
        let t = trigger(&[]);
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"user[name]\"\r\n\r\nAnn\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi there\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nfile body\r\n\
                    --XyZ--\r\n";
        let ctx = trigger_context(
            &request("/x", Some("multipart/form-data; boundary=XyZ"), body),
            &t,
        )
        .await
        .unwrap();
        assert_eq!(
            ctx["body"],
            json!({"user": {"name": "Ann"}, "note": "hi there"})
        );
        assert_eq!(
            ctx["files"],
            json!([{"field": "doc", "filename": "a.txt", "contentType": "text/plain", "size": 9, "contentBase64": "ZmlsZSBib2R5"}])
        );
        for broken in [
            "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end",
            "garbage",
        ] {
            let err = trigger_context(
                &request("/x", Some("multipart/form-data; boundary=XyZ"), broken),
                &t,
            )
            .await
            .unwrap_err();
            assert!(err.contains("multipart body is broken"), "{err}");
        }
        let err = trigger_context(&request("/x", Some("multipart/form-data"), body), &t)
            .await
            .unwrap_err();
        assert!(err.contains("multipart body is broken"), "{err}");
    }

    #[tokio::test]
    async fn the_raw_body_on_request() {
        let mut t = trigger(&[]);
        t.request.raw_body = true;
        let ctx = trigger_context(&request("/x", Some("application/json"), r#"{"a": 1}"#), &t)
            .await
            .unwrap();
        assert_eq!(ctx["rawBody"], json!(r#"{"a": 1}"#));
        assert!(ctx.get("rawBodyEncoding").is_none());
        let binary = Request::builder()
            .method("POST")
            .uri("/x")
            .body(Bytes::from_static(&[0xff, 0x00, 0x01]))
            .unwrap();
        let ctx = trigger_context(&binary, &t).await.unwrap();
        assert_eq!(ctx["rawBody"], json!("/wAB"));
        assert_eq!(ctx["rawBodyEncoding"], json!("base64"));
    }

    #[test]
    fn the_received_url_and_form_fields() {
        let r = Request::builder()
            .method("POST")
            .uri("/api/webhook:trigger/sms?x=1")
            .header("host", "hooks.example.com")
            .header("x-forwarded-proto", "https")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Bytes::from_static(b"Body=Hi+there&From=%2B1555"))
            .unwrap();
        assert_eq!(
            received_url(&r),
            "https://hooks.example.com/api/webhook:trigger/sms?x=1"
        );
        assert_eq!(
            form_fields(&r),
            [
                ("Body".to_string(), "Hi there".to_string()),
                ("From".to_string(), "+1555".to_string())
            ]
        );
    }
}
