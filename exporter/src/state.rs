//! The one task that owns everything that changes: the running configuration, the collector
//! set and the tegrastats source. HTTP handlers and signal handlers send it [`Command`]s and
//! wait for the reply, so config writes are serialised and a burst of enables is consistent.
//! It publishes the latest [`Snapshot`] (pre-rendered `/metrics` body + `/health`) and the
//! running configuration through `watch` channels.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::collector::device::{device_collector, model_for};
use crate::collector::shelly::{self, ShellyCollector};
use crate::collector::{jetson, CollectorSet};
use crate::config::{self, Config};
use crate::configserver;
use crate::cycle::{self, Health, RenderInput};
use crate::exposition::{device_labels, Headers};
use crate::selfmetrics::Counters;
use crate::tegrastats::source::{SourceSpec, TegraSource};

/// Where the running configuration came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// The local config.yaml.
    Local,
    /// The Config Server.
    Server,
}

impl ConfigOrigin {
    /// `local` or `server`, as `/health` and `/metrics/list` report it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigOrigin::Local => "local",
            ConfigOrigin::Server => "server",
        }
    }
}

/// The configuration in force and where it came from.
#[derive(Clone, Debug)]
pub struct Running {
    /// The configuration.
    pub config: Config,
    /// Where it came from.
    pub origin: ConfigOrigin,
}

impl Running {
    /// Metrics enabled in the `metrics:` map.
    pub fn metrics_count(&self) -> usize {
        self.config.metrics.values().filter(|on| **on).count()
    }
}

/// The latest cycle's result: what `/metrics` and `/health` serve.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The rendered `/metrics` body.
    pub body: bytes::Bytes,
    /// The `/health` answer.
    pub health: Health,
}

/// A request to the owner task.
pub enum Command {
    /// `POST /metrics/enable` with the parsed JSON object.
    Enable {
        /// Metric name → requested value (validated by the owner).
        changes: serde_json::Map<String, Value>,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<EnableDone, CommandError>>,
    },
    /// `POST /reload` or SIGHUP.
    Reload {
        /// Where the answer goes.
        reply: oneshot::Sender<Result<ReloadDone, CommandError>>,
    },
}

/// A successful enable.
#[derive(Debug, Clone)]
pub struct EnableDone {
    /// How many entries the request set.
    pub updated: usize,
    /// The entries as applied.
    pub metrics: BTreeMap<String, bool>,
}

/// A successful reload.
#[derive(Debug, Clone)]
pub struct ReloadDone {
    /// Where the new configuration came from.
    pub origin: ConfigOrigin,
    /// Enabled metrics after the reload.
    pub metrics_count: usize,
}

/// Why a command was refused; nothing changed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommandError {
    /// The request is wrong (unknown name, non-boolean value).
    #[error("{0}")]
    BadRequest(String),
    /// The new configuration could not be saved.
    #[error("{0}")]
    WriteFailed(String),
    /// The configuration to reload is invalid or unreadable.
    #[error("{0}")]
    InvalidConfig(String),
    /// The owner is shutting down.
    #[error("the exporter is shutting down")]
    ShuttingDown,
}

/// Environment values the runtime reads (passed as a map, never read from the process here).
pub type EnvMap = BTreeMap<String, String>;

/// The management API token for the running config (config key, else environment).
pub fn api_token(cfg: &Config, env: &EnvMap) -> Option<String> {
    config::api_token(cfg, env)
}

pub use crate::config::error_chain;

/// The Config Server client and the device id it is asked for.
#[derive(Clone)]
pub struct ConfigServer {
    /// The client.
    pub client: configserver::Client,
    /// `/config/{device_id}`: the hostname label.
    pub device_id: String,
}

impl ConfigServer {
    /// The client for `cfg`, when a Config Server is configured (`config_server.url` or
    /// `CONFIG_SERVER_URL`). A URL the client refuses is logged and ignored.
    pub fn from_config(cfg: &Config, env: &EnvMap) -> Option<ConfigServer> {
        let settings = config::config_server(cfg, env)?;
        match configserver::Client::new(&settings.url, settings.timeout) {
            Ok(client) => Some(ConfigServer {
                client,
                device_id: config::device_id(cfg, env),
            }),
            Err(error) => {
                warn!(error = %error_chain(&error), "Config Server disabled; using the local file only.");
                None
            }
        }
    }

