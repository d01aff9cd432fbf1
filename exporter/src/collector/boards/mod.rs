//! Collectors of the boards read from sysfs ([`crate::boards`]): `RaspberryPiCollector`,
//! `LattePandaCollector`, `OrangePiCollector`.
//!
//! Names follow the spec's Jetson patterns with the board as prefix (`rpi_`, `lattepanda_`,
//! `orangepi_`; docs/METRICS.md, "Other boards"): `{board}_temp_{zone}_celsius`,
//! `{board}_cpu_avg_usage_percent`, `{board}_ram_used_mb`, ... What only one board has is in
//! its own file: INA2xx power on the Pi (`raspberry_pi.rs`), RAPL energy on x86
//! (`lattepanda.rs`), GPU and NPU load on Rockchip (`orange_pi.rs`).

mod lattepanda;
mod orange_pi;
mod raspberry_pi;

use std::sync::Arc;
use std::time::Duration;

use super::{CollectError, Collector, Values};
use crate::boards::{Board, BoardHandle, Reading, Sample};
use crate::energy::EnergyMeter;

/// The source name collectors' errors show.
const SOURCE: &str = "sysfs";

/// Every metric-name prefix a board uses.
pub const PREFIXES: [&str; 3] = ["rpi_", "lattepanda_", "orangepi_"];

/// The metric-name prefix of `board` (with its `_`).
pub fn prefix(board: Board) -> &'static str {
    match board {
        Board::RaspberryPi => "rpi_",
        Board::LattePanda => "lattepanda_",
        Board::OrangePi => "orangepi_",
    }
}

/// The collector name `/health` shows.
pub fn collector_name(board: Board) -> &'static str {
    match board {
        Board::RaspberryPi => "RaspberryPiCollector",
        Board::LattePanda => "LattePandaCollector",
        Board::OrangePi => "OrangePiCollector",
    }
}

/// The board whose prefix `name` has.
fn board_of(name: &str) -> Option<(Board, &str)> {
    [Board::RaspberryPi, Board::LattePanda, Board::OrangePi]
        .into_iter()
        .find_map(|b| name.strip_prefix(prefix(b)).map(|rest| (b, rest)))
}

/// The values of one reading of `board` (without energy counters, which need the meter).
pub fn reading_values(board: Board, reading: &Reading) -> Values {
    let p = prefix(board);
    let mut out = Values::new();
    let mut put = |name: String, v: f64| {
        if v.is_finite() {
            out.insert(name, v);
        }
    };
    for (zone, celsius) in &reading.temps {
        put(format!("{p}temp_{zone}_celsius"), *celsius);
    }
    let mut active = 0u32;
    let (mut sum, mut with_usage) = (0.0, 0u32);
    for core in &reading.cores {
        let n = core.index;
        put(
            format!("{p}cpu_core{n}_status"),
            f64::from(u8::from(core.online)),
        );
        if !core.online {
            continue;
        }
        active += 1;
        if let Some(u) = core.usage_percent {
            put(format!("{p}cpu_core{n}_usage_percent"), u);
            sum += u;
            with_usage += 1;
        }
        if let Some(f) = core.freq_mhz {
            put(format!("{p}cpu_core{n}_freq_mhz"), f);
        }
    }
    if !reading.cores.is_empty() {
        put(format!("{p}cpu_active_cores"), f64::from(active));
        // Over online cores, and only when every one of them has a usage (not at the first
        // pass, which has no earlier /proc/stat to compare with).
        if with_usage > 0 && with_usage == active {
            put(
                format!("{p}cpu_avg_usage_percent"),
                sum / f64::from(with_usage),
            );
        }
    }
    if let Some(m) = &reading.memory {
        let mb = |kb: u64| kb as f64 / 1024.0;
        put(format!("{p}ram_used_mb"), mb(m.used_kb()));
        put(format!("{p}ram_total_mb"), mb(m.total_kb));
        if m.total_kb > 0 {
            put(
                format!("{p}ram_used_percent"),
                m.used_kb() as f64 / m.total_kb as f64 * 100.0,
            );
        }
        put(format!("{p}swap_used_mb"), mb(m.swap_used_kb()));
        put(format!("{p}swap_total_mb"), mb(m.swap_total_kb));
    }
    match board {
        Board::RaspberryPi => raspberry_pi::values(reading, &mut out),
        Board::LattePanda => lattepanda::values(reading, &mut out),
        Board::OrangePi => orange_pi::values(reading, &mut out),
    }
    out
}

