//! Boards read from the kernel's own files: Raspberry Pi (INA2xx power monitors), x86 boards
//! with Intel RAPL (LattePanda) and Rockchip RK3588 boards (Orange Pi 5). No tegrastats.
//!
//! [`BoardSource`] is the source: a task that reads the board's files once per interval under
//! `host_root` ([`Reader::read`], on the blocking pool) and publishes a typed, model-free
//! [`Reading`] in SI units with the time it was taken. Collectors
//! (`collector::{raspberry_pi, lattepanda, orange_pi}`) name its values. The file readers are
//! the shared ones in [`crate::sysfs`]; what only these boards have is here: [`rapl`], the
//! INA2xx chips ([`ina2xx`]) and the Rockchip NPU load ([`rknpu`]).
//!
//! Every file that exists but cannot be read or parsed costs
//! `edge_metrics_exporter_sysfs_read_errors_total` and a DEBUG line; a part a board does not
//! have (no INA chip, no RAPL, debugfs without root) is said once at INFO or WARN, and the rest
//! is read as usual.

pub mod ina2xx;
pub mod rapl;
pub mod rknpu;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::sysfs::fs::Root;
use crate::sysfs::{cpu, devfreq, procfs, thermal};

/// A board family read from sysfs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Board {
    /// Raspberry Pi: INA2xx power monitors, the SoC thermal zone, CPU and RAM.
    RaspberryPi,
    /// Any x86 board with Intel RAPL (LattePanda): RAPL energy, thermal zones, CPU and RAM.
    LattePanda,
    /// Rockchip RK3588 (Orange Pi 5): thermal zones, GPU and NPU load, CPU and RAM.
    OrangePi,
}

/// One core's state.
#[derive(Clone, Debug, PartialEq)]
pub struct Core {
    /// The core number.
    pub index: u32,
    /// Whether it is online.
    pub online: bool,
    /// Busy percent since the previous read (absent at the first read and for offline cores).
    pub usage_percent: Option<f64>,
    /// cpufreq `scaling_cur_freq`, MHz.
    pub freq_mhz: Option<f64>,
}

/// One INA2xx power monitor.
#[derive(Clone, Debug, PartialEq)]
pub struct PowerSensor {
    /// The metric part of its name: the chip's `label`, else its driver name (a number is
    /// added when several chips share one).
    pub name: String,
    /// Bus voltage, V (`in1_input`, mV).
    pub volts: Option<f64>,
    /// Current, A (`curr1_input`, mA).
    pub amps: Option<f64>,
    /// Power, W (`power1_input`, µW).
    pub watts: Option<f64>,
}

/// A load and a clock (GPU, NPU).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Engine {
    /// Busy percent.
    pub usage_percent: Option<f64>,
    /// Busy percent of each core (NPU), in core order.
    pub cores_percent: Vec<f64>,
    /// Current clock, MHz.
    pub freq_mhz: Option<f64>,
}

/// What one pass over a board's files found, in SI units. A part the board does not have, or
/// that could not be read, is empty or `None`, never zero.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reading {
    /// Thermal zones: metric part of the zone's type (`soc`, `bigcore0`, `cpu`), °C.
    pub temps: Vec<(String, f64)>,
    /// CPU cores.
    pub cores: Vec<Core>,
    /// `/proc/meminfo`.
    pub memory: Option<procfs::Memory>,
    /// INA2xx power monitors (Raspberry Pi).
    pub power: Vec<PowerSensor>,
    /// RAPL zones (x86).
    pub rapl: Vec<rapl::ZoneReading>,
    /// The GPU (Rockchip devfreq `*.gpu`).
    pub gpu: Option<Engine>,
    /// The NPU (Rockchip debugfs `rknpu/load`, devfreq `*.npu`).
    pub npu: Option<Engine>,
}

/// One published reading and when it was taken.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The reading.
    pub reading: Reading,
    /// When the pass started (monotonic: staleness, energy integration).
    pub at: Instant,
}

/// The metric part of a thermal zone's type: `bigcore0-thermal` → `bigcore0`, `cpu-thermal` →
/// `cpu`, `x86_pkg_temp` → `x86_pkg_temp`.
pub fn zone_part(kind: &str) -> String {
    let part = rapl::metric_part(kind);
    match part.strip_suffix("_thermal") {
        Some(stem) if !stem.is_empty() => stem.to_owned(),
        _ => part,
    }
}

/// Reads one board's files, keeping what must survive between passes (CPU times, RAPL
/// counters, what was already said).
#[derive(Debug)]
pub struct Reader {
    board: Board,
    root: Root,
    stat: Option<BTreeMap<u32, procfs::CpuTimes>>,
    rapl: rapl::Rapl,
    npu: rknpu::NpuLoad,
    told: BTreeMap<&'static str, bool>,
}

impl Reader {
    /// A reader of `board`'s files under `root`.
    pub fn new(board: Board, root: Root) -> Reader {
        Reader {
            board,
            root,
            stat: None,
            rapl: rapl::Rapl::new(),
            npu: rknpu::NpuLoad::default(),
            told: BTreeMap::new(),
        }
    }

