//! Auto-discovery: names the collectors produce that the `metrics:` map does not list yet are
//! added to it, once, in batches (one save per cycle that finds something, none otherwise).
//!
//! On a fresh install (config.yaml just created, or a hand-written one without a `metrics:`
//! map) a discovered name is enabled when it is in its collector's default set; otherwise it is
//! added as `false`. An entry already in the map is never changed.
//!
//! Names reach discovery only through [`CollectorSet::collect`](crate::collector::CollectorSet),
//! which drops anything that is not a metric name. What a source may add is bounded as well:
//! at most [`MAX_NEW_PER_CYCLE`] names in one cycle (the rest wait for later cycles) and none
//! once the map holds [`MAX_KNOWN`] names. Names left out are counted in
//! `edge_metrics_exporter_discovery_dropped_total{limit="cycle"|"total"}`, and the first time
//! each limit is hit is logged.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::warn;

use crate::collector::{self, Values};
use crate::config::Config;
use crate::device::DeviceKind;
use crate::selfmetrics::LIMITS;

/// Most names one cycle adds to the `metrics:` map; the rest are added in later cycles.
pub const MAX_NEW_PER_CYCLE: usize = 200;

/// Most names the `metrics:` map grows to by discovery (and most names remembered as seen);
/// beyond it new names are neither added nor accepted by `POST /metrics/enable`.
pub const MAX_KNOWN: usize = 1000;

/// Names seen so far and whether the install is fresh.
#[derive(Debug, Default)]
pub struct Discovery {
    seen: BTreeSet<String>,
    fresh: bool,
    /// Whether the per-cycle limit has been logged.
    told_cycle: bool,
    /// Whether the total limit has been logged.
    told_total: bool,
}

impl Discovery {
    /// A discovery for a fresh install or not.
    pub fn new(fresh: bool) -> Discovery {
        Discovery {
            fresh,
            ..Discovery::default()
        }
    }

    /// Whether `name` is a metric the API accepts: in the map, or produced at least once.
    pub fn known(&self, cfg: &Config, name: &str) -> bool {
        cfg.metrics.contains_key(name) || self.seen.contains(name)
    }

    /// Notes the names of `values`; when some are absent from `cfg.metrics`, returns the
    /// configuration with them added and their names in order. `cfg` is cloned only then.
    /// `kind` is the device type `cfg` resolved to; its default set is what a fresh install
    /// enables.
    /// At most [`MAX_NEW_PER_CYCLE`] names are added, and none beyond [`MAX_KNOWN`]; names of
    /// the collectors' default sets (`power_total_watts`, the model's defaults) go first, so a
    /// source that floods made-up names cannot crowd them out.
    pub fn discover(
        &mut self,
        cfg: &Config,
        kind: DeviceKind,
        values: &Values,
    ) -> Option<(Config, Vec<String>)> {
        let mut next: Option<Config> = None;
        let mut added = Vec::new();
        let (mut over_cycle, mut over_total) = (0u64, 0u64);
        let default = |name: &&String| collector::default_enabled(kind, name);
        let ordered = values
            .keys()
            .filter(default)
            .chain(values.keys().filter(|n| !default(n)));
        for name in ordered {
            if cfg.metrics.contains_key(name) {
                self.remember(name);
                continue;
            }
            if cfg.metrics.len() + added.len() >= MAX_KNOWN {
                over_total += 1;
                continue;
            }
            if added.len() >= MAX_NEW_PER_CYCLE {
                over_cycle += 1;
                continue;
            }
            self.remember(name);
            let on = self.fresh && collector::default_enabled(kind, name);
            next.get_or_insert_with(|| cfg.clone())
                .metrics
                .insert(name.clone(), on);
            added.push(name.clone());
        }
        self.note_limits(over_cycle, over_total);
        added.sort_unstable();
        next.map(|next| (next, added))
    }

    /// Whether discoveries follow the default sets (a fresh install).
    pub fn fresh(&self) -> bool {
        self.fresh
    }

    fn remember(&mut self, name: &str) {
        if self.seen.len() < MAX_KNOWN && !self.seen.contains(name) {
            self.seen.insert(name.to_string());
        }
    }

    /// Counts the names left out this cycle; logs each limit the first time it is hit.
    fn note_limits(&mut self, over_cycle: u64, over_total: u64) {
        if note(
            over_cycle,
            &LIMITS.discovery_over_cycle,
            &mut self.told_cycle,
        ) {
            warn!(
                limit = MAX_NEW_PER_CYCLE,
                waiting = over_cycle,
                "More new metric names in one cycle than discovery adds at once; the rest are \
                 added in later cycles."
            );
        }
        if note(
            over_total,
            &LIMITS.discovery_over_total,
            &mut self.told_total,
        ) {
            warn!(
                limit = MAX_KNOWN,
                left_out = over_total,
                "The metrics: map holds as many names as discovery may add; new names are not \
                 added or saved (counted in edge_metrics_exporter_discovery_dropped_total)."
            );
        }
    }
}

