//! The worker Lambda. It will feed SQS batches to `hookflow::worker::Worker` once the
//! AWS adapters land (the AWS issue); until then it refuses to start.

fn main() {
    eprintln!(
        "hookflow worker Lambda: the DynamoDB/SQS adapters are not built yet; \
         use `hookflow serve` locally (see README)"
    );
    std::process::exit(1);
}