    /// One pass over the board's files, taken at `at`.
    pub fn read(&mut self, at: Instant) -> Reading {
        let mut r = Reading {
            temps: self.temps(),
            cores: self.cores(),
            memory: procfs::read_memory(&self.root),
            ..Reading::default()
        };
        match self.board {
            Board::RaspberryPi => {
                r.power = ina2xx::sensors(&self.root);
                if r.power.is_empty() {
                    self.say_once(
                        "ina2xx",
                        "No INA2xx power monitor under /sys/class/hwmon (ina219, ina226, ina238, \
                         ina260, ...); enable one with a dtoverlay (i2c-sensor) for power \
                         readings, or use a Shelly plug. Temperatures, CPU and RAM are exported.",
                    );
                }
            }
            Board::LattePanda => {
                r.rapl = self.rapl.read(&self.root, at);
                if r.rapl.is_empty() {
                    self.say_once(
                        "rapl",
                        "No readable Intel RAPL zone under /sys/class/powercap; no power or \
                         energy readings. Temperatures, CPU and RAM are exported.",
                    );
                }
            }
            Board::OrangePi => {
                let devices = devfreq::devices(&self.root);
                let mhz = |d: &devfreq::Device| d.cur_hz.map(|hz| hz as f64 / 1e6);
                r.gpu = devices
                    .iter()
                    .find(|d| d.name.ends_with(".gpu"))
                    .map(|d| Engine {
                        usage_percent: d.load_percent,
                        cores_percent: Vec::new(),
                        freq_mhz: mhz(d),
                    });
                let npu_freq = devices
                    .iter()
                    .find(|d| d.name.ends_with(".npu"))
                    .and_then(mhz);
                let cores = self.npu.read(&self.root);
                if cores.is_some() || npu_freq.is_some() {
                    let cores = cores.unwrap_or_default();
                    let usage_percent =
                        (!cores.is_empty()).then(|| cores.iter().sum::<f64>() / cores.len() as f64);
                    r.npu = Some(Engine {
                        usage_percent,
                        cores_percent: cores,
                        freq_mhz: npu_freq,
                    });
                }
            }
        }
        r
    }

    fn say_once(&mut self, key: &'static str, message: &'static str) {
        if !self.told.insert(key, true).unwrap_or(false) {
            info!(host_root = %self.root.base().display(), "{message}");
        }
    }

    fn temps(&self) -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> = Vec::new();
        for zone in thermal::zones(&self.root) {
            let mut part = zone_part(&zone.kind);
            if part.is_empty() {
                part = format!("zone{}", zone.index);
            }
            // Two zones of one type (x86 `acpitz`) are told apart by the zone number.
            if out.iter().any(|(p, _)| *p == part) {
                part = format!("{part}_{}", zone.index);
            }
            out.push((part, zone.celsius));
        }
        out
    }

    fn cores(&mut self) -> Vec<Core> {
        let stat = procfs::read_stat(&self.root);
        let before = std::mem::replace(&mut self.stat, stat);
        let mut out = Vec::new();
        for index in cpu::cores(&self.root) {
            let online = cpu::online(&self.root, index).unwrap_or(true);
            let usage_percent = match (online, &before, &self.stat) {
                (true, Some(b), Some(a)) => match (b.get(&index), a.get(&index)) {
                    (Some(b), Some(a)) => procfs::usage_percent(*b, *a),
                    _ => None,
                },
                _ => None,
            };
            let freq_mhz = online
                .then(|| cpu::freq(&self.root, index).cur_khz)
                .flatten()
                .map(|khz| khz as f64 / 1e3);
            out.push(Core {
                index,
                online,
                usage_percent,
                freq_mhz,
            });
        }
        out
    }
}

/// Where collectors find the latest reading.
#[derive(Clone, Debug)]
pub struct BoardHandle {
    latest: watch::Receiver<Option<Arc<Sample>>>,
}

impl BoardHandle {
    /// The latest reading, if any.
    pub fn latest(&self) -> Option<Arc<Sample>> {
        self.latest.borrow().clone()
    }
}

/// The running source task.
pub struct BoardSource {
    latest: watch::Sender<Option<Arc<Sample>>>,
    cancel: CancellationToken,
}

impl BoardSource {
    /// Starts reading `board`'s files under `root` every `interval` (the first pass at once).
    /// Needs a Tokio runtime; stops when `shutdown` is cancelled or the source is dropped.
    pub fn start(
        board: Board,
        root: Root,
        interval: Duration,
        shutdown: &CancellationToken,
    ) -> BoardSource {
        let (latest, _) = watch::channel(None);
        let cancel = shutdown.child_token();
        info!(
            board = ?board,
            host_root = %root.base().display(),
            interval_ms = interval.as_millis() as u64,
            "Reading the board's sysfs files (no tegrastats)."
        );
        tokio::spawn(run(
            Reader::new(board, root),
            interval.max(Duration::from_millis(10)),
            latest.clone(),
            cancel.clone(),
        ));
        BoardSource { latest, cancel }
    }

    /// A handle for collectors.
    pub fn handle(&self) -> BoardHandle {
        BoardHandle {
            latest: self.latest.subscribe(),
        }
    }
}

impl Drop for BoardSource {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn run(
    mut reader: Reader,
    interval: Duration,
    latest: watch::Sender<Option<Arc<Sample>>>,
    cancel: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let at = Instant::now();
        // A pass reads a few dozen small files; on the blocking pool, so a slow one (debugfs,
        // a busy I2C bus behind hwmon) never holds up the runtime's workers.
        let pass = tokio::task::spawn_blocking(move || {
            let reading = reader.read(at);
            (reader, reading)
        });
        match pass.await {
            Ok((back, reading)) => {
                reader = back;
                latest.send_replace(Some(Arc::new(Sample { reading, at })));
            }
            Err(error) => {
                warn!(%error, "The board's read pass failed; no further readings.");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_types_become_metric_parts() {
        assert_eq!(zone_part("bigcore0-thermal"), "bigcore0");
        assert_eq!(zone_part("cpu-thermal"), "cpu");
        assert_eq!(zone_part("x86_pkg_temp"), "x86_pkg_temp");
        assert_eq!(zone_part("-thermal"), "thermal");
        assert_eq!(zone_part("INT3400 Thermal"), "int3400");
    }
}
