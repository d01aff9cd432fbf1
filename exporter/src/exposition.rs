//! Prometheus text exposition (format 0.0.4): a snapshot's values → the `/metrics` body.
//!
//! Every family gets `# HELP` and `# TYPE`; device and Shelly samples carry exactly
//! `{device_type="…",hostname="…"}`. Values are written as Prometheus parses them: integers
//! without a fraction (`2690`), others in plain decimal (never `1e-7`), `NaN`, `+Inf`, `-Inf`.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::collector::help_text;

/// The `Content-Type` of the body.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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

/// The `# HELP` and `# TYPE` lines of each family, built once per name: they depend on the
/// name alone, and building the help text allocates. Holds one entry per name ever rendered,
/// which is bounded by the names the collectors produce.
#[derive(Debug, Default)]
pub struct Headers {
    by_name: HashMap<String, Box<str>>,
}

impl Headers {
    /// The two header lines of `name`'s family.
    pub fn get(&mut self, name: &str) -> &str {
        if !self.by_name.contains_key(name) {
            let mut lines = String::new();
            write_header(&mut lines, name, &help_text(name), type_for(name));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn value(v: f64) -> String {
        let mut s = String::new();
        write_value(&mut s, v);
        s
    }

    #[test]
    fn values_are_written_as_prometheus_parses_them() {
        assert_eq!(value(2690.0), "2690");
        assert_eq!(value(3.176), "3.176");
        assert_eq!(value(0.0000001), "0.0000001");
        assert_eq!(value(-256.0), "-256");
        assert_eq!(value(1e20), "100000000000000000000");
        assert_eq!(value(f64::NAN), "NaN");
        assert_eq!(value(f64::INFINITY), "+Inf");
        assert_eq!(value(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn families_have_help_type_and_exact_labels() {
        let labels = device_labels("jetson_orin", "edge-01");
        let mut headers = Headers::default();
        for _ in 0..2 {
            // The second render takes the header lines from the cache: the same text.
            let mut out = String::new();
            write_device_values(
                &mut out,
                [
                    ("jetson_temp_cpu_celsius", 45.25),
                    ("power_energy_watt_hours_total", 7.0),
                ],
                &labels,
                &mut headers,
            );
            let lines: Vec<&str> = out.lines().collect();
            assert!(lines[0].starts_with("# HELP jetson_temp_cpu_celsius "));
            assert_eq!(lines[1], "# TYPE jetson_temp_cpu_celsius gauge");
            assert_eq!(
                lines[2],
                "jetson_temp_cpu_celsius{device_type=\"jetson_orin\",hostname=\"edge-01\"} 45.25"
            );
            assert_eq!(lines[4], "# TYPE power_energy_watt_hours_total counter");
            assert_eq!(lines.len(), 6);
        }
    }

    #[test]
    fn energy_meters_are_counters_and_every_name_has_help() {
        assert_eq!(type_for("power_energy_watt_hours_total"), "counter");
        assert_eq!(type_for("power_total_watts"), "gauge");
        for name in [
            "power_switch_on",
            "power_new_reading",
            "jetson_temp_cpu_celsius",
        ] {
            assert!(!help_text(name).is_empty());
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            device_labels("jetson", "a\"b\\c\nd"),
            "{device_type=\"jetson\",hostname=\"a\\\"b\\\\c\\nd\"}"
        );
    }
}
