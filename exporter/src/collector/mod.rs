//! Collectors: cheap synchronous views of the latest reading of a source.
//!
//! A *source* owns I/O (the tegrastats child, the bridge poller) and runs as a task; a
//! *collector* turns the latest reading into metric values without I/O. One collection cycle
//! runs every collector of the [`CollectorSet`] and publishes one snapshot.

pub mod jetson;
pub mod shelly;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::config::{Config, DeviceType};
use crate::tegrastats::source::TegraHandle;
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

/// The device collector for a configured device type: the one place that maps the two.
/// Adding a device type does not compile until it is wired here (the `match` in
/// [`Model::for_device`] is exhaustive).
pub fn device_collector(
    kind: DeviceType,
    source: TegraHandle,
    interval: Duration,
) -> Box<dyn Collector> {
    Box::new(JetsonCollector::new(
        Model::for_device(kind),
        source,
        interval,
    ))
}

/// The name of the device collector for `kind`, as `/health` shows it.
pub fn device_collector_name(kind: DeviceType) -> &'static str {
    Model::for_device(kind).collector_name()
}

/// Whether `name`, first seen on a fresh install of a `kind` device, is enabled.
pub fn default_enabled(kind: DeviceType, name: &str) -> bool {
    if name.starts_with("jetson_") {
        jetson::default_enabled(Model::for_device(kind), name)
    } else {
        shelly::default_enabled(name)
    }
}

/// A brand-new configuration for `kind`: every key at its default, the model's default metrics
/// and the Shelly ones enabled.
pub fn fresh_config(kind: DeviceType) -> Config {
    let metrics = jetson::default_metrics(Model::for_device(kind))
        .into_iter()
        .chain(shelly::DEFAULT_METRICS)
        .map(|name| (name.to_string(), true))
        .collect();
    Config {
        device_type: kind,
        metrics,
        ..Config::default()
    }
}

/// `# HELP` text for any device or Shelly metric name.
pub fn help_text(name: &str) -> String {
    if name.starts_with("jetson_") {
        jetson::help_text(name)
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

/// The collectors of one running configuration: the device collector first, then Shelly.
#[derive(Default)]
pub struct CollectorSet {
    collectors: Vec<Box<dyn Collector>>,
}

impl CollectorSet {
    /// A set of the given collectors, collected in this order.
    pub fn new(collectors: Vec<Box<dyn Collector>>) -> CollectorSet {
        CollectorSet { collectors }
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
    /// added before failing are dropped) and never blanks the others.
    pub fn collect(&self, out: &mut Values) -> Vec<CollectorStatus> {
        let mut statuses = Vec::with_capacity(self.collectors.len());
        for collector in &self.collectors {
            let mut own = Values::new();
            let started = Instant::now();
            let result = collector.collect(&mut own);
            let duration = started.elapsed();
            let error = match result {
                Ok(()) => {
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

    #[test]
    fn fresh_configs_are_valid_and_per_model() {
        for d in DeviceType::ALL {
            let c = fresh_config(d);
            assert_eq!(c.device_type, d);
            assert!(c.metrics.values().all(|on| *on), "{d}");
            assert_eq!(c.metrics.get("power_total_watts"), Some(&true), "{d}");
            c.validate("defaults").unwrap();
            for name in c.metrics.keys() {
                assert!(default_enabled(d, name), "{d} {name}");
            }
        }
        let nano = fresh_config(DeviceType::JetsonNano);
        assert!(nano.metrics.contains_key("jetson_iram_used_percent"));
        let orin = fresh_config(DeviceType::Jetson);
        assert!(orin.metrics.contains_key("jetson_power_vdd_gpu_soc_watts"));
        assert!(!orin.metrics.contains_key("jetson_iram_used_percent"));
        assert!(!default_enabled(DeviceType::Jetson, "power_factor"));
        assert_eq!(
            device_collector_name(DeviceType::JetsonXavier),
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
