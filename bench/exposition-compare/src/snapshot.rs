//! The snapshot: every value the exporter yields for a Jetson AGX Orin (JetPack 6, 12 cores;
//! the 68 names and first values of `exporter/tests/golden/orin-agx-jp6.log.golden`, line 1)
//! plus a Shelly plug's 8 gauges. 76 gauge families, each with one sample labelled `device_type` and
//! `hostname`.

/// Labels on every sample.
pub const DEVICE_TYPE: &str = "jetson_orin";
/// Labels on every sample.
pub const HOSTNAME: &str = "edge-01";

/// Family names and their values in the first cycle.
pub const METRICS: [(&str, f64); 76] = [
    ("jetson_ape_freq_mhz", 174.0),
    ("jetson_cpu_active_cores", 12.0),
    ("jetson_cpu_avg_usage_percent", 3.0),
    ("jetson_cpu_core0_freq_mhz", 729.0),
    ("jetson_cpu_core0_status", 1.0),
    ("jetson_cpu_core0_usage_percent", 5.0),
    ("jetson_cpu_core10_freq_mhz", 729.0),
    ("jetson_cpu_core10_status", 1.0),
    ("jetson_cpu_core10_usage_percent", 1.0),
    ("jetson_cpu_core11_freq_mhz", 729.0),
    ("jetson_cpu_core11_status", 1.0),
    ("jetson_cpu_core11_usage_percent", 7.0),
    ("jetson_cpu_core1_freq_mhz", 729.0),
    ("jetson_cpu_core1_status", 1.0),
    ("jetson_cpu_core1_usage_percent", 1.0),
    ("jetson_cpu_core2_freq_mhz", 729.0),
    ("jetson_cpu_core2_status", 1.0),
    ("jetson_cpu_core2_usage_percent", 0.0),
    ("jetson_cpu_core3_freq_mhz", 729.0),
    ("jetson_cpu_core3_status", 1.0),
    ("jetson_cpu_core3_usage_percent", 9.0),
    ("jetson_cpu_core4_freq_mhz", 729.0),
    ("jetson_cpu_core4_status", 1.0),
    ("jetson_cpu_core4_usage_percent", 1.0),
    ("jetson_cpu_core5_freq_mhz", 729.0),
    ("jetson_cpu_core5_status", 1.0),
    ("jetson_cpu_core5_usage_percent", 3.0),
    ("jetson_cpu_core6_freq_mhz", 729.0),
    ("jetson_cpu_core6_status", 1.0),
    ("jetson_cpu_core6_usage_percent", 5.0),
    ("jetson_cpu_core7_freq_mhz", 729.0),
    ("jetson_cpu_core7_status", 1.0),
    ("jetson_cpu_core7_usage_percent", 0.0),
    ("jetson_cpu_core8_freq_mhz", 729.0),
    ("jetson_cpu_core8_status", 1.0),
    ("jetson_cpu_core8_usage_percent", 3.0),
    ("jetson_cpu_core9_freq_mhz", 729.0),
    ("jetson_cpu_core9_status", 1.0),
    ("jetson_cpu_core9_usage_percent", 1.0),
    ("jetson_emc_freq_mhz", 2133.0),
    ("jetson_emc_usage_percent", 0.0),
    ("jetson_gpu_freq0_mhz", 305.0),
    ("jetson_gpu_freq1_mhz", 305.0),
    ("jetson_gpu_usage_percent", 0.0),
    ("jetson_lfb_blocks", 3.0),
    ("jetson_lfb_total_mb", 12.0),
    ("jetson_power_vdd_cpu_cv_avg_watts", 0.4),
    ("jetson_power_vdd_cpu_cv_watts", 0.4),
    ("jetson_power_vdd_gpu_soc_avg_watts", 2.801),
    ("jetson_power_vdd_gpu_soc_watts", 2.801),
    ("jetson_power_vddq_vdd2_1v8ao_avg_watts", 0.604),
    ("jetson_power_vddq_vdd2_1v8ao_watts", 0.604),
    ("jetson_power_vin_sys_5v0_avg_watts", 4.536),
    ("jetson_power_vin_sys_5v0_watts", 4.536),
    ("jetson_ram_total_mb", 62841.0),
    ("jetson_ram_used_mb", 6879.0),
    ("jetson_ram_used_percent", 10.946674941519072),
    ("jetson_swap_cached_mb", 0.0),
    ("jetson_swap_total_mb", 31421.0),
    ("jetson_swap_used_mb", 0.0),
    ("jetson_temp_cpu_celsius", 47.687),
    ("jetson_temp_gpu_celsius", 43.218),
    ("jetson_temp_soc0_celsius", 45.718),
    ("jetson_temp_soc1_celsius", 45.125),
    ("jetson_temp_soc2_celsius", 44.312),
    ("jetson_temp_tboard_celsius", 36.75),
    ("jetson_temp_tdiode_celsius", 37.5),
    ("jetson_temp_tj_celsius", 47.687),
    // Shelly plug (via shelly-bridge), all gauges.
    ("power_apparent_voltamperes", 47.9),
    ("power_current_amps", 0.205),
    ("power_factor", 0.94),
    ("power_frequency_hertz", 50.0),
    ("power_switch_on", 1.0),
    ("power_temperature_celsius", 38.4),
    ("power_total_watts", 45.3),
    ("power_voltage_volts", 230.1),
];

