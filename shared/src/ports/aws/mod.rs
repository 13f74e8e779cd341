//! The AWS adapters: [`DynamoStore`] (one DynamoDB table), [`SqsQueue`], and
//! [`Emf`] metric lines for CloudWatch.
//!
//! Both honour the standard AWS environment (`AWS_ENDPOINT_URL`, `AWS_PROFILE`,
//! `AWS_REGION`), so the same code talks to AWS or to a local endpoint such as moto.

mod claims;
pub mod dlq;
mod dynamo;
mod emf;
mod item;
mod replays;
mod secrets;
mod sqs;

pub use dynamo::{DynamoStore, create_table};
pub use emf::Emf;
pub use secrets::AwsSecrets;
pub use sqs::{SqsQueue, create_queue};

/// Loads the AWS configuration once (per cold start, per CLI run).
pub use crate::aws::load_config;
