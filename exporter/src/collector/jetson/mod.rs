//! Per-model tegrastats interpretation: one raw line → metric values named as in the spec.
//!
//! INTERFACE (kept stable for the runtime; the bodies are filled in by the parser work):
//! - [`Model`]: which model's rules apply (generic `jetson` uses Orin rules).
//! - [`read_line`]: pure `&str` → [`Reading`]; never panics, never invents a value.
//! - [`help_text`]: the `# HELP` text for any metric name this module can produce.
//! - [`default_enabled`]: whether a freshly discovered metric is on in a new config.

use super::Values;
use crate::config::DeviceType;

/// Which model's parsing rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// Orin (and the generic `jetson` type).
    Orin,
    /// Xavier.
    Xavier,
    /// Nano.
    Nano,
}

impl Model {
    /// The model whose rules a configured device type uses.
    pub fn for_device(kind: DeviceType) -> Model {
        match kind {
            DeviceType::JetsonOrin | DeviceType::Jetson => Model::Orin,
            DeviceType::JetsonXavier => Model::Xavier,
            DeviceType::JetsonNano => Model::Nano,
        }
    }

    /// The collector name the spec shows in `/health`.
    pub fn collector_name(self) -> &'static str {
        match self {
            Model::Orin => "JetsonOrinCollector",
            Model::Xavier => "JetsonXavierCollector",
            Model::Nano => "JetsonNanoCollector",
        }
    }
}

/// Metric values parsed from one tegrastats line.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Reading {
    /// Metric name → value, names exactly as the spec's patterns.
    pub values: Values,
    /// Tokens in the line that did not parse (each costs a parse-error count, never a value).
    pub bad_tokens: u32,
}

/// A line that yielded nothing usable.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[error("tegrastats line has no recognisable field: {found:?}")]
pub struct LineError {
    /// The start of the offending line.
    pub found: String,
}

/// Parses one tegrastats line with `model`'s rules.
pub fn read_line(model: Model, raw: &str) -> Result<Reading, LineError> {
    let _ = model;
    let mut values = Values::new();
    // Placeholder until the per-model parsers land: RAM only.
    for pair in raw.split_whitespace().collect::<Vec<_>>().windows(2) {
        if pair[0] == "RAM" {
            if let Some((used, total)) = pair[1].trim_end_matches("MB").split_once('/') {
                if let (Ok(u), Ok(t)) = (used.parse::<f64>(), total.parse::<f64>()) {
                    values.insert("jetson_ram_used_mb".into(), u);
                    values.insert("jetson_ram_total_mb".into(), t);
                }
            }
        }
    }
    if values.is_empty() {
        return Err(LineError {
            found: raw.chars().take(60).collect(),
        });
    }
    Ok(Reading {
        values,
        bad_tokens: 0,
    })
}

/// `# HELP` text for a metric name produced by [`read_line`].
pub fn help_text(name: &str) -> String {
    format!("Jetson tegrastats metric {name}")
}

/// Whether `name`, first seen on a `model` device, is enabled in a freshly written config.
pub fn default_enabled(model: Model, name: &str) -> bool {
    let _ = model;
    name.starts_with("jetson_ram_")
}
