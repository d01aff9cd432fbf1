//! The command line and the process lifecycle: exit codes, start-up errors, signals.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn missing_tegrastats_is_one_clear_line_and_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, "port: 0\nreload_port: 0\nbind_address: 127.0.0.1\nreload_bind_address: 127.0.0.1\ntegrastats:\n  path: /nonexistent/bin/tegrastats\n").unwrap();
    let out = run_to_end(command().arg("--config").arg(&cfg));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with(
            "tegrastats not found at /nonexistent/bin/tegrastats: No such file or directory"
        ),
        "{stderr}"
    );
    assert!(lines[0].contains("bind-mount") || lines[0].contains("Bind-mount"));
    assert!(lines[0].contains("tegrastats.logfile") && lines[0].contains("tegrastats.replay"));
}

#[test]
fn invalid_config_exits_64_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, "device_type: jetson_orin\ninterval: [oops\n").unwrap();
    let out = run_to_end(command().arg("--config").arg(&cfg));
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("config.yaml"), "{stderr}");
    let out = run_to_end(command().arg("--no-such-flag"));
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn missing_config_is_written_with_defaults_from_local_config_path() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    // The defaults point at /usr/bin/tegrastats; replace it via the written file afterwards.
    // The fresh config says `device_type: auto` and lists the defaults of the board found
    // under EDGE_METRICS_HOST_ROOT (a Nano's, IRAM included).
    let nano = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/devices/nano-jp4");
    let out = run_to_end(
        command()
            .env("LOCAL_CONFIG_PATH", &cfg)
            .env("EDGE_METRICS_HOST_ROOT", nano),
    );
    let text = std::fs::read_to_string(&cfg).expect("defaults written");
    let written = edge_metrics_exporter::config::parse(&text, "config.yaml").unwrap();
    assert_eq!(
        written,
        edge_metrics_exporter::collector::fresh_config(
            edge_metrics_exporter::device::DeviceKind::JetsonNano
        )
    );
    assert!(text.contains("device_type: auto\n"), "{text}");
    assert!(text.contains("jetson_iram_used_percent: true"), "{text}");
    if !std::path::Path::new("/usr/bin/tegrastats").exists() {
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr)
            .contains("tegrastats not found at /usr/bin/tegrastats"));
    }
}

#[test]
fn version_and_help() {
    let out = run_to_end(command().arg("--version"));
    assert!(out.status.success());
    // The values themselves are checked against git by tests/tests/release_refs.rs.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "edge-metrics-exporter {} (revision {})",
            edge_metrics_exporter::selfmetrics::VERSION,
            edge_metrics_exporter::selfmetrics::REVISION
        )
    );
    let out = run_to_end(command().arg("--help"));
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--config")
            && help.contains("healthcheck")
            && help.contains("LOCAL_CONFIG_PATH")
    );
}

#[test]
fn healthcheck_subcommand_and_graceful_sigterm() {
    let setup = Setup::new(&orin_corpus(), "");
    let exp = setup.start();
    let url = format!("http://{}/health", exp.api);
    let out = run_to_end(command().args(["healthcheck", "--url", &url]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(Duration::from_secs(5), "tegrastats started", || {
        setup.fake_pids().first().copied()
    });
    let fake = setup.fake_pids()[0];
    assert_eq!(exp.scrape().status, 200);

    let started = Instant::now();
    exp.proc.signal("TERM");
    let status = exp
        .proc
        .wait_exit(Duration::from_secs(5))
        .expect("exit within 5 s of SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", exp.proc.log());
    assert!(started.elapsed() < Duration::from_secs(5));
    // tegrastats went with it.
    wait_for(Duration::from_secs(2), "tegrastats gone", || {
        (!send_signal(fake, "0")).then_some(())
    });
    // Nothing answers now: the healthcheck fails.
    let out = run_to_end(command().args(["healthcheck", "--url", &url]));
    assert!(!out.status.success());
}
