//! devfreq devices: `/sys/class/devfreq/<dev>/{cur_freq,min_freq,max_freq}` (Hz), the device
//! tree node `device/of_node/name`, and the load.
//!
//! Load comes in two shapes: Tegra GPUs have `device/load`, busy time in tenths of a percent
//! (0–1000); Mali GPUs on Rockchip have `load` as `NN@<freq>Hz` (percent at the clock).

use std::path::PathBuf;

use super::fs::{self, Root};

/// Where the devices are.
pub const CLASS: &str = "/sys/class/devfreq";

/// One devfreq device.
#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    /// Its directory name (`17000000.gpu`, `gpu-gpc-0`, `fb000000.gpu`).
    pub name: String,
    /// Its directory.
    pub path: PathBuf,
    /// `device/of_node/name` (`gpu`, `ga10b`, `gv11b`, `gp10b`), when it has one.
    pub of_node: Option<String>,
    /// `cur_freq`, Hz.
    pub cur_hz: Option<u64>,
    /// `min_freq`, Hz.
    pub min_hz: Option<u64>,
    /// `max_freq`, Hz.
    pub max_hz: Option<u64>,
    /// Busy percent, from `device/load` or `load`.
    pub load_percent: Option<f64>,
}

/// `device/load` text (0–1000) → percent.
pub fn parse_tenths(text: &str) -> Option<f64> {
    let v = fs::parse_int(text)?;
    (0..=1000).contains(&v).then(|| v as f64 / 10.0)
}

/// `load` text `NN@<freq>Hz` → percent (the clock after `@` is ignored).
pub fn parse_at_load(text: &str) -> Option<f64> {
    let (load, _) = text.split_once('@')?;
    let v = fs::parse_int(load)?;
    (0..=100).contains(&v).then_some(v as f64)
}

/// Reads the device in `dir`.
pub fn read_device(name: &str, dir: PathBuf) -> Device {
    let hz = |file: &str| fs::int(&dir.join(file)).and_then(|v| u64::try_from(v).ok());
    let tenths = dir.join("device/load");
    let at = dir.join("load");
    let load_percent = if let Some(text) = fs::text(&tenths) {
        let v = parse_tenths(&text);
        if v.is_none() {
            fs::count_error(&tenths, &format!("not 0-1000: {:?}", fs::excerpt(&text)));
        }
        v
    } else if let Some(text) = fs::text(&at) {
        let v = parse_at_load(&text);
        if v.is_none() {
            fs::count_error(&at, &format!("not NN@freq: {:?}", fs::excerpt(&text)));
        }
        v
    } else {
        None
    };
    Device {
        name: name.to_owned(),
        of_node: fs::text(&dir.join("device/of_node/name")),
        cur_hz: hz("cur_freq"),
        min_hz: hz("min_freq"),
        max_hz: hz("max_freq"),
        load_percent,
        path: dir,
    }
}

/// Every devfreq device, in name order.
pub fn devices(root: &Root) -> Vec<Device> {
    fs::entries(&root.join(CLASS), "")
        .into_iter()
        .map(|(name, dir)| read_device(&name, dir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::fs::testing::Tree;

    #[test]
    fn loads_in_both_shapes() {
        assert_eq!(parse_tenths("634"), Some(63.4));
        assert_eq!(parse_tenths("1001"), None);
        assert_eq!(parse_at_load("45@300000000Hz"), Some(45.0));
        assert_eq!(parse_at_load("45"), None);
        assert_eq!(parse_at_load("145@1Hz"), None);
    }

    #[test]
    fn devices_with_node_name_clock_and_load() {
        let t = Tree::new("devfreq");
        let d = "sys/class/devfreq";
        t.put(&format!("{d}/17000000.gpu/cur_freq"), "624750000\n")
            .put(&format!("{d}/17000000.gpu/min_freq"), "306000000\n")
            .put(&format!("{d}/17000000.gpu/max_freq"), "1300500000\n")
            .put(&format!("{d}/17000000.gpu/device/load"), "634\n")
            .put(&format!("{d}/17000000.gpu/device/of_node/name"), "gpu\0")
            .put(&format!("{d}/fb000000.gpu/load"), "12@200000000Hz\n")
            .put(&format!("{d}/gpu-gpc-0/cur_freq"), "bad\n");
        let before = fs::read_errors();
        let devs = devices(&t.root());
        assert!(fs::read_errors() > before);
        assert_eq!(devs.len(), 3);
        let g = &devs[0];
        assert_eq!(g.name, "17000000.gpu");
        assert_eq!(g.of_node.as_deref(), Some("gpu"));
        assert_eq!(g.cur_hz, Some(624750000));
        assert_eq!(g.load_percent, Some(63.4));
        assert_eq!(devs[1].load_percent, Some(12.0));
        assert_eq!(devs[2].cur_hz, None);
    }
}