/// Names every board enables on a fresh install (after its prefix).
const COMMON_DEFAULTS: &[&str] = &[
    "cpu_active_cores",
    "cpu_avg_usage_percent",
    "ram_total_mb",
    "ram_used_mb",
    "ram_used_percent",
];

/// Whether `name` (a board's metric) is enabled on a fresh install: temperatures, average CPU
/// usage and online cores, RAM, power and energy, GPU and NPU usage. Per-core series, clocks,
/// voltages, currents and swap start disabled, as on Jetson.
pub fn default_enabled(name: &str) -> bool {
    let Some((board, rest)) = board_of(name) else {
        return false;
    };
    let temperature = rest.starts_with("temp_") && rest.ends_with("_celsius");
    temperature
        || COMMON_DEFAULTS.contains(&rest)
        || match board {
            Board::RaspberryPi => raspberry_pi::default_enabled(rest),
            Board::LattePanda => lattepanda::default_enabled(rest),
            Board::OrangePi => orange_pi::default_enabled(rest),
        }
}

/// The names a brand-new config lists for `board` before any reading, sorted.
pub fn default_metrics(board: Board) -> Vec<String> {
    let mut names: Vec<String> = COMMON_DEFAULTS
        .iter()
        .map(|n| format!("{}{n}", prefix(board)))
        .collect();
    names.sort();
    names
}

/// `# HELP` text for a board metric.
pub fn help_text(name: &str) -> String {
    let Some((board, rest)) = board_of(name) else {
        return format!("Board value {name}");
    };
    let own = match board {
        Board::RaspberryPi => raspberry_pi::help_text(rest),
        Board::LattePanda => lattepanda::help_text(rest),
        Board::OrangePi => orange_pi::help_text(rest),
    };
    if let Some(text) = own {
        return text;
    }
    let fixed = match rest {
        "cpu_active_cores" => Some("Number of online CPU cores"),
        "cpu_avg_usage_percent" => {
            Some("Average CPU usage across online cores since the previous reading (/proc/stat)")
        }
        "ram_used_mb" => Some("RAM used in MB (total - free - buffers - cached, /proc/meminfo)"),
        "ram_total_mb" => Some("RAM size in MB (/proc/meminfo MemTotal)"),
        "ram_used_percent" => Some("RAM used, percent of the total"),
        "swap_used_mb" => Some("Swap used in MB"),
        "swap_total_mb" => Some("Swap configured in MB"),
        _ => None,
    };
    if let Some(text) = fixed {
        return text.to_owned();
    }
    if let Some(zone) = rest
        .strip_prefix("temp_")
        .and_then(|r| r.strip_suffix("_celsius"))
    {
        return format!("Temperature of thermal zone {zone} (sysfs thermal_zone type)");
    }
    if let Some(core) = rest.strip_prefix("cpu_core") {
        let digits = core.bytes().take_while(u8::is_ascii_digit).count();
        let (n, what) = core.split_at(digits);
        let text = match what {
            "_usage_percent" => Some("usage since the previous reading"),
            "_freq_mhz" => Some("frequency in MHz (cpufreq scaling_cur_freq)"),
            "_status" => Some("status (1 online, 0 offline)"),
            _ => None,
        };
        if let (false, Some(text)) = (n.is_empty(), text) {
            return format!("CPU core {n} {text}");
        }
    }
    format!("Board value {name}")
}

/// The collector of a board's latest reading; power readings are integrated into the meter.
pub struct BoardCollector {
    board: Board,
    source: Option<BoardHandle>,
    stale_after: Duration,
    energy: Arc<EnergyMeter>,
}

