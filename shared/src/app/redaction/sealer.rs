//! The key runs that redact are sealed with (AES-256-GCM, a random 96-bit nonce per
//! seal): read once, when first needed, from where the deployment keeps it (a
//! Secrets Manager secret the stack generates; a file in `hookflow serve`'s data
//! directory).

use std::sync::Arc;

use base64::Engine as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::OnceCell;

use crate::model::SecretRef;
use crate::ports::secrets::SecretSource;

/// A ready key.
pub struct SealingKey {
    key: LessSafeKey,
}

impl SealingKey {
    /// The key of a secret text: its SHA-256.
    pub fn from_secret(secret: &str) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(secret.as_bytes());
        let key = UnboundKey::new(&AES_256_GCM, &digest).expect("32 bytes is an AES-256 key");
        Self {
            key: LessSafeKey::new(key),
        }
    }

    /// `bytes` sealed, as base64 of nonce and ciphertext.
    pub fn seal(&self, bytes: &[u8]) -> Result<String, String> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| "no randomness for a nonce".to_string())?;
        let mut sealed = bytes.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut sealed,
            )
            .map_err(|_| "sealing failed".to_string())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    }

    /// What [`Self::seal`] sealed; an error when it was sealed with another key
    /// or changed.
    pub fn open(&self, text: &str) -> Result<Vec<u8>, String> {
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("not base64: {e}"))?;
        if bytes.len() < NONCE_LEN {
            return Err("too short".into());
        }
        let mut body = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| "bad nonce")?;
        let opened = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut body)
            .map_err(|_| "sealed with another key, or changed".to_string())?;
        Ok(opened.to_vec())
    }
}

/// Where the sealing key comes from, read once.
pub struct Sealer {
    source: Option<(Arc<dyn SecretSource>, SecretRef)>,
    key: OnceCell<Arc<SealingKey>>,
}

impl Sealer {
    /// A key read from `reference` when first needed.
    pub fn from_secret(secrets: Arc<dyn SecretSource>, reference: SecretRef) -> Self {
        Self {
            source: Some((secrets, reference)),
            key: OnceCell::new(),
        }
    }

    /// A key given now.
    pub fn ready(key: SealingKey) -> Self {
        Self {
            source: None,
            key: OnceCell::new_with(Some(Arc::new(key))),
        }
    }

    /// No key: workflows that redact cannot run here.
    pub fn none() -> Self {
        Self {
            source: None,
            key: OnceCell::new(),
        }
    }

    pub async fn key(&self) -> Result<Arc<SealingKey>, super::RedactionError> {
        self.key
            .get_or_try_init(|| async {
                let Some((secrets, reference)) = &self.source else {
                    return Err(super::RedactionError::KeyUnavailable(
                        "no sealing key is configured (HOOKFLOW_SEALING_SECRET)".into(),
                    ));
                };
                let secret = secrets
                    .read(reference)
                    .await
                    .map_err(|e| super::RedactionError::KeyUnavailable(e.to_string()))?;
                Ok(Arc::new(SealingKey::from_secret(&secret)))
            })
            .await
            .cloned()
    }
}
