//! Raspberry Pi (`RaspberryPiCollector`): INA2xx power monitors as
//! `rpi_power_{sensor}_{watts,volts,amps}` and the energy counter
//! `rpi_power_{sensor}_joules_total` (power integrated over the readings).

use std::time::{Duration, Instant};

use crate::boards::Reading;
use crate::collector::Values;
use crate::energy::EnergyMeter;

pub(super) fn values(reading: &Reading, out: &mut Values) {
    for s in &reading.power {
        let name = &s.name;
        for (unit, v) in [("watts", s.watts), ("volts", s.volts), ("amps", s.amps)] {
            if let Some(v) = v.filter(|v| v.is_finite()) {
                out.insert(format!("rpi_power_{name}_{unit}"), v);
            }
        }
    }
}

/// Integrates each sensor's power into `energy` and puts the counters into `out`.
pub(super) fn energy(
    energy: &EnergyMeter,
    reading: &Reading,
    at: Instant,
    max_gap: Duration,
    out: &mut Values,
) {
    let readings = reading.power.iter().filter_map(|s| {
        s.watts
            .map(|w| (format!("rpi_power_{}_joules_total", s.name), w))
    });
    energy.integrate(at, max_gap, readings, out);
}

pub(super) fn default_enabled(rest: &str) -> bool {
    rest.starts_with("power_") && (rest.ends_with("_watts") || rest.ends_with("_joules_total"))
}

pub(super) fn help_text(rest: &str) -> Option<String> {
    let sensor = rest.strip_prefix("power_")?;
    let (name, text) = if let Some(n) = sensor.strip_suffix("_joules_total") {
        (
            n,
            "energy in joules since the exporter started (power integrated over the readings)",
        )
    } else if let Some(n) = sensor.strip_suffix("_watts") {
        (n, "power in watts (hwmon power1_input)")
    } else if let Some(n) = sensor.strip_suffix("_volts") {
        (n, "bus voltage in volts (hwmon in1_input)")
    } else if let Some(n) = sensor.strip_suffix("_amps") {
        (n, "current in amperes (hwmon curr1_input)")
    } else {
        return None;
    };
    Some(format!("INA2xx power monitor {name}: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boards::PowerSensor;
    use std::time::Duration;

    #[test]
    fn sensors_give_power_voltage_current_and_energy() {
        let mut reading = Reading {
            power: vec![PowerSensor {
                name: "ina219".into(),
                volts: Some(5.1),
                amps: Some(0.6),
                watts: Some(3.0),
            }],
            ..Reading::default()
        };
        let mut out = Values::new();
        values(&reading, &mut out);
        assert_eq!(out["rpi_power_ina219_watts"], 3.0);
        assert_eq!(out["rpi_power_ina219_volts"], 5.1);
        assert_eq!(out["rpi_power_ina219_amps"], 0.6);
        let meter = EnergyMeter::new();
        let base = Instant::now();
        let gap = Duration::from_secs(3);
        energy(&meter, &reading, base, gap, &mut out);
        assert_eq!(out["rpi_power_ina219_joules_total"], 0.0);
        reading.power[0].watts = Some(5.0);
        energy(
            &meter,
            &reading,
            base + Duration::from_secs(2),
            gap,
            &mut out,
        );
        // (3 + 5)/2 W · 2 s = 8 J.
        assert!((out["rpi_power_ina219_joules_total"] - 8.0).abs() < 1e-9);
        assert!(default_enabled("power_ina219_joules_total"));
        assert!(!default_enabled("power_ina219_volts"));
    }
}
