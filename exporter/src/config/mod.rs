//! `config.yaml`: the types (serde), loading, validation, atomic saving, the legacy
//! `enabled_metrics` form, and the environment variables that feed the configuration.
//!
//! - [`Config`] and its sections; unknown top-level keys are kept in `extra` and written back.
//! - [`parse`] text → validated `Config`, every problem reported at once with file, line, key,
//!   value and fix; [`from_json`] does the same for a Config Server body.
//! - [`load`] reads a path, writing defaults when the file is absent.
//! - [`save_atomic`] writes via temp file + fsync + rename + directory fsync.
//! - [`Env`] reads environment variables (tests pass a map), with the resolution helpers
//!   [`config_path`], [`resolve_hostname`], [`api_token`] and [`config_server`].
//! - [`merge_discovered`] adds auto-discovered metric names; [`to_json`] shapes `GET /config`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use serde_yaml::{Mapping, Value};

use crate::collector::jetson::Model;

/// Config path used when neither `--config` nor `LOCAL_CONFIG_PATH` is given: `config.yaml`
/// in the working directory, as the original exporter and the binary's `--help` have it.
/// Deployments pass `/etc/edge-metrics/config.yaml` and mount that *directory* writable: see
/// [`save_atomic`].
pub const DEFAULT_CONFIG_PATH: &str = "config.yaml";
/// Environment variable: config path when `--config` is not given.
pub const ENV_LOCAL_CONFIG_PATH: &str = "LOCAL_CONFIG_PATH";
/// Environment variable: `hostname` label when `hostname:` is not set in the config.
pub const ENV_HOSTNAME: &str = "EDGE_METRICS_HOSTNAME";
/// Environment variable: management API bearer token when `api_token:` is not set.
pub const ENV_API_TOKEN: &str = "EDGE_METRICS_API_TOKEN";
/// Environment variable: Config Server base URL when `config_server.url` is not set.
pub const ENV_CONFIG_SERVER_URL: &str = "CONFIG_SERVER_URL";
/// Environment variable: Config Server timeout in seconds when `config_server.timeout` is not
/// set (default [`DEFAULT_CONFIG_TIMEOUT_SECS`]).
pub const ENV_CONFIG_TIMEOUT: &str = "CONFIG_TIMEOUT";
/// Config Server request timeout when neither the config nor the environment sets one.
pub const DEFAULT_CONFIG_TIMEOUT_SECS: f64 = 5.0;

/// Smallest accepted `interval`, in seconds.
pub const MIN_INTERVAL_SECS: f64 = 0.1;
/// Largest accepted `interval`, in seconds.
pub const MAX_INTERVAL_SECS: f64 = 3600.0;
/// Largest accepted Config Server timeout, in seconds.
pub const MAX_CONFIG_TIMEOUT_SECS: f64 = 300.0;

/// The device types the exporter supports.
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
}

impl DeviceType {
    /// Every supported type, in the order error messages list them.
    pub const ALL: [DeviceType; 4] = [
        DeviceType::JetsonOrin,
        DeviceType::JetsonXavier,
        DeviceType::JetsonNano,
        DeviceType::Jetson,
    ];

    /// The config value, e.g. `jetson_orin`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::JetsonOrin => "jetson_orin",
            DeviceType::JetsonXavier => "jetson_xavier",
            DeviceType::JetsonNano => "jetson_nano",
            DeviceType::Jetson => "jetson",
        }
    }

    /// The type whose config value is `s`, if any.
    pub fn from_name(s: &str) -> Option<DeviceType> {
        DeviceType::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// `jetson_orin, jetson_xavier, jetson_nano, jetson`: the list error messages show.
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
    DeviceType::JetsonOrin
}
fn default_interval() -> f64 {
    1.0
}
fn default_port() -> u16 {
    9102
}
fn default_reload_port() -> u16 {
    9101
}
fn default_bind() -> String {
    "0.0.0.0".to_string()
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
    /// Which collector parses tegrastats.
    #[serde(default = "default_device_type")]
    pub device_type: DeviceType,
    /// Collection interval in seconds (also tegrastats `--interval`); fractions allowed,
    /// [`MIN_INTERVAL_SECS`]..=[`MAX_INTERVAL_SECS`]. Whole values serialise as integers.
    #[serde(default = "default_interval", serialize_with = "serialize_seconds")]
    pub interval: f64,
    /// Prometheus `/metrics` port (0 = any free port, for tests).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Management API port (0 = any free port, for tests).
    #[serde(default = "default_reload_port")]
    pub reload_port: u16,
    /// Bind address (an IP address) of the metrics server.
    #[serde(default = "default_bind")]
    pub bind_address: String,
    /// Bind address (an IP address) of the management API.
    #[serde(default = "default_bind")]
    pub reload_bind_address: String,
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
    pub extra: BTreeMap<String, serde_yaml::Value>,
}

fn default_tegrastats_path() -> PathBuf {
    PathBuf::from("/usr/bin/tegrastats")
}

/// `tegrastats:` section. Exactly one source is used: `replay`, else `logfile`, else `path`.
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
}

impl Default for TegrastatsConfig {
    fn default() -> Self {
        TegrastatsConfig {
            path: default_tegrastats_path(),
            logfile: None,
            replay: None,
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_shelly_url() -> String {
    "http://localhost:8766".to_string()
}

/// `shelly:` section.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ShellyConfig {
    /// Run the Shelly collector.
    #[serde(default = "default_true")]
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
            enabled: true,
            server_url: default_shelly_url(),
            device_id: None,
        }
    }
}

/// `config_server:` section (also `CONFIG_SERVER_URL` / `CONFIG_TIMEOUT`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigServerConfig {
    /// Base URL; unset = no Config Server (unless `CONFIG_SERVER_URL` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Request timeout in seconds (else `CONFIG_TIMEOUT`, else 5).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_opt_seconds"
    )]
    pub timeout: Option<f64>,
}

