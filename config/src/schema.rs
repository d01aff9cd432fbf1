//! The serde types of `config.yaml`: [`Config`], its sections and [`DeviceType`].
//!
//! Defaults come from the key table (`keys.rs`) and nowhere else; a test checks that the table
//! and these fields name the same keys, in both directions, with the same defaults.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use crate::keys;
use crate::yaml;

/// The values `device_type` accepts: a device type, or `auto`.
///
/// `auto` is a setting, not a type: the exporter resolves it from the device tree (its
/// `device` module) before anything uses it, and what it resolves to is one of the others.
/// Everything past the configuration works with that resolved type, which has no `auto`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum DeviceType {
    /// `jetson_orin`
    JetsonOrin,
    /// `jetson_xavier`
    JetsonXavier,
    /// `jetson_nano`
    JetsonNano,
    /// `jetson`: generic fallback, Orin parsing.
    Jetson,
    /// `raspberry_pi`: Raspberry Pi, read from sysfs (INA2xx power monitors).
    RaspberryPi,
    /// `lattepanda`: LattePanda or any x86 board with Intel RAPL, read from sysfs.
    #[serde(rename = "lattepanda")]
    LattePanda,
    /// `orange_pi`: Orange Pi 5 or another Rockchip RK3588 board, read from sysfs.
    OrangePi,
    /// `auto`: read the device tree under `host_root` and pick one of the others.
    Auto,
}

impl DeviceType {
    /// Every accepted value, in the order error messages list them.
    pub const ALL: [DeviceType; 8] = [
        DeviceType::JetsonOrin,
        DeviceType::JetsonXavier,
        DeviceType::JetsonNano,
        DeviceType::Jetson,
        DeviceType::RaspberryPi,
        DeviceType::LattePanda,
        DeviceType::OrangePi,
        DeviceType::Auto,
    ];

    /// The config value, e.g. `jetson_orin`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::JetsonOrin => "jetson_orin",
            DeviceType::JetsonXavier => "jetson_xavier",
            DeviceType::JetsonNano => "jetson_nano",
            DeviceType::Jetson => "jetson",
            DeviceType::RaspberryPi => "raspberry_pi",
            DeviceType::LattePanda => "lattepanda",
            DeviceType::OrangePi => "orange_pi",
            DeviceType::Auto => "auto",
        }
    }

    /// The type whose config value is `s`, if any.
    pub fn from_name(s: &str) -> Option<DeviceType> {
        DeviceType::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// `jetson_orin, jetson_xavier, jetson_nano, jetson, raspberry_pi, lattepanda, orange_pi,
    /// auto`: the list error messages show.
    pub fn supported_list() -> String {
        DeviceType::ALL.map(DeviceType::as_str).join(", ")
    }
}

impl std::fmt::Display for DeviceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn default_device_type() -> DeviceType {
    DeviceType::from_name(keys::DEFAULT_DEVICE_TYPE)
        .expect("invariant: the key table's default device_type is a supported type")
}
fn default_interval() -> f64 {
    keys::DEFAULT_INTERVAL_SECS
}
fn default_port() -> u16 {
    keys::DEFAULT_PORT
}
fn default_reload_port() -> u16 {
    keys::DEFAULT_RELOAD_PORT
}
fn default_bind_address() -> String {
    keys::DEFAULT_BIND_ADDRESS.to_string()
}
fn default_reload_bind_address() -> String {
    keys::DEFAULT_RELOAD_BIND_ADDRESS.to_string()
}
fn default_max_connections() -> u32 {
    keys::DEFAULT_MAX_CONNECTIONS
}
fn default_tegrastats_path() -> PathBuf {
    PathBuf::from(keys::DEFAULT_TEGRASTATS_PATH)
}
fn is_false(b: &bool) -> bool {
    !*b
}
/// `key:` with nothing after it reads as leaving the key out.
fn null_is_false<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Option::<bool>::deserialize(d).map(|b| b.unwrap_or(false))
}
fn default_shelly_enabled() -> bool {
    keys::DEFAULT_SHELLY_ENABLED
}
fn default_shelly_url() -> String {
    keys::DEFAULT_SHELLY_SERVER_URL.to_string()
}

