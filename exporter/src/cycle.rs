//! One collection cycle, as pure steps the state owner runs every `interval`:
//! collect (each collector timed) → auto-discover new names → keep the enabled values →
//! render the `/metrics` body once, so a scrape only copies it.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use crate::collector::{CollectorSet, CollectorStatus, Values};
use crate::exposition::{write_device_values, Headers};
use crate::selfmetrics::{write_self_metrics, Counters, SelfInput};
use crate::tegrastats::source::SourceStats;

/// What the collectors produced in one cycle.
pub struct Collected {
    /// Every value, enabled or not.
    pub values: Values,
    /// How each collector fared.
    pub statuses: Vec<CollectorStatus>,
}

/// Runs every collector of the set.
pub fn collect(set: &CollectorSet) -> Collected {
    let mut values = Values::new();
    let statuses = set.collect(&mut values);
    Collected { values, statuses }
}

/// Names produced this cycle that the `metrics:` map does not list yet.
pub fn discover(metrics: &BTreeMap<String, bool>, values: &Values) -> Vec<String> {
    values
        .keys()
        .filter(|name| !metrics.contains_key(*name))
        .cloned()
        .collect()
}

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
    /// How each collector fared.
    pub statuses: &'a [CollectorStatus],
    /// The tegrastats counters.
    pub source: &'a SourceStats,
    /// Wall time of the latest tegrastats reading.
    pub last_reading: Option<SystemTime>,
    /// Runtime counters.
    pub counters: &'a Counters,
    /// Config Server pushes (succeeded, failed).
    pub pushes: (u64, u64),
}

/// Renders the whole `/metrics` body; `headers` keeps the families' header lines between
/// renders.
pub fn render(input: &RenderInput<'_>, headers: &mut Headers) -> String {
    let mut out = String::with_capacity(256 + input.values.len() * 200);
    write_device_values(
        &mut out,
        input.values.iter().copied(),
        input.labels,
        headers,
    );
    write_self_metrics(
        &mut out,
        &SelfInput {
            statuses: input.statuses,
            source: input.source,
            last_reading: input.last_reading,
            counters: input.counters,
            pushes: input.pushes,
        },
    );
    out
}

/// `/health` as the spec shapes it, plus `reason` when degraded.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Health {
    /// `healthy` or `degraded`.
    pub status: &'static str,
    /// Why it is degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The configured device type.
    pub device_type: String,
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
    fn discovery_lists_only_names_absent_from_the_map() {
        let metrics = BTreeMap::from([("a".to_string(), false), ("b".to_string(), true)]);
        let values = Values::from([("a".into(), 1.0), ("b".into(), 2.0), ("c".into(), 3.0)]);
        assert_eq!(discover(&metrics, &values), vec!["c".to_string()]);
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
