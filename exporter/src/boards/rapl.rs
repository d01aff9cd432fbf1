//! Intel RAPL energy counters: `/sys/class/powercap/intel-rapl:N[:M]/{name,energy_uj,
//! max_energy_range_uj}`.
//!
//! `energy_uj` counts microjoules since some point before boot and wraps to 0 after
//! `max_energy_range_uj` (about 262 kJ on many parts: hours at package power). The change
//! between two reads is therefore taken modulo the range ([`delta_uj`]), as PAPI's RAPL
//! component does. The counters this module keeps start at 0 J with the process.
//!
//! Since CVE-2020-8694 (Intel SA-00389) `energy_uj` is mode 0400, root only: a zone whose file
//! cannot be read is left out, counted like every unreadable file
//! ([`crate::sysfs::fs::read_errors`]), and said once at WARN with what to do; the zones
//! that can be read, and everything else the board gives, are still exposed.
//!
//! Zone names: a package zone by its `name` (`package-0` → `package_0`, `psys`); a sub-zone
//! by its parent's name and its own (`intel-rapl:0:0` `core` → `package_0_core`), so two
//! packages' `core` zones do not collide.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use tracing::warn;

use crate::sysfs::fs::{self, Probe, Root};

/// Where the zones are.
pub const CLASS: &str = "/sys/class/powercap";

/// The energy consumed between a read of `before` and one of `now` µJ, on a counter that
/// wraps to 0 after `max_range` µJ: `now - before`, or across the wrap `max_range - before +
/// now`. `None` when the values cannot come from such a counter (a value above the range, or
/// no range), so the caller restarts from `now`.
pub fn delta_uj(before: u64, now: u64, max_range: u64) -> Option<u64> {
    if max_range == 0 || before > max_range || now > max_range {
        return None;
    }
    if now >= before {
        Some(now - before)
    } else {
        Some(max_range - before + now)
    }
}

/// One zone's files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneDir {
    /// The directory name (`intel-rapl:0:1`).
    pub id: String,
    /// The metric part of the name (`package_0_core`).
    pub name: String,
    /// The directory.
    pub dir: PathBuf,
}

/// A name fit for a metric name: lower case, runs of anything but `[a-z0-9]` as one `_`,
/// none at either end.
pub fn metric_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_owned()
}

/// The zones under `/sys/class/powercap`, packages before their sub-zones. A zone without a
/// readable `name` is named by its id (`intel_rapl_0_1`).
pub fn zones(root: &Root) -> Vec<ZoneDir> {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    let mut entries = fs::entries(&root.join(CLASS), "intel-rapl:");
    // `intel-rapl:0`, `intel-rapl:0:0`, `intel-rapl:0:1`, `intel-rapl:1`: a package before its
    // sub-zones, numbers compared as numbers.
    let key = |id: &str| -> Vec<u32> {
        id.split(':')
            .skip(1)
            .map(|n| n.parse().unwrap_or(u32::MAX))
            .collect()
    };
    entries.sort_by_cached_key(|(id, _)| key(id));
    for (id, dir) in entries {
        let own = fs::text(&dir.join("name"))
            .map(|n| metric_part(&n))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| metric_part(&id));
        let name = match id.rsplit_once(':') {
            // `intel-rapl:0:1` has the parent `intel-rapl:0`.
            Some((parent, _)) if parent.contains(':') => match names.get(parent) {
                Some(p) => format!("{p}_{own}"),
                None => format!("{}_{own}", metric_part(parent)),
            },
            _ => own,
        };
        names.insert(id.clone(), name.clone());
        out.push(ZoneDir { id, name, dir });
    }
    out
}

/// One zone's reading.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneReading {
    /// The metric part of its name.
    pub name: String,
    /// Joules since the exporter first read it.
    pub joules: f64,
    /// Average power since the previous read, W (absent at the first read).
    pub watts: Option<f64>,
}

#[derive(Debug)]
struct Counter {
    last_uj: u64,
    last_at: Instant,
    joules: f64,
}

