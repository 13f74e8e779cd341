//! The worker Lambda's entry point: configuration and clients once per cold start.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let app = hookflow::app::AwsEnv::app_from_env().await?;
    hookflow_worker::run(app).await
}
