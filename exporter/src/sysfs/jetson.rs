//! One pass over a Jetson's kernel files → the model-free [`Line`] a tegrastats line parses
//! into, so the collector's one mapping names both and the names cannot diverge.
//!
//! | `Line` field | file(s) under the host root | note |
//! |---|---|---|
//! | `rails` | `sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/in{N}_{label,input}`, `curr{N}_input` (JetPack 5+); `sys/bus/i2c/drivers/ina3221x/*/iio:device*/rail_name_N`, `in_power{N}_input` (JetPack 4); hwmon `ina238` `power1_input` (Thor) | mW = mV × mA / 1000; labels with `NC` and the shunt-sum channel skipped; the average is the mean of every reading since the source started, as tegrastats' is since it started |
//! | `temps` | `sys/devices/virtual/thermal/thermal_zone*/{type,temp}` | name: `type` lower-cased up to its first `-` or `_` (`cpu-thermal` → `cpu`, `PMIC-Die` → `pmic`, `tboard_tegra` → `tboard`); `-256000` dropped |
//! | `gpu` | `sys/class/devfreq/*` whose `device/of_node/name` is `gv11b`, `gp10b`, `ga10b`, `gb10b` or `gpu`: `device/load` ÷ 10, `cur_freq`; Thor: `gpu-gpc-*`, clock only | |
//! | `cpu` | `proc/stat` deltas between two reads, `sys/devices/system/cpu/cpu*/online`, `cpufreq/scaling_cur_freq` | usage needs a previous read |
//! | `ram`, `swap` | `proc/meminfo` (used = total − free − buffers − cached), `proc/buddyinfo` (largest free block up to 4 MB) | MB = kB / 1024, whole |
//! | `engines` | debugfs: `sys/kernel/debug/bpmp/debug/clk/emc/rate` (or `…/debug/clk/emc/clk_rate`), `sys/kernel/debug/clk/<engine>/{clk_enable_count,clk_rate}` | root only |
//! | `extras` | hwmon `pwm1`, `rpm`/`fan1_input`; `var/lib/nvpmodel/status`, `etc/nvpmodel.conf`; cpufreq and devfreq min/max | not printed by tegrastats |
//!
//! Clocks are whole MHz (rounded down), as tegrastats prints them. What this board lacks is
//! said once at INFO by [`Reader::missing`]; files that exist but fail are counted (see
//! [`super::fs`]).

use std::collections::BTreeMap;

use super::fs::{self, Probe, Root};
use super::procfs::{self, CpuTimes};
use super::{cpu, devfreq, hwmon, thermal};
use crate::tegrastats::line::{
    Core, Engine, EngineState, Extras, Gpu, Lfb, Line, Load, PowerMode, Rail, Ram, Swap, Temp,
};

/// Device-tree node names of the integrated GPU's devfreq device.
pub const GPU_NODES: [&str; 5] = ["gv11b", "gp10b", "ga10b", "gb10b", "gpu"];

/// Engines read from debugfs, by their clock's name (tegrastats' lower-case names).
pub const ENGINES: [&str; 13] = [
    "ape", "nvenc", "nvenc1", "nvdec", "nvdec1", "nvjpg", "nvjpg1", "vic", "ofa", "nvdla0",
    "nvdla1", "pva0", "pva1",
];

/// The largest free block tegrastats reports: 4 MB, order 10 of 4 KiB pages.
const LFB_MAX_ORDER: usize = 10;

/// Parts of a reading a board may lack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// No power monitor (INA3221 hwmon or IIO, INA238).
    Rails,
    /// No thermal zone.
    Temps,
    /// No GPU devfreq device.
    Gpu,
    /// No `/proc/stat` or no CPU directory.
    Cpu,
    /// No `/proc/meminfo`.
    Memory,
    /// debugfs not readable (root and a mounted debugfs needed).
    Debugfs,
    /// No fan.
    Fan,
    /// No nvpmodel status.
    PowerMode,
}

impl Part {
    /// What the INFO line says.
    pub fn describe(self) -> &'static str {
        match self {
            Part::Rails => "power rails (no INA3221/INA238 under /sys/bus/i2c/drivers or /sys/class/hwmon)",
            Part::Temps => "temperatures (no /sys/devices/virtual/thermal/thermal_zone*)",
            Part::Gpu => "GPU load and clock (no /sys/class/devfreq device named gv11b, gp10b, ga10b, gb10b, gpu or gpu-gpc-*)",
            Part::Cpu => "CPU usage and clocks (/proc/stat or /sys/devices/system/cpu)",
            Part::Memory => "RAM and swap (/proc/meminfo)",
            Part::Debugfs => "EMC and engine clocks (/sys/kernel/debug not readable: it needs root and a mounted debugfs)",
            Part::Fan => "fan (no hwmon pwm1, rpm or fan1_input)",
            Part::PowerMode => "power mode (/var/lib/nvpmodel/status)",
        }
    }
}

