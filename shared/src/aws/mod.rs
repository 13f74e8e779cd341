//! AWS plumbing below every layer that talks to AWS: the configuration (region,
//! credentials, endpoint) with the process's one HTTPS client, and SigV4-signed
//! calls for every service hookflow uses, without their SDK crates (DynamoDB, SQS,
//! S3, SSM Parameter Store, Secrets Manager, EventBridge, SNS, SES, Lambda; see
//! the workspace's Cargo.toml for why).

mod config;
mod endpoint;
#[cfg(feature = "aws-profiles")]
mod http_client;
mod signed;

use std::sync::OnceLock;
use std::time::Duration;

pub use config::{SdkConfig, env_config, load_config};
pub use endpoint::{Service, s3_bucket_url, s3_object_url};
pub use signed::{CallError, Reply, SignedClient, SigningStyle, xml_text};

/// The HTTPS client every AWS call goes through (with `aws-profiles`, aws-config's
/// own calls too): one per
/// process (one connection pool), rustls on ring. Built at the first call that
/// needs it (building reads the system's CA certificates), so a cold start pays for
/// it at its first AWS call, and a machine without certificates gets failed calls
/// rather than a crash. Redirects are never followed: AWS does not redirect a
/// correct request, and following one would resend signed headers elsewhere.
fn http() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            crate::tls::install();
            reqwest::Client::builder()
                // The AWS SDK's default connect timeout.
                .connect_timeout(Duration::from_millis(3100))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("hookflow/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("no HTTPS client: {}", chain(&e)))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The region a configuration names, when it names one.
pub fn region(config: &SdkConfig) -> Option<&str> {
    config
        .region()
        .map(|r| r.as_ref().trim())
        .filter(|r| !r.is_empty())
}

/// An error with its causes, which say what actually went wrong.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}
