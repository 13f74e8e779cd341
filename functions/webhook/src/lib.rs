//! The webhook Lambda's handler: API Gateway's request straight into
//! [`hookflow::webhook::WebhookService`], the code `hookflow serve` runs too.

use std::sync::Arc;

use hookflow::app::{App, AwsEnv};
use hookflow::ports::aws;
use lambda_http::{Body, Error, Request, Response};

/// Builds everything a warm container keeps: configuration, SDK clients, the hook cache.
pub async fn app_from_env() -> Result<App, Error> {
    let env = AwsEnv::from_env()?;
    let config = aws::load_config().await;
    Ok(env.app(
        aws_sdk_dynamodb::Client::new(&config),
        aws_sdk_sqs::Client::new(&config),
    ))
}

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
