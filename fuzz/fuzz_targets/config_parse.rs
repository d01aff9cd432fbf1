//! config.yaml text: `config::parse` never panics, and whatever it accepts survives the save →
//! load round trip the exporter performs on every `POST /metrics/enable` and auto-discovery.
#![no_main]

use edge_metrics_exporter::config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = config::parse(text, "fuzz.yaml") else {
        return;
    };
    let saved = serde_yaml::to_string(&parsed).expect("an accepted config serialises");
    let again = config::parse(&saved, "saved.yaml").unwrap_or_else(|e| {
        panic!("saved config no longer loads: {e}\n--- input\n{text}\n--- saved\n{saved}")
    });
    assert_eq!(
        parsed, again,
        "config changed across save and load\n--- saved\n{saved}"
    );
});
