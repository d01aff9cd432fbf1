//! Per-model tegrastats interpretation: one raw line → metric values named as in the spec.
//!
//! - [`Model`]: which model's rules apply (generic `jetson` uses Orin rules).
//! - [`read_line`]: pure `&str` → [`Reading`]; never panics, never invents a value.
//! - [`help_text`]: the `# HELP` text for any metric name this module can produce.
//! - [`default_enabled`] / [`default_metrics`]: the "useful set" a fresh install enables.
//!
//! Layout: `crate::tegrastats::parse` turns text into a typed [`Line`]; `common.rs` maps a line
//! to values (the same for every model, because tegrastats names each field it prints);
//! `orin.rs`, `xavier.rs`, `nano.rs` hold what differs per model: the rails and sensors that a
//! new config lists before any line was seen. Every name and decision is in docs/METRICS.md.

mod common;
mod help;
mod nano;
mod orin;
mod xavier;

use super::Values;
use crate::config::DeviceType;
use crate::tegrastats::line::Line;
use crate::tegrastats::parse::parse_line;

/// Which model's parsing rules apply.
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

    /// The model whose rules a configured device type uses.
    pub fn for_device(kind: DeviceType) -> Model {
        match kind {
            DeviceType::JetsonOrin | DeviceType::Jetson => Model::Orin,
            DeviceType::JetsonXavier => Model::Xavier,
            DeviceType::JetsonNano => Model::Nano,
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

/// Parses one tegrastats line with `model`'s rules.
///
/// A line that is not a sample (no `RAM` field: a `date` line, a banner, a line cut at the
/// front) or that yields no value at all is an error. A recognised field whose value does not
/// parse counts in [`Reading::bad_tokens`] and yields nothing; tokens the parser does not know
/// are skipped (they are visible through [`crate::tegrastats::parse::parse_line`]).
pub fn read_line(model: Model, raw: &str) -> Result<Reading, LineError> {
    let not_usable = || LineError {
        found: raw.trim_end().chars().take(60).collect(),
    };
    let line = parse_line(raw).map_err(|_| not_usable())?;
    let values = line_values(model, &line);
    if values.is_empty() {
        return Err(not_usable());
    }
    Ok(Reading {
        values,
        bad_tokens: u32::try_from(line.bad.len()).unwrap_or(u32::MAX),
    })
}

/// The values of an already parsed line under `model`'s rules.
///
/// tegrastats names every field it prints, so the mapping is the same for every model: Orin
/// rules (the generic `jetson` type) read Xavier and Nano lines completely. The model decides
/// what a fresh config enables ([`default_enabled`], [`default_metrics`]).
pub fn line_values(model: Model, line: &Line) -> Values {
    let _ = model;
    common::values(line)
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

    const XAVIER_NX: &str = "RAM 2690/6854MB (lfb 6x1MB) SWAP 479/3427MB (cached 3MB) \
        CPU [3%@1904,7%@1906,1%@1905,0%@1907,off,off] EMC_FREQ 0%@1600 GR3D_FREQ 0%@[510] \
        VIC_FREQ 601 APE 150 AUX@39C CPU@39.5C AO@37.5C GPU@37.5C PMIC@50C \
        VDD_IN 5079mW/5079mW VDD_CPU_GPU_CV 696mW/696mW VDD_SOC 1104mW/1104mW";

    const NANO: &str = "RAM 1409/3964MB (lfb 28x4MB) SWAP 0/1982MB (cached 0MB) \
        IRAM 0/252kB(lfb 252kB) CPU [22%@518,67%@518,off,off] EMC_FREQ 0%@1600 \
        GR3D_FREQ 0%@76 APE 25 PLL@28.5C CPU@32C PMIC@50C GPU@30.5C AO@39.5C thermal@31.25C \
        POM_5V_IN 2003/2003 POM_5V_GPU 0/0 POM_5V_CPU 320/320";

    fn values(model: Model, raw: &str) -> Values {
        let reading = read_line(model, raw).unwrap();
        assert_eq!(reading.bad_tokens, 0, "{raw}");
        reading.values
    }

    fn get(v: &Values, name: &str) -> Option<f64> {
        v.get(name).copied()
    }

    #[test]
    fn issue_example_rail_watts() {
        let v = values(Model::Xavier, "RAM 1/2MB VDD_IN 5079mW/4000mW");
        assert_eq!(get(&v, "jetson_power_vdd_in_watts"), Some(5.079));
        assert_eq!(get(&v, "jetson_power_vdd_in_avg_watts"), Some(4.0));
        let v = values(Model::Nano, "RAM 1/2MB POM_5V_IN 2003/2003");
        assert_eq!(get(&v, "jetson_power_pom_5v_in_watts"), Some(2.003));
    }

    #[test]
    fn issue_example_ram() {
        let v = values(Model::Xavier, "RAM 2690/6854MB (lfb 6x1MB)");
        assert_eq!(get(&v, "jetson_ram_used_mb"), Some(2690.0));
        assert_eq!(get(&v, "jetson_ram_total_mb"), Some(6854.0));
        assert_eq!(
            get(&v, "jetson_ram_used_percent"),
            Some(2690.0 / 6854.0 * 100.0)
        );
        assert_eq!(get(&v, "jetson_lfb_blocks"), Some(6.0));
        assert_eq!(get(&v, "jetson_lfb_total_mb"), Some(6.0));
        let v = values(Model::Xavier, "RAM 5408/6834MB (lfb 2x128kB)");
        assert_eq!(get(&v, "jetson_lfb_total_mb"), Some(0.25));
    }

    #[test]
    fn issue_example_cpu_offline_core_has_status_only() {
        let v = values(Model::Orin, "RAM 1/2MB CPU [3%@1904,off]");
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
        let v = values(Model::Xavier, XAVIER_NX);
        assert_eq!(get(&v, "jetson_cpu_avg_usage_percent"), Some(11.0 / 4.0));
        assert_eq!(get(&v, "jetson_cpu_active_cores"), Some(4.0));
        let v = values(Model::Orin, "RAM 1/2MB CPU [off,off]");
        assert_eq!(get(&v, "jetson_cpu_avg_usage_percent"), None);
        assert_eq!(get(&v, "jetson_cpu_active_cores"), Some(0.0));
        // A core entry that did not parse leaves the totals out instead of miscounting.
        let r = read_line(Model::Orin, "RAM 1/2MB CPU [3%@1904,x%@1]").unwrap();
        assert_eq!(r.bad_tokens, 1);
        assert_eq!(get(&r.values, "jetson_cpu_core0_usage_percent"), Some(3.0));
        assert_eq!(get(&r.values, "jetson_cpu_active_cores"), None);
        assert_eq!(get(&r.values, "jetson_cpu_avg_usage_percent"), None);
    }

    #[test]
    fn spec_xavier_example_values() {
        let v = values(Model::Xavier, XAVIER_NX);
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
        let v = values(Model::Nano, NANO);
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
        let v = values(Model::Orin, "RAM 1/2MB GR3D_FREQ 0%@[611,0]");
        assert_eq!(get(&v, "jetson_gpu_freq0_mhz"), Some(611.0));
        assert_eq!(get(&v, "jetson_gpu_freq1_mhz"), Some(0.0));
        let v = values(
            Model::Orin,
            "RAM 1/2MB GR3D_FREQ 73%@1274 GR3D2_FREQ 99%@1275",
        );
        assert_eq!(get(&v, "jetson_gpu_usage_percent"), Some(73.0));
        assert_eq!(get(&v, "jetson_gpu_gpc1_usage_percent"), Some(99.0));
        assert_eq!(get(&v, "jetson_gpu_freq0_mhz"), Some(1274.0));
        assert_eq!(get(&v, "jetson_gpu_freq1_mhz"), Some(1275.0));
        // A bracket list already names GPC 1's clock; GR3D2_FREQ does not override it.
        let v = values(
            Model::Orin,
            "RAM 1/2MB GR3D_FREQ 5%@[611,612] GR3D2_FREQ 7%@9",
        );
        assert_eq!(get(&v, "jetson_gpu_freq1_mhz"), Some(612.0));
        assert_eq!(get(&v, "jetson_gpu_gpc1_usage_percent"), Some(7.0));
        // A repeated field: the later one wins.
        let v = values(Model::Orin, "RAM 1/2MB APE 25 APE 30");
        assert_eq!(get(&v, "jetson_ape_freq_mhz"), Some(30.0));
        let v = values(Model::Orin, "RAM 1/2MB GR3D_FREQ @[0,0,0]");
        assert_eq!(get(&v, "jetson_gpu_usage_percent"), None);
        assert_eq!(get(&v, "jetson_gpu_freq2_mhz"), Some(0.0));
        let v = values(Model::Orin, "RAM 1/2MB GR3D_FREQ 12%");
        assert_eq!(get(&v, "jetson_gpu_usage_percent"), Some(12.0));
        assert_eq!(get(&v, "jetson_gpu_freq0_mhz"), None);
    }

    #[test]
    fn sentinel_temperatures_are_dropped_and_real_negatives_kept() {
        let v = values(Model::Orin, "RAM 1/2MB CV0@-256C GPU@-256.0C tj@-12.5C");
        assert_eq!(get(&v, "jetson_temp_cv0_celsius"), None);
        assert_eq!(get(&v, "jetson_temp_gpu_celsius"), None);
        assert_eq!(get(&v, "jetson_temp_tj_celsius"), Some(-12.5));
    }

    #[test]
    fn off_engines_export_nothing_and_others_follow_the_naming() {
        let v = values(
            Model::Orin,
            "RAM 1/2MB VIC off NVENC 79%@166 NVDEC_LOAD 3% NVJPG1 729 MTS fg 1% bg 8%",
        );
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
        let v = values(Model::Nano, "RAM 0/0MB IRAM 0/0kB(lfb 0kB)");
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
            let err = read_line(Model::Orin, raw).unwrap_err();
            assert!(err.to_string().contains("no recognisable field"), "{err}");
        }
        let r = read_line(Model::Orin, "RAM /MB CPU [5%@100]").unwrap();
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
            for name in values(Model::Orin, raw).keys() {
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
            Model::for_device(DeviceType::Jetson).collector_name(),
            "JetsonOrinCollector"
        );
        assert_eq!(Model::for_device(DeviceType::JetsonNano), Model::Nano);
        assert_eq!(Model::for_device(DeviceType::JetsonXavier), Model::Xavier);
    }
}
