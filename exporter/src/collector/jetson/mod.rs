//! The Jetson device collectors: a parsed tegrastats [`Line`] → metric values named as in the
//! spec, and what differs per model.
//!
//! - [`line_values`] / [`read_line`]: `Line` (or text) → values; pure, never panics, never
//!   invents a value. The same for every model, because tegrastats names each field it prints.
//! - [`Model`]: what differs per model: the collector's name and the names a fresh install
//!   enables ([`default_enabled`], [`default_metrics`]). Generic `jetson` is Orin.
//! - [`JetsonCollector`]: the collector over the tegrastats source's latest sample.
//! - [`help_text`]: the `# HELP` text for any metric name this module can produce.
//!
//! Layout: `crate::tegrastats` turns text into a typed [`Line`] and runs the source;
//! `common.rs` maps a line to values; `orin.rs`, `xavier.rs`, `nano.rs` hold the rails and
//! sensors that a new config lists before any line was seen. Every name and decision is in
//! docs/METRICS.md.

mod common;
mod help;
mod nano;
mod orin;
mod xavier;

use std::sync::Arc;
use std::time::Duration;

use super::{CollectError, Collector, Values};
use crate::device::DeviceKind;
use crate::energy::EnergyMeter;
use crate::tegrastats::line::Line;
use crate::tegrastats::parse::parse_line;
use crate::tegrastats::source::TegraHandle;

/// Which Jetson model a device type is: its collector name and default metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// Orin (and the generic `jetson` type).
    Orin,
    /// Xavier.
    Xavier,
    /// Nano.
    Nano,
}

impl Model {
    /// Every model, for tests and tools that go through all of them.
    pub const ALL: [Model; 3] = [Model::Orin, Model::Xavier, Model::Nano];

    /// The model of a resolved device type: the one place that maps the two. `None` for the
    /// boards read from sysfs, which are no Jetson.
    pub fn for_device(kind: DeviceKind) -> Option<Model> {
        match kind {
            DeviceKind::JetsonOrin | DeviceKind::Jetson => Some(Model::Orin), // spec: generic is Orin
            DeviceKind::JetsonXavier => Some(Model::Xavier),
            DeviceKind::JetsonNano => Some(Model::Nano),
            DeviceKind::RaspberryPi | DeviceKind::LattePanda | DeviceKind::OrangePi => None,
        }
    }

    /// The collector name the spec shows in `/health`.
    pub fn collector_name(self) -> &'static str {
        match self {
            Model::Orin => "JetsonOrinCollector",
            Model::Xavier => "JetsonXavierCollector",
            Model::Nano => "JetsonNanoCollector",
        }
    }

    /// Names this model lists in a fresh config, beyond those every model lists.
    fn own_defaults(self) -> &'static [&'static str] {
        match self {
            Model::Orin => orin::DEFAULT_METRICS,
            Model::Xavier => xavier::DEFAULT_METRICS,
            Model::Nano => nano::DEFAULT_METRICS,
        }
    }
}

/// Metric values parsed from one tegrastats line.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Reading {
    /// Metric name → value, names exactly as the spec's patterns.
    pub values: Values,
    /// Tokens in the line that did not parse (each costs a parse-error count, never a value).
    pub bad_tokens: u32,
}

/// A line that yielded nothing usable.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[error("tegrastats line has no recognisable field: {found:?}")]
pub struct LineError {
    /// The start of the offending line.
    pub found: String,
}

