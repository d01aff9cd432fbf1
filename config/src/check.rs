//! Reading and checking a configuration: [`parse`] for `config.yaml` text, `from_value` for any
//! YAML value (a Config Server body arrives as one), [`Config::validate`] for a `Config` built
//! in code.
//!
//! The checks are driven by the key table (`keys.rs`): which keys a section knows, what each
//! kind of value must look like, and the fix each message suggests. Every problem is collected
//! before anything fails, each with its line (when there is text), key, value and fix; unknown
//! top-level keys are kept (with a "did you mean" in the log), unknown keys inside a section
//! are errors. The legacy `enabled_metrics` list is folded into `metrics:` here.

use std::net::IpAddr;

use crate::error::{ConfigError, Problem};
use crate::keys::{self, Key, Kind};
use crate::position::find_key_line;
use crate::schema::{Config, DeviceType};
use crate::yaml::{self, Mapping, Value};

/// Parses and validates config text; `origin` (usually the file path) names it in errors.
///
/// Every problem is reported at once, each naming the line, key, value and fix. The legacy
/// `enabled_metrics: [..]` list is converted to `metrics:` (listed → `true`).
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let value: Value = yaml::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        let mut msg = e.to_string();
        // The YAML library appends " at line L column C"; the line is already in front.
        if let Some(i) = msg.find(" at line ") {
            msg.truncate(i);
        }
        ConfigError::Invalid {
            origin: origin.to_string(),
            problems: vec![Problem::new(
                line,
                "",
                format!("is not valid YAML: {msg} (check indentation, colons and quoting)"),
            )],
        }
    })?;
    from_value(value, origin, Some(text), true)
}

impl Config {
    /// Checks a `Config` built or changed in code with the same rules as [`parse`].
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let value = yaml::to_value(self)
            .map_err(|e| ConfigError::invalid(origin, format!("cannot be represented: {e}")))?;
        from_value(value, origin, None, false).map(|_| ())
    }
}

/// Checks `value` and reads it as a `Config`. `text` is the file it came from, if any (for
/// line numbers). `log`: say which unknown keys were kept and that a legacy list was converted
/// (on loads, not on re-validation of a config already in memory).
pub(super) fn from_value(
    value: Value,
    origin: &str,
    text: Option<&str>,
    log: bool,
) -> Result<Config, ConfigError> {
    let mut ck = Checker {
        text,
        log,
        problems: Vec::new(),
    };
    let root = match value {
        Value::Mapping(m) => m,
        Value::Null => {
            let fix = if text.is_some() {
                "write at least `device_type: jetson_orin`, or delete the file to have defaults \
                 written"
            } else {
                "send at least {\"device_type\": \"jetson_orin\"}"
            };
            ck.report(&[], format!("is empty ({fix})"));
            return Err(ck.into_error(origin));
        }
        other => {
            ck.report(
                &[],
                format!(
                    "must be a mapping of keys such as `device_type: jetson_orin`, got {}",
                    show(&other)
                ),
            );
            return Err(ck.into_error(origin));
        }
    };
    let normalised = ck.check_root(root, origin);
    if !ck.problems.is_empty() {
        return Err(ck.into_error(origin));
    }
    yaml::from_value::<Config>(Value::Mapping(normalised)).map_err(|e| {
        // The checks above cover every key of the table; this is a backstop, not the normal
        // path.
        ConfigError::invalid(origin, format!("is not a valid config: {e}"))
    })
}