/// Reads a Jetson's files; keeps what a reading needs from the one before (CPU times, the
/// rails' running averages).
#[derive(Debug)]
pub struct Reader {
    root: Root,
    prev_stat: Option<BTreeMap<u32, CpuTimes>>,
    /// Each core's latest usage, kept while `/proc/stat` shows no tick between two reads.
    last_usage: BTreeMap<u32, f64>,
    rail_sums: BTreeMap<String, (f64, u64)>,
    missing: Vec<Part>,
}

impl Reader {
    /// A reader of the files under `root`.
    pub fn new(root: Root) -> Reader {
        Reader {
            root,
            prev_stat: None,
            last_usage: BTreeMap::new(),
            rail_sums: BTreeMap::new(),
            missing: Vec::new(),
        }
    }

    /// What the latest [`Reader::read`] found absent, in a fixed order.
    pub fn missing(&self) -> &[Part] {
        &self.missing
    }

    /// One reading.
    pub fn read(&mut self) -> Line {
        self.missing.clear();
        let mut line = Line::default();
        let root = self.root.clone();
        let r = &root;
        let rails = read_rails(r);
        if rails.is_empty() {
            self.missing.push(Part::Rails);
        }
        line.rails = self.average(rails);
        line.temps = thermal::zones(r)
            .into_iter()
            .map(|z| Temp {
                name: zone_name(&z.kind),
                celsius: z.celsius,
            })
            .collect();
        if line.temps.is_empty() {
            self.missing.push(Part::Temps);
        }
        let gpus = gpu_devices(r);
        line.gpu = gpu(&gpus);
        if line.gpu.is_none() {
            self.missing.push(Part::Gpu);
        }
        let (cores, pinned) = self.cpu();
        line.cpu = cores;
        if line.cpu.is_none() {
            self.missing.push(Part::Cpu);
        }
        match procfs::read_memory(r) {
            Some(mem) => {
                let lfb = procfs::read_buddyinfo(r).and_then(|o| lfb(&o));
                line.ram = Some(Ram {
                    used_mb: mb(mem.used_kb()),
                    total_mb: mb(mem.total_kb),
                    lfb,
                });
                if mem.swap_total_kb > 0 {
                    line.swap = Some(Swap {
                        used_mb: mb(mem.swap_used_kb()),
                        total_mb: mb(mem.swap_total_kb),
                        cached_mb: Some(mb(mem.swap_cached_kb)),
                    });
                }
            }
            None => self.missing.push(Part::Memory),
        }
        match debugfs_engines(r) {
            Some(engines) => line.engines = engines,
            None => self.missing.push(Part::Debugfs),
        }
        let (pwm, rpm) = fan(r);
        if pwm.is_none() && rpm.is_none() {
            self.missing.push(Part::Fan);
        }
        let power_mode = power_mode(r);
        if power_mode.is_none() {
            self.missing.push(Part::PowerMode);
        }
        let gpu_pinned = gpus
            .iter()
            .find(|d| d.of_node.as_deref().is_some_and(|n| GPU_NODES.contains(&n)))
            .and_then(|d| Some(d.min_hz? == d.max_hz?));
        line.extras = Extras {
            fan_pwm_percent: pwm,
            fan_rpm: rpm,
            power_mode,
            clocks_pinned: match (pinned, gpu_pinned) {
                (Some(c), Some(g)) => Some(c && g),
                (c, None) => c,
                (None, Some(_)) => None,
            },
        };
        line
    }

