//! A small reader of the Prometheus text format (0.0.4), enough to check that the three
//! variants expose the same families and samples whatever their order and number spelling.

use std::collections::BTreeMap;

/// A sample's metric name and its label pairs, sorted.
pub type SampleKey = (String, Vec<(String, String)>);

/// One family: HELP text, TYPE and its samples keyed by metric name and sorted labels.
#[derive(Debug, Default, PartialEq)]
pub struct Family {
    /// `# HELP` text, unescaped.
    pub help: Option<String>,
    /// `# TYPE`.
    pub kind: Option<String>,
    /// (metric name, sorted label pairs) → value.
    pub samples: BTreeMap<SampleKey, f64>,
}

/// Every family of a body, by name.
pub type Exposition = BTreeMap<String, Family>;

/// Reads a body; any line it cannot read is an error naming the line.
pub fn parse(body: &str) -> Result<Exposition, String> {
    let mut out = Exposition::new();
    for line in body.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            let family = out.entry(name.to_string()).or_default();
            if family.help.replace(unescape(text, false)?).is_some() {
                return Err(format!("second HELP for {name}"));
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or(format!("TYPE without type: {line}"))?;
            let family = out.entry(name.to_string()).or_default();
            if family.kind.replace(kind.to_string()).is_some() {
                return Err(format!("second TYPE for {name}"));
            }
        } else if line.starts_with('#') {
            continue;
        } else {
            let (key, value) = sample(line)?;
            // Gauges only here: the family is the metric name itself.
            let family = out.entry(key.0.clone()).or_default();
            if family.samples.insert(key, value).is_some() {
                return Err(format!("duplicate sample: {line}"));
            }
        }
    }
    Ok(out)
}

fn sample(line: &str) -> Result<(SampleKey, f64), String> {
    let bad = || format!("cannot read sample line: {line}");
    let name_end = line.find(['{', ' ']).ok_or_else(bad)?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(mut inner) = rest.strip_prefix('{') {
        loop {
            inner = inner.trim_start_matches(',');
            if let Some(after) = inner.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = inner.split_once("=\"").ok_or_else(bad)?;
            // The value ends at the first quote not escaped by a backslash.
            let mut end = None;
            let mut escaped = false;
            for (i, c) in after.char_indices() {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        end = Some(i);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let end = end.ok_or_else(bad)?;
            labels.push((key.to_string(), unescape(&after[..end], true)?));
            inner = &after[end + 1..];
        }
    }
    let mut fields = rest.split_whitespace();
    let value = match fields.next().ok_or_else(bad)? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse::<f64>().map_err(|_| bad())?,
    };
    labels.sort();
    Ok(((name, labels), value))
}

fn unescape(text: &str, label: bool) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if label => out.push('"'),
            other => return Err(format!("bad escape \\{other:?} in {text:?}")),
        }
    }
    Ok(out)
}
