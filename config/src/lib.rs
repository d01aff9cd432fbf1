//! `config.yaml`: the types (serde), loading, validation, atomic saving, the legacy
//! `enabled_metrics` form, and the environment variables that feed the configuration.
//!
//! - [`Config`] and its sections (`schema.rs`); unknown top-level keys are kept in `extra` and
//!   written back.
//! - [`keys`]: the one table of keys (name, kind, default, range, fix, docs line) from which
//!   the checks, the serde defaults and the key list of `docs/CONFIG.md` are derived.
//! - [`parse`] text → validated `Config`, every problem reported at once with file, line, key,
//!   value and fix (`check.rs`, lines from `position.rs`); [`from_json`] does the same for a
//!   Config Server body (`json.rs`).
//! - [`load`] reads a path, writing a fresh config when the file is absent; [`save_atomic`]
//!   writes via temp file + fsync + rename + directory fsync (`store.rs`).
//! - [`Env`] reads environment variables (tests pass a map), with the resolution helpers
//!   [`config_path`], [`resolve_hostname`], [`host_root`], [`api_token`] and [`config_server`]
//!   (`env.rs`).
//! - [`to_json`] shapes `GET /config` and Config Server pushes, without the [`Secrets`]
//!   (`api_token`, `config_server.token`), which [`Secrets::fill`] restores from the local file.
//!
//! A crate of its own so that the exporter and the Config Server validate with the same code.
//! It knows nothing of collectors: the exporter decides what a fresh config enables and passes
//! it to [`load`]. The YAML library is reached only through `yaml.rs`.

mod check;
mod env;
mod error;
mod json;
pub mod keys;
mod position;
mod schema;
mod store;
pub(crate) mod yaml;

pub use check::{is_metric_name, parse};
pub use env::{
    api_token, check_api_exposure, check_env, config_path, config_server, device_id, host_root,
    is_loopback, resolve_hostname, system_hostname, ConfigServerSettings, Env, ProcessEnv,
    DEFAULT_CONFIG_PATH, ENV_API_TOKEN, ENV_CONFIG_SERVER_TOKEN, ENV_CONFIG_SERVER_URL,
    ENV_CONFIG_TIMEOUT, ENV_HOSTNAME, ENV_HOST_ROOT, ENV_LOCAL_CONFIG_PATH,
};
pub use error::{error_chain, ConfigError, Problem};
pub use json::{from_json, to_json, Secrets};
pub use keys::{
    DEFAULT_BIND_ADDRESS, DEFAULT_CONFIG_TIMEOUT_SECS, DEFAULT_DEVICE_TYPE, DEFAULT_HOST_ROOT,
    DEFAULT_INTERVAL_SECS, DEFAULT_PORT, DEFAULT_RELOAD_BIND_ADDRESS, DEFAULT_RELOAD_PORT,
    DEFAULT_SHELLY_ENABLED, DEFAULT_SHELLY_SERVER_URL, DEFAULT_TEGRASTATS_PATH,
    MAX_CONFIG_TIMEOUT_SECS, MAX_INTERVAL_SECS, MIN_INTERVAL_SECS,
};
pub use schema::{Config, ConfigServerConfig, DeviceType, ShellyConfig, TegrastatsConfig};
pub use store::{load, save_atomic, to_yaml, Loaded};
