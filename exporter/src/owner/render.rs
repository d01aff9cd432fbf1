//! The one renderer: a cycle's enabled values and the self-metrics → the `/metrics` body,
//! rendered once per cycle so that a scrape only copies it; and the `/health` answer.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::collector::{CollectorStatus, Values};
use crate::exposition::{write_device_values, Headers};
use crate::selfmetrics::{write_self_metrics, SelfInput};

/// The values whose metric is enabled (`true`) in the `metrics:` map, in name order.
pub fn enabled<'a>(metrics: &BTreeMap<String, bool>, values: &'a Values) -> Vec<(&'a str, f64)> {
    values
        .iter()
        .filter(|(name, _)| metrics.get(*name) == Some(&true))
        .map(|(k, v)| (k.as_str(), *v))
        .collect()
}

/// Everything one render needs.
pub struct RenderInput<'a> {
    /// Enabled device and Shelly values, in name order.
    pub values: &'a [(&'a str, f64)],
    /// `{device_type="…",hostname="…"}`.
    pub labels: &'a str,
    /// The self-metrics' inputs.
    pub own: SelfInput<'a>,
}

/// Renders `/metrics` bodies, keeping the families' header lines between renders.
#[derive(Debug, Default)]
pub struct Renderer {
    headers: Headers,
}

impl Renderer {
    /// Renders the whole `/metrics` body.
    pub fn render(&mut self, input: &RenderInput<'_>) -> String {
        let mut out = String::with_capacity(256 + input.values.len() * 200);
        write_device_values(
            &mut out,
            input.values.iter().copied(),
            input.labels,
            &mut self.headers,
        );
        write_self_metrics(&mut out, &input.own);
        out
    }
}

/// `/health` as the spec shapes it, plus `reason` when degraded.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Health {
    /// `healthy` or `degraded`.
    pub status: &'static str,
    /// Why it is degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The device type in force: the configured one, or what `auto` detected (never `auto`).
    pub device_type: String,
    /// `configured` or `detected` (`device_type: auto`).
    pub device_type_source: &'static str,
    /// The device collector's name.
    pub collector: String,
    /// Enabled metrics in the `metrics:` map.
    pub metrics_count: usize,
    /// `local` or `server`.
    pub config_source: &'static str,
}

/// `healthy`, or `degraded` with every down collector's reason.
pub fn health_status(statuses: &[CollectorStatus]) -> (&'static str, Option<String>) {
    let reasons: Vec<String> = statuses
        .iter()
        .filter_map(|s| s.error.as_ref().map(|e| format!("{}: {e}", s.name)))
        .collect();
    if reasons.is_empty() {
        ("healthy", None)
    } else {
        ("degraded", Some(reasons.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::CollectError;
    use std::time::Duration;

    #[test]
    fn only_enabled_values_are_kept() {
        let metrics = BTreeMap::from([("a".to_string(), false), ("b".to_string(), true)]);
        let values = Values::from([("a".into(), 1.0), ("b".into(), 2.0), ("c".into(), 3.0)]);
        assert_eq!(enabled(&metrics, &values), vec![("b", 2.0)]);
    }

    #[test]
    fn health_names_the_down_collector() {
        let statuses = vec![CollectorStatus {
            name: "JetsonOrinCollector",
            duration: Duration::ZERO,
            error: Some(CollectError::NoReading {
                source_name: "tegrastats",
            }),
        }];
        let (status, reason) = health_status(&statuses);
        assert_eq!(status, "degraded");
        assert_eq!(
            reason.unwrap(),
            "JetsonOrinCollector: no reading yet from tegrastats"
        );
        assert_eq!(health_status(&[]), ("healthy", None));
    }
}
