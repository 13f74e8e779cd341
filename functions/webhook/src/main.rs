//! The webhook Lambda's entry point: configuration and clients once per cold start.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    hookflow::guard::install_panic_hook();
    let app = hookflow::wiring::AwsEnv::app_from_env().await?;
    hookflow_webhook::run(app).await
}
