//! One tegrastats line, parsed with every model's rules: never a panic, never a value that is
//! not a finite number (a NaN or infinity parsed from text would be an invented reading).
#![no_main]

use edge_metrics_exporter::collector::jetson::{read_line, Model};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // tegrastats prints text; the source decodes lossily, so fuzz what the parser can receive.
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        for model in [Model::Orin, Model::Xavier, Model::Nano] {
            if let Ok(reading) = read_line(model, line) {
                for (name, value) in &reading.values {
                    assert!(
                        value.is_finite(),
                        "{model:?} produced {name} = {value} from {line:?}"
                    );
                    assert!(
                        !name.is_empty(),
                        "{model:?} produced an empty metric name from {line:?}"
                    );
                }
            }
        }
    }
});