/// The energy counters of every zone, kept between reads.
#[derive(Debug, Default)]
pub struct Rapl {
    counters: BTreeMap<String, Counter>,
    told_denied: bool,
}

impl Rapl {
    /// Counters at 0 J.
    pub fn new() -> Rapl {
        Rapl::default()
    }

    /// Reads every zone at `at`: each readable zone's joules since the first read and its
    /// average power since the previous one.
    pub fn read(&mut self, root: &Root, at: Instant) -> Vec<ZoneReading> {
        let mut out = Vec::new();
        let mut denied = Vec::new();
        for zone in zones(root) {
            let path = zone.dir.join("energy_uj");
            let now = match fs::probe(&path) {
                Probe::Text(text) => match fs::parse_int(&text).and_then(|v| u64::try_from(v).ok())
                {
                    Some(v) => v,
                    None => {
                        fs::count_error(&path, &format!("not a count: {:?}", fs::excerpt(&text)));
                        continue;
                    }
                },
                Probe::Missing => continue,
                Probe::Denied => {
                    fs::count_error(&path, "permission denied");
                    denied.push(zone.id);
                    continue;
                }
                Probe::Failed(reason) => {
                    fs::count_error(&path, &reason);
                    continue;
                }
            };
            let range = fs::int(&zone.dir.join("max_energy_range_uj"))
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(0);
            out.push(self.update(&zone.name, now, range, at));
        }
        if !denied.is_empty() && !self.told_denied {
            self.told_denied = true;
            warn!(
                zones = %denied.join(", "),
                "Intel RAPL energy_uj is readable by root only (CVE-2020-8694); these zones are \
                 left out. Run the exporter as root (runAsUser: 0 in Kubernetes) to export them; \
                 everything else is exported."
            );
        }
        out
    }