/// Adds `left_out` to `counter`; whether this is the first time (`told` not yet set), so the
/// caller logs it.
fn note(left_out: u64, counter: &AtomicU64, told: &mut bool) -> bool {
    if left_out == 0 {
        return false;
    }
    counter.fetch_add(left_out, Ordering::Relaxed);
    !std::mem::replace(told, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: DeviceKind = DeviceKind::JetsonOrin;

    fn values(names: &[&str]) -> Values {
        names.iter().map(|n| (n.to_string(), 1.0)).collect()
    }

    fn numbered(prefix: &str, n: usize) -> Values {
        (0..n).map(|i| (format!("{prefix}_{i:05}"), 1.0)).collect()
    }

    #[test]
    fn adds_only_absent_names_and_never_changes_an_entry() {
        let mut cfg = Config::default();
        cfg.metrics.insert("jetson_ram_used_mb".into(), false);
        let mut d = Discovery::new(true);
        let found = values(&[
            "jetson_ram_used_mb",
            "jetson_cpu_core0_usage_percent",
            "power_total_watts",
        ]);
        let (next, added) = d.discover(&cfg, K, &found).unwrap();
        assert_eq!(
            added,
            ["jetson_cpu_core0_usage_percent", "power_total_watts"]
        );
        // The user's explicit false stays although the default would be true.
        assert!(!next.metrics["jetson_ram_used_mb"]);
        // Fresh: defaults on (Shelly's power), others off.
        assert!(next.metrics["power_total_watts"]);
        assert!(!next.metrics["jetson_cpu_core0_usage_percent"]);
        assert!(
            d.discover(&next, K, &found).is_none(),
            "nothing new the second time"
        );
        assert!(d.known(&cfg, "power_total_watts") && !d.known(&cfg, "power_nothing"));
    }

    #[test]
    fn an_existing_install_adds_discoveries_as_false() {
        let mut d = Discovery::new(false);
        let (next, _) = d
            .discover(&Config::default(), K, &values(&["jetson_ram_used_mb"]))
            .unwrap();
        assert!(!next.metrics["jetson_ram_used_mb"]);
    }

    #[test]
    fn one_cycle_adds_at_most_its_share_and_later_cycles_the_rest() {
        let mut d = Discovery::new(false);
        let found = numbered("power_extra", MAX_NEW_PER_CYCLE + 50);
        let before = LIMITS.discovery_over_cycle.load(Ordering::Relaxed);
        let (next, added) = d.discover(&Config::default(), K, &found).unwrap();
        assert_eq!(added.len(), MAX_NEW_PER_CYCLE);
        assert_eq!(next.metrics.len(), MAX_NEW_PER_CYCLE);
        assert!(LIMITS.discovery_over_cycle.load(Ordering::Relaxed) >= before + 50);
        assert!(d.told_cycle);
        // The names left out are unknown until a later cycle adds them.
        let last = found.keys().last().unwrap();
        assert!(!d.known(&next, last));
        let (next, added) = d.discover(&next, K, &found).unwrap();
        assert_eq!(added.len(), 50);
        assert!(d.known(&next, last));
        assert!(d.discover(&next, K, &found).is_none());
    }

    #[test]
    fn default_names_are_not_crowded_out_by_a_flood() {
        let mut d = Discovery::new(false);
        let mut found = numbered("power_aaa_made_up", MAX_KNOWN * 2);
        found.insert("power_total_watts".into(), 5.0);
        found.insert("jetson_ram_used_mb".into(), 1.0);
        let (next, added) = d.discover(&Config::default(), K, &found).unwrap();
        assert_eq!(added.len(), MAX_NEW_PER_CYCLE);
        assert!(next.metrics.contains_key("power_total_watts"));
        assert!(next.metrics.contains_key("jetson_ram_used_mb"));
        assert!(added.windows(2).all(|w| w[0] < w[1]), "in name order");
    }

    #[test]
    fn the_map_stops_growing_at_the_total_limit() {
        let mut d = Discovery::new(false);
        let mut cfg = Config::default();
        // A source that makes up new names every cycle.
        for cycle in 0..(MAX_KNOWN / MAX_NEW_PER_CYCLE + 3) {
            let found = numbered(&format!("power_cycle{cycle}"), MAX_NEW_PER_CYCLE);
            if let Some((next, _)) = d.discover(&cfg, K, &found) {
                cfg = next;
            }
        }
        assert_eq!(cfg.metrics.len(), MAX_KNOWN);
        assert!(d.seen.len() <= MAX_KNOWN);
        assert!(d.told_total);
        let before = LIMITS.discovery_over_total.load(Ordering::Relaxed);
        assert!(d.discover(&cfg, K, &values(&["power_one_more"])).is_none());
        assert!(!d.known(&cfg, "power_one_more"));
        assert!(LIMITS.discovery_over_total.load(Ordering::Relaxed) > before);
        // Names already in the map keep working.
        let listed = cfg.metrics.keys().next().unwrap().clone();
        assert!(d.discover(&cfg, K, &values(&[&listed])).is_none());
        assert!(d.known(&cfg, &listed));
    }
}