/// Writes whole seconds as an integer (`1`, never `1.0`), so `GET /config` and the saved file
/// echo what the user wrote.
fn serialize_seconds<S: Serializer>(secs: &f64, s: S) -> Result<S::Ok, S::Error> {
    // 2^53: every integer below it is exact in an f64.
    if secs.fract() == 0.0 && *secs >= 0.0 && *secs < 9_007_199_254_740_992.0 {
        s.serialize_u64(*secs as u64)
    } else {
        s.serialize_f64(*secs)
    }
}

fn serialize_opt_seconds<S: Serializer>(secs: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match secs {
        Some(v) => serialize_seconds(v, s),
        None => s.serialize_none(),
    }
}

/// The whole `config.yaml`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Config {
    /// Which collector parses tegrastats; `auto` (the default) reads the device tree.
    #[serde(default = "default_device_type")]
    pub device_type: DeviceType,
    /// Where the host's identity files are read (`{host_root}/proc/device-tree/model`, ...):
    /// else `EDGE_METRICS_HOST_ROOT`, else `/` (see [`host_root`](crate::host_root)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_root: Option<PathBuf>,
    /// Collection interval in seconds (also tegrastats `--interval`); fractions allowed,
    /// [`MIN_INTERVAL_SECS`](keys::MIN_INTERVAL_SECS)..=[`MAX_INTERVAL_SECS`](keys::MAX_INTERVAL_SECS).
    /// Whole values serialise as integers.
    #[serde(default = "default_interval", serialize_with = "serialize_seconds")]
    pub interval: f64,
    /// Prometheus `/metrics` port (0 = any free port, for tests).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Management API port (0 = any free port, for tests).
    #[serde(default = "default_reload_port")]
    pub reload_port: u16,
    /// Bind address (an IP address) of the metrics server.
    #[serde(default = "default_bind_address")]
    pub bind_address: String,
    /// Bind address (an IP address) of the management API.
    #[serde(default = "default_reload_bind_address")]
    pub reload_bind_address: String,
    /// The most connections each server keeps open at once
    /// ([`MIN_MAX_CONNECTIONS`](keys::MIN_MAX_CONNECTIONS)..=[`MAX_MAX_CONNECTIONS`](keys::MAX_MAX_CONNECTIONS));
    /// one over the cap is closed as soon as it is accepted. Applied at start only.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Overrides the `hostname` label (else `EDGE_METRICS_HOSTNAME`, else the system hostname).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Bearer token for the management API (else `EDGE_METRICS_API_TOKEN`); none = open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token: Option<String>,
    /// Where tegrastats lines come from.
    #[serde(default)]
    pub tegrastats: TegrastatsConfig,
    /// The Shelly collector.
    #[serde(default)]
    pub shelly: ShellyConfig,
    /// Optional Config Server.
    #[serde(default, skip_serializing_if = "ConfigServerConfig::is_unset")]
    pub config_server: ConfigServerConfig,
    /// Metric name → enabled.
    #[serde(default)]
    pub metrics: BTreeMap<String, bool>,
    /// Top-level keys this version does not know: kept and written back.
    #[serde(flatten)]
    pub extra: BTreeMap<String, yaml::Value>,
}

/// `tegrastats:` section. Exactly one source is used: `sysfs`, else `replay`, else `logfile`, else `path`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TegrastatsConfig {
    /// The tegrastats executable, spawned with `--interval <ms>`.
    #[serde(default = "default_tegrastats_path")]
    pub path: PathBuf,
    /// Follow a file written by a host-side `tegrastats --logfile` instead of spawning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logfile: Option<PathBuf>,
    /// Loop over recorded lines at the interval (demo mode, tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<PathBuf>,
    /// Read sysfs/procfs under `host_root` instead of tegrastats; wins over the others.
    /// Written only when true, so existing files keep their shape.
    #[serde(
        default,
        deserialize_with = "null_is_false",
        skip_serializing_if = "is_false"
    )]
    pub sysfs: bool,
}

