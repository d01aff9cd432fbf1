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
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::collector::device::{device_collector, model_for};
use crate::collector::{jetson, CollectorSet};
use crate::config::{self, Config};
use crate::cycle::{self, Health, RenderInput};
use crate::exposition::device_labels;
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

/// `hostname` key, else `EDGE_METRICS_HOSTNAME`, else the system hostname.
pub fn resolve_hostname(cfg: &Config, env: &EnvMap) -> String {
    if let Some(h) = cfg.hostname.as_deref().filter(|h| !h.trim().is_empty()) {
        return h.trim().to_string();
    }
    if let Some(h) = env
        .get("EDGE_METRICS_HOSTNAME")
        .filter(|h| !h.trim().is_empty())
    {
        return h.trim().to_string();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The management API token: `api_token` key, else `EDGE_METRICS_API_TOKEN`.
pub fn api_token(cfg: &Config, env: &EnvMap) -> Option<String> {
    cfg.api_token
        .clone()
        .or_else(|| env.get("EDGE_METRICS_API_TOKEN").cloned())
        .filter(|t| !t.is_empty())
}

/// The message of an error and all its sources, on one line.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// What the owner starts from.
pub struct OwnerInit {
    /// config.yaml.
    pub config_path: PathBuf,
    /// The configuration loaded at start-up.
    pub config: Config,
    /// Where it came from.
    pub origin: ConfigOrigin,
    /// Whether start-up created config.yaml (fresh install: discovered metrics use defaults).
    pub created: bool,
    /// The environment.
    pub env: EnvMap,
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
    source: TegraSource,
    set: CollectorSet,
    labels: String,
    env: Arc<EnvMap>,
    counters: Arc<Counters>,
    running_tx: watch::Sender<Arc<Running>>,
    snapshot_tx: watch::Sender<Arc<Snapshot>>,
    pending_write: bool,
    commands: Option<mpsc::Receiver<Command>>,
}

impl Owner {
    /// Builds the owner, starting the tegrastats source (check it first with
    /// [`SourceSpec::check`]). Returns the owner and the handle others use.
    pub fn new(init: OwnerInit, counters: Arc<Counters>) -> (Owner, OwnerHandle) {
        let cfg = &init.config;
        let spec = SourceSpec::from_config(&cfg.tegrastats, cfg.interval_duration());
        let source = TegraSource::start(spec, model_for(cfg.device_type));
        let env = Arc::new(init.env);
        let running = Running {
            config: init.config,
            origin: init.origin,
        };
        let labels = device_labels(
            running.config.device_type.as_str(),
            &resolve_hostname(&running.config, &env),
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
        let mut owner = Owner {
            config_path: init.config_path,
            running,
            fresh: init.created,
            seen: BTreeSet::new(),
            source,
            set: CollectorSet::default(),
            labels,
            env: env.clone(),
            counters,
            running_tx,
            snapshot_tx,
            pending_write: false,
            commands: None,
        };
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
        self.set = set;
    }

    /// Runs cycles every `interval` and answers commands until `shutdown`; a command being
    /// handled (a config write) finishes first. Stops the tegrastats source before returning.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut commands = self
            .commands
            .take()
            .expect("invariant: Owner::new stores the command receiver and run consumes self");
        let mut period = self.running.config.interval_duration();
        let mut tick = new_tick(period);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                command = commands.recv() => match command {
                    Some(command) => self.handle(command).await,
                    None => break,
                },
                _ = tick.tick() => self.cycle().await,
            }
            let now = self.running.config.interval_duration();
            if now != period {
                period = now;
                tick = new_tick(period);
            }
        }
        commands.close();
        self.source.stop().await;
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
                Ok(())
            }
            Err(error) => {
                self.counters
                    .config_writes_failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let text = error_chain(&error);
                warn!(error = %text, "Could not save the configuration.");
                Err(text)
            }
        }
    }

    async fn load_for_reload(&self) -> Result<(Config, ConfigOrigin), String> {
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
        if device_changed || interval_changed {
            self.build_collectors();
            info!(
                device_type = self.running.config.device_type.as_str(),
                collector = model_for(self.running.config.device_type).collector_name(),
                "Collectors reinitialised."
            );
        }
        self.labels = device_labels(
            self.running.config.device_type.as_str(),
            &resolve_hostname(&self.running.config, &self.env),
        );
        self.publish_running();
        info!(source = origin.as_str(), "Configuration reloaded.");
        self.cycle().await;
        Ok(ReloadDone {
            origin,
            metrics_count: self.running.metrics_count(),
        })
    }

    fn publish_running(&self) {
        self.running_tx.send_replace(Arc::new(self.running.clone()));
    }

    /// One collection cycle: collect, discover, publish a snapshot.
    pub async fn cycle(&mut self) {
        let collected = cycle::collect(&self.set);
        self.seen.extend(collected.values.keys().cloned());
        let new = cycle::discover(&self.running.config.metrics, &collected.values);
        if !new.is_empty() {
            let model = model_for(self.running.config.device_type);
            let mut next = self.running.config.clone();
            for name in &new {
                let on = self.fresh && default_enabled(model, name);
                next.metrics.insert(name.clone(), on);
            }
            info!(count = new.len(), names = %new.join(","), fresh = self.fresh, "Discovered new metrics.");
            if self.save(&next).await.is_err() {
                self.pending_write = true;
            }
            self.running.config = next;
            self.publish_running();
        } else if self.pending_write {
            let cfg = self.running.config.clone();
            if self.save(&cfg).await.is_ok() {
                self.pending_write = false;
            }
        }
        let values = cycle::enabled(&self.running.config.metrics, &collected.values);
        let latest = self.source.handle().latest();
        let stats = self.source.handle().stats;
        let body = cycle::render(&RenderInput {
            values: &values,
            labels: &self.labels,
            statuses: &collected.statuses,
            source: &stats,
            last_reading: latest.map(|s| s.wall),
            counters: &self.counters,
        });
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
        name.starts_with("power_")
    }
}

fn new_tick(period: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(period.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}
