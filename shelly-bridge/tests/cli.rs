//! The bridge's command line as a user meets it: usage errors exit 64 and name the flag, and
//! `simulate` points at the simulator's own binary.

mod common;

use std::process::Output;

use common::{command, run_to_end};

/// Runs the bridge with `args` to its end (bounded) and returns what it printed.
fn bridge(args: &[&str]) -> Output {
    run_to_end(command().args(args))
}

#[test]
fn ws_port_without_its_value_exits_64_and_names_the_flag() {
    // Regression: `--ws-port` as the last argument used to be accepted and ignored.
    for args in [
        &["--ws-port"][..],
        &["serve", "--bind", "127.0.0.1", "--ws-port"],
    ] {
        let out = bridge(args);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.trim(),
            "shelly-bridge: --ws-port: needs a value; see --help"
        );
    }
}

#[test]
fn unknown_flags_exit_64_and_help_wins() {
    let out = bridge(&["--ws-prot", "1"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ws-prot: unknown option"));
    let out = bridge(&["--ws-prot", "--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("SHELLY_WS_PORT"));
}

#[test]
fn simulate_points_at_shelly_sim() {
    let out = bridge(&["simulate", "--url", "ws://127.0.0.1:1/x"]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("run `shelly-sim`"), "{stderr}");
}
