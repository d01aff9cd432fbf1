//! Auto-discovery: names the collectors produce that the `metrics:` map does not list yet are
//! added to it, once, in batches (one save per cycle that finds something, none otherwise).
//!
//! On a fresh install (config.yaml just created, or a hand-written one without a `metrics:`
//! map) a discovered name is enabled when it is in its collector's default set; otherwise it is
//! added as `false`. An entry already in the map is never changed.

use std::collections::BTreeSet;

use crate::collector::{self, Values};
use crate::config::Config;

/// Names seen so far and whether the install is fresh.
#[derive(Debug, Default)]
pub struct Discovery {
    seen: BTreeSet<String>,
    fresh: bool,
}

impl Discovery {
    /// A discovery for a fresh install or not.
    pub fn new(fresh: bool) -> Discovery {
        Discovery {
            seen: BTreeSet::new(),
            fresh,
        }
    }

    /// Whether `name` is a metric the API accepts: in the map, or produced at least once.
    pub fn known(&self, cfg: &Config, name: &str) -> bool {
        cfg.metrics.contains_key(name) || self.seen.contains(name)
    }

    /// Notes the names of `values`; when some are absent from `cfg.metrics`, returns the
    /// configuration with them added and their names in order. `cfg` is cloned only then.
    pub fn discover(&mut self, cfg: &Config, values: &Values) -> Option<(Config, Vec<String>)> {
        let mut next: Option<Config> = None;
        let mut added = Vec::new();
        for name in values.keys() {
            if !self.seen.contains(name) {
                self.seen.insert(name.clone());
            }
            if cfg.metrics.contains_key(name) {
                continue;
            }
            let on = self.fresh && collector::default_enabled(cfg.device_type, name);
            next.get_or_insert_with(|| cfg.clone())
                .metrics
                .insert(name.clone(), on);
            added.push(name.clone());
        }
        next.map(|next| (next, added))
    }

    /// Whether discoveries follow the default sets (a fresh install).
    pub fn fresh(&self) -> bool {
        self.fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(names: &[&str]) -> Values {
        names.iter().map(|n| (n.to_string(), 1.0)).collect()
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
        let (next, added) = d.discover(&cfg, &found).unwrap();
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
            d.discover(&next, &found).is_none(),
            "nothing new the second time"
        );
        assert!(d.known(&cfg, "power_total_watts") && !d.known(&cfg, "power_nothing"));
    }

    #[test]
    fn an_existing_install_adds_discoveries_as_false() {
        let mut d = Discovery::new(false);
        let (next, _) = d
            .discover(&Config::default(), &values(&["jetson_ram_used_mb"]))
            .unwrap();
        assert!(!next.metrics["jetson_ram_used_mb"]);
    }
}