/// Parses one tegrastats line and maps it to values (what the source and this collector do
/// together, in one call: for tests, benchmarks and fuzzing).
///
/// A line that is not a sample (no `RAM` field: a `date` line, a banner, a line cut at the
/// front) or that yields no value at all is an error. A recognised field whose value does not
/// parse counts in [`Reading::bad_tokens`] and yields nothing; tokens the parser does not know
/// are skipped (they are visible through [`crate::tegrastats::parse::parse_line`]).
pub fn read_line(raw: &str) -> Result<Reading, LineError> {
    let not_usable = || LineError {
        found: raw.trim_end().chars().take(60).collect(),
    };
    let line = parse_line(raw).map_err(|_| not_usable())?;
    let values = line_values(&line);
    if values.is_empty() {
        return Err(not_usable());
    }
    Ok(Reading {
        values,
        bad_tokens: u32::try_from(line.bad.len()).unwrap_or(u32::MAX),
    })
}

/// The values of a parsed line. tegrastats names every field it prints, so the mapping is the
/// same for every model: a generic `jetson` device reads Xavier and Nano lines completely.
pub fn line_values(line: &Line) -> Values {
    common::values(line)
}

/// Values of the tegrastats source's latest sample, named by one model's collector, and the
/// rails' energy counters.
pub struct JetsonCollector {
    model: Model,
    source: TegraHandle,
    stale_after: Duration,
    energy: Arc<EnergyMeter>,
}

impl JetsonCollector {
    /// A collector for `model`; a reading older than three `interval`s is stale. Each rail's
    /// current power is integrated into `energy` (a gap over three intervals not bridged).
    pub fn new(
        model: Model,
        source: TegraHandle,
        interval: Duration,
        energy: Arc<EnergyMeter>,
    ) -> JetsonCollector {
        JetsonCollector {
            model,
            source,
            stale_after: interval * 3,
            energy,
        }
    }
}

/// The energy counter of a rail: `jetson_power_{rail}_joules_total`, beside its
/// `jetson_power_{rail}_watts` gauge.
pub fn rail_joules_name(rail: &str) -> String {
    format!("jetson_power_{rail}_joules_total")
}

/// Integrates the current power of every rail of `line`, read at `at`, into `energy` and puts
/// the counters into `out`. Used by every source that produces rails.
pub fn rail_energy(
    energy: &EnergyMeter,
    line: &Line,
    at: std::time::Instant,
    max_gap: Duration,
    out: &mut Values,
) {
    let readings = line
        .rails
        .iter()
        .map(|r| (rail_joules_name(&r.name), r.current_mw / 1000.0));
    energy.integrate(at, max_gap, readings, out);
}

impl Collector for JetsonCollector {
    fn name(&self) -> &'static str {
        self.model.collector_name()
    }

    fn collect(&self, out: &mut Values) -> Result<(), CollectError> {
        let Some(sample) = self.source.latest() else {
            return Err(CollectError::NoReading {
                source_name: "tegrastats",
            });
        };
        let age = sample.at.elapsed();
        if age > self.stale_after {
            return Err(CollectError::Stale {
                source_name: "tegrastats",
                age_secs: age.as_secs_f64(),
                limit_secs: self.stale_after.as_secs_f64(),
            });
        }
        out.append(&mut line_values(&sample.line));
        rail_energy(&self.energy, &sample.line, sample.at, self.stale_after, out);
        Ok(())
    }
}

/// `# HELP` text for a metric name produced by [`read_line`].
pub fn help_text(name: &str) -> String {
    help::help_text(name)
}

/// Whether `name`, first seen on a `model` device, is enabled in a freshly written config.
///
/// The useful set: current power of every rail (not the running average), every temperature,
/// average CPU usage and online cores, GPU usage, RAM used/total/percent, plus the model's own
/// names from the spec's examples (swap cache on Xavier and Nano, IRAM use on Nano).
pub fn default_enabled(model: Model, name: &str) -> bool {
    common::useful(name) || model.own_defaults().contains(&name)
}

