//! Prints one cycle's body of each variant: `cargo run --example show [-- CYCLE]`.
use exposition_compare::client::Client;
use exposition_compare::handwritten::Handwritten;
use exposition_compare::prom::Prom;
use exposition_compare::{snapshot, Render};

fn main() {
    let cycle = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let mut values = vec![0.0; snapshot::NAMES.len()];
    snapshot::values_at(cycle, &mut values);
    let variants: [Box<dyn Render>; 3] = [
        Box::new(Handwritten::new()),
        Box::new(Prom::new()),
        Box::new(Client::new()),
    ];
    for mut r in variants {
        let body = r.render(&values);
        println!("===== {} ({} bytes)\n{body}", r.name(), body.len());
    }
}
