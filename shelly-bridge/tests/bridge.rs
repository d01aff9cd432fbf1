//! The real bridge binary with test plugs speaking corpus frames over real WebSockets.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use test_support::wait_for_async;

const PLUG: &str = "shellyplus1pm-c049ef8cf4e0";

#[tokio::test]
async fn reading_equals_what_the_plug_answered_by_alias_and_by_id() {
    let b = Bridge::start(&[]);
    let (status, v) = b.get("/metrics").await;
    assert_eq!(status, 404, "{v}");
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("No Shelly device connected"));

    let mut plug = b.plug("/jetson-01", PLUG).await;
    b.wait_devices(&["jetson-01"]).await;
    let (_, devices) = b.get("/devices").await;
    assert_eq!(devices["count"], 1);
    assert_eq!(devices["plugs"][0]["device_id"], PLUG);

    let answer = corpus("switch-getstatus-result-plug-m-gen3.json");
    for (i, path) in [
        "/metrics",
        "/metrics/jetson-01",
        &format!("/metrics/{PLUG}"),
    ]
    .iter()
    .enumerate()
    {
        let http = b.spawn_get(path);
        let req = plug.next_request().await;
        assert_eq!(
            req["id"],
            i as u64 + 1,
            "per-connection ids count from 1: {req}"
        );
        assert_eq!(req["method"], "Switch.GetStatus");
        assert_eq!(req["params"], json!({"id": 0}));
        assert_eq!(req["src"], "test-bridge");
        assert!(req.get("dst").is_none());
        plug.reply_raw(&req, &answer);
        let (status, v) = http.await.unwrap();
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["device_id"], PLUG);
        let m = &v["metrics"];
        assert_eq!(m["power_total_watts"], 0.0);
        assert_eq!(m["power_voltage_volts"], 226.2);
        assert_eq!(m["power_current_amps"], 0.0);
        assert_eq!(m["power_frequency_hertz"], 50.1);
        assert_eq!(m["power_temperature_celsius"], 39.1);
        assert!(v["timestamp"].as_f64().unwrap() > 1.7e9);
    }

    // On demand, no cache: a different answer shows at once, negative power stays negative.
    let http = b.spawn_get("/metrics/jetson-01");
    let req = plug.next_request().await;
    plug.reply_raw(
        &req,
        &corpus("switch-getstatus-result-outdoor-plug-s-gen3-negative-power.json"),
    );
    let (_, v) = http.await.unwrap();
    assert_eq!(v["metrics"]["power_total_watts"], -626.6);
    assert_eq!(v["metrics"]["power_voltage_volts"], 240.3);
    assert_eq!(v["metrics"]["power_current_amps"], 2.61);
    assert_eq!(
        b.own_metric("shelly_bridge_rpc_requests_total{outcome=\"ok\"}")
            .await,
        4.0
    );
    assert_eq!(b.own_metric("shelly_bridge_connected_plugs").await, 1.0);
}

async fn read_one(b: &Bridge, plug: &mut Plug, path: &str, answer: &str) -> (u16, Value, Value) {
    let http = b.spawn_get(path);
    let req = plug.next_request().await;
    plug.reply_raw(&req, answer);
    let (s, v) = http.await.unwrap();
    (s, v, req)
}

