//! `# HELP` texts for every name [`super::read_line`] can produce.
//!
//! Names with a fixed meaning come from a table; pattern names (rails, sensors, cores, GPU
//! clocks, engines) are described from their parts. An unrecognised rail or sensor still gets a
//! text naming it, so the exposition never shows an empty HELP line.

/// Fixed names and their texts.
const FIXED: &[(&str, &str)] = &[
    ("jetson_ram_used_mb", "RAM used in MB"),
    ("jetson_ram_total_mb", "RAM available to applications in MB"),
    ("jetson_ram_used_percent", "RAM used, percent of the total"),
    ("jetson_swap_used_mb", "Swap used in MB"),
    ("jetson_swap_total_mb", "Swap configured in MB"),
    ("jetson_swap_cached_mb", "Swap cache in MB"),
    (
        "jetson_lfb_blocks",
        "Number of free RAM blocks of the largest free block size (lfb)",
    ),
    (
        "jetson_lfb_total_mb",
        "Total size of the largest free RAM blocks in MB (blocks times block size)",
    ),
    ("jetson_iram_used_kb", "Internal RAM (IRAM) used in KB"),
    ("jetson_iram_total_kb", "Internal RAM (IRAM) size in KB"),
    (
        "jetson_iram_used_percent",
        "Internal RAM (IRAM) used, percent of the total",
    ),
    (
        "jetson_iram_lfb_kb",
        "Internal RAM (IRAM) largest free block in KB",
    ),
    (
        "jetson_cpu_avg_usage_percent",
        "Average CPU usage across online cores",
    ),
    ("jetson_cpu_active_cores", "Number of online CPU cores"),
    (
        "jetson_fan_pwm_percent",
        "Fan duty cycle in percent (sysfs mode: hwmon pwm1)",
    ),
    (
        "jetson_fan_rpm",
        "Fan speed in RPM (sysfs mode: hwmon rpm or fan1_input)",
    ),
    (
        "jetson_nvpmodel_id",
        "nvpmodel power mode number (sysfs mode: /var/lib/nvpmodel/status; its name is in \
         edge_metrics_exporter_power_mode_info)",
    ),
    (
        "jetson_clocks_active",
        "Whether jetson_clocks pins the clocks (1): every online core's and the GPU's minimum \
         clock equals its maximum (sysfs mode)",
    ),
    (
        "jetson_cpu_edp_limit_mhz",
        "CPU frequency cap set by electrical design point (EDP) management in MHz",
    ),
    (
        "jetson_mts_fg_percent",
        "Time spent in foreground tasks (MTS fg), percent",
    ),
    (
        "jetson_mts_bg_percent",
        "Time spent in background tasks (MTS bg), percent",
    ),
    ("jetson_gpu_usage_percent", "GPU usage"),
    (
        "jetson_gpu_gpc1_usage_percent",
        "GPU usage of graphics processing cluster 1 (GR3D2_FREQ)",
    ),
];

/// Rail name → what it powers. The spec's example text is "GPU/SoC power consumption".
const RAILS: &[(&str, &str)] = &[
    ("vdd_gpu_soc", "GPU/SoC"),
    ("vdd_cpu_cv", "CPU/CV"),
    ("vin_sys_5v0", "System 5V input (carrier side)"),
    ("vddq_vdd2_1v8ao", "DRAM and always-on 1.8V"),
    ("vdd_in", "Module input (total)"),
    ("vdd_cpu_gpu_cv", "CPU/GPU/CV"),
    ("vdd_soc", "SoC"),
    ("pom_5v_in", "Module 5V input (total)"),
    ("pom_5v_gpu", "GPU"),
    ("pom_5v_cpu", "CPU"),
    ("vdd_cpu", "CPU"),
    ("vdd_gpu", "GPU"),
    ("vdd_ddr", "DRAM"),
    ("vdd_wifi", "Wi-Fi"),
    ("vdd_sys_gpu", "GPU"),
    ("vdd_sys_soc", "SoC"),
    ("vdd_sys_cpu", "CPU"),
    ("vdd_sys_ddr", "DRAM"),
    ("vdd_4v0_wifi", "Wi-Fi"),
    ("vdd_cpu_soc_mss", "CPU/SoC/memory subsystem"),
    ("gpu", "GPU"),
    ("cpu", "CPU"),
    ("soc", "SoC"),
    ("cv", "CV (vision and deep learning accelerators)"),
    ("vddrq", "DRAM"),
    ("sys5v", "System 5V"),
];

