//! `/metrics` render time for a realistic Jetson AGX Orin snapshot (target: < 100 µs).
//! Prints numbers; asserts nothing. `cargo bench -p edge-metrics-exporter --bench render`.

use std::time::{Duration, Instant, SystemTime};

use edge_metrics_exporter::collector::{CollectorStatus, Values};
use edge_metrics_exporter::exposition::{device_labels, Headers};
use edge_metrics_exporter::owner::render::{RenderInput, Renderer};
use edge_metrics_exporter::selfmetrics::{Counters, SelfInput};
use edge_metrics_exporter::tegrastats::source::SourceStats;

/// Every metric an AGX Orin (12 cores, JetPack 5) line yields, named as the spec's patterns.
fn orin_values() -> Values {
    let mut v = Values::new();
    for (k, x) in [
        ("jetson_ram_used_mb", 4321.0),
        ("jetson_ram_total_mb", 62801.0),
        ("jetson_ram_used_percent", 6.880463686884),
        ("jetson_swap_used_mb", 19.0),
        ("jetson_swap_total_mb", 31400.0),
        ("jetson_swap_cached_mb", 0.0),
        ("jetson_lfb_blocks", 1759.0),
        ("jetson_lfb_total_mb", 7036.0),
        ("jetson_cpu_avg_usage_percent", 3.25),
        ("jetson_cpu_active_cores", 12.0),
        ("jetson_gpu_usage_percent", 0.0),
        ("jetson_gpu_freq0_mhz", 0.0),
        ("jetson_gpu_freq1_mhz", 0.0),
        ("jetson_emc_usage_percent", 0.0),
        ("jetson_emc_freq_mhz", 2133.0),
        ("jetson_vic_freq_mhz", 729.0),
        ("jetson_ape_freq_mhz", 174.0),
    ] {
        v.insert(k.into(), x);
    }
    for core in 0..12 {
        v.insert(
            format!("jetson_cpu_core{core}_usage_percent"),
            f64::from(core % 5),
        );
        v.insert(format!("jetson_cpu_core{core}_freq_mhz"), 729.0);
        v.insert(format!("jetson_cpu_core{core}_status"), 1.0);
    }
    for (sensor, t) in [
        ("cpu", 44.562),
        ("gpu", 38.156),
        ("soc0", 41.093),
        ("soc1", 41.25),
        ("soc2", 40.093),
        ("tboard", 32.0),
        ("tdiode", 33.0),
        ("tj", 44.343),
    ] {
        v.insert(format!("jetson_temp_{sensor}_celsius"), t);
    }
    for (rail, w) in [
        ("vdd_gpu_soc", 2.34),
        ("vdd_cpu_cv", 0.39),
        ("vin_sys_5v0", 4.025),
        ("vddq_vdd2_1v8ao", 0.301),
    ] {
        v.insert(format!("jetson_power_{rail}_watts"), w);
        v.insert(format!("jetson_power_{rail}_avg_watts"), w);
    }
    for (k, x) in [
        ("power_total_watts", 45.3),
        ("power_voltage_volts", 220.5),
        ("power_current_amps", 0.205),
    ] {
        v.insert(k.into(), x);
    }
    v
}

fn main() {
    let values = orin_values();
    let labels = device_labels("jetson_orin", "edge-01");
    let statuses = vec![
        CollectorStatus {
            name: "JetsonOrinCollector",
            duration: Duration::from_micros(12),
            error: None,
        },
        CollectorStatus {
            name: "ShellyCollector",
            duration: Duration::from_micros(3),
            error: None,
        },
    ];
    let source = SourceStats::default();
    let counters = Counters::default();
    let device = edge_metrics_exporter::device::Identity::parse(
        b"NVIDIA Jetson AGX Orin Developer Kit\0",
        b"nvidia,p3737-0000+p3701-0000\0nvidia,p3701-0000\0nvidia,tegra234\0",
        "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64\n",
    );
    let enabled: Vec<(&str, f64)> = values.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let mut renderer = Renderer::default();
    let input = RenderInput {
        values: &enabled,
        labels: &labels,
        own: SelfInput {
            statuses: &statuses,
            source: &source,
            last_reading: Some(SystemTime::now()),
            counters: &counters,
            pushes: (0, 0),
            device: &device,
            power_mode: None,
        },
    };
    let body = renderer.render(&input);
    for _ in 0..200 {
        std::hint::black_box(renderer.render(&input));
    }
    let runs = 5_000;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        std::hint::black_box(renderer.render(std::hint::black_box(&input)));
        times.push(t.elapsed());
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / runs as u32;
    let pct = |p: f64| times[((runs as f64 * p) as usize).min(runs - 1)];
    println!(
        "render /metrics body: {} device values, {} bytes; mean {:?}, p50 {:?}, p99 {:?} over {runs} runs (includes reading /proc/self for process_*; target < 100 µs)",
        values.len(),
        body.len(),
        mean,
        pct(0.5),
        pct(0.99)
    );
    // The device/Shelly families alone (no /proc reads).
    let mut headers = Headers::default();
    let mut device_times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let mut out = String::with_capacity(16 * 1024);
        edge_metrics_exporter::exposition::write_device_values(
            &mut out,
            enabled.iter().copied(),
            &labels,
            &mut headers,
        );
        std::hint::black_box(out);
        device_times.push(t.elapsed());
    }
    device_times.sort();
    println!(
        "render device families only: p50 {:?}, p99 {:?}",
        device_times[runs / 2],
        device_times[runs * 99 / 100]
    );
    // What a scrape itself does: clone the pre-rendered body.
    let shared = bytes::Bytes::from(body);
    let t = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(shared.clone());
    }
    println!(
        "serve pre-rendered body: {:?} per scrape",
        t.elapsed() / runs as u32
    );
}
