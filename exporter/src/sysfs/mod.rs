//! Readers of the kernel's own files (sysfs, procfs) under a host root, and the Jetson source
//! built on them.
//!
//! Reusable by any source or collector (other boards, energy counters); each reader is a small
//! function over a [`fs::Root`] that returns typed values in the kernel's units, plus a pure
//! parser of the file's text that the unit tests drive directly:
//!
//! - [`fs`]: [`fs::Root`] (`host_root`, default `/`, `/host` in containers), file and directory
//!   reads, and the error accounting every reader shares: a missing file is `None` (absent on
//!   this board); a file that exists but cannot be read or parsed is `None` too, and costs
//!   [`fs::read_errors`] (`edge_metrics_exporter_sysfs_read_errors_total`) and a DEBUG line.
//!   Nothing here panics on what a file holds.
//! - [`thermal`]: `/sys/devices/virtual/thermal/thermal_zone*/{type,temp}` (m°C; the `-256000`
//!   "sensor offline" value is dropped).
//! - [`hwmon`]: hwmon chips (`name`, `*_label`, `in*`/`curr*`/`power*`/`temp*`/`fan*`/`pwm*`
//!   inputs with their units) found by globbing, so a hwmon number that changes between boots
//!   does not matter.
//! - [`procfs`]: `/proc/stat` per-core CPU times and their usage between two reads,
//!   `/proc/meminfo`, `/proc/buddyinfo`.
//! - [`cpu`]: `/sys/devices/system/cpu`: which cores exist, their online state, cpufreq clocks.
//! - [`devfreq`]: `/sys/class/devfreq/*`: device-tree node name, load, current/min/max clock.
//!
//! The Jetson source ([`jetson`], [`source`]) turns one pass over these files into the same
//! model-free [`Line`](crate::tegrastats::line::Line) a tegrastats line parses into, so the
//! collector's one mapping names both and the metric names cannot diverge.

pub mod cpu;
pub mod devfreq;
pub mod fs;
pub mod hwmon;
pub mod jetson;
pub mod procfs;
pub mod source;
pub mod thermal;