    /// Takes the zone's counter from `now` µJ (range `range`) read at `at`.
    fn update(&mut self, name: &str, now: u64, range: u64, at: Instant) -> ZoneReading {
        let Some(c) = self.counters.get_mut(name) else {
            self.counters.insert(
                name.to_owned(),
                Counter {
                    last_uj: now,
                    last_at: at,
                    joules: 0.0,
                },
            );
            return ZoneReading {
                name: name.to_owned(),
                joules: 0.0,
                watts: None,
            };
        };
        let mut watts = None;
        if let Some(delta) = delta_uj(c.last_uj, now, range) {
            let joules = delta as f64 / 1e6;
            c.joules += joules;
            let secs = at.saturating_duration_since(c.last_at).as_secs_f64();
            if secs > 0.0 {
                watts = Some(joules / secs);
            }
        }
        c.last_uj = now;
        c.last_at = at;
        ZoneReading {
            name: name.to_owned(),
            joules: c.joules,
            watts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::fs::testing::Tree;
    use std::time::Duration;

    const RANGE: u64 = 262_143_328_850;

    #[test]
    fn deltas_wrap_around_at_the_range() {
        assert_eq!(delta_uj(1_000, 5_000, RANGE), Some(4_000));
        assert_eq!(delta_uj(5_000, 5_000, RANGE), Some(0));
        // 1 000 µJ before the end of the range, then 2 000 µJ after the wrap: 3 000 µJ.
        assert_eq!(delta_uj(RANGE - 1_000, 2_000, RANGE), Some(3_000));
        assert_eq!(delta_uj(RANGE, 0, RANGE), Some(0));
        assert_eq!(delta_uj(RANGE - 1, RANGE, RANGE), Some(1));
        // Values no such counter gives.
        assert_eq!(delta_uj(RANGE + 1, 5, RANGE), None);
        assert_eq!(delta_uj(1, RANGE + 1, RANGE), None);
        assert_eq!(delta_uj(1, 2, 0), None);
    }

    #[test]
    fn zone_names_put_sub_zones_under_their_package() {
        let t = Tree::new("rapl-names");
        let p = "sys/class/powercap";
        t.put(&format!("{p}/intel-rapl/enabled"), "1")
            .put(&format!("{p}/intel-rapl:0/name"), "package-0\n")
            .put(&format!("{p}/intel-rapl:0:0/name"), "core\n")
            .put(&format!("{p}/intel-rapl:0:1/name"), "uncore\n")
            .put(&format!("{p}/intel-rapl:1/name"), "psys\n")
            .put(&format!("{p}/intel-rapl:2/energy_uj"), "1\n");
        let names: Vec<_> = zones(&t.root()).into_iter().map(|z| z.name).collect();
        assert_eq!(
            names,
            [
                "package_0",
                "package_0_core",
                "package_0_uncore",
                "psys",
                "intel_rapl_2"
            ]
        );
    }

    fn put_zone(t: &Tree, id: &str, name: &str, uj: u64) {
        let d = format!("sys/class/powercap/{id}");
        t.put(&format!("{d}/name"), &format!("{name}\n"))
            .put(&format!("{d}/energy_uj"), &format!("{uj}\n"))
            .put(&format!("{d}/max_energy_range_uj"), &format!("{RANGE}\n"));
    }

    #[test]
    fn counters_start_at_zero_and_follow_the_hardware_across_a_wrap() {
        let t = Tree::new("rapl-wrap");
        let base = Instant::now();
        let mut rapl = Rapl::new();
        put_zone(&t, "intel-rapl:0", "package-0", RANGE - 3_000_000);
        let first = rapl.read(&t.root(), base);
        assert_eq!(
            first,
            [ZoneReading {
                name: "package_0".into(),
                joules: 0.0,
                watts: None
            }]
        );
        // 2 s later: 3 J to the end of the range and 7 J after the wrap = 10 J, 5 W.
        put_zone(&t, "intel-rapl:0", "package-0", 7_000_000);
        let second = rapl.read(&t.root(), base + Duration::from_secs(2));
        assert!((second[0].joules - 10.0).abs() < 1e-9, "{second:?}");
        assert!((second[0].watts.unwrap() - 5.0).abs() < 1e-9);
        // 1 s later, 1.5 J more.
        put_zone(&t, "intel-rapl:0", "package-0", 8_500_000);
        let third = rapl.read(&t.root(), base + Duration::from_secs(3));
        assert!((third[0].joules - 11.5).abs() < 1e-9);
        assert!((third[0].watts.unwrap() - 1.5).abs() < 1e-9);
        // A value outside the range restarts from it without adding anything.
        put_zone(&t, "intel-rapl:0", "package-0", RANGE + 5);
        let odd = rapl.read(&t.root(), base + Duration::from_secs(4));
        assert!((odd[0].joules - 11.5).abs() < 1e-9);
        assert_eq!(odd[0].watts, None);
    }

    #[test]
    fn an_unreadable_zone_is_left_out_and_the_rest_is_kept() {
        use std::os::unix::fs::PermissionsExt as _;
        let t = Tree::new("rapl-denied");
        put_zone(&t, "intel-rapl:0", "package-0", 1_000);
        put_zone(&t, "intel-rapl:1", "psys", 2_000);
        let locked = t.path().join("sys/class/powercap/intel-rapl:0/energy_uj");
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        // Root reads any file: then the zone is readable and that is what the test sees.
        let denied = std::fs::read(&locked).is_err();
        let before = fs::read_errors();
        let mut rapl = Rapl::new();
        let got: Vec<_> = rapl
            .read(&t.root(), Instant::now())
            .into_iter()
            .map(|z| z.name)
            .collect();
        if denied {
            assert_eq!(got, ["psys"]);
            assert!(fs::read_errors() > before);
            assert!(rapl.told_denied);
        } else {
            assert_eq!(got, ["package_0", "psys"]);
        }
    }

    #[test]
    fn metric_parts_are_metric_name_safe() {
        assert_eq!(metric_part("package-0"), "package_0");
        assert_eq!(metric_part("  DRAM "), "dram");
        assert_eq!(metric_part("INT3400 Thermal"), "int3400_thermal");
        assert_eq!(metric_part("--"), "");
    }
}
