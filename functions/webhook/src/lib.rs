//! The webhook Lambda's handler: API Gateway's request, converted at this edge to
//! the `http` types of [`hookflow::webhook::WebhookService`], the code `hookflow
//! serve` runs too, with the invocation's deadline so a sync run answers 504 and
//! is recorded before Lambda cuts it off.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hookflow::webhook::{Deadline, SourceIp};
use hookflow::wiring::App;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Error, Request, RequestExt, Response};

/// One invocation.
pub async fn handle(app: &App, request: Request) -> Result<Response<Body>, Error> {
    let deadline = request
        .lambda_context_ref()
        .map(|c| deadline_of(c.deadline()));
    let source = source_ip(&request);
    let (mut parts, body) = request.into_parts();
    if let Some(deadline) = deadline {
        parts.extensions.insert(deadline);
    }
    if let Some(source) = source {
        parts.extensions.insert(source);
    }
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        // The enum is non-exhaustive; a kind added later still has its bytes.
        other => Bytes::copy_from_slice(other.as_ref()),
    };
    let response = app
        .webhook
        .handle(http::Request::from_parts(parts, body))
        .await;
    Ok(response.map(to_lambda_body))
}

/// The caller's address as API Gateway saw it (`requestContext.http.sourceIp`),
/// never `X-Forwarded-For`, which the caller writes.
fn source_ip(request: &Request) -> Option<SourceIp> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context
            .http
            .source_ip
            .as_deref()?
            .parse()
            .ok()
            .map(SourceIp),
        // Another event source (the enum is non-exhaustive): no known address,
        // which `allowIps` refuses.
        _ => None,
    }
}

/// The invocation's deadline (wall-clock time) as an instant of this process.
fn deadline_of(at: SystemTime) -> Deadline {
    let left = at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Deadline(Instant::now() + left)
}

/// Text stays text for API Gateway; anything else is sent base64-encoded.
fn to_lambda_body(bytes: Bytes) -> Body {
    if bytes.is_empty() {
        return Body::Empty;
    }
    match String::from_utf8(bytes.to_vec()) {
        Ok(text) => Body::Text(text),
        Err(e) => Body::Binary(e.into_bytes()),
    }
}

/// The Lambda loop.
pub async fn run(app: App) -> Result<(), Error> {
    let app = Arc::new(app);
    lambda_http::run(lambda_http::service_fn(move |request: Request| {
        let app = Arc::clone(&app);
        async move { handle(&app, request).await }
    }))
    .await
}
