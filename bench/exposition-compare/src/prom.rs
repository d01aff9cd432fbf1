//! (b) The `prometheus` crate: one `GaugeVec` per family in a `Registry`, the labelled child
//! gauge resolved once and kept, `Registry::gather` + `TextEncoder::encode_utf8` per render.

use prometheus::{Encoder as _, Gauge, GaugeVec, Opts, Registry, TextEncoder};

use crate::snapshot::{help, DEVICE_TYPE, HOSTNAME, NAMES};
use crate::{body_capacity, Render};

/// The registry and one gauge handle per family, in [`NAMES`] order.
pub struct Prom {
    registry: Registry,
    gauges: Vec<Gauge>,
    encoder: TextEncoder,
}

impl Prom {
    /// Registers every family and resolves its one labelled child.
    pub fn new() -> Self {
        let registry = Registry::new();
        let gauges = NAMES
            .iter()
            .map(|name| {
                let vec = GaugeVec::new(Opts::new(*name, help(name)), &["device_type", "hostname"])
                    .expect("valid metric name and labels");
                registry
                    .register(Box::new(vec.clone()))
                    .expect("each family registered once");
                vec.with_label_values(&[DEVICE_TYPE, HOSTNAME])
            })
            .collect();
        let encoder = TextEncoder::new();
        debug_assert_eq!(encoder.format_type(), "text/plain; version=0.0.4");
        Self {
            registry,
            gauges,
            encoder,
        }
    }
}

impl Default for Prom {
    fn default() -> Self {
        Self::new()
    }
}

impl Render for Prom {
    fn name(&self) -> &'static str {
        "prometheus"
    }

    fn render(&mut self, values: &[f64]) -> String {
        for (gauge, v) in self.gauges.iter().zip(values) {
            gauge.set(*v);
        }
        let mut out = String::with_capacity(body_capacity(self.gauges.len()));
        self.encoder
            .encode_utf8(&self.registry.gather(), &mut out)
            .expect("text encoding does not fail");
        out
    }
}
