//! Collectors: cheap synchronous views of the latest reading of a source.
//!
//! A *source* owns I/O (the tegrastats child, the bridge poller) and runs as a task; a
//! *collector* turns the latest reading into metric values without I/O. One collection cycle
//! runs every collector of the [`CollectorSet`] and publishes one snapshot.
//!
//! Names come from outside the exporter (tegrastats' rail and sensor names, the bridge's JSON
//! keys), so [`CollectorSet::collect`] is the one gate every value passes: a name that is not a
//! metric name ([`config::is_metric_name`]) is dropped there, counted in [`INVALID_NAMES`] and
//! logged once, and never reaches the values, discovery or `config.yaml`.

pub mod boards;
pub mod jetson;
pub mod shelly;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::boards::{Board, BoardHandle};
use crate::config::{self, Config, DeviceType};
use crate::device::DeviceKind;
use crate::energy::EnergyMeter;
use crate::tegrastats::source::TegraHandle;
use boards::BoardCollector;
use jetson::{JetsonCollector, Model};

/// Metric name → value. Ordered, so rendered output is stable.
pub type Values = BTreeMap<String, f64>;

/// Why a collector produced no values this cycle.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum CollectError {
    /// No reading has arrived yet.
    #[error("no reading yet from {source_name}")]
    NoReading {
        /// The source that has not produced anything.
        source_name: &'static str,
    },
    /// The latest reading is older than the staleness limit.
    #[error("latest reading from {source_name} is {age_secs:.1}s old (limit {limit_secs:.1}s)")]
    Stale {
        /// The source whose reading is stale.
        source_name: &'static str,
        /// Age of the latest reading.
        age_secs: f64,
        /// The limit it exceeded (three intervals).
        limit_secs: f64,
    },
    /// The source reported a failure (bridge down, error answer, ...).
    #[error("{0}")]
    Failed(String),
}

/// A cheap, synchronous view of a source's latest reading.
pub trait Collector: Send + Sync {
    /// Shown by `/health` as "collector"; the spec fixes the text ("JetsonOrinCollector").
    fn name(&self) -> &'static str;
    /// Adds values from the latest reading. No I/O, no `.await`, no panics.
    fn collect(&self, out: &mut Values) -> Result<(), CollectError>;
}

/// What collects a resolved device type: a Jetson model over tegrastats (or its sysfs
/// source), or a board over its sysfs files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// A Jetson model.
    Jetson(Model),
    /// A board read from sysfs.
    Board(Board),
}

impl Family {
    /// The family of `kind`: the one place that maps the two. Adding a device type does not
    /// compile until it is wired here (both `match`es are exhaustive).
    pub fn of(kind: DeviceKind) -> Family {
        match Model::for_device(kind) {
            Some(model) => Family::Jetson(model),
            None => Family::Board(match kind {
                DeviceKind::RaspberryPi => Board::RaspberryPi,
                DeviceKind::LattePanda => Board::LattePanda,
                DeviceKind::OrangePi => Board::OrangePi,
                DeviceKind::JetsonOrin
                | DeviceKind::JetsonXavier
                | DeviceKind::JetsonNano
                | DeviceKind::Jetson => {
                    unreachable!("invariant: Model::for_device maps every Jetson type")
                }
            }),
        }
    }
}

/// The device collector for a resolved device type. `auto` cannot be passed: it is resolved
/// first ([`crate::device::Device::resolve`]). A Jetson reads `source`; a board reads `board`
/// (its sysfs source, started by the pipeline for board types). Power readings are integrated
/// into `energy`, which outlives the collector (a reload keeps the counters).
pub fn device_collector(
    kind: DeviceKind,
    source: TegraHandle,
    board: Option<BoardHandle>,
    interval: Duration,
    energy: Arc<EnergyMeter>,
) -> Box<dyn Collector> {
    match Family::of(kind) {
        Family::Jetson(model) => Box::new(JetsonCollector::new(model, source, interval, energy)),
        Family::Board(b) => Box::new(BoardCollector::new(b, board, interval, energy)),
    }
}

/// The name of the device collector for `kind`, as `/health` shows it.
pub fn device_collector_name(kind: DeviceKind) -> &'static str {
    match Family::of(kind) {
        Family::Jetson(model) => model.collector_name(),
        Family::Board(b) => boards::collector_name(b),
    }
}

