//! Thermal zones: `/sys/devices/virtual/thermal/thermal_zone*/{type,temp}`.
//!
//! `temp` is in millidegrees Celsius. `-256000` (tegrastats' `-256C`) means the sensor is
//! offline, typically a power-gated block; it and anything below is dropped. Real negative
//! readings above it are kept.

use super::fs::{self, Root};

/// Where the zones are.
pub const ZONES: &str = "/sys/devices/virtual/thermal";

/// Readings at or below this (m°C) are "sensor offline", not a temperature.
pub const OFFLINE_MILLIDEGREES: i64 = -256_000;

/// One readable zone.
#[derive(Clone, Debug, PartialEq)]
pub struct Zone {
    /// The `N` of `thermal_zoneN`.
    pub index: u32,
    /// The `type` file as written (`cpu-thermal`, `CPU-therm`, `tboard_tegra`).
    pub kind: String,
    /// Degrees Celsius.
    pub celsius: f64,
}

/// `temp` text → °C; `None` for malformed text and the offline value.
pub fn parse_temp(text: &str) -> Option<f64> {
    let milli = fs::parse_int(text)?;
    (milli > OFFLINE_MILLIDEGREES).then(|| milli as f64 / 1000.0)
}

/// Every zone with a type and a live temperature, in zone order. A zone whose `temp` is
/// malformed is counted and left out; an offline one is left out without a count.
pub fn zones(root: &Root) -> Vec<Zone> {
    let mut out = Vec::new();
    for (name, dir) in fs::entries(&root.join(ZONES), "thermal_zone") {
        let Some(index) = fs::index_after(&name, "thermal_zone") else {
            continue;
        };
        let Some(kind) = fs::text(&dir.join("type")) else {
            continue;
        };
        let Some(milli) = fs::int(&dir.join("temp")) else {
            continue;
        };
        if milli > OFFLINE_MILLIDEGREES {
            out.push(Zone {
                index,
                kind,
                celsius: milli as f64 / 1000.0,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::fs::testing::Tree;

    #[test]
    fn offline_is_dropped_and_cold_is_kept() {
        assert_eq!(parse_temp("45500"), Some(45.5));
        assert_eq!(parse_temp("-12500"), Some(-12.5));
        assert_eq!(parse_temp("-256000"), None);
        assert_eq!(parse_temp("-300000"), None);
        assert_eq!(parse_temp("hot"), None);
    }

    #[test]
    fn zones_are_read_in_order_and_bad_ones_left_out() {
        let t = Tree::new("thermal");
        let z = "sys/devices/virtual/thermal";
        t.put(&format!("{z}/thermal_zone0/type"), "cpu-thermal\n")
            .put(&format!("{z}/thermal_zone0/temp"), "47250\n")
            .put(&format!("{z}/thermal_zone1/type"), "cv0-thermal\n")
            .put(&format!("{z}/thermal_zone1/temp"), "-256000\n")
            .put(&format!("{z}/thermal_zone2/type"), "gpu-thermal\n")
            .put(&format!("{z}/thermal_zone2/temp"), "warm\n")
            .put(&format!("{z}/thermal_zone10/type"), "tj-thermal\n")
            .put(&format!("{z}/thermal_zone10/temp"), "48000\n")
            .put(&format!("{z}/cooling_device0/type"), "pwm-fan\n");
        let before = fs::read_errors();
        let zones = zones(&t.root());
        assert!(fs::read_errors() > before, "the malformed temp is counted");
        let got: Vec<_> = zones
            .iter()
            .map(|z| (z.index, z.kind.as_str(), z.celsius))
            .collect();
        assert_eq!(got, [(0, "cpu-thermal", 47.25), (10, "tj-thermal", 48.0)]);
    }
}
