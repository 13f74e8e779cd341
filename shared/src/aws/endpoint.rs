//! Where a signed call goes: a configured endpoint (`AWS_ENDPOINT_URL_<SERVICE>`,
//! then `AWS_ENDPOINT_URL` or the profile's `endpoint_url`: moto, LocalStack, MinIO)
//! or the service's regional endpoint on AWS, with FIPS and dual-stack honoured as
//! the SDKs do (`AWS_USE_FIPS_ENDPOINT`, `AWS_USE_DUALSTACK_ENDPOINT`).

use super::SdkConfig;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::CallError;

/// A service called without its SDK crate.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// The name SigV4 signs with.
    pub signing_name: &'static str,
    /// The first label of its host on AWS.
    pub endpoint_prefix: &'static str,
    /// Its part of `AWS_ENDPOINT_URL_<ID>`, as the SDKs name it.
    pub env_id: &'static str,
    /// In GovCloud its standard endpoint is the FIPS one (there is no `-fips` host).
    pub govcloud_standard_is_fips: bool,
    /// The AWS JSON protocol version it speaks (`1.0` or `1.1`), for those that do.
    pub json_version: &'static str,
}

impl Service {
    pub const S3: Self = Self {
        signing_name: "s3",
        endpoint_prefix: "s3",
        env_id: "S3",
        govcloud_standard_is_fips: false,
        json_version: "",
    };
    pub const SSM: Self = Self {
        signing_name: "ssm",
        endpoint_prefix: "ssm",
        env_id: "SSM",
        govcloud_standard_is_fips: true,
        json_version: "1.1",
    };
    pub const SECRETS_MANAGER: Self = Self {
        signing_name: "secretsmanager",
        endpoint_prefix: "secretsmanager",
        env_id: "SECRETS_MANAGER",
        govcloud_standard_is_fips: false,
        json_version: "1.1",
    };
    pub const EVENTBRIDGE: Self = Self {
        signing_name: "events",
        endpoint_prefix: "events",
        env_id: "EVENTBRIDGE",
        govcloud_standard_is_fips: true,
        json_version: "1.1",
    };
    /// The query protocol (a form in, XML out).
    pub const SNS: Self = Self {
        signing_name: "sns",
        endpoint_prefix: "sns",
        env_id: "SNS",
        govcloud_standard_is_fips: true,
        json_version: "",
    };
    /// REST with JSON bodies; SES v2's hosts are `email.*`.
    pub const SESV2: Self = Self {
        signing_name: "ses",
        endpoint_prefix: "email",
        env_id: "SESV2",
        govcloud_standard_is_fips: false,
        json_version: "",
    };
    pub const DYNAMODB: Self = Self {
        signing_name: "dynamodb",
        endpoint_prefix: "dynamodb",
        env_id: "DYNAMODB",
        govcloud_standard_is_fips: true,
        json_version: "1.0",
    };
    pub const SQS: Self = Self {
        signing_name: "sqs",
        endpoint_prefix: "sqs",
        env_id: "SQS",
        govcloud_standard_is_fips: true,
        json_version: "1.0",
    };
    /// REST: a function's payload as the body.
    pub const LAMBDA: Self = Self {
        signing_name: "lambda",
        endpoint_prefix: "lambda",
        env_id: "LAMBDA",
        govcloud_standard_is_fips: false,
        json_version: "",
    };

    /// The endpoint a configuration gives this service.
    pub(crate) fn base(&self, config: &SdkConfig) -> Result<Base, CallError> {
        let configured = std::env::var(format!("AWS_ENDPOINT_URL_{}", self.env_id))
            .ok()
            .filter(|url| !url.trim().is_empty() && !ignores_configured_endpoints())
            .or_else(|| config.endpoint_url().map(str::to_string));
        if let Some(url) = configured {
            return Ok(Base::Configured(
                url.trim().trim_end_matches('/').to_string(),
            ));
        }
        let region = super::region(config).ok_or_else(CallError::not_configured)?;
        if !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(CallError::new(
                "NotConfigured",
                format!("the region {region:?} is not an AWS region name"),
            ));
        }
        Ok(Base::Aws {
            region: region.to_string(),
            fips: config.use_fips().unwrap_or(false),
            dual_stack: config.use_dual_stack().unwrap_or(false),
        })
    }

    /// The service's URL without a trailing slash, to which a REST call adds its
    /// path and a JSON or query call `/`.
    pub(crate) fn url(&self, base: &Base) -> String {
        match base {
            Base::Configured(url) => url.clone(),
            Base::Aws {
                region,
                fips,
                dual_stack,
            } => {
                // The FIPS GovCloud hosts without `-fips`; dual-stack ones keep it.
                let fips = *fips
                    && !(self.govcloud_standard_is_fips
                        && !dual_stack
                        && region.starts_with("us-gov-"));
                let (suffix, dual_stack_suffix) = partition(region);
                format!(
                    "https://{}{}.{region}.{}",
                    self.endpoint_prefix,
                    if fips { "-fips" } else { "" },
                    if *dual_stack {
                        dual_stack_suffix
                    } else {
                        suffix
                    }
                )
            }
        }
    }
}