/// Whether `name`, first seen on a fresh install of a `kind` device, is enabled.
pub fn default_enabled(kind: DeviceKind, name: &str) -> bool {
    if name.starts_with("jetson_") {
        let model = Model::for_device(kind).unwrap_or(Model::Orin);
        jetson::default_enabled(model, name)
    } else if boards::PREFIXES.iter().any(|p| name.starts_with(p)) {
        boards::default_enabled(name)
    } else {
        shelly::default_enabled(name)
    }
}

/// A brand-new configuration: every key at its default, `device_type: auto` included, with the
/// default metrics of `kind` (the type detected on this device now) and the Shelly ones
/// enabled. A device that later resolves to another type still gets that type's defaults as
/// it discovers them (a fresh install enables what discovery finds in the default set).
pub fn fresh_config(kind: DeviceKind) -> Config {
    let device: Vec<String> = match Family::of(kind) {
        Family::Jetson(model) => jetson::default_metrics(model)
            .into_iter()
            .map(str::to_string)
            .collect(),
        Family::Board(b) => boards::default_metrics(b),
    };
    let metrics = device
        .into_iter()
        .chain(shelly::DEFAULT_METRICS.map(str::to_string))
        .map(|name| (name, true))
        .collect();
    Config {
        device_type: DeviceType::Auto,
        metrics,
        ..Config::default()
    }
}

/// `# HELP` text for any device or Shelly metric name.
pub fn help_text(name: &str) -> String {
    if name.starts_with("jetson_") {
        jetson::help_text(name)
    } else if boards::PREFIXES.iter().any(|p| name.starts_with(p)) {
        boards::help_text(name)
    } else {
        shelly::help_text(name)
    }
}

/// How one collector fared in one cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorStatus {
    /// The collector's name ("JetsonOrinCollector", "ShellyCollector").
    pub name: &'static str,
    /// How long its `collect` took.
    pub duration: Duration,
    /// `None` when it produced values, else why not.
    pub error: Option<CollectError>,
}

impl CollectorStatus {
    /// Whether the collector produced current values.
    pub fn up(&self) -> bool {
        self.error.is_none()
    }
}

/// How many characters of text from the network (a name, a value, a message) an error
/// message or a log line shows; see [`printable`].
pub const SHOWN_CHARS: usize = 64;

