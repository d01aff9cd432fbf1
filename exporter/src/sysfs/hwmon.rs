//! hwmon chips: `/sys/class/hwmon/hwmon*` and the same directories reached through a driver
//! (`/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*`).
//!
//! A chip is a directory with a `name` file and sensor files `<kind><N>_<item>`. Units are the
//! kernel's (Documentation/hwmon/sysfs-interface): `in` mV, `curr` mA, `power` µW, `temp` m°C,
//! `fan` RPM, `pwm` 0–255. [`Sensor::value`] converts to volts, amperes, watts, °C, RPM and a
//! 0–1 duty cycle. The hwmon number changes between boots: find chips by glob and `name`.

use std::path::{Path, PathBuf};

use super::fs::{self, Root};

/// Where every chip shows up.
pub const CLASS: &str = "/sys/class/hwmon";

/// What a sensor measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `in*`: voltage, mV.
    In,
    /// `curr*`: current, mA.
    Curr,
    /// `power*`: power, µW.
    Power,
    /// `temp*`: temperature, m°C.
    Temp,
    /// `fan*`: fan speed, RPM.
    Fan,
    /// `pwm*`: fan duty cycle, 0–255 (no `_input` suffix).
    Pwm,
}

impl Kind {
    const ALL: [(Kind, &'static str); 6] = [
        (Kind::Curr, "curr"),
        (Kind::Power, "power"),
        (Kind::Temp, "temp"),
        (Kind::Fan, "fan"),
        (Kind::Pwm, "pwm"),
        (Kind::In, "in"),
    ];

    /// The file-name prefix (`curr`).
    pub fn prefix(self) -> &'static str {
        Kind::ALL
            .iter()
            .find(|(k, _)| *k == self)
            .map(|(_, p)| *p)
            .unwrap_or("")
    }

    /// Raw file value → SI unit (V, A, W, °C, RPM, 0–1).
    pub fn scale(self, raw: i64) -> f64 {
        let raw = raw as f64;
        match self {
            Kind::In | Kind::Curr | Kind::Temp => raw / 1e3,
            Kind::Power => raw / 1e6,
            Kind::Fan => raw,
            Kind::Pwm => raw / 255.0,
        }
    }
}

/// Splits a sensor file name: `curr2_input` → (Curr, 2, "input"); `pwm1` → (Pwm, 1, "").
pub fn parse_file_name(name: &str) -> Option<(Kind, u32, &str)> {
    let (kind, rest) = Kind::ALL
        .iter()
        .find_map(|(k, p)| name.strip_prefix(p).map(|rest| (*k, rest)))?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 4 {
        return None;
    }
    let index = rest[..digits].parse().ok()?;
    let item = &rest[digits..];
    let item = match item.strip_prefix('_') {
        Some(i) => i,
        None if item.is_empty() => "",
        None => return None,
    };
    Some((kind, index, item))
}

/// One sensor: its reading and label.
#[derive(Clone, Debug, PartialEq)]
pub struct Sensor {
    /// What it measures.
    pub kind: Kind,
    /// The `N` of `<kind>N_input`.
    pub index: u32,
    /// `<kind>N_label`, when the driver names it (INA3221: the rail, `NC` for unconnected).
    pub label: Option<String>,
    /// The raw `_input` (or `pwmN`) value in the kernel's unit.
    pub raw: i64,
}

impl Sensor {
    /// The value in SI units (see [`Kind::scale`]).
    pub fn value(&self) -> f64 {
        self.kind.scale(self.raw)
    }
}

/// A chip and its readable sensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Chip {
    /// The directory it was read from.
    pub path: PathBuf,
    /// The `name` file (`ina3221`, `ina238`, `pwmfan`), empty when absent.
    pub name: String,
    /// Sensors with a readable value, ordered by kind then index.
    pub sensors: Vec<Sensor>,
}

impl Chip {
    /// The sensor `kind` number `index`.
    pub fn sensor(&self, kind: Kind, index: u32) -> Option<&Sensor> {
        self.sensors
            .iter()
            .find(|s| s.kind == kind && s.index == index)
    }

    /// Sensors of one kind.
    pub fn of(&self, kind: Kind) -> impl Iterator<Item = &Sensor> {
        self.sensors.iter().filter(move |s| s.kind == kind)
    }
}

