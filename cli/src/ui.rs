//! The read-only viewer: mounted at `/ui` by `hookflow serve`, or served alone by
//! `hookflow ui` over a data directory or a deployed stack's DynamoDB table.
//!
//! Its pages show trigger contexts, results and webhook URLs (whose hook ids are
//! secrets), so by default it answers loopback callers only, and only under a
//! loopback host name: a web page elsewhere cannot read it through DNS rebinding
//! (its host name pointed at 127.0.0.1 still arrives as that name).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use hookflow::view::Viewer;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::source::{Source, open};

/// The viewer and who may read it.
pub struct Mounted {
    pub viewer: Viewer,
    /// Any caller under any host name, not only loopback ones.
    pub public: bool,
}

impl Mounted {
    /// The answer to a viewer request from `peer`, naming `host`.
    pub async fn answer(
        &self,
        peer: Option<IpAddr>,
        parts: &http::request::Parts,
    ) -> Response<Full<Bytes>> {
        let local = crate::local_caller::is_local(peer, &parts.headers);
        if !(self.public || local) {
            let mut refused = Response::new(Full::new(Bytes::from_static(
                b"the viewer answers loopback callers at a loopback address only, not through a proxy \
                  (start it with --ui-public, or `hookflow ui --public`, to change that)\n",
            )));
            *refused.status_mut() = StatusCode::FORBIDDEN;
            return refused;
        }
        self.viewer
            .answer(&parts.method, &parts.uri)
            .await
            .map(Full::new)
    }
}

#[derive(clap::Args)]
pub struct UiArgs {
    #[command(flatten)]
    source: Source,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3030")]
    addr: String,
    /// The deployed API's base URL (the stack's `WebhookApiUrl` output without the
    /// path), so pages show full webhook URLs.
    #[arg(long, env = "HOOKFLOW_WEBHOOK_BASE", default_value = "")]
    webhook_base: String,
    /// Answer any caller under any host name, not only loopback ones.
    #[arg(long)]
    public: bool,
}

pub fn run(args: UiArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: UiArgs) -> anyhow::Result<ExitCode> {
    let (store, _db) = open(&args.source).await?;
    let listener = TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let mounted = Arc::new(Mounted {
        viewer: Viewer::new(store, args.webhook_base),
        public: args.public,
    });
    let address = listener.local_addr()?;
    let shown = match address {
        SocketAddr::V4(a) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
        other => other.to_string(),
    };
    println!("hookflow viewer on http://{shown}/ui (read-only)");
    let graceful = GracefulShutdown::new();
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
            _ = &mut stop => break,
        };
        let mounted = Arc::clone(&mounted);
        let connection = http1::Builder::new().serve_connection(
            TokioIo::new(stream),
            service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let mounted = Arc::clone(&mounted);
                async move {
                    let (parts, _) = request.into_parts();
                    let response = if Viewer::serves(parts.uri.path()) {
                        mounted.answer(Some(peer.ip()), &parts).await
                    } else {
                        redirect_to_ui()
                    };
                    Ok::<_, Infallible>(response)
                }
            }),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(connection);
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), graceful.shutdown()).await;
    Ok(ExitCode::SUCCESS)
}

/// Anything but the viewer's pages leads to them.
fn redirect_to_ui() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    response.headers_mut().insert(
        http::header::LOCATION,
        http::HeaderValue::from_static(hookflow::view::site::PREFIX),
    );
    response
}
