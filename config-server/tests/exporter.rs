//! The real exporter against the real server, with tokens: the start-up fetch (404: the
//! exporter runs on its file and pushes it), the push after `POST /metrics/enable`, an
//! operator's change to the Orin defaults, and `POST /reload` bringing it to the exporter's
//! `/metrics` (`source: "server"`). Then an exporter on `device_type: auto` over a fixture
//! host root (testdata/devices/agx-orin-jp6) reports the type it resolved to, `jetson_orin`,
//! and gets the Orin defaults while its setting stays `auto`. Needs the exporter binary
//! beside this test's executable (`cargo test --workspace` builds it).

mod common;

use std::time::Duration;

use common::{assert_status, Server, DEVICE_SECRET, OPERATOR, OPERATOR_SECRET};
use serde_json::{json, Value};
use test_support::{wait_for, TempDir};

const DEVICE: &str = "orin-e2e";

fn operator_get(s: &Server, path: &str) -> test_support::Response {
    let auth = format!("Bearer {OPERATOR_SECRET}");
    s.request("GET", path, &[("Authorization", &auth)], "")
}

/// The device's entry in `GET /devices`, once `check` holds for it.
fn wait_device(s: &Server, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_for(Duration::from_secs(30), what, || {
        let list = operator_get(s, "/devices").json();
        list["devices"]
            .as_array()?
            .iter()
            .find(|d| d["device"] == DEVICE && check(d))
            .cloned()
    })
}

#[test]
fn the_exporter_fetches_pushes_and_reloads_from_the_server() {
    let server = Server::sqlite(&[
        ("CONFIG_SERVER_OPERATOR_TOKEN", OPERATOR),
        ("CONFIG_SERVER_DEVICE_TOKEN", DEVICE_SECRET),
    ]);
    let tmp = TempDir::new("exporter-vs-server");
    let exporter = common::start_exporter(tmp.path(), &server, DEVICE);

    // Start-up: the server has nothing (404), so the exporter runs on its file ...
    assert_eq!(exporter.health()["config_source"], "local");
    // ... and pushes it after discovery: the server now has its layer, and knows who it is.
    let seen = wait_device(&server, "the exporter's first push", |d| {
        d["layer"].is_object()
    });
    assert_eq!(seen["device_type"], "jetson_orin");
    assert!(
        seen["exporter_version"].is_string(),
        "the exporter's X-Edge-Metrics-Version: {seen}"
    );
    assert_eq!(
        seen["layer"]["metrics"]["jetson_ram_used_mb"], true,
        "{seen}"
    );

    // A metric switched on at the device reaches the server.
    let list = exporter.api("GET", "/metrics/list", &[], None).json();
    let off: Vec<String> = list["metrics"]
        .as_object()
        .expect("/metrics/list has a metrics map")
        .iter()
        .filter(|(_, on)| **on == json!(false))
        .map(|(name, _)| name.clone())
        .collect();
    assert!(off.len() >= 2, "discovered metrics that are off: {list}");
    let (by_device, by_operator) = (&off[0], &off[1]);
    let r = exporter.post_json("/metrics/enable", &json!({ by_device: true }).to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    wait_device(&server, "the push after /metrics/enable", |d| {
        d["layer"]["metrics"][by_device] == json!(true)
    });

    // The operator switches another one on for every Orin; the exporter picks it up at reload.
    let r = server.put(
        "/defaults/jetson_orin",
        &json!({"metrics": { by_operator: true }}),
        &[("Authorization", &format!("Bearer {OPERATOR_SECRET}"))],
    );
    assert_status(&r, 201, "Orin defaults");
    let r = exporter.api("POST", "/reload", &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["source"], "server", "{}", r.body);
    assert_eq!(exporter.health()["config_source"], "server");
    exporter.wait_sample(by_operator, Duration::from_secs(20));
    exporter.wait_sample(by_device, Duration::from_secs(20));
    let d = wait_device(&server, "the reload's fetch", |d| {
        d["up_to_date"] == json!(true)
    });
    assert!(d["last_fetch"].is_string(), "{d}");
    // The operator's key is not pinned in the device's layer by the pushes that follow.
    assert!(d["layer"]["metrics"].get(by_operator).is_none(), "{d}");
}

#[test]
fn an_exporter_on_auto_reports_its_type_and_gets_that_types_defaults() {
    const AUTO: &str = "auto-e2e";
    let server = Server::sqlite(&[
        ("CONFIG_SERVER_OPERATOR_TOKEN", OPERATOR),
        ("CONFIG_SERVER_DEVICE_TOKEN", DEVICE_SECRET),
    ]);
    let tmp = TempDir::new("exporter-on-auto");
    let host_root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/devices/agx-orin-jp6");
    assert!(host_root.is_dir(), "{} is missing", host_root.display());
    let exporter = common::start_exporter_as(
        tmp.path(),
        &server,
        AUTO,
        "auto",
        &format!("host_root: {}\n", host_root.display()),
    );
    assert_eq!(
        exporter.health()["device_type"],
        "jetson_orin",
        "detected locally"
    );
    let find = |what: &str, check: &dyn Fn(&Value) -> bool| -> Value {
        wait_for(Duration::from_secs(30), what, || {
            let list = operator_get(&server, "/devices").json();
            list["devices"]
                .as_array()?
                .iter()
                .find(|d| d["device"] == AUTO && check(d))
                .cloned()
        })
    };
    // Its push says auto in the body and jetson_orin in the header.
    let seen = find("the first push of the exporter on auto", &|d| {
        d["layer"].is_object()
    });
    assert_eq!(
        seen["device_type"], "jetson_orin",
        "the reported type: {seen}"
    );
    assert_eq!(seen["layer"]["device_type"], "auto", "its setting: {seen}");

    // The operator switches a metric on for every Orin: the device on auto gets it.
    let metric = exporter.metric_off();
    let r = server.put(
        "/defaults/jetson_orin",
        &json!({"metrics": { &metric: true }}),
        &[("Authorization", &format!("Bearer {OPERATOR_SECRET}"))],
    );
    assert_status(&r, 201, "Orin defaults");
    let merged = operator_get(&server, &format!("/config/{AUTO}"));
    assert_status(&merged, 200, "the merged config");
    let merged = merged.json();
    assert_eq!(merged["device_type"], "auto", "{merged}");
    assert_eq!(
        merged["metrics"][&metric], true,
        "the Orin layer applies: {merged}"
    );
    let r = exporter.api("POST", "/reload", &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["source"], "server", "{}", r.body);
    exporter.wait_sample(&metric, Duration::from_secs(20));
    // Still on auto, still detected.
    let health = exporter.health();
    assert_eq!(health["device_type"], "jetson_orin", "{health}");
    let config = exporter.api("GET", "/config", &[], None).json();
    assert_eq!(config["device_type"], "auto", "{config}");
}