impl Default for TegrastatsConfig {
    fn default() -> Self {
        TegrastatsConfig {
            path: default_tegrastats_path(),
            logfile: None,
            replay: None,
            sysfs: false,
        }
    }
}

/// `shelly:` section.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ShellyConfig {
    /// Run the Shelly collector.
    #[serde(default = "default_shelly_enabled")]
    pub enabled: bool,
    /// shelly-bridge HTTP API.
    #[serde(default = "default_shelly_url")]
    pub server_url: String,
    /// Ask `GET /metrics/{device_id}` instead of `GET /metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
}

impl Default for ShellyConfig {
    fn default() -> Self {
        ShellyConfig {
            enabled: default_shelly_enabled(),
            server_url: default_shelly_url(),
            device_id: None,
        }
    }
}

/// `config_server:` section (also `CONFIG_SERVER_URL` / `CONFIG_TIMEOUT` /
/// `CONFIG_SERVER_TOKEN`). Its `Debug` leaves the token out.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigServerConfig {
    /// Base URL; unset = no Config Server (unless `CONFIG_SERVER_URL` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Request timeout in seconds (else `CONFIG_TIMEOUT`, else
    /// [`DEFAULT_CONFIG_TIMEOUT_SECS`](keys::DEFAULT_CONFIG_TIMEOUT_SECS)).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_opt_seconds"
    )]
    pub timeout: Option<f64>,
    /// Bearer token for the Config Server (else `CONFIG_SERVER_TOKEN`); a secret, never in
    /// [`to_json`](crate::to_json).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// PEM file of a CA trusted for `https://` besides the built-in roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl ConfigServerConfig {
    fn is_unset(&self) -> bool {
        self.url.is_none()
            && self.timeout.is_none()
            && self.token.is_none()
            && self.ca_file.is_none()
    }
}

impl std::fmt::Debug for ConfigServerConfig {
    /// Like the derived one, with the token shown as `Some("<secret>")`: a config printed in a
    /// log or a failed assertion must not carry it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigServerConfig")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("token", &self.token.as_ref().map(|_| "<secret>"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl Config {
    /// The collection interval (also tegrastats `--interval`), clamped to the accepted range
    /// so a `Config` built in code can never make a zero or negative period.
    pub fn interval_duration(&self) -> Duration {
        let secs = if self.interval.is_finite() {
            self.interval
                .clamp(keys::MIN_INTERVAL_SECS, keys::MAX_INTERVAL_SECS)
        } else {
            default_interval()
        };
        Duration::from_secs_f64(secs)
    }

    /// The interval in whole milliseconds, as tegrastats `--interval` takes it.
    pub fn interval_millis(&self) -> u64 {
        self.interval_duration().as_millis() as u64
    }

    /// `bind_address:port`, the metrics server's listen address (IPv6 bracketed correctly).
    pub fn metrics_addr(&self) -> Result<SocketAddr, std::net::AddrParseError> {
        Ok(SocketAddr::new(
            self.bind_address.parse::<IpAddr>()?,
            self.port,
        ))
    }

    /// [`max_connections`](Config::max_connections) as a cap, kept in its accepted range so a
    /// `Config` built in code can never make a cap of zero.
    pub fn connection_cap(&self) -> usize {
        self.max_connections
            .clamp(keys::MIN_MAX_CONNECTIONS, keys::MAX_MAX_CONNECTIONS) as usize
    }

    /// `reload_bind_address:reload_port`, the management API's listen address.
    pub fn api_addr(&self) -> Result<SocketAddr, std::net::AddrParseError> {
        Ok(SocketAddr::new(
            self.reload_bind_address.parse::<IpAddr>()?,
            self.reload_port,
        ))
    }
}

