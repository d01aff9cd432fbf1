//! (a) The exporter's renderer, linked from the exporter's own library and called as its owner
//! renders a cycle: the (name, value) list of enabled metrics → `write_device_values` with its
//! cached HELP/TYPE lines (HELP texts from the exporter's collectors).

use crate::snapshot::{DEVICE_TYPE, HOSTNAME, NAMES};
use crate::{body_capacity, Render};

use edge_metrics_exporter::exposition::{device_labels, write_device_values, Headers};

/// The exporter's state between cycles: the label string and the header cache.
pub struct Handwritten {
    labels: String,
    headers: Headers,
}

impl Handwritten {
    /// Builds the label string; the header cache fills on the first render.
    pub fn new() -> Self {
        Self {
            labels: device_labels(DEVICE_TYPE, HOSTNAME),
            headers: Headers::default(),
        }
    }
}

impl Default for Handwritten {
    fn default() -> Self {
        Self::new()
    }
}

impl Render for Handwritten {
    fn name(&self) -> &'static str {
        "handwritten"
    }

    fn render(&mut self, values: &[f64]) -> String {
        let enabled: Vec<(&str, f64)> = NAMES.iter().copied().zip(values.iter().copied()).collect();
        let mut out = String::with_capacity(body_capacity(enabled.len()));
        write_device_values(
            &mut out,
            enabled.iter().copied(),
            &self.labels,
            &mut self.headers,
        );
        out
    }
}