    /// Fetches this device's config; `None` (logged) when the server is down, slow or wrong.
    pub async fn fetch(&self) -> Option<Config> {
        match self.client.fetch(&self.device_id).await {
            Ok(cfg) => {
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

/// What the owner starts from.
pub struct OwnerInit {
    /// config.yaml.
    pub config_path: PathBuf,
    /// The configuration loaded at start-up.
    pub config: Config,
    /// Where it came from.
    pub origin: ConfigOrigin,
    /// Whether start-up created config.yaml. A fresh install, like a config that names no
    /// metrics at all, enables the model's default set for what it discovers.
    pub created: bool,
    /// The environment.
    pub env: EnvMap,
    /// The Config Server, when configured.
    pub server: Option<ConfigServer>,
    /// Stops background pollers (the Shelly collector's) with the process.
    pub shutdown: CancellationToken,
}

/// Channels to the owner.
#[derive(Clone)]
pub struct OwnerHandle {
    /// Commands.
    pub commands: mpsc::Sender<Command>,
    /// The running configuration.
    pub running: watch::Receiver<Arc<Running>>,
    /// The latest snapshot.
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    /// The environment captured at start-up.
    pub env: Arc<EnvMap>,
}

impl OwnerHandle {
    /// Sends `make(reply)` and waits for the answer.
    pub async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, CommandError>>) -> Command,
    ) -> Result<T, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| CommandError::ShuttingDown)?;
        rx.await.map_err(|_| CommandError::ShuttingDown)?
    }
}

/// The owner task's state.
pub struct Owner {
    config_path: PathBuf,
    running: Running,
    fresh: bool,
    seen: BTreeSet<String>,
    /// The families' `# HELP`/`# TYPE` lines, kept between renders.
    headers: Headers,
    source: TegraSource,
    set: CollectorSet,
    labels: String,
    env: Arc<EnvMap>,
    counters: Arc<Counters>,
    running_tx: watch::Sender<Arc<Running>>,
    snapshot_tx: watch::Sender<Arc<Snapshot>>,
    pending_write: bool,
    /// Whether the last config.yaml write failed: the failure is logged at WARN once per change
    /// of state, not on every retry (a read-only mount would otherwise cost a line per cycle).
    save_failing: std::sync::atomic::AtomicBool,
    commands: Option<mpsc::Receiver<Command>>,
    server: Option<ConfigServer>,
    /// Feeds the Config Server sync task.
    sync_tx: watch::Sender<Arc<Config>>,
    sync_stats: Option<Arc<configserver::SyncStats>>,
    shutdown: CancellationToken,
    /// The running Shelly collector and the token that stops its poller.
    shelly: Option<(CancellationToken, ShellyCollector)>,
}

