//! What runs for a configuration: the device type it resolves to, the tegrastats source, the
//! Shelly poller, the collector set and the label set. [`Pipeline::apply`] moves from one
//! configuration to the next by restarting exactly what [`diff`] says changed.
//!
//! Jetsons read tegrastats; the boards read from sysfs (`raspberry_pi`, `lattepanda`,
//! `orange_pi`) run no tegrastats (the source is [`SourceSpec::Idle`]) and a
//! [`BoardSource`] instead, restarted when the board, `host_root` or the interval changes.
//!
//! The device type is resolved here, when a configuration starts and on every reload (the
//! identity files are read again: three small reads, and a reload after the files were
//! mounted, or after `host_root` changed, picks them up). Everything after this point (the
//! collector, the labels, discovery's defaults, `/health`) uses the resolved
//! [`DeviceKind`], never the config's `device_type`, which may be `auto`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::boards::{Board, BoardSource};
use crate::collector::shelly::ShellyCollector;
use crate::collector::{self, CollectorSet, CollectorStatus, Family, Values};
use crate::config::{self, Config, Env};
use crate::device::{Device, DeviceKind};
use crate::energy::EnergyMeter;
use crate::exposition::device_labels;
use crate::sysfs::fs::Root;
use crate::sysfs::source::{SysfsSource, SysfsSpec};
use crate::tegrastats::source::{SourceSpec, TegraHandle, TegraSource};

/// The tegrastats source a configuration runs on a `kind` device: none for the boards read
/// from sysfs.
pub fn source_spec(cfg: &Config, kind: DeviceKind) -> SourceSpec {
    // `tegrastats.sysfs` reads the Jetson's files instead (see `Pipeline::start_jetson_sysfs`).
    if kind.runs_tegrastats() && !cfg.tegrastats.sysfs {
        SourceSpec::from_config(&cfg.tegrastats, cfg.interval_duration())
    } else {
        SourceSpec::Idle
    }
}

/// What differs between two configurations, as far as running parts are concerned.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The tegrastats source must restart (path, logfile, replay or interval changed).
    pub source: bool,
    /// The Shelly poller must restart (its section or the interval changed).
    pub shelly: bool,
    /// The collector set must be rebuilt (resolved device type, interval or Shelly changed).
    pub collectors: bool,
    /// Keys that changed but cannot be applied without a restart, because the listeners are
    /// bound (ports) and capped (`max_connections`) once at start: (key, old, new).
    pub restart: Vec<(&'static str, u32, u32)>,
}

/// The one place that decides what a configuration change restarts. `kinds` are the device
/// types the two configurations resolve to: `auto` and the type it detects are the same
/// collector, so only a change of the resolved type rebuilds it.
pub fn diff(old: &Config, new: &Config, kinds: (DeviceKind, DeviceKind)) -> Changes {
    let interval = old.interval_duration() != new.interval_duration();
    let shelly = old.shelly != new.shelly || interval;
    let device = kinds.0 != kinds.1;
    let restart = [
        ("port", old.port.into(), new.port.into()),
        (
            "reload_port",
            old.reload_port.into(),
            new.reload_port.into(),
        ),
        ("max_connections", old.max_connections, new.max_connections),
    ]
    .into_iter()
    .filter(|(_, a, b)| a != b)
    .collect();
    Changes {
        source: source_spec(old, kinds.0) != source_spec(new, kinds.1),
        shelly,
        collectors: device || shelly,
        restart,
    }
}

/// What one cycle's collectors produced.
pub struct Collected {
    /// Every value, enabled or not.
    pub values: Values,
    /// How each collector fared.
    pub statuses: Vec<CollectorStatus>,
}

/// The running parts of one configuration.
pub struct Pipeline {
    device: Device,
    source: TegraSource,
    set: CollectorSet,
    /// The running Shelly collector and the token that stops its poller.
    shelly: Option<(CancellationToken, ShellyCollector)>,
    /// A board's sysfs source and what it was started for.
    board: Option<((Board, PathBuf, Duration), BoardSource)>,
    /// A Jetson read from sysfs (`tegrastats.sysfs`) instead of tegrastats.
    jetson_sysfs: Option<SysfsSource>,
    labels: String,
    /// Energy counters: one per power sensor for the life of the process (a reload that
    /// rebuilds the collectors keeps them).
    energy: Arc<EnergyMeter>,
    /// Stops the pollers with the process.
    shutdown: CancellationToken,
}

impl Pipeline {
    /// Resolves the device type of `cfg` and starts its parts (check the source first with
    /// [`SourceSpec::check`]).
    pub fn start(cfg: &Config, env: &(dyn Env + Sync), shutdown: CancellationToken) -> Pipeline {
        let device = resolve(cfg, env);
        let spec = source_spec(cfg, device.kind);
        let mut pipeline = Pipeline {
            device,
            source: TegraSource::start(spec),
            set: CollectorSet::default(),
            shelly: None,
            board: None,
            jetson_sysfs: None,
            labels: String::new(),
            energy: Arc::new(EnergyMeter::new()),
            shutdown,
        };
        pipeline.start_shelly(cfg);
        pipeline.start_board(cfg, env);
        pipeline.start_jetson_sysfs(cfg, env);
        pipeline.build_collectors(cfg);
        pipeline.relabel(cfg, env);
        pipeline
    }

