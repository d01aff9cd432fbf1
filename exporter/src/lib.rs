//! edge-metrics-exporter: runs the host's tegrastats, parses it with per-model collectors and
//! serves Prometheus metrics plus a JSON management API.
//!
//! [`run`] is what `main` and tests drive: refuse a management API beyond loopback without an
//! API token ([`RunError::Config`], exit 64), bind both servers (logging `Listening.` with the
//! bound address), start the tegrastats source and the state owner, serve until SIGTERM/SIGINT
//! or the shutdown token, then stop everything within a grace period. Each server keeps at most
//! `max_connections` connections open; one more is closed as soon as it is accepted, so a flood
//! of idle connections on one port costs a socket each for an instant and cannot starve the
//! cycle or the other server, and the refusals show in the self-metrics.

pub mod boards;
pub mod client;
pub mod collector;
/// `config.yaml` (its own crate, shared with the Config Server).
pub use edge_metrics_config as config;
pub mod configserver;
pub mod device;
pub mod energy;
pub mod exposition;
pub mod http;
pub mod owner;
pub mod selfmetrics;
pub mod sysfs;
pub mod tegrastats;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use edge_metrics_common::limit::ConnectionLimit;
use edge_metrics_common::serve_limited;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::owner::feed::ConfigServer;
use crate::owner::{Command, ConfigOrigin, EnvMap, Owner, OwnerHandle, OwnerInit};
use crate::selfmetrics::Counters;
use crate::tegrastats::source::SourceError;

/// How long servers and the owner get to finish after shutdown starts.
const GRACE: Duration = Duration::from_secs(3);

/// What [`run`] starts from.
pub struct RunOptions {
    /// config.yaml (written on changes).
    pub config_path: PathBuf,
    /// The configuration loaded at start-up.
    pub config: Config,
    /// Where it came from.
    pub origin: ConfigOrigin,
    /// Whether start-up created config.yaml.
    pub created: bool,
    /// The process environment, as a map.
    pub env: EnvMap,
}

/// Why the exporter could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration in force cannot be used as it is (the management API beyond loopback
    /// without a token, a Config Server CA file that cannot be used). `main` exits 64 for it.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The tegrastats source cannot start.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A server could not bind its address.
    #[error("cannot listen on {address} for the {server} server: {source}. Free the port or change `{key}` in the config")]
    Bind {
        /// `metrics` or `management`.
        server: &'static str,
        /// The address asked for.
        address: String,
        /// The config key that sets the port.
        key: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

async fn bind(
    server: &'static str,
    host: &str,
    port: u16,
    key: &'static str,
) -> Result<TcpListener, RunError> {
    let result = match host.parse::<IpAddr>() {
        Ok(ip) => TcpListener::bind(SocketAddr::new(ip, port)).await,
        Err(_) => TcpListener::bind((host, port)).await,
    };
    let listener = result.map_err(|source| RunError::Bind {
        server,
        address: format!("{host}:{port}"),
        key,
        source,
    })?;
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| format!("{host}:{port}"));
    info!(server, address = %address, "Listening.");
    Ok(listener)
}

impl RunError {
    /// Whether the configuration is at fault (exit 64, EX_USAGE) rather than the host.
    pub fn is_usage(&self) -> bool {
        matches!(self, RunError::Config(_))
    }
}

/// Runs the exporter until `shutdown` fires or SIGTERM/SIGINT arrives.
pub async fn run(mut opts: RunOptions, shutdown: CancellationToken) -> Result<(), RunError> {
    // The Config Server comes first when configured; the local file is the fallback.
    let server = ConfigServer::from_config(&opts.config, &opts.env)?;
    if let Some(server) = &server {
        if let Some(fetched) = server.fetch().await {
            // Refused before it is kept: the management API can rewrite config.yaml.
            config::check_api_exposure(&fetched, &opts.env, "Config Server")?;
            opts.config = fetched;
            opts.origin = ConfigOrigin::Server;
            // Keep a local copy, so a start with the server down uses the latest config.
            if let Err(error) = config::save_atomic(&opts.config_path, &opts.config) {
                warn!(error = %config::error_chain(&error), "Could not keep a local copy of the Config Server's config.");
            }
        }
    }
    let cfg = &opts.config;
    if opts.origin == ConfigOrigin::Local {
        config::check_api_exposure(cfg, &opts.env, &opts.config_path.display().to_string())?;
    }
    // The boards read from sysfs run no tegrastats: nothing of it has to exist.
    let kind = device::Device::resolve(cfg.device_type, &config::host_root(cfg, &opts.env)).kind;
    owner::pipeline::source_spec(cfg, kind).check()?;
    let metrics_listener = bind("metrics", &cfg.bind_address, cfg.port, "port").await?;
    let api_listener = bind(
        "management",
        &cfg.reload_bind_address,
        cfg.reload_port,
        "reload_port",
    )
    .await?;
    info!(
        device_type = cfg.device_type.as_str(),
        host_root = %config::host_root(cfg, &opts.env).display(),
        config = %opts.config_path.display(),
        source = opts.origin.as_str(),
        max_connections = cfg.connection_cap(),
        "Starting edge-metrics-exporter."
    );
    // One cap for each server, so a flood on one port leaves the other's places alone.
    let metrics_limit = ConnectionLimit::new("metrics", cfg.connection_cap());
    let api_limit = ConnectionLimit::new("management", cfg.connection_cap());
    let counters = Arc::new(Counters {
        connections: vec![metrics_limit.clone(), api_limit.clone()],
        ..Counters::default()
    });
    let api_options =
        http::api::ApiOptions::new(&opts.config.reload_bind_address, counters.clone());
    let (owner, handle) = Owner::new(
        OwnerInit {
            config_path: opts.config_path,
            config: opts.config,
            origin: opts.origin,
            created: opts.created,
            env: opts.env,
            server,
            shutdown: shutdown.clone(),
        },
        counters,
    );
    let owner_task = tokio::spawn(owner.run(shutdown.clone()));
    let metrics_server = tokio::spawn(serve_limited(
        metrics_listener,
        http::metrics::routes(handle.clone()),
        shutdown.clone(),
        metrics_limit,
    ));
    let api_server = tokio::spawn(serve_limited(
        api_listener,
        http::api::routes(handle.clone(), api_options),
        shutdown.clone(),
        api_limit,
    ));
    let signals = tokio::spawn(handle_signals(handle, shutdown.clone()));

    shutdown.cancelled().await;
    info!("Shutting down.");
    signals.abort();
    let finish = async {
        let _ = owner_task.await;
        let _ = metrics_server.await;
        let _ = api_server.await;
    };
    if tokio::time::timeout(GRACE, finish).await.is_err() {
        warn!(
            grace_secs = GRACE.as_secs(),
            "Some tasks did not finish in time; exiting anyway."
        );
    }
    info!("Stopped.");
    Ok(())
}

/// SIGTERM/SIGINT cancel `shutdown`; SIGHUP reloads the configuration.
async fn handle_signals(handle: OwnerHandle, shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        warn!("Cannot install signal handlers; stop the exporter with SIGKILL.");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { info!(signal = "SIGTERM", "Signal received."); break; }
            _ = int.recv() => { info!(signal = "SIGINT", "Signal received."); break; }
            _ = hup.recv() => {
                info!(signal = "SIGHUP", "Signal received; reloading the configuration.");
                // The owner logs the outcome of the reload itself.
                let _ = handle.ask(|reply| Command::Reload { reply }).await;
            }
        }
    }
    shutdown.cancel();
}
