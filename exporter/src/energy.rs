//! Energy counters: power readings integrated into joules.
//!
//! A power sensor reports watts at the moments it is read; Prometheus wants a counter it can
//! `increase()` over any range without sampling error. [`Integrator`] turns the readings of one
//! sensor into such a counter, and [`EnergyMeter`] keeps one per metric name for the life of
//! the process (it is owned by the pipeline, so a reload that rebuilds the collectors keeps the
//! counters; a restart starts them from zero, as Prometheus expects of a counter).
//!
//! Rules (docs/METRICS.md, "Energy counters"):
//! - the trapezoid rule over the readings' own times (when the line was read, not when the
//!   cycle ran), so a late cycle does not change the result;
//! - a gap longer than three intervals (the staleness limit) is not bridged: the counter stays
//!   where it was and integration restarts at the next reading, because nothing is known about
//!   the power in between;
//! - a negative reading (Thor's `VDD_GPU` at idle reads -392 mW: a sensor offset, exposed as
//!   read by the watts gauge) counts as zero power here, because a counter must never go down:
//!   Prometheus would take the decrease for a restart;
//! - the first reading of a sensor only sets the starting point: the counter starts at 0 J.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most sensors one meter integrates; names beyond it are not integrated (collector names are
/// bounded by the name gate and discovery long before this).
pub const MAX_SENSORS: usize = 256;

/// One sensor's energy counter.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Integrator {
    joules: f64,
    last: Option<(Instant, f64)>,
}

impl Integrator {
    /// A counter at 0 J with no reading yet.
    pub fn new() -> Integrator {
        Integrator::default()
    }

    /// Adds the reading `watts` taken at `at`. The segment from the previous reading is added
    /// by the trapezoid rule unless it is longer than `max_gap` (then it is skipped). A reading
    /// at the same time as the previous one (the same sample seen twice) or before it changes
    /// nothing; a value that is not finite is ignored.
    pub fn add(&mut self, at: Instant, watts: f64, max_gap: Duration) {
        if !watts.is_finite() {
            return;
        }
        let watts = watts.max(0.0);
        if let Some((prev_at, prev_watts)) = self.last {
            if at <= prev_at {
                return;
            }
            let dt = at - prev_at;
            if dt <= max_gap {
                self.joules += (prev_watts + watts) / 2.0 * dt.as_secs_f64();
            }
        }
        self.last = Some((at, watts));
    }

    /// Joules so far.
    pub fn joules(&self) -> f64 {
        self.joules
    }
}

/// The counter name of a power metric: `…_watts` → `…_joules_total`, `None` for other names.
pub fn joules_name(watts_name: &str) -> Option<String> {
    watts_name
        .strip_suffix("_watts")
        .map(|stem| format!("{stem}_joules_total"))
}

/// Energy counters by metric name, shared by the collectors of one exporter process.
#[derive(Debug, Default)]
pub struct EnergyMeter {
    sensors: Mutex<BTreeMap<String, Integrator>>,
}

impl EnergyMeter {
    /// A meter with no counters.
    pub fn new() -> EnergyMeter {
        EnergyMeter::default()
    }

    /// Integrates `readings` (counter name, watts), all taken at `at`, and puts each counter's
    /// total into `out` under its name. A sensor seen for the first time shows 0 J.
    pub fn integrate(
        &self,
        at: Instant,
        max_gap: Duration,
        readings: impl IntoIterator<Item = (String, f64)>,
        out: &mut BTreeMap<String, f64>,
    ) {
        let mut sensors = self.sensors.lock().unwrap_or_else(|p| p.into_inner());
        for (name, watts) in readings {
            let full = sensors.len() >= MAX_SENSORS;
            let integrator = match sensors.get_mut(&name) {
                Some(i) => i,
                None if full => continue,
                None => sensors.entry(name.clone()).or_default(),
            };
            integrator.add(at, watts, max_gap);
            out.insert(name, integrator.joules());
        }
    }

