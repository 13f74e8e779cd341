//! aws-config's HTTP client (the CLI's provider chain: STS, SSO, IMDS): the
//! process's reqwest client, so aws-config, the signed calls and the request node
//! share one HTTP and TLS stack. The SDK's own client would add hyper's HTTP/2 and
//! h2 (HTTP/1.1 is all the services hookflow calls speak to it), a second
//! connector and aws-lc. aws-config keeps its retries, timeouts and signing: this
//! only carries requests.

use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

/// The SDK's view of the process's reqwest client.
pub fn shared() -> SharedHttpClient {
    SharedHttpClient::new(Reqwest)
}

#[derive(Debug, Clone, Copy)]
struct Reqwest;

impl HttpClient for Reqwest {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        // The connect timeout is the client's (the SDK's default, 3.1 s); the
        // operation timeouts the SDK applies around each call.
        SharedHttpConnector::new(*self)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("reqwest", None))
    }
}

impl HttpConnector for Reqwest {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        HttpConnectorFuture::new(async move {
            let client = super::http().map_err(|e| ConnectorError::other(e.into(), None))?;
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(e.into()))?;
            let (parts, body) = request.into_parts();
            let body = match body.bytes() {
                Some(bytes) => reqwest::Body::from(bytes.to_vec()),
                None => reqwest::Body::wrap(body),
            };
            let request = reqwest::Request::try_from(http::Request::from_parts(parts, body))
                .map_err(|e| ConnectorError::user(e.into()))?;
            let response = client.execute(request).await.map_err(|e| {
                if e.is_timeout() {
                    ConnectorError::timeout(e.into())
                } else if e.is_connect() || e.is_request() || e.is_body() {
                    // Transient: the SDK retries these.
                    ConnectorError::io(e.into())
                } else {
                    ConnectorError::other(e.into(), None)
                }
            })?;
            let response =
                http::Response::<reqwest::Body>::from(response).map(SdkBody::from_body_1_x);
            HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}
