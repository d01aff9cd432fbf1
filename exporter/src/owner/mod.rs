//! The one task that owns everything that changes: the running configuration and what runs
//! for it. HTTP and signal handlers send it [`Command`]s and wait for the reply, so config
//! writes are serialised and a burst of enables is consistent. It publishes the running
//! configuration and the latest [`Snapshot`] (pre-rendered `/metrics` body + `/health`)
//! through `watch` channels.
//!
//! The owner only dispatches; the work is done by its parts:
//! - [`pipeline`]: the source, the pollers and the collectors of a configuration, and the one
//!   [`pipeline::diff`] that decides what a new configuration restarts;
//! - [`discovery`]: new metric names into the `metrics:` map;
//! - [`persist`]: config.yaml writes, with retries;
//! - [`feed`]: the Config Server (fetch, background pushes);
//! - [`render`]: the `/metrics` body and `/health`.

pub mod discovery;
pub mod feed;
pub mod persist;
pub mod pipeline;
pub mod render;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::collector;
use crate::config::{self, error_chain, Config};
use crate::device::Device;
use crate::selfmetrics::{Counters, SelfInput};
use discovery::Discovery;
use feed::{ConfigServer, Feed};
use persist::Persistence;
use pipeline::Pipeline;
use render::{Health, RenderInput, Renderer};

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

/// The configuration in force, where it came from, and the device type it resolved to.
#[derive(Clone, Debug)]
pub struct Running {
    /// The configuration.
    pub config: Config,
    /// Where it came from.
    pub origin: ConfigOrigin,
    /// The device type in force (never `auto`) and the identity files' contents.
    pub device: Device,
}

impl Running {
    /// Metrics enabled in the `metrics:` map.
    pub fn metrics_count(&self) -> usize {
        self.config.metrics.values().filter(|on| **on).count()
    }

    fn health(&self, status: &'static str, reason: Option<String>) -> Health {
        Health {
            status,
            reason,
            device_type: self.device.kind.as_str().into(),
            device_type_source: self.device.source.as_str(),
            collector: collector::device_collector_name(self.device.kind).into(),
            metrics_count: self.metrics_count(),
            config_source: self.origin.as_str(),
        }
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

    /// The management API token for the running config (config key, else environment).
    pub fn api_token(&self) -> Option<String> {
        config::api_token(&self.running.borrow().config, self.env.as_ref())
    }
}

/// The owner task's state.
pub struct Owner {
    running: Running,
    pipeline: Pipeline,
    discovery: Discovery,
    persist: Persistence,
    feed: Feed,
    renderer: Renderer,
    env: Arc<EnvMap>,
    counters: Arc<Counters>,
    running_tx: watch::Sender<Arc<Running>>,
    snapshot_tx: watch::Sender<Arc<Snapshot>>,
    commands: Option<mpsc::Receiver<Command>>,
    /// A command taken from the queue while batching enables, handled next.
    held: Option<Command>,
    /// A reload waiting for the Config Server: the fetch and who asked.
    reloading: Option<Reloading>,
}

/// One `POST /metrics/enable`: the requested changes and where the answer goes.
type EnableRequest = (
    serde_json::Map<String, Value>,
    oneshot::Sender<Result<EnableDone, CommandError>>,
);

/// Most `POST /metrics/enable` requests applied with one config.yaml write.
const ENABLE_BATCH: usize = 64;

/// A reload whose Config Server fetch runs in its own task.
struct Reloading {
    fetch: tokio::task::JoinHandle<Option<Config>>,
    reply: oneshot::Sender<Result<ReloadDone, CommandError>>,
}

impl Owner {
    /// Builds the owner, starting the tegrastats source (check it first with
    /// [`crate::tegrastats::source::SourceSpec::check`]). Returns the owner and the handle
    /// others use.
    pub fn new(init: OwnerInit, counters: Arc<Counters>) -> (Owner, OwnerHandle) {
        let env = Arc::new(init.env);
        // A hand-written config without a `metrics:` map is treated as a fresh install:
        // switching every discovered metric off would leave the operator with no data.
        let fresh = init.created || init.config.metrics.is_empty();
        let pipeline = Pipeline::start(&init.config, env.as_ref(), init.shutdown);
        let feed = Feed::new(init.server, &init.config);
        feed.device_kind(pipeline.device().kind);
        let running = Running {
            config: init.config,
            origin: init.origin,
            device: pipeline.device().clone(),
        };
        let health = running.health("degraded", Some("starting: no collection cycle yet".into()));
        let (running_tx, running_rx) = watch::channel(Arc::new(running.clone()));
        let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(Snapshot {
            body: bytes::Bytes::new(),
            health,
        }));
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let owner = Owner {
            running,
            pipeline,
            discovery: Discovery::new(fresh),
            persist: Persistence::new(init.config_path, counters.clone()),
            feed,
            renderer: Renderer::default(),
            env: env.clone(),
            counters,
            running_tx,
            snapshot_tx,
            commands: Some(cmd_rx),
            held: None,
            reloading: None,
        };
        let handle = OwnerHandle {
            commands: cmd_tx,
            running: running_rx,
            snapshot: snapshot_rx,
            env,
        };
        (owner, handle)
    }