impl Default for Config {
    /// Every key at its default and no metrics: what an empty mapping (`{}`) reads as.
    fn default() -> Self {
        yaml::from_str("{}").expect("invariant: every field has a default")
    }
}

#[cfg(test)]
mod tests {
    use super::keys::{KeyDefault, Kind, Lit, KEYS};
    use super::*;
    use std::collections::BTreeSet;

    /// A `Config` with every optional field set, written out in full so that a new field does
    /// not compile until it is added here (and then to the key table, or the test below fails).
    fn every_field_set() -> Config {
        Config {
            device_type: DeviceType::JetsonNano,
            host_root: Some("/host".into()),
            interval: 2.0,
            port: 1,
            reload_port: 2,
            bind_address: "127.0.0.1".into(),
            reload_bind_address: "::1".into(),
            max_connections: 3,
            hostname: Some("h".into()),
            api_token: Some("t".into()),
            tegrastats: TegrastatsConfig {
                path: "/p".into(),
                logfile: Some("/l".into()),
                replay: Some("/r".into()),
                sysfs: true,
            },
            shelly: ShellyConfig {
                enabled: false,
                server_url: "http://s".into(),
                device_id: Some("d".into()),
            },
            config_server: ConfigServerConfig {
                url: Some("http://c".into()),
                timeout: Some(1.0),
                token: Some("t".into()),
                ca_file: Some("/ca.pem".into()),
            },
            metrics: BTreeMap::from([("m".to_string(), true)]),
            extra: BTreeMap::new(),
        }
    }

