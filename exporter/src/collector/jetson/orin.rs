//! Jetson Orin (and the generic `jetson` type): the names a fresh config enables.
//!
//! Rails and sensors are the spec's Orin lists (AGX Orin, JetPack 5/6). Orin Nano/NX boards
//! print `VDD_IN`/`VDD_CPU_GPU_CV`/`VDD_SOC` instead; those are enabled when first seen, as every
//! rail's current power is (see `common::useful`).

/// Written into a brand-new config before any line was seen (besides `common::DEFAULT_METRICS`).
pub(super) const DEFAULT_METRICS: &[&str] = &[
    "jetson_power_vdd_gpu_soc_watts",
    "jetson_power_vdd_cpu_cv_watts",
    "jetson_power_vddq_vdd2_1v8ao_watts",
    "jetson_power_vin_sys_5v0_watts",
    "jetson_temp_cpu_celsius",
    "jetson_temp_gpu_celsius",
    "jetson_temp_soc0_celsius",
    "jetson_temp_soc1_celsius",
    "jetson_temp_soc2_celsius",
    "jetson_temp_tboard_celsius",
    "jetson_temp_tdiode_celsius",
    "jetson_temp_tj_celsius",
];
