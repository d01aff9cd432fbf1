//! One WebSocket text frame from a plug: `rpc::parse_frame` classifies it, and any status or
//! result it carries goes through metering choice and reading extraction, as the bridge does
//! with every frame. Never a panic, and every reading is a finite number.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shelly_bridge::rpc::{choose_metering, parse_frame, readings, Frame, Metering};

fn check_readings(status: &Value) {
    let mut candidates = vec![
        Metering::Switch(0),
        Metering::Pm1(0),
        Metering::Em(0),
        Metering::Em1(0),
        Metering::Cover(0),
    ];
    if let Some(m) = choose_metering(status) {
        candidates.push(m);
        // A full status carries the component under its key; a GetStatus result is the
        // component itself. The bridge sees both.
        if let Some(component) = status.get(m.key()) {
            check_one(m, component);
        }
    }
    for m in candidates {
        check_one(m, status);
    }
}

fn check_one(m: Metering, value: &Value) {
    if let Ok(out) = readings(m, value) {
        for (name, v) in &out {
            let n = v.as_f64();
            assert!(
                n.is_some_and(f64::is_finite),
                "{m:?} reading {name} = {v} is not a finite number"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_frame(text) {
        Ok(Frame::Notification { params, .. }) => check_readings(&params),
        Ok(Frame::Response {
            outcome: Ok(result),
            ..
        }) => check_readings(&result),
        Ok(_) | Err(_) => {}
    }
});