    /// Dotted key paths of a serialised config: sections recursively, not `metrics` entries.
    fn key_paths(prefix: &str, map: &yaml::Mapping, out: &mut BTreeSet<String>) {
        for (k, v) in map {
            let name = k.as_str().expect("config keys are text");
            let path = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}.{name}")
            };
            if let (yaml::Value::Mapping(inner), false) = (v, path == "metrics") {
                key_paths(&path, inner, out);
            }
            out.insert(path);
        }
    }

    fn at<'v>(value: &'v yaml::Value, dotted: &str) -> Option<&'v yaml::Value> {
        dotted.split('.').try_fold(value, |v, part| v.get(part))
    }

    fn lit_value(lit: Lit) -> yaml::Value {
        match lit {
            Lit::Text(s) => yaml::Value::String(s.to_string()),
            Lit::Port(p) => yaml::Value::Number(p.into()),
            Lit::Count(n) => yaml::Value::Number(n.into()),
            Lit::Seconds(s) if s.fract() == 0.0 => yaml::Value::Number((s as u64).into()),
            Lit::Seconds(s) => yaml::Value::Number(s.into()),
            Lit::Bool(b) => yaml::Value::Bool(b),
        }
    }

    /// A field missing from the key table would be logged as "unknown, kept" and still be read
    /// by serde; a table key missing from `Config` would be checked and then dropped.
    #[test]
    fn key_table_and_config_fields_agree_both_ways() {
        let value = yaml::to_value(every_field_set()).unwrap();
        let mut fields = BTreeSet::new();
        key_paths("", value.as_mapping().unwrap(), &mut fields);
        let table: BTreeSet<String> = KEYS
            .iter()
            .filter(|k| k.kind != Kind::LegacyList)
            .map(|k| k.name.to_string())
            .collect();
        let missing: Vec<_> = fields.difference(&table).collect();
        let stale: Vec<_> = table.difference(&fields).collect();
        assert!(
            missing.is_empty(),
            "Config fields missing from the key table in keys.rs: {missing:?}"
        );
        assert!(
            stale.is_empty(),
            "key table entries that are not Config fields: {stale:?}"
        );
    }

    #[test]
    fn key_table_defaults_are_what_config_default_holds() {
        let defaults = yaml::to_value(Config::default()).unwrap();
        for key in KEYS {
            let found = at(&defaults, key.name);
            match (key.default, key.kind) {
                (KeyDefault::Value(lit), _) => {
                    assert_eq!(found, Some(&lit_value(lit)), "default of {}", key.name)
                }
                // Sections and the metrics map are there (possibly empty) whatever the table says.
                (_, Kind::Section | Kind::Metrics) => {}
                (KeyDefault::Fallback(_) | KeyDefault::Unset(_), _) => {
                    assert_eq!(found, None, "{} has no default value in Config", key.name)
                }
            }
        }
        assert_eq!(Config::default().tegrastats, TegrastatsConfig::default());
        assert_eq!(Config::default().shelly, ShellyConfig::default());
        let empty_sections: Config =
            yaml::from_str("tegrastats: {}\nshelly: {}\nconfig_server: {}\n").unwrap();
        assert_eq!(empty_sections, Config::default());
    }

    #[test]
    fn tegrastats_sysfs_reads_true_false_or_nothing_and_is_written_only_when_true() {
        use crate::{parse, to_yaml};
        for (text, want) in [
            ("tegrastats: {sysfs: true}\n", true),
            ("tegrastats: {sysfs: false}\n", false),
            ("tegrastats:\n  sysfs:\n", false),
            ("interval: 1\n", false),
        ] {
            assert_eq!(parse(text, "c").unwrap().tegrastats.sysfs, want, "{text}");
        }
        let err = parse("tegrastats: {sysfs: yes please}\n", "c").unwrap_err();
        assert!(err.to_string().contains("tegrastats.sysfs"), "{err}");
        let on = parse("tegrastats: {sysfs: true}\n", "c").unwrap();
        assert!(to_yaml(&on).unwrap().contains("sysfs: true"));
        let off = parse("tegrastats: {sysfs: false}\n", "c").unwrap();
        assert!(!to_yaml(&off).unwrap().contains("sysfs"));
    }

    #[test]
    fn fractional_interval_is_kept_and_whole_interval_serialises_as_integer() {
        use crate::{parse, to_json, to_yaml};
        let c = parse("interval: 0.2\n", "c").unwrap();
        assert_eq!(c.interval_duration(), Duration::from_millis(200));
        assert_eq!(c.interval_millis(), 200);
        assert_eq!(to_json(&c)["interval"], serde_json::json!(0.2));
        let c = parse("interval: 1\n", "c").unwrap();
        assert_eq!(to_json(&c)["interval"].to_string(), "1");
        let yaml = to_yaml(&c).unwrap();
        assert!(yaml.contains("\ninterval: 1\n"), "{yaml}");
        let c = parse("interval: 2.0\n", "c").unwrap();
        assert_eq!(to_json(&c)["interval"].to_string(), "2");
    }

    #[test]
    fn debug_leaves_the_config_server_token_out() {
        let mut c = every_field_set();
        c.config_server.token = Some("do-not-print-me".into());
        let shown = format!("{c:?}");
        assert!(!shown.contains("do-not-print-me"), "{shown}");
        assert!(shown.contains("token: Some(\"<secret>\")"), "{shown}");
        assert!(shown.contains("ca_file: Some(\"/ca.pem\")"), "{shown}");
        c.config_server.token = None;
        assert!(format!("{c:?}").contains("token: None"));
    }

    #[test]
    fn addresses_handle_ipv6() {
        let c = crate::parse("bind_address: '::1'\nport: 0\n", "c").unwrap();
        assert_eq!(c.metrics_addr().unwrap().to_string(), "[::1]:0");
        // The management API stays on this host unless asked otherwise; metrics do not.
        assert_eq!(c.api_addr().unwrap().to_string(), "127.0.0.1:9101");
        let c = crate::parse("port: 0\n", "c").unwrap();
        assert_eq!(c.metrics_addr().unwrap().to_string(), "0.0.0.0:0");
    }
}
