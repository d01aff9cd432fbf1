//! The Config Server feed: fetching this device's configuration (at start-up and on reload)
//! and handing every change the exporter makes to the background push task
//! ([`configserver::spawn_sync`]). Without a configured server every call is a no-op.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{self, error_chain, Config, Env};
use crate::configserver;

/// The Config Server client and the device id it is asked for.
#[derive(Clone)]
pub struct ConfigServer {
    /// The client.
    pub client: configserver::Client,
    /// `/config/{device_id}`: the hostname label.
    pub device_id: String,
    /// The local file's `api_token`: pushes never carry it, so fetched configs lack it.
    local_token: Option<String>,
}

impl ConfigServer {
    /// The client for `cfg`, when a Config Server is configured (`config_server.url` or
    /// `CONFIG_SERVER_URL`). A URL the client refuses is logged and ignored.
    pub fn from_config(cfg: &Config, env: &dyn Env) -> Option<ConfigServer> {
        let settings = config::config_server(cfg, env)?;
        match configserver::Client::new(&settings.url, settings.timeout) {
            Ok(client) => Some(ConfigServer {
                client,
                device_id: config::device_id(cfg, env),
                local_token: cfg.api_token.clone(),
            }),
            Err(error) => {
                warn!(error = %error_chain(&error), "Config Server disabled; using the local file only.");
                None
            }
        }
    }

    /// Fetches this device's config; `None` (logged) when the server is down, slow or wrong.
    /// The local `api_token` is kept: the server never receives it, so its copy has none, and
    /// losing it would lock the management API (or refuse the start) on a device that
    /// listens beyond loopback.
    pub async fn fetch(&self) -> Option<Config> {
        match self.client.fetch(&self.device_id).await {
            Ok(mut cfg) => {
                if cfg.api_token.is_none() {
                    cfg.api_token.clone_from(&self.local_token);
                }
                info!(device_id = %self.device_id, "Fetched the configuration from the Config Server.");
                Some(cfg)
            }
            Err(error) => {
                warn!(device_id = %self.device_id, error = %error_chain(&error), "Config Server unavailable; using the local config.");
                None
            }
        }
    }
}

/// The feed of one exporter: the server, when configured, and the push queue.
pub struct Feed {
    server: Option<ConfigServer>,
    stats: Option<Arc<configserver::SyncStats>>,
    updates: watch::Sender<Arc<Config>>,
}

impl Feed {
    /// A feed for `server`, starting from `current`.
    pub fn new(server: Option<ConfigServer>, current: &Config) -> Feed {
        let (updates, _) = watch::channel(Arc::new(current.clone()));
        Feed {
            stats: server.as_ref().map(|s| s.client.stats()),
            server,
            updates,
        }
    }

    /// Starts the background push task, when a server is configured.
    pub fn spawn(&self, shutdown: CancellationToken) -> Option<JoinHandle<()>> {
        self.server.as_ref().map(|server| {
            configserver::spawn_sync(
                server.client.clone(),
                server.device_id.clone(),
                self.updates.subscribe(),
                shutdown,
            )
        })
    }

    /// A fetch that runs on its own (a spawned task), when a server is configured: the owner
    /// keeps collecting while the server takes its time (up to `config_server.timeout`).
    pub fn fetch_later(&self) -> Option<impl std::future::Future<Output = Option<Config>> + Send> {
        let server = self.server.clone()?;
        Some(async move { server.fetch().await })
    }

    /// Queues `cfg` for the server (coalesced with anything not yet sent).
    pub fn push(&self, cfg: &Config) {
        if self.server.is_some() {
            self.updates.send_replace(Arc::new(cfg.clone()));
        }
    }

    /// Pushes that succeeded and failed so far.
    pub fn pushes(&self) -> (u64, u64) {
        self.stats
            .as_ref()
            .map_or((0, 0), |s| (s.pushes_ok(), s.pushes_failed()))
    }
}
