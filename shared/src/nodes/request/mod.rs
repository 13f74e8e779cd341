//! `request`: an HTTP request (`reqwest`), with NocoBase's config names. A non-2xx
//! status, a timeout or a connection error fails the node unless `ignoreFail`.
//! Responses larger than the cap fail; refused addresses (see [`guard`]) are never
//! connected to.

pub mod guard;

use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::engine::{Checker, Node, NodeStop, RunContext, config};
use crate::model::{NameValue, NodeDefinition};
use guard::{GuardedResolver, NetworkPolicy, check_url};

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
const CONTENT_TYPES: [&str; 3] = [
    "application/json",
    "application/x-www-form-urlencoded",
    "text/plain",
];
const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// Responses above this fail the node rather than fill memory.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 5 << 20;
const MAX_REDIRECTS: usize = 10;

pub struct Request {
    /// Made at the first request: building it reads and parses the system's CA
    /// certificates, which a Lambda cold start that never calls out should not pay.
    client: std::sync::OnceLock<reqwest::Client>,
    policy: NetworkPolicy,
    max_response_bytes: usize,
}

impl Request {
    pub fn new(policy: NetworkPolicy, max_response_bytes: usize) -> Self {
        Self {
            client: std::sync::OnceLock::new(),
            policy,
            max_response_bytes,
        }
    }

    fn client(&self) -> &reqwest::Client {
        let policy = self.policy;
        self.client.get_or_init(|| {
            crate::tls::install();
            let redirect = reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
                }
                match check_url(&policy, attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(why) => attempt.error(format!("redirect refused: {why}")),
                }
            });
            reqwest::Client::builder()
                .dns_resolver(std::sync::Arc::new(GuardedResolver { policy }))
                .redirect(redirect)
                .no_proxy()
                .user_agent(concat!("hookflow/", env!("CARGO_PKG_VERSION")))
                .build()
                .expect("an HTTP client")
        })
    }

    async fn send(&self, config: &RequestConfig) -> Result<Value, Value> {
        let fail = |message: String| json!({ "message": message });
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let url = text(Some(&config.url));
        let mut url =
            reqwest::Url::parse(&url).map_err(|e| fail(format!("{url:?} is not a URL: {e}")))?;
        for p in &config.params {
            url.query_pairs_mut()
                .append_pair(&p.name, &text(Some(&p.value)));
        }
        // IP literals never reach the resolver: check them here.
        check_url(&self.policy, &url).map_err(fail)?;
        let method = config.method.to_ascii_uppercase();
        let method =
            reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| fail(e.to_string()))?;
        let mut request = self
            .client()
            .request(method.clone(), url)
            .timeout(Duration::from_millis(config.timeout));
        for h in &config.headers {
            request = request.header(h.name.as_str(), text(Some(&h.value)));
        }
        let data = Some(&config.data).filter(|d| !d.is_null());
        if let (Some(data), true) = (data, method != reqwest::Method::GET) {
            request = match config.content_type.as_str() {
                "application/x-www-form-urlencoded" => {
                    let pairs: Vec<(String, String)> = data
                        .as_object()
                        .map(|o| o.iter().map(|(k, v)| (k.clone(), text(Some(v)))).collect())
                        .unwrap_or_default();
                    request.form(&pairs)
                }
                "text/plain" => request
                    .header("content-type", "text/plain; charset=utf-8")
                    .body(text(Some(data))),
                _ => request.json(data),
            };
        }
        let response = request.send().await.map_err(|e| fail(describe(&e)))?;
        let status = response.status();
        let headers: Map<String, Value> = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
                )
            })
            .collect();
        let is_json = headers
            .get("content-type")
            .and_then(Value::as_str)
            .is_some_and(crate::lang::media::is_json_type);
        let body = self.read_capped(response).await.map_err(fail)?;
        let data = if is_json {
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
        } else {
            Value::String(String::from_utf8_lossy(&body).into_owned())
        };
        let result = json!({ "status": status.as_u16(), "statusText": status.canonical_reason().unwrap_or(""), "headers": headers, "data": data });
        if status.is_success() {
            Ok(result)
        } else {
            Err(
                json!({ "message": format!("the server answered {status}"), "status": status.as_u16(), "data": result["data"] }),
            )
        }
    }

    async fn read_capped(&self, mut response: reqwest::Response) -> Result<Vec<u8>, String> {
        let cap = self.max_response_bytes;
        if response.content_length().is_some_and(|n| n as usize > cap) {
            return Err(format!("the response is larger than {cap} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
            if body.len() + chunk.len() > cap {
                return Err(format!("the response is larger than {cap} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// reqwest's error with its causes, which say what actually went wrong.
fn describe(e: &reqwest::Error) -> String {
    let mut message = if e.is_timeout() {
        "the request timed out".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

#[async_trait]
impl Node for Request {
    type Config = RequestConfig;

    fn name(&self) -> &'static str {
        "request"
    }

    fn check(&self, c: &RequestConfig, at: &str, check: &mut Checker) {
        match c.url.as_str() {
            Some(u)
                if u.contains("{{")
                    || reqwest::Url::parse(u)
                        .is_ok_and(|u| matches!(u.scheme(), "http" | "https")) => {}
            _ => check.error(format!("{at}.url"), "is required: an http(s) URL"),
        }
        if !METHODS.contains(&c.method.to_ascii_uppercase().as_str()) {
            check.error(
                format!("{at}.method"),
                format!("must be one of {}", METHODS.join(", ")),
            );
        }
        if !CONTENT_TYPES.contains(&c.content_type.as_str()) {
            check.error(
                format!("{at}.contentType"),
                format!("must be one of {}", CONTENT_TYPES.join(", ")),
            );
        }
        super::response::check_headers(&c.headers, &format!("{at}.headers"), check);
        if !(1..=300_000).contains(&c.timeout) {
            check.error(format!("{at}.timeout"), "must be 1..=300000 (ms)");
        }
    }

    /// Every string may be templated: the config as written is rendered, then
    /// read, each run (what it reads depends on the run).
    async fn run(
        &self,
        _: &RequestConfig,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let c: RequestConfig = config::parse(&cx.render(&node.config))?;
        match self.send(&c).await {
            Ok(result) if c.only_data => Ok(result["data"].clone()),
            Ok(result) => Ok(result),
            Err(failure) if c.ignore_fail => Ok(failure),
            Err(failure) => Err(NodeStop::Fail(failure)),
        }
    }
}

/// NocoBase's request config: `url`, `method`, `contentType`, `headers` and
/// `params` (`[{name, value}]`), `data`, `timeout` (ms), `ignoreFail`, `onlyData`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestConfig {
    #[serde(default)]
    url: Value,
    #[serde(default = "post")]
    method: String,
    #[serde(default = "json_type")]
    content_type: String,
    #[serde(default)]
    headers: Vec<NameValue>,
    #[serde(default)]
    params: Vec<NameValue>,
    #[serde(default)]
    data: Value,
    #[serde(default = "default_timeout")]
    timeout: u64,
    #[serde(default)]
    ignore_fail: bool,
    #[serde(default)]
    only_data: bool,
}

fn post() -> String {
    "POST".into()
}

fn json_type() -> String {
    "application/json".into()
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

#[cfg(test)]
mod tests;