/// The names written into a brand-new config before any line was seen: the spec's rails and
/// sensors for `model` and its example metrics, sorted. [`default_enabled`] is true for each.
pub fn default_metrics(model: Model) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = common::DEFAULT_METRICS
        .iter()
        .chain(model.own_defaults())
        .copied()
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::tegrastats::parse::testing::{NANO, XAVIER_NX};

    fn values(raw: &str) -> Values {
        let reading = read_line(raw).unwrap();
        assert_eq!(reading.bad_tokens, 0, "{raw}");
        reading.values
    }

    fn get(v: &Values, name: &str) -> Option<f64> {
        v.get(name).copied()
    }

    #[test]
    fn issue_example_rail_watts() {
        let v = values("RAM 1/2MB VDD_IN 5079mW/4000mW");
        assert_eq!(get(&v, "jetson_power_vdd_in_watts"), Some(5.079));
        assert_eq!(get(&v, "jetson_power_vdd_in_avg_watts"), Some(4.0));
        let v = values("RAM 1/2MB POM_5V_IN 2003/2003");
        assert_eq!(get(&v, "jetson_power_pom_5v_in_watts"), Some(2.003));
    }

    #[test]
    fn issue_example_ram() {
        let v = values("RAM 2690/6854MB (lfb 6x1MB)");
        assert_eq!(get(&v, "jetson_ram_used_mb"), Some(2690.0));
        assert_eq!(get(&v, "jetson_ram_total_mb"), Some(6854.0));
        assert_eq!(
            get(&v, "jetson_ram_used_percent"),
            Some(2690.0 / 6854.0 * 100.0)
        );
        assert_eq!(get(&v, "jetson_lfb_blocks"), Some(6.0));
        assert_eq!(get(&v, "jetson_lfb_total_mb"), Some(6.0));
        let v = values("RAM 5408/6834MB (lfb 2x128kB)");
        assert_eq!(get(&v, "jetson_lfb_total_mb"), Some(0.25));
    }

    #[test]
    fn issue_example_cpu_offline_core_has_status_only() {
        let v = values("RAM 1/2MB CPU [3%@1904,off]");
        assert_eq!(get(&v, "jetson_cpu_core0_usage_percent"), Some(3.0));
        assert_eq!(get(&v, "jetson_cpu_core0_freq_mhz"), Some(1904.0));
        assert_eq!(get(&v, "jetson_cpu_core0_status"), Some(1.0));
        assert_eq!(get(&v, "jetson_cpu_core1_status"), Some(0.0));
        assert_eq!(get(&v, "jetson_cpu_core1_usage_percent"), None);
        assert_eq!(get(&v, "jetson_cpu_core1_freq_mhz"), None);
        assert_eq!(get(&v, "jetson_cpu_avg_usage_percent"), Some(3.0));
        assert_eq!(get(&v, "jetson_cpu_active_cores"), Some(1.0));
    }

    #[test]
    fn cpu_average_is_over_online_cores_and_absent_when_none_is_online() {
        let v = values(XAVIER_NX);
        assert_eq!(get(&v, "jetson_cpu_avg_usage_percent"), Some(11.0 / 4.0));
        assert_eq!(get(&v, "jetson_cpu_active_cores"), Some(4.0));
        let v = values("RAM 1/2MB CPU [off,off]");
        assert_eq!(get(&v, "jetson_cpu_avg_usage_percent"), None);
        assert_eq!(get(&v, "jetson_cpu_active_cores"), Some(0.0));
        // A core entry that did not parse leaves the totals out instead of miscounting.
        let r = read_line("RAM 1/2MB CPU [3%@1904,x%@1]").unwrap();
        assert_eq!(r.bad_tokens, 1);
        assert_eq!(get(&r.values, "jetson_cpu_core0_usage_percent"), Some(3.0));
        assert_eq!(get(&r.values, "jetson_cpu_active_cores"), None);
        assert_eq!(get(&r.values, "jetson_cpu_avg_usage_percent"), None);
    }

    #[test]
    fn spec_xavier_example_values() {
        let v = values(XAVIER_NX);
        for (name, want) in [
            ("jetson_swap_used_mb", 479.0),
            ("jetson_swap_total_mb", 3427.0),
            ("jetson_swap_cached_mb", 3.0),
            ("jetson_emc_usage_percent", 0.0),
            ("jetson_emc_freq_mhz", 1600.0),
            ("jetson_gpu_usage_percent", 0.0),
            ("jetson_gpu_freq0_mhz", 510.0),
            ("jetson_vic_freq_mhz", 601.0),
            ("jetson_ape_freq_mhz", 150.0),
            ("jetson_temp_aux_celsius", 39.0),
            ("jetson_temp_cpu_celsius", 39.5),
            ("jetson_temp_pmic_celsius", 50.0),
            ("jetson_power_vdd_cpu_gpu_cv_watts", 0.696),
            ("jetson_power_vdd_soc_avg_watts", 1.104),
        ] {
            assert_eq!(get(&v, name), Some(want), "{name}");
        }
        assert_eq!(get(&v, "jetson_gpu_freq1_mhz"), None);
    }

    #[test]
    fn spec_nano_example_values() {
        let v = values(NANO);
        for (name, want) in [
            ("jetson_iram_used_kb", 0.0),
            ("jetson_iram_total_kb", 252.0),
            ("jetson_iram_used_percent", 0.0),
            ("jetson_iram_lfb_kb", 252.0),
            ("jetson_gpu_freq0_mhz", 76.0),
            ("jetson_temp_thermal_celsius", 31.25),
            ("jetson_power_pom_5v_cpu_watts", 0.32),
            ("jetson_power_pom_5v_gpu_watts", 0.0),
            ("jetson_cpu_active_cores", 2.0),
            ("jetson_cpu_avg_usage_percent", 44.5),
        ] {
            assert_eq!(get(&v, name), Some(want), "{name}");
        }
    }

    #[test]
    fn gpu_clusters() {
        let v = values("RAM 1/2MB GR3D_FREQ 0%@[611,0]");
        assert_eq!(get(&v, "jetson_gpu_freq0_mhz"), Some(611.0));
        assert_eq!(get(&v, "jetson_gpu_freq1_mhz"), Some(0.0));
        let v = values("RAM 1/2MB GR3D_FREQ 73%@1274 GR3D2_FREQ 99%@1275");
        assert_eq!(get(&v, "jetson_gpu_usage_percent"), Some(73.0));
        assert_eq!(get(&v, "jetson_gpu_gpc1_usage_percent"), Some(99.0));
        assert_eq!(get(&v, "jetson_gpu_freq0_mhz"), Some(1274.0));
        assert_eq!(get(&v, "jetson_gpu_freq1_mhz"), Some(1275.0));
        // A bracket list already names GPC 1's clock; GR3D2_FREQ does not override it.
        let v = values("RAM 1/2MB GR3D_FREQ 5%@[611,612] GR3D2_FREQ 7%@9");
        assert_eq!(get(&v, "jetson_gpu_freq1_mhz"), Some(612.0));
        assert_eq!(get(&v, "jetson_gpu_gpc1_usage_percent"), Some(7.0));
        // A repeated field: the later one wins.
        let v = values("RAM 1/2MB APE 25 APE 30");
        assert_eq!(get(&v, "jetson_ape_freq_mhz"), Some(30.0));
        let v = values("RAM 1/2MB GR3D_FREQ @[0,0,0]");
        assert_eq!(get(&v, "jetson_gpu_usage_percent"), None);
        assert_eq!(get(&v, "jetson_gpu_freq2_mhz"), Some(0.0));
        let v = values("RAM 1/2MB GR3D_FREQ 12%");
        assert_eq!(get(&v, "jetson_gpu_usage_percent"), Some(12.0));
        assert_eq!(get(&v, "jetson_gpu_freq0_mhz"), None);
    }

    #[test]
    fn sentinel_temperatures_are_dropped_and_real_negatives_kept() {
        let v = values("RAM 1/2MB CV0@-256C GPU@-256.0C tj@-12.5C");
        assert_eq!(get(&v, "jetson_temp_cv0_celsius"), None);
        assert_eq!(get(&v, "jetson_temp_gpu_celsius"), None);
        assert_eq!(get(&v, "jetson_temp_tj_celsius"), Some(-12.5));
    }

    #[test]
    fn off_engines_export_nothing_and_others_follow_the_naming() {
        let v = values("RAM 1/2MB VIC off NVENC 79%@166 NVDEC_LOAD 3% NVJPG1 729 MTS fg 1% bg 8%");
        assert!(!v.keys().any(|k| k.starts_with("jetson_vic")), "{v:?}");
        assert_eq!(get(&v, "jetson_nvenc_usage_percent"), Some(79.0));
        assert_eq!(get(&v, "jetson_nvenc_freq_mhz"), Some(166.0));
        assert_eq!(get(&v, "jetson_nvdec_usage_percent"), Some(3.0));
        assert_eq!(get(&v, "jetson_nvjpg1_freq_mhz"), Some(729.0));
        assert_eq!(get(&v, "jetson_mts_fg_percent"), Some(1.0));
        assert_eq!(get(&v, "jetson_mts_bg_percent"), Some(8.0));
    }

    #[test]
    fn zero_totals_give_no_percentages() {
        let v = values("RAM 0/0MB IRAM 0/0kB(lfb 0kB)");
        assert_eq!(get(&v, "jetson_ram_used_percent"), None);
        assert_eq!(get(&v, "jetson_iram_used_percent"), None);
        assert_eq!(get(&v, "jetson_ram_total_mb"), Some(0.0));
    }

    #[test]
    fn lines_without_values_are_errors() {
        for raw in [
            "",
            "Tue Jan 26 18:22:31 UTC 2021",
            "RAM /MB",
            "RAM",
            "\u{0}\u{ff}",
        ] {
            let err = read_line(raw).unwrap_err();
            assert!(err.to_string().contains("no recognisable field"), "{err}");
        }
        let r = read_line("RAM /MB CPU [5%@100]").unwrap();
        assert_eq!(r.bad_tokens, 1);
        assert_eq!(get(&r.values, "jetson_cpu_core0_usage_percent"), Some(5.0));
    }

    #[test]
    fn help_texts_match_the_spec_and_cover_every_pattern() {
        assert_eq!(
            help_text("jetson_power_vdd_gpu_soc_watts"),
            "GPU/SoC power consumption"
        );
        assert_eq!(help_text("jetson_temp_cpu_celsius"), "CPU temperature");
        assert_eq!(
            help_text("jetson_cpu_core0_usage_percent"),
            "CPU core 0 usage"
        );
        assert_eq!(
            help_text("jetson_nvenc1_freq_mhz"),
            "Video encoder (NVENC1) frequency in MHz"
        );
        assert_eq!(
            help_text("jetson_power_foo_bar_avg_watts"),
            "FOO_BAR rail power consumption, average since tegrastats started"
        );
        for raw in [XAVIER_NX, NANO] {
            for name in values(raw).keys() {
                let text = help_text(name);
                assert!(!text.starts_with("Jetson tegrastats value"), "{name}");
                assert!(!text.contains('\n') && !text.contains('\\'), "{name}");
            }
        }
    }

    #[test]
    fn defaults_follow_the_spec_examples() {
        for model in Model::ALL {
            let names = default_metrics(model);
            for name in &names {
                assert!(default_enabled(model, name), "{model:?} {name}");
                assert!(
                    !help_text(name).starts_with("Jetson tegrastats value"),
                    "{name}"
                );
            }
            for common in [
                "jetson_ram_used_mb",
                "jetson_ram_total_mb",
                "jetson_ram_used_percent",
                "jetson_cpu_avg_usage_percent",
                "jetson_cpu_active_cores",
                "jetson_gpu_usage_percent",
                "jetson_temp_cpu_celsius",
            ] {
                assert!(names.contains(&common), "{model:?} {common}");
            }
            assert!(!default_enabled(model, "jetson_cpu_core0_usage_percent"));
            assert!(!default_enabled(model, "jetson_power_vdd_in_avg_watts"));
            assert!(!default_enabled(model, "jetson_gpu_freq0_mhz"));
            assert!(default_enabled(model, "jetson_power_some_new_rail_watts"));
            assert!(default_enabled(model, "jetson_temp_some_new_zone_celsius"));
        }
        let orin = default_metrics(Model::Orin);
        assert!(orin.contains(&"jetson_power_vdd_gpu_soc_watts"));
        assert!(orin.contains(&"jetson_temp_tj_celsius"));
        let xavier = default_metrics(Model::Xavier);
        assert!(xavier.contains(&"jetson_temp_aux_celsius"));
        assert!(xavier.contains(&"jetson_swap_cached_mb"));
        let nano = default_metrics(Model::Nano);
        assert!(nano.contains(&"jetson_iram_used_percent"));
        assert!(nano.contains(&"jetson_power_pom_5v_cpu_watts"));
        assert!(!default_enabled(Model::Orin, "jetson_iram_used_percent"));
    }

    #[test]
    fn collector_names() {
        assert_eq!(Model::Orin.collector_name(), "JetsonOrinCollector");
        assert_eq!(
            Model::for_device(DeviceKind::Jetson).map(Model::collector_name),
            Some("JetsonOrinCollector")
        );
        assert_eq!(Model::for_device(DeviceKind::JetsonNano), Some(Model::Nano));
        assert_eq!(
            Model::for_device(DeviceKind::JetsonXavier),
            Some(Model::Xavier)
        );
        assert_eq!(Model::for_device(DeviceKind::OrangePi), None);
    }
    #[test]
    fn mutated_corpus_lines_never_panic_nor_give_non_finite_values() {
        use crate::tegrastats::parse::testing::{corpus_lines, mutate, Rng};
        let lines = corpus_lines();
        let mut rng = Rng(0x5eed_1234_abcd_ef01);
        let (mut ok, mut errors) = (0, 0);
        for _ in 0..4000 {
            let line = &lines[rng.below(lines.len())];
            let mutated = mutate(&mut rng, line);
            // What the source publishes is exactly what yields values here.
            let published = parse_line(&mutated).is_ok_and(|l| l.has_readings());
            match read_line(&mutated) {
                Ok(reading) => {
                    assert!(published, "values from an unpublished line {mutated:?}");
                    ok += 1;
                    for (name, value) in &reading.values {
                        assert!(value.is_finite(), "{name} = {value} from {mutated:?}");
                        assert!(
                            name.starts_with("jetson_")
                                && name.bytes().all(|c| c.is_ascii_lowercase()
                                    || c.is_ascii_digit()
                                    || c == b'_'),
                            "bad metric name {name:?} from {mutated:?}"
                        );
                    }
                }
                Err(_) => {
                    assert!(!published, "published a line without values {mutated:?}");
                    errors += 1
                }
            }
        }
        // Pure noise from the field alphabet, half of it behind a valid `RAM` field.
        let alphabet: Vec<char> = "RAMSWPCUGDFQ_0123456789%@[],/()xkBmWCoff -.\u{e9}\t"
            .chars()
            .collect();
        for k in 0..2000 {
            let len = rng.below(120);
            let mut noise: String = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect();
            if k % 2 == 0 {
                noise.insert_str(0, "RAM 1/2MB ");
            }
            let published = parse_line(&noise).is_ok_and(|l| l.has_readings());
            assert_eq!(read_line(&noise).is_ok(), published, "{noise:?}");
            if let Ok(reading) = read_line(&noise) {
                assert!(reading.values.values().all(|v| v.is_finite()), "{noise:?}");
            }
        }
        // Most mutations leave a usable line; some must not (cut before RAM, RAM removed).
        assert!(ok > errors, "ok {ok}, errors {errors}");
        assert!(errors > 0, "no mutation produced an unusable line");
    }

    #[test]
    fn every_corpus_line_is_published_exactly_when_it_has_values() {
        for raw in crate::tegrastats::parse::testing::corpus_lines() {
            let published = parse_line(&raw).is_ok_and(|l| l.has_readings());
            assert_eq!(read_line(&raw).is_ok(), published, "{raw}");
        }
        for raw in [
            "RAM /MB",
            "RAM /MB CV0@-256C",
            "RAM /MB CPU [x%@1]",
            "RAM /MB VIC off",
        ] {
            assert!(!parse_line(raw).unwrap().has_readings(), "{raw}");
            assert!(read_line(raw).is_err(), "{raw}");
        }
    }

    #[tokio::test]
    async fn values_then_stale_after_three_intervals() {
        use crate::tegrastats::source::{SourceSpec, TegraSource};
        use std::time::Instant;
        let path = std::env::temp_dir().join(format!("em-device-{}.log", std::process::id()));
        std::fs::write(&path, "RAM 2690/6854MB (lfb 6x1MB)\n").unwrap();
        let interval = Duration::from_millis(50);
        // Replaying every 10 s: one line now, then nothing for longer than three intervals.
        let mut source = TegraSource::start(SourceSpec::Replay {
            path: path.clone(),
            interval: Duration::from_secs(10),
        });
        let collector = crate::collector::device_collector(
            DeviceKind::Jetson,
            source.handle(),
            None,
            interval,
            Arc::new(EnergyMeter::new()),
        );
        assert_eq!(collector.name(), "JetsonOrinCollector");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut out = Values::new();
        while collector.collect(&mut out).is_err() {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(out["jetson_ram_used_mb"], 2690.0);
        // Polled until the reading goes stale, then checked that it was not called stale
        // before it was three intervals old.
        let read_at = source
            .handle()
            .latest()
            .expect("the reading just collected")
            .at;
        let err = loop {
            let mut out = Values::new();
            match collector.collect(&mut out) {
                Ok(()) => assert!(Instant::now() < deadline, "never stale"),
                Err(err) => {
                    assert!(out.is_empty());
                    break err;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert!(matches!(err, CollectError::Stale { .. }), "{err:?}");
        let age = read_at.elapsed();
        assert!(age >= interval * 3, "stale after only {age:?}");
        source.stop().await;
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn jetpack7_rails_three_values_and_a_negative_idle_reading() {
        // JetPack 7 prints cur/avg/max; the third value is not a metric.
        let v =
            values("RAM 1/2MB VDD_GPU_SOC 5139mW/5000mW/6000mW VIN_SYS_5V0 5500mW/5500mW/5500mW");
        assert_eq!(get(&v, "jetson_power_vdd_gpu_soc_watts"), Some(5.139));
        assert_eq!(get(&v, "jetson_power_vdd_gpu_soc_avg_watts"), Some(5.0));
        // Thor's VDD_GPU reads below zero at idle: a real reading, exposed as read.
        let v = values("RAM 1/2MB VDD_GPU -392mW/-392mW VDD_CPU_SOC_MSS 4165mW/4165mW");
        assert_eq!(get(&v, "jetson_power_vdd_gpu_watts"), Some(-0.392));
        assert_eq!(get(&v, "jetson_power_vdd_gpu_avg_watts"), Some(-0.392));
        assert_eq!(get(&v, "jetson_power_vdd_cpu_soc_mss_watts"), Some(4.165));
        let v = values("RAM 1/2MB VDD_GPU -392mW/-100mW/0mW");
        assert_eq!(get(&v, "jetson_power_vdd_gpu_watts"), Some(-0.392));
    }

    #[test]
    fn rail_energy_integrates_the_current_power_of_each_rail() {
        use std::time::Instant;
        let energy = EnergyMeter::new();
        let base = Instant::now();
        let gap = Duration::from_secs(3);
        let lines = [
            "RAM 1/2MB VDD_IN 5000mW/5000mW VDD_GPU -392mW/-392mW",
            "RAM 1/2MB VDD_IN 7000mW/6000mW VDD_GPU -392mW/-392mW",
            "RAM 1/2MB VDD_IN 7000mW/6333mW VDD_GPU 1608mW/0mW",
        ];
        let mut out = Values::new();
        for (n, raw) in lines.iter().enumerate() {
            let line = parse_line(raw).unwrap();
            let at = base + Duration::from_millis(500 * n as u64);
            out.clear();
            rail_energy(&energy, &line, at, gap, &mut out);
        }
        // VDD_IN: (5 + 7)/2 · 0.5 + (7 + 7)/2 · 0.5 = 6.5 J; VDD_GPU: the negative idle
        // reading counts as 0 W, so (0 + 0)/2 · 0.5 + (0 + 1.608)/2 · 0.5 = 0.402 J.
        assert!((out["jetson_power_vdd_in_joules_total"] - 6.5).abs() < 1e-9);
        assert!((out["jetson_power_vdd_gpu_joules_total"] - 0.402).abs() < 1e-9);
        assert_eq!(out.len(), 2);
        assert!(default_enabled(
            Model::Orin,
            "jetson_power_vdd_in_joules_total"
        ));
        assert!(help_text("jetson_power_vdd_in_joules_total").contains("energy in joules"));
    }

    #[test]
    fn every_device_type_has_a_collector_name() {
        let names: Vec<_> = DeviceKind::ALL
            .iter()
            .filter_map(|k| Model::for_device(*k))
            .map(Model::collector_name)
            .collect();
        assert_eq!(
            names,
            [
                "JetsonOrinCollector",
                "JetsonXavierCollector",
                "JetsonNanoCollector",
                "JetsonOrinCollector"
            ]
        );
    }

    /// Every file of a sysfs fixture tree replaced by garbage: counted by the reader, never a
    /// panic, and no non-finite value once mapped (the test lives here, above `sysfs`, because
    /// it maps the reading).
    #[test]
    fn garbage_in_every_file_is_counted_and_never_panics() {
        use crate::sysfs::fs::{self, testing::Tree};
        use crate::sysfs::jetson::Reader;
        const GARBAGE: [&[u8]; 9] = [
            b"",
            b"\xff\xfe\x00",
            b"-",
            b"99999999999999999999999",
            b"1e3\n",
            b"NaN",
            b"pmode:",
            b"< POWER_MODEL ID=x NAME= >",
            b"-9223372036854775808",
        ];
        fn copy(from: &std::path::Path, to: &std::path::Path, n: &mut usize) {
            std::fs::create_dir_all(to).unwrap();
            for e in std::fs::read_dir(from).unwrap() {
                let e = e.unwrap();
                let dest = to.join(e.file_name());
                if e.file_type().unwrap().is_dir() {
                    copy(&e.path(), &dest, n);
                } else {
                    std::fs::write(&dest, GARBAGE[*n % GARBAGE.len()]).unwrap();
                    *n += 1;
                }
            }
        }
        for model in ["orin-agx", "nano", "thor"] {
            let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../testdata/sysfs")
                .join(model)
                .join("root");
            let t = Tree::new("garbage");
            let mut files = 0;
            copy(&fixture, t.path(), &mut files);
            let before = fs::read_errors();
            let mut reader = Reader::new(t.root());
            for _ in 0..2 {
                let values = line_values(&reader.read());
                assert!(
                    values.values().all(|v| v.is_finite()),
                    "{model}: {values:?}"
                );
            }
            assert!(
                fs::read_errors() > before + 10,
                "{model}: garbage was not counted"
            );
        }
    }
}
