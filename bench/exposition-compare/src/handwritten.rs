//! (a) The exporter's renderer, called as `edge_metrics_exporter::cycle::render` calls it: the
//! (name, value) list of enabled metrics → `write_device_values` with its cached HELP/TYPE lines.
//!
//! [`exposition`] is a copy of the render loop of `exporter/src/exposition.rs` as of commit
//! b3677b2 (unchanged at 397adb0, where only the HELP lookup moved to `collector::help_text`).
//! This project does not link the exporter library: its modules were being moved, and the path
//! dependency did not build. The only change is that HELP texts come from
//! [`crate::snapshot::HELP`], which holds the exporter's texts for these names.

use crate::snapshot::{DEVICE_TYPE, HOSTNAME, NAMES};
use crate::{body_capacity, Render};

use self::exposition::{device_labels, write_device_values, Headers};

/// The exporter's state between cycles: the label string and the header cache.
pub struct Handwritten {
    labels: String,
    headers: Headers,
}

impl Handwritten {
    /// Builds the label string; the header cache fills on the first render.
    pub fn new() -> Self {
        Self {
            labels: device_labels(DEVICE_TYPE, HOSTNAME),
            headers: Headers::default(),
        }
    }
}

impl Default for Handwritten {
    fn default() -> Self {
        Self::new()
    }
}

impl Render for Handwritten {
    fn name(&self) -> &'static str {
        "handwritten"
    }

    fn render(&mut self, values: &[f64]) -> String {
        let enabled: Vec<(&str, f64)> = NAMES.iter().copied().zip(values.iter().copied()).collect();
        let mut out = String::with_capacity(body_capacity(enabled.len()));
        write_device_values(
            &mut out,
            enabled.iter().copied(),
            &self.labels,
            &mut self.headers,
        );
        out
    }
}

/// Copied from `exporter/src/exposition.rs` (b3677b2); `help_for` → [`crate::snapshot::help`].
pub mod exposition {
    use std::collections::HashMap;
    use std::fmt::Write as _;

    use crate::snapshot::help as help_for;

    /// The label set stamped on every device and Shelly sample, pre-rendered with braces.
    pub fn device_labels(device_type: &str, hostname: &str) -> String {
        format!(
            "{{device_type=\"{}\",hostname=\"{}\"}}",
            escape_label(device_type),
            escape_label(hostname)
        )
    }

    /// Escapes a label value: backslash, double quote and newline.
    pub fn escape_label(value: &str) -> String {
        let mut out = String::with_capacity(value.len());
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out
    }

    /// Escapes HELP text: backslash and newline.
    pub fn escape_help(text: &str) -> String {
        text.replace('\\', "\\\\").replace('\n', "\\n")
    }

    /// Writes a sample value as Prometheus expects it.
    pub fn write_value(out: &mut String, v: f64) {
        if v.is_nan() {
            out.push_str("NaN");
        } else if v.is_infinite() {
            out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        } else if v.fract() == 0.0 && v.abs() < 1e15 {
            let _ = write!(out, "{}", v as i64);
        } else {
            // Rust's `Display` for f64 is the shortest round-trip decimal, never exponent form.
            let _ = write!(out, "{v}");
        }
    }

    /// Writes HELP and TYPE lines of one family.
    pub fn write_header(out: &mut String, name: &str, help: &str, kind: &str) {
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        out.push_str(&escape_help(help));
        out.push_str("\n# TYPE ");
        out.push_str(name);
        out.push(' ');
        out.push_str(kind);
        out.push('\n');
    }

    /// The family type: `_total` names are counters (energy meters), everything else a gauge.
    pub fn type_for(name: &str) -> &'static str {
        if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        }
    }

    /// The `# HELP` and `# TYPE` lines of each family, built once per name.
    #[derive(Debug, Default)]
    pub struct Headers {
        by_name: HashMap<String, Box<str>>,
    }

    impl Headers {
        /// The two header lines of `name`'s family.
        pub fn get(&mut self, name: &str) -> &str {
            if !self.by_name.contains_key(name) {
                let mut lines = String::new();
                write_header(&mut lines, name, help_for(name), type_for(name));
                self.by_name.insert(name.to_string(), lines.into());
            }
            &self.by_name[name]
        }
    }

    /// Writes one family per value, each with `labels` (from [`device_labels`]).
    pub fn write_device_values<'a>(
        out: &mut String,
        values: impl IntoIterator<Item = (&'a str, f64)>,
        labels: &str,
        headers: &mut Headers,
    ) {
        for (name, v) in values {
            out.push_str(headers.get(name));
            out.push_str(name);
            out.push_str(labels);
            out.push(' ');
            write_value(out, v);
            out.push('\n');
        }
    }
}