struct Checker<'a> {
    text: Option<&'a str>,
    log: bool,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn report(&mut self, path: &[&str], message: String) {
        let line = self.text.and_then(|t| find_key_line(t, path));
        self.problems
            .push(Problem::new(line, &path.join("."), message));
    }

    /// Reports `message` about the table key `key`, at its line.
    fn report_key(&mut self, key: &Key, message: String) {
        self.report(&key.path(), message);
    }

    fn into_error(mut self, origin: &str) -> ConfigError {
        // File order; problems without a line keep their relative order at the end.
        self.problems
            .sort_by_key(|p| (p.line.is_none(), p.line.unwrap_or(0)));
        ConfigError::Invalid {
            origin: origin.to_string(),
            problems: self.problems,
        }
    }

    /// Checks every known key; returns the mapping serde should read (nulls of optional
    /// top-level keys removed, the legacy list folded into `metrics`).
    fn check_root(&mut self, root: Mapping, origin: &str) -> Mapping {
        let mut out = Mapping::new();
        let mut legacy: Option<Value> = None;
        let mut unknown = Vec::new();
        for (k, v) in root {
            let Some(name) = k.as_str().map(str::to_string) else {
                self.report(
                    &[],
                    format!(
                        "has a non-text key {} (keys are names such as `interval`)",
                        show(&k)
                    ),
                );
                continue;
            };
            match keys::get(&name).filter(|key| key.section().is_none()) {
                Some(key) if key.kind == Kind::LegacyList => {
                    self.check(key, &v);
                    legacy = Some(v);
                    continue;
                }
                Some(key) => {
                    if key.null_ok && v.is_null() {
                        continue;
                    }
                    self.check(key, &v);
                }
                None => {
                    // serde cannot carry a custom tag through the flattened `extra` map.
                    if has_tag(&v) {
                        self.report(
                            &[&name],
                            format!(
                                "{name} holds a YAML tag (`!name value`), which config.yaml does \
                                 not support (remove the tag or quote the value)"
                            ),
                        );
                        continue;
                    }
                    // Kept keys are written back on every save: one that the YAML library
                    // cannot write would make every later save fail (and the API answer 500).
                    if has_complex_key(&v) || yaml::to_string(&v).is_err() {
                        self.report(
                            &[&name],
                            format!(
                                "{name} uses a mapping or list as a key, which config.yaml cannot \
                                 write back (use plain text keys, or remove {name})"
                            ),
                        );
                        continue;
                    }
                    unknown.push(name.clone())
                }
            }
            out.insert(Value::String(name), v);
        }
        if self.problems.is_empty() {
            self.cross_checks(&out);
        }
        if self.log && !unknown.is_empty() {
            let known: Vec<&str> = keys::top_level().map(|k| k.name).collect();
            let hints: Vec<String> = unknown
                .iter()
                .map(|k| match suggest(k, &known) {
                    Some(s) => format!("{k} (did you mean {s}?)"),
                    None => k.clone(),
                })
                .collect();
            tracing::warn!(
                origin,
                keys = %hints.join(", "),
                "Kept unknown top-level config keys; they are written back unchanged."
            );
        }
        if let Some(Value::Sequence(list)) = legacy {
            let metrics = out
                .entry(Value::String("metrics".into()))
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if let Value::Mapping(map) = metrics {
                for name in list {
                    // An explicit `metrics:` entry wins over the legacy list.
                    if !map.contains_key(&name) {
                        map.insert(name, Value::Bool(true));
                    }
                }
            }
            tracing::info!(
                origin,
                "Converted the legacy enabled_metrics list to the metrics map; the next save \
                 writes the map form."
            );
        }
        out
    }

    fn cross_checks(&mut self, out: &Mapping) {
        let port = out
            .get("port")
            .and_then(Value::as_u64)
            .unwrap_or(keys::DEFAULT_PORT.into());
        let reload = out
            .get("reload_port")
            .and_then(Value::as_u64)
            .unwrap_or(keys::DEFAULT_RELOAD_PORT.into());
        if port == reload && port != 0 {
            let (key, fix) = if out.contains_key("reload_port") {
                let fix = if port == u64::from(keys::DEFAULT_RELOAD_PORT) {
                    keys::DEFAULT_PORT
                } else {
                    keys::DEFAULT_RELOAD_PORT
                };
                ("reload_port", fix)
            } else {
                ("port", keys::DEFAULT_PORT)
            };
            self.report(
                &[key],
                format!("port and reload_port must differ, both are {port} (set {key}: {fix})"),
            );
        }
    }

    /// Checks a value of the table key `key` (present, and not a `null` the key accepts).
    fn check(&mut self, key: &Key, v: &Value) {
        match key.kind {
            Kind::DeviceType => self.device_type(key, v),
            Kind::Seconds { min, max } => self.seconds(key, v, min, max),
            Kind::Timeout { max } => self.timeout(key, v, max),
            Kind::Port => self.port(key, v),
            Kind::Count { min, max } => self.count(key, v, min, max),
            Kind::IpAddr => self.ip_addr(key, v),
            Kind::Text | Kind::Path => self.non_empty_text(key, v),
            Kind::Secret => self.secret(key, v),
            Kind::Url => self.url(key, v),
            Kind::Bool => self.boolean(key, v),
            Kind::Section => self.section(key, v),
            Kind::Metrics => self.metrics(key, v),
            Kind::LegacyList => self.legacy_list(key, v),
        }
    }

    fn device_type(&mut self, key: &Key, v: &Value) {
        let found = match v.as_str() {
            Some(s) if DeviceType::from_name(s).is_some() => return,
            Some(s) => s.to_string(),
            None => show(v),
        };
        self.report_key(
            key,
            format!(
                "Unsupported device type: {found}; supported: {} ({})",
                DeviceType::supported_list(),
                key.fix_text()
            ),
        );
    }

    fn seconds(&mut self, key: &Key, v: &Value, min: f64, max: f64) {
        let name = key.name;
        let fix = key.fix_text();
        let Some(secs) = v.as_f64().filter(|_| v.is_number()) else {
            self.report_key(
                key,
                format!(
                    "{name} must be a number of seconds, got {} ({fix})",
                    show(v)
                ),
            );
            return;
        };
        if secs.is_nan() || secs < min {
            self.report_key(
                key,
                format!("{name} must be at least {min}, got {} ({fix})", show(v)),
            );
        } else if secs > max {
            self.report_key(
                key,
                format!("{name} must be at most {max}, got {} ({fix})", show(v)),
            );
        }
    }

    fn timeout(&mut self, key: &Key, v: &Value, max: f64) {
        let ok = v.is_number() && v.as_f64().is_some_and(|t| t > 0.0 && t <= max);
        if !ok {
            self.report_key(
                key,
                format!(
                    "{} must be a number of seconds above 0 and at most {max}, got {} ({})",
                    key.name,
                    show(v),
                    key.fix_text()
                ),
            );
        }
    }

    fn port(&mut self, key: &Key, v: &Value) {
        let ok = v.as_u64().is_some_and(|p| p <= u64::from(u16::MAX));
        if !ok {
            self.report_key(
                key,
                format!(
                    "{} must be a whole number from 1 to 65535 (0 picks a free port), got {} \
                     ({})",
                    key.name,
                    show(v),
                    key.fix_text()
                ),
            );
        }
    }

    fn count(&mut self, key: &Key, v: &Value, min: u32, max: u32) {
        let ok = v
            .as_u64()
            .is_some_and(|n| (u64::from(min)..=u64::from(max)).contains(&n));
        if !ok {
            self.report_key(
                key,
                format!(
                    "{} must be a whole number from {min} to {max}, got {} ({})",
                    key.name,
                    show(v),
                    key.fix_text()
                ),
            );
        }
    }

    fn ip_addr(&mut self, key: &Key, v: &Value) {
        let ok = v.as_str().is_some_and(|s| s.parse::<IpAddr>().is_ok());
        if !ok {
            self.report_key(
                key,
                format!(
                    "{} must be an IP address such as 0.0.0.0, 127.0.0.1 or ::, got {} ({})",
                    key.name,
                    show(v),
                    key.fix_text()
                ),
            );
        }
    }

    fn non_empty_text(&mut self, key: &Key, v: &Value) {
        let ok = v.as_str().is_some_and(|s| !s.trim().is_empty());
        if !ok {
            self.report_key(
                key,
                format!(
                    "{} must be non-empty text (quote numbers), got {} ({})",
                    key.name,
                    show(v),
                    key.fix_text()
                ),
            );
        }
    }

    /// Like text, but the message says what is wrong without showing the value: a secret
    /// typed into the wrong key, or with a stray character, must not end up in a log.
    fn secret(&mut self, key: &Key, v: &Value) {
        let wrong = match v.as_str() {
            Some(s) if is_header_token(s) => return,
            Some(s) if s.trim().is_empty() => "empty text",
            Some(_) => "text with a space, a control character or a non-ASCII character",
            None if v.is_number() => "a number (quote it)",
            None => match v {
                Value::Bool(_) => "true or false",
                Value::Sequence(_) => "a list",
                Value::Mapping(_) => "a mapping",
                Value::Tagged(_) => "a tagged value",
                _ => "nothing",
            },
        };
        self.report_key(
            key,
            format!(
                "{} must be one word of visible ASCII characters, as it is sent in an HTTP \
                 header; got {wrong}, not shown here ({})",
                key.name,
                key.fix_text()
            ),
        );
    }

    fn url(&mut self, key: &Key, v: &Value) {
        let name = key.name;
        let fix = key.fix_text();
        match v.as_str() {
            Some(s) => {
                if let Err(why) = check_url(s) {
                    self.report_key(key, format!("{name} {why}, got {s:?} ({fix})"));
                }
            }
            None => self.report_key(
                key,
                format!(
                    "{name} must be an http:// or https:// URL, got {} ({fix})",
                    show(v)
                ),
            ),
        }
    }

    fn boolean(&mut self, key: &Key, v: &Value) {
        if !v.is_bool() {
            self.report_key(
                key,
                format!(
                    "{} must be true or false, got {} ({})",
                    key.name,
                    show(v),
                    key.fix_text()
                ),
            );
        }
    }

    /// Reports keys of the section that the table does not list, then checks the listed ones
    /// that are present, in table order.
    fn section(&mut self, key: &Key, v: &Value) {
        let name = key.name;
        let children: Vec<&Key> = keys::in_section(name).collect();
        let known: Vec<&str> = children.iter().map(|k| k.short()).collect();
        let Some(map) = v.as_mapping() else {
            self.report_key(
                key,
                format!(
                    "{name} must be a mapping with keys {}, got {} ({})",
                    known.join(", "),
                    show(v),
                    key.fix_text()
                ),
            );
            return;
        };
        for k in map.keys() {
            let text = k.as_str().map(str::to_string).unwrap_or_else(|| show(k));
            if !known.contains(&text.as_str()) {
                let hint = match suggest(&text, &known) {
                    Some(s) => format!("did you mean {s}?"),
                    None => format!("known keys: {}", known.join(", ")),
                };
                let mut path = key.path();
                path.push(&text);
                self.report(&path, format!("{name}.{text} is not a known key ({hint})"));
            }
        }
        for child in children {
            if let Some(val) = map.get(child.short()) {
                if child.null_ok && val.is_null() {
                    continue;
                }
                self.check(child, val);
            }
        }
    }

    fn metrics(&mut self, key: &Key, v: &Value) {
        let section = key.name;
        let Some(map) = v.as_mapping() else {
            let hint = if v.is_sequence() {
                " (a list is the old `enabled_metrics:` form; write `name: true` lines)"
            } else {
                ""
            };
            self.report_key(
                key,
                format!(
                    "{section} must be a mapping of metric name to true/false, got {}{hint}",
                    show(v)
                ),
            );
            return;
        };
        for (k, val) in map {
            let name = k.as_str().map(str::to_string).unwrap_or_else(|| show(k));
            if !k.is_string() || !is_metric_name(&name) {
                self.report(
                    &[section, &name],
                    format!(
                        "{section} key {name} is not a valid metric name ({})",
                        key.fix_text()
                    ),
                );
                continue;
            }
            if !val.is_bool() {
                self.report(
                    &[section, &name],
                    format!(
                        "{section}.{name} must be true or false, got {} (set {name}: true)",
                        show(val)
                    ),
                );
            }
        }
    }

    fn legacy_list(&mut self, key: &Key, v: &Value) {
        let name = key.name;
        let Some(list) = v.as_sequence() else {
            if !(key.null_ok && v.is_null()) {
                self.report_key(
                    key,
                    format!(
                        "{name} must be a list of metric names, got {} ({})",
                        show(v),
                        key.fix_text()
                    ),
                );
            }
            return;
        };
        for item in list {
            let ok = item.as_str().is_some_and(is_metric_name);
            if !ok {
                self.report_key(
                    key,
                    format!(
                        "{name} entries must be metric names such as jetson_ram_used_mb, got {}",
                        show(item)
                    ),
                );
            }
        }
    }
}