#[tokio::test]
async fn pm_mini_and_pro_3em_are_read_from_their_own_components() {
    let b = Bridge::start(&[]);
    let mut pm = Plug::connect(
        &b.ws,
        "/pm",
        "shellypmminig3-543204aa6548",
        Some(corpus_json("shelly-getstatus-result-plus-pm-mini.json")),
    )
    .await;
    let em_status = json!({"em:0": corpus_json("em-getstatus-result-pro-3em.json"), "emdata:0": corpus_json("emdata-getstatus-result-pro-3em.json"), "sys": {}});
    let mut em = Plug::connect(
        &b.ws,
        "/three",
        "shellypro3em-aabbccddeeff",
        Some(em_status),
    )
    .await;
    b.wait_devices(&["pm", "three"]).await;

    let (s, v, req) = read_one(
        &b,
        &mut pm,
        "/metrics/pm",
        &corpus("pm1-getstatus-result-plus-pm-mini.json"),
    )
    .await;
    assert_eq!(req["method"], "PM1.GetStatus");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["metrics"]["power_total_watts"], 192.2);
    assert_eq!(v["metrics"]["power_voltage_volts"], 236.3);
    assert_eq!(v["metrics"]["power_current_amps"], 0.819);
    assert_eq!(v["metrics"]["power_energy_watt_hours_total"], 629562.431);
    assert_eq!(
        v["metrics"]["power_returned_energy_watt_hours_total"],
        13555.086
    );

    let (s, v, req) = read_one(
        &b,
        &mut em,
        "/metrics/three",
        &corpus("em-getstatus-result-pro-3em.json"),
    )
    .await;
    assert_eq!(req["method"], "EM.GetStatus");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["metrics"]["power_total_watts"], 558.965);
    assert_eq!(v["metrics"]["power_current_amps"], 3.856);
    assert_eq!(v["metrics"]["power_voltage_volts"], 229.067);
    assert_eq!(v["component"], "em:0");
}