impl Config {
    /// The collection interval (also tegrastats `--interval`), clamped to the accepted range
    /// so a `Config` built in code can never make a zero or negative period.
    pub fn interval_duration(&self) -> Duration {
        let secs = if self.interval.is_finite() {
            self.interval.clamp(MIN_INTERVAL_SECS, MAX_INTERVAL_SECS)
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

    /// `reload_bind_address:reload_port`, the management API's listen address.
    pub fn api_addr(&self) -> Result<SocketAddr, std::net::AddrParseError> {
        Ok(SocketAddr::new(
            self.reload_bind_address.parse::<IpAddr>()?,
            self.reload_port,
        ))
    }

    /// Checks a `Config` built or changed in code with the same rules as [`parse`].
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let value = serde_yaml::to_value(self).map_err(|e| ConfigError::Invalid {
            origin: origin.to_string(),
            problems: vec![Problem::new(
                None,
                "",
                format!("cannot be represented: {e}"),
            )],
        })?;
        from_value(value, origin, None, false).map(|_| ())
    }
}

impl ConfigServerConfig {
    fn is_unset(&self) -> bool {
        self.url.is_none() && self.timeout.is_none()
    }
}

impl Default for Config {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("invariant: every field has a default")
    }
}

/// One thing wrong with a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the file, when the text is a file and the key was found in it.
    pub line: Option<usize>,
    /// The key, dotted (`shelly.server_url`, `metrics.jetson_ram_used_mb`); empty for the file.
    pub key: String,
    /// What is wrong, the value found and the fix, e.g.
    /// `interval must be at least 0.1, got 0 (set interval: 1)`.
    pub message: String,
}

impl Problem {
    fn new(line: Option<usize>, key: &str, message: String) -> Problem {
        Problem {
            line,
            key: key.to_string(),
            message,
        }
    }
}

fn render_problems(origin: &str, problems: &[Problem]) -> String {
    let parts: Vec<String> = problems
        .iter()
        .map(|p| match p.line {
            Some(line) => format!("{origin}:{line}: {}", p.message),
            None => format!("{origin}: {}", p.message),
        })
        .collect();
    parts.join("; ")
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path} (check the path and its permissions, or set --config / LOCAL_CONFIG_PATH)")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is not a valid configuration. Displayed on one line, every problem as
    /// `origin:line: message`, separated by `; `.
    #[error("{}", render_problems(origin, problems))]
    Invalid {
        /// File name, "Config Server" or "environment".
        origin: String,
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
    /// The file could not be written; the previous file, if any, is unchanged.
    #[error("cannot write config {path} (its directory must be writable: mount the directory, not the single file)")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    /// The individual problems of an [`ConfigError::Invalid`] (empty for other variants).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------------

/// Reads environment variables. The process uses [`ProcessEnv`]; tests pass a map.
pub trait Env {
    /// The variable's value, if set.
    fn get(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        BTreeMap::get(self, key).cloned()
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

/// A set, non-blank variable, trimmed.
fn env_value(env: &dyn Env, key: &str) -> Option<String> {
    env.get(key)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The config path: the `--config` flag, else `LOCAL_CONFIG_PATH`, else
/// [`DEFAULT_CONFIG_PATH`].
pub fn config_path(flag: Option<&Path>, env: &dyn Env) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    env_value(env, ENV_LOCAL_CONFIG_PATH)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
}

/// The `hostname` label: config `hostname`, else `EDGE_METRICS_HOSTNAME`, else the system
/// hostname ([`system_hostname`]), else `localhost`.
pub fn resolve_hostname(cfg: &Config, env: &dyn Env) -> String {
    resolve_hostname_with(cfg, env, system_hostname)
}

fn resolve_hostname_with(
    cfg: &Config,
    env: &dyn Env,
    system: impl FnOnce() -> Option<String>,
) -> String {
    cfg.hostname
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .or_else(|| env_value(env, ENV_HOSTNAME))
        .or_else(system)
        .unwrap_or_else(|| "localhost".to_string())
}

/// The device id used with the Config Server (`/config/{device_id}`): the `hostname` label,
/// as [`resolve_hostname`] gives it, so each device asks for its own config.
pub fn device_id(cfg: &Config, env: &dyn Env) -> String {
    resolve_hostname(cfg, env)
}

/// The kernel's hostname from `/proc/sys/kernel/hostname`, else `/etc/hostname`. In a
/// container this is the container's name unless it shares the host's UTS namespace
/// (`network_mode: host` / `hostNetwork: true`); set `EDGE_METRICS_HOSTNAME` otherwise.
pub fn system_hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
}

/// The management API bearer token: config `api_token`, else `EDGE_METRICS_API_TOKEN`; `None`
/// leaves the API open.
pub fn api_token(cfg: &Config, env: &dyn Env) -> Option<String> {
    cfg.api_token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .or_else(|| env_value(env, ENV_API_TOKEN))
}

/// Where and how to reach the Config Server.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigServerSettings {
    /// Base URL, e.g. `http://config:8080`; requests go to `{url}/config/{device_id}`.
    pub url: String,
    /// Per-request timeout (connect + response).
    pub timeout: Duration,
}

/// The Config Server to use, if any: `config_server.url`, else `CONFIG_SERVER_URL`; timeout
/// `config_server.timeout`, else `CONFIG_TIMEOUT`, else 5 s. Values are those [`load`] and
/// [`check_env`] accepted; an unusable `CONFIG_TIMEOUT` falls back to 5 s.
pub fn config_server(cfg: &Config, env: &dyn Env) -> Option<ConfigServerSettings> {
    let url = cfg
        .config_server
        .url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .or_else(|| env_value(env, ENV_CONFIG_SERVER_URL))?;
    let secs = cfg
        .config_server
        .timeout
        .or_else(|| env_value(env, ENV_CONFIG_TIMEOUT).and_then(|t| parse_timeout(&t).ok()))
        .unwrap_or(DEFAULT_CONFIG_TIMEOUT_SECS);
    Some(ConfigServerSettings {
        url,
        timeout: Duration::from_secs_f64(secs),
    })
}

fn parse_timeout(text: &str) -> Result<f64, ()> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= MAX_CONFIG_TIMEOUT_SECS => Ok(v),
        _ => Err(()),
    }
}