/// Whether `s` is a Prometheus metric name without colons (colons are for recording rules):
/// `[a-zA-Z_][a-zA-Z0-9_]*`. The one rule for every name the exporter keeps, whether a user
/// wrote it in `metrics:` or a collector learnt it from tegrastats or shelly-bridge.
pub fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `s` can be sent as a bearer token in an HTTP header: non-empty, visible ASCII
/// only (`!` to `~`), so no spaces, control characters or line breaks.
pub(super) fn is_header_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// `Ok` for an http(s) URL with a host; else why not, as "must be ... URL".
pub(super) fn check_url(s: &str) -> Result<(), String> {
    if !s.contains("://") {
        return Err("must start with http:// or https://".to_string());
    }
    match url::Url::parse(s.trim()) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => Err(format!(
            "must be an http:// or https:// URL, not {}://",
            u.scheme()
        )),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => {
            Err("must be a URL with a host".to_string())
        }
        Ok(_) => Ok(()),
        Err(e) => Err(format!("must be an http:// or https:// URL ({e})")),
    }
}

/// Whether a YAML value holds a custom tag anywhere.
fn has_tag(v: &Value) -> bool {
    match v {
        Value::Tagged(_) => true,
        Value::Sequence(items) => items.iter().any(has_tag),
        Value::Mapping(map) => map.iter().any(|(k, v)| has_tag(k) || has_tag(v)),
        _ => false,
    }
}

