//! What every model shares: one parsed [`Line`] → metric values named as the spec's patterns.
//!
//! tegrastats output describes itself (every field carries its name), so the mapping from a
//! line to values is the same for all models; a generic `jetson` device running Orin rules on a
//! Nano still gets its IRAM and bracket-less GPU clock. Models differ in which of these names a
//! fresh install enables (see `orin.rs`, `xavier.rs`, `nano.rs`).
//!
//! Decisions (documented in docs/METRICS.md):
//! - temperatures at or below -256 °C are the "zone unreadable" sentinel and are dropped;
//! - an offline core exports `status 0` and no usage/frequency series;
//! - `cpu_avg_usage_percent` averages online cores only and is absent when none is online or
//!   when a core entry did not parse (then `cpu_active_cores` is absent too);
//! - an engine printed `off` exports nothing;
//! - percentages are not derived from a zero total.

use crate::collector::Values;
use crate::tegrastats::line::{Core, EngineState, Line, TEMP_SENTINEL_MAX};

/// Names every model enables in a fresh config (besides rail power and temperatures).
pub(super) const DEFAULT_METRICS: &[&str] = &[
    "jetson_cpu_active_cores",
    "jetson_cpu_avg_usage_percent",
    "jetson_gpu_usage_percent",
    "jetson_ram_total_mb",
    "jetson_ram_used_mb",
    "jetson_ram_used_percent",
];

/// The model-independent part of the useful set: current rail power (not the running
/// average) and its energy counter, every temperature, and [`DEFAULT_METRICS`].
pub(super) fn useful(name: &str) -> bool {
    let rail_power = name.starts_with("jetson_power_")
        && (name.ends_with("_watts") || name.ends_with("_joules_total"))
        && !name.ends_with("_avg_watts");
    let temperature = name.starts_with("jetson_temp_") && name.ends_with("_celsius");
    rail_power || temperature || DEFAULT_METRICS.contains(&name)
}

/// Every value `line` carries.
pub(super) fn values(line: &Line) -> Values {
    // Families go in roughly descending name order (temp > swap/ram > power > mts > lfb/iram
    // > gpu > cpu > engines): a B-tree insert of a name below the others stops at the first
    // key of each node, which saves most string comparisons.
    let mut out = Out(Values::new());
    temperatures(line, &mut out);
    memory(line, &mut out);
    rails(line, &mut out);
    cpu_extras(line, &mut out);
    gpu(line, &mut out);
    cpu(line, &mut out);
    engines(line, &mut out);
    extras(line, &mut out);
    out.0
}

/// The values found so far; a repeated name keeps the later value.
struct Out(Values);

fn put(out: &mut Out, name: impl Into<String>, value: f64) {
    // Every parsed number is finite and every ratio has a non-zero divisor; this keeps a future
    // mistake from ever exporting NaN or inf.
    if value.is_finite() {
        out.0.insert(name.into(), value);
    }
}

/// `parts` joined: cheaper than formatting on this path, which runs for every value of every
/// line.
fn name(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(p);
    }
    s
}

/// Decimal text of a small index without allocating (cores, GPCs); larger ones are formatted.
fn index(n: usize, buf: &mut String) -> &str {
    const SMALL: [&str; 32] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
        "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31",
    ];
    match SMALL.get(n) {
        Some(text) => text,
        None => {
            *buf = n.to_string();
            buf
        }
    }
}

fn percent_of(used: f64, total: f64) -> Option<f64> {
    (total > 0.0).then(|| used / total * 100.0)
}

fn memory(line: &Line, out: &mut Out) {
    if let Some(ram) = &line.ram {
        put(out, "jetson_ram_used_mb", ram.used_mb);
        put(out, "jetson_ram_total_mb", ram.total_mb);
        if let Some(p) = percent_of(ram.used_mb, ram.total_mb) {
            put(out, "jetson_ram_used_percent", p);
        }
        if let Some(lfb) = &ram.lfb {
            put(out, "jetson_lfb_blocks", lfb.blocks);
            put(out, "jetson_lfb_total_mb", lfb.blocks * lfb.block_mb);
        }
    }
    if let Some(swap) = &line.swap {
        put(out, "jetson_swap_used_mb", swap.used_mb);
        put(out, "jetson_swap_total_mb", swap.total_mb);
        if let Some(cached) = swap.cached_mb {
            put(out, "jetson_swap_cached_mb", cached);
        }
    }
    if let Some(iram) = &line.iram {
        put(out, "jetson_iram_used_kb", iram.used_kb);
        put(out, "jetson_iram_total_kb", iram.total_kb);
        if let Some(p) = percent_of(iram.used_kb, iram.total_kb) {
            put(out, "jetson_iram_used_percent", p);
        }
        if let Some(lfb) = iram.lfb_kb {
            put(out, "jetson_iram_lfb_kb", lfb);
        }
    }
}

