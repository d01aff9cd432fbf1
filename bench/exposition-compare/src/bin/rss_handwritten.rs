//! Memory of (a): set up, render 1,000 cycles, print VmRSS/VmHWM.
fn main() {
    exposition_compare::rss_main(exposition_compare::handwritten::Handwritten::new());
}
