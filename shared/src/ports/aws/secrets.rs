//! [`SecretSource`] on SSM Parameter Store (`GetParameter`, with decryption) and
//! Secrets Manager (`GetSecretValue`). Each client is built on first use, so a
//! deployment that references neither never pays for it.

use async_trait::async_trait;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::model::SecretRef;
use crate::ports::secrets::{SecretError, SecretSource, read_local};

#[derive(Default)]
pub struct AwsSecrets {
    config: OnceCell<aws_config::SdkConfig>,
    ssm: OnceCell<aws_sdk_ssm::Client>,
    secrets_manager: OnceCell<aws_sdk_secretsmanager::Client>,
}

impl AwsSecrets {
    pub fn new() -> Self {
        Self::default()
    }

    /// With a configuration already loaded (a Lambda's cold start).
    pub fn with_config(config: aws_config::SdkConfig) -> Self {
        Self {
            config: OnceCell::new_with(Some(config)),
            ..Self::default()
        }
    }

    async fn config(&self) -> &aws_config::SdkConfig {
        self.config.get_or_init(super::load_config).await
    }
}

fn unavailable(reference: &SecretRef, why: impl std::fmt::Display) -> SecretError {
    SecretError::Unavailable(format!("{} cannot be read: {why}", reference.describe()))
}

/// An SDK failure in a line: the service's code and message, or what kept the
/// call from reaching it (the whole chain).
fn sdk_failure<E, R>(e: SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("error"),
            service.message().unwrap_or("no message")
        ),
        None => DisplayErrorContext(e).to_string(),
    }
}

#[async_trait]
impl SecretSource for AwsSecrets {
    async fn read(&self, reference: &SecretRef) -> Result<String, SecretError> {
        if let Some(local) = read_local(reference) {
            return local;
        }
        match reference {
            SecretRef::Ssm { ssm } => {
                let client = self
                    .ssm
                    .get_or_init(|| async { aws_sdk_ssm::Client::new(self.config().await) })
                    .await;
                let out = client
                    .get_parameter()
                    .name(ssm)
                    .with_decryption(true)
                    .send()
                    .await
                    .map_err(|e| unavailable(reference, sdk_failure(e)))?;
                out.parameter
                    .and_then(|p| p.value)
                    .ok_or_else(|| unavailable(reference, "it has no value"))
            }
            SecretRef::SecretsManager {
                secrets_manager,
                key,
            } => {
                let client = self
                    .secrets_manager
                    .get_or_init(|| async {
                        aws_sdk_secretsmanager::Client::new(self.config().await)
                    })
                    .await;
                let out = client
                    .get_secret_value()
                    .secret_id(secrets_manager)
                    .send()
                    .await
                    .map_err(|e| unavailable(reference, sdk_failure(e)))?;
                let text = out
                    .secret_string
                    .ok_or_else(|| unavailable(reference, "it is not a text secret"))?;
                match key {
                    None => Ok(text),
                    Some(key) => {
                        let fields: Value = serde_json::from_str(&text)
                            .map_err(|_| unavailable(reference, "it is not a JSON object"))?;
                        match fields.get(key) {
                            Some(Value::String(s)) => Ok(s.clone()),
                            Some(_) => Err(unavailable(reference, "the field is not text")),
                            None => Err(unavailable(reference, "it has no such field")),
                        }
                    }
                }
            }
            SecretRef::Plain(_) | SecretRef::Env { .. } => unreachable!("read locally above"),
        }
    }
}
