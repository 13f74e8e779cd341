//! The webhook Lambda. It will run `hookflow::webhook::WebhookService` on DynamoDB and
//! SQS once those adapters land (the AWS issue); until then it refuses to start, so a
//! deployment cannot silently accept runs it has nowhere to keep.

fn main() {
    eprintln!(
        "hookflow webhook Lambda: the DynamoDB/SQS adapters are not built yet; \
         use `hookflow serve` locally (see README)"
    );
    std::process::exit(1);
}