/// `text` from outside the exporter, made safe to put in a log line or an error message:
/// control characters (line breaks included) and the Unicode line, paragraph and direction
/// marks are escaped (`\n`, `\u{1b}`), and at most `max_chars` characters are kept, a cut
/// marked with `…`. JSON bodies escape quotes themselves (serde).
pub fn printable(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 2));
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            out.push('…');
            break;
        }
        let hidden = c.is_control()
            || ('\u{2028}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c);
        if hidden {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Most distinct invalid names logged; later ones are only counted.
const MAX_LOGGED_NAMES: usize = 100;

/// The gate for collectors' names: [`NameCheck::admit`] passes metric names and drops the
/// rest, counting every dropped value and logging each name once (the first
/// [`MAX_LOGGED_NAMES`] names, each cut to [`SHOWN_CHARS`], so memory stays bounded whatever
/// a source sends).
#[derive(Debug)]
pub struct NameCheck {
    rejected: AtomicU64,
    logged: Mutex<BTreeSet<String>>,
    stopped_logging: AtomicBool,
}

/// The process's gate, used by every [`CollectorSet`]: its count is the self-metric
/// `edge_metrics_exporter_invalid_metric_names_total`, and a name logged once stays logged
/// across reloads (which rebuild the set).
pub static INVALID_NAMES: NameCheck = NameCheck::new();

impl NameCheck {
    /// A gate that has seen nothing.
    pub const fn new() -> NameCheck {
        NameCheck {
            rejected: AtomicU64::new(0),
            logged: Mutex::new(BTreeSet::new()),
            stopped_logging: AtomicBool::new(false),
        }
    }

    /// Whether a value named `name` from `collector` may pass; counts and logs it if not.
    pub fn admit(&self, collector: &str, name: &str) -> bool {
        if config::is_metric_name(name) {
            return true;
        }
        self.rejected.fetch_add(1, Ordering::Relaxed);
        let shown = printable(name, SHOWN_CHARS);
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        if logged.contains(&shown) {
            return false;
        }
        if logged.len() < MAX_LOGGED_NAMES {
            tracing::warn!(
                collector,
                name = %shown,
                "Dropped a value whose name is not a metric name ([a-zA-Z_][a-zA-Z0-9_]*); it is \
                 neither exposed nor saved."
            );
            logged.insert(shown);
        } else if !self.stopped_logging.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                collector,
                logged = MAX_LOGGED_NAMES,
                "More invalid metric names than are logged; further ones are only counted in \
                 edge_metrics_exporter_invalid_metric_names_total."
            );
        }
        false
    }

    /// Values dropped so far.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

impl Default for NameCheck {
    fn default() -> NameCheck {
        NameCheck::new()
    }
}

/// The collectors of one running configuration: the device collector first, then Shelly.
pub struct CollectorSet {
    collectors: Vec<Box<dyn Collector>>,
    names: &'static NameCheck,
}

impl Default for CollectorSet {
    fn default() -> CollectorSet {
        CollectorSet::new(Vec::new())
    }
}

impl CollectorSet {
    /// A set of the given collectors, collected in this order, gated by [`INVALID_NAMES`].
    pub fn new(collectors: Vec<Box<dyn Collector>>) -> CollectorSet {
        CollectorSet::with_name_check(collectors, &INVALID_NAMES)
    }

    /// A set whose names pass `names` instead (tests count on a gate of their own).
    pub fn with_name_check(
        collectors: Vec<Box<dyn Collector>>,
        names: &'static NameCheck,
    ) -> CollectorSet {
        CollectorSet { collectors, names }
    }

    /// Adds a collector at the end.
    pub fn push(&mut self, collector: Box<dyn Collector>) {
        self.collectors.push(collector);
    }

    /// Removes every collector called `name`.
    pub fn remove(&mut self, name: &str) {
        self.collectors.retain(|c| c.name() != name);
    }

    /// The collectors' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.collectors.iter().map(|c| c.name()).collect()
    }

    /// Runs every collector, timing each. A failing collector adds nothing (values it may have
    /// added before failing are dropped) and never blanks the others. A value whose name is
    /// not a metric name is dropped here, whichever collector made it (see [`NameCheck`]).
    pub fn collect(&self, out: &mut Values) -> Vec<CollectorStatus> {
        let mut statuses = Vec::with_capacity(self.collectors.len());
        for collector in &self.collectors {
            let mut own = Values::new();
            let started = Instant::now();
            let result = collector.collect(&mut own);
            let duration = started.elapsed();
            let error = match result {
                Ok(()) => {
                    own.retain(|name, _| self.names.admit(collector.name(), name));
                    out.append(&mut own);
                    None
                }
                Err(error) => Some(error),
            };
            statuses.push(CollectorStatus {
                name: collector.name(),
                duration,
                error,
            });
        }
        statuses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, Result<f64, CollectError>);
    impl Collector for Fixed {
        fn name(&self) -> &'static str {
            self.0
        }
        fn collect(&self, out: &mut Values) -> Result<(), CollectError> {
            out.insert(format!("{}_value", self.0), 1.0);
            match &self.1 {
                Ok(v) => {
                    out.insert(format!("{}_value", self.0), *v);
                    Ok(())
                }
                Err(e) => Err(e.clone()),
            }
        }
    }

    /// Hands out fixed values.
    struct Named(&'static str, Vec<(&'static str, f64)>);
    impl Collector for Named {
        fn name(&self) -> &'static str {
            self.0
        }
        fn collect(&self, out: &mut Values) -> Result<(), CollectError> {
            out.extend(self.1.iter().map(|(k, v)| (k.to_string(), *v)));
            Ok(())
        }
    }

    #[test]
    fn names_that_are_not_metric_names_are_dropped_and_counted() {
        static GATE: NameCheck = NameCheck::new();
        let set = CollectorSet::with_name_check(
            vec![
                Box::new(Named(
                    "ShellyCollector",
                    vec![
                        ("bad name{x=\"1\"}", 1.0),
                        ("power_x\nfake_metric 1", 2.0),
                        ("power_total_watts", 5.0),
                        ("9starts_with_a_digit", 3.0),
                        ("", 4.0),
                    ],
                )),
                Box::new(Named(
                    "JetsonOrinCollector",
                    vec![("jetson_ram_used_mb", 1.0), ("jetson-ram", 2.0)],
                )),
            ],
            &GATE,
        );
        let mut out = Values::new();
        let statuses = set.collect(&mut out);
        assert_eq!(
            out.keys().collect::<Vec<_>>(),
            ["jetson_ram_used_mb", "power_total_watts"]
        );
        assert!(statuses.iter().all(CollectorStatus::up), "{statuses:?}");
        assert_eq!(GATE.rejected(), 5);
        // Every cycle counts again; each name is remembered (logged) once.
        set.collect(&mut Values::new());
        assert_eq!(GATE.rejected(), 10);
        assert_eq!(GATE.logged.lock().unwrap().len(), 5);
    }

    #[test]
    fn the_log_memory_of_invalid_names_is_bounded() {
        static GATE: NameCheck = NameCheck::new();
        for i in 0..MAX_LOGGED_NAMES * 3 {
            assert!(!GATE.admit("test", &format!("bad name {i} {}", "x".repeat(10_000))));
        }
        let logged = GATE.logged.lock().unwrap();
        assert_eq!(logged.len(), MAX_LOGGED_NAMES);
        assert!(logged.iter().all(|n| n.chars().count() <= SHOWN_CHARS + 1));
        assert!(GATE.stopped_logging.load(Ordering::Relaxed));
        assert_eq!(GATE.rejected(), (MAX_LOGGED_NAMES * 3) as u64);
    }

    #[test]
    fn printable_escapes_line_breaks_and_cuts() {
        assert_eq!(
            printable("power_x\nfake_metric 1", 64),
            "power_x\\nfake_metric 1"
        );
        assert_eq!(
            printable("a\r\u{1b}[2Jb\u{2028}c", 64),
            "a\\r\\u{1b}[2Jb\\u{2028}c"
        );
        assert_eq!(printable("abcdef", 3), "abc…");
        assert_eq!(printable("äöü", 3), "äöü");
        assert!(!printable(&"\n".repeat(1000), SHOWN_CHARS).contains('\n'));
    }

    #[test]
    fn fresh_configs_are_valid_and_per_model() {
        for d in DeviceKind::ALL {
            let c = fresh_config(d);
            assert_eq!(c.device_type, DeviceType::Auto);
            assert!(c.metrics.values().all(|on| *on), "{d}");
            assert_eq!(c.metrics.get("power_total_watts"), Some(&true), "{d}");
            c.validate("defaults").unwrap();
            for name in c.metrics.keys() {
                assert!(default_enabled(d, name), "{d} {name}");
            }
        }
        let nano = fresh_config(DeviceKind::JetsonNano);
        assert!(nano.metrics.contains_key("jetson_iram_used_percent"));
        let orin = fresh_config(DeviceKind::Jetson);
        assert!(orin.metrics.contains_key("jetson_power_vdd_gpu_soc_watts"));
        assert!(!orin.metrics.contains_key("jetson_iram_used_percent"));
        assert!(!default_enabled(DeviceKind::Jetson, "power_factor"));
        assert_eq!(
            device_collector_name(DeviceKind::JetsonXavier),
            "JetsonXavierCollector"
        );
    }

    #[test]
    fn a_failing_collector_adds_nothing_and_keeps_the_others() {
        let set = CollectorSet::new(vec![
            Box::new(Fixed("a", Ok(2.0))),
            Box::new(Fixed("b", Err(CollectError::Failed("bridge down".into())))),
            Box::new(Fixed("c", Ok(3.0))),
        ]);
        let mut out = Values::new();
        let statuses = set.collect(&mut out);
        assert_eq!(out.get("a_value"), Some(&2.0));
        assert_eq!(out.get("b_value"), None);
        assert_eq!(out.get("c_value"), Some(&3.0));
        assert_eq!(
            statuses.iter().map(|s| s.up()).collect::<Vec<_>>(),
            vec![true, false, true]
        );
        assert_eq!(set.names(), vec!["a", "b", "c"]);
    }
}
