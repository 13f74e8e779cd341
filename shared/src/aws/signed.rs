//! SigV4-signed calls over HTTPS for the services hookflow calls without their SDK
//! crate. What the SDK would do is done here too: credentials from the
//! configuration's provider chain (cached until shortly before they expire), up to
//! three attempts on throttling, server errors and broken connections with jittered
//! backoff (the SDKs' standard retry mode), one deadline over all of them, and
//! AWS's own error code and message read from the reply.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;
use tokio::sync::Mutex;

use super::endpoint::Service;

/// A failed call: AWS's error code (or hookflow's, such as `Timeout`) and what
/// went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CallError {
    pub code: String,
    pub message: String,
    /// A JSON error reply that says more than its code and message, whole: the
    /// item a failed DynamoDB condition returned (`Item`), a cancelled
    /// transaction's `CancellationReasons`.
    pub details: Option<Box<Value>>,
}

impl CallError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_string(),
            message: message.into(),
            details: None,
        }
    }

    /// `code: message`, as a log line or a store's error names it.
    pub fn describe(&self) -> String {
        format!("{}: {}", self.code, self.message)
    }

    pub(crate) fn not_configured() -> Self {
        Self::new(
            "NotConfigured",
            "AWS is not configured: set AWS_REGION (on Lambda it is set) and credentials, \
             or AWS_ENDPOINT_URL for moto or LocalStack",
        )
    }
}

/// How a service wants its requests signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningStyle {
    /// Path encoded once and not normalised, payload hash in `x-amz-content-sha256`.
    S3,
    /// Every other service.
    Standard,
}

