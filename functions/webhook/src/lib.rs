//! The webhook Lambda's handler: API Gateway's request straight into
//! [`hookflow::webhook::WebhookService`], the code `hookflow serve` runs too.

use std::sync::Arc;

use hookflow::app::App;
use lambda_http::{Body, Error, Request, Response};

/// One invocation.
pub async fn handle(app: &App, request: Request) -> Result<Response<Body>, Error> {
    Ok(app.webhook.handle(request).await)
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
