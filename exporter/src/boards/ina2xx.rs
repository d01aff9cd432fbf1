//! INA2xx power monitors through the Linux `ina2xx` and `ina238` hwmon drivers (Raspberry Pi
//! with `dtoverlay=i2c-sensor,ina219` and the like).
//!
//! Units (Documentation/hwmon/ina2xx.rst): `in1_input` bus voltage mV, `curr1_input` mA,
//! `power1_input` µW (`in0_input`, the shunt voltage, is not a supply reading and is not read).
//! The sensor's name is the chip's `label` (hwmon's `label` attribute, from the device tree's
//! `label` property) when it has one, else the driver's name; chips sharing a name get `_2`,
//! `_3`, ... in hwmon order.

use super::PowerSensor;
use crate::boards::rapl::metric_part;
use crate::sysfs::fs::{self, Root};
use crate::sysfs::hwmon::{self, Kind};

/// hwmon `name`s of the single-channel INA chips the two drivers serve.
pub const CHIPS: &[&str] = &[
    "ina209", "ina219", "ina220", "ina226", "ina230", "ina231", "ina234", "ina237", "ina238",
    "ina260",
];

/// Every INA2xx chip under `/sys/class/hwmon`, in hwmon order.
pub fn sensors(root: &Root) -> Vec<PowerSensor> {
    let mut out: Vec<PowerSensor> = Vec::new();
    for chip in hwmon::chips(root) {
        if !CHIPS.contains(&chip.name.as_str()) {
            continue;
        }
        let label = fs::text(&chip.path.join("label"))
            .map(|l| metric_part(&l))
            .filter(|l| !l.is_empty());
        let base = label.unwrap_or_else(|| metric_part(&chip.name));
        let mut name = base.clone();
        let mut n = 1;
        while out.iter().any(|s| s.name == name) {
            n += 1;
            name = format!("{base}_{n}");
        }
        let value = |kind| chip.sensor(kind, 1).map(hwmon::Sensor::value);
        out.push(PowerSensor {
            name,
            volts: value(Kind::In),
            amps: value(Kind::Curr),
            watts: value(Kind::Power),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::fs::testing::Tree;

    #[test]
    fn chips_are_read_in_si_units_and_named_by_label() {
        let t = Tree::new("ina");
        let h = "sys/class/hwmon";
        t.put(&format!("{h}/hwmon0/name"), "cpu_thermal\n")
            .put(&format!("{h}/hwmon0/temp1_input"), "45000\n")
            .put(&format!("{h}/hwmon1/name"), "ina219\n")
            .put(&format!("{h}/hwmon1/label"), "5V Rail\n")
            .put(&format!("{h}/hwmon1/in0_input"), "12\n")
            .put(&format!("{h}/hwmon1/in1_input"), "5088\n")
            .put(&format!("{h}/hwmon1/curr1_input"), "612\n")
            .put(&format!("{h}/hwmon1/power1_input"), "3114000\n")
            .put(&format!("{h}/hwmon2/name"), "ina260\n")
            .put(&format!("{h}/hwmon2/in1_input"), "12010\n")
            .put(&format!("{h}/hwmon2/power1_input"), "1500000\n")
            .put(&format!("{h}/hwmon3/name"), "ina260\n")
            .put(&format!("{h}/hwmon3/curr1_input"), "-15\n");
        let s = sensors(&t.root());
        assert_eq!(
            s,
            [
                PowerSensor {
                    name: "5v_rail".into(),
                    volts: Some(5.088),
                    amps: Some(0.612),
                    watts: Some(3.114),
                },
                PowerSensor {
                    name: "ina260".into(),
                    volts: Some(12.01),
                    amps: None,
                    watts: Some(1.5),
                },
                PowerSensor {
                    name: "ina260_2".into(),
                    volts: None,
                    amps: Some(-0.015),
                    watts: None,
                },
            ]
        );
    }
}