/// Checks the environment variables that feed the configuration (`CONFIG_SERVER_URL`,
/// `CONFIG_TIMEOUT`), so a typo there stops start-up instead of being ignored.
pub fn check_env(env: &dyn Env) -> Result<(), ConfigError> {
    let mut problems = Vec::new();
    if let Some(url) = env_value(env, ENV_CONFIG_SERVER_URL) {
        if let Err(why) = check_url(&url) {
            problems.push(Problem::new(
                None,
                ENV_CONFIG_SERVER_URL,
                format!(
                    "{ENV_CONFIG_SERVER_URL} {why}, got {url:?} \
                     (set {ENV_CONFIG_SERVER_URL}=http://config-server:8080, or unset it)"
                ),
            ));
        }
    }
    if let Some(t) = env_value(env, ENV_CONFIG_TIMEOUT) {
        if parse_timeout(&t).is_err() {
            problems.push(Problem::new(
                None,
                ENV_CONFIG_TIMEOUT,
                format!(
                    "{ENV_CONFIG_TIMEOUT} must be a number of seconds above 0 and at most \
                     {MAX_CONFIG_TIMEOUT_SECS}, got {t:?} (set {ENV_CONFIG_TIMEOUT}=5)"
                ),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            origin: "environment".to_string(),
            problems,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing and validation
// ---------------------------------------------------------------------------------------------

const TOP_LEVEL_KEYS: [&str; 13] = [
    "device_type",
    "interval",
    "port",
    "reload_port",
    "bind_address",
    "reload_bind_address",
    "hostname",
    "api_token",
    "tegrastats",
    "shelly",
    "config_server",
    "metrics",
    LEGACY_METRICS_KEY,
];
const TEGRASTATS_KEYS: [&str; 3] = ["path", "logfile", "replay"];
const SHELLY_KEYS: [&str; 3] = ["enabled", "server_url", "device_id"];
const CONFIG_SERVER_KEYS: [&str; 2] = ["url", "timeout"];
/// The original exporter's list form: `enabled_metrics: [name, ...]`.
const LEGACY_METRICS_KEY: &str = "enabled_metrics";

/// Parses and validates config text; `origin` (usually the file path) names it in errors.
///
/// Every problem is reported at once, each naming the line, key, value and fix. The legacy
/// `enabled_metrics: [..]` list is converted to `metrics:` (listed → `true`).
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let value: Value = serde_yaml::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        let mut msg = e.to_string();
        // serde_yaml appends " at line L column C"; the line is already in front.
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

/// Builds a validated `Config` from a Config Server JSON body (the shape [`to_json`] makes).
pub fn from_json(value: serde_json::Value) -> Result<Config, ConfigError> {
    let origin = "Config Server";
    let value = serde_yaml::to_value(value).map_err(|e| ConfigError::Invalid {
        origin: origin.to_string(),
        problems: vec![Problem::new(None, "", format!("body is not usable: {e}"))],
    })?;
    from_value(value, origin, None, true)
}

/// `log`: say which unknown keys were kept and that a legacy list was converted (on loads,
/// not on re-validation of a config already in memory).
fn from_value(
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
    serde_yaml::from_value::<Config>(Value::Mapping(normalised)).map_err(|e| {
        // The checks above mirror every field; this is a backstop, not the normal path.
        ConfigError::Invalid {
            origin: origin.to_string(),
            problems: vec![Problem::new(
                None,
                "",
                format!("is not a valid config: {e}"),
            )],
        }
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

    fn into_error(mut self, origin: &str) -> ConfigError {
        // File order; problems without a line keep their relative order at the end.
        self.problems
            .sort_by_key(|p| (p.line.is_none(), p.line.unwrap_or(0)));
        ConfigError::Invalid {
            origin: origin.to_string(),
            problems: self.problems,
        }
    }

    /// Checks every known key; returns the mapping serde should read (nulls for optional
    /// sections removed, the legacy list folded into `metrics`).
    fn check_root(&mut self, root: Mapping, origin: &str) -> Mapping {
        let mut out = Mapping::new();
        let mut legacy: Option<Value> = None;
        let mut unknown = Vec::new();
        for (k, v) in root {
            let Some(key) = k.as_str().map(str::to_string) else {
                self.report(
                    &[],
                    format!(
                        "has a non-text key {} (keys are names such as `interval`)",
                        show(&k)
                    ),
                );
                continue;
            };
            match key.as_str() {
                "device_type" => self.device_type(&v),
                "interval" => self.interval(&v),
                "port" | "reload_port" => self.port(&key, &v),
                "bind_address" | "reload_bind_address" => self.bind_address(&key, &v),
                "hostname" | "api_token" => {
                    if v.is_null() {
                        continue;
                    }
                    let example = if key == "hostname" {
                        "edge-01"
                    } else {
                        "a-long-random-secret"
                    };
                    self.non_empty_string(&[&key], &v, example)
                }
                "tegrastats" => {
                    if v.is_null() {
                        continue;
                    }
                    self.tegrastats(&v)
                }
                "shelly" => {
                    if v.is_null() {
                        continue;
                    }
                    self.shelly(&v)
                }
                "config_server" => {
                    if v.is_null() {
                        continue;
                    }
                    self.config_server(&v)
                }
                "metrics" => {
                    if v.is_null() {
                        continue;
                    }
                    self.metrics(&v)
                }
                LEGACY_METRICS_KEY => {
                    self.legacy_metrics(&v);
                    legacy = Some(v);
                    continue;
                }
                _ => {
                    // serde cannot carry a custom tag through the flattened `extra` map.
                    if has_tag(&v) {
                        self.report(
                            &[&key],
                            format!(
                                "{key} holds a YAML tag (`!name value`), which config.yaml does \
                                 not support (remove the tag or quote the value)"
                            ),
                        );
                        continue;
                    }
                    // Kept keys are written back on every save: one that serde_yaml cannot
                    // write would make every later save fail (and the API answer 500).
                    if has_complex_key(&v) || serde_yaml::to_string(&v).is_err() {
                        self.report(
                            &[&key],
                            format!(
                                "{key} uses a mapping or list as a key, which config.yaml cannot \
                                 write back (use plain text keys, or remove {key})"
                            ),
                        );
                        continue;
                    }
                    unknown.push(key.clone())
                }
            }
            out.insert(Value::String(key), v);
        }
        if self.problems.is_empty() {
            self.cross_checks(&out);
        }
        if self.log && !unknown.is_empty() {
            let hints: Vec<String> = unknown
                .iter()
                .map(|k| match suggest(k, &TOP_LEVEL_KEYS) {
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
        let port = out.get("port").and_then(Value::as_u64).unwrap_or(9102);
        let reload = out
            .get("reload_port")
            .and_then(Value::as_u64)
            .unwrap_or(9101);
        if port == reload && port != 0 {
            let (key, fix) = if out.contains_key("reload_port") {
                ("reload_port", if port == 9101 { 9102 } else { 9101 })
            } else {
                ("port", 9102)
            };
            self.report(
                &[key],
                format!("port and reload_port must differ, both are {port} (set {key}: {fix})"),
            );
        }
    }

    fn device_type(&mut self, v: &Value) {
        match v.as_str() {
            Some(s) if DeviceType::from_name(s).is_some() => {}
            Some(s) => self.report(
                &["device_type"],
                format!(
                    "Unsupported device type: {s}; supported: {} (set device_type: jetson_orin)",
                    DeviceType::supported_list()
                ),
            ),
            None => self.report(
                &["device_type"],
                format!(
                    "Unsupported device type: {}; supported: {} (set device_type: jetson_orin)",
                    show(v),
                    DeviceType::supported_list()
                ),
            ),
        }
    }

    fn interval(&mut self, v: &Value) {
        let Some(secs) = v.as_f64().filter(|_| v.is_number()) else {
            self.report(
                &["interval"],
                format!(
                    "interval must be a number of seconds, got {} (set interval: 1)",
                    show(v)
                ),
            );
            return;
        };
        if secs.is_nan() || secs < MIN_INTERVAL_SECS {
            self.report(
                &["interval"],
                format!(
                    "interval must be at least {MIN_INTERVAL_SECS}, got {} (set interval: 1)",
                    show(v)
                ),
            );
        } else if secs > MAX_INTERVAL_SECS {
            self.report(
                &["interval"],
                format!(
                    "interval must be at most {MAX_INTERVAL_SECS}, got {} (set interval: 1)",
                    show(v)
                ),
            );
        }
    }

    fn port(&mut self, key: &str, v: &Value) {
        let default = if key == "port" { 9102 } else { 9101 };
        let ok = v.as_u64().is_some_and(|p| p <= u64::from(u16::MAX));
        if !ok {
            self.report(
                &[key],
                format!(
                    "{key} must be a whole number from 1 to 65535 (0 picks a free port), got {} \
                     (set {key}: {default})",
                    show(v)
                ),
            );
        }
    }

    fn bind_address(&mut self, key: &str, v: &Value) {
        let ok = v.as_str().is_some_and(|s| s.parse::<IpAddr>().is_ok());
        if !ok {
            self.report(
                &[key],
                format!(
                    "{key} must be an IP address such as 0.0.0.0, 127.0.0.1 or ::, got {} \
                     (set {key}: 0.0.0.0)",
                    show(v)
                ),
            );
        }
    }

    fn non_empty_string(&mut self, path: &[&str], v: &Value, example: &str) {
        let ok = v.as_str().is_some_and(|s| !s.trim().is_empty());
        if !ok {
            let key = path.join(".");
            let last = path.last().copied().unwrap_or_default();
            self.report(
                path,
                format!(
                    "{key} must be non-empty text (quote numbers), got {} (set {last}: \
                     \"{example}\", or remove the key)",
                    show(v)
                ),
            );
        }
    }

    fn url(&mut self, path: &[&str], v: &Value, example: &str) {
        let key = path.join(".");
        let last = path.last().copied().unwrap_or_default();
        match v.as_str() {
            Some(s) => {
                if let Err(why) = check_url(s) {
                    self.report(
                        path,
                        format!("{key} {why}, got {s:?} (set {last}: {example})"),
                    );
                }
            }
            None => self.report(
                path,
                format!(
                    "{key} must be an http:// or https:// URL, got {} (set {last}: {example})",
                    show(v)
                ),
            ),
        }
    }

    /// Reports keys of an owned section that are not in `known`; returns the mapping.
    fn section<'v>(&mut self, name: &str, v: &'v Value, known: &[&str]) -> Option<&'v Mapping> {
        let Some(map) = v.as_mapping() else {
            self.report(
                &[name],
                format!(
                    "{name} must be a mapping with keys {}, got {} (indent its keys under \
                     `{name}:`)",
                    known.join(", "),
                    show(v)
                ),
            );
            return None;
        };
        for k in map.keys() {
            let text = k.as_str().map(str::to_string).unwrap_or_else(|| show(k));
            if !known.contains(&text.as_str()) {
                let hint = match suggest(&text, known) {
                    Some(s) => format!("did you mean {s}?"),
                    None => format!("known keys: {}", known.join(", ")),
                };
                self.report(
                    &[name, &text],
                    format!("{name}.{text} is not a known key ({hint})"),
                );
            }
        }
        Some(map)
    }

    fn tegrastats(&mut self, v: &Value) {
        let Some(map) = self.section("tegrastats", v, &TEGRASTATS_KEYS) else {
            return;
        };
        for key in TEGRASTATS_KEYS {
            if let Some(val) = map.get(key) {
                if key != "path" && val.is_null() {
                    continue;
                }
                self.non_empty_string(&["tegrastats", key], val, "/usr/bin/tegrastats");
            }
        }
    }

    fn shelly(&mut self, v: &Value) {
        let Some(map) = self.section("shelly", v, &SHELLY_KEYS) else {
            return;
        };
        if let Some(val) = map.get("enabled") {
            if !val.is_bool() {
                self.report(
                    &["shelly", "enabled"],
                    format!(
                        "shelly.enabled must be true or false, got {} (set enabled: true)",
                        show(val)
                    ),
                );
            }
        }
        if let Some(val) = map.get("server_url") {
            self.url(&["shelly", "server_url"], val, "http://localhost:8766");
        }
        if let Some(val) = map.get("device_id") {
            if !val.is_null() {
                self.non_empty_string(&["shelly", "device_id"], val, "shellyplug-01");
            }
        }
    }

    fn config_server(&mut self, v: &Value) {
        let Some(map) = self.section("config_server", v, &CONFIG_SERVER_KEYS) else {
            return;
        };
        if let Some(val) = map.get("url") {
            if !val.is_null() {
                self.url(&["config_server", "url"], val, "http://config-server:8080");
            }
        }
        if let Some(val) = map.get("timeout") {
            let ok = val.is_number()
                && val
                    .as_f64()
                    .is_some_and(|t| t > 0.0 && t <= MAX_CONFIG_TIMEOUT_SECS);
            if !val.is_null() && !ok {
                self.report(
                    &["config_server", "timeout"],
                    format!(
                        "config_server.timeout must be a number of seconds above 0 and at most \
                         {MAX_CONFIG_TIMEOUT_SECS}, got {} (set timeout: 5)",
                        show(val)
                    ),
                );
            }
        }
    }

    fn metrics(&mut self, v: &Value) {
        let Some(map) = v.as_mapping() else {
            let hint = if v.is_sequence() {
                " (a list is the old `enabled_metrics:` form; write `name: true` lines)"
            } else {
                ""
            };
            self.report(
                &["metrics"],
                format!(
                    "metrics must be a mapping of metric name to true/false, got {}{hint}",
                    show(v)
                ),
            );
            return;
        };
        for (k, val) in map {
            let name = k.as_str().map(str::to_string).unwrap_or_else(|| show(k));
            if !k.is_string() || !is_metric_name(&name) {
                self.report(
                    &["metrics", &name],
                    format!(
                        "metrics key {name} is not a valid metric name (letters, digits and _, \
                         not starting with a digit, e.g. jetson_ram_used_mb)"
                    ),
                );
                continue;
            }
            if !val.is_bool() {
                self.report(
                    &["metrics", &name],
                    format!(
                        "metrics.{name} must be true or false, got {} (set {name}: true)",
                        show(val)
                    ),
                );
            }
        }
    }

    fn legacy_metrics(&mut self, v: &Value) {
        let Some(list) = v.as_sequence() else {
            if !v.is_null() {
                self.report(
                    &[LEGACY_METRICS_KEY],
                    format!(
                        "{LEGACY_METRICS_KEY} must be a list of metric names, got {} (better: \
                         use `metrics:` with `name: true` lines)",
                        show(v)
                    ),
                );
            }
            return;
        };
        for item in list {
            let ok = item.as_str().is_some_and(is_metric_name);
            if !ok {
                self.report(
                    &[LEGACY_METRICS_KEY],
                    format!(
                        "{LEGACY_METRICS_KEY} entries must be metric names such as \
                         jetson_ram_used_mb, got {}",
                        show(item)
                    ),
                );
            }
        }
    }
}

/// Prometheus metric name without colons (colons are for recording rules).
fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `Ok` for an http(s) URL with a host; else why not, as "must be ... URL".
fn check_url(s: &str) -> Result<(), String> {
    if !s.contains("://") {
        return Err("must start with http:// or https://".to_string());
    }
    match reqwest::Url::parse(s.trim()) {
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

/// The 1-based line of the key at `path` in block-style YAML `text`. When a nested key is
/// not found (flow style, sequences), the deepest ancestor found is returned.
fn find_key_line(text: &str, path: &[&str]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0;
    let mut parent_indent: Option<usize> = None;
    let mut found = None;
    for key in path {
        let mut hit = None;
        for (i, line) in lines.iter().enumerate().skip(start) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
                continue;
            }
            let indent = line.len() - trimmed.len();
            match parent_indent {
                Some(p) if indent <= p => break,
                None if indent != 0 => continue,
                _ => {}
            }
            if line_key(trimmed) == Some(key) {
                hit = Some((i, indent));
                break;
            }
        }
        match hit {
            Some((i, indent)) => {
                found = Some(i + 1);
                start = i + 1;
                parent_indent = Some(indent);
            }
            // The deepest ancestor found (flow style, sequences), or nothing.
            None => return found,
        }
    }
    found
}

/// The key of a `key: value` line (plain or quoted), if it is one.
fn line_key(trimmed: &str) -> Option<&str> {
    let (key, rest) = if let Some(q) = trimmed.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let end = trimmed[1..].find(q)? + 1;
        (&trimmed[1..end], &trimmed[end + 1..])
    } else {
        let colon = trimmed.find(':')?;
        (trimmed[..colon].trim_end(), &trimmed[colon..])
    };
    let rest = rest.trim_start();
    let after = rest.strip_prefix(':')?;
    (after.is_empty() || after.starts_with([' ', '\t'])).then_some(key)
}

// ---------------------------------------------------------------------------------------------
// Defaults, loading, saving
// ---------------------------------------------------------------------------------------------

/// The Shelly metrics, enabled in a fresh config (the spec's `GET /config` example shows
/// `power_total_watts: true`).
const SHELLY_DEFAULT_METRICS: [&str; 3] = [
    "power_total_watts",
    "power_voltage_volts",
    "power_current_amps",
];

/// A fresh config for `device_type`: every key at its default, and the model's default
/// metrics plus the Shelly metrics enabled.
pub fn default_config(device_type: DeviceType) -> Config {
    let metrics = crate::collector::jetson::default_metrics(Model::for_device(device_type))
        .into_iter()
        .chain(SHELLY_DEFAULT_METRICS)
        .map(|name| (name.to_string(), true))
        .collect();
    Config {
        device_type,
        metrics,
        ..Config::default()
    }
}

/// What [`load`] produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    /// The validated configuration.
    pub config: Config,
    /// The file was absent and defaults were built (and written, unless the directory is not
    /// writable, which is logged).
    pub created: bool,
}

/// Loads `path`. A missing file gets defaults (device type `jetson_orin`), written
/// atomically; if that write fails the defaults run in memory and a warning is logged. An
/// unreadable or invalid file, or a bad `CONFIG_SERVER_URL` / `CONFIG_TIMEOUT`, is an `Err`
/// whose `Display` is one line (main exits 64 with it).
pub fn load(path: &Path, env: &dyn Env) -> Result<Loaded, ConfigError> {
    check_env(env)?;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let config = parse(&text, &path.display().to_string())?;
            Ok(Loaded {
                config,
                created: false,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let config = default_config(default_device_type());
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                // A missing directory is created; if that fails, save_atomic reports why.
                let _ = std::fs::create_dir_all(dir);
            }
            match save_atomic(path, &config) {
                Ok(()) => tracing::info!(path = %path.display(), "Wrote a default config."),
                Err(error) => tracing::warn!(
                    error = %error_chain(&error),
                    "Running with the default config in memory; changes will not persist."
                ),
            }
            Ok(Loaded {
                config,
                created: true,
            })
        }
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `error: source: source...` on one line, for logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}

const FILE_HEADER: &str = "# edge-metrics-exporter configuration (docs/CONFIG.md).\n\
# The exporter rewrites this file when metrics are discovered or changed through the API;\n\
# comments are not kept, unknown keys are.\n";

/// The YAML text [`save_atomic`] writes.
pub fn to_yaml(config: &Config) -> Result<String, serde_yaml::Error> {
    Ok(format!("{FILE_HEADER}{}", serde_yaml::to_string(config)?))
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `config` to `path` atomically: a temp file in the same directory, `sync_all`,
/// `rename` over the target, then fsync of the directory. On any failure the temp file is
/// removed and the previous file stays whole.
///
/// `rename(2)` cannot replace a single-file bind mount (`EBUSY`), so deployments must mount
/// the config *directory* writable. A symlinked target is followed, so the link survives.
pub fn save_atomic(path: &Path, config: &Config) -> Result<(), ConfigError> {
    let fail = |source: std::io::Error| ConfigError::Write {
        path: path.to_path_buf(),
        source,
    };
    let text = to_yaml(config).map_err(|e| fail(std::io::Error::other(e)))?;
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).map_err(fail)?,
        _ => path.to_path_buf(),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.yaml".to_string());
    let temp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = write_temp(&temp, &target, text.as_bytes())
        .and_then(|()| std::fs::rename(&temp, &target).map_err(explain_rename));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(fail(e));
    }
    // Makes the rename itself durable. Some filesystems cannot fsync a directory; the file is
    // already in place then, so only real I/O errors count.
    if let Err(e) = std::fs::File::open(&dir).and_then(|d| d.sync_all()) {
        if !matches!(
            e.kind(),
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
        ) {
            return Err(fail(e));
        }
    }
    Ok(())
}

fn write_temp(temp: &Path, target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temp)?;
    // Keep the old file's mode (a file holding api_token may be 0600).
    if let Ok(meta) = std::fs::metadata(target) {
        file.set_permissions(meta.permissions())?;
    }
    file.write_all(bytes)?;
    file.sync_all()
}

fn explain_rename(e: std::io::Error) -> std::io::Error {
    if e.raw_os_error() == Some(libc::EBUSY) {
        std::io::Error::new(
            e.kind(),
            format!("{e}; the file is probably a single-file bind mount: mount its directory"),
        )
    } else {
        e
    }
}

// ---------------------------------------------------------------------------------------------
// Auto-discovery and JSON
// ---------------------------------------------------------------------------------------------

/// Adds each name absent from `cfg.metrics` as `enabled(name)`, never changing an existing
/// entry. Returns the names added, in input order without repeats, so the caller saves once per
/// batch (and not at all when it is empty).
pub fn merge_discovered<'a>(
    cfg: &mut Config,
    names: impl IntoIterator<Item = &'a str>,
    enabled: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut added = Vec::new();
    for name in names {
        if !cfg.metrics.contains_key(name) {
            cfg.metrics.insert(name.to_string(), enabled(name));
            added.push(name.to_string());
        }
    }
    added
}

/// The JSON of `GET /config` and of a Config Server push: `device_type`, `interval`, `port`,
/// `reload_port`, `shelly {enabled, server_url}`, `metrics {}`, the other keys, and the
/// unknown keys kept from the file. `api_token` is never included: it is a secret. An unknown
/// key JSON cannot hold (a mapping with non-text keys inside it) is left out of the JSON only;
/// the file keeps it.
pub fn to_json(config: &Config) -> serde_json::Value {
    let mut shown = config.clone();
    shown.api_token = None;
    let extra = std::mem::take(&mut shown.extra);
    let mut value =
        serde_json::to_value(&shown).expect("invariant: Config without extra is JSON-safe");
    if let serde_json::Value::Object(map) = &mut value {
        for (k, v) in extra {
            match serde_json::to_value(&v) {
                Ok(j) => {
                    map.insert(k, j);
                }
                Err(error) => {
                    tracing::debug!(key = %k, %error, "Left out a config key JSON cannot hold.")
                }
            }
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "edge-metrics-config-{tag}-{}-{}",
                std::process::id(),
                TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

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
    fn fractional_interval_is_kept_and_whole_interval_serialises_as_integer() {
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
        assert!(s.contains("Unsupported device type: jetson_tx2; supported: jetson_orin, jetson_xavier, jetson_nano, jetson"), "{s}");
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
        let yaml = to_yaml(&c).unwrap();
        assert!(!yaml.contains("enabled_metrics"), "{yaml}");
    }

    #[test]
    fn find_key_line_handles_nesting_quotes_and_fallbacks() {
        let t = "# c\nshelly:\n  # x\n  enabled: true\n  'server_url': u\nmetrics: {a: 1}\nother:\n  enabled: 3\n";
        assert_eq!(find_key_line(t, &["shelly"]), Some(2));
        assert_eq!(find_key_line(t, &["shelly", "enabled"]), Some(4));
        assert_eq!(find_key_line(t, &["shelly", "server_url"]), Some(5));
        assert_eq!(find_key_line(t, &["metrics", "a"]), Some(6));
        assert_eq!(find_key_line(t, &["other", "enabled"]), Some(8));
        assert_eq!(find_key_line(t, &["missing"]), None);
    }

    #[test]
    fn env_resolution_order() {
        let mut env = BTreeMap::new();
        let cfg = Config::default();
        assert_eq!(
            resolve_hostname_with(&cfg, &env, || Some("sys".into())),
            "sys"
        );
        assert_eq!(resolve_hostname_with(&cfg, &env, || None), "localhost");
        env.insert(ENV_HOSTNAME.to_string(), " env-host ".to_string());
        assert_eq!(
            resolve_hostname_with(&cfg, &env, || Some("sys".into())),
            "env-host"
        );
        let cfg2 = Config {
            hostname: Some("cfg-host".into()),
            ..Config::default()
        };
        assert_eq!(resolve_hostname(&cfg2, &env), "cfg-host");
        assert!(system_hostname().is_some());

        assert_eq!(api_token(&cfg, &env), None);
        env.insert(ENV_API_TOKEN.to_string(), "s3cret".to_string());
        assert_eq!(api_token(&cfg, &env).as_deref(), Some("s3cret"));

        assert_eq!(config_server(&cfg, &env), None);
        env.insert(ENV_CONFIG_SERVER_URL.into(), "http://127.0.0.1:1".into());
        assert_eq!(
            config_server(&cfg, &env),
            Some(ConfigServerSettings {
                url: "http://127.0.0.1:1".into(),
                timeout: Duration::from_secs(5)
            })
        );
        env.insert(ENV_CONFIG_TIMEOUT.into(), "0.5".into());
        assert_eq!(
            config_server(&cfg, &env).unwrap().timeout,
            Duration::from_millis(500)
        );
        let mut hm = HashMap::new();
        hm.insert(ENV_LOCAL_CONFIG_PATH.to_string(), "/x/c.yaml".to_string());
        assert_eq!(config_path(None, &hm), PathBuf::from("/x/c.yaml"));
        assert_eq!(
            config_path(Some(Path::new("/f.yaml")), &hm),
            PathBuf::from("/f.yaml")
        );
        assert_eq!(
            config_path(None, &BTreeMap::new()),
            PathBuf::from(DEFAULT_CONFIG_PATH)
        );
    }

    #[test]
    fn bad_env_values_fail_load() {
        let dir = TempDir::new("env");
        let mut env = BTreeMap::new();
        env.insert(ENV_CONFIG_TIMEOUT.to_string(), "soon".to_string());
        env.insert(
            ENV_CONFIG_SERVER_URL.to_string(),
            "localhost:8080".to_string(),
        );
        let e = load(&dir.0.join("config.yaml"), &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("environment: CONFIG_SERVER_URL must start with http://"),
            "{e}"
        );
        assert!(
            e.contains("CONFIG_TIMEOUT must be a number of seconds"),
            "{e}"
        );
        assert!(!dir.0.join("config.yaml").exists());
    }

    #[test]
    fn save_round_trip_keeps_unknown_keys() {
        let dir = TempDir::new("roundtrip");
        let path = dir.0.join("config.yaml");
        let text = "device_type: jetson_xavier\ninterval: 0.5\nfuture_section:\n  nested: [1, 2]\n  flag: true\nmetrics:\n  jetson_temp_aux_celsius: false\n";
        let cfg = parse(text, "in").unwrap();
        save_atomic(&path, &cfg).unwrap();
        let back = parse(&std::fs::read_to_string(&path).unwrap(), "out").unwrap();
        assert_eq!(back, cfg);
        assert_eq!(
            back.extra["future_section"]["nested"],
            serde_yaml::from_str::<Value>("[1, 2]").unwrap()
        );
        assert_eq!(entries(&dir.0), vec!["config.yaml".to_string()]);
        // A second save replaces the file and keeps its mode.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut changed = back.clone();
        changed.metrics.insert("jetson_ram_used_mb".into(), true);
        save_atomic(&path, &changed).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let again = parse(&std::fs::read_to_string(&path).unwrap(), "out").unwrap();
        assert_eq!(again, changed);
    }

    #[test]
    fn save_follows_a_symlink() {
        let dir = TempDir::new("symlink");
        let real = dir.0.join("real.yaml");
        let link = dir.0.join("config.yaml");
        std::fs::write(&real, "interval: 3\n").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        save_atomic(&link, &parse("interval: 4\n", "c").unwrap()).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            parse(&std::fs::read_to_string(&real).unwrap(), "c")
                .unwrap()
                .interval,
            4.0
        );
    }

    // Tests run as root, where permission bits do not stop writes, so each failure below is
    // one that root cannot get past either.

    #[test]
    fn save_fails_when_parent_is_a_file() {
        let dir = TempDir::new("parentfile");
        let file = dir.0.join("not-a-dir");
        std::fs::write(&file, "keep").unwrap();
        let err = save_atomic(&file.join("config.yaml"), &Config::default()).unwrap_err();
        assert!(matches!(err, ConfigError::Write { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
        assert_eq!(entries(&dir.0), vec!["not-a-dir".to_string()]);
    }

    #[test]
    fn save_fails_under_proc() {
        let err = save_atomic(
            Path::new("/proc/edge-metrics-test/config.yaml"),
            &Config::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::Write { .. }), "{err}");
    }

    #[test]
    fn failed_rename_removes_temp_and_leaves_target() {
        // The target is a non-empty directory: the temp file is written, the rename fails.
        let dir = TempDir::new("renamefail");
        let target = dir.0.join("config.yaml");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("inside"), "x").unwrap();
        let err = save_atomic(&target, &Config::default()).unwrap_err();
        assert!(matches!(err, ConfigError::Write { .. }), "{err}");
        assert_eq!(entries(&dir.0), vec!["config.yaml".to_string()]);
        assert_eq!(entries(&target), vec!["inside".to_string()]);
    }

    /// Clears the immutable flag even when the test fails.
    struct Immutable(PathBuf);
    impl Drop for Immutable {
        fn drop(&mut self) {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(&self.0)
                .status();
        }
    }

    #[test]
    fn read_only_directory_gives_err_and_old_file_unchanged() {
        // `chattr +i` makes a directory unwritable even for root (ext4, xfs, btrfs).
        let dir = TempDir::new("immutable");
        let sub = dir.0.join("conf");
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("config.yaml");
        let old = "device_type: jetson_nano\ninterval: 2\n";
        std::fs::write(&path, old).unwrap();
        let status = std::process::Command::new("chattr")
            .arg("+i")
            .arg(&sub)
            .status()
            .expect("chattr (e2fsprogs) is needed to make a directory read-only for root");
        assert!(
            status.success(),
            "chattr +i failed: the temp filesystem must support it"
        );
        let _guard = Immutable(sub.clone());
        let err = save_atomic(&path, &default_config(DeviceType::JetsonOrin)).unwrap_err();
        assert!(matches!(err, ConfigError::Write { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), old);
        assert_eq!(entries(&sub), vec!["config.yaml".to_string()]);
        // Loading a missing file there runs on defaults in memory instead of failing.
        let loaded = load(&sub.join("absent.yaml"), &BTreeMap::new()).unwrap();
        assert!(loaded.created);
        assert_eq!(loaded.config, default_config(DeviceType::JetsonOrin));
        assert!(!sub.join("absent.yaml").exists());
    }

    #[test]
    fn load_creates_defaults_then_reads_them_back() {
        let dir = TempDir::new("load");
        let path = dir.0.join("sub").join("config.yaml");
        let first = load(&path, &BTreeMap::new()).unwrap();
        assert!(first.created);
        assert_eq!(first.config.device_type, DeviceType::JetsonOrin);
        assert_eq!(first.config.metrics.get("power_total_watts"), Some(&true));
        let second = load(&path, &BTreeMap::new()).unwrap();
        assert!(!second.created);
        assert_eq!(second.config, first.config);
    }

    #[test]
    fn load_reports_unreadable_and_invalid_files() {
        let dir = TempDir::new("bad");
        let path = dir.0.join("config.yaml");
        std::fs::write(&path, [0xff, 0xfe, b'\n']).unwrap();
        let e = load(&path, &BTreeMap::new()).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
        std::fs::write(&path, "interval: fast\n").unwrap();
        let e = load(&path, &BTreeMap::new()).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}:1: interval must be a number of seconds, got \"fast\" (set interval: 1)",
                path.display()
            )
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "interval: fast\n");
    }

    #[test]
    fn default_config_is_valid_and_per_model() {
        for d in DeviceType::ALL {
            let c = default_config(d);
            assert_eq!(c.device_type, d);
            assert!(c.metrics.values().all(|on| *on), "{d}");
            assert_eq!(c.metrics.get("power_total_watts"), Some(&true), "{d}");
            c.validate("defaults").unwrap();
        }
        let nano = default_config(DeviceType::JetsonNano);
        assert!(nano.metrics.contains_key("jetson_iram_used_percent"));
        let orin = default_config(DeviceType::Jetson);
        assert!(orin.metrics.contains_key("jetson_power_vdd_gpu_soc_watts"));
        assert!(!orin.metrics.contains_key("jetson_iram_used_percent"));
    }

    #[test]
    fn merge_discovered_never_overwrites() {
        let mut c = parse("metrics:\n  a: true\n  b: false\n", "c").unwrap();
        let added = merge_discovered(&mut c, ["a", "b", "c", "d", "c"], |n| n == "c");
        assert_eq!(added, vec!["c".to_string(), "d".to_string()]);
        assert!(c.metrics["a"]);
        assert!(!c.metrics["b"]);
        assert!(c.metrics["c"]);
        assert!(!c.metrics["d"]);
        assert!(merge_discovered(&mut c, ["a", "d"], |_| true).is_empty());
    }

    #[test]
    fn json_round_trip_matches_spec_shape_and_hides_token() {
        let c = parse(
            "device_type: jetson_orin\ninterval: 1\nport: 9102\nreload_port: 9101\napi_token: t0k\nshelly:\n  enabled: true\n  server_url: http://localhost:8766\nmetrics:\n  power_total_watts: true\nrack: r7\n",
            "c",
        )
        .unwrap();
        let j = to_json(&c);
        assert_eq!(j["device_type"], "jetson_orin");
        assert_eq!(j["interval"].to_string(), "1");
        assert_eq!(j["port"], 9102);
        assert_eq!(j["reload_port"], 9101);
        assert_eq!(
            j["shelly"],
            serde_json::json!({"enabled": true, "server_url": "http://localhost:8766"})
        );
        assert_eq!(j["metrics"], serde_json::json!({"power_total_watts": true}));
        assert_eq!(j["rack"], "r7");
        assert!(j.get("api_token").is_none());
        let back = from_json(j).unwrap();
        assert_eq!(
            back,
            Config {
                api_token: None,
                ..c
            }
        );
        let e = from_json(serde_json::Value::Null).unwrap_err().to_string();
        assert_eq!(
            e,
            "Config Server: is empty (send at least {\"device_type\": \"jetson_orin\"})"
        );
        let e = from_json(serde_json::json!({"interval": "1"}))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "Config Server: interval must be a number of seconds, got \"1\" (set interval: 1)"
        );
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

    #[test]
    fn addresses_handle_ipv6() {
        let c = parse("bind_address: '::1'\nport: 0\n", "c").unwrap();
        assert_eq!(c.metrics_addr().unwrap().to_string(), "[::1]:0");
        assert_eq!(c.api_addr().unwrap().to_string(), "0.0.0.0:9101");
    }
}
