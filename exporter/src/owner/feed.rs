//! The Config Server feed: fetching this device's configuration (at start-up and on reload)
//! and handing every change the exporter makes to the background push task
//! ([`configserver::spawn_sync`]). Without a configured server every call is a no-op.
//!
//! The local secrets ([`Secrets`]: `api_token`, `config_server.token`) never reach the server,
//! so a config fetched from it has none; the local ones are put back before it is used or
//! saved. Requests carry the running device type (the resolved one, never `auto`), which the
//! owner hands the feed whenever it resolves a configuration ([`Feed::device_kind`]).

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{self, error_chain, Config, ConfigError, DeviceType, Env, Problem, Secrets};
use crate::configserver::{self, ConfigServerError};
use crate::device::{Device, DeviceKind};

/// The Config Server client and the device id it is asked for.
#[derive(Clone)]
pub struct ConfigServer {
    /// The client.
    pub client: configserver::Client,
    /// `/config/{device_id}`: the hostname label.
    pub device_id: String,
    /// The local file's secrets: pushes never carry them, so fetched configs lack them.
    local: Secrets,
}

impl ConfigServer {
    /// The client for `cfg`, when a Config Server is configured (`config_server.url` or
    /// `CONFIG_SERVER_URL`). A CA file (`config_server.ca_file`) that cannot be read or holds
    /// no usable certificate is an error (the exporter exits 64); a URL the client refuses is
    /// logged and ignored.
    pub fn from_config(cfg: &Config, env: &dyn Env) -> Result<Option<ConfigServer>, ConfigError> {
        let Some(settings) = config::config_server(cfg, env) else {
            return Ok(None);
        };
        match configserver::Client::from_settings(&settings) {
            Ok(client) => {
                if client.sends_token_in_clear() {
                    warn!(
                        url = %settings.url,
                        "The Config Server token is sent over plain http:// to another host; \
                         use an https:// URL."
                    );
                }
                // The start-up fetch comes before the owner resolves anything: resolve
                // quietly here (the owner logs what it detects). Fetches and pushes report it.
                client.set_device_kind(
                    Device::resolve(cfg.device_type, &config::host_root(cfg, env)).kind,
                );
                Ok(Some(ConfigServer {
                    client,
                    device_id: config::device_id(cfg, env),
                    local: Secrets::of(cfg),
                }))
            }
            Err(error @ ConfigServerError::CaFile { .. }) => Err(ConfigError::Invalid {
                origin: "config_server.ca_file".to_string(),
                problems: vec![Problem {
                    line: None,
                    key: "config_server.ca_file".to_string(),
                    message: error.to_string(),
                }],
            }),
            Err(error) => {
                warn!(error = %error_chain(&error), "Config Server disabled; using the local file only.");
                Ok(None)
            }
        }
    }

    /// Fetches this device's config; `None` (logged) when the server is down, slow or wrong.
    /// The local secrets are kept: the server never receives them, so its copy has none, and
    /// losing `api_token` would lock the management API (or refuse the start) on a device that
    /// listens beyond loopback, losing `config_server.token` the next start's fetch.
    pub async fn fetch(&self) -> Option<Config> {
        match self
            .client
            .fetch(&self.device_id, self.running_type())
            .await
        {
            Ok(mut cfg) => {
                self.local.fill(&mut cfg);
                info!(device_id = %self.device_id, "Fetched the configuration from the Config Server.");
                Some(cfg)
            }
            Err(error) => {
                warn!(device_id = %self.device_id, error = %error_chain(&error), "Config Server unavailable; using the local config.");
                None
            }
        }
    }

    fn running_type(&self) -> DeviceType {
        self.client
            .device_kind()
            .map_or(DeviceType::Auto, DeviceType::from)
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

    /// The device type the running configuration resolved to: the one the next fetch and
    /// push report.
    pub fn device_kind(&self, kind: DeviceKind) {
        if let Some(server) = &self.server {
            server.client.set_device_kind(kind);
        }
    }

    /// Pushes that succeeded and failed so far.
    pub fn pushes(&self) -> (u64, u64) {
        self.stats
            .as_ref()
            .map_or((0, 0), |s| (s.pushes_ok(), s.pushes_failed()))
    }
}
