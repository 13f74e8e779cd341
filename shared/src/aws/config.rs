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
    config_from(|name| std::env::var(name).ok())
}

/// [`env_config`] from the variables `lookup` gives.
fn config_from(lookup: impl Fn(&str) -> Option<String>) -> SdkConfig {
    let var = |name: &str| {
        lookup(name)
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_credential_types::provider::ProvideCredentials;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> SdkConfig {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        config_from(|name| vars.get(name).cloned())
    }

    #[tokio::test]
    async fn a_lambdas_environment_gives_region_credentials_and_endpoint() {
        let lambda = config(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5077"),
            ("AWS_USE_FIPS_ENDPOINT", "true"),
        ]);
        assert_eq!(super::super::region(&lambda), Some("eu-west-1"));
        assert_eq!(lambda.endpoint_url(), Some("http://127.0.0.1:5077"));
        assert_eq!(
            (lambda.use_fips(), lambda.use_dual_stack()),
            (Some(true), None)
        );
        let credentials = lambda
            .credentials_provider()
            .unwrap()
            .provide_credentials()
            .await
            .unwrap();
        assert_eq!(credentials.access_key_id(), "AKIAEXAMPLE");
        assert_eq!(credentials.secret_access_key(), "secret");
        assert_eq!(credentials.session_token(), Some("token"));
    }

    #[test]
    fn what_the_environment_lacks_the_configuration_lacks() {
        let bare = config(&[
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5077"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ]);
        assert_eq!(super::super::region(&bare), Some("us-east-1"));
        // A key without its secret is no credentials.
        assert!(bare.credentials_provider().is_none());
        assert_eq!(bare.endpoint_url(), None);
        assert_eq!(super::super::region(&config(&[("AWS_REGION", " ")])), None);
    }
}
