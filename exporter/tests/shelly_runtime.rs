//! The Shelly collector inside the running exporter, against a fake shelly-bridge on loopback:
//! values with the device labels, one failing collector never blanks the other, and `/reload`
//! re-creates or drops it when `shelly:` changes.

mod common;

use std::time::Duration;

use common::*;

const POWER: &str = "power_total_watts{device_type=\"jetson_orin\",hostname=\"edge-01\"}";
const RAM: &str = "jetson_ram_used_mb{device_type=\"jetson_orin\",hostname=\"edge-01\"}";
const SHELLY_UP: &str = "edge_metrics_exporter_collector_up{collector=\"ShellyCollector\"}";

/// A bridge with one plug: its reading on `/metrics...`, 404 elsewhere.
fn bridge_ok(request: &Request) -> Reply {
    if request.path.starts_with("/metrics") {
        Reply::json(
            200,
            r#"{"device_id": "shellyplus1pm-441793ce3f08", "metrics": {"power_total_watts": 45.3, "power_voltage_volts": 220.5, "power_current_amps": 0.205, "power_energy_watt_hours_total": 15761.124}, "timestamp": 1733140800.123}"#,
        )
    } else {
        Reply::json(404, r#"{"error": "not found"}"#)
    }
}

/// A bridge whose plug has gone.
fn bridge_down(_: &Request) -> Reply {
    Reply::json(502, r#"{"error": "Device connection lost"}"#)
}

fn shelly_config(setup: &Setup, url: &str, enabled: bool) -> String {
    setup
        .config_text(
            "metrics:\n  jetson_ram_used_mb: true\n  power_total_watts: true\n  power_energy_watt_hours_total: true\n",
        )
        .replace(
            "shelly:\n  enabled: false\n",
            &format!("shelly:\n  enabled: {enabled}\n  server_url: {url}\n"),
        )
}

#[test]
fn shelly_values_failures_and_reload() {
    let bridge = FakeHttp::start(bridge_ok);
    let setup = Setup::new(&orin_corpus(), "");
    std::fs::write(
        &setup.config_path,
        shelly_config(&setup, &bridge.url(), true),
    )
    .unwrap();
    let exp = setup.start();
    exp.proc
        .wait_line(&["Shelly collector initialized."], Duration::from_secs(5));
    let r = wait_for(Duration::from_secs(10), "Shelly and Jetson values", || {
        let r = exp.scrape();
        (r.sample(POWER).is_some() && r.sample(RAM).is_some()).then_some(r)
    });
    assert_eq!(r.sample(POWER), Some(45.3));
    assert_eq!(r.sample(SHELLY_UP), Some(1.0));
    assert!(r
        .body
        .contains("# TYPE power_energy_watt_hours_total counter"));
    // Discovered Shelly extras on an existing install start disabled.
    assert_eq!(
        r.sample("power_voltage_volts{device_type=\"jetson_orin\",hostname=\"edge-01\"}"),
        None
    );
    wait_listed(&exp, "power_voltage_volts", false);
    let h = exp.api("GET", "/health", &[], None).json();
    assert_eq!(h["status"], "healthy", "{h}");

    // The bridge fails: Shelly series go, Jetson stays, health says why.
    bridge.set(bridge_down);
    let r = wait_for(Duration::from_secs(10), "Shelly down", || {
        let r = exp.scrape();
        (r.sample(SHELLY_UP) == Some(0.0)).then_some(r)
    });
    assert_eq!(r.sample(POWER), None);
    assert!(r.sample(RAM).is_some());
    let h = exp.api("GET", "/health", &[], None).json();
    assert_eq!(h["status"], "degraded");
    assert!(
        h["reason"].as_str().unwrap().contains("ShellyCollector"),
        "{h}"
    );
    assert_eq!(h["collector"], "JetsonOrinCollector");

    // Reload with Shelly off: the collector goes, health recovers.
    std::fs::write(
        &setup.config_path,
        shelly_config(&setup, &bridge.url(), false),
    )
    .unwrap();
    assert_eq!(exp.api("POST", "/reload", &[], None).status, 200);
    exp.proc
        .wait_line(&["Shelly collector reinitialised."], Duration::from_secs(2));
    let r = exp.scrape();
    assert_eq!(r.sample(SHELLY_UP), None, "{}", r.body);
    assert_eq!(
        exp.api("GET", "/health", &[], None).json()["status"],
        "healthy"
    );

    // And back on, at another URL (a second fake bridge).
    let other = FakeHttp::start(bridge_ok);
    std::fs::write(
        &setup.config_path,
        shelly_config(&setup, &other.url(), true),
    )
    .unwrap();
    assert_eq!(exp.api("POST", "/reload", &[], None).status, 200);
    wait_for(Duration::from_secs(10), "Shelly values again", || {
        exp.scrape().sample(POWER)
    });
}
