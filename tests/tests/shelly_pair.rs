//! The real exporter, the real bridge and the simulator subcommand together on loopback:
//! a simulated plug's power shows up in the exporter's Prometheus output under the spec's
//! names, and disappears (no frozen values) when the plug goes away.

use std::time::Duration;

use e2e::{bin, http_get, sample, wait_for, Proc};

#[test]
fn simulated_plug_power_reaches_prometheus_through_bridge_and_exporter() {
    let bridge_bin = bin("shelly-bridge");
    let bridge = Proc::start(
        "shelly-bridge",
        &bridge_bin,
        &["--bind", "127.0.0.1", "--ws-port", "0", "--http-port", "0"],
        &[("RUST_LOG", "info")],
    );
    let t = Duration::from_secs(10);
    let ws = bridge.wait_address(&["Listening for plug WebSocket"], t);
    let http = bridge.wait_address(&["Serving the HTTP API"], t);

    let sim = Proc::start(
        "simulator",
        &bridge_bin,
        &[
            "simulate",
            "--url",
            &format!("ws://{ws}/edge-01"),
            "--power",
            "45.3",
            "--voltage",
            "220.5",
            "--jitter",
            "0",
            "--run-for",
            "60",
        ],
        &[("RUST_LOG", "info")],
    );
    wait_for(t, "the plug in /devices", || {
        let (_, body) = http_get(&http, "/devices").ok()?;
        body.contains("\"edge-01\"").then_some(())
    });

    let dir = std::env::temp_dir().join(format!("shelly-pair-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/tegrastats/orin-agx-jp5.log");
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "device_type: jetson_orin\ninterval: 1\nport: 0\nreload_port: 0\n\
             bind_address: 127.0.0.1\nreload_bind_address: 127.0.0.1\nhostname: edge-01\n\
             tegrastats:\n  replay: {}\n\
             shelly:\n  enabled: true\n  server_url: http://{http}\n  device_id: edge-01\n\
             metrics:\n  power_total_watts: true\n  power_voltage_volts: true\n  \
             power_current_amps: true\n",
            corpus.display()
        ),
    )
    .unwrap();
    let exporter = Proc::start(
        "edge-metrics-exporter",
        &bin("edge-metrics-exporter"),
        &["--config", config.to_str().unwrap()],
        &[("RUST_LOG", "info")],
    );
    let metrics = exporter.wait_address(&["Listening.", "server=\"metrics\""], t);

    let scrape = || {
        http_get(&metrics, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    };
    let text = wait_for(
        Duration::from_secs(15),
        "power_total_watts in the exporter",
        || {
            let text = scrape();
            sample(&text, "power_total_watts").map(|_| text)
        },
    );
    assert_eq!(sample(&text, "power_total_watts"), Some(45.3), "{text}");
    assert_eq!(sample(&text, "power_voltage_volts"), Some(220.5), "{text}");
    assert_eq!(sample(&text, "power_current_amps"), Some(0.205), "{text}");
    assert!(
        text.contains("power_total_watts{") && text.contains("hostname=\"edge-01\""),
        "{text}"
    );

    // The plug goes away: the exporter stops showing its power instead of freezing it.
    drop(sim);
    wait_for(
        Duration::from_secs(15),
        "power_total_watts to disappear",
        || {
            sample(&scrape(), "power_total_watts")
                .is_none()
                .then_some(())
        },
    );
    drop(exporter);
    drop(bridge);
    let _ = std::fs::remove_dir_all(&dir);
}
