//! `edge-metrics-exporter` binary: flags → config → `edge_metrics_exporter::run`.

fn main() {
    println!("edge-metrics-exporter {}", env!("CARGO_PKG_VERSION"));
}