impl BoardCollector {
    /// A collector of `board` over `source`; a reading older than three `interval`s is stale.
    /// Without a source it reports that no reading has come.
    pub fn new(
        board: Board,
        source: Option<BoardHandle>,
        interval: Duration,
        energy: Arc<EnergyMeter>,
    ) -> BoardCollector {
        BoardCollector {
            board,
            source,
            stale_after: interval * 3,
            energy,
        }
    }
}

impl Collector for BoardCollector {
    fn name(&self) -> &'static str {
        collector_name(self.board)
    }

    fn collect(&self, out: &mut Values) -> Result<(), CollectError> {
        let Some(sample) = self.source.as_ref().and_then(BoardHandle::latest) else {
            return Err(CollectError::NoReading {
                source_name: SOURCE,
            });
        };
        let age = sample.at.elapsed();
        if age > self.stale_after {
            return Err(CollectError::Stale {
                source_name: SOURCE,
                age_secs: age.as_secs_f64(),
                limit_secs: self.stale_after.as_secs_f64(),
            });
        }
        sample_values(self.board, &sample, self.stale_after, &self.energy, out);
        Ok(())
    }
}

/// Every value of one sample of `board`, energy counters included: power readings are
/// integrated into `energy` at the sample's time, a gap over `max_gap` not bridged. What the
/// collector puts out for a fresh sample; the golden tests drive it directly.
pub fn sample_values(
    board: Board,
    sample: &Sample,
    max_gap: Duration,
    energy: &EnergyMeter,
    out: &mut Values,
) {
    out.append(&mut reading_values(board, &sample.reading));
    if board == Board::RaspberryPi {
        raspberry_pi::energy(energy, &sample.reading, sample.at, max_gap, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boards::Core;

    #[test]
    fn common_parts_are_named_with_the_board_prefix() {
        let reading = Reading {
            temps: vec![("soc".into(), 41.5), ("bigcore0".into(), 43.0)],
            cores: vec![
                Core {
                    index: 0,
                    online: true,
                    usage_percent: Some(10.0),
                    freq_mhz: Some(1800.0),
                },
                Core {
                    index: 1,
                    online: false,
                    usage_percent: None,
                    freq_mhz: None,
                },
                Core {
                    index: 2,
                    online: true,
                    usage_percent: Some(30.0),
                    freq_mhz: None,
                },
            ],
            ..Reading::default()
        };
        let v = reading_values(Board::OrangePi, &reading);
        assert_eq!(v["orangepi_temp_soc_celsius"], 41.5);
        assert_eq!(v["orangepi_temp_bigcore0_celsius"], 43.0);
        assert_eq!(v["orangepi_cpu_active_cores"], 2.0);
        assert_eq!(v["orangepi_cpu_avg_usage_percent"], 20.0);
        assert_eq!(v["orangepi_cpu_core1_status"], 0.0);
        assert!(!v.contains_key("orangepi_cpu_core1_usage_percent"));
        assert_eq!(v["orangepi_cpu_core0_freq_mhz"], 1800.0);
        // The first pass has no usage yet: no average rather than a wrong one.
        let mut first = reading.clone();
        first.cores[2].usage_percent = None;
        let v = reading_values(Board::LattePanda, &first);
        assert!(!v.contains_key("lattepanda_cpu_avg_usage_percent"));
        assert_eq!(v["lattepanda_cpu_active_cores"], 2.0);
    }

    #[test]
    fn defaults_and_help_texts_cover_every_board() {
        for board in [Board::RaspberryPi, Board::LattePanda, Board::OrangePi] {
            for name in default_metrics(board) {
                assert!(default_enabled(&name), "{name}");
                assert!(!help_text(&name).starts_with("Board value"), "{name}");
            }
        }
        assert!(default_enabled("rpi_temp_cpu_celsius"));
        assert!(!default_enabled("rpi_cpu_core0_usage_percent"));
        assert!(!default_enabled("jetson_ram_used_mb"));
        assert_eq!(collector_name(Board::OrangePi), "OrangePiCollector");
    }
}