/// A successful reply, its body still to read.
pub struct Reply {
    pub status: StatusCode,
    response: reqwest::Response,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
    }

    /// The length the reply declared, if it declared one.
    pub fn content_length(&self) -> Option<u64> {
        self.response.content_length()
    }

    /// The whole body, when it is no longer than `limit` bytes.
    pub async fn bytes(mut self, limit: usize) -> Result<Vec<u8>, CallError> {
        let mut body = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            if body.len() + chunk.len() > limit {
                return Err(CallError::new(
                    "TooLarge",
                    format!("the reply is larger than {limit} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The body's next piece, within the call's deadline.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, CallError> {
        self.response
            .chunk()
            .await
            .map_err(|e| transport("reading the reply", &e))
    }
}

/// Calls signed with one configuration's region and credentials.
pub struct SignedClient {
    config: SdkConfig,
    /// Credentials and when to fetch them again.
    credentials: Mutex<Option<(Credentials, Instant)>>,
    timeout: Duration,
    /// Calls started (retries not counted), so tests can check how many AWS calls
    /// a path makes.
    calls: AtomicU64,
}

/// Attempts per call, as in the SDKs' standard retry mode.
const ATTEMPTS: u32 = 3;
/// Fetch credentials again this long before they expire, or after this long when
/// they do not say (environment variables), as the SDK's identity cache does.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);
const CREDENTIALS_DEFAULT_LIFE: Duration = Duration::from_secs(900);
/// The most of an error reply read for its code, message and details. DynamoDB's
/// reply to a failed condition carries the item that stood in its way
/// (`ReturnValuesOnConditionCheckFailure`): up to 400 KB, more as JSON text. Cut
/// short, the reply would not parse, its code would be lost, and the failed
/// condition would read as an outage, retried for ever.
const MAX_ERROR_BODY: usize = 1 << 20;

impl SignedClient {
    /// Each call, its retries included, ends within `timeout`.
    pub fn new(config: SdkConfig, timeout: Duration) -> Self {
        Self {
            config,
            credentials: Mutex::new(None),
            timeout,
            calls: AtomicU64::new(0),
        }
    }

    /// How many calls this client has started.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub fn config(&self) -> &SdkConfig {
        &self.config
    }

    /// Sends a request, signed for `service`, and answers its reply when it
    /// succeeded (2xx), or AWS's error.
    pub async fn send(
        &self,
        service: Service,
        style: SigningStyle,
        request: http::Request<Bytes>,
    ) -> Result<Reply, CallError> {
        self.send_within(service, style, request, self.timeout)
            .await
    }

    /// [`Self::send`] with a deadline of its own, for a call that may take longer
    /// than the others (a function's answer).
    pub async fn send_within(
        &self,
        service: Service,
        style: SigningStyle,
        request: http::Request<Bytes>,
        timeout: Duration,
    ) -> Result<Reply, CallError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + timeout;
        let timed_out = || timed_out(timeout);
        let mut attempt = 1;
        loop {
            let outcome = tokio::time::timeout_at(
                deadline.into(),
                self.attempt(service, style, &request, deadline, timeout),
            )
            .await
            .map_err(|_| timed_out())?;
            match outcome {
                Ok(reply) => return Ok(reply),
                Err((error, retryable)) if retryable && attempt < ATTEMPTS => {
                    // Full jitter: up to 1 s, then up to 2 s.
                    let ceiling = Duration::from_secs(1 << (attempt - 1));
                    let delay = ceiling.mul_f64(rand::random::<f64>());
                    if Instant::now() + delay >= deadline {
                        return Err(error);
                    }
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err((error, _)) => return Err(error),
            }
        }
    }

    /// One signed attempt; a failure says whether another attempt may succeed.
    async fn attempt(
        &self,
        service: Service,
        style: SigningStyle,
        request: &http::Request<Bytes>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Reply, (CallError, bool)> {
        let signed = self
            .sign(service, style, request)
            .await
            .map_err(|e| (e, false))?;
        let mut outgoing = reqwest::Request::try_from(signed.map(reqwest::Body::from))
            .map_err(|e| (CallError::new("ClientError", e.to_string()), false))?;
        *outgoing.timeout_mut() = Some(deadline.saturating_duration_since(Instant::now()));
        let client = super::http().map_err(|e| (CallError::new("DispatchFailure", e), false))?;
        let response = match client.execute(outgoing).await {
            Ok(response) => response,
            // No connection within 3.1 s: another attempt may find one.
            Err(e) if e.is_connect() => return Err((transport("connecting", &e), true)),
            // The call's deadline has passed.
            Err(e) if e.is_timeout() => return Err((timed_out(timeout), false)),
            // The request may not have reached AWS: another attempt may.
            Err(e) => return Err((transport("the call", &e), e.is_request())),
        };
        let status = response.status();
        if status.is_success() {
            return Ok(Reply { status, response });
        }
        let headers = response.headers().clone();
        let body = read_capped(response, MAX_ERROR_BODY).await;
        let error = service_error(status, &headers, &body);
        // The statuses the SDKs retry.
        let retryable = matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
            || THROTTLING.contains(&error.code.as_str());
        Err((error, retryable))
    }

    async fn sign(
        &self,
        service: Service,
        style: SigningStyle,
        request: &http::Request<Bytes>,
    ) -> Result<http::Request<Bytes>, CallError> {
        let region = super::region(&self.config).ok_or_else(CallError::not_configured)?;
        let identity: Identity = self.credentials().await?.into();
        sign_request(
            request,
            &identity,
            region,
            service.signing_name,
            style,
            SystemTime::now(),
        )
    }

    /// The configuration's credentials, fetched again shortly before they expire.
    async fn credentials(&self) -> Result<Credentials, CallError> {
        let mut cached = self.credentials.lock().await;
        if let Some((credentials, refresh_at)) = cached.as_ref()
            && Instant::now() < *refresh_at
        {
            return Ok(credentials.clone());
        }
        let provider = self
            .config
            .credentials_provider()
            .ok_or_else(|| CallError::new("NotConfigured", "no AWS credentials are configured"))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| CallError::new("CredentialsError", super::chain(&e)))?;
        let life = match credentials.expiry() {
            None => CREDENTIALS_DEFAULT_LIFE,
            // Already expired ones are used once and fetched again next time.
            Some(at) => at
                .duration_since(SystemTime::now())
                .map_or(Duration::ZERO, |left| {
                    left.saturating_sub(CREDENTIALS_MARGIN)
                }),
        };
        *cached = Some((credentials.clone(), Instant::now() + life));
        Ok(credentials)
    }

    /// Where a call to `service` goes: its endpoint and `path` (which starts
    /// with `/`).
    pub fn url(&self, service: Service, path: &str) -> Result<String, CallError> {
        Ok(format!(
            "{}{path}",
            service.url(&service.base(&self.config)?)
        ))
    }

    /// A call in the AWS JSON protocol (SSM, Secrets Manager, EventBridge): the
    /// operation named in `X-Amz-Target`, a JSON object in, a JSON object out.
    pub async fn json(
        &self,
        service: Service,
        target: &str,
        input: &Value,
    ) -> Result<Value, CallError> {
        let content_type = format!("application/x-amz-json-{}", service.json_version);
        let reply = self
            .post(service, "/", &content_type, Some(target), input.to_string())
            .await?;
        read_json(reply).await
    }

    /// A DynamoDB operation (`PutItem`, `Query`, ...), items in DynamoDB JSON
    /// (`{"S": "text"}`).
    pub async fn dynamodb(&self, operation: &str, input: &Value) -> Result<Value, CallError> {
        let target = format!("DynamoDB_20120810.{operation}");
        self.json(Service::DYNAMODB, &target, input).await
    }

    /// An SQS operation (`SendMessage`, ...) in its JSON protocol.
    pub async fn sqs(&self, operation: &str, input: &Value) -> Result<Value, CallError> {
        self.json(Service::SQS, &format!("AmazonSQS.{operation}"), input)
            .await
    }

    /// A REST call with a JSON body and a JSON reply (SES v2).
    pub async fn rest_json(
        &self,
        service: Service,
        path: &str,
        input: &Value,
    ) -> Result<Value, CallError> {
        let reply = self
            .post(service, path, "application/json", None, input.to_string())
            .await?;
        read_json(reply).await
    }

    /// A call in the AWS query protocol (SNS): the action and its parameters as a
    /// form, XML back.
    pub async fn query(
        &self,
        service: Service,
        version: &str,
        action: &str,
        params: &[(String, String)],
    ) -> Result<Vec<u8>, CallError> {
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("Action", action)
                .append_pair("Version", version);
            for (name, value) in params {
                form.append_pair(name, value);
            }
            form.finish()
        };
        let content_type = "application/x-www-form-urlencoded";
        let reply = self.post(service, "/", content_type, None, body).await?;
        reply.bytes(MAX_JSON_REPLY).await
    }

    async fn post(
        &self,
        service: Service,
        path: &str,
        content_type: &str,
        target: Option<&str>,
        body: String,
    ) -> Result<Reply, CallError> {
        let url = self.url(service, path)?;
        let mut request = http::Request::builder()
            .method(Method::POST)
            .uri(&url)
            .header("content-type", content_type);
        if let Some(target) = target {
            request = request.header("x-amz-target", target);
        }
        let request = request
            .body(Bytes::from(body))
            .map_err(|e| CallError::new("ClientError", format!("{url}: {e}")))?;
        self.send(service, SigningStyle::Standard, request).await
    }
}

async fn read_json(reply: Reply) -> Result<Value, CallError> {
    let body = reply.bytes(MAX_JSON_REPLY).await?;
    serde_json::from_slice(&body)
        .map_err(|e| CallError::new("InvalidReply", format!("the reply is not JSON: {e}")))
}

fn timed_out(timeout: Duration) -> CallError {
    CallError::new(
        "Timeout",
        format!("no answer within {} s", timeout.as_secs_f32()),
    )
}

/// A copy of `request` with its SigV4 headers (`authorization`, `x-amz-date`, the
/// session token, and for S3 `x-amz-content-sha256`).
fn sign_request(
    request: &http::Request<Bytes>,
    identity: &Identity,
    region: &str,
    signing_name: &str,
    style: SigningStyle,
    time: SystemTime,
) -> Result<http::Request<Bytes>, CallError> {
    let mut settings = SigningSettings::default();
    if style == SigningStyle::S3 {
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    let params = v4::SigningParams::builder()
        .identity(identity)
        .region(region)
        .name(signing_name)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| CallError::new("ClientError", e.to_string()))?
        .into();
    // A header that is not ASCII text could not be signed: refused, never sent unsigned.
    let headers = request
        .headers()
        .iter()
        .map(|(k, v)| {
            v.to_str().map(|v| (k.as_str(), v)).map_err(|_| {
                CallError::new(
                    "InvalidParameter",
                    format!("the {k} header is not ASCII text"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let signable = SignableRequest::new(
        request.method().as_str(),
        request.uri().to_string(),
        headers.into_iter(),
        SignableBody::Bytes(request.body()),
    )
    .map_err(|e| CallError::new("ClientError", e.to_string()))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| CallError::new("ClientError", format!("signing: {e}")))?
        .into_parts();
    let mut signed = request.clone();
    instructions.apply_to_request_http1x(&mut signed);
    Ok(signed)
}

const MAX_JSON_REPLY: usize = 4 << 20;

/// Error codes that mean "slow down", retried as the SDKs retry them.
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "RequestTimeout",
    "RequestTimeoutException",
];

fn transport(what: &str, error: &reqwest::Error) -> CallError {
    CallError::new(
        "DispatchFailure",
        format!("{what} failed: {}", super::chain(error)),
    )
}

async fn read_capped(mut response: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = cap - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == cap {
            break;
        }
    }
    body
}

/// AWS's error code and message from a failed reply, in whichever of its forms
/// the service uses: the `x-amzn-ErrorType` header, a JSON body (`__type`,
/// `message`), or an XML one (`<Code>`, `<Message>`, as S3 answers).
fn service_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> CallError {
    let header = |name: &str, separator: char| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(separator).next().unwrap_or(v).to_string())
    };
    // A service that moved from the query protocol to JSON (SQS) names the error
    // as it did before (`AWS.SimpleQueueService.NonExistentQueue;Sender`), as
    // its SDK reports it.
    let header_code = header("x-amzn-query-error", ';').or_else(|| header("x-amzn-errortype", ':'));
    let (body_code, message, details) = match serde_json::from_slice::<Value>(body) {
        Ok(json) => {
            const PLAIN: [&str; 4] = ["__type", "code", "message", "Message"];
            let more = json
                .as_object()
                .is_some_and(|fields| fields.keys().any(|k| !PLAIN.contains(&k.as_str())));
            (
                json.get("__type")
                    .or_else(|| json.get("code"))
                    .and_then(Value::as_str)
                    .map(|t| t.rsplit('#').next().unwrap_or(t).to_string()),
                json.get("message")
                    .or_else(|| json.get("Message"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                more.then(|| Box::new(json)),
            )
        }
        Err(_) => {
            let (code, message) = xml_error(body);
            (code, message, None)
        }
    };
    let code = header_code.or(body_code).unwrap_or_else(|| match status {
        StatusCode::NOT_FOUND => "NotFound".to_string(),
        StatusCode::FORBIDDEN => "AccessDenied".to_string(),
        other => format!("Http{}", other.as_u16()),
    });
    let message = message.unwrap_or_else(|| {
        format!(
            "HTTP {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
    });
    CallError {
        code,
        message,
        details,
    }
}

/// `<Error><Code>…</Code><Message>…</Message></Error>`, at the root or inside
/// `<ErrorResponse>`.
fn xml_error(body: &[u8]) -> (Option<String>, Option<String>) {
    use aws_smithy_xml::decode::{Document, ScopedDecoder, try_data};
    fn scan(element: &mut ScopedDecoder<'_, '_>, out: &mut (Option<String>, Option<String>)) {
        while let Some(mut child) = element.next_tag() {
            if child.start_el().matches("Code") {
                out.0 = try_data(&mut child).ok().map(|s| s.trim().to_string());
            } else if child.start_el().matches("Message") {
                out.1 = try_data(&mut child).ok().map(|s| s.trim().to_string());
            } else if child.start_el().matches("Error") {
                scan(&mut child, out);
            }
        }
    }
    let mut found = (None, None);
    if let Ok(mut document) = Document::try_from(body)
        && let Ok(mut root) = document.root_element()
    {
        scan(&mut root, &mut found);
    }
    found
}

/// The text of the first `<tag>` element anywhere in an XML reply (a query
/// protocol's result, such as SNS's `<MessageId>`).
pub fn xml_text(body: &[u8], tag: &str) -> Option<String> {
    use aws_smithy_xml::decode::{Document, ScopedDecoder, try_data};
    fn find(element: &mut ScopedDecoder<'_, '_>, tag: &str) -> Option<String> {
        while let Some(mut child) = element.next_tag() {
            if child.start_el().matches(tag) {
                return try_data(&mut child).ok().map(|s| s.trim().to_string());
            }
            if let Some(found) = find(&mut child, tag) {
                return Some(found);
            }
        }
        None
    }
    let mut document = Document::try_from(body).ok()?;
    let mut root = document.root_element().ok()?;
    find(&mut root, tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    http::HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    /// The examples of Amazon S3's "Signature Calculations for the Authorization
    /// Header" page (docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html),
    /// with its example credentials and time.
    fn example_signature(request: http::Request<Bytes>) -> String {
        let identity: Identity = Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "example",
        )
        .into();
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600); // 2013-05-24T00:00:00Z
        let signed = sign_request(
            &request,
            &identity,
            "us-east-1",
            "s3",
            SigningStyle::S3,
            time,
        )
        .unwrap();
        signed.headers()["authorization"]
            .to_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn s3_requests_are_signed_as_the_s3_documentation_examples() {
        let get = http::Request::get("https://examplebucket.s3.amazonaws.com/test.txt")
            .header("range", "bytes=0-9")
            .body(Bytes::new())
            .unwrap();
        assert_eq!(
            example_signature(get),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        // The key "test$file.text", percent-encoded once as S3 expects.
        let put = http::Request::put("https://examplebucket.s3.amazonaws.com/test%24file.text")
            .header("date", "Fri, 24 May 2013 00:00:00 GMT")
            .header("x-amz-storage-class", "REDUCED_REDUNDANCY")
            .body(Bytes::from_static(b"Welcome to Amazon S3."))
            .unwrap();
        assert_eq!(
            example_signature(put),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, \
             Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
    }

    #[test]
    fn json_errors_give_the_short_code_and_the_message() {
        let e = service_error(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"__type":"com.amazonaws.ssm#ParameterNotFound","message":"Parameter /x not found."}"#,
        );
        assert_eq!(
            e,
            CallError::new("ParameterNotFound", "Parameter /x not found.")
        );
        let e = service_error(
            StatusCode::BAD_REQUEST,
            &headers(&[(
                "x-amzn-errortype",
                "ResourceNotFoundException:http://internal/",
            )]),
            br#"{"Message":"Secrets Manager can't find the specified secret."}"#,
        );
        assert_eq!(e.code, "ResourceNotFoundException");
        assert_eq!(
            e.message,
            "Secrets Manager can't find the specified secret."
        );
        let e = service_error(
            StatusCode::BAD_REQUEST,
            &headers(&[(
                "x-amzn-query-error",
                "AWS.SimpleQueueService.NonExistentQueue;Sender",
            )]),
            br#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."}"#,
        );
        assert_eq!(
            e,
            CallError::new(
                "AWS.SimpleQueueService.NonExistentQueue",
                "The specified queue does not exist."
            )
        );
    }

    #[test]
    fn a_json_error_that_says_more_keeps_its_reply() {
        let body =
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
            "message":"The conditional request failed","Item":{"pk":{"S":"CLAIM#k"}}}"#;
        let e = service_error(StatusCode::BAD_REQUEST, &HeaderMap::new(), body);
        assert_eq!(e.code, "ConditionalCheckFailedException");
        assert_eq!(e.message, "The conditional request failed");
        let details = e.details.expect("the reply");
        assert_eq!(details["Item"]["pk"]["S"], "CLAIM#k");
        // Code and message only: nothing more to keep.
        let plain = br#"{"__type":"x#ValidationException","message":"too large"}"#;
        let e = service_error(StatusCode::BAD_REQUEST, &HeaderMap::new(), plain);
        assert_eq!(e.details, None);
        assert_eq!(e.describe(), "ValidationException: too large");
    }

    #[test]
    fn s3_xml_errors_give_code_and_message_with_entities_decoded() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchKey</Code><Message>The key &quot;a&amp;b&quot; does not exist.</Message><Key>a&amp;b</Key></Error>"#;
        let e = service_error(StatusCode::NOT_FOUND, &HeaderMap::new(), body);
        assert_eq!(
            e,
            CallError::new("NoSuchKey", r#"The key "a&b" does not exist."#)
        );
        let wrapped = b"<ErrorResponse><Error><Code>AccessDenied</Code><Message>no</Message></Error></ErrorResponse>";
        let e = service_error(StatusCode::FORBIDDEN, &HeaderMap::new(), wrapped);
        assert_eq!(e, CallError::new("AccessDenied", "no"));
    }

    #[test]
    fn a_query_result_is_found_at_any_depth() {
        let body = br#"<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
  <PublishResult><MessageId>94f20ce6-13c5-43a0-9a9e-ca52d816e90b</MessageId></PublishResult>
  <ResponseMetadata><RequestId>f187a3c1</RequestId></ResponseMetadata>
</PublishResponse>"#;
        assert_eq!(
            xml_text(body, "MessageId").as_deref(),
            Some("94f20ce6-13c5-43a0-9a9e-ca52d816e90b")
        );
        assert_eq!(xml_text(body, "SequenceNumber"), None);
        assert_eq!(xml_text(b"not xml", "MessageId"), None);
    }

    #[test]
    fn an_empty_or_unreadable_error_reply_still_says_something() {
        let e = service_error(StatusCode::NOT_FOUND, &HeaderMap::new(), b"");
        assert_eq!(e, CallError::new("NotFound", "HTTP 404 Not Found"));
        let e = service_error(StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"<html>oops");
        assert_eq!(e.code, "Http502");
    }

    /// Answers one request on `listener` with a 400 and `body`, as DynamoDB does.
    async fn answer_once(listener: tokio::net::TcpListener, body: String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut chunk = [0u8; 4096];
        // The request's head, then as much body as it declares.
        let body_at = loop {
            let n = socket.read(&mut chunk).await.unwrap();
            request.extend_from_slice(&chunk[..n]);
            if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
        };
        let head = String::from_utf8_lossy(&request[..body_at]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while request.len() < body_at + length {
            let n = socket.read(&mut chunk).await.unwrap();
            request.extend_from_slice(&chunk[..n]);
        }
        let reply = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(reply.as_bytes()).await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_condition_that_returns_a_large_item_still_reads_as_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        // DynamoDB names the error in the body only; the item a failed condition
        // returns can be 400 KB.
        let record = "r".repeat(300_000);
        let body = serde_json::json!({
            "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
            "message": "The conditional request failed",
            "Item": {"pk": {"S": "EX#e"}, "record": {"S": record}},
        })
        .to_string();
        tokio::spawn(answer_once(listener, body));
        let config = SdkConfig::builder()
            .region(aws_types::region::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                    "AKID", "secret", None, None, "test",
                )),
            )
            .build();
        let client = SignedClient::new(config, Duration::from_secs(10));
        let failed = client
            .dynamodb("PutItem", &serde_json::json!({"TableName": "t"}))
            .await
            .unwrap_err();
        assert_eq!(failed.code, "ConditionalCheckFailedException");
        let item = &failed.details.expect("the reply's details")["Item"];
        assert_eq!(item["record"]["S"].as_str().map(str::len), Some(300_000));
    }
}
