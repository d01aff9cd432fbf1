//! CPU cores: `/sys/devices/system/cpu/cpu<N>/{online,cpufreq/scaling_*_freq}`.
//!
//! `online` is `1`/`0`; a core without the file (usually `cpu0`, which cannot be unplugged) is
//! online. cpufreq clocks are in kHz.

use super::fs::{self, Root};

/// Where the cores are.
pub const CPUS: &str = "/sys/devices/system/cpu";

/// The most cores a reading holds (Linux's largest `NR_CPUS` is 8192); a directory with a
/// higher number is not a core of any board this runs on and is left out.
pub const MAX_CORES: u32 = 8192;

/// The core numbers that exist (`cpu<N>` directories, N below [`MAX_CORES`]), ascending.
pub fn cores(root: &Root) -> Vec<u32> {
    let mut out: Vec<u32> = fs::entries(&root.join(CPUS), "cpu")
        .into_iter()
        .filter_map(|(name, _)| fs::index_after(&name, "cpu"))
        .filter(|n| *n < MAX_CORES)
        .collect();
    out.sort_unstable();
    out
}

/// Whether core `n` is online; `None` when its `online` file exists but does not say.
pub fn online(root: &Root, n: u32) -> Option<bool> {
    let path = root.join(CPUS).join(format!("cpu{n}/online"));
    match fs::probe(&path) {
        fs::Probe::Missing => Some(true),
        _ => match fs::int(&path)? {
            0 => Some(false),
            1 => Some(true),
            other => {
                fs::count_error(&path, &format!("not 0 or 1: {other}"));
                None
            }
        },
    }
}

/// One core's cpufreq clocks, kHz.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Freq {
    /// `scaling_cur_freq`.
    pub cur_khz: Option<u64>,
    /// `scaling_min_freq`.
    pub min_khz: Option<u64>,
    /// `scaling_max_freq`.
    pub max_khz: Option<u64>,
}

/// Core `n`'s cpufreq clocks (all `None` without cpufreq, e.g. in a VM).
pub fn freq(root: &Root, n: u32) -> Freq {
    let dir = root.join(CPUS).join(format!("cpu{n}/cpufreq"));
    let khz = |file: &str| fs::int(&dir.join(file)).and_then(|v| u64::try_from(v).ok());
    Freq {
        cur_khz: khz("scaling_cur_freq"),
        min_khz: khz("scaling_min_freq"),
        max_khz: khz("scaling_max_freq"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::fs::testing::Tree;

    #[test]
    fn cores_online_state_and_clocks() {
        let t = Tree::new("cpu");
        let c = "sys/devices/system/cpu";
        t.put(&format!("{c}/cpu0/cpufreq/scaling_cur_freq"), "1984000\n")
            .put(&format!("{c}/cpu0/cpufreq/scaling_min_freq"), "115200\n")
            .put(&format!("{c}/cpu0/cpufreq/scaling_max_freq"), "1984000\n")
            .put(&format!("{c}/cpu1/online"), "0\n")
            .put(&format!("{c}/cpu10/online"), "1\n")
            .put(&format!("{c}/cpu2/online"), "maybe\n")
            .put(&format!("{c}/cpufreq/policy0/x"), "")
            .put(&format!("{c}/online"), "0-1,10\n")
            .put(&format!("{c}/cpu999999999/online"), "1\n");
        assert_eq!(cores(&t.root()), [0, 1, 2, 10]);
        assert_eq!(online(&t.root(), 0), Some(true));
        assert_eq!(online(&t.root(), 1), Some(false));
        assert_eq!(online(&t.root(), 10), Some(true));
        assert_eq!(online(&t.root(), 2), None);
        let f = freq(&t.root(), 0);
        assert_eq!(f.cur_khz, Some(1984000));
        assert_eq!(f.min_khz, Some(115200));
        assert_eq!(freq(&t.root(), 1), Freq::default());
    }
}
