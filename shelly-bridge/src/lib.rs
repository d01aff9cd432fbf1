//! shelly-bridge: keeps the outbound WebSocket connections of Shelly Gen2+ plugs and serves
//! their readings over HTTP, fetched on demand by JSON-RPC.
//!
//! Layout: [`config`] (flags and env, the plug token), [`rpc`] (frames and readings),
//! [`tls`] (certificate and key for `wss://`), [`device`] (one task per plug), [`registry`]
//! (connected plugs), [`ws`] (plug listener), [`http`] (API), [`stats`] (own metrics). The
//! serve loop, the connection caps, tracing, the container health probe and the hostname come
//! from `edge-metrics-common`; the plug simulator is the separate `shelly-sim` package.

pub mod config;
pub mod device;
pub mod http;
pub mod registry;
pub mod rpc;
pub mod stats;
pub mod tls;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::BridgeConfig;
use crate::device::Shared;

/// A listener that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for {what} on {addr} (is another process using the port? choose another with {hint})")]
pub struct BindError {
    /// Which listener.
    pub what: &'static str,
    /// The address asked for.
    pub addr: std::net::SocketAddr,
    /// The flag or variable that changes it.
    pub hint: &'static str,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// What keeps the bridge from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The TLS certificate or key cannot be used (a configuration error: exit 64).
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// A listener could not be opened.
    #[error(transparent)]
    Bind(#[from] BindError),
}

/// The two listeners of a bridge, bound, and the plug listener's TLS if configured.
pub struct Listeners {
    /// Where plugs connect (WebSocket).
    pub ws: TcpListener,
    /// Where the HTTP API listens.
    pub http: TcpListener,
    /// TLS for the plug listener (`wss://`), when a certificate and key are configured.
    pub ws_tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("ws", &self.ws)
            .field("http", &self.http)
            .field("ws_tls", &self.ws_tls.is_some())
            .finish()
    }
}

impl Listeners {
    /// Loads the TLS certificate and key if configured (first, so that a bad file stops the
    /// bridge before it opens a port), then binds `config.ws_addr` and `config.http_addr`;
    /// the error names the file, or the flag that moves a busy port.
    pub async fn bind(config: &BridgeConfig) -> Result<Listeners, StartError> {
        let ws_tls = config.ws_tls.as_ref().map(tls::load).transpose()?;
        let ws = bind(
            config.ws_addr,
            "plug WebSocket connections",
            "--ws-port / SHELLY_WS_PORT",
        )
        .await?;
        let http = bind(
            config.http_addr,
            "the HTTP API",
            "--http-port / SHELLY_HTTP_PORT",
        )
        .await?;
        Ok(Listeners { ws, http, ws_tls })
    }
}

async fn bind(
    addr: std::net::SocketAddr,
    what: &'static str,
    hint: &'static str,
) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr).await.map_err(|source| BindError {
        what,
        addr,
        hint,
        source,
    })
}

/// Binds both listeners, logs their addresses, and serves until `shutdown` is cancelled; then
/// closes every plug connection (close frame 1001) and returns.
pub async fn run(config: BridgeConfig, shutdown: CancellationToken) -> Result<(), StartError> {
    let listeners = Listeners::bind(&config).await?;
    serve(config, listeners, shutdown).await;
    Ok(())
}

/// Serves on listeners bound by the caller (tests bind port 0 and read the ports back) until
/// `shutdown` is cancelled; then closes every plug connection and returns.
pub async fn serve(config: BridgeConfig, listeners: Listeners, shutdown: CancellationToken) {
    let Listeners {
        ws: ws_listener,
        http: http_listener,
        ws_tls,
    } = listeners;
    let ws_addr = ws_listener.local_addr().unwrap_or(config.ws_addr);
    let http_addr = http_listener.local_addr().unwrap_or(config.http_addr);
    let scheme = if ws_tls.is_some() { "wss" } else { "ws" };
    tracing::info!(address = %ws_addr, scheme, "Listening for plug WebSocket connections.");
    tracing::info!(address = %http_addr, "Serving the HTTP API.");
    if config.ws_token.is_none() {
        tracing::warn!(
            "No plug token is set: any host that can reach the plug port can pose as a plug \
             and displace a real one. Set SHELLY_WS_TOKEN (or --ws-token / \
             SHELLY_WS_TOKEN_FILE) to a random secret, e.g. `openssl rand -hex 32`, and add \
             ?token=<secret> to each plug's Ws.SetConfig server URL."
        );
    }
    tracing::info!(
        src = %config.src,
        plug_auth = if config.ws_token.is_some() { "token" } else { "none" },
        allowed_devices = config.allow_devices.as_ref().map_or(0, |a| a.len()),
        max_plugs = config.max_plugs,
        max_http_connections = config.max_http_connections,
        max_pending_requests = config.max_pending_requests,
        identify_timeout_secs = config.identify_timeout.as_secs_f64(),
        rpc_timeout_secs = config.rpc_timeout.as_secs_f64(),
        ping_interval_secs = config.ping_interval.as_secs_f64(),
        max_frame_bytes = config.max_frame_bytes,
        "Bridge ready."
    );

    let shared = Arc::new(Shared::new(config));
    let tasks = TaskTracker::new();
    let ws_task = tokio::spawn(ws::serve(
        ws_listener,
        ws_tls,
        shared.clone(),
        shutdown.clone(),
        tasks.clone(),
    ));
    let http_task = tokio::spawn(http::serve_limited(
        http_listener,
        http::routes(shared.clone()),
        shutdown.clone(),
        shared.http_limit.clone(),
    ));

    shutdown.cancelled().await;
    tracing::info!(
        plugs = shared.registry.len(),
        "Shutting down: closing plug connections."
    );
    let _ = ws_task.await;
    tasks.close();
    if tokio::time::timeout(Duration::from_secs(5), tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("Some plug connections did not close within 5 s.");
    }
    if tokio::time::timeout(Duration::from_secs(5), http_task)
        .await
        .is_err()
    {
        tracing::warn!("The HTTP API did not stop within 5 s.");
    }
    tracing::info!("Stopped.");
}