/// Whether a YAML value uses a mapping or a list as a mapping key anywhere (`? {a: b}: c`).
fn has_complex_key(v: &Value) -> bool {
    match v {
        Value::Sequence(items) => items.iter().any(has_complex_key),
        Value::Mapping(map) => map.iter().any(|(k, v)| {
            matches!(k, Value::Mapping(_) | Value::Sequence(_) | Value::Tagged(_))
                || has_complex_key(v)
        }),
        Value::Tagged(t) => has_complex_key(&t.value),
        _ => false,
    }
}

/// A short rendering of a YAML value for messages.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "nothing".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

/// The closest of `known` within two edits, for "did you mean".
fn suggest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_text(text: &str) -> String {
        parse(text, "config.yaml").unwrap_err().to_string()
    }

    #[test]
    fn interval_zero_names_file_line_value_and_fix() {
        let e = err_text("device_type: jetson_orin\nport: 9102\ninterval: 0\n");
        assert_eq!(
            e,
            "config.yaml:3: interval must be at least 0.1, got 0 (set interval: 1)"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_in_file_order() {
        let text = "device_type: jetson_tx2\ninterval: -1\nport: 70000\nshelly:\n  enabled: \
                    yes\n  server-url: http://x\nmetrics:\n  jetson_ram_used_mb: 1\n";
        let err = parse(text, "config.yaml").unwrap_err();
        let lines: Vec<Option<usize>> = err.problems().iter().map(|p| p.line).collect();
        assert_eq!(
            lines,
            vec![Some(1), Some(2), Some(3), Some(5), Some(6), Some(8)],
            "{err}"
        );
        let s = err.to_string();
        assert!(!s.contains('\n'));
        assert!(s.contains("Unsupported device type: jetson_tx2; supported: jetson_orin, jetson_xavier, jetson_nano, jetson, raspberry_pi, lattepanda, orange_pi, auto"), "{s}");
        assert!(
            s.contains("shelly.server-url is not a known key (did you mean server_url?)"),
            "{s}"
        );
        assert!(
            s.contains("metrics.jetson_ram_used_mb must be true or false, got 1"),
            "{s}"
        );
        assert!(
            s.contains("shelly.enabled must be true or false, got \"yes\""),
            "{s}"
        );
    }

    #[test]
    fn yaml_syntax_error_names_line() {
        let e = err_text("device_type: jetson_orin\nmetrics:\n  a: true\n b: false\n");
        assert!(e.starts_with("config.yaml:4: is not valid YAML"), "{e}");
        assert!(!e.contains(" at line "), "{e}");
    }

    #[test]
    fn same_ports_rejected_unless_zero() {
        let e = err_text("port: 9200\nreload_port: 9200\n");
        assert_eq!(
            e,
            "config.yaml:2: port and reload_port must differ, both are 9200 (set reload_port: 9101)"
        );
        parse("port: 0\nreload_port: 0\n", "c").unwrap();
        let e = err_text("port: 9101\n");
        assert!(
            e.starts_with("config.yaml:1: port and reload_port must differ"),
            "{e}"
        );
    }

    #[test]
    fn urls_must_be_http() {
        let e = err_text("shelly:\n  server_url: ftp://x\n");
        assert!(
            e.starts_with(
                "config.yaml:2: shelly.server_url must be an http:// or https:// URL, not ftp://"
            ),
            "{e}"
        );
        let e = err_text("config_server:\n  url: not a url\n");
        assert!(
            e.starts_with("config.yaml:2: config_server.url must start with http:// or https://"),
            "{e}"
        );
        parse(
            "config_server:\n  url: https://cfg.example:8443/api\n  timeout: 2.5\n",
            "c",
        )
        .unwrap();
    }

    /// The Config Server token is checked like a header value, and no message shows it.
    #[test]
    fn a_config_server_token_is_one_visible_word_and_never_shown() {
        let c = parse(
            "config_server:\n  url: https://cfg.example\n  token: \"Zm9v.YmFy-_~+/=\"\n",
            "c",
        )
        .unwrap();
        assert_eq!(c.config_server.token.as_deref(), Some("Zm9v.YmFy-_~+/="));
        let fix = "(set token: \"a-long-random-secret\", or remove the key)";
        for (value, got) in [
            (
                "\"two words\"",
                "text with a space, a control character or a non-ASCII character",
            ),
            (
                "\"tab\\there\"",
                "text with a space, a control character or a non-ASCII character",
            ),
            (
                "\"café\"",
                "text with a space, a control character or a non-ASCII character",
            ),
            ("\"  \"", "empty text"),
            ("123456", "a number (quote it)"),
            ("true", "true or false"),
            ("{a: b}", "a mapping"),
        ] {
            let e = err_text(&format!("config_server:\n  token: {value}\n"));
            assert_eq!(
                e,
                format!(
                    "config.yaml:2: config_server.token must be one word of visible ASCII \
                     characters, as it is sent in an HTTP header; got {got}, not shown here {fix}"
                )
            );
        }
        let e = err_text("config_server:\n  token: 123456\n");
        assert!(!e.contains("123456"), "{e}");
        // Null is the same as leaving it out.
        let c = parse("config_server:\n  token:\n", "c").unwrap();
        assert_eq!(c.config_server.token, None);
        assert!(is_header_token("a"));
        assert!(!is_header_token(""));
        assert!(!is_header_token("a\nb"));
    }

    #[test]
    fn a_config_server_ca_file_is_a_path() {
        let c = parse(
            "config_server:\n  url: https://cfg.example\n  ca_file: /etc/edge-metrics/ca.pem\n",
            "c",
        )
        .unwrap();
        assert_eq!(
            c.config_server.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/edge-metrics/ca.pem"))
        );
        let e = err_text("config_server:\n  ca_file: \"\"\n");
        assert_eq!(
            e,
            "config.yaml:2: config_server.ca_file must be non-empty text (quote numbers), got \
             \"\" (set ca_file: \"/etc/edge-metrics/config-server-ca.pem\", or remove the key)"
        );
        let e = err_text("config_server:\n  ca-file: /x.pem\n");
        assert!(
            e.contains("config_server.ca-file is not a known key (did you mean ca_file?)"),
            "{e}"
        );
    }

    #[test]
    fn empty_file_is_an_error_with_a_fix() {
        let e = err_text("# nothing here\n");
        assert!(e.contains("is empty"), "{e}");
    }

    #[test]
    fn legacy_list_becomes_map_and_explicit_entries_win() {
        let c = parse(
            "enabled_metrics:\n  - jetson_ram_used_mb\n  - jetson_gpu_usage_percent\nmetrics:\n  jetson_gpu_usage_percent: false\n",
            "c",
        )
        .unwrap();
        assert_eq!(c.metrics.get("jetson_ram_used_mb"), Some(&true));
        assert_eq!(c.metrics.get("jetson_gpu_usage_percent"), Some(&false));
        assert!(!c.extra.contains_key("enabled_metrics"));
        let yaml = crate::to_yaml(&c).unwrap();
        assert!(!yaml.contains("enabled_metrics"), "{yaml}");
    }

    #[test]
    fn validate_checks_configs_built_in_code() {
        let mut c = Config::default();
        c.validate("memory").unwrap();
        c.metrics.insert("bad-name".into(), true);
        c.interval = 0.0;
        let e = c.validate("memory").unwrap_err();
        assert_eq!(e.problems().len(), 2, "{e}");
    }

    /// Replaces the test of the fresh per-model config, which now lives with the collectors:
    /// every default of the key table passes the checks built from the same table.
    #[test]
    fn config_default_is_valid() {
        let c = Config::default();
        c.validate("defaults").unwrap();
        assert_eq!(c.device_type, DeviceType::Auto);
        assert_eq!(c.host_root, None);
        assert!(c.metrics.is_empty());
    }

    /// Every key of the table is checked where it stands, under its own name, with its fix.
    #[test]
    fn every_table_key_is_checked_with_its_fix() {
        for key in keys::KEYS {
            // A list is wrong for every kind but the legacy list, whose entries must be names.
            let text = match key.section() {
                None => format!("{}: [1]\n", key.name),
                Some(section) => format!("{section}:\n  {}: [1]\n", key.short()),
            };
            let err = parse(&text, "config.yaml").unwrap_err();
            let [problem] = err.problems() else {
                panic!("{}: one problem expected: {err}", key.name);
            };
            assert_eq!(problem.key, key.name, "{err}");
            let line = if key.section().is_some() { 2 } else { 1 };
            assert_eq!(problem.line, Some(line), "{err}");
            if !matches!(key.kind, Kind::Metrics | Kind::LegacyList) {
                assert!(
                    problem.message.ends_with(&format!("({})", key.fix_text())),
                    "{err}"
                );
            }
            if key.null_ok {
                let text = text.replace("[1]", "");
                parse(&text, "config.yaml").unwrap_or_else(|e| panic!("{}: {e}", key.name));
            }
        }
    }

    /// A count is a whole number within its range; anything else names the range and the fix.
    #[test]
    fn counts_must_be_whole_numbers_in_their_range() {
        let c = parse("max_connections: 16\n", "c").unwrap();
        assert_eq!(c.max_connections, 16);
        parse("max_connections: 1\n", "c").unwrap();
        parse("max_connections: 65536\n", "c").unwrap();
        for bad in ["0", "65537", "-1", "2.5", "\"16\"", "true", "4294967297"] {
            let e = err_text(&format!("interval: 1\nmax_connections: {bad}\n"));
            let shown = bad.trim_matches('"');
            let shown = if bad.starts_with('"') {
                format!("{shown:?}")
            } else {
                shown.to_string()
            };
            assert_eq!(
                e,
                format!(
                    "config.yaml:2: max_connections must be a whole number from 1 to 65536, \
                     got {shown} (set max_connections: 256)"
                )
            );
        }
        let e = err_text("max_connections:\n");
        assert_eq!(
            e,
            "config.yaml:1: max_connections must be a whole number from 1 to 65536, got \
             nothing (set max_connections: 256)"
        );
    }

    #[test]
    fn did_you_mean_picks_the_closest_known_key() {
        assert_eq!(
            suggest("server-url", &["enabled", "server_url"]),
            Some("server_url")
        );
        assert_eq!(
            suggest("intervall", &["interval", "port"]),
            Some("interval")
        );
        assert_eq!(suggest("colour", &["interval", "port"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
