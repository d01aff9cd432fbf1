//! Jetson Nano (and other Tegra X1 boards: TX1, Switch-class): the names a fresh config enables.
//!
//! Rails and sensors are the spec's Nano lists (`POM_5V_*` rails, unit-less milliwatts on
//! JetPack 4). The spec's Nano example also enables the swap cache and IRAM use, IRAM being
//! memory of the Tegra X1 video engines that only these boards print.

/// Written into a brand-new config before any line was seen (besides `common::DEFAULT_METRICS`).
pub(super) const DEFAULT_METRICS: &[&str] = &[
    "jetson_power_pom_5v_in_watts",
    "jetson_power_pom_5v_gpu_watts",
    "jetson_power_pom_5v_cpu_watts",
    "jetson_temp_pll_celsius",
    "jetson_temp_cpu_celsius",
    "jetson_temp_pmic_celsius",
    "jetson_temp_gpu_celsius",
    "jetson_temp_ao_celsius",
    "jetson_temp_thermal_celsius",
    "jetson_swap_cached_mb",
    "jetson_iram_used_percent",
];
