//! Passes the target triple to the library, which looks up the cargo runner
//! (`CARGO_TARGET_<TRIPLE>_RUNNER`) for it when it starts a binary.

fn main() {
    let target = std::env::var("TARGET").expect("invariant: cargo sets TARGET for build scripts");
    println!("cargo:rustc-env=TEST_SUPPORT_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
