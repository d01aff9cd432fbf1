//! shelly-bridge: keeps the outbound WebSocket connections of Shelly Gen2+ plugs and serves
//! their readings over HTTP, fetched on demand by JSON-RPC.
//!
//! Layout: [`config`] (flags and env), [`rpc`] (frames and readings), [`device`] (one task per
//! plug), [`registry`] (connected plugs), [`ws`] (plug listener), [`http`] (API), [`stats`]
//! (own metrics). The serve loop, tracing, the container health probe and the hostname come
//! from `edge-metrics-common`; the plug simulator is the separate `shelly-sim` package.

pub mod config;
pub mod device;
pub mod http;
pub mod registry;
pub mod rpc;
pub mod stats;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
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

/// The two listeners of a bridge, bound.
#[derive(Debug)]
pub struct Listeners {
    /// Where plugs connect (WebSocket).
    pub ws: TcpListener,
    /// Where the HTTP API listens.
    pub http: TcpListener,
}

impl Listeners {
    /// Binds `config.ws_addr` and `config.http_addr`; the error names the flag that moves a
    /// busy port.
    pub async fn bind(config: &BridgeConfig) -> Result<Listeners, BindError> {
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
        Ok(Listeners { ws, http })
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
pub async fn run(config: BridgeConfig, shutdown: CancellationToken) -> Result<(), BindError> {
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
    } = listeners;
    let ws_addr = ws_listener.local_addr().unwrap_or(config.ws_addr);
    let http_addr = http_listener.local_addr().unwrap_or(config.http_addr);
    tracing::info!(address = %ws_addr, "Listening for plug WebSocket connections.");
    tracing::info!(address = %http_addr, "Serving the HTTP API.");
    tracing::info!(
        src = %config.src,
        rpc_timeout_secs = config.rpc_timeout.as_secs_f64(),
        ping_interval_secs = config.ping_interval.as_secs_f64(),
        max_frame_bytes = config.max_frame_bytes,
        "Bridge ready."
    );

    let shared = Arc::new(Shared {
        config,
        registry: Default::default(),
        stats: Default::default(),
    });
    let tasks = TaskTracker::new();
    let ws_task = tokio::spawn(ws::serve(
        ws_listener,
        shared.clone(),
        shutdown.clone(),
        tasks.clone(),
    ));
    let http_task = tokio::spawn(http::serve(
        http_listener,
        http::routes(shared.clone()),
        shutdown.clone(),
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