    /// Runs a cycle per tegrastats reading (at least every 1.5 intervals, at most every half
    /// interval) and answers commands until `shutdown`; a command being handled (a config
    /// write) finishes first. Stops the tegrastats source before returning.
    ///
    /// Commands never hold up collection for long: a reading is served before the next command
    /// is taken, a burst of enables is applied with one config.yaml write, and a reload's
    /// Config Server fetch runs in its own task while cycles go on under the old
    /// configuration (commands wait until it is applied).
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut commands = self
            .commands
            .take()
            .expect("invariant: Owner::new stores the command receiver and run consumes self");
        let sync = self.feed.spawn(shutdown.clone());
        let mut period = self.running.config.interval_duration();
        // A cycle runs as soon as tegrastats delivers a reading, so /metrics shows it at once
        // and the cycle shares that wake-up instead of taking its own. When no reading comes
        // within 1.5 intervals (a silent or failing source) a timer runs it, so readings still
        // go stale on time and the self-metrics stay current. Readings closer together than
        // half an interval are coalesced into one cycle. The first cycle runs at start-up.
        // `last_cycle` is the last cycle a reading started; `deferred`, a reading waits for
        // the timer.
        let mut readings = self.pipeline.readings();
        let mut last_cycle: Option<Instant> = None;
        let mut deferred = false;
        let fallback = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(fallback);
        loop {
            let idle = self.reloading.is_none();
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = readings.changed() => {
                    let earliest = last_cycle.map(|at| at + period / 2);
                    if let Some(earliest) = earliest.filter(|e| *e > Instant::now()) {
                        deferred = true;
                        fallback.as_mut().reset(earliest);
                    } else {
                        self.cycle().await;
                        last_cycle = Some(Instant::now());
                        fallback.as_mut().reset(Instant::now() + period * 3 / 2);
                    }
                }
                () = &mut fallback => {
                    // Only a deferred reading's cycle holds the next reading back; after a
                    // timer cycle (start-up, a silent source) a reading is served at once.
                    self.cycle().await;
                    if std::mem::take(&mut deferred) {
                        last_cycle = Some(Instant::now());
                    }
                    fallback.as_mut().reset(Instant::now() + period);
                }
                fetched = fetched(&mut self.reloading) => {
                    if let Some(reloading) = self.reloading.take() {
                        let result = self.finish_reload(fetched).await;
                        let _ = reloading.reply.send(result);
                    }
                }
                command = next_command(&mut self.held, &mut commands), if idle => match command {
                    Some(command) => self.handle(command, &mut commands).await,
                    None => break,
                },
            }
            let now = self.running.config.interval_duration();
            if now != period {
                period = now;
                fallback.as_mut().reset(Instant::now() + period);
            }
        }
        commands.close();
        if let Some(reloading) = self.reloading.take() {
            reloading.fetch.abort();
        }
        self.pipeline.stop().await;
        if let Some(sync) = sync {
            let _ = sync.await;
        }
        info!("Collection stopped.");
    }

    async fn handle(&mut self, command: Command, queue: &mut mpsc::Receiver<Command>) {
        match command {
            Command::Enable { changes, reply } => {
                // Take every enable already waiting, up to a bound: one write for the lot.
                let mut batch = vec![(changes, reply)];
                while batch.len() < ENABLE_BATCH {
                    match queue.try_recv() {
                        Ok(Command::Enable { changes, reply }) => batch.push((changes, reply)),
                        Ok(other) => {
                            self.held = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                self.enable(batch).await;
            }
            Command::Reload { reply } => match self.feed.fetch_later() {
                Some(fetch) => {
                    self.reloading = Some(Reloading {
                        fetch: tokio::spawn(fetch),
                        reply,
                    });
                }
                None => {
                    let result = self.finish_reload(None).await;
                    let _ = reply.send(result);
                }
            },
        }
    }

    /// Checks one enable request against `next`; all or nothing.
    fn check_enable(
        &self,
        changes: &serde_json::Map<String, Value>,
    ) -> Result<BTreeMap<String, bool>, CommandError> {
        let mut applied = BTreeMap::new();
        for (name, value) in changes {
            let Some(on) = value.as_bool() else {
                return Err(CommandError::BadRequest(format!(
                    "Invalid value for {name}: expected true or false, got {value}"
                )));
            };
            if !self.discovery.known(&self.running.config, name) {
                return Err(CommandError::BadRequest(format!(
                    "Invalid metric name: {name}"
                )));
            }
            applied.insert(name.clone(), on);
        }
        Ok(applied)
    }

    /// Applies a batch of enable requests in order, each all or nothing, saves once and
    /// answers each: a refused request gets its own error, the others are saved together
    /// (or all get the write error, and nothing changes).
    async fn enable(&mut self, batch: Vec<EnableRequest>) {
        let mut next: Option<Config> = None;
        let mut accepted = Vec::new();
        for (changes, reply) in batch {
            match self.check_enable(&changes) {
                Err(error) => {
                    let _ = reply.send(Err(error));
                }
                Ok(applied) if applied.is_empty() => {
                    let _ = reply.send(Ok(EnableDone {
                        updated: 0,
                        metrics: applied,
                    }));
                }
                Ok(applied) => {
                    let cfg = next.get_or_insert_with(|| self.running.config.clone());
                    for (name, on) in &applied {
                        cfg.metrics.insert(name.clone(), *on);
                    }
                    accepted.push((applied, reply));
                }
            }
        }
        let Some(next) = next else {
            return;
        };
        if let Err(error) = self.persist.save(&next).await {
            for (_, reply) in accepted {
                let _ = reply.send(Err(CommandError::WriteFailed(error.clone())));
            }
            return;
        }
        self.running.config = next;
        self.publish_running();
        self.feed.push(&self.running.config);
        let updated: usize = accepted.iter().map(|(a, _)| a.len()).sum();
        info!(
            updated,
            requests = accepted.len(),
            "Metric settings changed and saved."
        );
        for (applied, reply) in accepted {
            let _ = reply.send(Ok(EnableDone {
                updated: applied.len(),
                metrics: applied,
            }));
        }
    }

    /// The configuration a reload applies: the one `fetched` from the Config Server, else
    /// config.yaml (a quick local read).
    async fn reload_source(
        &self,
        fetched: Option<Config>,
    ) -> Result<(Config, ConfigOrigin), String> {
        if let Some(cfg) = fetched {
            return Ok((cfg, ConfigOrigin::Server));
        }
        let path = self.persist.path().to_path_buf();
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        let cfg = config::parse(&text, &path.display().to_string()).map_err(|e| error_chain(&e))?;
        Ok((cfg, ConfigOrigin::Local))
    }

    async fn finish_reload(&mut self, fetched: Option<Config>) -> Result<ReloadDone, CommandError> {
        let (next, origin) = match self.reload_source(fetched).await {
            Ok(found) => found,
            Err(message) => {
                warn!(error = %message, "Reload refused; the running configuration stays.");
                return Err(CommandError::InvalidConfig(message));
            }
        };
        self.pipeline
            .apply(&self.running.config, &next, self.env.as_ref());
        self.feed.device_kind(self.pipeline.device().kind);
        self.running = Running {
            config: next,
            origin,
            device: self.pipeline.device().clone(),
        };
        self.publish_running();
        if origin == ConfigOrigin::Server {
            // Keep a local copy, so a start with the server down uses the latest config.
            self.persist.save_or_retry(&self.running.config).await;
        } else {
            self.feed.push(&self.running.config);
        }
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
        let collected = self.pipeline.collect();
        if let Some((next, added)) = self.discovery.discover(
            &self.running.config,
            self.running.device.kind,
            &collected.values,
        ) {
            info!(
                count = added.len(),
                names = %added.join(","),
                fresh = self.discovery.fresh(),
                "Discovered new metrics."
            );
            self.persist.save_or_retry(&next).await;
            self.running.config = next;
            self.publish_running();
            self.feed.push(&self.running.config);
        } else {
            self.persist.retry(&self.running.config).await;
        }
        let values = render::enabled(&self.running.config.metrics, &collected.values);
        let readings = self.pipeline.readings();
        let latest = readings.latest();
        // The power mode only from a reading the collector still shows (three intervals).
        let fresh_for = self.running.config.interval_duration() * 3;
        let power_mode = latest
            .as_ref()
            .filter(|s| s.at.elapsed() <= fresh_for)
            .and_then(|s| s.line.extras.power_mode.as_ref());
        let body = self.renderer.render(&RenderInput {
            values: &values,
            labels: self.pipeline.labels(),
            own: SelfInput {
                statuses: &collected.statuses,
                source: &readings.stats,
                last_reading: latest.as_ref().map(|s| s.wall),
                counters: &self.counters,
                pushes: self.feed.pushes(),
                device: &self.running.device.identity,
                power_mode,
            },
        });
        let (status, reason) = render::health_status(&collected.statuses);
        self.snapshot_tx.send_replace(Arc::new(Snapshot {
            body: bytes::Bytes::from(body),
            health: self.running.health(status, reason),
        }));
    }
}

/// The next command: one held back from a batch, else the queue's next.
async fn next_command(
    held: &mut Option<Command>,
    queue: &mut mpsc::Receiver<Command>,
) -> Option<Command> {
    match held.take() {
        Some(command) => Some(command),
        None => queue.recv().await,
    }
}

/// The result of a reload's fetch (`None` when it failed or was cancelled); pending while no
/// reload is waiting.
async fn fetched(reloading: &mut Option<Reloading>) -> Option<Config> {
    match reloading {
        Some(r) => (&mut r.fetch).await.ok().flatten(),
        None => std::future::pending().await,
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
        let mut readings = owner.pipeline.readings();
        while readings.latest().is_none() {
            assert!(Instant::now() < deadline, "no tegrastats sample");
            let _ = tokio::time::timeout(Duration::from_millis(100), readings.changed()).await;
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
        owner.pipeline.stop().await;
    }

    #[tokio::test]
    async fn an_existing_install_adds_discoveries_as_false() {
        let (mut owner, handle, _dir) = owner_on_replay(false);
        first_sample(&owner).await;
        owner.cycle().await;
        let metrics = handle.running.borrow().config.metrics.clone();
        assert!(metrics.len() > 10);
        assert!(metrics.values().all(|on| !on), "{metrics:?}");
        owner.pipeline.stop().await;
    }
}