/// A region's partition: its DNS suffix and its dual-stack one (the partitions
/// table the SDKs' endpoint rules carry).
fn partition(region: &str) -> (&'static str, &'static str) {
    const PARTITIONS: &[(&str, &str, &str)] = &[
        ("cn-", "amazonaws.com.cn", "api.amazonwebservices.com.cn"),
        ("eusc-", "amazonaws.eu", "api.amazonwebservices.eu"),
        ("us-iso-", "c2s.ic.gov", "api.aws.ic.gov"),
        ("us-isob-", "sc2s.sgov.gov", "api.aws.scloud"),
        ("eu-isoe-", "cloud.adc-e.uk", "api.cloud-aws.adc-e.uk"),
        ("us-isof-", "csp.hci.ic.gov", "api.aws.hci.ic.gov"),
    ];
    PARTITIONS
        .iter()
        .find(|(prefix, ..)| region.starts_with(prefix))
        .map_or(("amazonaws.com", "api.aws"), |&(_, suffix, dual)| {
            (suffix, dual)
        })
}

fn ignores_configured_endpoints() -> bool {
    std::env::var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Where a service's calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Base {
    /// A URL the environment or profile names, without a trailing slash.
    Configured(String),
    /// The service's regional endpoint on AWS.
    Aws {
        region: String,
        fips: bool,
        dual_stack: bool,
    },
}

/// Key characters written as they are; everything else is percent-encoded, as S3's
/// SigV4 canonical URI expects.
const KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// The URL of one S3 object: by path on a configured endpoint (moto, LocalStack
/// and MinIO serve buckets so) and for bucket names with dots (which the wildcard
/// certificate does not cover), by virtual host otherwise. The bucket's name is
/// checked first, so a rendered name can never reach another host.
pub fn s3_object_url(config: &SdkConfig, bucket: &str, key: &str) -> Result<String, CallError> {
    if key.is_empty() || key.len() > 1024 {
        return Err(CallError::new(
            "InvalidKey",
            "an object key is 1 to 1024 bytes long",
        ));
    }
    // URLs resolve "." and ".." segments (even percent-encoded), which would send
    // the request to another key, or by path to another bucket.
    if key
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(CallError::new(
            "InvalidKey",
            format!("{key:?} has a \".\" or \"..\" segment, which a URL cannot carry"),
        ));
    }
    let key = utf8_percent_encode(key, KEY);
    Ok(format!("{}/{key}", s3_bucket_url(config, bucket)?))
}

