//! `hookflow sign`: the headers a sender would add to a body, for a preset; so a
//! signed delivery can be simulated with curl (`-H` per printed line).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use hookflow::model::{SignatureConfig, SignaturePreset};

#[derive(clap::Args)]
pub struct SignArgs {
    /// github, stripe, slack, shopify, standard-webhooks, twilio or hmac.
    #[arg(long)]
    preset: String,
    /// The secret (Twilio: the auth token; Standard Webhooks: whsec_...). Read from
    /// this environment variable instead with --secret-env.
    #[arg(
        long,
        required_unless_present = "secret_env",
        conflicts_with = "secret_env"
    )]
    secret: Option<String>,
    #[arg(long)]
    secret_env: Option<String>,
    /// The body, as sent.
    #[arg(
        long,
        conflicts_with = "body_file",
        required_unless_present = "body_file"
    )]
    body: Option<String>,
    #[arg(long)]
    body_file: Option<PathBuf>,
    /// Twilio: the URL the request is sent to.
    #[arg(long, default_value = "")]
    url: String,
    /// Twilio: the body is JSON, so Twilio signs the URL with `bodySHA256=<the
    /// body's hex SHA-256>` appended (printed on stderr: send the request there).
    #[arg(long)]
    json: bool,
    /// Standard Webhooks: the message id.
    #[arg(long, default_value = "msg_hookflow_sign")]
    id: String,
    /// hmac: the rest of `trigger.signature` as JSON (header, algorithm, encoding,
    /// prefix, timestampHeader, signedPayload).
    #[arg(long)]
    options: Option<String>,
}

pub fn run(args: SignArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.options {
        Some(json) => serde_json::from_str::<serde_json::Value>(json)
            .context("--options is not a JSON object")?,
        None => serde_json::json!({}),
    };
    config["preset"] = serde_json::Value::String(args.preset.clone());
    config["secret"] = serde_json::Value::String("unused".into());
    let config: SignatureConfig =
        serde_json::from_value(config).context("not a preset hookflow knows, or bad --options")?;
    let secret = match (&args.secret, &args.secret_env) {
        (Some(s), _) => s.clone(),
        (None, Some(name)) => std::env::var(name).with_context(|| format!("{name} is not set"))?,
        (None, None) => unreachable!("clap requires one of --secret and --secret-env"),
    };
    let body = match (&args.body, &args.body_file) {
        (Some(b), _) => b.clone().into_bytes(),
        (None, Some(path)) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        (None, None) => unreachable!("clap requires one of --body and --body-file"),
    };
    if args.json && config.preset != SignaturePreset::Twilio {
        anyhow::bail!("--json applies to --preset twilio only");
    }
    let (url, form) = if args.json {
        let url = hookflow::webhook::signature::twilio_json_url(&args.url, &body);
        eprintln!("send to: {url}");
        (url, Vec::new())
    } else {
        // Twilio signs form fields, decoded.
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        (args.url.clone(), form)
    };
    let now = chrono::Utc::now().timestamp();
    let headers =
        hookflow::webhook::signature::sign(&config, &secret, &body, &url, &form, now, &args.id)
            .map_err(anyhow::Error::msg)?;
    for (name, value) in headers {
        println!("{name}: {value}");
    }
    Ok(ExitCode::SUCCESS)
}
