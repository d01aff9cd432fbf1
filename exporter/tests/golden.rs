//! Golden corpus test: every line of every `testdata/tegrastats/*.log` file, parsed with the
//! model that fits its device, rendered and compared with `tests/golden/<file>.golden`.
//!
//! Rewrite the golden files after an intended change with
//! `UPDATE_GOLDEN=1 cargo test -p edge-metrics-exporter --test golden`, then read the diff: the
//! golden files are checked by hand against the raw lines they quote.
//!
//! Fails on: a missing corpus directory, a corpus file without a model below or without a golden
//! file, a golden file without a corpus file, a line that does not parse, any unknown or
//! malformed token in the corpus, and any difference from the golden text. Nothing is skipped.
//! (The mapping from a line to values is the same for every model; the model names the
//! collector and its default metrics, so the header records it.)

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use edge_metrics_exporter::collector::jetson::{help_text, read_line, Model};
use edge_metrics_exporter::tegrastats::parse::parse_line;
use test_support::golden;

const UPDATE_COMMAND: &str = "UPDATE_GOLDEN=1 cargo test -p edge-metrics-exporter --test golden";

/// Corpus file → (rules it is read with, why). TX1/Switch (Tegra X1) use Nano rules, TX2 uses
/// Xavier rules, Thor and unknown Orin-class builds use the generic `jetson` type's Orin rules.
const CASES: &[(&str, Model, &str)] = &[
    ("nano-jp4", Model::Nano, "Jetson Nano, JetPack 4."),
    ("orin-agx-jp5", Model::Orin, "Jetson AGX Orin, JetPack 5."),
    ("orin-agx-jp6", Model::Orin, "Jetson AGX Orin, JetPack 6."),
    (
        "orin-agx-jp7",
        Model::Orin,
        "Jetson AGX Orin, JetPack 7 as claimed by one unverified source (two-value temperatures, \
         three-value rails).",
    ),
    ("orin-nano-jp6", Model::Orin, "Jetson Orin Nano, JetPack 6."),
    ("orin-nx-jp6", Model::Orin, "Jetson Orin NX (model uncertain), JetPack 6."),
    (
        "orin-unknown-load-tokens",
        Model::Orin,
        "Orin-class SoC with a variant tegrastats (`*_LOAD` tokens, `EMC_FREQ @Y`); model and \
         release unknown.",
    ),
    (
        "tegra210-switch",
        Model::Nano,
        "Tegra X1 (Switch-class) device: no model of its own; the closest is Nano (same SoC).",
    ),
    (
        "thor-jp7",
        Model::Orin,
        "Jetson AGX Thor, JetPack 7: no model of its own; read as the generic `jetson` type, which \
         uses Orin rules.",
    ),
    (
        "tx1-legacy",
        Model::Nano,
        "Jetson TX1, legacy L4T 24-28 grammar: no model of its own; the closest is Nano (same \
         Tegra X1 SoC).",
    ),
    (
        "tx1",
        Model::Nano,
        "Jetson TX1: no model of its own; the closest is Nano (same Tegra X1 SoC).",
    ),
    (
        "tx2-jp3",
        Model::Xavier,
        "Jetson TX2, JetPack 3: no model of its own; the closest is Xavier (Denver/Carmel \
         generation, MTS field).",
    ),
    (
        "tx2-jp4",
        Model::Xavier,
        "Jetson TX2, JetPack 4: no model of its own; the closest is Xavier.",
    ),
    (
        "tx2-nx-jp4",
        Model::Xavier,
        "Jetson TX2 NX, JetPack 4: no model of its own; the closest is Xavier.",
    ),
    ("xavier-agx-jp4", Model::Xavier, "Jetson AGX Xavier, JetPack 4."),
    ("xavier-agx-jp5", Model::Xavier, "Jetson AGX Xavier, JetPack 5."),
    ("xavier-nx-jp4", Model::Xavier, "Jetson Xavier NX, JetPack 4."),
    ("xavier-nx-jp5", Model::Xavier, "Jetson Xavier NX, JetPack 5."),
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/tegrastats")
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Renders one corpus file; problems other than golden differences go to `failures`.
fn render(stem: &str, model: Model, note: &str, text: &str, failures: &mut Vec<String>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Golden output for testdata/tegrastats/{stem}.log");
    let _ = writeln!(out, "# Device: {note}");
    let _ = writeln!(
        out,
        "# Rules: {model:?} ({}). Regenerate: {UPDATE_COMMAND}",
        model.collector_name()
    );
    let _ = writeln!(
        out,
        "# Per line: `>` the raw line, then bad_tokens, unknown tokens, and `name value` for \
         every metric."
    );
    for (n, raw) in text.lines().enumerate() {
        let n = n + 1;
        let _ = writeln!(out, "\n## line {n}\n> {raw}");
        let line = match parse_line(raw) {
            Ok(line) => line,
            Err(error) => {
                failures.push(format!("{stem}.log line {n} did not parse: {error}"));
                let _ = writeln!(out, "error {error}");
                continue;
            }
        };
        let reading = match read_line(raw) {
            Ok(reading) => reading,
            Err(error) => {
                failures.push(format!("{stem}.log line {n}: {error}"));
                let _ = writeln!(out, "error {error}");
                continue;
            }
        };
        let _ = writeln!(out, "bad_tokens {}", reading.bad_tokens);
        for bad in &line.bad {
            let _ = writeln!(out, "bad {bad}");
            failures.push(format!("{stem}.log line {n}: {bad}"));
        }
        if line.unknown.is_empty() {
            let _ = writeln!(out, "unknown (none)");
        } else {
            let _ = writeln!(out, "unknown {}", line.unknown.join(" "));
            failures.push(format!(
                "{stem}.log line {n}: unknown tokens {:?}; map them or ignore them explicitly \
                 in exporter/src/tegrastats/parse.rs and document them in docs/METRICS.md",
                line.unknown
            ));
        }
        for (name, value) in &reading.values {
            if !value.is_finite() {
                failures.push(format!("{stem}.log line {n}: {name} is {value}"));
            }
            if help_text(name).starts_with("Jetson tegrastats value") {
                failures.push(format!(
                    "{stem}.log line {n}: {name} has no specific HELP text; add one in \
                     exporter/src/collector/jetson/help.rs"
                ));
            }
            let _ = writeln!(out, "{name} {value}");
        }
    }
    out
}

#[test]
fn corpus_matches_golden_files() {
    let corpus = corpus_dir();
    let entries = fs::read_dir(&corpus)
        .unwrap_or_else(|e| panic!("corpus directory {} is missing: {e}", corpus.display()));
    let mut stems = BTreeSet::new();
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            stems.insert(stem);
        }
    }
    assert!(
        !stems.is_empty(),
        "no *.log files in {}: the corpus is missing",
        corpus.display()
    );

    let mut failures = Vec::new();
    let mut lines = 0;
    for stem in &stems {
        let Some((_, model, note)) = CASES.iter().find(|(s, _, _)| s == stem) else {
            failures.push(format!(
                "testdata/tegrastats/{stem}.log has no entry in CASES in exporter/tests/golden.rs: \
                 add it with the model that fits its device"
            ));
            continue;
        };
        let text = fs::read_to_string(corpus.join(format!("{stem}.log"))).unwrap();
        lines += text.lines().count();
        let got = render(stem, *model, note, &text, &mut failures);
        let golden = golden_dir().join(format!("{stem}.log.golden"));
        failures.extend(golden::check(&golden, &got, UPDATE_COMMAND));
    }
    for (stem, _, _) in CASES {
        if !stems.contains(*stem) {
            failures.push(format!(
                "CASES names {stem} but testdata/tegrastats/{stem}.log is missing"
            ));
        }
    }
    for entry in fs::read_dir(golden_dir()).into_iter().flatten() {
        let entry = entry.unwrap();
        // Subdirectories hold other golden tests' files (boards/, sysfs/), checked there.
        if entry.file_type().unwrap().is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let stem = name.strip_suffix(".log.golden").unwrap_or(&name);
        if !stems.contains(stem) {
            failures.push(format!(
                "exporter/tests/golden/{name} has no corpus file; delete it"
            ));
        }
    }
    assert!(lines >= 93, "the corpus shrank to {lines} lines");
    assert!(
        failures.is_empty(),
        "{} problem(s) in the golden corpus test:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
