//! Collectors: cheap synchronous views of the latest reading of a source.
//!
//! A *source* owns I/O (the tegrastats child, the bridge poller) and runs as a task; a
//! *collector* turns the latest reading into metric values without I/O. One collection cycle
//! runs every collector of the [`CollectorSet`] and publishes one snapshot.

pub mod jetson;
pub mod shelly;

use std::collections::BTreeMap;

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