/// `# HELP` texts in [`METRICS`] order, as the exporter writes them (`help_text` in
/// `exporter/src/collector/jetson/help.rs` and `exporter/src/collector/shelly.rs`).
pub const HELP: [&str; 76] = [
    "Audio processing engine (APE) frequency in MHz", // jetson_ape_freq_mhz
    "Number of online CPU cores",                     // jetson_cpu_active_cores
    "Average CPU usage across online cores",          // jetson_cpu_avg_usage_percent
    "CPU core 0 frequency in MHz",                    // jetson_cpu_core0_freq_mhz
    "CPU core 0 status (1 online, 0 offline)",        // jetson_cpu_core0_status
    "CPU core 0 usage",                               // jetson_cpu_core0_usage_percent
    "CPU core 10 frequency in MHz",                   // jetson_cpu_core10_freq_mhz
    "CPU core 10 status (1 online, 0 offline)",       // jetson_cpu_core10_status
    "CPU core 10 usage",                              // jetson_cpu_core10_usage_percent
    "CPU core 11 frequency in MHz",                   // jetson_cpu_core11_freq_mhz
    "CPU core 11 status (1 online, 0 offline)",       // jetson_cpu_core11_status
    "CPU core 11 usage",                              // jetson_cpu_core11_usage_percent
    "CPU core 1 frequency in MHz",                    // jetson_cpu_core1_freq_mhz
    "CPU core 1 status (1 online, 0 offline)",        // jetson_cpu_core1_status
    "CPU core 1 usage",                               // jetson_cpu_core1_usage_percent
    "CPU core 2 frequency in MHz",                    // jetson_cpu_core2_freq_mhz
    "CPU core 2 status (1 online, 0 offline)",        // jetson_cpu_core2_status
    "CPU core 2 usage",                               // jetson_cpu_core2_usage_percent
    "CPU core 3 frequency in MHz",                    // jetson_cpu_core3_freq_mhz
    "CPU core 3 status (1 online, 0 offline)",        // jetson_cpu_core3_status
    "CPU core 3 usage",                               // jetson_cpu_core3_usage_percent
    "CPU core 4 frequency in MHz",                    // jetson_cpu_core4_freq_mhz
    "CPU core 4 status (1 online, 0 offline)",        // jetson_cpu_core4_status
    "CPU core 4 usage",                               // jetson_cpu_core4_usage_percent
    "CPU core 5 frequency in MHz",                    // jetson_cpu_core5_freq_mhz
    "CPU core 5 status (1 online, 0 offline)",        // jetson_cpu_core5_status
    "CPU core 5 usage",                               // jetson_cpu_core5_usage_percent
    "CPU core 6 frequency in MHz",                    // jetson_cpu_core6_freq_mhz
    "CPU core 6 status (1 online, 0 offline)",        // jetson_cpu_core6_status
    "CPU core 6 usage",                               // jetson_cpu_core6_usage_percent
    "CPU core 7 frequency in MHz",                    // jetson_cpu_core7_freq_mhz
    "CPU core 7 status (1 online, 0 offline)",        // jetson_cpu_core7_status
    "CPU core 7 usage",                               // jetson_cpu_core7_usage_percent
    "CPU core 8 frequency in MHz",                    // jetson_cpu_core8_freq_mhz
    "CPU core 8 status (1 online, 0 offline)",        // jetson_cpu_core8_status
    "CPU core 8 usage",                               // jetson_cpu_core8_usage_percent
    "CPU core 9 frequency in MHz",                    // jetson_cpu_core9_freq_mhz
    "CPU core 9 status (1 online, 0 offline)",        // jetson_cpu_core9_status
    "CPU core 9 usage",                               // jetson_cpu_core9_usage_percent
    "Memory controller (EMC) frequency in MHz",       // jetson_emc_freq_mhz
    "Memory controller (EMC) usage",                  // jetson_emc_usage_percent
    "GPU frequency of graphics processing cluster 0 in MHz", // jetson_gpu_freq0_mhz
    "GPU frequency of graphics processing cluster 1 in MHz", // jetson_gpu_freq1_mhz
    "GPU usage",                                      // jetson_gpu_usage_percent
    "Number of free RAM blocks of the largest free block size (lfb)", // jetson_lfb_blocks
    "Total size of the largest free RAM blocks in MB (blocks times block size)", // jetson_lfb_total_mb
    "CPU/CV power consumption, average since tegrastats started", // jetson_power_vdd_cpu_cv_avg_watts
    "CPU/CV power consumption",                                   // jetson_power_vdd_cpu_cv_watts
    "GPU/SoC power consumption, average since tegrastats started", // jetson_power_vdd_gpu_soc_avg_watts
    "GPU/SoC power consumption",                                   // jetson_power_vdd_gpu_soc_watts
    "DRAM and always-on 1.8V power consumption, average since tegrastats started", // jetson_power_vddq_vdd2_1v8ao_avg_watts
    "DRAM and always-on 1.8V power consumption", // jetson_power_vddq_vdd2_1v8ao_watts
    "System 5V input (carrier side) power consumption, average since tegrastats started", // jetson_power_vin_sys_5v0_avg_watts
    "System 5V input (carrier side) power consumption", // jetson_power_vin_sys_5v0_watts
    "RAM available to applications in MB",              // jetson_ram_total_mb
    "RAM used in MB",                                   // jetson_ram_used_mb
    "RAM used, percent of the total",                   // jetson_ram_used_percent
    "Swap cache in MB",                                 // jetson_swap_cached_mb
    "Swap configured in MB",                            // jetson_swap_total_mb
    "Swap used in MB",                                  // jetson_swap_used_mb
    "CPU temperature",                                  // jetson_temp_cpu_celsius
    "GPU temperature",                                  // jetson_temp_gpu_celsius
    "SoC zone 0 temperature",                           // jetson_temp_soc0_celsius
    "SoC zone 1 temperature",                           // jetson_temp_soc1_celsius
    "SoC zone 2 temperature",                           // jetson_temp_soc2_celsius
    "Board temperature",                                // jetson_temp_tboard_celsius
    "SoC diode (remote channel of the board sensor) temperature", // jetson_temp_tdiode_celsius
    "Junction (hottest SoC zone) temperature",          // jetson_temp_tj_celsius
    "Apparent power at the wall plug (Shelly)",         // power_apparent_voltamperes
    "AC current drawn at the wall plug (Shelly)",       // power_current_amps
    "Power factor at the wall plug (Shelly)",           // power_factor
    "AC frequency at the wall plug (Shelly)",           // power_frequency_hertz
    "Whether the wall plug's relay is on (1) or off (0) (Shelly)", // power_switch_on
    "Temperature of the wall plug (Shelly)",            // power_temperature_celsius
    "Total AC power drawn at the wall plug (Shelly)",   // power_total_watts
    "AC voltage at the wall plug (Shelly)",             // power_voltage_volts
];

/// The family names, in [`METRICS`] order.
pub const NAMES: [&str; 76] = {
    let mut names = [""; 76];
    let mut i = 0;
    while i < 76 {
        names[i] = METRICS[i].0;
        i += 1;
    }
    names
};

/// The `# HELP` text of `name` (from [`HELP`]); every variant registers the same text.
pub fn help(name: &str) -> &'static str {
    NAMES
        .iter()
        .position(|n| *n == name)
        .map_or("", |i| HELP[i])
}

/// Fills `out` with the values of `cycle`: every value moves each cycle, integers stay integers
/// (MHz, MB, core counts), readings with a fraction get a new fraction (W, °C, %), as the
/// exporter sees them.
pub fn values_at(cycle: u64, out: &mut [f64]) {
    for (i, ((_, base), slot)) in METRICS.iter().zip(out.iter_mut()).enumerate() {
        let step = (cycle.wrapping_mul(31).wrapping_add(i as u64 * 7) % 97) as f64;
        *slot = if base.fract() == 0.0 {
            base + step
        } else {
            base + step * 0.013
        };
    }
}
