//! edge-metrics-config-server: the Config Server the exporters fetch their config from and
//! push it to (`GET`/`PUT /config/{device}`), with layered defaults for the fleet and each
//! device type, versions (ETag, If-Match), history and revert, what each device last did,
//! bearer tokens, and SQLite or PostgreSQL underneath.
//!
//! Layout, lowest first: [`auth`] (tokens), [`merge`] (the layering rules, pure JSON),
//! [`stats`] (own metrics), [`time`]; [`store`] (one trait, SQLite and PostgreSQL, the
//! migrations); [`settings`] (flags and environment), [`service`] (the operations and the race
//! rule); [`page`] (the fleet page: HTML, browser sessions); [`http`] (routes). Validation is the exporter's own, from `edge-metrics-config`; the
//! serve loop, tracing and the health probe come from `edge-metrics-common`.
//!
//! [`run`] is what `main` and tests drive: open the database (applying migrations), bind,
//! log `Listening.` with the bound address, serve until the shutdown token is cancelled.

pub mod auth;
pub mod http;
pub mod listing;
pub mod merge;
pub mod page;
pub mod service;
pub mod settings;
pub mod stats;
pub mod store;
pub mod time;

use std::net::SocketAddr;
use std::sync::Arc;

use edge_metrics_common::limit::ConnectionLimit;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;
use crate::stats::Stats;
use crate::store::{Store, StoreError};

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Database(#[from] StoreError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr} (is another process using the port? choose another with --listen / CONFIG_SERVER_LISTEN)")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Opens the database of `settings` on the blocking pool, applying the migrations it lacks.
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, RunError> {
    let url = settings.database.clone();
    let store = tokio::task::spawn_blocking(move || url.open())
        .await
        .map_err(|e| StoreError::Open {
            url: settings.database.redacted(),
            reason: format!("the opening task failed: {e}"),
        })??;
    tracing::info!(
        database = %settings.database.redacted(),
        backend = store.backend(),
        "Database ready."
    );
    Ok(Arc::from(store))
}

/// Opens the database, binds `settings.listen`, and serves until `shutdown` is cancelled.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> Result<(), RunError> {
    let store = open_store(&settings).await?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|source| RunError::Bind {
            addr: settings.listen,
            source,
        })?;
    serve(&settings, store, listener, shutdown).await;
    Ok(())
}

/// Serves the API over `store` on a listener bound by the caller until `shutdown`.
pub async fn serve(
    settings: &Settings,
    store: Arc<dyn Store>,
    listener: TcpListener,
    shutdown: CancellationToken,
) {
    let addr = listener.local_addr().unwrap_or(settings.listen);
    tracing::info!(address = %addr, "Listening.");
    if settings.tokens.is_open() {
        tracing::warn!(
            "No token is set: anyone who can reach this address can read and change every \
             config. Set CONFIG_SERVER_OPERATOR_TOKEN and CONFIG_SERVER_DEVICE_TOKEN to random \
             secrets before listening beyond loopback."
        );
    } else if settings.tokens.operators.is_empty() {
        tracing::warn!(
            "No operator token is set: defaults, history and /devices refuse every request. \
             Set CONFIG_SERVER_OPERATOR_TOKEN to use them."
        );
    }
    let stats = Arc::new(Stats::default());
    let app = http::App::new(store, settings.tokens.clone(), stats);
    let limit = ConnectionLimit::new("http", settings.max_connections);
    edge_metrics_common::serve_limited(listener, http::routes(app), shutdown, limit).await;
    tracing::info!("Stopped.");
}