impl Owner {
    /// Builds the owner, starting the tegrastats source (check it first with
    /// [`SourceSpec::check`]). Returns the owner and the handle others use.
    pub fn new(init: OwnerInit, counters: Arc<Counters>) -> (Owner, OwnerHandle) {
        let cfg = &init.config;
        let spec = SourceSpec::from_config(&cfg.tegrastats, cfg.interval_duration());
        let source = TegraSource::start(spec, model_for(cfg.device_type));
        let env = Arc::new(init.env);
        // A hand-written config without a `metrics:` map is treated as a fresh install:
        // switching every discovered metric off would leave the operator with no data.
        let fresh = init.created || init.config.metrics.is_empty();
        let running = Running {
            config: init.config,
            origin: init.origin,
        };
        let labels = device_labels(
            running.config.device_type.as_str(),
            &config::resolve_hostname(&running.config, env.as_ref()),
        );
        let health = Health {
            status: "degraded",
            reason: Some("starting: no collection cycle yet".into()),
            device_type: running.config.device_type.as_str().into(),
            collector: model_for(running.config.device_type)
                .collector_name()
                .into(),
            metrics_count: running.metrics_count(),
            config_source: running.origin.as_str(),
        };
        let (running_tx, running_rx) = watch::channel(Arc::new(running.clone()));
        let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(Snapshot {
            body: bytes::Bytes::new(),
            health,
        }));
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (sync_tx, _) = watch::channel(Arc::new(running.config.clone()));
        let mut owner = Owner {
            config_path: init.config_path,
            running,
            fresh,
            seen: BTreeSet::new(),
            headers: Headers::default(),
            source,
            set: CollectorSet::default(),
            labels,
            env: env.clone(),
            counters,
            running_tx,
            snapshot_tx,
            pending_write: false,
            save_failing: std::sync::atomic::AtomicBool::new(false),
            commands: None,
            sync_stats: init.server.as_ref().map(|s| s.client.stats()),
            server: init.server,
            sync_tx,
            shutdown: init.shutdown,
            shelly: None,
        };
        owner.start_shelly();
        owner.build_collectors();
        let handle = OwnerHandle {
            commands: cmd_tx,
            running: running_rx,
            snapshot: snapshot_rx,
            env,
        };
        owner.commands = Some(cmd_rx);
        (owner, handle)
    }

    fn build_collectors(&mut self) {
        let cfg = &self.running.config;
        let mut set = CollectorSet::default();
        set.push(device_collector(
            cfg.device_type,
            self.source.handle(),
            cfg.interval_duration(),
        ));
        if let Some((_, shelly)) = &self.shelly {
            set.push(Box::new(shelly.clone()));
        }
        self.set = set;
    }

    /// (Re)starts the Shelly collector per `shelly:` (stopping the previous poller).
    fn start_shelly(&mut self) {
        if let Some((token, _)) = self.shelly.take() {
            token.cancel();
        }
        let cfg = &self.running.config;
        if cfg.shelly.enabled {
            let token = self.shutdown.child_token();
            let collector =
                ShellyCollector::start(&cfg.shelly, cfg.interval_duration(), token.clone());
            self.shelly = Some((token, collector));
        }
    }

    /// Runs a cycle per tegrastats reading (at least every 1.5 intervals, at most every half
    /// interval) and answers commands until `shutdown`; a command being handled (a config
    /// write) finishes first. Stops the tegrastats source before returning.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut commands = self
            .commands
            .take()
            .expect("invariant: Owner::new stores the command receiver and run consumes self");
        let sync = self.server.as_ref().map(|server| {
            configserver::spawn_sync(
                server.client.clone(),
                server.device_id.clone(),
                self.sync_tx.subscribe(),
                shutdown.clone(),
            )
        });
        let mut period = self.running.config.interval_duration();
        // A cycle runs as soon as tegrastats delivers a reading, so /metrics shows it at once
        // and the cycle shares that wake-up instead of taking its own. When no reading comes
        // within 1.5 intervals (a silent or failing source) a timer runs it, so readings still
        // go stale on time and the self-metrics stay current. Readings closer together than
        // half an interval are coalesced into one cycle. The first cycle runs at start-up.
        let mut readings = self.source.handle();
        let mut last_cycle: Option<Instant> = None;
        let fallback = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(fallback);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                command = commands.recv() => match command {
                    Some(command) => self.handle(command).await,
                    None => break,
                },
                () = readings.changed() => {
                    let earliest = last_cycle.map(|at| at + period / 2);
                    if let Some(earliest) = earliest.filter(|e| *e > Instant::now()) {
                        fallback.as_mut().reset(earliest);
                    } else {
                        self.cycle().await;
                        last_cycle = Some(Instant::now());
                        fallback.as_mut().reset(Instant::now() + period * 3 / 2);
                    }
                }
                () = &mut fallback => {
                    self.cycle().await;
                    last_cycle = Some(Instant::now());
                    fallback.as_mut().reset(Instant::now() + period);
                }
            }
            let now = self.running.config.interval_duration();
            if now != period {
                period = now;
                fallback.as_mut().reset(Instant::now() + period);
            }
        }
        commands.close();
        self.source.stop().await;
        if let Some(sync) = sync {
            let _ = sync.await;
        }
        info!("Collection stopped.");
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Enable { changes, reply } => {
                let result = self.enable(changes).await;
                let _ = reply.send(result);
            }
            Command::Reload { reply } => {
                let result = self.reload().await;
                let _ = reply.send(result);
            }
        }
    }

    fn known(&self, name: &str) -> bool {
        self.running.config.metrics.contains_key(name) || self.seen.contains(name)
    }

    async fn enable(
        &mut self,
        changes: serde_json::Map<String, Value>,
    ) -> Result<EnableDone, CommandError> {
        let mut applied = BTreeMap::new();
        for (name, value) in &changes {
            let Some(on) = value.as_bool() else {
                return Err(CommandError::BadRequest(format!(
                    "Invalid value for {name}: expected true or false, got {value}"
                )));
            };
            if !self.known(name) {
                return Err(CommandError::BadRequest(format!(
                    "Invalid metric name: {name}"
                )));
            }
            applied.insert(name.clone(), on);
        }
        if applied.is_empty() {
            return Ok(EnableDone {
                updated: 0,
                metrics: applied,
            });
        }
        let mut next = self.running.config.clone();
        for (name, on) in &applied {
            next.metrics.insert(name.clone(), *on);
        }
        self.save(&next).await.map_err(CommandError::WriteFailed)?;
        self.pending_write = false;
        self.running.config = next;
        self.publish_running();
        info!(
            updated = applied.len(),
            "Metric settings changed and saved."
        );
        Ok(EnableDone {
            updated: applied.len(),
            metrics: applied,
        })
    }

    /// Writes `cfg` to config.yaml (atomically, off the runtime thread), counting the result.
    async fn save(&self, cfg: &Config) -> Result<(), String> {
        let path = self.config_path.clone();
        let cfg = cfg.clone();
        let result = tokio::task::spawn_blocking(move || config::save_atomic(&path, &cfg))
            .await
            .unwrap_or_else(|e| {
                Err(config::ConfigError::Write {
                    path: self.config_path.clone(),
                    source: std::io::Error::other(e.to_string()),
                })
            });
        match result {
            Ok(()) => {
                self.counters
                    .config_writes_ok
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if self
                    .save_failing
                    .swap(false, std::sync::atomic::Ordering::Relaxed)
                {
                    info!(path = %self.config_path.display(), "Configuration saved again.");
                }
                Ok(())
            }
            Err(error) => {
                self.counters
                    .config_writes_failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let text = error_chain(&error);
                if self
                    .save_failing
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::debug!(error = %text, "Could not save the configuration.");
                } else {
                    warn!(error = %text, "Could not save the configuration.");
                }
                Err(text)
            }
        }
    }

    async fn load_for_reload(&self) -> Result<(Config, ConfigOrigin), String> {
        if let Some(server) = &self.server {
            if let Some(cfg) = server.fetch().await {
                return Ok((cfg, ConfigOrigin::Server));
            }
        }
        let path = self.config_path.clone();
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        let cfg = config::parse(&text, &path.display().to_string()).map_err(|e| error_chain(&e))?;
        Ok((cfg, ConfigOrigin::Local))
    }

    async fn reload(&mut self) -> Result<ReloadDone, CommandError> {
        let (next, origin) = match self.load_for_reload().await {
            Ok(found) => found,
            Err(message) => {
                warn!(error = %message, "Reload refused; the running configuration stays.");
                return Err(CommandError::InvalidConfig(message));
            }
        };
        let old = &self.running.config;
        if next.port != old.port {
            warn!(
                "⚠️  Port change detected ({} → {}) but cannot be applied.",
                old.port, next.port
            );
            warn!("Please restart the service: sudo systemctl restart edge-metrics-exporter");
        }
        if next.reload_port != old.reload_port {
            warn!(
                "⚠️  Port change detected ({} → {}) but cannot be applied.",
                old.reload_port, next.reload_port
            );
            warn!("Please restart the service: sudo systemctl restart edge-metrics-exporter");
        }
        let device_changed = next.device_type != old.device_type;
        let shelly_changed = next.shelly != old.shelly;
        let interval_changed = next.interval_duration() != old.interval_duration();
        let new_spec = SourceSpec::from_config(&next.tegrastats, next.interval_duration());
        if &new_spec != self.source.spec() {
            info!("tegrastats settings changed; restarting the source.");
            self.source.restart(new_spec).await;
        }
        self.source.set_model(model_for(next.device_type));
        self.running = Running {
            config: next,
            origin,
        };
        if shelly_changed || interval_changed {
            self.start_shelly();
            info!(
                enabled = self.running.config.shelly.enabled,
                server_url = %self.running.config.shelly.server_url,
                "Shelly collector reinitialised."
            );
        }
        if device_changed || interval_changed || shelly_changed {
            self.build_collectors();
            info!(
                device_type = self.running.config.device_type.as_str(),
                collector = model_for(self.running.config.device_type).collector_name(),
                "Collectors reinitialised."
            );
        }
        self.labels = device_labels(
            self.running.config.device_type.as_str(),
            &config::resolve_hostname(&self.running.config, self.env.as_ref()),
        );
        self.publish_running();
        if origin == ConfigOrigin::Server {
            // Keep a local copy, so a start with the server down uses the latest config.
            if self.save(&self.running.config).await.is_err() {
                self.pending_write = true;
            }
        } else {
            self.push_to_server();
        }
        info!(source = origin.as_str(), "Configuration reloaded.");
        self.cycle().await;
        Ok(ReloadDone {
            origin,
            metrics_count: self.running.metrics_count(),
        })
    }

    /// Hands the running config to the background Config Server sync (no-op without one).
    fn push_to_server(&self) {
        if self.server.is_some() {
            self.sync_tx
                .send_replace(Arc::new(self.running.config.clone()));
        }
    }

    fn publish_running(&self) {
        self.running_tx.send_replace(Arc::new(self.running.clone()));
    }

    /// One collection cycle: collect, discover, publish a snapshot.
    pub async fn cycle(&mut self) {
        let collected = cycle::collect(&self.set);
        for name in collected.values.keys() {
            if !self.seen.contains(name) {
                self.seen.insert(name.clone());
            }
        }
        let model = model_for(self.running.config.device_type);
        let fresh = self.fresh;
        // The configuration is cloned only in a cycle that discovers something.
        let discovered = collected
            .values
            .keys()
            .any(|name| !self.running.config.metrics.contains_key(name));
        if discovered {
            let mut next = self.running.config.clone();
            let new = config::merge_discovered(
                &mut next,
                collected.values.keys().map(String::as_str),
                |name| fresh && default_enabled(model, name),
            );
            info!(count = new.len(), names = %new.join(","), fresh, "Discovered new metrics.");
            if self.save(&next).await.is_err() {
                self.pending_write = true;
            }
            self.running.config = next;
            self.publish_running();
            self.push_to_server();
        } else if self.pending_write {
            let cfg = self.running.config.clone();
            if self.save(&cfg).await.is_ok() {
                self.pending_write = false;
            }
        }
        let values = cycle::enabled(&self.running.config.metrics, &collected.values);
        let source = self.source.handle();
        let body = cycle::render(
            &RenderInput {
                values: &values,
                labels: &self.labels,
                statuses: &collected.statuses,
                source: &source.stats,
                last_reading: source.latest().map(|s| s.wall),
                counters: &self.counters,
                pushes: self
                    .sync_stats
                    .as_ref()
                    .map_or((0, 0), |s| (s.pushes_ok(), s.pushes_failed())),
            },
            &mut self.headers,
        );
        let (status, reason) = cycle::health_status(&collected.statuses);
        let health = Health {
            status,
            reason,
            device_type: self.running.config.device_type.as_str().into(),
            collector: model_for(self.running.config.device_type)
                .collector_name()
                .into(),
            metrics_count: self.running.metrics_count(),
            config_source: self.running.origin.as_str(),
        };
        self.snapshot_tx.send_replace(Arc::new(Snapshot {
            body: bytes::Bytes::from(body),
            health,
        }));
    }
}