/// Thermal-zone name → what it measures. The spec's example text is "CPU temperature".
const SENSORS: &[(&str, &str)] = &[
    ("cpu", "CPU"),
    ("gpu", "GPU"),
    ("soc0", "SoC zone 0"),
    ("soc1", "SoC zone 1"),
    ("soc2", "SoC zone 2"),
    ("soc012", "SoC zones 0-2"),
    ("soc345", "SoC zones 3-5"),
    ("tj", "Junction (hottest SoC zone)"),
    ("tboard", "Board"),
    ("tdiode", "SoC diode (remote channel of the board sensor)"),
    ("aux", "Auxiliary zone"),
    ("ao", "Always-on domain"),
    (
        "pmic",
        "PMIC (a constant value on these boards; do not alert on it)",
    ),
    ("pll", "PLL"),
    ("thermal", "Combined thermal zone"),
    ("cv0", "Vision accelerator cluster 0"),
    ("cv1", "Vision accelerator cluster 1"),
    ("cv2", "Vision accelerator cluster 2"),
    ("bcpu", "CPU Denver cluster"),
    ("mcpu", "CPU A57 cluster"),
    ("lcpu", "CPU low-power cluster"),
    ("iwlwifi", "Wi-Fi module"),
    ("charger", "Charger"),
    ("max170xx", "Battery fuel gauge"),
];

/// Engine family → what it is.
const ENGINES: &[(&str, &str)] = &[
    ("emc", "Memory controller"),
    ("vic", "Video image compositor"),
    ("ape", "Audio processing engine"),
    ("nvenc", "Video encoder"),
    ("nvdec", "Video decoder"),
    ("nvjpg", "JPEG engine"),
    ("nvdla", "Deep learning accelerator"),
    ("pva", "Programmable vision accelerator"),
    ("ofa", "Optical flow accelerator"),
    ("msenc", "Video encoder"),
    ("avp", "Audio/video processor"),
];

fn lookup(table: &[(&str, &'static str)], key: &str) -> Option<&'static str> {
    table.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// `# HELP` text for `name`.
pub(super) fn help_text(name: &str) -> String {
    if let Some(text) = lookup(FIXED, name) {
        return text.to_owned();
    }
    if let Some(rest) = name.strip_prefix("jetson_power_") {
        if let Some(rail) = rest.strip_suffix("_avg_watts") {
            return format!(
                "{} power consumption, average since tegrastats started",
                rail_text(rail)
            );
        }
        if let Some(rail) = rest.strip_suffix("_watts") {
            return format!("{} power consumption", rail_text(rail));
        }
        if let Some(rail) = rest.strip_suffix("_joules_total") {
            return format!(
                "{} energy in joules since the exporter started (rail power integrated over \
                 the readings)",
                rail_text(rail)
            );
        }
    }
    if let Some(sensor) = name
        .strip_prefix("jetson_temp_")
        .and_then(|s| s.strip_suffix("_celsius"))
    {
        return match lookup(SENSORS, sensor) {
            Some(text) => format!("{text} temperature"),
            None => format!("Temperature of thermal zone {sensor}"),
        };
    }
    if let Some(rest) = name.strip_prefix("jetson_cpu_core") {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (n, what) = rest.split_at(digits);
        let text = match what {
            "_usage_percent" => Some("usage"),
            "_freq_mhz" => Some("frequency in MHz"),
            "_status" => Some("status (1 online, 0 offline)"),
            _ => None,
        };
        if let (false, Some(text)) = (n.is_empty(), text) {
            return format!("CPU core {n} {text}");
        }
    }
    if let Some(n) = name
        .strip_prefix("jetson_gpu_freq")
        .and_then(|s| s.strip_suffix("_mhz"))
    {
        return format!("GPU frequency of graphics processing cluster {n} in MHz");
    }
    if let Some(rest) = name.strip_prefix("jetson_") {
        let (engine, what) = if let Some(e) = rest.strip_suffix("_usage_percent") {
            (e, "usage")
        } else if let Some(e) = rest.strip_suffix("_freq_mhz") {
            (e, "frequency in MHz")
        } else {
            ("", "")
        };
        let family = engine.trim_end_matches(|c: char| c.is_ascii_digit());
        if let Some(text) = lookup(ENGINES, family) {
            return format!("{text} ({}) {what}", engine.to_ascii_uppercase());
        }
    }
    format!("Jetson tegrastats value {name}")
}

fn rail_text(rail: &str) -> String {
    match lookup(RAILS, rail) {
        Some(text) => text.to_owned(),
        None => format!("{} rail", rail.to_ascii_uppercase()),
    }
}