    /// The cores' slots, and whether every online core's min clock equals its max.
    fn cpu(&mut self) -> (Option<Vec<Core>>, Option<bool>) {
        let r = &self.root;
        let ids = cpu::cores(r);
        let stat = procfs::read_stat(r);
        let Some(last) = ids.last().copied() else {
            self.prev_stat = stat;
            return (None, None);
        };
        let mut slots = vec![Core::Unreadable; last as usize + 1];
        let mut pinned: Option<bool> = None;
        for n in ids {
            let core = match cpu::online(r, n) {
                Some(false) => {
                    self.last_usage.remove(&n);
                    Core::Offline
                }
                None => Core::Unreadable,
                Some(true) => {
                    let f = cpu::freq(r, n);
                    if let (Some(min), Some(max)) = (f.min_khz, f.max_khz) {
                        pinned = Some(pinned.unwrap_or(true) && min == max);
                    }
                    let times = |s: &Option<BTreeMap<u32, CpuTimes>>| s.as_ref()?.get(&n).copied();
                    let usage = match (times(&self.prev_stat), times(&stat)) {
                        // No tick between the reads (the file did not change): the latest
                        // window's figure stays.
                        (Some(b), Some(a)) if a.total() == b.total() => {
                            self.last_usage.get(&n).copied()
                        }
                        (Some(b), Some(a)) => procfs::usage_percent(b, a),
                        _ => None,
                    };
                    match usage {
                        Some(u) => self.last_usage.insert(n, u),
                        None => self.last_usage.remove(&n),
                    };
                    Core::Online {
                        usage_percent: usage,
                        freq_mhz: f.cur_khz.map(|k| (k / 1000) as f64),
                    }
                }
            };
            slots[n as usize] = core;
        }
        self.prev_stat = stat;
        (Some(slots), pinned)
    }

    /// Adds each rail's reading to its running mean and fills in the average.
    fn average(&mut self, rails: Vec<Rail>) -> Vec<Rail> {
        rails
            .into_iter()
            .map(|mut rail| {
                let (sum, n) = self.rail_sums.entry(rail.name.clone()).or_insert((0.0, 0));
                *sum += rail.current_mw;
                *n += 1;
                rail.average_mw = *sum / *n as f64;
                rail
            })
            .collect()
    }
}

/// kB → whole MB, as tegrastats prints.
fn mb(kb: u64) -> f64 {
    (kb / 1024) as f64
}

/// A thermal zone's `type` → tegrastats' sensor name: lower-cased, up to the first `-` or `_`.
pub fn zone_name(kind: &str) -> String {
    kind.split(['-', '_'])
        .next()
        .unwrap_or(kind)
        .to_ascii_lowercase()
}

/// A rail label → tegrastats' lower-case name; other characters than letters, digits and `_`
/// become `_`.
pub fn rail_name(label: &str) -> String {
    label
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Whether a power-monitor channel label is a rail: not unconnected (`NC`), not the sum of
/// the shunt voltages.
pub fn is_rail_label(label: &str) -> bool {
    let upper = label.to_ascii_uppercase();
    !label.trim().is_empty()
        && !upper
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w == "NC")
        && !upper.contains("SUM")
}

/// Every rail of the board's power monitors, current power only (the average is the
/// reader's).
pub fn read_rails(root: &Root) -> Vec<Rail> {
    let mut rails = Vec::new();
    let rail = |label: &str, mw: f64| Rail {
        name: rail_name(label),
        current_mw: mw,
        average_mw: mw,
    };
    // JetPack 5+: INA3221 under hwmon; bus voltage in1..3 (mV) with labels, current (mA).
    for chip in hwmon::chips_at(root, "sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*") {
        for v in chip.of(hwmon::Kind::In) {
            // in4..in6 are shunt voltages and in7 their sum: no labels of their own.
            let Some(label) = v.label.as_deref().filter(|l| is_rail_label(l)) else {
                continue;
            };
            if v.index > 3 {
                continue;
            }
            if let Some(i) = chip.sensor(hwmon::Kind::Curr, v.index) {
                rails.push(rail(label, v.raw as f64 * i.raw as f64 / 1000.0));
            }
        }
    }
    // JetPack 4: INA3221 through IIO; rail_name_N, in_power{N}_input (mW).
    for dev in fs::glob(root, "sys/bus/i2c/drivers/ina3221x/*/iio:device*") {
        for n in 0..8 {
            let Some(label) = fs::text(&dev.join(format!("rail_name_{n}"))) else {
                continue;
            };
            if !is_rail_label(&label) {
                continue;
            }
            if let Some(mw) = fs::int(&dev.join(format!("in_power{n}_input"))) {
                rails.push(rail(&label, mw as f64));
            }
        }
    }
    // Thor: the module input on an INA238, power1_input in µW.
    for chip in hwmon::chips(root)
        .into_iter()
        .filter(|c| c.name == "ina238")
    {
        if let Some(p) = chip.sensor(hwmon::Kind::Power, 1) {
            let label = p.label.clone().unwrap_or_else(|| "VIN".into());
            if is_rail_label(&label) {
                rails.push(rail(&label, p.raw as f64 / 1000.0));
            }
        }
    }
    rails
}

