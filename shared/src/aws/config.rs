//! The AWS configuration: region, credentials and endpoint.
//!
//! On Lambda everything is in the environment (the runtime sets the region and the
//! function role's credentials; `AWS_ENDPOINT_URL` points at moto or LocalStack), so
//! the Lambdas read it there and link none of aws-config's provider chain (profiles,
//! SSO, STS, IMDS: aws-config with aws-sdk-sts and aws-smithy-runtime was ~0.5 MB of
//! each binary). The CLI, run on a laptop with profiles and SSO, turns on the
//! `aws-profiles` feature for the whole chain; either way the result is the same
//! `SdkConfig` the signed calls take.

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
pub use aws_types::SdkConfig;
use aws_types::region::Region;

/// The configuration the environment gives: `AWS_REGION` (or `AWS_DEFAULT_REGION`),
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_ENDPOINT_URL` (unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`),
/// `AWS_USE_FIPS_ENDPOINT`, `AWS_USE_DUALSTACK_ENDPOINT`. Read once: a Lambda's
/// environment, its credentials included, does not change while it lives.
pub fn env_config() -> SdkConfig {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let flag = |name: &str| var(name).map(|v| v.eq_ignore_ascii_case("true"));
    let mut config = SdkConfig::builder();
    if let Some(region) = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")) {
        config = config.region(Region::new(region));
    }
    if let (Some(key), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        let credentials =
            Credentials::new(key, secret, var("AWS_SESSION_TOKEN"), None, "environment");
        config = config.credentials_provider(SharedCredentialsProvider::new(credentials));
    }
    if flag("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") != Some(true) {
        config.set_endpoint_url(var("AWS_ENDPOINT_URL"));
    }
    if let Some(fips) = flag("AWS_USE_FIPS_ENDPOINT") {
        config = config.use_fips(fips);
    }
    if let Some(dual_stack) = flag("AWS_USE_DUALSTACK_ENDPOINT") {
        config = config.use_dual_stack(dual_stack);
    }
    config.build()
}

/// The standard AWS configuration (environment, profile files, SSO, container or
/// instance credentials), with hookflow's HTTPS client for the SDK's own calls
/// (STS, SSO). Loaded once per CLI run by its callers.
#[cfg(feature = "aws-profiles")]
pub async fn load_config() -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(super::http_client::shared())
        .load()
        .await
}

/// Without the provider chain (the Lambdas): the environment's configuration.
#[cfg(not(feature = "aws-profiles"))]
pub async fn load_config() -> SdkConfig {
    env_config()
}
