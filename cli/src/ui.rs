//! The read-only viewer: mounted at `/ui` by `hookflow serve`, or served alone by
//! `hookflow ui` over a data directory or a deployed stack's DynamoDB table.
//!
//! Its pages show trigger contexts, results and webhook URLs (whose hook ids are
//! secrets), so by default it answers loopback callers only, and only under a
//! loopback host name: a web page elsewhere cannot read it through DNS rebinding
//! (its host name pointed at 127.0.0.1 still arrives as that name).

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use hookflow::view::Viewer;
use hookflow::webhook::SourceIp;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use tokio::net::TcpListener;

use crate::http_server::{self, Answer, ConnectionFlags};
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
    #[command(flatten)]
    connections: ConnectionFlags,
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
    let limits = args.connections.limits();
    let site = Arc::new(Site {
        mounted: Mounted {
            viewer: Viewer::new(
                store,
                Arc::new(hookflow::nodes::builtin()),
                args.webhook_base,
            ),
            public: args.public,
        },
        body_timeout: limits.body_timeout,
    });
    let address = listener.local_addr()?;
    let shown = match address {
        SocketAddr::V4(a) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
        other => other.to_string(),
    };
    println!("hookflow viewer on http://{shown}/ui (read-only)");
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    http_server::serve_with(listener, site, limits, stop, Duration::from_secs(5)).await;
    Ok(ExitCode::SUCCESS)
}

/// `hookflow ui`'s whole site: the viewer, and a way to it from anywhere else.
struct Site {
    mounted: Mounted,
    /// How long an unwanted request body is read (and thrown away) at most.
    body_timeout: Duration,
}

impl Answer for Site {
    async fn answer(&self, request: hyper::Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        http_server::discard(body, &parts.headers, self.body_timeout);
        if !Viewer::serves(parts.uri.path()) {
            return redirect_to_ui();
        }
        let peer = parts.extensions.get::<SourceIp>().map(|ip| ip.0);
        self.mounted.answer(peer, &parts).await
    }
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
