//! Where secrets configured by reference are read (inbound.md §1): the process
//! environment, SSM Parameter Store, Secrets Manager.

use async_trait::async_trait;

use crate::model::SecretRef;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Names the reference and why, never a value.
    #[error("{0}")]
    Unavailable(String),
}

#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The value a reference names.
    async fn read(&self, reference: &SecretRef) -> Result<String, SecretError>;
}

/// The environment only (and values written in the definition): for a process
/// with no AWS at hand; SSM and Secrets Manager references fail clearly.
pub struct EnvSecrets;

/// Reads what needs no AWS call: a written value, an environment variable.
pub fn read_local(reference: &SecretRef) -> Option<Result<String, SecretError>> {
    match reference {
        SecretRef::Plain(value) => Some(Ok(value.clone())),
        SecretRef::Env { env } => Some(
            std::env::var(env)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    SecretError::Unavailable(format!("environment variable {env} is not set"))
                }),
        ),
        _ => None,
    }
}

#[async_trait]
impl SecretSource for EnvSecrets {
    async fn read(&self, reference: &SecretRef) -> Result<String, SecretError> {
        read_local(reference).unwrap_or_else(|| {
            Err(SecretError::Unavailable(format!(
                "{} cannot be read: this process has no AWS access configured",
                reference.describe()
            )))
        })
    }
}