    /// Moves from `old` to `new`: resolves the device type again, restarts what [`diff`]
    /// names, and relabels.
    pub fn apply(&mut self, old: &Config, new: &Config, env: &(dyn Env + Sync)) {
        let device = resolve(new, env);
        let changes = diff(old, new, (self.device.kind, device.kind));
        self.device = device;
        for (key, from, to) in &changes.restart {
            // The port wording is the original exporter's, which operators may grep for.
            match *key {
                "port" | "reload_port" => {
                    warn!("⚠️  Port change detected ({from} → {to}) but cannot be applied.")
                }
                _ => warn!("⚠️  {key} change detected ({from} → {to}) but cannot be applied."),
            }
            warn!("Please restart the service: sudo systemctl restart edge-metrics-exporter");
        }
        if changes.source {
            info!("tegrastats settings changed; restarting the source.");
            let spec = source_spec(new, self.device.kind);
            self.source.restart(spec);
        }
        let board_restarted = self.start_board(new, env) | self.start_jetson_sysfs(new, env);
        if changes.shelly {
            self.start_shelly(new);
            info!(
                enabled = new.shelly.enabled,
                server_url = %new.shelly.server_url,
                "Shelly collector reinitialised."
            );
        }
        if changes.collectors || board_restarted {
            self.build_collectors(new);
            info!(
                device_type = self.device.kind.as_str(),
                source = self.device.source.as_str(),
                collector = collector::device_collector_name(self.device.kind),
                "Collectors reinitialised."
            );
        }
        self.relabel(new, env);
    }

    /// Runs every collector.
    pub fn collect(&self) -> Collected {
        let mut values = Values::new();
        let statuses = self.set.collect(&mut values);
        Collected { values, statuses }
    }

    /// The device type in force and the identity files' contents.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The Jetson readings and counters: the tegrastats source's, or the sysfs source's.
    pub fn readings(&self) -> TegraHandle {
        match &self.jetson_sysfs {
            Some(sysfs) => sysfs.handle(),
            None => self.source.handle(),
        }
    }

    /// `{device_type="…",hostname="…"}` for every device sample.
    pub fn labels(&self) -> &str {
        &self.labels
    }

    /// Stops the tegrastats source (a child is killed and reaped).
    pub async fn stop(&mut self) {
        self.source.stop().await;
        if let Some(sysfs) = &mut self.jetson_sysfs {
            sysfs.stop().await;
        }
    }

    fn build_collectors(&mut self, cfg: &Config) {
        let mut set = CollectorSet::default();
        set.push(collector::device_collector(
            self.device.kind,
            self.readings(),
            self.board.as_ref().map(|(_, b)| b.handle()),
            cfg.interval_duration(),
            self.energy.clone(),
        ));
        if let Some((_, shelly)) = &self.shelly {
            set.push(Box::new(shelly.clone()));
        }
        self.set = set;
    }

    /// Starts the board's sysfs source when the device type is a board and the running one
    /// (if any) was started for another board, `host_root` or interval; stops it for a Jetson.
    /// Returns whether it changed (the collectors must then be rebuilt).
    fn start_board(&mut self, cfg: &Config, env: &(dyn Env + Sync)) -> bool {
        let wanted = match Family::of(self.device.kind) {
            Family::Board(board) => {
                Some((board, config::host_root(cfg, env), cfg.interval_duration()))
            }
            Family::Jetson(_) => None,
        };
        if self.board.as_ref().map(|(key, _)| key) == wanted.as_ref() {
            return false;
        }
        // Dropping the old source stops its task.
        self.board = wanted.map(|(board, root, interval)| {
            let source =
                BoardSource::start(board, Root::new(root.clone()), interval, &self.shutdown);
            ((board, root, interval), source)
        });
        true
    }

    /// Starts the Jetson sysfs source when `tegrastats.sysfs` is on for a Jetson and the
    /// running one (if any) reads another `host_root` or interval; stops it otherwise. Returns
    /// whether it changed (the collectors must then be rebuilt).
    fn start_jetson_sysfs(&mut self, cfg: &Config, env: &(dyn Env + Sync)) -> bool {
        let wanted =
            (cfg.tegrastats.sysfs && self.device.kind.runs_tegrastats()).then(|| SysfsSpec {
                root: config::host_root(cfg, env),
                interval: cfg.interval_duration(),
            });
        if self.jetson_sysfs.as_ref().map(SysfsSource::spec) == wanted.as_ref() {
            return false;
        }
        // Dropping the old source stops its task.
        self.jetson_sysfs = wanted.map(SysfsSource::start);
        true
    }

