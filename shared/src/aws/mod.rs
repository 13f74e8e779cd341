//! AWS plumbing below every layer that talks to AWS: the configuration (region,
//! credentials, endpoint) with the process's one HTTPS client, and SigV4-signed
//! calls for the services hookflow uses without their SDK crate (S3, SSM Parameter
//! Store, Secrets Manager; see the workspace's Cargo.toml for why).

mod endpoint;
mod http_client;
mod signed;

use std::sync::OnceLock;
use std::time::Duration;

pub use aws_config::SdkConfig;
pub use endpoint::{Service, s3_object_url};
pub use signed::{CallError, Reply, SignedClient, SigningStyle};

/// The HTTPS client every AWS call goes through, SDK and signed alike: one per
/// process (one connection pool), rustls on ring. Certificates load when it is
/// first needed, so a cold start that never calls AWS never reads them.
fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        crate::tls::install();
        reqwest::Client::builder()
            // The AWS SDK's default connect timeout.
            .connect_timeout(Duration::from_millis(3100))
            .user_agent(concat!("hookflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTPS client")
    })
}

/// The standard AWS configuration (environment, profile files, container or
/// instance credentials), with hookflow's HTTPS client. Loaded once per cold start
/// or CLI run by its callers.
pub async fn load_config() -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http_client::shared(http().clone()))
        .load()
        .await
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
