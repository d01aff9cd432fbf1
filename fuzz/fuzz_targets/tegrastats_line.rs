//! One tegrastats line, parsed and mapped to values: never a panic, never a value that is not
//! a finite number (a NaN or infinity parsed from text would be an invented reading), and a
//! line is published by the source exactly when it yields values.
#![no_main]

use edge_metrics_exporter::collector::jetson::read_line;
use edge_metrics_exporter::tegrastats::parse::parse_line;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // tegrastats prints text; the source decodes lossily, so fuzz what the parser can receive.
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        let published = parse_line(line).is_ok_and(|l| l.has_readings());
        let read = read_line(line);
        assert_eq!(read.is_ok(), published, "published and valued disagree on {line:?}");
        if let Ok(reading) = read {
            for (name, value) in &reading.values {
                assert!(value.is_finite(), "{name} = {value} from {line:?}");
                assert!(!name.is_empty(), "an empty metric name from {line:?}");
            }
        }
    }
});
