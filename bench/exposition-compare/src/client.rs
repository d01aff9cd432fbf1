//! (c) The `prometheus-client` crate: one `Family<Labels, Gauge<f64, AtomicU64>>` per family in
//! a `Registry`, the labelled gauge resolved once and kept, `prometheus_text::encode` (text
//! format 0.0.4, as the exporter serves) per render.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::snapshot::{help, DEVICE_TYPE, HOSTNAME, NAMES};
use crate::{body_capacity, Render};

/// The label set of every sample.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Labels {
    /// `device_type` label.
    pub device_type: String,
    /// `hostname` label.
    pub hostname: String,
}

type F64Gauge = Gauge<f64, AtomicU64>;

/// The registry and one gauge handle per family, in [`NAMES`] order.
pub struct Client {
    registry: Registry,
    gauges: Vec<F64Gauge>,
}

impl Client {
    /// Registers every family and resolves its one labelled gauge.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let labels = Labels {
            device_type: DEVICE_TYPE.into(),
            hostname: HOSTNAME.into(),
        };
        let gauges = NAMES
            .iter()
            .map(|name| {
                let family = Family::<Labels, F64Gauge>::default();
                registry.register(*name, help(name), family.clone());
                // Bound first: the read guard must end before `family` does.
                let gauge = family.get_or_create(&labels).clone();
                gauge
            })
            .collect();
        Self { registry, gauges }
    }
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Render for Client {
    fn name(&self) -> &'static str {
        "prometheus-client"
    }

    fn render(&mut self, values: &[f64]) -> String {
        for (gauge, v) in self.gauges.iter().zip(values) {
            gauge.set(*v);
        }
        let mut out = String::with_capacity(body_capacity(self.gauges.len()));
        prometheus_text::encode(&mut out, &self.registry).expect("text encoding does not fail");
        out
    }
}
