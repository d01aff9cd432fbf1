//! Rockchip RK3588 boards (`OrangePiCollector`): GPU load and clock from devfreq
//! (`orangepi_gpu_usage_percent`, `orangepi_gpu_freq_mhz`), NPU load from debugfs where
//! readable (`orangepi_npu_usage_percent`, the mean of `orangepi_npu_core{N}_usage_percent`)
//! and its clock (`orangepi_npu_freq_mhz`). No power sensor: a Shelly plug gives the power.

use crate::boards::Reading;
use crate::collector::Values;

pub(super) fn values(reading: &Reading, out: &mut Values) {
    let mut put = |name: String, v: Option<f64>| {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            out.insert(name, v);
        }
    };
    for (engine, e) in [("gpu", &reading.gpu), ("npu", &reading.npu)] {
        let Some(e) = e else { continue };
        put(format!("orangepi_{engine}_usage_percent"), e.usage_percent);
        put(format!("orangepi_{engine}_freq_mhz"), e.freq_mhz);
        for (n, load) in e.cores_percent.iter().enumerate() {
            put(
                format!("orangepi_{engine}_core{n}_usage_percent"),
                Some(*load),
            );
        }
    }
}

pub(super) fn default_enabled(rest: &str) -> bool {
    matches!(rest, "gpu_usage_percent" | "npu_usage_percent")
}

pub(super) fn help_text(rest: &str) -> Option<String> {
    let text = match rest {
        "gpu_usage_percent" => "GPU usage (devfreq *.gpu load)".to_owned(),
        "gpu_freq_mhz" => "GPU frequency in MHz (devfreq cur_freq)".to_owned(),
        "npu_usage_percent" => "NPU usage, mean over its cores (debugfs rknpu/load)".to_owned(),
        "npu_freq_mhz" => "NPU frequency in MHz (devfreq *.npu cur_freq)".to_owned(),
        _ => {
            let n = rest
                .strip_prefix("npu_core")?
                .strip_suffix("_usage_percent")?;
            format!("NPU core {n} usage (debugfs rknpu/load)")
        }
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boards::Engine;

    #[test]
    fn gpu_and_npu_loads_and_clocks() {
        let reading = Reading {
            gpu: Some(Engine {
                usage_percent: Some(12.0),
                cores_percent: Vec::new(),
                freq_mhz: Some(300.0),
            }),
            npu: Some(Engine {
                usage_percent: Some(10.0),
                cores_percent: vec![0.0, 30.0, 0.0],
                freq_mhz: Some(1000.0),
            }),
            ..Reading::default()
        };
        let mut out = Values::new();
        values(&reading, &mut out);
        assert_eq!(out["orangepi_gpu_usage_percent"], 12.0);
        assert_eq!(out["orangepi_gpu_freq_mhz"], 300.0);
        assert_eq!(out["orangepi_npu_usage_percent"], 10.0);
        assert_eq!(out["orangepi_npu_core1_usage_percent"], 30.0);
        assert_eq!(out["orangepi_npu_freq_mhz"], 1000.0);
        assert_eq!(
            help_text("npu_core1_usage_percent").as_deref(),
            Some("NPU core 1 usage (debugfs rknpu/load)")
        );
    }
}
