//! Jetson Xavier (and TX2-class boards): the names a fresh config enables.
//!
//! Rails and sensors are the spec's Xavier lists (Xavier NX). AGX Xavier prints `GPU CPU SOC CV
//! VDDRQ SYS5V` rails and TX2 `VDD_SYS_*`; those are enabled when first seen, as every rail's
//! current power is. The spec's Xavier example also enables the swap cache.

/// Written into a brand-new config before any line was seen (besides `common::DEFAULT_METRICS`).
pub(super) const DEFAULT_METRICS: &[&str] = &[
    "jetson_power_vdd_in_watts",
    "jetson_power_vdd_cpu_gpu_cv_watts",
    "jetson_power_vdd_soc_watts",
    "jetson_temp_aux_celsius",
    "jetson_temp_cpu_celsius",
    "jetson_temp_ao_celsius",
    "jetson_temp_gpu_celsius",
    "jetson_temp_pmic_celsius",
    "jetson_swap_cached_mb",
];
