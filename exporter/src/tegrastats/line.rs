//! One tegrastats sample as a typed value: [`Line`].
//!
//! A `Line` holds what the line printed, in tegrastats' own units (MB, kB, MHz, mW, °C) and
//! nothing derived: percentages, watts and averages are computed by the per-model collectors
//! in `collector::jetson`. A field the line did not print is `None` or absent from its list,
//! never zero. Parsing lives in [`super::parse`].

/// The `MM-DD-YYYY HH:MM:SS` prefix of JetPack 5 and later (device local time, no zone).
///
/// It is recognised so that it is never mistaken for a metric; the exporter stamps samples with
/// its own clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp {
    /// Month, 1-12 as printed.
    pub month: u8,
    /// Day of the month as printed.
    pub day: u8,
    /// Four-digit year.
    pub year: u16,
    /// Hour, 24 h clock.
    pub hour: u8,
    /// Minute.
    pub minute: u8,
    /// Second.
    pub second: u8,
}

/// `RAM <used>/<total>MB (lfb <N>x<S><unit>)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Ram {
    /// RAM in use, MB.
    pub used_mb: f64,
    /// RAM available to applications, MB (below the module size).
    pub total_mb: f64,
    /// The largest-free-block figure, when it parsed.
    pub lfb: Option<Lfb>,
}

/// `lfb <N>x<S><unit>`: `N` free blocks of the largest size `S` (at most 4 MB).
#[derive(Clone, Debug, PartialEq)]
pub struct Lfb {
    /// How many free blocks of that size exist.
    pub blocks: f64,
    /// The block size in MB (`128kB` is 0.125).
    pub block_mb: f64,
}

/// `SWAP <used>/<total>MB (cached <c>MB)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Swap {
    /// Swap in use, MB.
    pub used_mb: f64,
    /// Swap configured, MB.
    pub total_mb: f64,
    /// Swap cache, MB, when printed and parsed.
    pub cached_mb: Option<f64>,
}

/// `IRAM <used>/<total>kB(lfb <l>kB)` (Tegra X1: Nano, TX1; root only).
#[derive(Clone, Debug, PartialEq)]
pub struct Iram {
    /// IRAM in use, kB.
    pub used_kb: f64,
    /// IRAM size, kB.
    pub total_kb: f64,
    /// Largest free block, kB, when printed and parsed.
    pub lfb_kb: Option<f64>,
}

/// One slot of the `CPU [...]` list. Offline cores keep their slot, so the index is the core.
#[derive(Clone, Debug, PartialEq)]
pub enum Core {
    /// The core is online; `<load>%@<MHz>` (either part may be missing in legacy output).
    Online {
        /// Load in percent of the current clock.
        usage_percent: Option<f64>,
        /// Current core clock, MHz.
        freq_mhz: Option<f64>,
    },
    /// `off`: hot-unplugged or disabled by the power mode.
    Offline,
    /// The entry did not parse (counted in [`Line::bad`]); its core yields no values.
    Unreadable,
}

/// The integrated GPU: `GR3D_FREQ X%@Y`, `X%@[Y,Z]`, `@[Y,Y,Y]`, `X%`, legacy `GR3D X%@Y`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gpu {
    /// Busy percent relative to the current clock; Thor prints none.
    pub usage_percent: Option<f64>,
    /// One clock per GPC in MHz, in printed order (empty when the clock is hidden).
    pub freqs_mhz: Vec<f64>,
}

/// The load and clock of an engine, either of which may be missing.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Load {
    /// Busy percent.
    pub usage_percent: Option<f64>,
    /// Clock, MHz.
    pub freq_mhz: Option<f64>,
}

/// What an engine token said.
#[derive(Clone, Debug, PartialEq)]
pub enum EngineState {
    /// `off`: the engine's clock is disabled (idle or power-gated); not an error.
    Off,
    /// A load and/or a clock.
    On(Load),
}

/// An engine with a clock and/or load: `EMC_FREQ`, `VIC_FREQ`, `VIC`, `APE`, `NVENC`, `NVDEC`,
/// `NVJPG1`, `NVDLA0`, `PVA0_FREQ`, `OFA_FREQ`, `NVENC_LOAD`, legacy `EMC`, `AVP`, `MSENC`, ...
#[derive(Clone, Debug, PartialEq)]
pub struct Engine {
    /// Lower-case name without `_FREQ`/`_LOAD` (`VIC_FREQ` → `vic`, `NVENC0_FREQ` → `nvenc0`).
    pub name: String,
    /// Its reading.
    pub state: EngineState,
}

/// `MTS fg X% bg Y%` (Denver/Carmel SoCs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mts {
    /// Time in foreground tasks, percent.
    pub fg_percent: f64,
    /// Time in background tasks, percent.
    pub bg_percent: f64,
}

/// A thermal zone: `<name>@<value>C` (the first value of the `a/b` form).
#[derive(Clone, Debug, PartialEq)]
pub struct Temp {
    /// Lower-case zone name (`Tboard` → `tboard`).
    pub name: String,
    /// Value as printed, including the `-256` "could not read" sentinel.
    pub celsius: f64,
}

