//! [`SecretSource`] on SSM Parameter Store (`GetParameter`, with decryption) and
//! Secrets Manager (`GetSecretValue`). Each client is built on first use, so a
//! deployment that references neither never pays for it.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::aws::{CallError, SdkConfig, Service, SignedClient};
use crate::model::SecretRef;
use crate::ports::StoreError;
use crate::ports::secrets::{SecretError, SecretSource, read_local};

/// How long one read may take, retries included.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct AwsSecrets {
    client: OnceCell<SignedClient>,
}

impl AwsSecrets {
    pub fn new() -> Self {
        Self::default()
    }

    /// With a configuration already loaded (a Lambda's cold start).
    pub fn with_config(config: SdkConfig) -> Self {
        Self {
            client: OnceCell::new_with(Some(SignedClient::new(config, READ_TIMEOUT))),
        }
    }

    async fn client(&self) -> &SignedClient {
        self.client
            .get_or_init(|| async { SignedClient::new(super::load_config().await, READ_TIMEOUT) })
            .await
    }
}

fn unavailable(reference: &SecretRef, why: impl std::fmt::Display) -> SecretError {
    SecretError::Unavailable(format!("{} cannot be read: {why}", reference.describe()))
}

/// A failed call in a line: the service's code and message.
fn call_failure(reference: &SecretRef, e: CallError) -> SecretError {
    unavailable(reference, format!("{}: {}", e.code, e.message))
}

#[async_trait]
impl SecretSource for AwsSecrets {
    async fn read(&self, reference: &SecretRef) -> Result<String, SecretError> {
        if let Some(local) = read_local(reference) {
            return local;
        }
        match reference {
            SecretRef::Ssm { ssm } => {
                let out = self
                    .client()
                    .await
                    .json(
                        Service::SSM,
                        "AmazonSSM.GetParameter",
                        &json!({"Name": ssm, "WithDecryption": true}),
                    )
                    .await
                    .map_err(|e| call_failure(reference, e))?;
                match out.pointer("/Parameter/Value") {
                    Some(Value::String(value)) => Ok(value.clone()),
                    _ => Err(unavailable(reference, "it has no value")),
                }
            }
            SecretRef::SecretsManager {
                secrets_manager,
                key,
            } => {
                let out = self
                    .client()
                    .await
                    .json(
                        Service::SECRETS_MANAGER,
                        "secretsmanager.GetSecretValue",
                        &json!({"SecretId": secrets_manager}),
                    )
                    .await
                    .map_err(|e| call_failure(reference, e))?;
                let Some(Value::String(text)) = out.get("SecretString") else {
                    return Err(unavailable(reference, "it is not a text secret"));
                };
                match key {
                    None => Ok(text.clone()),
                    Some(key) => {
                        let fields: Value = serde_json::from_str(text)
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

/// Creates a Secrets Manager secret holding a random key, or finds the one there,
/// and returns its ARN (for local endpoints and tests; on AWS the template does).
pub async fn create_secret(client: &SignedClient, name: &str) -> Result<String, StoreError> {
    let key = hex::encode(rand::random::<[u8; 32]>());
    let input = json!({"Name": name, "SecretString": key});
    let created = client
        .json(
            Service::SECRETS_MANAGER,
            "secretsmanager.CreateSecret",
            &input,
        )
        .await;
    let out = match created {
        Ok(out) => out,
        Err(e) if e.code == "ResourceExistsException" => client
            .json(
                Service::SECRETS_MANAGER,
                "secretsmanager.DescribeSecret",
                &json!({"SecretId": name}),
            )
            .await
            .map_err(|e| StoreError::unavailable(e.describe()))?,
        Err(e) => return Err(StoreError::unavailable(e.describe())),
    };
    out.get("ARN")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| StoreError::unavailable("CreateSecret returned no ARN"))
}
