//! The AWS adapters: [`DynamoStore`] (one DynamoDB table), [`SqsQueue`], and
//! [`Emf`] metric lines for CloudWatch.
//!
//! Both call AWS through [`SignedClient`] (DynamoDB's and SQS's JSON protocols),
//! with the configuration they are given: the environment's on Lambda
//! (`AWS_REGION`, `AWS_ENDPOINT_URL`, ...), aws-config's in the CLI, so the same
//! code talks to AWS or to a local endpoint such as moto.

mod claims;
pub mod dlq;
mod dynamo;
mod emf;
mod errors;
mod gathers;
mod item;
mod lanes;
pub mod objects;
mod places;
mod replays;
mod secrets;
mod sqs;

pub use dynamo::{DynamoStore, create_table};
pub use emf::Emf;
pub use objects::{Objects, create_bucket};
pub use places::{PLACE_LEASE_SECONDS, Places};
pub use secrets::{AwsSecrets, create_secret};
pub use sqs::{DEFAULT_MAX_MESSAGE_BYTES, SqsQueue, create_lane_queue, create_queue};

use std::sync::Arc;
use std::time::Duration;

/// The configuration (loaded once per cold start or CLI run) and the client the
/// adapters call through.
pub use crate::aws::{SdkConfig, SignedClient, env_config, load_config};

/// How long one store or queue call may take, its retries included: longer than
/// SQS's longest receive wait (20 s).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The client a [`DynamoStore`] and an [`SqsQueue`] call through (one can serve
/// both: it holds the credentials, which it fetches again before they expire).
pub fn client(config: &SdkConfig) -> Arc<SignedClient> {
    Arc::new(SignedClient::new(config.clone(), CALL_TIMEOUT))
}