/// Reads the chip in `dir`: its name and every `<kind>N_input` (and `pwmN`) with its label.
/// A value that cannot be read or parsed is counted and left out.
pub fn read_chip(dir: &Path) -> Chip {
    let name = fs::text(&dir.join("name")).unwrap_or_default();
    let mut sensors = Vec::new();
    for (file, path) in fs::entries(dir, "") {
        let Some((kind, index, item)) = parse_file_name(&file) else {
            continue;
        };
        let is_value = match kind {
            Kind::Pwm => item.is_empty(),
            _ => item == "input",
        };
        if !is_value {
            continue;
        }
        let Some(raw) = fs::int(&path) else {
            continue;
        };
        let label = fs::text(&dir.join(format!("{}{index}_label", kind.prefix())));
        sensors.push(Sensor {
            kind,
            index,
            label,
            raw,
        });
    }
    sensors.sort_by_key(|s| (s.kind, s.index));
    Chip {
        path: dir.to_path_buf(),
        name,
        sensors,
    }
}

/// Every chip under `/sys/class/hwmon`.
pub fn chips(root: &Root) -> Vec<Chip> {
    fs::entries(&root.join(CLASS), "hwmon")
        .into_iter()
        .map(|(_, dir)| read_chip(&dir))
        .collect()
}

/// The chips matched by a [`fs::glob`] pattern (a driver's own view, e.g.
/// `sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*`).
pub fn chips_at(root: &Root, pattern: &str) -> Vec<Chip> {
    fs::glob(root, pattern)
        .into_iter()
        .map(|dir| read_chip(&dir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::fs::testing::Tree;

    #[test]
    fn file_names_split_into_kind_index_and_item() {
        assert_eq!(
            parse_file_name("curr2_input"),
            Some((Kind::Curr, 2, "input"))
        );
        assert_eq!(parse_file_name("in7_input"), Some((Kind::In, 7, "input")));
        assert_eq!(parse_file_name("in1_label"), Some((Kind::In, 1, "label")));
        assert_eq!(parse_file_name("pwm1"), Some((Kind::Pwm, 1, "")));
        assert_eq!(
            parse_file_name("pwm1_enable"),
            Some((Kind::Pwm, 1, "enable"))
        );
        assert_eq!(
            parse_file_name("power1_input"),
            Some((Kind::Power, 1, "input"))
        );
        for other in [
            "name", "uevent", "input", "in_input", "temp", "fanx1", "in1x",
        ] {
            assert_eq!(parse_file_name(other), None, "{other}");
        }
    }

    #[test]
    fn units_are_converted_to_si() {
        assert_eq!(Kind::In.scale(5072), 5.072);
        assert_eq!(Kind::Curr.scale(-78), -0.078);
        assert_eq!(Kind::Power.scale(4_250_000), 4.25);
        assert_eq!(Kind::Temp.scale(41500), 41.5);
        assert_eq!(Kind::Fan.scale(2100), 2100.0);
        assert_eq!(Kind::Pwm.scale(255), 1.0);
    }

    #[test]
    fn a_chip_reads_inputs_labels_and_skips_the_rest() {
        let t = Tree::new("hwmon");
        let d = "sys/class/hwmon/hwmon3";
        t.put(&format!("{d}/name"), "ina3221\n")
            .put(&format!("{d}/in1_label"), "VDD_IN\n")
            .put(&format!("{d}/in1_input"), "5072\n")
            .put(&format!("{d}/curr1_input"), "1328\n")
            .put(&format!("{d}/curr1_max"), "5000\n")
            .put(&format!("{d}/in2_input"), "n/a\n")
            .put(&format!("{d}/pwm1"), "128\n");
        let before = fs::read_errors();
        let chips = chips(&t.root());
        assert!(fs::read_errors() > before);
        let [chip] = chips.as_slice() else {
            panic!("{chips:?}")
        };
        assert_eq!(chip.name, "ina3221");
        let v = chip.sensor(Kind::In, 1).unwrap();
        assert_eq!((v.label.as_deref(), v.raw), (Some("VDD_IN"), 5072));
        assert_eq!(chip.sensor(Kind::Curr, 1).unwrap().value(), 1.328);
        assert!(chip.sensor(Kind::In, 2).is_none());
        assert_eq!(chip.of(Kind::Pwm).count(), 1);
        assert_eq!(chip.sensors.len(), 3, "{:?}", chip.sensors);
        assert_eq!(chips_at(&t.root(), "sys/class/hwmon/hwmon*").len(), 1);
    }
}