#[tokio::test]
async fn several_plugs_without_a_name_is_409_and_unknown_name_is_404() {
    let b = Bridge::start(&[]);
    let _a = b.plug("/a", "shellyplugsg3-000000000001").await;
    let _c = b.plug("/", "shellyplugsg3-000000000002").await;
    b.wait_devices(&["a", "shellyplugsg3-000000000002"]).await;
    let (s, v) = b.get("/metrics").await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["devices"], json!(["a", "shellyplugsg3-000000000002"]));
    let (s, v) = b.get("/metrics/nope").await;
    assert_eq!(s, 404, "{v}");
    assert!(v["error"].as_str().unwrap().contains("nope"));
    assert_eq!(
        b.own_metric("shelly_bridge_rpc_requests_total{outcome=\"ambiguous\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn rpc_error_and_unusable_replies_are_500_never_zero_watts() {
    let b = Bridge::start(&[]);
    let mut plug = b.plug("/x", PLUG).await;
    b.wait_devices(&["x"]).await;

    let http = b.spawn_get("/metrics/x");
    let req = plug.next_request().await;
    plug.reply_error(&req, -105, "Bad id=0");
    let (s, v) = http.await.unwrap();
    assert_eq!(s, 500, "{v}");
    assert!(v["error"].as_str().unwrap().contains("Bad id=0"), "{v}");

    // A switch that does not meter (Mini 1 Gen4): no reading, not 0 W.
    let (s, v, _) = read_one(
        &b,
        &mut plug,
        "/metrics/x",
        &corpus("switch-getstatus-result-mini1-gen4-no-metering.json"),
    )
    .await;
    assert_eq!(s, 500, "{v}");
    assert!(v["error"].as_str().unwrap().contains("no reading"), "{v}");
    assert!(v.get("metrics").is_none());

    let (s, v, _) = read_one(&b, &mut plug, "/metrics/x", "[1,2,3]").await;
    assert_eq!(s, 500, "{v}");
    // And the connection still works afterwards.
    let (s, _, _) = read_one(
        &b,
        &mut plug,
        "/metrics/x",
        &corpus("switch-getstatus-result-plus-1pm.json"),
    )
    .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn plug_without_full_status_is_identified_and_read_via_shelly_getstatus() {
    let b = Bridge::start(&[]);
    let mut plug = Plug::connect(&b.ws, "/quiet", "shellypmminig3-543204aa6548", None).await;
    // Unidentified: the bridge asks Shelly.GetDeviceInfo after a short wait.
    let req = plug.next_request().await;
    assert_eq!(req["method"], "Shelly.GetDeviceInfo");
    assert_eq!(req["id"], 1);
    plug.reply_raw(&req, r#"{"id":"shellypmminig3-543204aa6548","gen":3}"#);
    b.wait_devices(&["quiet"]).await;
    let (s, v, req) = read_one(
        &b,
        &mut plug,
        "/metrics/quiet",
        &corpus("shelly-getstatus-result-plus-pm-mini.json"),
    )
    .await;
    assert_eq!(req["method"], "Shelly.GetStatus");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["metrics"]["power_total_watts"], 192.2);
    assert_eq!(v["component"], "pm1:0");
    // Now the component is known: the next read asks PM1.GetStatus.
    let (s, _, req) = read_one(
        &b,
        &mut plug,
        "/metrics/quiet",
        &corpus("pm1-getstatus-result-plus-pm-mini.json"),
    )
    .await;
    assert_eq!(req["method"], "PM1.GetStatus");
    assert_eq!(s, 200);
}

/// The real 5 s timeout with a plug that answers only after it, while another plug answers at
/// once.
#[tokio::test]
async fn slow_plug_times_out_at_5s_without_delaying_another_and_its_late_reply_is_dropped() {
    let b = Bridge::start(&[]);
    let mut slow = b.plug("/slow", "shellyplugsg3-00000000000a").await;
    let mut fast = b.plug("/fast", "shellyplugsg3-00000000000b").await;
    b.wait_devices(&["fast", "slow"]).await;
    let answer = corpus("switch-getstatus-result-plus-1pm.json");

    let started = Instant::now();
    let slow_request = b.spawn_request("/metrics/slow");
    let slow_http = tokio::spawn(async move {
        let r = slow_request.await.unwrap();
        (r.status, r.json(), started.elapsed())
    });
    let slow_req = slow.next_request().await;
    // The slow plug answers only after the bridge has given up (the 504 below), whenever that
    // is: the late reply follows the timeout as an event, not after a fixed 6 s.
    let late = format!(
        r#"{{"id":{},"src":"shellyplugsg3-00000000000a","result":{}}}"#,
        slow_req["id"], answer
    );

    let fast_started = Instant::now();
    let (s, _, _) = read_one(&b, &mut fast, "/metrics/fast", &answer).await;
    let fast_took = fast_started.elapsed();
    assert_eq!(s, 200);
    assert!(
        fast_took < Duration::from_secs(1),
        "fast plug took {fast_took:?}"
    );

    let (s, v, took) = slow_http.await.unwrap();
    assert_eq!(s, 504, "{v}");
    assert!(v["error"].as_str().unwrap().contains("timeout"), "{v}");
    assert!(
        took >= Duration::from_millis(4900) && took < Duration::from_millis(5900),
        "took {took:?}"
    );
    b.wait_devices(&["fast", "slow"]).await; // still listed

    slow.send_text(late);
    // The next call gets its own answer, not the late one.
    let (s, v, req) = read_one(
        &b,
        &mut slow,
        "/metrics/slow",
        &corpus("switch-getstatus-result-plug-us-gen4.json"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(req["id"], slow_req["id"].as_u64().unwrap() + 1);
    assert_eq!(v["metrics"]["power_frequency_hertz"], 60.0);
    assert_eq!(b.own_metric("shelly_bridge_late_replies_total").await, 1.0);
    assert_eq!(
        b.own_metric("shelly_bridge_rpc_requests_total{outcome=\"timeout\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn short_timeout_by_flag_gives_504() {
    let b = Bridge::start(&["--rpc-timeout", "0.3"]);
    let mut plug = b.plug("/p", PLUG).await;
    b.wait_devices(&["p"]).await;
    let t = Instant::now();
    let (s, v) = b.get("/metrics/p").await;
    assert_eq!(s, 504, "{v}");
    assert!(t.elapsed() < Duration::from_secs(2));
    let _ = plug.next_request().await;
}

#[tokio::test]
async fn plug_killed_mid_request_is_502_and_leaves_the_list() {
    let b = Bridge::start(&[]);
    let mut plug = b.plug("/p", PLUG).await;
    b.wait_devices(&["p"]).await;
    let http = b.spawn_get("/metrics/p");
    let _req = plug.next_request().await;
    plug.kill();
    let (s, v) = http.await.unwrap();
    assert_eq!(s, 502, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("connection lost"),
        "{v}"
    );
    b.wait_devices(&[]).await;
    assert_eq!(b.own_metric("shelly_bridge_connected_plugs").await, 0.0);
}

#[tokio::test]
async fn reconnection_under_the_same_id_replaces_the_old_connection() {
    let b = Bridge::start(&[]);
    let mut old = b.plug("/edge", PLUG).await;
    b.wait_devices(&["edge"]).await;
    let mut new = b.plug("/edge", PLUG).await;
    // The old socket is closed by the bridge.
    let code = tokio::time::timeout(Duration::from_secs(5), old.closed.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, Some(1008));
    b.wait_devices(&["edge"]).await;
    let (s, _, req) = read_one(
        &b,
        &mut new,
        "/metrics/edge",
        &corpus("switch-getstatus-result-plus-1pm.json"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(req["id"], 1, "a new connection counts ids from 1 again");
    assert_eq!(b.own_metric("shelly_bridge_connected_plugs").await, 1.0);
    drop(new);
}

#[tokio::test]
async fn garbage_frames_are_counted_and_survived() {
    let b = Bridge::start(&["--max-frame-bytes", "4096"]);
    let mut plug = b.plug("/g", PLUG).await;
    b.wait_devices(&["g"]).await;
    plug.send_text("this is not json");
    plug.send_text("{\"src\": \"x\", ");
    plug.send_text("[1,2,3]");
    plug.send_text("42");
    plug.send_text(r#"{"hello":"world"}"#);
    plug.send_binary(vec![0, 1, 2, 3]);
    plug.send_text(format!(
        r#"{{"src":"{PLUG}","method":"NotifyStatus","params":{{"pad":"{}"}}}}"#,
        "x".repeat(10_000)
    ));
    // A reply with an id we never used is ignored.
    plug.send_text(format!(r#"{{"id":999,"src":"{PLUG}","result":{{}}}}"#));
    let (s, v, _) = read_one(
        &b,
        &mut plug,
        "/metrics/g",
        &corpus("switch-getstatus-result-plus-1pm.json"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        b.own_metric("shelly_bridge_frames_rejected_total{reason=\"not_json\"}")
            .await,
        2.0
    );
    assert_eq!(
        b.own_metric("shelly_bridge_frames_rejected_total{reason=\"not_object\"}")
            .await,
        2.0
    );
    assert_eq!(
        b.own_metric("shelly_bridge_frames_rejected_total{reason=\"unknown_shape\"}")
            .await,
        1.0
    );
    assert_eq!(
        b.own_metric("shelly_bridge_frames_rejected_total{reason=\"binary\"}")
            .await,
        1.0
    );
    assert_eq!(
        b.own_metric("shelly_bridge_frames_rejected_total{reason=\"too_large\"}")
            .await,
        1.0
    );
    b.wait_devices(&["g"]).await;
}

#[tokio::test]
async fn silent_plug_is_dropped_by_ping_timeout_while_a_live_one_stays() {
    let b = Bridge::start(&["--ping-interval", "0.5"]);
    let silent = b.plug("/silent", "shellyplugsg3-00000000000c").await;
    let live = b.plug("/live", "shellyplugsg3-00000000000d").await;
    b.wait_devices(&["live", "silent"]).await;
    silent.go_silent();
    let t = Instant::now();
    b.wait_devices(&["live"]).await;
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
    // The live plug answers pings (its reader runs) and stays over three more of them.
    let pings = live.pings();
    wait_for_async(Duration::from_secs(5), "three more pings", || {
        std::future::ready((live.pings() >= pings + 3).then_some(()))
    })
    .await;
    b.wait_devices(&["live"]).await;
    assert_eq!(b.own_metric("shelly_bridge_ping_timeouts_total").await, 1.0);
}

#[tokio::test]
async fn sigterm_closes_plug_connections_and_exits_zero() {
    let b = Bridge::start(&[]);
    let mut plug = b.plug("/p", PLUG).await;
    b.wait_devices(&["p"]).await;
    b.proc().signal("TERM");
    let code = tokio::time::timeout(Duration::from_secs(5), plug.closed.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, Some(1001));
    let status = wait_for_async(
        Duration::from_secs(10),
        "the bridge to exit after SIGTERM",
        || std::future::ready(b.proc().try_wait()),
    )
    .await;
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn healthcheck_subcommand_exits_zero_only_when_healthy() {
    let b = Bridge::start(&[]);
    let port = b.http.rsplit(':').next().unwrap().to_string();
    let ok = run_to_end(command().args(["healthcheck", "--http-port", &port]));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    drop(b);
    let bad = run_to_end(command().args(["healthcheck", "--http-port", &port]));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot connect"));
}

#[tokio::test]
async fn bad_flags_exit_64_with_a_clear_message() {
    let out = run_to_end(command().args(["--ws-port", "seventy"]));
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ws-port"));
    let out = run_to_end(
        command()
            .args(["--bind", "127.0.0.1", "--ws-port", "0", "--http-port", "0"])
            .env("SHELLY_RPC_TIMEOUT", "soon"),
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SHELLY_RPC_TIMEOUT"));
}

#[tokio::test]
async fn loose_numbers_and_nulls_are_read_and_null_fields_left_out() {
    let b = Bridge::start(&[]);
    let mut plug = b.plug("/n", PLUG).await;
    b.wait_devices(&["n"]).await;
    let answer = r#"{"id":0, "apower":12 ,"voltage":null,"current":0.000,"freq":50,
        "aenergy":{"total":0.000,"by_minute":[0.000,0.000,0.000],"minute_ts":1769947860},
        "temperature":{"tC":null,"tF":null},"new_firmware_field":{"x":[1,2]}}"#;
    let (s, v, _) = read_one(&b, &mut plug, "/metrics/n", answer).await;
    assert_eq!(s, 200, "{v}");
    let m = v["metrics"].as_object().unwrap();
    assert_eq!(m["power_total_watts"], 12.0);
    assert_eq!(m["power_current_amps"], 0.0);
    assert_eq!(m["power_frequency_hertz"], 50.0);
    assert_eq!(m["power_energy_watt_hours_total"], 0.0);
    assert!(!m.contains_key("power_voltage_volts"), "{v}");
    assert!(!m.contains_key("power_temperature_celsius"), "{v}");
}

#[tokio::test]
async fn a_truncated_reply_naming_our_id_is_500_at_once_and_the_next_call_works() {
    let b = Bridge::start(&[]);
    let mut plug = b.plug("/t", PLUG).await;
    b.wait_devices(&["t"]).await;
    let t = Instant::now();
    let http = b.spawn_get("/metrics/t");
    let req = plug.next_request().await;
    plug.send_text(format!(
        r#"{{"id":{},"src":"{PLUG}","result":{{"apower":1"#,
        req["id"]
    ));
    let (s, v) = http.await.unwrap();
    assert_eq!(s, 500, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("not valid JSON"),
        "{v}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "answered only after {:?}",
        t.elapsed()
    );
    let (s, _, _) = read_one(
        &b,
        &mut plug,
        "/metrics/t",
        &corpus("switch-getstatus-result-plus-1pm.json"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        b.own_metric("shelly_bridge_frames_rejected_total{reason=\"not_json\"}")
            .await,
        1.0
    );
}