/// Whether a metric first seen on a fresh install is enabled.
fn default_enabled(model: jetson::Model, name: &str) -> bool {
    if name.starts_with("jetson_") {
        jetson::default_enabled(model, name)
    } else {
        shelly::default_enabled(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn owner_on_replay(created: bool) -> (Owner, OwnerHandle, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.tegrastats.replay = Some(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../testdata/tegrastats/orin-agx-jp5.log"),
        );
        cfg.shelly.enabled = false;
        cfg.metrics.insert("jetson_temp_cpu_celsius".into(), false);
        let (owner, handle) = Owner::new(
            OwnerInit {
                config_path: dir.path().join("config.yaml"),
                config: cfg,
                origin: ConfigOrigin::Local,
                created,
                env: EnvMap::new(),
                server: None,
                shutdown: CancellationToken::new(),
            },
            Arc::new(Counters::default()),
        );
        (owner, handle, dir)
    }

    async fn first_sample(owner: &Owner) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while owner.source.handle().latest().is_none() {
            assert!(Instant::now() < deadline, "no tegrastats sample");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_fresh_install_enables_the_model_defaults_and_keeps_user_choices() {
        let (mut owner, handle, dir) = owner_on_replay(true);
        first_sample(&owner).await;
        owner.cycle().await;
        let metrics = &handle.running.borrow().config.metrics;
        assert_eq!(metrics.get("jetson_ram_used_mb"), Some(&true));
        assert_eq!(
            metrics.get("jetson_power_vdd_gpu_soc_avg_watts"),
            Some(&false)
        );
        // The user's explicit false stays although the default would be true.
        assert_eq!(metrics.get("jetson_temp_cpu_celsius"), Some(&false));
        let saved = std::fs::read_to_string(dir.path().join("config.yaml")).unwrap();
        assert_eq!(&config::parse(&saved, "saved").unwrap().metrics, metrics);
        assert!(handle.snapshot.borrow().body.starts_with(b"# HELP"));
        owner.source.stop().await;
    }

    #[tokio::test]
    async fn an_existing_install_adds_discoveries_as_false() {
        let (mut owner, handle, _dir) = owner_on_replay(false);
        first_sample(&owner).await;
        owner.cycle().await;
        let metrics = handle.running.borrow().config.metrics.clone();
        assert!(metrics.len() > 10);
        assert!(metrics.values().all(|on| !on), "{metrics:?}");
        owner.source.stop().await;
    }
}
