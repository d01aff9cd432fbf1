//! `config.yaml`: the types (serde), loading, validation and atomic saving.
//!
//! INTERFACE (kept stable for the runtime; the config work fills in validation with file/line/
//! key messages, legacy `enabled_metrics` conversion, atomic save and the env trait):
//! - [`Config`] and its sections; unknown top-level keys are kept in `extra` and written back.
//! - [`parse`] text → `Config` (validated); [`load`] reads a path (writing defaults when absent).
//! - [`save_atomic`] writes via temp file + fsync + rename.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
}

fn default_device_type() -> DeviceType {
    DeviceType::JetsonOrin
}
fn default_interval() -> u64 {
    1
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

/// The whole `config.yaml`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Config {
    /// Which collector parses tegrastats.
    #[serde(default = "default_device_type")]
    pub device_type: DeviceType,
    /// Collection interval in seconds (also tegrastats `--interval`).
    #[serde(default = "default_interval")]
    pub interval: u64,
    /// Prometheus `/metrics` port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Management API port.
    #[serde(default = "default_reload_port")]
    pub reload_port: u16,
    /// Bind address of the metrics server.
    #[serde(default = "default_bind")]
    pub bind_address: String,
    /// Bind address of the management API.
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
    /// Base URL; unset = no Config Server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Request timeout in seconds (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
}

impl Config {
    /// The collection interval (also tegrastats `--interval`).
    pub fn interval_duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.interval)
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

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is not a valid configuration.
    #[error("{origin}: {message}")]
    Invalid {
        /// File name or "Config Server".
        origin: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The file could not be written.
    #[error("cannot write config {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Parses and validates config text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    serde_yaml::from_str(text).map_err(|e| ConfigError::Invalid {
        origin: origin.to_string(),
        message: e.to_string(),
    })
}

/// Writes `config` to `path` atomically.
pub fn save_atomic(path: &Path, config: &Config) -> Result<(), ConfigError> {
    let text = serde_yaml::to_string(config).expect("invariant: Config serialises");
    std::fs::write(path, text).map_err(|source| ConfigError::Write {
        path: path.to_path_buf(),
        source,
    })
}