/// A power-monitor rail: `<NAME> <current>/<average>` in mW, with or without the `mW` suffix.
#[derive(Clone, Debug, PartialEq)]
pub struct Rail {
    /// Lower-case rail name (`VDD_GPU_SOC` → `vdd_gpu_soc`).
    pub name: String,
    /// Instantaneous reading, mW.
    pub current_mw: f64,
    /// Running average since this tegrastats process started, mW.
    pub average_mw: f64,
}

/// A recognised field whose value did not parse. It yields no value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("tegrastats field `{field}` is malformed: {found:?}")]
pub struct FieldError {
    /// The field (`RAM`, `CPU`, `GR3D_FREQ`, `rail`, `temperature`, ...).
    pub field: &'static str,
    /// The text that failed, cut to a readable length.
    pub found: String,
}

/// The nvpmodel power mode: `/var/lib/nvpmodel/status` (`pmode:0002`) and its name in
/// `/etc/nvpmodel.conf` (`< POWER_MODEL ID=2 NAME=MAXN_SUPER >`).
#[derive(Clone, Debug, PartialEq)]
pub struct PowerMode {
    /// The mode's number (differs per module for the same name).
    pub id: u32,
    /// Its name, when the config file names it.
    pub name: Option<String>,
}

/// Fields tegrastats does not print. Only the sysfs source fills them; a parsed line leaves
/// them empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extras {
    /// The fan's duty cycle, percent (hwmon `pwm1`, 0–255).
    pub fan_pwm_percent: Option<f64>,
    /// The fan's speed, RPM (hwmon `rpm` or `fan1_input`).
    pub fan_rpm: Option<f64>,
    /// The nvpmodel power mode.
    pub power_mode: Option<PowerMode>,
    /// Whether `jetson_clocks` pins the clocks: every online core's and the GPU's minimum
    /// clock equals its maximum.
    pub clocks_pinned: Option<bool>,
}

/// One tegrastats sample. Fields the line did not print stay `None` / empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Line {
    /// The `MM-DD-YYYY HH:MM:SS` prefix, when present.
    pub timestamp: Option<Timestamp>,
    /// `RAM ...`.
    pub ram: Option<Ram>,
    /// `SWAP ...`.
    pub swap: Option<Swap>,
    /// `IRAM ...`.
    pub iram: Option<Iram>,
    /// `CPU [...]` (or legacy `cpu [...]@f`): one slot per core.
    pub cpu: Option<Vec<Core>>,
    /// `GR3D_FREQ ...` / legacy `GR3D ...`.
    pub gpu: Option<Gpu>,
    /// `GR3D2_FREQ X%@Y`: the second GPC on early JetPack 5 Orin.
    pub gpu_gpc1: Option<Load>,
    /// Every other clocked engine, in printed order (EMC, VIC, APE, NVENC, ...).
    pub engines: Vec<Engine>,
    /// `MTS fg X% bg Y%`.
    pub mts: Option<Mts>,
    /// Legacy `EDP limit N`: CPU frequency cap, MHz.
    pub edp_limit_mhz: Option<f64>,
    /// Thermal zones in printed order.
    pub temps: Vec<Temp>,
    /// Power rails in printed order (the `NC` channels are skipped).
    pub rails: Vec<Rail>,
    /// Tokens neither mapped nor explicitly ignored, verbatim (a new JetPack field shows here).
    pub unknown: Vec<String>,
    /// Recognised fields whose value did not parse.
    pub bad: Vec<FieldError>,
    /// Fields only the sysfs source reads.
    pub extras: Extras,
}

/// Temperatures at or below this are tegrastats' "could not read the zone" sentinel (`-256C`).
pub const TEMP_SENTINEL_MAX: f64 = -256.0;

impl Line {
    /// Whether the line carries at least one reading: a field with a value, a core slot that
    /// parsed, a temperature above the sentinel. A line without any (a recognised `RAM` token
    /// whose value did not parse and nothing else, or only sentinel temperatures) is not a
    /// sample worth publishing: it would refresh the reading's age while showing nothing.
    pub fn has_readings(&self) -> bool {
        let engine_on = |e: &Engine| matches!(&e.state, EngineState::On(l) if l.usage_percent.is_some() || l.freq_mhz.is_some());
        let gpc1 = self
            .gpu_gpc1
            .as_ref()
            .is_some_and(|l| l.usage_percent.is_some() || l.freq_mhz.is_some());
        let gpu = self
            .gpu
            .as_ref()
            .is_some_and(|g| g.usage_percent.is_some() || !g.freqs_mhz.is_empty());
        let cpu = self
            .cpu
            .as_ref()
            .is_some_and(|cores| cores.is_empty() || cores.iter().any(|c| *c != Core::Unreadable));
        self.ram.is_some()
            || self.swap.is_some()
            || self.iram.is_some()
            || cpu
            || gpu
            || gpc1
            || self.engines.iter().any(engine_on)
            || self.mts.is_some()
            || self.edp_limit_mhz.is_some()
            || self.temps.iter().any(|t| t.celsius > TEMP_SENTINEL_MAX)
            || !self.rails.is_empty()
    }

    /// The engine named `name` (lower case, e.g. `"emc"`), if the line printed it.
    pub fn engine(&self, name: &str) -> Option<&EngineState> {
        self.engines
            .iter()
            .find(|e| e.name == name)
            .map(|e| &e.state)
    }
}