fn cpu(line: &Line, out: &mut Out) {
    let Some(cores) = &line.cpu else {
        return;
    };
    let mut active = 0u32;
    let mut sum = 0.0;
    let mut with_usage = 0u32;
    let mut complete = true;
    let mut buf = String::new();
    for (n, core) in cores.iter().enumerate().rev() {
        let n = index(n, &mut buf);
        match core {
            Core::Online {
                usage_percent,
                freq_mhz,
            } => {
                active += 1;
                if let Some(u) = usage_percent {
                    put(out, name(&["jetson_cpu_core", n, "_usage_percent"]), *u);
                    sum += u;
                    with_usage += 1;
                }
                put(out, name(&["jetson_cpu_core", n, "_status"]), 1.0);
                if let Some(f) = freq_mhz {
                    put(out, name(&["jetson_cpu_core", n, "_freq_mhz"]), *f);
                }
            }
            Core::Offline => put(out, name(&["jetson_cpu_core", n, "_status"]), 0.0),
            Core::Unreadable => complete = false,
        }
    }
    if complete {
        put(out, "jetson_cpu_active_cores", f64::from(active));
        if with_usage > 0 && with_usage == active {
            put(
                out,
                "jetson_cpu_avg_usage_percent",
                sum / f64::from(with_usage),
            );
        }
    }
}

fn cpu_extras(line: &Line, out: &mut Out) {
    if let Some(limit) = line.edp_limit_mhz {
        put(out, "jetson_cpu_edp_limit_mhz", limit);
    }
    if let Some(mts) = &line.mts {
        put(out, "jetson_mts_fg_percent", mts.fg_percent);
        put(out, "jetson_mts_bg_percent", mts.bg_percent);
    }
}

fn gpu(line: &Line, out: &mut Out) {
    if let Some(gpu) = &line.gpu {
        if let Some(u) = gpu.usage_percent {
            put(out, "jetson_gpu_usage_percent", u);
        }
        let mut buf = String::new();
        for (n, f) in gpu.freqs_mhz.iter().enumerate() {
            put(
                out,
                name(&["jetson_gpu_freq", index(n, &mut buf), "_mhz"]),
                *f,
            );
        }
    }
    // `GR3D2_FREQ` is the second GPC: its clock is freq1 (unless a bracket list gave one).
    if let Some(gpc1) = &line.gpu_gpc1 {
        if let Some(u) = gpc1.usage_percent {
            put(out, "jetson_gpu_gpc1_usage_percent", u);
        }
        let bracket_has_freq1 = line.gpu.as_ref().is_some_and(|g| g.freqs_mhz.len() > 1);
        if let (Some(f), false) = (gpc1.freq_mhz, bracket_has_freq1) {
            put(out, "jetson_gpu_freq1_mhz", f);
        }
    }
}

fn engines(line: &Line, out: &mut Out) {
    for engine in &line.engines {
        if let EngineState::On(load) = &engine.state {
            if let Some(u) = load.usage_percent {
                put(out, name(&["jetson_", &engine.name, "_usage_percent"]), u);
            }
            if let Some(f) = load.freq_mhz {
                put(out, name(&["jetson_", &engine.name, "_freq_mhz"]), f);
            }
        }
    }
}

/// Fields only the sysfs source reads (a tegrastats line leaves them empty).
fn extras(line: &Line, out: &mut Out) {
    let x = &line.extras;
    if let Some(pwm) = x.fan_pwm_percent {
        put(out, "jetson_fan_pwm_percent", pwm);
    }
    if let Some(rpm) = x.fan_rpm {
        put(out, "jetson_fan_rpm", rpm);
    }
    if let Some(mode) = &x.power_mode {
        put(out, "jetson_nvpmodel_id", f64::from(mode.id));
    }
    if let Some(pinned) = x.clocks_pinned {
        put(out, "jetson_clocks_active", f64::from(u8::from(pinned)));
    }
}

fn temperatures(line: &Line, out: &mut Out) {
    for t in &line.temps {
        if t.celsius > TEMP_SENTINEL_MAX {
            put(out, name(&["jetson_temp_", &t.name, "_celsius"]), t.celsius);
        }
    }
}

fn rails(line: &Line, out: &mut Out) {
    for r in &line.rails {
        put(
            out,
            name(&["jetson_power_", &r.name, "_watts"]),
            r.current_mw / 1000.0,
        );
        put(
            out,
            name(&["jetson_power_", &r.name, "_avg_watts"]),
            r.average_mw / 1000.0,
        );
    }
}