    /// The counter of `name`, if it has one.
    pub fn joules(&self, name: &str) -> Option<f64> {
        let sensors = self.sensors.lock().unwrap_or_else(|p| p.into_inner());
        sensors.get(name).map(Integrator::joules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: Duration = Duration::from_secs(3);

    /// Feeds (seconds after a base instant, watts) and returns the joules.
    fn integrate(readings: &[(f64, f64)]) -> f64 {
        let base = Instant::now();
        let mut i = Integrator::new();
        for (t, w) in readings {
            i.add(base + Duration::from_secs_f64(*t), *w, GAP);
        }
        i.joules()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn a_constant_power_gives_power_times_time() {
        let readings: Vec<(f64, f64)> = (0..=10).map(|t| (f64::from(t), 5.0)).collect();
        assert!(close(integrate(&readings), 50.0));
    }

    #[test]
    fn a_ramp_is_integrated_exactly_by_the_trapezoid_rule() {
        // P(t) = 2t W for 0..4 s: ∫ = t² = 16 J, whatever the (uneven) reading times.
        let readings = [(0.0, 0.0), (0.5, 1.0), (2.0, 4.0), (2.25, 4.5), (4.0, 8.0)];
        assert!(
            close(integrate(&readings), 16.0),
            "{}",
            integrate(&readings)
        );
    }

    #[test]
    fn the_first_reading_starts_at_zero() {
        assert_eq!(integrate(&[(0.0, 100.0)]), 0.0);
        assert_eq!(integrate(&[]), 0.0);
    }

    #[test]
    fn a_gap_longer_than_the_limit_is_not_bridged() {
        // 0..2 s at 10 W = 20 J; a 5 s hole (limit 3 s); then 7..9 s at 10 W = 20 J.
        let readings = [
            (0.0, 10.0),
            (1.0, 10.0),
            (2.0, 10.0),
            (7.0, 10.0),
            (8.0, 10.0),
            (9.0, 10.0),
        ];
        assert!(close(integrate(&readings), 40.0));
        // Exactly at the limit is still bridged.
        assert!(close(integrate(&[(0.0, 2.0), (3.0, 2.0)]), 6.0));
    }

    #[test]
    fn repeated_and_backwards_readings_change_nothing() {
        let base = Instant::now();
        let mut i = Integrator::new();
        i.add(base, 4.0, GAP);
        i.add(base + Duration::from_secs(1), 4.0, GAP);
        i.add(base + Duration::from_secs(1), 4.0, GAP); // the same sample collected twice
        assert!(close(i.joules(), 4.0));
        i.add(base, 1000.0, GAP);
        i.add(base + Duration::from_secs(1), f64::NAN, GAP);
        i.add(base + Duration::from_secs(2), f64::INFINITY, GAP);
        assert!(close(i.joules(), 4.0));
        i.add(base + Duration::from_secs(2), 4.0, GAP);
        assert!(close(i.joules(), 8.0));
    }

    #[test]
    fn negative_readings_count_as_zero_so_the_counter_never_falls() {
        // Thor's VDD_GPU reads -0.392 W at idle, then the GPU wakes up.
        let readings = [(0.0, -0.392), (1.0, -0.392), (2.0, 2.0), (3.0, -0.392)];
        let mut last = 0.0;
        let base = Instant::now();
        let mut i = Integrator::new();
        for (t, w) in readings {
            i.add(base + Duration::from_secs_f64(t), w, GAP);
            assert!(i.joules() >= last);
            last = i.joules();
        }
        // (0 + 0)/2 + (0 + 2)/2 + (2 + 0)/2 = 2 J.
        assert!(close(i.joules(), 2.0));
    }

    #[test]
    fn the_meter_keeps_one_counter_per_name_and_bounds_them() {
        let meter = EnergyMeter::new();
        let base = Instant::now();
        let mut out = BTreeMap::new();
        for t in 0..=2u64 {
            meter.integrate(
                base + Duration::from_secs(t),
                GAP,
                [
                    ("a_joules_total".into(), 1.0),
                    ("b_joules_total".into(), 3.0),
                ],
                &mut out,
            );
        }
        assert!(close(out["a_joules_total"], 2.0));
        assert!(close(out["b_joules_total"], 6.0));
        assert_eq!(meter.joules("b_joules_total"), Some(out["b_joules_total"]));
        let many = (0..MAX_SENSORS * 2).map(|n| (format!("s{n}_joules_total"), 1.0));
        meter.integrate(base, GAP, many, &mut BTreeMap::new());
        assert_eq!(meter.sensors.lock().unwrap().len(), MAX_SENSORS);
        // Names already counted keep counting when the meter is full.
        meter.integrate(
            base + Duration::from_secs(3),
            GAP,
            [("a_joules_total".into(), 1.0)],
            &mut out,
        );
        assert!(close(out["a_joules_total"], 3.0));
    }

    #[test]
    fn joules_names_replace_the_watts_suffix() {
        assert_eq!(
            joules_name("jetson_power_vdd_in_watts").as_deref(),
            Some("jetson_power_vdd_in_joules_total")
        );
        assert_eq!(joules_name("jetson_ram_used_mb"), None);
    }
}
