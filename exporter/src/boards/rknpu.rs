//! The Rockchip NPU's load: `/sys/kernel/debug/rknpu/load` (debugfs, root only).
//!
//! The vendor driver prints `NPU load:  Core0:  0%, Core1:  0%, Core2:  0%,` on RK3588 (three
//! cores) and `NPU load:  25%` on single-core parts. Without root (or without debugfs mounted
//! under `host_root`) the file cannot be read: that is said once at INFO and the NPU's clock
//! (devfreq) is still exported.

use tracing::info;

use crate::sysfs::fs::{self, Probe, Root};

/// The file.
pub const LOAD: &str = "/sys/kernel/debug/rknpu/load";

/// Each core's busy percent in core order; `None` when the text has no percentage or one out
/// of 0–100.
pub fn parse_load(text: &str) -> Option<Vec<f64>> {
    let rest = text.split_once(':').map_or(text, |(_, r)| r);
    let mut out = Vec::new();
    for word in rest.split(|c: char| c.is_whitespace() || c == ',') {
        let Some(number) = word.strip_suffix('%') else {
            continue;
        };
        let v = fs::parse_int(number)?;
        if !(0..=100).contains(&v) {
            return None;
        }
        out.push(v as f64);
    }
    (!out.is_empty()).then_some(out)
}

/// Reads the load, saying once when it cannot.
#[derive(Debug, Default)]
pub struct NpuLoad {
    told: bool,
}

impl NpuLoad {
    /// Each core's busy percent, or `None` (absent, denied, malformed: the last counted).
    pub fn read(&mut self, root: &Root) -> Option<Vec<f64>> {
        let path = root.join(LOAD);
        let why = match fs::probe(&path) {
            Probe::Text(text) => {
                let cores = parse_load(&text);
                if cores.is_none() {
                    fs::count_error(&path, &format!("not an NPU load: {:?}", fs::excerpt(&text)));
                }
                return cores;
            }
            Probe::Missing => "it is missing (debugfs not mounted under host_root?)",
            Probe::Denied => "debugfs is readable by root only",
            Probe::Failed(reason) => {
                fs::count_error(&path, &reason);
                return None;
            }
        };
        if !self.told {
            self.told = true;
            info!(
                path = %path.display(),
                reason = why,
                "NPU load is not exported: cannot read rknpu/load. Run as root with debugfs \
                 mounted to export it; the NPU clock is exported when devfreq has it."
            );
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_texts_of_one_and_three_cores() {
        assert_eq!(
            parse_load("NPU load:  Core0:  0%, Core1: 35%, Core2: 100%,\n"),
            Some(vec![0.0, 35.0, 100.0])
        );
        assert_eq!(parse_load("NPU load:  25%\n"), Some(vec![25.0]));
        assert_eq!(parse_load("NPU load:"), None);
        assert_eq!(parse_load("NPU load: Core0: 120%,"), None);
        assert_eq!(parse_load("NPU load: Core0: x%,"), None);
    }
}
