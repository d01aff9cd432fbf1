//! `shelly-bridge` binary.

fn main() {
    println!("shelly-bridge {}", env!("CARGO_PKG_VERSION"));
}