/// The GPU's devfreq devices: the one named by its device-tree node, or Thor's per-GPC ones.
fn gpu_devices(root: &Root) -> Vec<devfreq::Device> {
    devfreq::devices(root)
        .into_iter()
        .filter(|d| {
            d.of_node.as_deref().is_some_and(|n| GPU_NODES.contains(&n))
                || d.name.starts_with("gpu-gpc-")
        })
        .collect()
}

fn gpu(devices: &[devfreq::Device]) -> Option<Gpu> {
    let mhz = |hz: u64| (hz / 1_000_000) as f64;
    if let Some(d) = devices
        .iter()
        .find(|d| d.of_node.as_deref().is_some_and(|n| GPU_NODES.contains(&n)))
    {
        return Some(Gpu {
            usage_percent: d.load_percent,
            freqs_mhz: d.cur_hz.map(mhz).into_iter().collect(),
        });
    }
    // Thor: one devfreq device per GPC, no load file.
    let gpcs: Vec<f64> = devices
        .iter()
        .filter(|d| d.name.starts_with("gpu-gpc-"))
        .filter_map(|d| d.cur_hz.map(mhz))
        .collect();
    (!gpcs.is_empty()).then_some(Gpu {
        usage_percent: None,
        freqs_mhz: gpcs,
    })
}

/// The largest free block up to 4 MB and how many there are, from free blocks per order.
pub fn lfb(orders: &[u64]) -> Option<Lfb> {
    let top = orders.len().min(LFB_MAX_ORDER + 1);
    let order = (0..top).rev().find(|&o| orders[o] > 0)?;
    Some(Lfb {
        blocks: orders[order] as f64,
        block_mb: (4096u64 << order) as f64 / (1024.0 * 1024.0),
    })
}

/// EMC and engine clocks from debugfs; `None` when debugfs cannot be read at all.
fn debugfs_engines(root: &Root) -> Option<Vec<Engine>> {
    let emc = [
        "/sys/kernel/debug/bpmp/debug/clk/emc/rate",
        "/sys/kernel/debug/clk/emc/clk_rate",
    ]
    .iter()
    .map(|p| root.join(p))
    .find_map(|p| match fs::probe(&p) {
        Probe::Text(t) => match fs::parse_int(&t) {
            Some(hz) if hz >= 0 => Some(hz as u64),
            _ => {
                fs::count_error(&p, &format!("not a rate in Hz: {:?}", fs::excerpt(&t)));
                None
            }
        },
        _ => None,
    });
    let mut engines = Vec::new();
    if let Some(hz) = emc {
        engines.push(Engine {
            name: "emc".into(),
            state: EngineState::On(Load {
                usage_percent: None,
                freq_mhz: Some((hz / 1_000_000) as f64),
            }),
        });
    }
    let clk = root.join("/sys/kernel/debug/clk");
    for name in ENGINES {
        let dir = clk.join(name);
        let Probe::Text(count) = fs::probe(&dir.join("clk_enable_count")) else {
            continue;
        };
        let state = match fs::parse_int(&count) {
            Some(0) => EngineState::Off,
            Some(_) => match fs::int(&dir.join("clk_rate")) {
                Some(hz) if hz >= 0 => EngineState::On(Load {
                    usage_percent: None,
                    freq_mhz: Some((hz as u64 / 1_000_000) as f64),
                }),
                _ => continue,
            },
            None => {
                fs::count_error(&dir.join("clk_enable_count"), "not an integer");
                continue;
            }
        };
        engines.push(Engine {
            name: name.to_owned(),
            state,
        });
    }
    // Not mounted, or mounted but nothing readable: without root the files are 0600.
    (!engines.is_empty()).then_some(engines)
}

/// The fan's duty cycle (percent) and speed (RPM), from the first hwmon chip that has each.
fn fan(root: &Root) -> (Option<f64>, Option<f64>) {
    let mut pwm = None;
    let mut rpm = None;
    for chip in hwmon::chips(root) {
        if pwm.is_none() {
            pwm = chip
                .sensor(hwmon::Kind::Pwm, 1)
                .filter(|s| (0..=255).contains(&s.raw))
                .map(|s| s.value() * 100.0);
        }
        if rpm.is_none() {
            rpm = chip
                .sensor(hwmon::Kind::Fan, 1)
                .map(|s| s.value())
                .or_else(|| {
                    // pwm-tach and the Tegra fan driver: a plain `rpm` file.
                    fs::probe(&chip.path.join("rpm"))
                        .text()
                        .and_then(|t| fs::parse_int(&t))
                        .filter(|v| *v >= 0)
                        .map(|v| v as f64)
                });
        }
    }
    (pwm, rpm)
}