/// The URL of a bucket (no trailing slash), addressed as [`s3_object_url`] says.
pub fn s3_bucket_url(config: &SdkConfig, bucket: &str) -> Result<String, CallError> {
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !bucket.contains("..");
    if !valid_bucket {
        return Err(CallError::new(
            "InvalidBucketName",
            format!(
                "{bucket:?} is not a bucket name (3 to 63 lowercase letters, digits, dots and hyphens)"
            ),
        ));
    }
    Ok(match Service::S3.base(config)? {
        Base::Configured(url) => format!("{url}/{bucket}"),
        Base::Aws {
            region,
            fips,
            dual_stack,
        } => {
            let host = format!(
                "s3{}{}.{region}.{}",
                if fips { "-fips" } else { "" },
                if dual_stack { ".dualstack" } else { "" },
                partition(&region).0
            );
            if bucket.contains('.') {
                format!("https://{host}/{bucket}")
            } else {
                format!("https://{bucket}.{host}")
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use aws_types::SdkConfig;
    use aws_types::region::Region;

    use super::*;

    fn config(region: &str) -> SdkConfig {
        SdkConfig::builder()
            .region(Region::new(region.to_string()))
            .build()
    }

    #[test]
    fn services_go_to_their_regional_endpoint_with_fips_and_dual_stack() {
        let base = |region: &str, fips, dual_stack| Base::Aws {
            region: region.into(),
            fips,
            dual_stack,
        };
        let ssm = Service::SSM;
        assert_eq!(
            ssm.url(&base("eu-west-1", false, false)),
            "https://ssm.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            Service::SECRETS_MANAGER.url(&base("us-gov-west-1", true, false)),
            "https://secretsmanager-fips.us-gov-west-1.amazonaws.com"
        );
        assert_eq!(
            ssm.url(&base("us-east-1", false, true)),
            "https://ssm.us-east-1.api.aws"
        );
        assert_eq!(
            ssm.url(&base("cn-north-1", false, false)),
            "https://ssm.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            Service::SECRETS_MANAGER.url(&base("us-isob-east-1", false, false)),
            "https://secretsmanager.us-isob-east-1.sc2s.sgov.gov"
        );
        assert_eq!(
            ssm.url(&base("eusc-de-east-1", false, true)),
            "https://ssm.eusc-de-east-1.api.amazonwebservices.eu"
        );
        // SSM's GovCloud endpoints are FIPS endpoints; there is no ssm-fips host.
        assert_eq!(
            ssm.url(&base("us-gov-west-1", true, false)),
            "https://ssm.us-gov-west-1.amazonaws.com"
        );
        assert_eq!(
            ssm.url(&Base::Configured("http://127.0.0.1:5000".into())),
            "http://127.0.0.1:5000"
        );
        // Each service's own host and GovCloud rule, as its SDK's endpoint rules give them.
        let hosts = [
            (
                Service::SESV2,
                base("eu-west-1", true, false),
                "https://email-fips.eu-west-1.amazonaws.com",
            ),
            (
                Service::EVENTBRIDGE,
                base("us-gov-east-1", true, false),
                "https://events.us-gov-east-1.amazonaws.com",
            ),
            (
                Service::SNS,
                base("us-gov-east-1", true, true),
                "https://sns-fips.us-gov-east-1.api.aws",
            ),
            (
                Service::LAMBDA,
                base("us-gov-west-1", true, false),
                "https://lambda-fips.us-gov-west-1.amazonaws.com",
            ),
            (
                Service::DYNAMODB,
                base("us-gov-east-1", true, false),
                "https://dynamodb.us-gov-east-1.amazonaws.com",
            ),
            (
                Service::DYNAMODB,
                base("us-gov-east-1", true, true),
                "https://dynamodb-fips.us-gov-east-1.api.aws",
            ),
            (
                Service::DYNAMODB,
                base("eu-west-1", false, false),
                "https://dynamodb.eu-west-1.amazonaws.com",
            ),
        ];
        for (service, at, url) in hosts {
            assert_eq!(service.url(&at), url, "{service:?}");
        }
    }

    #[test]
    fn s3_objects_by_virtual_host_on_aws_and_by_path_elsewhere() {
        let aws = config("eu-west-1");
        assert_eq!(
            s3_object_url(&aws, "my-bucket", "in/2026 11/a+b.json").unwrap(),
            "https://my-bucket.s3.eu-west-1.amazonaws.com/in/2026%2011/a%2Bb.json"
        );
        assert_eq!(
            s3_object_url(&aws, "logs.example.com", "x").unwrap(),
            "https://s3.eu-west-1.amazonaws.com/logs.example.com/x"
        );
        let fips = SdkConfig::builder()
            .region(Region::new("us-east-1"))
            .use_fips(true)
            .use_dual_stack(true)
            .build();
        assert_eq!(
            s3_object_url(&fips, "b12", "k").unwrap(),
            "https://b12.s3-fips.dualstack.us-east-1.amazonaws.com/k"
        );
        let local = SdkConfig::builder()
            .region(Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:5000/")
            .build();
        assert_eq!(
            s3_object_url(&local, "b12", "ü/é").unwrap(),
            "http://127.0.0.1:5000/b12/%C3%BC/%C3%A9"
        );
    }

    #[test]
    fn a_bucket_name_cannot_reach_another_host() {
        let aws = config("us-east-1");
        for bad in [
            "evil.com/x",
            "a",
            "Bucket",
            "b@evil.com",
            "b:80",
            "-b-",
            "b..c",
            "",
        ] {
            let e = s3_object_url(&aws, bad, "k").unwrap_err();
            assert_eq!(e.code, "InvalidBucketName", "{bad}");
        }
        assert_eq!(
            s3_object_url(&aws, "bucket", "").unwrap_err().code,
            "InvalidKey"
        );
    }

    #[test]
    fn no_region_is_not_configured() {
        let e = s3_object_url(&SdkConfig::builder().build(), "bucket", "k").unwrap_err();
        assert_eq!(e.code, "NotConfigured");
        let e = s3_object_url(&config("us-east-1.evil.com/"), "bucket", "k").unwrap_err();
        assert_eq!(e.code, "NotConfigured");
    }
}