    /// (Re)starts the Shelly collector per `shelly:` (stopping the previous poller).
    fn start_shelly(&mut self, cfg: &Config) {
        if let Some((token, _)) = self.shelly.take() {
            token.cancel();
        }
        if cfg.shelly.enabled {
            let token = self.shutdown.child_token();
            let collector =
                ShellyCollector::start(&cfg.shelly, cfg.interval_duration(), token.clone());
            self.shelly = Some((token, collector));
        }
    }

    fn relabel(&mut self, cfg: &Config, env: &(dyn Env + Sync)) {
        self.labels = device_labels(
            self.device.kind.as_str(),
            &config::resolve_hostname(cfg, env),
        );
    }
}

/// Reads the identity files under the config's `host_root` and resolves its `device_type`;
/// logs what was detected.
fn resolve(cfg: &Config, env: &(dyn Env + Sync)) -> Device {
    let host_root = config::host_root(cfg, env);
    let device = Device::resolve(cfg.device_type, &host_root);
    device.log(&host_root);
    device
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const ORIN: (DeviceKind, DeviceKind) = (DeviceKind::JetsonOrin, DeviceKind::JetsonOrin);

    fn changed(edit: impl FnOnce(&mut Config)) -> Changes {
        let old = Config::default();
        let mut new = old.clone();
        edit(&mut new);
        diff(&old, &new, ORIN)
    }

    #[test]
    fn the_diff_names_exactly_what_restarts() {
        assert_eq!(changed(|_| {}), Changes::default());
        // Metrics and unknown keys restart nothing.
        assert_eq!(
            changed(|c| {
                c.metrics.insert("jetson_ram_used_mb".into(), true);
                c.hostname = Some("other".into());
            }),
            Changes::default()
        );
        let c = Config::default();
        let device = diff(&c, &c, (DeviceKind::JetsonOrin, DeviceKind::JetsonNano));
        assert!(device.collectors && !device.source && !device.shelly);
        // `auto` that detects an Orin and a named `jetson_orin` run the same collector.
        let named = changed(|c| c.device_type = crate::config::DeviceType::JetsonOrin);
        assert_eq!(named, Changes::default());
        let shelly = changed(|c| c.shelly.device_id = Some("plug-2".into()));
        assert!(shelly.shelly && shelly.collectors && !shelly.source);
        let interval = changed(|c| c.interval = 2.0);
        assert!(interval.source && interval.shelly && interval.collectors);
        let source = changed(|c| c.tegrastats.replay = Some(PathBuf::from("/tmp/x.log")));
        assert!(source.source && !source.shelly && !source.collectors);
        let ports = changed(|c| {
            c.port = 9200;
            c.reload_port = 9201;
        });
        assert_eq!(
            ports.restart,
            vec![("port", 9102, 9200), ("reload_port", 9101, 9201)]
        );
        assert!(!ports.source && !ports.collectors);
        // The connection cap is set when the servers start: a new one waits for a restart.
        let cap = changed(|c| c.max_connections = 16);
        assert_eq!(
            cap,
            Changes {
                restart: vec![("max_connections", 256, 16)],
                ..Changes::default()
            }
        );
    }

    #[test]
    fn sysfs_mode_idles_tegrastats_on_a_jetson_only() {
        let mut cfg = Config::default();
        cfg.tegrastats.sysfs = true;
        assert_eq!(source_spec(&cfg, DeviceKind::JetsonOrin), SourceSpec::Idle);
        assert_eq!(source_spec(&cfg, DeviceKind::Jetson), SourceSpec::Idle);
        cfg.tegrastats.sysfs = false;
        assert_ne!(source_spec(&cfg, DeviceKind::JetsonNano), SourceSpec::Idle);
        // Turning it on stops tegrastats; the sysfs source itself starts in `apply`.
        let on = changed(|c| c.tegrastats.sysfs = true);
        assert!(on.source && !on.shelly, "{on:?}");
    }

    #[test]
    fn boards_run_no_tegrastats_and_a_change_of_board_restarts_the_source() {
        let c = Config::default();
        for kind in [
            DeviceKind::RaspberryPi,
            DeviceKind::LattePanda,
            DeviceKind::OrangePi,
        ] {
            assert_eq!(source_spec(&c, kind), SourceSpec::Idle, "{kind}");
        }
        assert!(matches!(
            source_spec(&c, DeviceKind::JetsonOrin),
            SourceSpec::Spawn { .. }
        ));
        // Jetson → board stops tegrastats; board → board keeps the (idle) source but rebuilds
        // the collector; a tegrastats setting does not concern a board.
        let to_board = diff(&c, &c, (DeviceKind::JetsonOrin, DeviceKind::RaspberryPi));
        assert!(to_board.source && to_board.collectors, "{to_board:?}");
        let board_to_board = diff(&c, &c, (DeviceKind::RaspberryPi, DeviceKind::OrangePi));
        assert!(!board_to_board.source && board_to_board.collectors);
        let mut replay = c.clone();
        replay.tegrastats.replay = Some(PathBuf::from("/tmp/x.log"));
        let pi = (DeviceKind::RaspberryPi, DeviceKind::RaspberryPi);
        assert_eq!(diff(&c, &replay, pi), Changes::default());
    }
}