/// `pmode:0002` → 2.
pub fn parse_status(text: &str) -> Option<u32> {
    let id = text.trim().strip_prefix("pmode:")?;
    fs::parse_int(id).and_then(|v| u32::try_from(v).ok())
}

/// The `NAME` of `< POWER_MODEL ID=<id> NAME=<name> >` in nvpmodel.conf.
pub fn mode_name(conf: &str, id: u32) -> Option<String> {
    conf.lines().find_map(|line| {
        let body = line.trim().strip_prefix('<')?.strip_suffix('>')?;
        let mut words = body.split_ascii_whitespace();
        if words.next()? != "POWER_MODEL" {
            return None;
        }
        let mut found_id = None;
        let mut name = None;
        for w in words {
            if let Some(v) = w.strip_prefix("ID=") {
                found_id = fs::parse_int(v);
            } else if let Some(v) = w.strip_prefix("NAME=") {
                name = Some(v.to_owned());
            }
        }
        (found_id == Some(i64::from(id))).then_some(name).flatten()
    })
}

fn power_mode(root: &Root) -> Option<PowerMode> {
    let path = root.join("/var/lib/nvpmodel/status");
    let text = fs::text(&path)?;
    let Some(id) = parse_status(&text) else {
        fs::count_error(&path, &format!("not pmode:<id>: {:?}", fs::excerpt(&text)));
        return None;
    };
    let name = fs::text(&root.join("/etc/nvpmodel.conf")).and_then(|c| mode_name(&c, id));
    Some(PowerMode { id, name })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_and_rail_names_follow_tegrastats() {
        for (kind, want) in [
            ("cpu-thermal", "cpu"),
            ("CPU-therm", "cpu"),
            ("PMIC-Die", "pmic"),
            ("thermal-fan-est", "thermal"),
            ("Tboard_tegra", "tboard"),
            ("soc012-thermal", "soc012"),
            ("tj-thermal", "tj"),
        ] {
            assert_eq!(zone_name(kind), want, "{kind}");
        }
        assert_eq!(rail_name("VDD_GPU_SOC"), "vdd_gpu_soc");
        assert_eq!(rail_name("POM_5V_IN"), "pom_5v_in");
        assert!(is_rail_label("VDD_CPU_CV"));
        assert!(!is_rail_label("NC"));
        assert!(!is_rail_label("NC_1"));
        assert!(is_rail_label("VDD_SYNC"), "NC inside a word is a rail");
        assert!(!is_rail_label("sum of shunt voltages"));
        assert!(!is_rail_label(" "));
    }

    #[test]
    fn lfb_is_the_largest_order_up_to_4mb() {
        let l = lfb(&[5, 0, 3, 0, 0, 0, 0, 0, 6]).unwrap();
        assert_eq!((l.blocks, l.block_mb), (6.0, 1.0));
        let l = lfb(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 9]).unwrap();
        assert_eq!(
            (l.blocks, l.block_mb),
            (2.0, 4.0),
            "order 11 is above the cap"
        );
        let l = lfb(&[0, 0, 0, 0, 0, 2]).unwrap();
        assert_eq!(l.block_mb, 0.125);
        assert!(lfb(&[0, 0]).is_none());
    }

    #[test]
    fn nvpmodel_status_and_names() {
        assert_eq!(parse_status("pmode:0002\n"), Some(2));
        assert_eq!(parse_status("pmode:x"), None);
        assert_eq!(parse_status("2"), None);
        let conf = "# comment\n< POWER_MODEL ID=0 NAME=MAXN >\nCPU_ONLINE CORE_0 1\n\
                    < POWER_MODEL ID=2 NAME=MAXN_SUPER >\n< PM_CONFIG DEFAULT=2 >\n";
        assert_eq!(mode_name(conf, 2).as_deref(), Some("MAXN_SUPER"));
        assert_eq!(mode_name(conf, 0).as_deref(), Some("MAXN"));
        assert_eq!(mode_name(conf, 7), None);
    }
}
