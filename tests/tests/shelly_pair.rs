//! The real exporter, the real bridge and the plug simulator (`shelly-sim`) together on
//! loopback: a simulated plug's power shows up in the exporter's Prometheus output under the
//! spec's names, and disappears (no frozen values) when the plug goes away.

use std::time::Duration;

use e2e::proof::{corpus, exporter_config_every, start_bridge, start_exporter};
use test_support::{sample, scrape, wait_for, TempDir};

#[test]
fn simulated_plug_power_reaches_prometheus_through_bridge_and_exporter() {
    let tmp = TempDir::new("shelly-pair");
    let bridge = start_bridge(tmp.path(), "shelly-bridge", &[]);
    let t = Duration::from_secs(10);
    let sim = bridge.plug(
        "edge-01",
        &[
            "--power",
            "45.3",
            "--voltage",
            "220.5",
            "--jitter",
            "0",
            "--run-for",
            "60",
        ],
        Some(tmp.path()),
    );
    bridge.wait_devices(1, t);

    let config = exporter_config_every(
        tmp.path(),
        1.0,
        &format!("replay: {}", corpus("orin-agx-jp5.log").display()),
        &format!(
            "hostname: edge-01\n\
             shelly:\n  enabled: true\n  server_url: http://{}\n  device_id: edge-01\n\
             metrics:\n  power_total_watts: true\n  power_voltage_volts: true\n  \
             power_current_amps: true\n",
            bridge.http
        ),
    );
    let exporter = start_exporter(&config, tmp.path());

    let text = wait_for(
        Duration::from_secs(15),
        "power_total_watts in the exporter",
        || {
            let text = scrape(exporter.metrics);
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
            sample(&scrape(exporter.metrics), "power_total_watts")
                .is_none()
                .then_some(())
        },
    );
}
