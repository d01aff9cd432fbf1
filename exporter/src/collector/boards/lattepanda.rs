//! x86 boards with Intel RAPL (`LattePandaCollector`): each zone's energy counter
//! `lattepanda_rapl_{zone}_joules_total` (the hardware's own counter, wrap-around handled, from
//! 0 J at start) and its average power over the last interval `lattepanda_rapl_{zone}_watts`.

use crate::boards::Reading;
use crate::collector::Values;

pub(super) fn values(reading: &Reading, out: &mut Values) {
    for z in &reading.rapl {
        let zone = &z.name;
        if z.joules.is_finite() {
            out.insert(format!("lattepanda_rapl_{zone}_joules_total"), z.joules);
        }
        if let Some(w) = z.watts.filter(|w| w.is_finite()) {
            out.insert(format!("lattepanda_rapl_{zone}_watts"), w);
        }
    }
}

pub(super) fn default_enabled(rest: &str) -> bool {
    rest.starts_with("rapl_") && (rest.ends_with("_watts") || rest.ends_with("_joules_total"))
}

pub(super) fn help_text(rest: &str) -> Option<String> {
    let zone = rest.strip_prefix("rapl_")?;
    if let Some(z) = zone.strip_suffix("_joules_total") {
        return Some(format!(
            "Intel RAPL zone {z}: energy in joules since the exporter started (energy_uj, \
             wrap-around at max_energy_range_uj handled)"
        ));
    }
    zone.strip_suffix("_watts").map(|z| {
        format!("Intel RAPL zone {z}: average power in watts over the last reading interval")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boards::rapl::ZoneReading;

    #[test]
    fn zones_give_energy_and_power() {
        let reading = Reading {
            rapl: vec![
                ZoneReading {
                    name: "package_0".into(),
                    joules: 12.5,
                    watts: Some(6.25),
                },
                ZoneReading {
                    name: "psys".into(),
                    joules: 0.0,
                    watts: None,
                },
            ],
            ..Reading::default()
        };
        let mut out = Values::new();
        values(&reading, &mut out);
        assert_eq!(out["lattepanda_rapl_package_0_joules_total"], 12.5);
        assert_eq!(out["lattepanda_rapl_package_0_watts"], 6.25);
        assert_eq!(out["lattepanda_rapl_psys_joules_total"], 0.0);
        assert!(!out.contains_key("lattepanda_rapl_psys_watts"));
        assert!(help_text("rapl_psys_watts").is_some());
    }
}
