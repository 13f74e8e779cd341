//! The webhook Lambda's entry point: configuration and clients once per cold start.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let app = hookflow::app::AwsEnv::app_from_env().await?;
    hookflow_webhook::run(app).await
}
